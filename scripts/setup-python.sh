#!/usr/bin/env bash
# The Python side of `npm start` / `npm test`: a project-local venv at .venv with
# JupyterLab 4 and plotly (whose JupyterLab extension renders plotly MIME output),
# installed with pip from the machine's local package index (no internet needed).
# Idempotent and fast when already done (one stamp check, no pip call). If pip
# fails, falls back to Debian's Jupyter (python3-notebook, Notebook 6) and says so;
# `llama-ts start` then runs Notebook 6 instead of JupyterLab.
set -euo pipefail
cd "$(dirname "$0")/.."

# LLAMA_TS_VENV / LLAMA_TS_PIP_INDEX override the venv folder and the package index (tests use them).
VENV="${LLAMA_TS_VENV:-.venv}"
STAMP="$VENV/.llama-ts-ready"
# What we want; bump WANT to force a reinstall on every machine.
WANT="jupyterlab>=4,<5 plotly>=5"
SYS_PY=/usr/bin/python3
[ -x "$SYS_PY" ] || SYS_PY="$(command -v python3)"

# JupyterLab's build tooling runs .js files with node (jupyter_builder/yarn.js). Inside this
# checkout node would take them for ES modules (our package.json says "type": "module"),
# so the venv gets its own package.json saying CommonJS.
mark_commonjs() { [ -f "$VENV/package.json" ] || printf '{ "type": "commonjs" }\n' > "$VENV/package.json"; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/jupyter-lab" ]; then
  mark_commonjs
  exit 0
fi

# Local indexes first (these machines have no internet); pip's own config may add more.
pip_args=(--disable-pip-version-check --no-input --quiet --retries 0 --timeout 20)
if [ -n "${LLAMA_TS_PIP_INDEX:-}" ]; then
  pip_args+=(--index-url "$LLAMA_TS_PIP_INDEX" --no-cache-dir)
  export PIP_CONFIG_FILE=/dev/null  # only the given index, not the machine's pip config
else
  for idx in /opt/pypi/simple /opt/pypi-more/simple; do
    if [ -d "$idx" ]; then
      if [ -z "${have_index:-}" ]; then pip_args+=(--index-url "file://$idx"); have_index=1
      else pip_args+=(--extra-index-url "file://$idx"); fi
    fi
  done
fi

fallback() {
  echo "[setup-python] $1" >&2
  echo "[setup-python] falling back to Debian's Jupyter (python3-notebook, Notebook 6)" >&2
  rm -f "$STAMP"
  if ! "$SYS_PY" -c "import notebook" 2>/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-notebook >&2 || {
      echo "[setup-python] could not install python3-notebook either; install JupyterLab by hand" >&2
      exit 1
    }
  fi
  exit 0
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup-python] creating $VENV" >&2
  "$SYS_PY" -m venv "$VENV" >&2 || fallback "python3 -m venv failed"
fi
mark_commonjs
echo "[setup-python] pip install $WANT into $VENV" >&2
log="$VENV/pip-install.log"
# shellcheck disable=SC2086
if ! "$VENV/bin/python" -m pip install "${pip_args[@]}" $WANT >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  fallback "pip install failed (full log: $log)"
fi
"$VENV/bin/jupyter-lab" --version >/dev/null 2>&1 || fallback "jupyter-lab does not run after install"
printf '%s' "$WANT" > "$STAMP"
echo "[setup-python] JupyterLab $("$VENV/bin/jupyter-lab" --version) ready in $VENV" >&2
