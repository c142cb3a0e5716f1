#!/usr/bin/env bash
# stop.sh - stop the private test Dovecot of $MAILFS_TEST_DIR (idempotent).
#
# Signals only the master whose PID is in our base_dir's master.pid (its
# children exit with it); never touches any other Dovecot on the machine.
set -eu
. "$(dirname "$0")/lib.sh"

pid=$(dovecot_pid)
if [ -z "$pid" ]; then
	exit 0
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
i=0
while port_open "$IMAPS_PORT" || port_open "$IMAP_PORT"; do
	i=$((i + 1))
	[ $i -gt 100 ] && die "ports $IMAPS_PORT/$IMAP_PORT still open after dovecot exited"
	sleep 0.1
done
rm -f "$DC_BASE/master.pid"
log "dovecot stopped (pid $pid)"
