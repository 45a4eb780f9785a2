#!/usr/bin/env bash
# The test command: host tools the tests use for real (installed when missing), type check, lint, fast unit
# tests, tests of real host programs, then integration tests against a real Docker engine (started here when none answers) and the local test base
# image (made here when missing). Always ends with the line "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
results=.test-results
rm -rf "$results" && mkdir -p "$results"
status=0

echo "== host tools"
bash scripts/ensure-host-tools.sh || status=1

echo "== type check"
typecheck=0
npx tsc -p tsconfig.json --noEmit || typecheck=1

echo "== lint"
lint=0
npm run --silent lint || lint=1

echo "== unit tests"
npx vitest run --project unit --reporter=default --reporter=json --outputFile.json="$results/unit.json" || status=1

echo "== host tests (node, gcc, python3, gpg, tar on this machine)"
npx vitest run --project host --reporter=default --reporter=json --outputFile.json="$results/host.json" || status=1

echo "== engines (a second one, also on TLS; the main one over ssh), test image, registry"
if bash scripts/ensure-docker.sh && bash scripts/make-test-image.sh && bash scripts/ensure-second-engine.sh && bash scripts/ensure-registry.sh && bash scripts/ensure-sshd.sh; then
  echo "== integration tests"
  npx vitest run --project integration --reporter=default --reporter=json --outputFile.json="$results/integration.json" || status=1
else
  echo "no Docker engine or test image: the integration tests cannot run, and that is a failure" >&2
  status=1
fi

# A missing report counts as a failure; so does a failed type check.
node scripts/summarise-tests.mjs --extra-failed "$((typecheck + lint))" "$results/unit.json" "$results/host.json" "$results/integration.json"
[ "$status" -eq 0 ] && [ "$typecheck" -eq 0 ] && [ "$lint" -eq 0 ]
