#!/usr/bin/env bash
# Compiles the benchmarks (and the sources they import) into .bench/ and runs one: bench/run.sh pack|relocate|schedule.
# Environment: see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-pack}
shift || true
npx tsc -p bench/tsconfig.json
exec node ".bench/bench/${name}.js" "$@"
