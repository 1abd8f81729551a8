#!/usr/bin/env bash
# Set up and run the demo: two built-in AJP nodes behind an HTTPS balancer on
# https://localhost:8443/ (http://localhost:8080/ redirects there); the balancer manager on http://localhost:8081/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh runtime
exec .venv/bin/twistd -n lbproxy --demo "$@"
