#!/usr/bin/env bash
# Build the protopipe payload environment and unpack the real sim_telarray demo files.
#
#   PGI_PAYLOAD_DIR (default ~/.cache/protopipe-grid-interface/payload)
#     protopipe-0.5.0/   Python 3.8 venv: protopipe 0.5.0 (PyPI "0.0.0"), ctapipe 0.11.0, pyirf 0.5.0
#     ctapipe-0.32.0/    Python 3.12 venv: ctapipe 0.32.0 with eventio, pyirf 0.15.0 (the ctapipe
#                        profile; versions pinned by scripts/ctapipe-constraints.txt)
#     data/              real sim_telarray test files from the eventio 1.11.5 sdist
#
# Plain `pip install protopipe` fails on 3.8: eventio<2 has no cp38 wheel and its sdist does not
# compile with Cython 3. We build it with cython<3 against numpy 1.22.4 (astropy 4.3 needs
# numpy<1.23), without build isolation and without the wheel cache (a cached eventio wheel built
# against a newer numpy fails at import). ctapipe >= 0.29 needs Python >= 3.12.
# Idempotent: a finished environment is reused.
set -euo pipefail
ROOT=${PGI_PAYLOAD_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/protopipe-grid-interface/payload}
# find_python VERSION VARIABLE: the value of $VARIABLE, else pyenv's VERSION.*, else pythonVERSION
find_python() {
  local found=${!2:-} candidate
  if [ -z "$found" ]; then
    for candidate in "$(pyenv root 2>/dev/null)"/versions/"$1".*/bin/python "python$1"; do
      if command -v "$candidate" >/dev/null 2>&1; then found=$candidate; break; fi
    done
  fi
  [ -n "$found" ] || { echo "install-payload: Python $1 not found (set $2=/path/to/python$1)" >&2; exit 2; }
  echo "$found"
}
PY38=$(find_python 3.8 PY38)
mkdir -p "$ROOT"
VENV=$ROOT/protopipe-0.5.0
if [ ! -f "$VENV/.complete" ]; then
  rm -rf "$VENV"
  "$PY38" -m venv "$VENV"
  B=$VENV/bin
  "$B/pip" install -q -U pip wheel "setuptools>=64,<70" "setuptools_scm>=7,<8" "cython<3" "numpy==1.22.4"
  "$B/pip" install -q --no-build-isolation --no-cache-dir eventio==1.11.5
  "$B/pip" install -q protopipe==0.0.0 "numpy==1.22.4"
  "$B/protopipe-TRAINING" --help >/dev/null
  touch "$VENV/.complete"
fi
PY312=$(find_python 3.12 PY312)
CTAPIPE=$ROOT/ctapipe-0.32.0
if [ ! -f "$CTAPIPE/.complete" ]; then
  rm -rf "$CTAPIPE"
  "$PY312" -m venv "$CTAPIPE"
  "$CTAPIPE/bin/pip" install -q --disable-pip-version-check \
    -c "$(dirname "$0")/ctapipe-constraints.txt" "ctapipe[eventio]==0.32.0" pyirf==0.15.0 2>&1 \
    | { grep -v "is ignored" || true; }
  "$CTAPIPE/bin/python" -c "import ctapipe.tools.process"  # a tool run would log provenance here
  touch "$CTAPIPE/.complete"
fi
DATA=$ROOT/data
if [ ! -f "$DATA/.complete" ]; then
  rm -rf "$DATA" "$ROOT/sdists"
  mkdir -p "$DATA" "$ROOT/sdists"
  "$VENV/bin/pip" download -q --no-deps --no-binary :all: --no-build-isolation eventio==1.11.5 -d "$ROOT/sdists"
  tar xzf "$ROOT/sdists/eventio-1.11.5.tar.gz" -C "$ROOT/sdists"
  cp "$ROOT"/sdists/eventio-1.11.5/tests/resources/*.simtel.* "$DATA/"
  rm -rf "$ROOT/sdists"
  touch "$DATA/.complete"
fi
echo "payload environment: $VENV"
echo "ctapipe environment: $CTAPIPE"
echo "demo data: $DATA"
