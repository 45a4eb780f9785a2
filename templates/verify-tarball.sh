#!/usr/bin/env bash
# Checks stack-factory tarballs against one site's signing key BEFORE anything of them is unpacked or run: a
# tarball's own scripts cannot vouch for it, since whoever alters the tarball alters them too. Written by
# `stack-factory keys init` beside public.asc and public.gpg; hand all three to the clusters together, over a
# channel you trust as much as the key itself.
#
#   verify-tarball.sh [--keyring FILE] TARBALL...
#
# Each TARBALL needs its detached signature TARBALL.asc beside it. The keyring is public.gpg beside this script
# (or --keyring FILE: binary, or armored as public.asc), and the signer must be the site's key, whose fingerprint
# is written into this script: nothing of the user's own gpg keyring is consulted. Exit 0 when every tarball carries a good signature by that key, 1 when one
# does not (or cannot be checked), 2 on a usage error. Then, and only then: tar xf TARBALL && TOP/install.sh ...
#
# Needs gpgv (apt and dnf use it, so most nodes have it) or gpg, and coreutils, grep and sed. Plain POSIX shell
# syntax, so any bash (RHEL 7's 4.2 included) or sh runs it.
set -eu
LC_ALL=C
export LC_ALL

SITE_FINGERPRINT=@FINGERPRINT@

say() { printf 'verify-tarball.sh: %s\n' "$*"; }
die() { printf 'verify-tarball.sh: error: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'verify-tarball.sh: %s\n(usage: verify-tarball.sh [--keyring FILE] TARBALL...)\n' "$*" >&2; exit 2; }

here=$(cd -- "$(dirname -- "$0")" && pwd -P)
keyring=$here/public.gpg
while [ $# -gt 0 ]; do
  case $1 in
    --keyring) [ $# -ge 2 ] || usage_error "--keyring needs a file"; keyring=$2; shift 2 ;;
    --keyring=*) keyring=${1#--keyring=}; shift ;;
    -h | --help) sed -n '2,15s/^# \{0,1\}//p' -- "$0"; printf '\nThe site key: %s\n' "$SITE_FINGERPRINT"; exit 0 ;;
    --) shift; break ;;
    -*) usage_error "unknown option '$1' (allowed: --keyring FILE, --help)" ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || usage_error "give the tarballs to check"
[ -f "$keyring" ] || die "no keyring $keyring (public.gpg, written by keys init beside this script; or give --keyring FILE)"

tool=""
for candidate in gpgv gpgv2 gpg gpg2; do
  if command -v "$candidate" >/dev/null 2>&1; then tool=$candidate; break; fi
done
[ -n "$tool" ] || die "needs gpgv or gpg, and neither is on PATH (install gpgv, or check the tarballs on a machine that has it)"

work=$(mktemp -d "${TMPDIR:-/tmp}/sf-verify.XXXXXX")
cleanup() {
  if command -v gpgconf >/dev/null 2>&1; then gpgconf --homedir "$work/home" --kill all >/dev/null 2>&1 || true; fi
  rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
mkdir -m 700 "$work/home"

# gpgv reads binary keyrings only: an armored key is unarmored with sed and base64.
if grep -q -- '-----BEGIN PGP PRIVATE KEY BLOCK-----' "$keyring"; then
  die "$keyring holds a secret key; give the public key (public.gpg or public.asc)"
fi
if grep -q -- '-----BEGIN PGP PUBLIC KEY BLOCK-----' "$keyring"; then
  sed -n '/^-----BEGIN PGP PUBLIC KEY BLOCK-----/,/^-----END PGP PUBLIC KEY BLOCK-----/p' -- "$keyring" |
    sed -e '1,/^[[:space:]]*$/d' -e '/^=/d' -e '/^-----/d' | tr -d ' \r' | base64 -d >"$work/keyring.gpg" 2>/dev/null ||
    die "$keyring is not a readable armored public key"
else
  cp -- "$keyring" "$work/keyring.gpg"
fi
case $tool in
  gpg | gpg2)
    "$tool" --homedir "$work/home" --batch --no-tty --quiet --import "$work/keyring.gpg" >/dev/null 2>"$work/stderr" ||
      die "$tool cannot import $keyring: $(tail -n 1 "$work/stderr")"
    ;;
esac

# The status lines of one check (gpg's machine-readable output): VALIDSIG, GOODSIG, BADSIG, ERRSIG, ...
check_status() { # tarball signature
  case $tool in
    gpgv | gpgv2) "$tool" --homedir "$work/home" --status-fd 1 --keyring "$work/keyring.gpg" -- "$2" "$1" ;;
    *) "$tool" --homedir "$work/home" --batch --no-tty --status-fd 1 --verify -- "$2" "$1" ;;
  esac 2>"$work/stderr" >"$work/status" || true
}

# Refuses (returns 1, with the reason) unless the tarball carries a good signature by SITE_FINGERPRINT.
check_one() { # tarball
  name=$(basename -- "$1")
  [ -f "$1" ] || { say "REFUSED $1: no such file" >&2; return 1; }
  [ -f "$1.asc" ] || { say "REFUSED $name: no signature $1.asc beside it (copy the .asc with the tarball)" >&2; return 1; }
  check_status "$1" "$1.asc"
  if grep -q '^\[GNUPG:\] BADSIG ' "$work/status"; then
    say "REFUSED $name: BAD signature: it is not what was signed (altered or damaged); do not unpack it" >&2
    return 1
  fi
  if grep -q '^\[GNUPG:\] ERRSIG \|^\[GNUPG:\] NO_PUBKEY ' "$work/status"; then
    say "REFUSED $name: signed by key $(grep -m1 '^\[GNUPG:\] ERRSIG ' "$work/status" | cut -d' ' -f3), which is not the site's key $SITE_FINGERPRINT; do not unpack it" >&2
    return 1
  fi
  valid=$(grep -m1 '^\[GNUPG:\] VALIDSIG ' "$work/status" || true)
  # The primary key's fingerprint (field 12), else the signing key's (field 3).
  signer=$(printf '%s\n' "$valid" | cut -d' ' -f12)
  [ -n "$signer" ] || signer=$(printf '%s\n' "$valid" | cut -d' ' -f3)
  if [ -z "$valid" ] || ! grep -q '^\[GNUPG:\] GOODSIG ' "$work/status"; then
    say "REFUSED $name: no good signature: $(tail -n 1 "$work/stderr")" >&2
    return 1
  fi
  if [ "$signer" != "$SITE_FINGERPRINT" ]; then
    say "REFUSED $name: signed by $signer, not by the site's key $SITE_FINGERPRINT; do not unpack it" >&2
    return 1
  fi
  say "good signature by $SITE_FINGERPRINT on $name"
}

status=0
for tarball in "$@"; do
  check_one "$tarball" || status=1
done
exit "$status"
