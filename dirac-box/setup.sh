#!/usr/bin/env bash
# One-time initialisation of the box (after install.sh): CA + host/user certs, bind shim, MariaDB
# datadir, DIRAC config files (the databases are filled by start.sh on its first run).
# Idempotent: re-running with an existing $BOX/.setup-done does nothing unless FORCE=1 (which stops the
# box and wipes certs, data, jobs and config, not the venv).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/box-env.sh"
if [ -e "$BOX/.setup-done" ] && [ "${FORCE:-0}" != 1 ]; then echo "setup already done"; exit 0; fi
bash "$HERE/stop.sh" >/dev/null 2>&1 || true
rm -rf "$BOX/.dbs-initialised" "$BOX/.rss-synced" "$BOX/opensearch.json" "$BOX_CERTS" "$BOX/mysql" "$BOX/server" "$BOX/client" "$BOX/pilot" "$BOX/storage" "$BOX/logs" "$BOX/run" "$BOX/bindshim"
mkdir -p "$BOX"/{logs,run,bindshim}
t0=$(date +%s)

# ---------------------------------------------------------------- bind shim
# DIRAC's DISET and Tornado servers bind to "" (all interfaces), hard-coded. This sitecustomize.py,
# put on PYTHONPATH of the server processes only, rewrites wildcard binds to loopback.
cat > "$BOX/bindshim/sitecustomize.py" <<'EOF'
import socket as _s
_orig_bind = _s.socket.bind
def _bind(self, address):
    if isinstance(address, tuple) and address and address[0] in ("", "0.0.0.0", "::"):
        # DIRAC DISET uses dual-stack AF_INET6 sockets: the v4-mapped loopback accepts 127.0.0.1 only
        lo = "::ffff:127.0.0.1" if self.family == _s.AF_INET6 else "127.0.0.1"
        address = (lo,) + tuple(address[1:])
    return _orig_bind(self, address)
_s.socket.bind = _bind
# DIRAC 9.1.9 (CTADIRAC 3.1.0's pin) evaluates SSL.Connection.serverPostConnectionCheck in its DISET
# server handshake (M2SSLTransport.handshake_multipleSteps); M2Crypto >= 0.46 removed that attribute,
# so every dips:// call fails with "Peer closed connection". Restore it as None (= no extra check,
# which is what DIRAC 9.1.22 does). M2Crypto 0.45.1, which still has it, segfaults with OpenSSL 3 here.
try:
    from M2Crypto.SSL.Connection import Connection as _C
    if not hasattr(_C, "serverPostConnectionCheck"):
        _C.serverPostConnectionCheck = None
except Exception:
    pass
EOF

# ---------------------------------------------------------------- certificates
echo "==> CA, host and user certificates"
C="$BOX_CERTS"; mkdir -p "$C"/{ca/newcerts,certificates,host,user}
touch "$C/ca/index.txt"; echo 1000 > "$C/ca/serial"
cat > "$C/ca/ca.cnf" <<EOF
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = $C/ca
new_certs_dir = \$dir/newcerts
database = \$dir/index.txt
serial = \$dir/serial
private_key = \$dir/ca.key.pem
certificate = \$dir/ca.cert.pem
default_md = sha256
default_days = 365
policy = policy_loose
copy_extensions = copy
unique_subject = no
[ policy_loose ]
countryName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
O = DIRAC Box
CN = DIRAC Box CA
[ v3_ca ]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, cRLSign, keyCertSign
[ usr_cert ]
basicConstraints = CA:FALSE
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
keyUsage = critical, nonRepudiation, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
[ server_cert ]
basicConstraints = CA:FALSE
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer:always
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
EOF
openssl genrsa -out "$C/ca/ca.key.pem" 2048 2>/dev/null
openssl req -config "$C/ca/ca.cnf" -key "$C/ca/ca.key.pem" -new -x509 -days 3650 -sha256 -extensions v3_ca -out "$C/ca/ca.cert.pem"
cp "$C/ca/ca.cert.pem" "$C/certificates/"
ln -sf ca.cert.pem "$C/certificates/$(openssl x509 -in "$C/ca/ca.cert.pem" -noout -hash).0"
# host
openssl genrsa -out "$C/host/hostkey.pem" 2048 2>/dev/null; chmod 400 "$C/host/hostkey.pem"
openssl req -new -key "$C/host/hostkey.pem" -subj "/C=ch/O=DIRAC/OU=DIRAC Box/CN=localhost" -out "$C/host/host.csr"
openssl ca -config "$C/ca/ca.cnf" -batch -extensions server_cert -days 365 -in "$C/host/host.csr" -out "$C/host/hostcert.pem" 2>/dev/null
# user
openssl genrsa -out "$C/user/userkey.pem" 2048 2>/dev/null; chmod 400 "$C/user/userkey.pem"
openssl req -new -key "$C/user/userkey.pem" -subj "/C=ch/O=DIRAC/OU=DIRAC Box/CN=$BOX_USER" -out "$C/user/user.csr"
openssl ca -config "$C/ca/ca.cnf" -batch -extensions usr_cert -days 365 -in "$C/user/user.csr" -out "$C/user/usercert.pem" 2>/dev/null
openssl verify -CApath "$C/certificates" "$C/host/hostcert.pem" "$C/user/usercert.pem"

# ---------------------------------------------------------------- DIRAC config
echo "==> DIRAC configuration"
"$BOX_VENV/bin/python" "$HERE/gen_config.py"

# ---------------------------------------------------------------- MariaDB
echo "==> MariaDB datadir"
mkdir -p "$BOX/mysql/data"
cat > "$BOX/mysql/my.cnf" <<EOF
[mysqld]
datadir = $BOX/mysql/data
socket = $BOX_MYSQL_SOCK
pid-file = $BOX/mysql/mysqld.pid
port = $BOX_MYSQL_PORT
bind-address = 127.0.0.1
user = root
log-error = $BOX/logs/mysqld.log
innodb_buffer_pool_size = 256M
innodb_log_file_size = 64M
max_connections = 500
skip-name-resolve
[client]
socket = $BOX_MYSQL_SOCK
port = $BOX_MYSQL_PORT
EOF
mariadb-install-db --defaults-file="$BOX/mysql/my.cnf" --auth-root-authentication-method=normal >"$BOX/logs/mysql-install.log" 2>&1
touch "$BOX/.setup-mysql-fresh"
touch "$BOX/.setup-done"
echo "==> setup done in $(( $(date +%s)-t0 )) s"
