#!/usr/bin/env bash
# The main job, offline: start an engine if needed, make the local base image, build examples/offline-demo.yaml
# for its targets into dist/, and verify the tarballs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-docker.sh
bash scripts/make-test-image.sh
npx stack-factory build examples/offline-demo.yaml --out dist --report dist/demo-report.json --report-html dist/demo-report.html
for t in dist/demo-1.0-*.tar.gz; do npx stack-factory verify "$t"; done
echo "run report: dist/demo-report.html (open it in a browser; it loads nothing from the network)"
