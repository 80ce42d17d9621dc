# Common settings of the DIRAC box. Source it: `source dirac-box/box-env.sh`.
# Everything lives under $BOX_ROOT (default /tmp/dirac-box); $BOX is the same path (used by the scripts).
export BOX_ROOT="${BOX_ROOT:-/tmp/dirac-box}"
BOX_ROOT="${BOX_ROOT%/}"
export BOX="$BOX_ROOT"
export BOX_VENV="$BOX/venv"                 # the venv with DIRAC/CTADIRAC: server AND client
export BOX_VO="${BOX_VO:-vo.cta.in2p3.fr}"
export BOX_USER="${BOX_USER:-diracuser}"
export BOX_HOST="localhost"          # DIRAC URLs use this name; the host cert has SAN localhost + 127.0.0.1
export BOX_SITE="DIRAC.Box.local"
export BOX_SE="BOX-SE"
export BOX_PILOT_SLOTS="${BOX_PILOT_SLOTS:-2}"   # jobs the pilot runs at a time
export BOX_MYSQL_PORT="${BOX_MYSQL_PORT:-13306}"
export BOX_MYSQL_SOCK="$BOX/mysql/mysqld.sock"
export BOX_DB_PASSWORD="dirac-box-pw"
export BOX_USER_PROXY="$BOX/client/proxy.pem"         # diracuser@cta_user
export BOX_ADMIN_PROXY="$BOX/client/admin-proxy.pem"  # diracuser@dirac_admin (JobAdministrator)
# DIRAC DIPS ports (DIRAC defaults)
export PORT_CS=9135 PORT_PROXY=9152 PORT_JOBMANAGER=9132 PORT_JOBMON=9130 PORT_JOBSTATE=9136 \
       PORT_SANDBOX=9196 PORT_MATCHER=9170 PORT_OPTMIND=9175 PORT_FC=9197 PORT_SE=9148 PORT_SE2=9147 \
       PORT_REQ=9140 PORT_RSS=9160 PORT_WMSADMIN=9145 PORT_PILOTMGR=9171
export BOX_CERTS="$BOX/certs"

# Client-side environment (what the tests and our DIRAC backend use). client-env.sh prints these.
box_client_env() {
  export PATH="$BOX_VENV/bin:$PATH"
  export DIRAC_ROOT_PATH="$BOX/client"          # -> $BOX/client/etc/dirac.cfg
  export X509_CERT_DIR="$BOX_CERTS/certificates"
  export X509_USER_CERT="$BOX_CERTS/user/usercert.pem"
  export X509_USER_KEY="$BOX_CERTS/user/userkey.pem"
  export X509_USER_PROXY="$BOX_USER_PROXY"
  export DIRAC_USE_M2CRYPTO=Yes
  unset DIRACSYSCONFIG
}
# Server-side environment (services, executors)
box_server_env() {
  export PATH="$BOX_VENV/bin:$PATH"
  export DIRAC_ROOT_PATH="$BOX/server"
  export X509_CERT_DIR="$BOX_CERTS/certificates"
  # sitecustomize.py in bindshim/ rewrites bind("")/bind("0.0.0.0") to 127.0.0.1 (DIRAC hardcodes "")
  export PYTHONPATH="$BOX/bindshim${PYTHONPATH:+:$PYTHONPATH}"
  unset X509_USER_PROXY X509_USER_CERT X509_USER_KEY DIRACSYSCONFIG
}
# Pilot environment (the JobAgent and so the jobs it runs). The JobAgent only makes outgoing calls,
# so it needs no bind shim: no PYTHONPATH at all, so that job payloads (e.g. a Python 3.8 venv run by
# absolute path) start from a clean Python environment.
box_pilot_env() {
  export PATH="$BOX_VENV/bin:$PATH"
  export DIRAC_ROOT_PATH="$BOX/pilot"
  export X509_CERT_DIR="$BOX_CERTS/certificates"
  unset PYTHONPATH PYTHONHOME VIRTUAL_ENV X509_USER_PROXY X509_USER_CERT X509_USER_KEY DIRACSYSCONFIG
}
# box_pid_alive NAME: true if $BOX/run/NAME.pid names a live process that belongs to this box
# (its command line mentions $BOX), so that a recycled PID is never taken for ours.
box_pid_alive() {
  local f="$BOX/run/$1.pid" pid
  [ -f "$f" ] || return 1
  pid="$(cat "$f" 2>/dev/null)"; [ -n "$pid" ] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$BOX/"
}
