#!/usr/bin/env bash
# `npm start`: set up (idempotent), build, then run JupyterLab + the workbench.
# LLAMA_TS_PREBUILT=1 skips setup and build (the end-to-end test sets it: npm
# test has just built dist/, and rebuilding under running tests would race).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${LLAMA_TS_PREBUILT:-}" != "1" ]; then
  bash scripts/setup.sh
  node scripts/build.mjs
fi
exec node bin/llama-ts.js start "$@"
