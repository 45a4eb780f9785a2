#!/usr/bin/env bash
# Makes the main Docker engine reachable the way a build host of a site is: over ssh, as an ordinary member of the
# docker group, with `docker system dial-stdio` run there (what dockerode's ssh:// transport does). An sshd of its
# own on 127.0.0.1:2222 (its own host key, config, pid file and authorized keys; keys only, no root login), a user
# `sf-ssh-builder` in the docker group, and for the client a private key and a known_hosts file naming the host key.
# Idempotent: an sshd already answering is reused.
#
#   scripts/ensure-sshd.sh          prints the engine URL last: ssh://sf-ssh-builder@127.0.0.1:2222
#   scripts/ensure-sshd.sh --stop   stops that sshd
#
# The client files: /var/lib/stack-factory-sshd/client/{id_ed25519,known_hosts} (root's, mode 0600 and 0644).
set -euo pipefail
dir=/var/lib/stack-factory-sshd
port=${STACK_FACTORY_SSHD_PORT:-2222}
user=sf-ssh-builder
pidfile=/var/run/stack-factory-sshd.pid
url=ssh://$user@127.0.0.1:$port

running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

if [ "${1:-}" = "--stop" ]; then
  if running; then kill "$(cat "$pidfile")"; echo "sshd: stopped"; else echo "sshd: not running"; fi
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-sshd: needs root (it adds a user and starts an sshd)" >&2
  exit 1
fi

if ! [ -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq openssh-server openssh-client >/dev/null
fi

# The login user: an ordinary member of the docker group, with a shell for the one command it runs.
getent group docker >/dev/null || groupadd docker
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --uid 4243 --user-group --groups docker --no-create-home --home-dir / --shell /bin/sh "$user"
fi
# Whoever made it: in the docker group (and no other), as the ssh engine tests need it.
usermod -G docker "$user"
usermod --home / "$user"
# No password, but not locked either ("!" would make sshd refuse even a key): "*" matches no password.
usermod -p '*' "$user"
chgrp docker /var/run/docker.sock
chmod 660 /var/run/docker.sock

mkdir -p "$dir/authorized_keys" "$dir/client"
chmod 755 "$dir" "$dir/authorized_keys"
[ -s "$dir/host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C stack-factory-test-host -f "$dir/host_ed25519_key"
[ -s "$dir/client/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C stack-factory-test-client -f "$dir/client/id_ed25519"
install -m 0644 "$dir/client/id_ed25519.pub" "$dir/authorized_keys/$user"
printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$dir/host_ed25519_key.pub")" >"$dir/client/known_hosts"
chmod 0644 "$dir/client/known_hosts"
cat >"$dir/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519_key
PidFile $pidfile
AuthorizedKeysFile $dir/authorized_keys/%u
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
StrictModes yes
AllowUsers $user
EOF

if ! running; then
  mkdir -p /run/sshd
  /usr/sbin/sshd -f "$dir/sshd_config" -E /var/log/stack-factory-sshd.log
  for _ in $(seq 1 20); do running && break; sleep 0.5; done
fi
# The whole path: ssh as that user, then the engine through the docker CLI there.
if ! ssh -p "$port" -i "$dir/client/id_ed25519" -o UserKnownHostsFile="$dir/client/known_hosts" \
  -o StrictHostKeyChecking=yes -o BatchMode=yes "$user@127.0.0.1" docker version --format '{{.Server.Version}}' >/dev/null; then
  echo "ensure-sshd: cannot reach the engine over ssh as $user; last lines of the sshd log:" >&2
  tail -n 20 /var/log/stack-factory-sshd.log >&2 || true
  exit 1
fi
echo "sshd: $url (engine reachable as $user)"
echo "$url"
