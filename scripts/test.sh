#!/usr/bin/env bash
# The test command: host tools the tests use for real (installed when missing), type check, fast unit tests,
# then integration tests against a real Docker engine (started here when none answers) and the local test base
# image (made here when missing). Ends with the line "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
results=.test-results
rm -rf "$results" && mkdir -p "$results"

echo "== host tools"
bash scripts/ensure-host-tools.sh

echo "== type check"
npx tsc -p tsconfig.json --noEmit

echo "== unit tests"
unit=0
npx vitest run --project unit --reporter=default --reporter=json --outputFile.json="$results/unit.json" || unit=$?

echo "== engine and test image"
bash scripts/ensure-docker.sh
bash scripts/make-test-image.sh

echo "== integration tests"
integration=0
npx vitest run --project integration --reporter=default --reporter=json --outputFile.json="$results/integration.json" || integration=$?

node scripts/summarise-tests.mjs "$results/unit.json" "$results/integration.json"
[ "$unit" -eq 0 ] && [ "$integration" -eq 0 ]
