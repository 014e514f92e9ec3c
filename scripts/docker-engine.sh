#!/usr/bin/env bash
# A Docker engine for the tests and `make demo-docker`: Debian's dockerd on a private socket and
# data root, with no iptables rules (nothing is published beyond this machine).
#
#   scripts/docker-engine.sh start DIR   # prints DOCKER_HOST=unix://DIR/docker.sock when ready
#   scripts/docker-engine.sh stop DIR    # stops it by the PID in DIR/dockerd.pid
#
# It first installs what the Docker path needs, with scripts/debian-packages.sh (as root; without
# root it says what to install): docker.io, docker-compose, debootstrap and docker-registry.
set -euo pipefail
command="${1:?usage: docker-engine.sh start|stop DIR}"
dir="${2:?usage: docker-engine.sh start|stop DIR}"
socket="$dir/docker.sock"
pidfile="$dir/dockerd.pid"

case "$command" in
  start)
    bash "$(dirname "$0")/debian-packages.sh" docker.io docker-compose debootstrap docker-registry
    mkdir -p "$dir"
    if [ -S "$socket" ] && /usr/bin/docker -H "unix://$socket" info >/dev/null 2>&1; then
      echo "DOCKER_HOST=unix://$socket"
      exit 0
    fi
    /usr/sbin/dockerd --data-root "$dir/data" --exec-root "$dir/exec" -H "unix://$socket" \
      --pidfile "$pidfile" --iptables=false >"$dir/dockerd.log" 2>&1 &
    for _ in $(seq 1 120); do
      if /usr/bin/docker -H "unix://$socket" info >/dev/null 2>&1; then
        echo "DOCKER_HOST=unix://$socket"
        exit 0
      fi
      sleep 0.5
    done
    echo "dockerd did not start; its log:" >&2
    tail -20 "$dir/dockerd.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$pidfile" ]; then
      pid="$(cat "$pidfile")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || exit 0
        sleep 0.5
      done
      kill -9 "$pid" 2>/dev/null || true
    fi
    ;;
  *)
    echo "usage: docker-engine.sh start|stop DIR" >&2
    exit 2
    ;;
esac
