#!/usr/bin/env bash
# tests/lib/mkcerts.sh DIR NAME...: the keys and certificates of a TLS test
# or demo, made with the openssl CLI into DIR (created if missing):
#
#   ca.key ca.crt               the CA every good certificate is signed by
#   NAME.key NAME.crt           for each NAME: subjectAltName DNS:NAME, CN=NAME
#   rogue-ca.key rogue-ca.crt   a second, unrelated CA
#   rogue.key rogue.crt         DNS:rogue, signed by rogue-ca
#   expired.key expired.crt     DNS:expired, signed by ca, valid only in 2020
#   psk                         32 random bytes as 64 hex digits
#
# Keys are EC P-256; keys and psk are mode 0600, certificates 0644. Silent unless a step
# fails, then that step's output goes to stderr.
set -euo pipefail

if (($# < 1)); then
	echo "usage: $0 DIR [NAME...]" >&2
	exit 2
fi
dir=$1
shift
mkdir -p "$dir"
cd "$dir"
umask 077

# run CMD...: run quietly, show the output only when it fails.
run() {
	local out

	if ! out=$("$@" 2>&1); then
		printf 'mkcerts: %s failed:\n' "$*" >&2
		printf '%s\n' "$out" >&2
		return 1
	fi
}

# newkey FILE: an EC P-256 private key, mode 0600.
newkey() {
	run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
	chmod 600 "$1"
}

# newca NAME: a self-signed CA NAME.key, NAME.crt.
newca() {
	newkey "$1.key"
	run openssl req -new -x509 -key "$1.key" -out "$1.crt" -days 3650 \
		-subj "/CN=dm-repl test $1" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign
}

# leaf_ext NAME: the extensions of a peer certificate, either role.
leaf_ext() {
	printf '%s\n' \
		"subjectAltName=DNS:$1" \
		"basicConstraints=critical,CA:FALSE" \
		"keyUsage=critical,digitalSignature" \
		"extendedKeyUsage=serverAuth,clientAuth"
}

# newcert CA NAME: NAME.key and NAME.crt signed by CA, valid for 30 days.
newcert() {
	newkey "$2.key"
	run openssl req -new -key "$2.key" -subj "/CN=$2" -out "$2.csr"
	run openssl x509 -req -in "$2.csr" -CA "$1.crt" -CAkey "$1.key" \
		-set_serial "0x$(openssl rand -hex 8)" -days 30 \
		-extfile <(leaf_ext "$2") -out "$2.crt"
	rm -f "$2.csr"
}

# newexpired CA NAME: like newcert, but valid only in January 2020. "openssl
# x509" of OpenSSL 3.0 cannot set dates in the past; "openssl ca" can.
newexpired() {
	local db

	db=$(mktemp -d ca-db.XXXXXX)
	: >"$db/index.txt"
	openssl rand -hex 8 >"$db/serial"
	cat >"$db/ca.cnf" <<-EOF
		[ca]
		default_ca = expired_ca
		[expired_ca]
		database = $db/index.txt
		new_certs_dir = $db
		serial = $db/serial
		default_md = sha256
		policy = any_name
		unique_subject = no
		[any_name]
		commonName = supplied
	EOF
	newkey "$2.key"
	run openssl req -new -key "$2.key" -subj "/CN=$2" -out "$db/req.csr"
	run openssl ca -batch -config "$db/ca.cnf" -cert "$1.crt" -keyfile "$1.key" \
		-startdate 20200101000000Z -enddate 20200201000000Z \
		-extfile <(leaf_ext "$2") -notext -in "$db/req.csr" -out "$2.crt"
	rm -rf "$db"
}

newca ca
for name in "$@"; do
	newcert ca "$name"
done
newca rogue-ca
newcert rogue-ca rogue
newexpired ca expired
openssl rand -hex 32 >psk
chmod 600 psk
# Certificates are public.
chmod 644 ./*.crt
