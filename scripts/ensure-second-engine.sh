#!/usr/bin/env bash
# Makes a second Docker engine answer on this machine, side by side with the main one (scripts/ensure-docker.sh):
# its own socket, data root, exec root (and so its own containerd), pid file, cgroup parent and bridge, and no
# iptables rules of its own (so it never touches the main engine's docker0 or NAT chains; its containers use the
# host network or none). Idempotent: an engine already answering on the socket is reused. Then imports the test
# base image into it from the main engine (docker save | docker load) when it lacks it.
#
#   scripts/ensure-second-engine.sh            prints the engine's URL last: unix:///var/run/stack-factory-docker2.sock
#   SECOND_ENGINE_NAME=docker3 scripts/...      another instance (socket, roots and pid file named after it)
#   scripts/ensure-second-engine.sh --stop      stops it (by its pid file) and leaves its data root
set -euo pipefail
name=${SECOND_ENGINE_NAME:-stack-factory-docker2}
sock=/var/run/$name.sock
data_root=${SECOND_ENGINE_DATA_ROOT:-/var/lib/$name}
exec_root=/var/run/$name
pidfile=/var/run/$name.pid
log=${SECOND_ENGINE_LOG:-/var/log/$name.log}
image=${STACK_FACTORY_TEST_IMAGE:-stack-factory-test/debian:bookworm}
url=unix://$sock

answers() { docker -H "$url" info >/dev/null 2>&1; }

if [ "${1:-}" = "--stop" ]; then
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    echo "second engine: stopped ($pid)"
  else
    echo "second engine: not running"
  fi
  exit 0
fi

if ! answers; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-second-engine: no engine answers at $url and this is not root; run as root" >&2
    exit 1
  fi
  # The main engine's package brings dockerd and containerd.
  bash "$(dirname "$0")/ensure-docker.sh" >/dev/null
  # A pid file of a dead daemon would stop the new one from starting.
  if [ -s "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then rm -f "$pidfile"; fi
  mkdir -p "$data_root" "$exec_root" "$(dirname "$log")"
  # A bridge of its own: dockerd started with `--bridge none` deletes the host's docker0 interface, which the main
  # engine's containers need. No NAT and no iptables rules on it: containers that need the network use the host's.
  command -v ip >/dev/null 2>&1 || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y -qq iproute2 >/dev/null; }
  bridge=$(printf '%s' "sf-$name" | cut -c1-15)
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
    ip addr add "${SECOND_ENGINE_BRIDGE_CIDR:-10.213.77.1/24}" dev "$bridge"
  fi
  ip link set "$bridge" up
  echo "ensure-second-engine: starting dockerd on $sock (data root $data_root, log $log)"
  nohup dockerd \
    --host "$url" \
    --data-root "$data_root" \
    --exec-root "$exec_root" \
    --pidfile "$pidfile" \
    --cgroup-parent "/$name" \
    --bridge "$bridge" \
    --iptables=false \
    --ip-masq=false \
    >"$log" 2>&1 &
  for _ in $(seq 1 60); do
    answers && break
    sleep 1
  done
  if ! answers; then
    echo "ensure-second-engine: dockerd did not answer on $sock within 60 s; last lines of its log:" >&2
    tail -n 20 "$log" >&2 || true
    exit 1
  fi
fi

if ! docker -H "$url" image inspect "$image" >/dev/null 2>&1; then
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    bash "$(dirname "$0")/make-test-image.sh" "$image" >/dev/null
  fi
  echo "ensure-second-engine: copying $image from the main engine"
  docker save "$image" | docker -H "$url" load >/dev/null
fi
echo "second engine: $(docker -H "$url" version --format '{{.Server.Version}}') at $url"
echo "$url"
