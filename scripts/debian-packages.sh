#!/usr/bin/env bash
# Installs the Debian packages the tests need, when they are missing: a real OCI registry
# (docker-registry), an image builder that needs no daemon (buildah), a browser for the UI
# test (chromium, driven by Playwright; no browser download), and for the Docker end-to-end
# test a Docker engine with compose (docker.io, docker-compose) and debootstrap for its local
# base image, and PostgreSQL for the shared-instance test. Used by `make test` and .ci/run;
# with package names as arguments, installs only those (scripts/docker-engine.sh does).
# Without root it only says what to install.
set -euo pipefail
PACKAGES=(buildah docker-registry chromium docker.io docker-compose debootstrap postgresql)
[ $# -gt 0 ] && PACKAGES=("$@")
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "The tests need these Debian packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
