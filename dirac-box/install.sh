#!/usr/bin/env bash
# Install the system packages and the box venv ($BOX_ROOT/venv) with CTADIRAC 3.1.0 -> DIRAC[server] 9.1.9.
#
# By default every Python package is pinned to dirac-box/requirements-lock.txt (BOX_LOCK=1): the set
# the box was verified with. BOX_LOCK=0 lifts the pins (then e.g.
# `BOX_LOCK=0 CTADIRAC_VERSION=none DIRAC_VERSION=9.1.22 bash install.sh` gives plain DIRAC 9.1.22).
# Idempotent: a finished install with the same lock/versions ($BOX/.install-done) is kept as it is.
# BOX_PYTHON (default python3) makes the venv; it must be Python >= 3.11 (our package needs it).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/box-env.sh"
BOX_LOCK="${BOX_LOCK:-1}"
CTADIRAC_VERSION="${CTADIRAC_VERSION:-3.1.0}"
DIRAC_VERSION="${DIRAC_VERSION:-}"
GFAL2_PYTHON_VERSION="${GFAL2_PYTHON_VERSION:-1.13.0}"
BOX_PYTHON="${BOX_PYTHON:-python3}"
mkdir -p "$BOX"
t0=$(date +%s)

# what this install is: re-run only when it changes
STAMP="lock=$BOX_LOCK ctadirac=$CTADIRAC_VERSION dirac=$DIRAC_VERSION gfal2=$GFAL2_PYTHON_VERSION"
[ "$BOX_LOCK" = 1 ] && STAMP="$STAMP lockfile=$(sha256sum "$HERE/requirements-lock.txt" | cut -c1-16)"
if [ -f "$BOX/.install-done" ] && [ "$(cat "$BOX/.install-done")" = "$STAMP" ] \
   && "$BOX_VENV/bin/python" -c "import DIRAC, gfal2, M2Crypto" 2>/dev/null; then
  echo "==> install: up to date ($STAMP)"
  exit 0
fi
rm -f "$BOX/.install-done"

echo "==> apt packages"
export DEBIAN_FRONTEND=noninteractive
APT_PKGS=(build-essential pkg-config cmake swig libssl-dev
          libboost-python-dev libgfal2-dev libglib2.0-dev gfal2-plugin-file
          libmariadb-dev libmariadb-dev-compat mariadb-server mariadb-client
          openssl procps)
missing=()
for p in "${APT_PKGS[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | cut -c1-2)" = ii ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "    installing: ${missing[*]}"
  apt-get update -qq
  # waits for the dpkg lock: scripts/install-browser.sh may install chromium meanwhile
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${APT_PKGS[@]}" >/dev/null
fi
# Debian's mariadb-server package may have started (and enabled) its own server on :3306; the box runs
# its own mariadbd on 127.0.0.1:$BOX_MYSQL_PORT with its own datadir and does not touch that one.
t1=$(date +%s); echo "    apt: $((t1-t0)) s"

echo "==> venv $BOX_VENV"
if ! "$BOX_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "install: $BOX_PYTHON is $("$BOX_PYTHON" -V 2>&1), need Python >= 3.11 (set BOX_PYTHON)" >&2; exit 2
fi
# --copies: DIRAC starts job wrappers with os.path.realpath(sys.executable); with a symlinked venv python
# that is the base interpreter, which does not see the venv (ModuleNotFoundError: DIRAC)
[ -x "$BOX_VENV/bin/python" ] || "$BOX_PYTHON" -m venv --copies "$BOX_VENV"
"$BOX_VENV/bin/python" -V

# Constraints for everything pip installs below, build-isolation environments included (pip passes
# PIP_CONSTRAINT on). gfal2-python is always pinned: newer ones may not build against Debian's gfal2.
printf 'gfal2-python==%s\n' "$GFAL2_PYTHON_VERSION" > "$BOX/constraints.txt"
if [ "$BOX_LOCK" = 1 ]; then
  grep -v -e '^gfal2-python' -e '^#' -e '^$' "$HERE/requirements-lock.txt" >> "$BOX/constraints.txt"
fi
export PIP_CONSTRAINT="$BOX/constraints.txt"
"$BOX_VENV/bin/pip" install -q -U pip wheel setuptools

echo "==> gfal2-python (built against Debian's gfal2 2.21 with a small compat header)"
# gfal2-python >= 1.12.2 calls gfal2 >= 2.22 functions that Debian 12's gfal2 2.21.3 lacks
# (gfalt_copy_get_bytes_transferred is spelled ..._transfered there; scitag/transfer_cleanup are absent).
cat > "$BOX/gfal2_compat.h" <<'EOF'
#include <gfal_api.h>
#include <transfer/gfal_transfer.h>
#define gfalt_copy_get_bytes_transferred gfalt_copy_get_bytes_transfered
static inline gint gfalt_set_transfer_cleanup(gfalt_params_t p, gboolean v, GError** e) { (void)p; (void)v; (void)e; return 0; }
static inline gboolean gfalt_get_transfer_cleanup(gfalt_params_t p, GError** e) { (void)p; (void)e; return TRUE; }
static inline gint gfalt_set_scitag(gfalt_params_t p, guint v, GError** e) { (void)p; (void)v; (void)e; return 0; }
static inline guint gfalt_get_scitag(gfalt_params_t p, GError** e) { (void)p; (void)e; return 0; }
EOF
# Its setup.py runs cmake, whose FindPython takes the first python3 on PATH: put the venv's first, so
# the module is built against it (seen: a pyenv shim python3 fails there, "No module named sysconfig",
# once the venv holds diracx, whose .pth registers an import hook). make -j: ~10 s less on 2 cores.
if ! "$BOX_VENV/bin/python" -c "import gfal2" 2>/dev/null; then
  PATH="$BOX_VENV/bin:$PATH" MAKEFLAGS="-j$(nproc)" \
  CXXFLAGS="-include $BOX/gfal2_compat.h -I/usr/include/gfal2 $(pkg-config --cflags glib-2.0)" \
    "$BOX_VENV/bin/pip" install -q "gfal2-python==$GFAL2_PYTHON_VERSION"
fi
t2=$(date +%s); echo "    gfal2-python: $((t2-t1)) s"

echo "==> DIRAC[server]"
if [ "$CTADIRAC_VERSION" != "none" ]; then
  "$BOX_VENV/bin/pip" install -q "CTADIRAC[server]==$CTADIRAC_VERSION" ${DIRAC_VERSION:+"DIRAC[server]==$DIRAC_VERSION"}
else
  "$BOX_VENV/bin/pip" install -q "DIRAC[server]${DIRAC_VERSION:+==$DIRAC_VERSION}"
fi
t3=$(date +%s); echo "    pip DIRAC: $((t3-t2)) s"

"$BOX_VENV/bin/python" -c "import DIRAC; print('DIRAC', DIRAC.version)"
"$BOX_VENV/bin/python" -c "import importlib.metadata as m; print('CTADIRAC', m.version('CTADIRAC'))" 2>/dev/null || true
echo "$STAMP" > "$BOX/.install-done"
echo "==> install done in $(( $(date +%s)-t0 )) s"
