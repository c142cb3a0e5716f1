#!/usr/bin/env bash
# stop.sh [--dovecot-only] - stop the private test servers of
# $MAILFS_TEST_DIR (idempotent): the Postfix relay (postfix.sh stop), the
# second Dovecot of plain.sh if one runs, then the main Dovecot.
# --dovecot-only leaves Postfix running (start.sh uses it to restart
# Dovecot with another config; Postfix keeps its queue and retries LMTP
# until Dovecot is back) and plain.sh's instance serving.
#
# Signals only the master whose PID is in our base_dir's master.pid (its
# children exit with it), and Postfix's master by the PID in our own
# queue_directory; never touches any other Dovecot or Postfix on the machine.
set -eu
. "$(dirname "$0")/lib.sh"

pf_rc=0
case ${1:-} in
--dovecot-only) ;;
'')
	"$HARNESS_DIR/postfix.sh" stop || pf_rc=$?
	"$HARNESS_DIR/plain.sh" stop || pf_rc=$?
	;;
*) die "usage: stop.sh [--dovecot-only]" ;;
esac

pid=$(dovecot_pid)
if [ -z "$pid" ]; then
	exit $pf_rc
fi
# The ports this master listens on: IMAP, and submission if configured.
ports="$IMAPS_PORT $IMAP_PORT"
if grep -q '^protocols = .*submission' "$DC_CONF" 2>/dev/null; then
	ports="$ports $SUBMISSION_PORT $SUBMISSIONS_PORT"
fi
kill -TERM "$pid" 2>/dev/null || true
i=0
while kill -0 "$pid" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -eq 100 ]; then
		log "dovecot master $pid ignored SIGTERM, sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	[ $i -gt 150 ] && die "dovecot master $pid does not exit"
	sleep 0.1
done
# Children (login, imap, auth) exit when the master goes; wait for the
# listening sockets to close so a restart can bind again.
for p in $ports; do
	i=0
	while port_open "$p"; do
		i=$((i + 1))
		[ $i -gt 100 ] && die "port $p still open after dovecot exited"
		sleep 0.1
	done
done
rm -f "$DC_BASE/master.pid"
log "dovecot stopped (pid $pid)"
exit $pf_rc
