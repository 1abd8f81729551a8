#!/usr/bin/env bash
# Make (or refresh) the project's virtual environment in .venv with twisted_lb
# installed in development mode. Idempotent.
#
#   bash scripts/venv.sh            twisted_lb and the test dependencies (test.sh)
#   bash scripts/venv.sh runtime    twisted_lb and what it needs to run, nothing
#                                   more (demo.sh); a .venv that already has the
#                                   test dependencies is used as it is
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
case "${1:-test}" in
    test) target='.[test]'; stamps=(.venv/.twisted_lb-installed) ;;
    runtime) target='.'; stamps=(.venv/.twisted_lb-installed .venv/.twisted_lb-runtime-installed) ;;
    *) echo "usage: $0 [test|runtime]" >&2; exit 2 ;;
esac
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
fresh() {
    [ -f "$1" ] && [ ! setup.cfg -nt "$1" ] && [ ! pyproject.toml -nt "$1" ]
}
for stamp in "${stamps[@]}"; do
    if fresh "$stamp"; then
        exit 0
    fi
done
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# compat mode: twistd finds plugins only on real sys.path directories.
.venv/bin/python -m pip install -q -e "$target" --config-settings editable_mode=compat
touch "${stamps[-1]}"
