#!/usr/bin/env bash
# One idempotent setup for `npm start` and `npm test` on a fresh machine:
# system packages (apt), npm dependencies, and the project-local Python venv.
# Each step checks first and does nothing when its piece is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-system.sh

# npm dependencies: install when node_modules is missing or older than the lockfile.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[setup] npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

if [ -f scripts/setup-python.sh ]; then
  bash scripts/setup-python.sh
fi
