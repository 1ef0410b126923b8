#!/usr/bin/env bash
# TLS certificates for a fednuclei deployment's SuperLink: a self-signed certificate authority
# and a server certificate it signs.
#
#   deploy/make_certificates.sh OUT_DIR [SERVER_NAME_OR_IP ...]
#
# writes to OUT_DIR
#   ca.crt      the CA certificate: give it to every hospital (flower-supernode --root-certificates)
#               and to whoever submits runs (root-certificates in $FLWR_HOME/config.toml)
#   ca.key      the CA's private key: keep it offline, it signs server certificates
#   server.pem  the SuperLink's certificate        (flower-superlink --ssl-certfile)
#   server.key  the SuperLink's private key         (flower-superlink --ssl-keyfile)
#
# The server certificate is valid for every SERVER_NAME_OR_IP given (the address hospitals use
# in --superlink) and always for localhost and 127.0.0.1, where the SuperLink's own ServerApp
# process connects. DAYS (default 365) sets how long both certificates are valid. Existing
# files in OUT_DIR are overwritten. Needs only the openssl command.
set -euo pipefail

if [[ $# -lt 1 || $1 == -* ]]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
out=$1
shift
days=${DAYS:-365}

san=""
for name in localhost 127.0.0.1 "$@"; do
    if [[ $name =~ ^[0-9]+(\.[0-9]+){3}$ || $name == *:* ]]; then
        entry="IP:$name"
    else
        entry="DNS:$name"
    fi
    [[ ",$san," == *",$entry,"* ]] || san="${san:+$san,}$entry"
done
common_name=${1:-localhost}

# openssl, quiet unless it fails
quiet() {
    local log
    if ! log=$("$@" 2>&1); then
        printf '%s\n' "$log" >&2
        exit 1
    fi
}

mkdir -p "$out"
umask 077  # private keys readable by their owner only
ext=$(mktemp)
trap 'rm -f "$ext" "$out/server.csr" "$out/ca.srl"' EXIT
cat >"$ext" <<END
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $san
END

quiet openssl req -x509 -newkey rsa:4096 -sha256 -nodes -days "$days" \
    -subj "/O=fednuclei/CN=fednuclei deployment CA" -keyout "$out/ca.key" -out "$out/ca.crt"
quiet openssl req -new -newkey rsa:4096 -sha256 -nodes \
    -subj "/O=fednuclei/CN=$common_name" -keyout "$out/server.key" -out "$out/server.csr"
quiet openssl x509 -req -sha256 -days "$days" -in "$out/server.csr" \
    -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial -extfile "$ext" -out "$out/server.pem"
chmod 644 "$out/ca.crt" "$out/server.pem"

echo "wrote $out/ca.crt, ca.key, server.pem, server.key (server certificate for $san)"
