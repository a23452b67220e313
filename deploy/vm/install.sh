#!/bin/sh
# install.sh: puts weir on a VM, as docs/deployment.md describes: the
# binaries, the systemd units, the configuration, the user and the
# directories. Run it as root on each VM, again for an upgrade: it is
# idempotent, and replaces a binary by renaming a new file over it (a
# running daemon keeps its old one until it restarts).
#
#   deploy/vm/install.sh [options]
#
#   --bin DIR       where the built binaries are: jobmanager, taskmanager,
#                   weir (default: bin/ of this repository, `make build`)
#   --config FILE   install FILE as /etc/weir/config.yaml (root:weir 0640:
#                   it may hold s3.secret-key); a different previous one is
#                   kept as config.yaml.previous. Without it an existing
#                   config.yaml is left alone.
#   --prefix DIR    installation prefix of the binaries (default
#                   /usr/local): DIR/bin/weir, weir-jobmanager,
#                   weir-taskmanager; the units' ExecStart follows it
#   --destdir DIR   stage everything under DIR instead of / (also the
#                   DESTDIR environment variable), for packaging and tests:
#                   no user is created, nothing is chowned, systemd is not
#                   told
#
# What it installs (under DESTDIR):
#   PREFIX/bin/weir, weir-jobmanager, weir-taskmanager     0755
#   /etc/systemd/system/weir-jobmanager.service,
#   /etc/systemd/system/weir-taskmanager.service           0644
#   /etc/weir/                                             0750 root:weir
#   /etc/weir/config.yaml (with --config)                  0640 root:weir
#   /var/lib/weir/, /var/lib/weir/data/ (io.allowed-paths)  0750 weir:weir
# and the system user and group weir (no login, home /var/lib/weir). It
# enables and starts nothing: systemctl enable --now weir-jobmanager (and
# weir-taskmanager) on the VMs that run them.
set -eu
# The modes below are set explicitly; directories made on the way get 0755.
umask 022

prog=$(basename "$0")
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

die() {
	echo "$prog: $*" >&2
	exit 1
}
usage() {
	echo "usage: $prog [--bin DIR] [--config FILE] [--prefix DIR] [--destdir DIR]" >&2
	exit 2
}

bin=$repo/bin
config=
prefix=/usr/local
destdir=${DESTDIR:-}
while [ $# -gt 0 ]; do
	case $1 in
	--bin) [ $# -ge 2 ] || usage; bin=$2; shift 2 ;;
	--config) [ $# -ge 2 ] || usage; config=$2; shift 2 ;;
	--prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
	--destdir) [ $# -ge 2 ] || usage; destdir=$2; shift 2 ;;
	-h | --help) usage ;;
	*) echo "$prog: unknown argument $1" >&2; usage ;;
	esac
done

case $prefix in
/*) ;;
*) die "--prefix $prefix: want an absolute directory (it is written into the units' ExecStart)" ;;
esac
case $prefix in
*[!A-Za-z0-9/._-]*) die "--prefix $prefix: want letters, digits and / . _ - only (it is written into the units' ExecStart)" ;;
esac
prefix=${prefix%/}
if [ -n "$destdir" ]; then
	case $destdir in
	/*) ;;
	*) destdir=$(pwd)/$destdir ;;
	esac
	destdir=${destdir%/}
fi

# Check everything before changing anything: a half-installed VM is worse
# than none.
for b in jobmanager taskmanager weir; do
	[ -f "$bin/$b" ] && [ -x "$bin/$b" ] || die "$bin/$b: not an executable file (build with make build, or pass --bin DIR)"
done
for u in weir-jobmanager weir-taskmanager; do
	[ -f "$repo/deploy/systemd/$u.service" ] || die "$repo/deploy/systemd/$u.service is missing"
done
if [ -n "$config" ]; then
	[ -f "$config" ] && [ -r "$config" ] || die "--config $config: not a readable file"
fi

# Only a real installation as root creates the user and sets owners.
real=false
if [ -z "$destdir" ]; then
	[ "$(id -u)" = 0 ] || die "run as root (or stage into a directory with --destdir DIR)"
	real=true
fi

if $real; then
	if ! getent group weir >/dev/null; then
		groupadd --system weir
		echo "created group weir"
	fi
	if ! getent passwd weir >/dev/null; then
		nologin=/usr/sbin/nologin
		[ -x $nologin ] || nologin=/sbin/nologin
		useradd --system --gid weir --home-dir /var/lib/weir --no-create-home --shell $nologin weir
		echo "created user weir"
	fi
fi

# dir path mode owner: create or fix a directory.
dir() {
	mkdir -p "$destdir$1"
	chmod "$2" "$destdir$1"
	if $real; then chown "$3" "$1"; fi
}

# put src dest mode [owner]: install src as dest unless it is there with
# the same content; through a temporary file renamed into place, so that
# a reader (or a running binary) never sees half a file.
put() {
	target=$destdir$2
	if [ -f "$target" ] && cmp -s "$1" "$target"; then
		chmod "$3" "$target"
		if $real && [ -n "${4:-}" ]; then chown "$4" "$target"; fi
		echo "unchanged $2"
		return
	fi
	tmp=$(dirname "$target")/.$(basename "$target").install.$$
	cp "$1" "$tmp"
	chmod "$3" "$tmp"
	if $real && [ -n "${4:-}" ]; then chown "$4" "$tmp"; fi
	mv -f "$tmp" "$target"
	echo "installed $2"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' HUP INT TERM

mkdir -p "$destdir$prefix/bin"
put "$bin/weir" "$prefix/bin/weir" 0755
put "$bin/jobmanager" "$prefix/bin/weir-jobmanager" 0755
put "$bin/taskmanager" "$prefix/bin/weir-taskmanager" 0755

mkdir -p "$destdir/etc/systemd/system"
for u in weir-jobmanager weir-taskmanager; do
	sed "s#^ExecStart=/usr/local/bin/#ExecStart=$prefix/bin/#" "$repo/deploy/systemd/$u.service" >"$work/$u.service"
	put "$work/$u.service" "/etc/systemd/system/$u.service" 0644
done

dir /etc/weir 0750 root:weir
if [ -n "$config" ]; then
	old=$destdir/etc/weir/config.yaml
	if [ -f "$old" ] && ! cmp -s "$config" "$old"; then
		cp -p "$old" "$old.previous"
		echo "kept the previous /etc/weir/config.yaml as config.yaml.previous"
	fi
	put "$config" /etc/weir/config.yaml 0640 root:weir
elif [ ! -f "$destdir/etc/weir/config.yaml" ]; then
	echo "no /etc/weir/config.yaml: install one with --config FILE (deploy/vm/ has one per VM)"
fi
dir /var/lib/weir 0750 weir:weir
dir /var/lib/weir/data 0750 weir:weir

if $real && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload
	echo "systemd reloaded; start with: systemctl enable --now weir-jobmanager weir-taskmanager (those this VM runs)"
fi
