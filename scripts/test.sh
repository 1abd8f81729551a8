#!/usr/bin/env bash
# Run the whole test suite. Interop tests need Debian's tomcat10 package
# (apt-get install -y tomcat10 tomcat10-examples); without it they are skipped,
# unless LB_REQUIRE_TOMCAT=1, which makes a missing Tomcat a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
exec .venv/bin/python -m pytest "$@"
