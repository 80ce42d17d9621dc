#!/usr/bin/env bash
# Install protopipe-grid-interface in .venv (Python >= 3.11) with all extras, then the protopipe
# payload environment and the real demo files (scripts/install-payload.sh). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "install: Python >= 3.11 not found (set PYTHON=...)" >&2; exit 2; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[all]' 2>&1 | { grep -v "is ignored" || true; }
.venv/bin/protopipe-grid --version
bash scripts/install-payload.sh
