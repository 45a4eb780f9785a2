#!/usr/bin/env bash
# Makes the local "older node" image for the relocation tests (Debian bullseye, minbase, glibc 2.31): a tree built
# on the bookworm test image (glibc 2.36) must be refused there. debootstrap into a temporary directory, then
# docker import; cached as an image, so it costs about 30 s once.
set -euo pipefail
name=${1:-${STACK_FACTORY_OLD_TEST_IMAGE:-stack-factory-test/debian:bullseye}}

if docker image inspect "$name" >/dev/null 2>&1; then
  echo "old test image: $name (present)"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq debootstrap >/dev/null
fi
dir=$(mktemp -d /tmp/stack-factory-rootfs-bullseye.XXXXXX)
trap 'rm -rf "$dir" "$dir.log"' EXIT
echo "old test image: debootstrap bullseye into $dir"
debootstrap --variant=minbase bullseye "$dir" >"$dir.log" 2>&1 || { tail -n 30 "$dir.log" >&2; exit 1; }
tar -C "$dir" -c . | docker import - "$name" >/dev/null
echo "old test image: $name (imported)"
