#!/usr/bin/env bash
# The whole test suite (what `npm test` runs after setup and build): vitest for
# unit, parity, CLI, kernel-protocol, notebook and browser tests. Prints one
# closing line "tests: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
npx vitest run --reporter=default --reporter=json --outputFile.json=test-artifacts/vitest.json "$@"
status=$?
node scripts/test-summary.mjs test-artifacts/vitest.json || status=1
exit $status
