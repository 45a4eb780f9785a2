#!/usr/bin/env bash
# Makes the local test base image (Debian bookworm, minbase) without any registry:
# debootstrap into a temporary directory, then docker import.
set -euo pipefail
name=${1:-${STACK_FACTORY_TEST_IMAGE:-stack-factory-test/debian:bookworm}}

if docker image inspect "$name" >/dev/null 2>&1; then
  echo "test image: $name (present)"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq debootstrap >/dev/null
fi
dir=$(mktemp -d /tmp/stack-factory-rootfs.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "test image: debootstrap bookworm into $dir"
debootstrap --variant=minbase bookworm "$dir" >"$dir.log" 2>&1 || { tail -n 30 "$dir.log" >&2; exit 1; }
rm -f "$dir.log"
tar -C "$dir" -c . | docker import - "$name" >/dev/null
echo "test image: $name (imported)"
