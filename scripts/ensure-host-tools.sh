#!/usr/bin/env bash
# Host tools the tests use for real: Lmod, patchelf, compressors, git, GnuPG, chromium.
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
