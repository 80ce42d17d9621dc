#!/usr/bin/env bash
# The environment a DIRAC *client* process needs to talk to the box as diracuser@cta_user.
#
#   source dirac-box/client-env.sh        export it into the current shell
#   eval "$(bash dirac-box/client-env.sh)"  the same, from any shell
#   bash dirac-box/client-env.sh          print it (`export ...` / `unset ...` lines)
#   bash dirac-box/client-env.sh --json   print it as JSON (what tests/dirac/conftest.py reads)
#
# The variables are those of box_client_env in box-env.sh (the single definition):
#   PATH (box venv's bin first), DIRAC_ROOT_PATH=$BOX/client (DIRAC reads $BOX/client/etc/dirac.cfg),
#   X509_CERT_DIR, X509_USER_CERT, X509_USER_KEY, X509_USER_PROXY=$BOX/client/proxy.pem,
#   DIRAC_USE_M2CRYPTO=Yes, and DIRACSYSCONFIG unset;
# plus, for information: BOX_ROOT, BOX, BOX_VENV, BOX_VO, BOX_SE, BOX_USER, BOX_USER_PROXY and
# BOX_ADMIN_PROXY ($BOX/client/admin-proxy.pem: diracuser@dirac_admin, a JobAdministrator proxy:
# X509_USER_PROXY=$BOX_ADMIN_PROXY or proxyLocation=... where admin rights are needed).
# The DIRAC client lives in the box venv: $BOX_VENV/bin/python (Python 3.11).
_box_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$_box_here/box-env.sh"
unset _box_here
if [ "${BASH_SOURCE[0]}" != "$0" ]; then   # sourced
  box_client_env
  return 0
fi
set -euo pipefail
VARS=(DIRAC_ROOT_PATH X509_CERT_DIR X509_USER_CERT X509_USER_KEY X509_USER_PROXY DIRAC_USE_M2CRYPTO)
INFO=(BOX_ROOT BOX BOX_VENV BOX_VO BOX_SE BOX_USER BOX_USER_PROXY BOX_ADMIN_PROXY)
OLD_PATH="$PATH"
box_client_env
case "${1:-}" in
  "")
    printf 'export PATH=%q:"$PATH"\n' "$BOX_VENV/bin"
    for v in "${VARS[@]}" "${INFO[@]}"; do printf 'export %s=%q\n' "$v" "${!v}"; done
    echo "unset DIRACSYSCONFIG"
    ;;
  --json)
    args=()
    for v in "${VARS[@]}" "${INFO[@]}"; do args+=("$v=${!v}"); done
    PATH="$OLD_PATH" "${BOX_PYTHON_FOR_JSON:-python3}" - "$BOX_VENV/bin" "${args[@]}" <<'PY'
import json, sys
path_prepend, pairs = sys.argv[1], sys.argv[2:]
env = dict(p.split("=", 1) for p in pairs)
print(json.dumps({"path_prepend": path_prepend, "env": env, "unset": ["DIRACSYSCONFIG"],
                  "python": path_prepend + "/python"}, indent=1))
PY
    ;;
  *) echo "usage: client-env.sh [--json]   (or: source client-env.sh)" >&2; exit 2 ;;
esac
