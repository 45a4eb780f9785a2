#!/usr/bin/env bash
# Host tools the tests use for real: Lmod, Environment Modules (Tcl), patchelf, compressors, git, GnuPG, chromium.
set -euo pipefail
need=()
command -v patchelf >/dev/null 2>&1 || need+=(patchelf)
[ -e /usr/share/lmod/lmod/libexec/lmod ] || need+=(lmod)
command -v pigz >/dev/null 2>&1 || need+=(pigz)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
command -v git >/dev/null 2>&1 || need+=(git)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
# gpg and gpgv: signed releases (keys init, tarball signatures, verify --keyring).
command -v gpg >/dev/null 2>&1 || need+=(gnupg)
command -v gpgv >/dev/null 2>&1 || need+=(gpgv)
# Environment Modules runs its modulecmd.tcl with tclsh8.6.
command -v tclsh8.6 >/dev/null 2>&1 || need+=(tcl8.6)
# chromium (headless): the HTML run report opened in a real browser (tests/host/html-report.test.ts).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# bash's headers for loadable builtins: install.sh's bash version check is tested under a bash reporting 4.2.
[ -e /usr/include/bash/builtins.h ] || need+=(bash-builtins)
# dash: the site's verify-tarball.sh is tested under a plain POSIX sh too.
command -v dash >/dev/null 2>&1 || need+=(dash)
if [ ${#need[@]} -gt 0 ]; then
  echo "ensure-host-tools: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Environment Modules (the Tcl module system), for the Tcl modulefiles. Debian's environment-modules package
# conflicts with lmod (installing one removes the other), so it is unpacked, not installed: the package's own
# modulecmd.tcl under $ENVIRONMENT_MODULES_ROOT, run with tclsh8.6 (tests/integration/helpers/module-systems.ts).
ENVIRONMENT_MODULES_ROOT=/opt/stack-factory-host-tools/environment-modules
if [ ! -f "$ENVIRONMENT_MODULES_ROOT/usr/lib/x86_64-linux-gnu/modulecmd.tcl" ] &&
  [ ! -f "$ENVIRONMENT_MODULES_ROOT/usr/lib/aarch64-linux-gnu/modulecmd.tcl" ]; then
  echo "ensure-host-tools: unpacking environment-modules into $ENVIRONMENT_MODULES_ROOT"
  download=$(mktemp -d)
  trap 'rm -rf -- "$download"' EXIT
  chmod 0755 "$download"
  if ! (cd "$download" && apt-get download environment-modules >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$download" && apt-get download environment-modules >/dev/null 2>&1)
  fi
  rm -rf -- "$ENVIRONMENT_MODULES_ROOT.new"
  mkdir -p -- "$ENVIRONMENT_MODULES_ROOT.new"
  dpkg-deb -x "$download"/environment-modules_*.deb "$ENVIRONMENT_MODULES_ROOT.new"
  rm -rf -- "$ENVIRONMENT_MODULES_ROOT"
  mv -T -- "$ENVIRONMENT_MODULES_ROOT.new" "$ENVIRONMENT_MODULES_ROOT"
fi
