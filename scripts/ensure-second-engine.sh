#!/usr/bin/env bash
# Makes a second Docker engine answer on this machine, side by side with the main one (scripts/ensure-docker.sh):
# its own socket, data root, exec root (and so its own containerd), pid file, cgroup parent and bridge, and no
# iptables rules of its own (so it never touches the main engine's docker0 or NAT chains; its containers use the
# host network or none). Idempotent: an engine already answering on the socket is reused. Then imports the test
# base image into it from the main engine (docker save | docker load) when it lacks it.
#
#   scripts/ensure-second-engine.sh            prints the engine's URL last: unix:///var/run/stack-factory-docker2.sock
#
# The same engine also answers on loopback TCP with mutual TLS (tcp://127.0.0.1:23760, certificates made here by
# openssl under /var/lib/<name>-tls/; the client's ca.pem, cert.pem and key.pem in its client/ directory): reached
# that way, the factory takes it for an engine of another host, whose cache root it can only reach through the engine.
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

tls_port=${SECOND_ENGINE_TLS_PORT:-23760}
tls_dir=/var/lib/$name-tls
tls_url=tcp://127.0.0.1:$tls_port

answers() { docker -H "$url" info >/dev/null 2>&1; }
answers_tls() {
  docker -H "$tls_url" --tlsverify --tlscacert "$tls_dir/client/ca.pem" --tlscert "$tls_dir/client/cert.pem" \
    --tlskey "$tls_dir/client/key.pem" info >/dev/null 2>&1
}

# A CA, a server certificate for 127.0.0.1 and a client certificate, once.
make_certs() {
  [ -s "$tls_dir/client/key.pem" ] && [ -s "$tls_dir/server-cert.pem" ] && return 0
  command -v openssl >/dev/null 2>&1 || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y -qq openssl >/dev/null; }
  rm -rf "$tls_dir"
  mkdir -p "$tls_dir/client"
  (
    cd "$tls_dir"
    umask 077
    openssl genrsa -out ca-key.pem 2048 2>/dev/null
    openssl req -new -x509 -days 3650 -key ca-key.pem -subj "/CN=stack-factory test CA" -out ca.pem
    openssl genrsa -out server-key.pem 2048 2>/dev/null
    openssl req -new -key server-key.pem -subj "/CN=localhost" -out server.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -days 3650 -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -extfile server.ext \
      -out server-cert.pem 2>/dev/null
    openssl genrsa -out client/key.pem 2048 2>/dev/null
    openssl req -new -key client/key.pem -subj "/CN=stack-factory test client" -out client.csr
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -days 3650 -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -extfile client.ext \
      -out client/cert.pem 2>/dev/null
    cp ca.pem client/ca.pem
    chmod 0644 ca.pem client/ca.pem client/cert.pem server-cert.pem
  )
}


stop_engine() {
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    echo "second engine: stopped ($pid)"
  else
    echo "second engine: not running"
  fi
}

if [ "${1:-}" = "--stop" ]; then
  stop_engine
  exit 0
fi

# An engine started before it learnt TLS is restarted with it.
if answers && ! answers_tls && [ "$(id -u)" -eq 0 ]; then
  echo "ensure-second-engine: the engine on $sock does not answer on $tls_url; restarting it with TLS"
  make_certs
  stop_engine
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
  make_certs
  echo "ensure-second-engine: starting dockerd on $sock and $tls_url (data root $data_root, log $log)"
  nohup dockerd \
    --host "$url" \
    --host "$tls_url" \
    --tlsverify \
    --tlscacert "$tls_dir/ca.pem" \
    --tlscert "$tls_dir/server-cert.pem" \
    --tlskey "$tls_dir/server-key.pem" \
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
