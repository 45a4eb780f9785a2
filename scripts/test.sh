#!/usr/bin/env bash
# The test command: host tools the tests use for real (installed when missing), type check, lint, fast unit
# tests, tests of real host programs, then integration tests against a real Docker engine (started here when none answers) and the local test base
# image (made here when missing). Always ends with the line "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
results=.test-results
rm -rf "$results" && mkdir -p "$results"
status=0
# Files and the tests within them run in a shuffled order, so that a test depending on another's leftovers (a user,
# a file, an image) fails here rather than on someone else's machine. The seed is printed; give it again to repeat
# an order: STACK_FACTORY_TEST_SEED=N npm test.
# Without a seed given, the order follows the commit under test (another commit, another order; the same commit
# gives the same order again, so a failure seen in CI repeats on any machine), or is random outside a git checkout.
commit_seed() { local head; head=$(git rev-parse --short=7 HEAD 2>/dev/null) && echo $((16#$head)); }
seed=${STACK_FACTORY_TEST_SEED:-$(commit_seed || echo $(((RANDOM << 15) | RANDOM)))}
case $seed in '' | *[!0-9]*) echo "STACK_FACTORY_TEST_SEED must be a number, got '$seed'" >&2; exit 2 ;; esac
shuffle=(--sequence.shuffle --sequence.seed="$seed")
echo "== test order: shuffled with seed $seed (STACK_FACTORY_TEST_SEED=$seed npm test repeats it)"

echo "== host tools"
bash scripts/ensure-host-tools.sh || status=1

echo "== type check"
typecheck=0
npx tsc -p tsconfig.json --noEmit || typecheck=1

echo "== lint"
lint=0
npm run --silent lint || lint=1

echo "== unit tests"
npx vitest run --project unit "${shuffle[@]}" --reporter=default --reporter=json --outputFile.json="$results/unit.json" || status=1

echo "== host tests (node, gcc, python3, gpg, tar on this machine)"
npx vitest run --project host "${shuffle[@]}" --reporter=default --reporter=json --outputFile.json="$results/host.json" || status=1

echo "== engines (a second one, also on TLS; the main one over ssh), test image, registry"
if bash scripts/ensure-docker.sh && bash scripts/make-test-image.sh && bash scripts/ensure-second-engine.sh && bash scripts/ensure-registry.sh && bash scripts/ensure-sshd.sh; then
  echo "== integration tests"
  npx vitest run --project integration "${shuffle[@]}" --reporter=default --reporter=json --outputFile.json="$results/integration.json" || status=1
else
  echo "no Docker engine or test image: the integration tests cannot run, and that is a failure" >&2
  status=1
fi

echo "== test order was shuffled with seed $seed"
# A missing report counts as a failure; so does a failed type check.
node scripts/summarise-tests.mjs --extra-failed "$((typecheck + lint))" "$results/unit.json" "$results/host.json" "$results/integration.json"
[ "$status" -eq 0 ] && [ "$typecheck" -eq 0 ] && [ "$lint" -eq 0 ]
