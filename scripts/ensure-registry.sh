#!/usr/bin/env bash
# Makes OCI registries answer on loopback for a shared buildcache: Debian's docker-registry package (installed when
# missing, as root), run in the background with its own configuration and storage directory, with basic
# authentication from an htpasswd file. Idempotent: a registry already answering is reused. Two instances:
#
#   https://127.0.0.1:5001   TLS with a CA of its own (made by openssl): what a site runs, and what Spack needs to
#                            push with credentials (its OCI client logs in over https only). The CA the factory
#                            settings name in `buildcache_ca:` is /var/lib/stack-factory-registry-tls/ca.pem (0644).
#   http://127.0.0.1:5000    plain http (loopback tests that need no credentials over TLS, and older tests)
#
# Each writes a credentials file (mode 0600) in the factory's format, for `credentials:` in a factory settings file:
#   username: stack-factory
#   password: <random>
# and prints, last, per instance, its URL, the credentials file's path and (https) the CA file:
#   https://127.0.0.1:5001 /var/lib/stack-factory-registry-tls/credentials.yaml /var/lib/stack-factory-registry-tls/ca.pem
#
#   REGISTRY_ADDR=127.0.0.1:5002 REGISTRY_ROOT=/var/lib/other REGISTRY_TLS=1 scripts/ensure-registry.sh   one other instance
#   scripts/ensure-registry.sh --stop                                                                    stops them (pid files)
set -euo pipefail
user=stack-factory

# python3 checks the registry and writes the bcrypt htpasswd entry; a minimal Debian may lack it.
need_root_for() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-registry: $1 and this is not root; run as root" >&2
    exit 1
  fi
}
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "$@" >/dev/null
}
command -v python3 >/dev/null 2>&1 || { need_root_for "python3 is missing"; apt_install python3; }

# Any answer from the API root means the registry is up (401 when authentication is on); https is verified
# against the instance's own CA.
answers() {
  local url=$1 ca=$2 code
  code=$(python3 - "$url" "$ca" <<'EOF'
import ssl, sys, urllib.request, urllib.error
url, ca = sys.argv[1], sys.argv[2]
try:
    context = ssl.create_default_context(cafile=ca) if url.startswith("https:") else None
    urllib.request.urlopen(f"{url}/v2/", timeout=2, context=context)
    print(200)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
EOF
)
  [ "$code" = 200 ] || [ "$code" = 401 ]
}

# A CA and a server certificate for 127.0.0.1 and localhost, once (the CA's key stays 0600 beside it).
make_certs() {
  local dir=$1
  [ -s "$dir/server-cert.pem" ] && [ -s "$dir/ca.pem" ] && return 0
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  (
    cd "$dir"
    umask 077
    openssl genrsa -out ca-key.pem 2048 2>/dev/null
    openssl req -new -x509 -days 3650 -key ca-key.pem -subj "/CN=stack-factory test registry CA" -out ca.pem
    openssl genrsa -out server-key.pem 2048 2>/dev/null
    openssl req -new -key server-key.pem -subj "/CN=localhost" -out server.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -days 3650 -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -extfile server.ext \
      -out server-cert.pem 2>/dev/null
    chmod 0644 ca.pem server-cert.pem
  )
}

stop_one() {
  local pidfile=$1/registry.pid
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")" && echo "registry $2: stopped"
  else
    echo "registry $2: not running"
  fi
}

# ensure_one ADDR ROOT TLS(0|1)
ensure_one() {
  local addr=$1 root=$2 tls=$3
  local scheme=http config=$root/config.yml htpasswd=$root/htpasswd credentials=$root/credentials.yaml
  local pidfile=$root/registry.pid log=${REGISTRY_LOG:-/var/log/$(basename "$root").log} ca=""
  if [ "$tls" = 1 ]; then scheme=https; ca=$root/ca.pem; fi
  if ! answers "$scheme://$addr" "$ca"; then
    need_root_for "no registry answers at $scheme://$addr"
    if ! command -v docker-registry >/dev/null 2>&1; then
      echo "ensure-registry: installing docker-registry"
      # The package's own service is not used: it would listen on every address with the package's configuration.
      apt_install docker-registry
    fi
    mkdir -p "$root/storage" "$(dirname "$log")"
    chmod 0755 "$root"
    [ "$tls" = 1 ] && make_certs "$root"
    if [ ! -s "$credentials" ] || [ ! -s "$htpasswd" ]; then
      local password
      password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
      (umask 077 && printf 'username: %s\npassword: %s\n' "$user" "$password" >"$credentials")
      # bcrypt, the only scheme the registry's htpasswd reader accepts.
      python3 -W ignore -c 'import crypt, sys; print(f"{sys.argv[1]}:" + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH)))' \
        "$user" "$password" >"$htpasswd"
      chmod 0600 "$htpasswd"
    fi
    {
      printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n' "$root/storage"
      printf '  delete:\n    enabled: true\nhttp:\n  addr: %s\n  headers:\n    X-Content-Type-Options: [nosniff]\n' "$addr"
      if [ "$tls" = 1 ]; then
        printf '  tls:\n    certificate: %s\n    key: %s\n' "$root/server-cert.pem" "$root/server-key.pem"
      fi
      printf 'auth:\n  htpasswd:\n    realm: stack-factory\n    path: %s\n' "$htpasswd"
    } >"$config"
    if [ -s "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then rm -f "$pidfile"; fi
    echo "ensure-registry: starting docker-registry on $scheme://$addr (storage $root/storage, log $log)"
    nohup docker-registry serve "$config" >"$log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 30); do
      answers "$scheme://$addr" "$ca" && break
      sleep 1
    done
    if ! answers "$scheme://$addr" "$ca"; then
      echo "ensure-registry: the registry did not answer on $scheme://$addr within 30 s; last lines of its log:" >&2
      tail -n 20 "$log" >&2 || true
      exit 1
    fi
  fi
  echo "registry: $scheme://$addr (credentials in $credentials${ca:+, CA $ca})"
  echo "$scheme://$addr $credentials${ca:+ $ca}"
}

if [ -n "${REGISTRY_ADDR:-}" ]; then
  instances=("$REGISTRY_ADDR ${REGISTRY_ROOT:-/var/lib/stack-factory-registry-${REGISTRY_ADDR##*:}} ${REGISTRY_TLS:-1}")
else
  instances=("127.0.0.1:5000 /var/lib/stack-factory-registry 0" "127.0.0.1:5001 /var/lib/stack-factory-registry-tls 1")
fi
for instance in "${instances[@]}"; do
  read -r addr root tls <<<"$instance"
  if [ "${1:-}" = "--stop" ]; then stop_one "$root" "$addr"; else ensure_one "$addr" "$root" "$tls"; fi
done
