#!/usr/bin/env bash
# Bring the DIRAC box up from whatever state it is in: install (pinned) -> setup -> start (with the
# JobAgent pilot). Every step is idempotent, so on a running box this only checks and renews proxies.
#
#   bash dirac-box/up.sh [--no-pilot] [--project]
#     --no-pilot  do not start the JobAgent (jobs then stay Waiting)
#     --project   also `pip install -e <repo>[all]` into the box venv (under the same pins), so that
#                 our package and pytest run on the box venv's Python
#   BOX_ROOT      where the box lives (default /tmp/dirac-box)
# Prints one TIMING line and how to get the client environment. Two up.sh at once take turns
# (a lock under $BOX_ROOT): the second finds the box up and only checks it.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
source "$HERE/box-env.sh"
START_ARGS=(); PROJECT=0
for a in "$@"; do case "$a" in
  --no-pilot) START_ARGS+=(--no-pilot) ;;
  --project) PROJECT=1 ;;
  *) echo "usage: up.sh [--no-pilot] [--project]" >&2; exit 2 ;;
esac; done
if [ -z "${BOX_UP_LOCKED:-}" ]; then  # one up.sh at a time; the box's daemons never hold the lock
  mkdir -p "$BOX_ROOT"
  BOX_UP_LOCKED=1 exec flock -o "$BOX_ROOT/.up.lock" bash "${BASH_SOURCE[0]}" "$@"
fi
unset BOX_UP_LOCKED
t0=$(date +%s)
bash "$HERE/install.sh";                  t1=$(date +%s)
bash "$HERE/setup.sh";                    t2=$(date +%s)
bash "$HERE/start.sh" "${START_ARGS[@]}"; t3=$(date +%s)
# the project, once per checkout and pyproject.toml
MARK="$BOX/.project-$( (echo "$REPO"; cat "$REPO/pyproject.toml") | sha256sum | cut -c1-16)"
if [ "$PROJECT" = 1 ] && [ ! -f "$MARK" ]; then
  echo "==> pip install -e $REPO[all] into $BOX_VENV"
  PIP_CONSTRAINT="$BOX/constraints.txt" "$BOX_VENV/bin/pip" install -q -e "$REPO[all]"
  rm -f "$BOX"/.project-*; touch "$MARK"
fi
t4=$(date +%s)
echo "TIMING install=$((t1-t0))s setup=$((t2-t1))s start=$((t3-t2))s project=$((t4-t3))s total=$((t4-t0))s"
cat <<MSG
DIRAC box up under $BOX ($("$BOX_VENV/bin/python" -c 'import DIRAC,sys; print("DIRAC", DIRAC.version, "on Python", sys.version.split()[0])'))
  DIRAC client Python: $BOX_VENV/bin/python
  client environment:  source $HERE/client-env.sh     (or: eval "\$(bash $HERE/client-env.sh)")
  health check:        (source $HERE/client-env.sh; python $HERE/smoke_test.py --pilot)
  admin proxy:         $BOX_ADMIN_PROXY
  stop:                bash $HERE/down.sh
MSG
