#!/usr/bin/env bash
# packages.sh - what cyrus.sh and courier.sh need, without removing Dovecot.
#
# cyrus-imapd, courier-imap and dovecot-imapd all provide and conflict on
# imap-server: installing either server package would remove Dovecot.  So
# only their other packages are installed (CYRUS_DEPS, COURIER_DEPS below),
# with a /usr/sbin/policy-rc.d that exits 101 so that no service starts
# (made here only when there is none, and removed again), and the two
# server packages are fetched with `apt-get download` and unpacked with
# `dpkg-deb -x` into a tree of their own:
#
#   $MAILFS_SERVER_CACHE (/var/cache/mailfs-test)/
#     cyrus-imapd-VERSION/usr/lib/cyrus/bin/imapd, idled, ...
#     courier-imap-VERSION/usr/bin/imapd, usr/lib/courier/courier/imaplogin
#
# VERSION is the package's own; cyrus-imapd's equals cyrus-common's (it
# depends on exactly that one) and courier-imap's ends in "+" and
# courier-base's, so a tree that no longer matches the installed
# libraries is never used (lib.sh's cyrus_tree, courier_tree).  The trees
# are kept between runs, root's, mode 0755: every server user reads them.
#
# Idempotent: when every package is installed and both trees are there, a
# quick no-op.  Refuses (exit 1) when apt-get would remove a package.
# Needs root to install; prints what it does on stderr.
set -eu
. "$(dirname "$0")/lib.sh"

installed() {
	dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=
for p in $CYRUS_DEPS $COURIER_DEPS; do
	installed "$p" || missing="$missing $p"
done
if [ -z "$missing" ] && [ -n "$(cyrus_tree)" ] && [ -n "$(courier_tree)" ]; then
	exit 0
fi
[ "$(id -u)" = 0 ] || die "packages.sh: must run as root to install$missing and the server trees"
export DEBIAN_FRONTEND=noninteractive

# apt_install PKG...: apt-get install them, services kept from starting,
# unless that would remove any package (dovecot-imapd and postfix above all).
apt_install() {
	local sim removed made_policy=0 rc=0
	sim=$(apt-get -s install --no-install-recommends "$@" 2>&1) ||
		{ apt-get update >/dev/null 2>&1 || true; sim=$(apt-get -s install --no-install-recommends "$@" 2>&1); } ||
		die "apt-get cannot install $*: $(printf '%s\n' "$sim" | tail -n 3)"
	removed=$(printf '%s\n' "$sim" | sed -n 's/^Remv \([^ ]*\).*/\1/p' | tr '\n' ' ')
	[ -z "$removed" ] || die "installing $* would remove $removed; not done"
	log "installing $* (services kept from starting by policy-rc.d)"
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\n# tests/harness/packages.sh: no service starts while it installs\nexit 101\n' \
			>/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	apt-get install -y --no-install-recommends "$@" >&2 || rc=$?
	[ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
	[ $rc = 0 ] || die "apt-get install $* failed"
}

# shellcheck disable=SC2086 # lists of package names
[ -z "$missing" ] || apt_install $missing

# unpack PKG VERSION: apt-get download PKG=VERSION and dpkg-deb -x it
# into $SERVER_CACHE/PKG-VERSION (through a temporary name, so a tree that
# exists is complete).
unpack() {
	local pkg=$1 ver=$2 dir tmp deb
	dir=$SERVER_CACHE/$pkg-${ver//:/_}
	[ -d "$dir" ] && return 0
	mkdir -p "$SERVER_CACHE"
	chmod 755 "$SERVER_CACHE"
	tmp=$(mktemp -d "$SERVER_CACHE/.$pkg.XXXXXX")
	# apt downloads into it as _apt: let it in.
	chmod 755 "$tmp"
	getent passwd _apt >/dev/null && chown _apt "$tmp"
	if ! (cd "$tmp" && apt-get download "$pkg=$ver" >&2); then
		rm -rf "$tmp"
		log "apt-get download $pkg=$ver failed"
		return 1
	fi
	deb=$(ls "$tmp"/*.deb)
	mkdir "$tmp/tree"
	dpkg-deb -x "$deb" "$tmp/tree"
	chmod 755 "$tmp/tree"
	mv -T "$tmp/tree" "$dir"
	rm -rf "$tmp"
	log "unpacked $pkg $ver into $dir"
}

# courier_imap_version: the courier-imap in apt's lists built for the
# installed courier-base (its version ends in "+" and courier-base's).
courier_imap_version() {
	apt-cache madison courier-imap | awk -F'|' -v b="+$(pkg_version courier-base)" '
		{ gsub(/ /, "", $2) }
		substr($2, length($2) - length(b) + 1) == b { print $2; exit }'
}

# When the archive no longer has the server package built for the
# installed library packages (a security update since), those are
# upgraded first.
if [ -z "$(cyrus_tree)" ]; then
	if ! unpack cyrus-imapd "$(pkg_version cyrus-common)"; then
		apt_install cyrus-common
		unpack cyrus-imapd "$(pkg_version cyrus-common)" || die "cannot get cyrus-imapd"
	fi
fi
if [ -z "$(courier_tree)" ]; then
	ver=$(courier_imap_version)
	if [ -z "$ver" ] || ! unpack courier-imap "$ver"; then
		apt_install courier-base
		ver=$(courier_imap_version)
		[ -n "$ver" ] || die "no courier-imap for courier-base $(pkg_version courier-base) in apt's lists"
		unpack courier-imap "$ver" || die "cannot get courier-imap"
	fi
fi
[ -n "$(cyrus_tree)" ] && [ -n "$(courier_tree)" ] || die "server trees missing after unpacking"
for b in "$(cyrus_tree)$CYRUS_IMAPD" "$(courier_tree)$COURIER_IMAPD" "$(courier_tree)$COURIER_IMAPLOGIN"; do
	if ldd "$b" | grep -q 'not found'; then
		die "$b lacks libraries: $(ldd "$b" | grep 'not found' | tr '\n' ' ')"
	fi
done
installed dovecot-imapd || log "warning: dovecot-imapd is not installed"
