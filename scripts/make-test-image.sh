#!/usr/bin/env bash
# Makes the local test base image (Debian bookworm, minbase) without any registry:
# debootstrap into a temporary directory, then docker import. The image carries a stand-in clingo module
# (tests/fixtures/clingo-standin): Spack needs `import clingo` and Debian's archive has no python3-clingo.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-${STACK_FACTORY_TEST_IMAGE:-stack-factory-test/debian:bookworm}}
# Bumped whenever the image's content changes, so that an older image is remade.
revision=2
clingo_dir=usr/lib/python3/dist-packages/clingo

if [ "$(docker image inspect --format '{{index .Config.Labels "stack-factory.test-image"}}' "$name" 2>/dev/null)" = "$revision" ]; then
  echo "test image: $name (present)"
  exit 0
fi
if docker image inspect "$name" >/dev/null 2>&1; then
  # An image of an earlier revision: add what it lacks instead of a new debootstrap.
  cid=$(docker create "$name" /bin/true)
  trap 'docker rm -f "$cid" >/dev/null 2>&1 || true' EXIT
  tar -C tests/fixtures/clingo-standin -c --transform "s|^clingo|$clingo_dir|" clingo | docker cp - "$cid:/"
  docker commit --change "LABEL stack-factory.test-image=$revision" "$cid" "$name" >/dev/null
  echo "test image: $name (updated to revision $revision)"
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
mkdir -p "$dir/$clingo_dir"
cp tests/fixtures/clingo-standin/clingo/__init__.py "$dir/$clingo_dir/__init__.py"
tar -C "$dir" -c . | docker import --change "LABEL stack-factory.test-image=$revision" - "$name" >/dev/null
echo "test image: $name (imported)"
