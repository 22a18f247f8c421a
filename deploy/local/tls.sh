#!/usr/bin/env bash
# Local TLS material for the secured servers (Kafka SASL_SSL, the collector's TLS receivers), made with
# openssl on this machine. For development, tests and CI only: the keys are not protected.
#
# usage: deploy/local/tls.sh DIR     make (once) and print DIR
#
# DIR gets:
#   ca.pem, ca.key             a local certificate authority (clients trust ca.pem)
#   server.pem, server.key     a server certificate for 127.0.0.1 and localhost, signed by that CA
#   server.p12                 the same key and chain as a PKCS12 keystore (Kafka), password in store.pass
#   other-ca.pem               a second, unrelated CA: a client that trusts only it must refuse the server
# Everything is remade when a file is missing or the server certificate expires within a day.
set -euo pipefail

die() { printf 'tls.sh: error: %s\n' "$*" >&2; exit 1; }
[[ $# -eq 1 ]] || die "usage: $0 DIR"
command -v openssl >/dev/null 2>&1 || die "openssl not found"
DIR=$1
mkdir -p "$DIR"
cd "$DIR"

complete() {
  local f
  for f in ca.pem ca.key server.pem server.key server.p12 store.pass other-ca.pem; do [[ -s $f ]] || return 1; done
  openssl x509 -checkend 86400 -noout -in server.pem >/dev/null 2>&1
}

if ! complete; then
  tmp=$(mktemp -d "$DIR/.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  q() { openssl "$@" >/dev/null 2>>"$tmp/openssl.log" || { cat "$tmp/openssl.log" >&2; die "openssl $1 failed"; }; }
  q req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=emitter local CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem"
  q req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=an unrelated CA" \
    -addext "basicConstraints=critical,CA:TRUE" -keyout "$tmp/other-ca.key" -out "$tmp/other-ca.pem"
  q req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$tmp/server.key" -out "$tmp/server.csr"
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth,clientAuth" \
    "keyUsage=critical,digitalSignature,keyEncipherment" >"$tmp/ext.cnf"
  q x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial -days 825 \
    -extfile "$tmp/ext.cnf" -out "$tmp/server.pem"
  openssl rand -hex 16 >"$tmp/store.pass"
  q pkcs12 -export -in "$tmp/server.pem" -inkey "$tmp/server.key" -certfile "$tmp/ca.pem" -name server \
    -passout "file:$tmp/store.pass" -out "$tmp/server.p12"
  chmod 600 "$tmp"/*.key "$tmp/store.pass" "$tmp/server.p12"
  for f in ca.pem ca.key server.pem server.key server.p12 store.pass other-ca.pem; do mv "$tmp/$f" "$f"; done
fi
pwd
