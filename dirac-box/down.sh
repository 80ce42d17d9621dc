#!/usr/bin/env bash
# Stop the DIRAC box: only the processes it started itself (the PIDs in $BOX_ROOT/run/*.pid).
# Its data, certificates and venv stay, so `bash dirac-box/up.sh` brings it back in seconds.
# To throw the box away: `bash dirac-box/down.sh && rm -rf "${BOX_ROOT:-/tmp/dirac-box}"`.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$HERE/stop.sh"
