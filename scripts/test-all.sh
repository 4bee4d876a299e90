#!/usr/bin/env bash
# The whole test suite (what `npm test` runs after setup and build): a strict
# type-check of everything (tests and benches included), then vitest for unit,
# parity, CLI, kernel-protocol, notebook and browser tests. Prints one closing
# line "tests: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
status=0
echo "[test] tsc --noEmit (strict, all sources)"
if ! node node_modules/typescript/bin/tsc --noEmit -p tsconfig.json; then
  echo "[test] type errors above"
  status=1
fi
report=test-artifacts/vitest.json
rm -f "$report" # never summarize a previous run's report
run_vitest() { npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"; }
if ! run_vitest "$@"; then
  status=1
  # No report means vitest itself stopped (a test worker process died): no rerun, it is a failure.
  [ -f "$report" ] || echo "[test] vitest stopped without a report (a test worker process died)"
fi
node scripts/test-summary.mjs "$report" || status=1
exit $status
