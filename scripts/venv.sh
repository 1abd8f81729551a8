#!/usr/bin/env bash
# Make (or refresh) the project's virtual environment in .venv with twisted_lb
# installed in development mode and the test dependencies. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.twisted_lb-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    # compat mode: twistd finds plugins only on real sys.path directories.
    .venv/bin/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
    touch "$stamp"
fi
