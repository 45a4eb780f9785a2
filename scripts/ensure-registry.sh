#!/usr/bin/env bash
# Makes an OCI registry answer on loopback for a shared buildcache: Debian's docker-registry package (installed
# when missing, as root), run in the background with its own configuration and storage directory, with basic
# authentication from an htpasswd file. Idempotent: a registry already answering is reused.
#
# Writes a credentials file (mode 0600) in the factory's format, for `credentials:` in a factory settings file:
#   username: stack-factory
#   password: <random>
# and prints, last, the registry's address and the credentials file's path:
#   127.0.0.1:5000 /var/lib/stack-factory-registry/credentials.yaml
#
#   REGISTRY_ADDR=127.0.0.1:5001 REGISTRY_ROOT=/var/lib/other scripts/ensure-registry.sh   another instance
#   scripts/ensure-registry.sh --stop                                                      stops it (pid file)
set -euo pipefail
addr=${REGISTRY_ADDR:-127.0.0.1:5000}
root=${REGISTRY_ROOT:-/var/lib/stack-factory-registry}
config=$root/config.yml
htpasswd=$root/htpasswd
credentials=$root/credentials.yaml
pidfile=$root/registry.pid
log=${REGISTRY_LOG:-/var/log/stack-factory-registry.log}
user=stack-factory

# python3 checks the registry and writes the bcrypt htpasswd entry; a minimal Debian may lack it.
if ! command -v python3 >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-registry: python3 is missing and this is not root; install python3" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3 >/dev/null
fi

# Any answer from the API root means the registry is up (401 when authentication is on).
answers() {
  local code
  code=$(python3 - "$addr" <<'EOF'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=2)
    print(200)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
EOF
)
  [ "$code" = 200 ] || [ "$code" = 401 ]
}

if [ "${1:-}" = "--stop" ]; then
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")" && echo "registry: stopped"
  else
    echo "registry: not running"
  fi
  exit 0
fi

if ! answers; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-registry: no registry answers at $addr and this is not root; run as root" >&2
    exit 1
  fi
  if ! command -v docker-registry >/dev/null 2>&1; then
    echo "ensure-registry: installing docker-registry"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The package's own service is not used: it would listen on every address with the package's configuration.
    apt-get install -y -qq docker-registry >/dev/null
  fi
  mkdir -p "$root/storage" "$(dirname "$log")"
  if [ ! -s "$credentials" ] || [ ! -s "$htpasswd" ]; then
    password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
    (umask 077 && printf 'username: %s\npassword: %s\n' "$user" "$password" >"$credentials")
    # bcrypt, the only scheme the registry's htpasswd reader accepts.
    python3 -W ignore -c 'import crypt, sys; print(f"{sys.argv[1]}:" + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH)))' \
      "$user" "$password" >"$htpasswd"
    chmod 0600 "$htpasswd"
  fi
  cat >"$config" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $root/storage
  delete:
    enabled: true
http:
  addr: $addr
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: stack-factory
    path: $htpasswd
EOF
  if [ -s "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then rm -f "$pidfile"; fi
  echo "ensure-registry: starting docker-registry on $addr (storage $root/storage, log $log)"
  nohup docker-registry serve "$config" >"$log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 30); do
    answers && break
    sleep 1
  done
  if ! answers; then
    echo "ensure-registry: the registry did not answer on $addr within 30 s; last lines of its log:" >&2
    tail -n 20 "$log" >&2 || true
    exit 1
  fi
fi
echo "registry: http://$addr (credentials in $credentials)"
echo "$addr $credentials"
