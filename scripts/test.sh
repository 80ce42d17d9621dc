#!/usr/bin/env bash
# Every test: the package and local-backend suite, then the DIRAC suite against a live DIRAC
# server on 127.0.0.1 (dirac-box/, brought up here if it is not running: ~2.5 min the first time).
#   bash scripts/test.sh            both suites
#   SKIP_DIRAC=1 bash scripts/test.sh   the first suite only
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pytest -m "not dirac"
if [ "${SKIP_DIRAC:-0}" = 1 ]; then exit 0; fi
bash dirac-box/up.sh --project
# shellcheck disable=SC1091
source dirac-box/client-env.sh
python -m pytest -m dirac tests/dirac
