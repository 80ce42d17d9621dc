#!/usr/bin/env bash
# Start the DIRAC box: MariaDB, the OpenSearch stand-in, the DIRAC services (dips://localhost:91xx,
# bound to 127.0.0.1), the optimizer executors, the user and admin proxies ($BOX/client/proxy.pem,
# group cta_user; $BOX/client/admin-proxy.pem, group dirac_admin) and a JobAgent ("pilot", InProcess CE)
# that runs Waiting jobs (--no-pilot: without it; --pilot is accepted and is the default).
# Idempotent: components already running (by their PID file) are left alone; proxies are renewed
# only when they have less than a day left. PIDs go to $BOX/run/*.pid, logs to $BOX/logs/. Stop: stop.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/box-env.sh"
WITH_PILOT=1
for a in "$@"; do case "$a" in --pilot) WITH_PILOT=1 ;; --no-pilot) WITH_PILOT=0 ;;
  *) echo "usage: start.sh [--no-pilot]" >&2; exit 2 ;; esac; done
[ -x "$BOX_VENV/bin/dirac-service" ] || { echo "start.sh: no DIRAC in $BOX_VENV: run install.sh first" >&2; exit 1; }
[ -e "$BOX/.setup-done" ] || bash "$HERE/setup.sh"
mkdir -p "$BOX/logs" "$BOX/run"
t0=$(date +%s)
LOG="$BOX/logs"; RUN="$BOX/run"

wait_port() { # port timeout
  local i=0
  while ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; do
    i=$((i+1)); if [ $i -gt $(( $2 * 5 )) ]; then echo "timeout waiting for port $1" >&2; return 1; fi; sleep 0.2
  done
}
running() { box_pid_alive "$1"; }
spawn() { # name cmd...   (server environment, detached, pid recorded)
  local name="$1"; shift
  if running "$name"; then return 0; fi
  ( box_server_env; exec setsid "$@" >>"$LOG/$name.log" 2>&1 < /dev/null ) &
  echo $! > "$RUN/$name.pid"
}

# ---------------------------------------------------------------- MariaDB
if ! running mysqld; then
  ( exec setsid mariadbd --defaults-file="$BOX/mysql/my.cnf" >"$LOG/mysqld.out" 2>&1 < /dev/null ) &
  echo $! > "$RUN/mysqld.pid"
fi
wait_port "$BOX_MYSQL_PORT" 60
MYSQL=(mariadb --defaults-file="$BOX/mysql/my.cnf" -uroot)
if [ -e "$BOX/.setup-mysql-fresh" ]; then
  echo "==> creating databases"
  "${MYSQL[@]}" -e "ALTER USER 'root'@'localhost' IDENTIFIED BY '$BOX_DB_PASSWORD';
    CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '$BOX_DB_PASSWORD';
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
    CREATE USER IF NOT EXISTS 'Dirac'@'127.0.0.1' IDENTIFIED BY '$BOX_DB_PASSWORD';
    CREATE USER IF NOT EXISTS 'Dirac'@'localhost' IDENTIFIED BY '$BOX_DB_PASSWORD';
    FLUSH PRIVILEGES;"
  SRC="$("$BOX_VENV/bin/python" -c 'import DIRAC,os;print(os.path.dirname(DIRAC.__file__))')"
  for spec in Framework/ProxyDB WorkloadManagement/JobDB WorkloadManagement/JobLoggingDB \
              WorkloadManagement/TaskQueueDB WorkloadManagement/PilotAgentsDB WorkloadManagement/SandboxMetadataDB \
              DataManagement/FileCatalogDB RequestManagement/ReqDB ResourceStatus/ResourceStatusDB; do
    sys="${spec%/*}"; db="${spec#*/}"
    "${MYSQL[@]}" -p"$BOX_DB_PASSWORD" -e "CREATE DATABASE IF NOT EXISTS $db;
      GRANT ALL PRIVILEGES ON $db.* TO 'Dirac'@'127.0.0.1'; GRANT ALL PRIVILEGES ON $db.* TO 'Dirac'@'localhost';"
    sql="$SRC/${sys}System/DB/$db.sql"
    if [ -f "$sql" ] && grep -q "CREATE TABLE\|CREATE PROCEDURE" "$sql"; then
      "${MYSQL[@]}" -p"$BOX_DB_PASSWORD" "$db" < "$sql"
    fi
  done
  rm -f "$BOX/.setup-mysql-fresh"
fi
t1=$(date +%s); echo "==> MariaDB up ($((t1-t0)) s)"

# ---------------------------------------------------------------- OpenSearch stand-in
# DIRAC 9 keeps job parameters only in OpenSearch (not packaged for Debian/PyPI). By default run the
# minimal REST stand-in fake_opensearch.py on 127.0.0.1:9200; BOX_OPENSEARCH=none to run without
# (then getJobParameters/getJobOutputLFNs/JobAgent parameter reports fail with "Not connected").
if [ "${BOX_OPENSEARCH:-fake}" = fake ]; then
  spawn opensearch "$BOX_VENV/bin/python" "$HERE/fake_opensearch.py" --port 9200 --data "$BOX/opensearch.json"
  wait_port 9200 20
fi

# ---------------------------------------------------------------- DIRAC services
# The JobAgent backs off after each failed match (it sleeps PollingTime x (misses + 1) x 2 s), so
# after an idle spell a new job would wait minutes: poll every second (also on boxes set up before).
sed -i 's/^\(\s*PollingTime = \)5$/\11/' "$BOX/server/etc/Production.cfg"
spawn Configuration_Server dirac-service Configuration/Server
wait_port "$PORT_CS" 60
t2=$(date +%s); echo "==> Configuration/Server up ($((t2-t1)) s)"
if [ ! -e "$BOX/.dbs-initialised" ]; then
  ( box_server_env; python "$HERE/init_dbs.py" >"$LOG/init_dbs.log" 2>&1 ) || { tail -20 "$LOG/init_dbs.log"; exit 1; }
  touch "$BOX/.dbs-initialised"
fi
declare -A PORTS=(
  [Framework/ProxyManager]=$PORT_PROXY
  [WorkloadManagement/JobManager]=$PORT_JOBMANAGER
  [WorkloadManagement/JobMonitoring]=$PORT_JOBMON
  [WorkloadManagement/JobStateUpdate]=$PORT_JOBSTATE
  [WorkloadManagement/SandboxStore]=$PORT_SANDBOX
  [WorkloadManagement/Matcher]=$PORT_MATCHER
  [WorkloadManagement/OptimizationMind]=$PORT_OPTMIND
  [WorkloadManagement/WMSAdministrator]=$PORT_WMSADMIN
  [WorkloadManagement/PilotManager]=$PORT_PILOTMGR
  [DataManagement/FileCatalog]=$PORT_FC
  [DataManagement/StorageElement]=$PORT_SE
  [DataManagement/StorageElement2]=$PORT_SE2
  [RequestManagement/ReqManager]=$PORT_REQ
  [ResourceStatus/ResourceStatus]=$PORT_RSS
)
for comp in "${!PORTS[@]}"; do spawn "${comp/\//_}" dirac-service "$comp"; done
for comp in "${!PORTS[@]}"; do
  if ! wait_port "${PORTS[$comp]}" 120; then echo "--- $comp failed, log tail:"; tail -30 "$LOG/${comp/\//_}.log"; exit 1; fi
done
if [ ! -e "$BOX/.rss-synced" ]; then
  # copy sites, CEs and SEs from the CS into the RSS, all Active
  ( box_server_env; dirac-rss-sync --element all --defaultStatus Active >"$LOG/rss-sync.log" 2>&1 ) || { tail -20 "$LOG/rss-sync.log"; exit 1; }
  touch "$BOX/.rss-synced"
fi
spawn Optimizers dirac-executor WorkloadManagement/Optimizers
# DIRAC 9.1.9 never deletes an empty task queue: its 300 s DictCache is never purged. The Matcher
# looks at only 3 x 10 random TQs per request, so hundreds of empty TQs leave a Waiting job unmatched
# for up to 2 min. tq_janitor.py deletes each TQ that has been empty for 10 s (see its docstring).
spawn TQJanitor "$BOX_VENV/bin/python" "$HERE/tq_janitor.py"
t3=$(date +%s); echo "==> all services up ($((t3-t2)) s)"

# ---------------------------------------------------------------- user proxy
fresh() { [ -f "$1" ] && openssl x509 -checkend 86400 -noout -in "$1" >/dev/null 2>&1; }  # > 1 day left
(
  box_client_env
  : >"$LOG/proxy-init.log"
  if ! fresh "$BOX_USER_PROXY"; then
    dirac-proxy-init -g cta_user -v 48:00 >>"$LOG/proxy-init.log" 2>&1 || { cat "$LOG/proxy-init.log"; exit 1; }
  fi
  # a second proxy with JobAdministrator (forcing job states, e.g. stuck -> Failed, needs it in DIRAC >= 9.1.2x)
  if ! fresh "$BOX_ADMIN_PROXY"; then
    X509_USER_PROXY="$BOX_ADMIN_PROXY" dirac-proxy-init -g dirac_admin -v 48:00 >>"$LOG/proxy-init.log" 2>&1 \
      || { cat "$LOG/proxy-init.log"; exit 1; }
  fi
)
t4=$(date +%s); echo "==> proxies $BOX_USER_PROXY, $BOX_ADMIN_PROXY ($((t4-t3)) s)"

# ---------------------------------------------------------------- pilot (JobAgent + Pool CE)
# jobagent.py: DIRAC's JobAgent without its unbounded back-off when idle. The pilot runs
# $BOX_PILOT_SLOTS jobs at a time (a Pool CE, each job in an InProcess CE); boxes set up before
# the Pool CE get it here.
if ! grep -q "LocalCE = Pool" "$BOX/pilot/etc/dirac.cfg"; then
  sed -i "s|^\(\s*\)Site = $BOX_SITE$|&\n\1LocalCE = Pool\n\1NumberOfProcessors = $BOX_PILOT_SLOTS|" \
    "$BOX/pilot/etc/dirac.cfg"
fi
if [ "$WITH_PILOT" = 1 ] && ! running JobAgent; then
  mkdir -p "$BOX/pilot/shared" "$BOX/pilot/work"
  ( cd "$BOX/pilot/work"; box_pilot_env;
    exec setsid "$BOX_VENV/bin/python" "$HERE/jobagent.py" >>"$LOG/JobAgent.log" 2>&1 < /dev/null ) &
  echo $! > "$RUN/JobAgent.pid"
  echo "==> JobAgent started (log $LOG/JobAgent.log)"
fi
echo "==> DIRAC box up in $(( $(date +%s)-t0 )) s. Client env: source $HERE/client-env.sh"
