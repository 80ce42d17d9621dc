#!/usr/bin/env bash
# Headless Chromium for the page checks of the tests (tests/browser.py): Debian's chromium
# package, installed with apt-get when no chromium binary is on PATH. Idempotent, instant when
# present (~16 s to install). Not root and no browser: one line, exit 0 (the browser tests then
# skip; under CI=true they fail).
set -euo pipefail
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null 2>&1; then exit 0; fi
done
if [ "$EUID" != 0 ]; then
  echo "install-browser: not root and no chromium on PATH: the browser tests will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# the dpkg lock may be held: CI runs another apt-get at the same moment (dirac-box/up.sh)
apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends)
if ! "${apt[@]}" install chromium >/dev/null; then
  # the package lists may be missing or old; the lock on them has no timeout, hence the tries
  for try in 1 2 3 4 5 6; do
    "${apt[@]}" update >/dev/null && break
    [ "$try" = 6 ] && exit 1
    sleep 10
  done
  "${apt[@]}" install chromium >/dev/null
fi
chromium --version 2>/dev/null  # its launcher script complains on stderr about /dev/shm
