#!/usr/bin/env bash
# courier.sh start [--fresh] | stop | status - a private Courier IMAP 5.0.
#
# Debian's courier-authdaemon (authdaemond, userdb) and courier-base
# (couriertcpd, couriertls) run the imaplogin and imapd that packages.sh
# unpacked from courier-imap (it cannot be installed beside Dovecot).
# Courier's auth library has compiled-in paths (/etc/courier/authdaemonrc,
# /etc/courier/userdb.dat, /run/courier/authdaemon/socket), so the whole
# instance runs in a mount namespace of its own (unshare -m --propagation
# private) in which $SRV/courier/etc is bound over /etc/courier and
# $SRV/courier/run over /run/courier: nothing of the system's Courier is
# read or changed, and nothing is mounted in the host's namespace.  A
# supervisor script (run.sh, the namespace's first process, PID in
# courier.pid) starts authdaemond and two couriertcpd and stops them on
# SIGTERM.  The namespace starts with a copy of every mount there is,
# also the FUSE mounts of tests running then (mailfs's, anyone's): a copy
# would keep that file system alive after its unmount in the host's
# namespace, so its daemon would never see the unmount and would not
# exit.  run.sh first detaches every FUSE mount in its own namespace, and
# start fails if one is left.
#
# 127.0.0.1 only: IMAPS on $COURIER_IMAPS_PORT (IMAPS_PORT - 100: 10893)
# and IMAP with STARTTLS on $COURIER_IMAP_PORT (IMAPS_PORT - 110: 10883),
# the test CA's server certificate; LOGIN only after STARTTLS
# (IMAP_TLS_REQUIRED=1).  Users alice and bob with Dovecot's passwords
# ($MAILFS_TEST_DIR/<user>.pw) in a userdb (SHA-512 crypt), Maildir++ in
# $SRV/courier/home/<user>/Maildir owned by $MAIL_USER.  Courier's own
# namespace: personal "INBOX." with "." as delimiter; no SPECIAL-USE: the
# trash is INBOX.Trash (made here), nothing else exists until created.
# Debian's imapd settings, except IMAP_EMPTYTRASH off (Debian's "Trash:7"
# deletes old Trash messages at every logout; the tests keep theirs) and
# IMAP_ENHANCEDIDLE=1 (IDLE tells new mail at once through gamin instead
# of polling every IMAP_IDLE_TIMEOUT).
#
# Log: the daemons' stderr, $SRV/courier/courier.log (logins, errors).
#
# start: idempotent; restarts when the generated config changed.  --fresh:
# stop, delete all mail, start.  stop: SIGTERM to the supervisor, then to
# whatever still runs in its mount namespace (open imapd sessions,
# gam_server), SIGKILL after 10 s; when the last process is gone, so are
# the namespace and its mounts.  status: exit 0 when running.
set -eu
. "$(dirname "$0")/lib.sh"

start_stop_status courier.sh "$@"

CO_NSFILE=$CO_DIR/courier.ns
CO_RUNSH=$CO_DIR/run.sh

# courier_pid: our supervisor (PID in courier.pid, alive, running our
# run.sh), or nothing.
courier_pid() {
	pid_in "$CO_PIDFILE" "$CO_RUNSH"
}

# ns_pids: the processes in our mount namespace (recorded at start) that
# are Courier's (its daemons, imapd sessions, gam_server), supervisor
# excluded.  Both tests: a namespace's number can be reused once it is gone.
ns_pids() {
	local ns d
	ns=$(cat "$CO_NSFILE" 2>/dev/null) || return 0
	[ -n "$ns" ] || return 0
	for d in /proc/[0-9]*; do
		[ "$(readlink "$d/ns/mnt" 2>/dev/null)" = "$ns" ] || continue
		case $({ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) in
		*"$CO_RUNSH"*) ;;
		*authdaemond* | *couriertcpd* | *couriertls* | *imaplogin* | *imapd* | *gam_server*)
			printf '%s ' "${d#/proc/}" ;;
		esac
	done
	return 0
}

co_stop() {
	local pid p stray
	pid=$(courier_pid)
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait_exit "$pid" "courier supervisor"
	fi
	stray=$(ns_pids)
	for p in $stray; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in $stray; do
		wait_exit "$p" "courier process"
	done
	if [ -n "$pid$stray" ]; then
		wait_port_closed "$COURIER_IMAPS_PORT" courier
		wait_port_closed "$COURIER_IMAP_PORT" courier
	fi
	rm -f "$CO_PIDFILE" "$CO_NSFILE"
	[ -n "$pid" ] && log "courier stopped (pid $pid)"
	return 0
}

up() {
	[ -n "$(courier_pid)" ] && port_open "$COURIER_IMAPS_PORT" && port_open "$COURIER_IMAP_PORT"
}

case $cmd in
status)
	imap_status courier "$(courier_pid)" "$COURIER_IMAPS_PORT" "$COURIER_IMAP_PORT"
	;;
stop)
	co_stop
	exit 0
	;;
esac

[ "$(id -u)" = 0 ] || die "must run as root (mount namespace, imaplogin)"
TREE=$(courier_tree)
[ -n "$TREE" ] || die "courier not unpacked: run tests/harness/packages.sh"
getent passwd courier >/dev/null || die "system user 'courier' missing (courier-base not installed?)"
command -v unshare >/dev/null || die "unshare missing (util-linux)"
[ -x /usr/sbin/makeuserdb ] || die "makeuserdb missing (courier-authlib-userdb not installed?)"
[ -d /etc/courier ] || die "/etc/courier missing (courier-base not installed?)"
[ "$SRV" != "$MAILFS_TEST_DIR" ] || die "no server dir: run tests/harness/start.sh"
[ -r "$TLS_DIR/server.pem" ] || die "no $TLS_DIR/server.pem: run tests/harness/start.sh"
for p in "$COURIER_IMAPS_PORT" "$COURIER_IMAP_PORT"; do
	[ "$p" -ge 1024 ] 2>/dev/null && [ "$p" -le 65535 ] ||
		die "bad port '$p' (COURIER_IMAPS_PORT, COURIER_IMAP_PORT)"
done
MAIL_UID=$(id -u "$MAIL_USER") || die "no user $MAIL_USER: run tests/harness/start.sh"
MAIL_GID=$(id -g "$MAIL_USER")
CO_GID=$(id -g courier)

mkdir -p "$CO_DIR"
chmod 755 "$CO_DIR"
new=$CO_DIR/.new
rm -rf "$new"
mkdir "$new"

cat >"$new/authdaemonrc" <<EOF
# Generated by tests/harness/courier.sh - private test instance, do not edit.
# Seen as /etc/courier/authdaemonrc inside courier.sh's mount namespace.
authmodulelist="authuserdb"
daemons=2
authdaemonvar=/run/courier/authdaemon
DEBUG_LOGIN=0
DEFAULTOPTIONS=""
LOGGEROPTS=""
EOF

# The environment of imaplogin and imapd (sourced by run.sh): Debian's
# /etc/courier/imapd and imapd-ssl, less what couriertcpd's command line
# says, with our changes.
cat >"$new/imapd.env" <<'EOF'
IMAP_CAPABILITY='IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE'
IMAP_CAPABILITY_TLS="$IMAP_CAPABILITY AUTH=PLAIN"
IMAP_KEYWORDS=1
IMAP_ACL=1
IMAP_PROXY=0
IMAP_IDLE_TIMEOUT=60
IMAP_MAILBOX_SANITY_CHECK=1
IMAP_DISABLETHREADSORT=0
IMAP_CHECK_ALL_FOLDERS=0
IMAP_OBSOLETE_CLIENT=0
IMAP_UMASK=022
IMAP_ULIMITD=131072
IMAP_USELOCKS=1
IMAP_SHAREDINDEXFILE=/etc/courier/shared/index
IMAP_ENHANCEDIDLE=1
IMAP_TRASHFOLDERNAME=Trash
IMAP_EMPTYTRASH=
IMAP_MOVE_EXPUNGE_TO_TRASH=0
SENDMAIL=/usr/sbin/sendmail
HEADERFROM=X-IMAP-Sender
MAILDIRPATH=Maildir
IMAP_STARTTLS=YES
IMAP_TLS_REQUIRED=1
COURIERTLS=/usr/bin/couriertls
TLS_PROTOCOL=TLSv1.2+
TLS_STARTTLS_PROTOCOL=TLSv1.2+
TLS_CERTFILE=/etc/courier/imapd.pem
TLS_DHPARAMS=/etc/courier/dhparams.pem
TLS_VERIFYPEER=NONE
PATH=/usr/bin:/usr/sbin:/bin:/sbin
EOF

# Same names and passwords as Dovecot's.  userdb wants a crypt hash; a
# new salt each time would change the file, so the hash is kept while
# the password is the same.
umask 077
for u in $TEST_USERS; do
	pw=$(head -n 1 "$MAILFS_TEST_DIR/$u.pw")
	old=$(sed -n "s/^$u	.*|systempw=\\([^|]*\\).*/\\1/p" "$CO_ETC/userdb" 2>/dev/null) || old=
	if [ -z "$old" ] || [ "$(printf '%s' "$pw" | openssl passwd -6 -salt "$(printf '%s' "$old" | cut -d'$' -f3)" -stdin)" != "$old" ]; then
		old=$(printf '%s' "$pw" | openssl passwd -6 -stdin)
	fi
	printf '%s\tuid=%s|gid=%s|home=%s|mail=%s|systempw=%s\n' "$u" "$MAIL_UID" "$MAIL_GID" \
		"$CO_HOME/$u" "$CO_HOME/$u/Maildir" "$old"
done >"$new/userdb"
umask 022

cat >"$new/run.sh" <<EOF
#!/bin/sh
# Generated by tests/harness/courier.sh: the first process of Courier's
# mount namespace.  Binds our files over the compiled-in paths, starts
# authdaemond and the two couriertcpd, stops them on SIGTERM.
set -u
echo \$\$ >"$CO_PIDFILE.new" && mv -f "$CO_PIDFILE.new" "$CO_PIDFILE"
readlink /proc/self/ns/mnt >"$CO_NSFILE"
# The copies of other file systems' FUSE mounts (see courier.sh), deepest
# first; private, so nothing of this reaches the host's namespace.
mount --make-rprivate / || exit 1
awk '{ i = 7; while (\$i != "-") i++; if (\$(i + 1) ~ /^fuse/) print \$5 }' /proc/self/mountinfo |
	sort -r | while read -r mp; do umount -l "\$(printf '%b' "\$mp")"; done
mount --bind "$CO_ETC" /etc/courier || exit 1
mount --bind "$CO_RUN" /run/courier || exit 1
# Their environment: only what imapd.env says (shell syntax), and ARGS.
# imapd_env [VAR=VALUE...] PROGRAM ARGS...
imapd_env() {
	exec env -i sh -c 'set -a; . "\$0"; exec env "\$@"' "$CO_DIR/imapd.env" "\$@"
}
env -i PATH=/usr/bin:/usr/sbin:/bin:/sbin /usr/lib/courier/courier-authlib/authdaemond &
auth=\$!
i=0
until [ -S /run/courier/authdaemon/socket ]; do
	i=\$((i + 1))
	[ \$i -gt 100 ] && { echo "courier.sh: authdaemond made no socket" >&2; kill \$auth; exit 1; }
	sleep 0.1
done
imapd_env /usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs=40 -maxperip=40 \\
	-nodnslookup -noidentlookup $COURIER_IMAP_PORT \\
	"$TREE$COURIER_IMAPLOGIN" "$TREE$COURIER_IMAPD" Maildir &
plain=\$!
imapd_env IMAP_TLS=1 IMAP_STARTTLS=NO IMAP_TLS_REQUIRED=0 /usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs=40 -maxperip=40 \\
	-nodnslookup -noidentlookup $COURIER_IMAPS_PORT \\
	/usr/bin/couriertls -server -tcpd \\
	"$TREE$COURIER_IMAPLOGIN" "$TREE$COURIER_IMAPD" Maildir &
tls=\$!
trap 'kill -TERM \$plain \$tls \$auth 2>/dev/null; wait; exit 0' TERM INT
wait
EOF
chmod 755 "$new/run.sh"

same=1
for f in authdaemonrc imapd.env userdb run.sh; do
	case $f in
	authdaemonrc|userdb) cmp -s "$new/$f" "$CO_ETC/$f" || same=0 ;;
	*) cmp -s "$new/$f" "$CO_DIR/$f" || same=0 ;;
	esac
done
if [ $same = 1 ] && [ $fresh = 0 ] && up; then
	rm -rf "$new"
	log "courier already running (pid $(courier_pid))"
	exit 0
fi
co_stop

mkdir -p "$CO_ETC" "$CO_RUN/authdaemon" "$CO_HOME"
chown root:"$CO_GID" "$CO_ETC"
chmod 750 "$CO_ETC"
chown root:"$CO_GID" "$CO_RUN"
chmod 775 "$CO_RUN"
chown courier:"$CO_GID" "$CO_RUN/authdaemon"
chmod 750 "$CO_RUN/authdaemon"
chmod 755 "$CO_HOME"
for f in authdaemonrc userdb; do
	mv -f "$new/$f" "$CO_ETC/$f"
done
mv -f "$new/imapd.env" "$new/run.sh" "$CO_DIR/"
rmdir "$new"
chown root:"$CO_GID" "$CO_ETC/authdaemonrc"
chmod 640 "$CO_ETC/authdaemonrc"
chmod 600 "$CO_ETC/userdb"
makeuserdb -f "$CO_ETC/userdb" || die "makeuserdb failed"
# couriertls reads the key and certificate from one file, as user
# courier after STARTTLS.
cat "$TLS_DIR/server.key" "$TLS_DIR/server.pem" >"$CO_ETC/imapd.pem.new"
chown root:"$CO_GID" "$CO_ETC/imapd.pem.new"
chmod 640 "$CO_ETC/imapd.pem.new"
mv -f "$CO_ETC/imapd.pem.new" "$CO_ETC/imapd.pem"
if [ ! -s "$CO_ETC/dhparams.pem" ]; then
	if [ -s /etc/courier/dhparams.pem ]; then
		cp /etc/courier/dhparams.pem "$CO_ETC/dhparams.pem"
	else
		openssl dhparam -dsaparam -out "$CO_ETC/dhparams.pem" 2048 2>/dev/null ||
			die "openssl dhparam failed"
	fi
	chmod 644 "$CO_ETC/dhparams.pem"
fi
mkdir -p "$CO_ETC/shared"

for u in $TEST_USERS; do
	[ $fresh = 1 ] && rm -rf "${CO_HOME:?}/$u"
	if [ ! -d "$CO_HOME/$u/Maildir/cur" ]; then
		mkdir -p "$CO_HOME/$u"
		maildirmake.courier "$CO_HOME/$u/Maildir"
		maildirmake.courier -f Trash "$CO_HOME/$u/Maildir"
	fi
	chown -R "$MAIL_UID:$MAIL_GID" "$CO_HOME/$u"
	chmod 700 "$CO_HOME/$u"
done

for p in "$COURIER_IMAPS_PORT" "$COURIER_IMAP_PORT"; do
	port_open "$p" && die "port 127.0.0.1:$p is already in use by another process"
done
# The package makes /run/courier; the bind mount needs it.
[ -d /run/courier ] || mkdir -p /run/courier

: >>"$CO_LOG"
rm -f "$CO_PIDFILE" "$CO_NSFILE"
# setsid: its own session, away from our caller's terminal and pipes.
setsid unshare -m --propagation private "$CO_RUNSH" </dev/null >>"$CO_LOG" 2>&1 &
i=0
until up; do
	i=$((i + 1))
	if [ $i -gt 150 ] || { [ $i -gt 30 ] && [ -z "$(courier_pid)" ]; }; then
		tail -n 20 "$CO_LOG" >&2 || true
		co_stop || true
		die "courier did not open 127.0.0.1:$COURIER_IMAPS_PORT and :$COURIER_IMAP_PORT within 15 s"
	fi
	sleep 0.1
done
if awk '{ i = 7; while ($i != "-") i++; if ($(i + 1) ~ /^fuse/) n++ } END { exit !n }' \
	"/proc/$(courier_pid)/mountinfo" 2>/dev/null; then
	co_stop || true
	die "courier's mount namespace still holds FUSE mounts (run.sh did not detach them)"
fi
log "courier started (pid $(courier_pid)), imaps 127.0.0.1:$COURIER_IMAPS_PORT, imap+starttls 127.0.0.1:$COURIER_IMAP_PORT, log $CO_LOG"
