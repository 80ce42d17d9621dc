#!/usr/bin/env bash
# Stop every process the box started, and only those: the PIDs in $BOX/run/*.pid (each started with
# setsid, so PID == process group, which holds only that component and its children, e.g. a running
# job of the JobAgent). A PID file whose process is gone, or whose command line does not mention $BOX
# (a recycled PID), is just removed. MariaDB is stopped last.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/box-env.sh"
shopt -s nullglob
stop_pid() { # name
  local name="$1" f="$BOX/run/$1.pid" pid
  if box_pid_alive "$name"; then
    pid="$(cat "$f")"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}
n=0
for f in "$BOX"/run/*.pid; do
  name="$(basename "$f" .pid)"
  [ "$name" = mysqld ] && continue
  stop_pid "$name" & n=$((n+1))
done
wait
[ -f "$BOX/run/mysqld.pid" ] && { stop_pid mysqld; n=$((n+1)); }
echo "stopped ($n PID files under $BOX/run)"
