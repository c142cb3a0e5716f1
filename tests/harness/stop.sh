#!/usr/bin/env bash
# stop.sh [--dovecot-only | --purge] - stop the private test servers of
# $MAILFS_TEST_DIR (idempotent): the Postfix relay (postfix.sh stop), the
# second Dovecot of plain.sh if one runs, Cyrus and Courier (cyrus.sh and
# courier.sh stop), then the main Dovecot.  Their files (mail, queue, logs)
# stay in the server dir for the next start.sh.
# --dovecot-only leaves Postfix running (start.sh uses it to restart
# Dovecot with another config; Postfix keeps its queue and retries LMTP
# until Dovecot is back), plain.sh's instance, Cyrus and Courier serving.
# --purge stops everything, then removes the server dir and the symlinks
# to it (the state dir keeps its certificates and passwords).
#
# Signals only the master whose PID is in our base_dir's master.pid (its
# children exit with it), and Postfix's master by the PID in our own
# queue_directory; never touches any other Dovecot or Postfix on the machine
# (nor Cyrus or Courier: see their scripts).
set -eu
. "$(dirname "$0")/lib.sh"

pf_rc=0 purge=0
case ${1:-} in
--dovecot-only) ;;
''|--purge)
	[ "${1:-}" = --purge ] && purge=1
	"$HARNESS_DIR/postfix.sh" stop || pf_rc=$?
	"$HARNESS_DIR/plain.sh" stop || pf_rc=$?
	"$HARNESS_DIR/cyrus.sh" stop || pf_rc=$?
	"$HARNESS_DIR/courier.sh" stop || pf_rc=$?
	;;
*) die "usage: stop.sh [--dovecot-only | --purge]" ;;
esac

# --purge: only a server dir of our own (never the state dir of an older
# harness), once nothing runs from it.
purge() {
	local n
	[ $purge = 1 ] || return 0
	[ "$SRV" != "$MAILFS_TEST_DIR" ] && srv_ok "$SRV" || return 0
	for n in $SRV_LINKS server; do
		[ -L "$MAILFS_TEST_DIR/$n" ] && rm -f "$MAILFS_TEST_DIR/$n"
	done
	rm -rf "$SRV"
	log "removed $SRV"
}

pid=$(dovecot_pid)
if [ -z "$pid" ]; then
	[ $pf_rc = 0 ] && purge
	exit $pf_rc
fi
# The ports this master listens on: IMAP, and submission if configured.
ports="$IMAPS_PORT $IMAP_PORT"
if grep -q '^protocols = .*submission' "$DC_CONF" 2>/dev/null; then
	ports="$ports $SUBMISSION_PORT $SUBMISSIONS_PORT"
fi
kill -TERM "$pid" 2>/dev/null || true
wait_exit "$pid" "dovecot master"
# Children (login, imap, auth) exit when the master goes; wait for the
# listening sockets to close so a restart can bind again.
for p in $ports; do
	wait_port_closed "$p" dovecot
done
rm -f "$DC_BASE/master.pid"
log "dovecot stopped (pid $pid)"
[ $pf_rc = 0 ] && purge
exit $pf_rc
