#!/usr/bin/env bash
# Makes a Docker engine answer: uses a running one, otherwise installs docker.io
# (Debian/Ubuntu, as root) and starts dockerd in the background.
set -euo pipefail

answers() { docker info >/dev/null 2>&1; }

# The engine's default bridge interface can vanish under a running engine (another dockerd started with
# `--bridge none` deletes docker0): then no container starts. Put it back as the engine describes it.
restore_bridge() {
  command -v ip >/dev/null 2>&1 || return 0
  [ "$(id -u)" -eq 0 ] || return 0
  local name subnet gateway
  name=$(docker network inspect bridge --format '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null) || return 0
  [ -n "$name" ] || return 0
  ip link show "$name" >/dev/null 2>&1 && return 0
  subnet=$(docker network inspect bridge --format '{{(index .IPAM.Config 0).Subnet}}' 2>/dev/null) || return 0
  gateway=$(docker network inspect bridge --format '{{(index .IPAM.Config 0).Gateway}}' 2>/dev/null || true)
  [ -n "$gateway" ] || gateway="${subnet%.*/*}.1"
  echo "ensure-docker: the engine's bridge $name was missing; restoring it ($gateway/${subnet#*/})"
  ip link add "$name" type bridge && ip addr add "$gateway/${subnet#*/}" dev "$name" && ip link set "$name" up
}

if command -v docker >/dev/null 2>&1 && answers; then
  restore_bridge
  echo "docker engine: $(docker version --format '{{.Server.Version}}')"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-docker: no Docker engine answers and this is not root; start one (or run as root)" >&2
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: installing docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

if ! answers; then
  log=${DOCKERD_LOG:-/var/log/stack-factory-dockerd.log}
  echo "ensure-docker: starting dockerd (log: $log)"
  nohup dockerd >"$log" 2>&1 &
  for _ in $(seq 1 60); do
    answers && break
    sleep 1
  done
fi

if ! answers; then
  echo "ensure-docker: dockerd did not answer within 60 s; last lines of its log:" >&2
  tail -n 20 "${DOCKERD_LOG:-/var/log/stack-factory-dockerd.log}" >&2 || true
  exit 1
fi
echo "docker engine: $(docker version --format '{{.Server.Version}}')"
