#!/usr/bin/env bash
# certs.sh - make the test CA and server certificate (idempotent).
#
# $MAILFS_TEST_DIR/tls/{ca.pem,ca.key,server.pem,server.key,other-ca.pem}.
# The server cert has SAN DNS:localhost, IP:127.0.0.1 and DNS:127.0.0.1
# (some clients ignore IP SANs).  other-ca.pem is a second CA that signed
# nothing, for "untrusted certificate" tests.  Certificates are remade when
# missing or when server.pem expires within a day.
set -eu
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || die "openssl not found"
mkdir -p "$TLS_DIR"
chmod 755 "$TLS_DIR"
cd "$TLS_DIR"

if [ -s server.pem ] && [ -s server.key ] && [ -s ca.pem ] && [ -s other-ca.pem ] &&
   openssl x509 -in server.pem -noout -checkend 86400 >/dev/null 2>&1; then
	exit 0
fi

umask 077
rm -f ca.* server.* other-ca.* ext.cnf
KEYOPT="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

openssl req -x509 $KEYOPT -keyout ca.key -out ca.pem -days 30 \
	-subj "/O=mailfs tests/CN=mailfs test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

openssl req -x509 $KEYOPT -keyout other-ca.key -out other-ca.pem -days 30 \
	-subj "/O=mailfs tests/CN=mailfs UNTRUSTED test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

cat >ext.cnf <<'EOF'
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,DNS:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
EOF
openssl req -new $KEYOPT -keyout server.key -out server.csr \
	-subj "/O=mailfs tests/CN=localhost" 2>/dev/null
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
	-out server.pem -days 30 -extfile ext.cnf 2>/dev/null
rm -f server.csr ca.srl

chmod 644 ca.pem other-ca.pem server.pem
chmod 600 ca.key other-ca.key server.key
openssl verify -CAfile ca.pem server.pem >/dev/null || die "fresh server cert does not verify"
log "made test CA and server certificate in $TLS_DIR"
