#!/usr/bin/env bash
# Compiles the benchmark (and the sources it imports) into .bench/ and runs it. Environment: see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p bench/tsconfig.json
exec node .bench/bench/pack.js "$@"
