#!/usr/bin/env bash
# A Docker engine for the tests and `make demo-docker`: Debian's dockerd on a private socket and
# data root, with no iptables rules (nothing is published beyond this machine).
#
#   scripts/docker-engine.sh start DIR   # prints DOCKER_HOST=unix://DIR/docker.sock when ready
#   scripts/docker-engine.sh stop DIR    # stops it by the PID in DIR/dockerd.pid
#
# As root it installs docker.io, docker-compose and debootstrap when missing (as
# scripts/debian-packages.sh does for the other packages); otherwise it says what to install.
set -euo pipefail
command="${1:?usage: docker-engine.sh start|stop DIR}"
dir="${2:?usage: docker-engine.sh start|stop DIR}"
socket="$dir/docker.sock"
pidfile="$dir/dockerd.pid"

install_packages() {
  local missing=()
  for package in docker.io docker-compose debootstrap; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "The Docker tests need these Debian packages: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

case "$command" in
  start)
    install_packages
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
