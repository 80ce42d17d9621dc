#!/usr/bin/env bash
# Every test: the package and local-backend suite, then the DIRAC suite against a live DIRAC
# server on 127.0.0.1 (dirac-box/, brought up meanwhile, in the background, if it is not
# running: ~3-4 min the first time; its log: $BOX_ROOT/logs/up.log). Chromium first, if missing.
#   bash scripts/test.sh                the two suites
#   SKIP_DIRAC=1 bash scripts/test.sh   the first suite only
set -euo pipefail
cd "$(dirname "$0")/.."
BOX_ROOT=${BOX_ROOT:-/tmp/dirac-box}
# headless Chromium for the report's page check; before the box starts its own apt-get
bash scripts/install-browser.sh
if [ "${SKIP_DIRAC:-0}" != 1 ]; then
  mkdir -p "$BOX_ROOT/logs"
  bash dirac-box/up.sh --project >"$BOX_ROOT/logs/up.log" 2>&1 &
  box=$!
fi
.venv/bin/pytest -m "not dirac and not demo" -n 2 --dist loadscope || { status=$?; [ -z "${box:-}" ] || wait "$box" || true; exit "$status"; }
if [ "${SKIP_DIRAC:-0}" = 1 ]; then exit 0; fi
wait "$box" || { echo "test: the DIRAC box did not come up:" >&2; tail -n 30 "$BOX_ROOT/logs/up.log" >&2; exit 1; }
grep -E "^(TIMING|DIRAC box up)" "$BOX_ROOT/logs/up.log" || true
# shellcheck disable=SC1091
source dirac-box/client-env.sh
# two at a time: most of a DIRAC test is waiting for the server or the pilot (two job slots)
python -m pytest -m "dirac and not demo" -n 2 --dist loadscope tests/dirac
