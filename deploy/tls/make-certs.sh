#!/bin/sh
# make-certs.sh: the certificates of a weir cluster with TLS, made with openssl
# alone (docs/security.md walks through it; pkg/security/walkthrough_test.go
# runs it and handshakes with what it makes).
#
#   deploy/tls/make-certs.sh [options] OUTDIR NAME=IP [NAME=IP ...]
#
# One NAME=IP per VM: NAME is the VM's host name (the certificates' CN and a
# DNS SAN), IP its address (an IP SAN). Under OUTDIR it writes:
#
#   ca/internal-ca.key, ca/internal-ca.crt   the cluster's internal CA
#   ca/api-ca.key, ca/api-ca.crt             the job API's CA (server and clients)
#   NAME/internal.crt, internal.key, internal-ca.crt
#                                            every VM: security.ssl.internal.*
#   NAME/api.crt, api.key, api-ca.crt        JobManager VMs: security.ssl.api.*
#   clients/CLIENT/client.crt, client.key, api-ca.crt
#                                            every CLI user: security.ssl.api.*
#
# Options:
#   --jobmanager NAME  a VM that runs a JobManager: it gets the API server
#                      certificate (repeatable; default: the first VM)
#   --client NAME      a CLI user who gets an API client certificate
#                      (repeatable; default: operator)
#   --api-san SAN      another subjectAltName of the API server certificates,
#                      e.g. DNS:weir.example.com (repeatable)
#   --days N           validity of the leaf certificates in days (default 365;
#                      the CAs: 3650)
#   --force            make new CAs although OUTDIR/ca holds CA keys (a CA
#                      rotation); the previous CA certificate is kept as
#                      ca/*-ca.previous.crt and ca/*-ca-bundle.crt holds the new
#                      CA and the previous one; while that bundle exists, it
#                      is the CA file copied next to every certificate (delete
#                      it when the rotation is over)
#
# Without --force an existing CA key is never replaced: running the script
# again issues fresh leaf certificates from the same CAs (leaf rotation, or a
# VM added). Every file is written under a temporary name and renamed into
# place; keys are 0600, certificates 0644. Set OPENSSL to use another binary.
set -eu

OPENSSL=${OPENSSL:-openssl}
prog=$(basename "$0")

die() {
	echo "$prog: $*" >&2
	exit 1
}
usage() {
	echo "usage: $prog [--jobmanager NAME]... [--client NAME]... [--api-san SAN]... [--days N] [--force] OUTDIR NAME=IP [NAME=IP ...]" >&2
	exit 2
}

jobmanagers=
clients=
api_sans=
days=365
force=false
while [ $# -gt 0 ]; do
	case $1 in
	--jobmanager) [ $# -ge 2 ] || usage; jobmanagers="$jobmanagers $2"; shift 2 ;;
	--client) [ $# -ge 2 ] || usage; clients="$clients $2"; shift 2 ;;
	--api-san) [ $# -ge 2 ] || usage; api_sans="$api_sans,$2"; shift 2 ;;
	--days) [ $# -ge 2 ] || usage; days=$2; shift 2 ;;
	--force) force=true; shift ;;
	-h | --help) usage ;;
	--) shift; break ;;
	-*) echo "$prog: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -ge 2 ] || usage
out=$1
shift

case $days in
'' | *[!0-9]* | 0*) die "--days $days: want a positive number of days" ;;
esac

# A name becomes a directory, a CN and a DNS SAN: host-name characters only.
check_name() { # what name
	case $2 in
	'' | *[!A-Za-z0-9.-]* | [.-]*) die "$1 \"$2\": want a host name (letters, digits, '.', '-')" ;;
	ca | clients) die "$1 \"$2\": the name is taken by OUTDIR/$2" ;;
	esac
}

vms=
first_vm=
for arg in "$@"; do
	case $arg in
	*=*) name=${arg%%=*} ip=${arg#*=} ;;
	*) die "\"$arg\": want NAME=IP, e.g. vm1=10.0.0.11" ;;
	esac
	check_name VM "$name"
	case $ip in
	*:*) case $ip in *[!0-9A-Fa-f.:]*) ip= ;; esac ;;
	*.*.*.*) case $ip in *[!0-9.]* | *.*.*.*.* | *..* | .* | *.) ip= ;; esac ;;
	*) ip= ;;
	esac
	[ -n "$ip" ] || die "VM $name: \"${arg#*=}\" is not an IPv4 or IPv6 address"
	for v in $vms; do
		[ "${v%%=*}" != "$name" ] || die "VM $name is named twice"
	done
	vms="$vms $name=$ip"
	[ -n "$first_vm" ] || first_vm=$name
done
[ -n "$jobmanagers" ] || jobmanagers=$first_vm
for jm in $jobmanagers; do
	found=false
	for v in $vms; do
		[ "${v%%=*}" != "$jm" ] || found=true
	done
	$found || die "--jobmanager $jm: not one of the VMs given ($vms )"
done
[ -n "$clients" ] || clients=operator
for c in $clients; do
	check_name "--client" "$c"
done

command -v "$OPENSSL" >/dev/null 2>&1 || die "$OPENSSL not found: install openssl (Debian/Ubuntu: apt-get install openssl)"

umask 077
mkdir -p "$out/ca"
tmp="$out/.make-certs.$$"
mkdir "$tmp"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' HUP INT PIPE TERM

# One configuration for every openssl call: req needs a distinguished_name
# section, and the extensions differ per role. SAN comes from the environment
# because it differs per certificate.
cat >"$tmp/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
# Internal certificates are both server and client: every daemon dials and is dialled.
[internal]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $ENV::SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[api_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $ENV::SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[api_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
SAN=
export SAN

# install_file tmpfile dest mode: rename into place (atomic within OUTDIR).
install_file() {
	chmod "$3" "$1"
	mkdir -p "$(dirname "$2")"
	mv -f "$1" "$2"
}

describe() { # cert
	"$OPENSSL" x509 -in "$1" -noout -subject -nameopt RFC2253 | sed 's/^subject=//'
}

# new_key file: an unencrypted ECDSA P-256 key (weir reads no passphrases:
# the file's permissions protect it).
new_key() {
	"$OPENSSL" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null ||
		die "openssl genpkey failed for $1"
}

pubkey_of_cert() { "$OPENSSL" x509 -in "$1" -noout -pubkey; }
pubkey_of_key() { "$OPENSSL" pkey -in "$1" -pubout; }

# make_ca name cn: ca/NAME-ca.key and ca/NAME-ca.crt, new or reused.
make_ca() {
	key="$out/ca/$1-ca.key"
	crt="$out/ca/$1-ca.crt"
	if [ -e "$key" ] && ! $force; then
		[ -f "$crt" ] || die "$key exists but $crt does not: restore it, or make a new CA with --force"
		[ "$(pubkey_of_cert "$crt")" = "$(pubkey_of_key "$key")" ] ||
			die "$key does not match $crt: restore the pair, or make a new CA with --force"
		echo "reused  $crt: $(describe "$crt") (its key exists; --force makes a new CA)"
		return
	fi
	# A random suffix tells CAs apart in error messages and during a CA
	# rotation, when the old and the new one are trusted together.
	id=$("$OPENSSL" rand -hex 4)
	new_key "$tmp/ca.key"
	"$OPENSSL" req -new -x509 -config "$tmp/openssl.cnf" -extensions v3_ca -key "$tmp/ca.key" \
		-subj "/O=weir/CN=$2 $id" -days 3650 -sha256 -set_serial "0x$("$OPENSSL" rand -hex 16)" \
		-out "$tmp/ca.crt"
	if [ -e "$crt" ]; then
		cp "$crt" "$tmp/previous.crt"
		cat "$tmp/ca.crt" "$tmp/previous.crt" >"$tmp/bundle.crt"
		install_file "$tmp/previous.crt" "$out/ca/$1-ca.previous.crt" 0644
		install_file "$tmp/bundle.crt" "$out/ca/$1-ca-bundle.crt" 0644
		echo "kept    $out/ca/$1-ca.previous.crt: the CA replaced by --force"
		echo "created $out/ca/$1-ca-bundle.crt: the new CA, then the previous one"
	fi
	install_file "$tmp/ca.key" "$key" 0600
	install_file "$tmp/ca.crt" "$crt" 0644
	echo "created $key (0600): keep it off the cluster's machines"
	echo "created $crt: $(describe "$crt")"
}

# issue ca profile cn san dir base: DIR/BASE.key and DIR/BASE.crt signed by
# ca/CA-ca.key with the extensions of PROFILE.
issue() {
	new_key "$tmp/leaf.key"
	"$OPENSSL" req -new -config "$tmp/openssl.cnf" -key "$tmp/leaf.key" -subj "/O=weir/CN=$3" -out "$tmp/leaf.csr"
	SAN=$4 "$OPENSSL" x509 -req -in "$tmp/leaf.csr" -CA "$out/ca/$1-ca.crt" -CAkey "$out/ca/$1-ca.key" \
		-set_serial "0x$("$OPENSSL" rand -hex 16)" -days "$days" -sha256 \
		-extfile "$tmp/openssl.cnf" -extensions "$2" -out "$tmp/leaf.crt" 2>"$tmp/x509.err" ||
		{ cat "$tmp/x509.err" >&2; die "openssl x509 could not sign $5/$6.crt"; }
	# During a CA rotation (a bundle exists) the machines must trust both
	# CAs until every certificate is from the new one.
	trusted="$out/ca/$1-ca.crt" note=
	if [ -f "$out/ca/$1-ca-bundle.crt" ]; then
		trusted="$out/ca/$1-ca-bundle.crt" note=" (CA file: the new and the previous CA)"
	fi
	cp "$trusted" "$tmp/ca-copy.crt"
	install_file "$tmp/leaf.key" "$5/$6.key" 0600
	install_file "$tmp/leaf.crt" "$5/$6.crt" 0644
	install_file "$tmp/ca-copy.crt" "$5/$1-ca.crt" 0644
	echo "created $5/$6.crt, $6.key (0600), $1-ca.crt: $(describe "$5/$6.crt")${4:+ $4}$note"
}

make_ca internal "weir internal CA"
make_ca api "weir API CA"

for v in $vms; do
	name=${v%%=*} ip=${v#*=}
	issue internal internal "$name" "DNS:$name,IP:$ip" "$out/$name" internal
done
for jm in $jobmanagers; do
	for v in $vms; do
		[ "${v%%=*}" = "$jm" ] || continue
		issue api api_server "$jm" "DNS:$jm,IP:${v#*=}$api_sans" "$out/$jm" api
	done
done
for c in $clients; do
	issue api api_client "$c" "" "$out/clients/$c" client
done
echo "valid for $days days; copy each VM's directory to it (docs/security.md), keep $out/ca to yourself"
