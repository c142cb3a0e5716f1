#!/usr/bin/env bash
# dovecot.sh stop | start | status - take the private Dovecot away and bring
# it back, for "IMAP server down" tests.
#
#   stop    stop only Dovecot: SIGTERM to the master whose PID is in our own
#           base_dir (stop.sh --dovecot-only), then wait until its IMAPS,
#           IMAP (and submission) ports refuse connections.  Dovecot 2.3
#           leaves the imap-login/imap processes of open connections
#           serving them after its master has gone; those (found by this
#           state dir's instance_name in their process title, nothing
#           else) get SIGTERM, then SIGKILL, so every open IMAP connection
#           is closed as well: nothing answers any more.
#           Postfix keeps running and queues what arrives meanwhile (it
#           retries LMTP every few seconds once Dovecot is back).
#   start   start Dovecot again with the same config, on the same ports
#           (start.sh with the ports, DOVECOT_PLAIN_CAPS and
#           DOVECOT_NO_SUBMISSION read from $MAILFS_TEST_DIR/harness.env),
#           and wait until IMAPS and IMAP accept connections.  Mail,
#           passwords, certificates, UIDVALIDITYs and UIDs are untouched:
#           tests that follow find the server exactly as before.
#   status  "dovecot up" / "dovecot down"; exit 0 when up.
#
# Idempotent: stop when stopped and start when running do nothing.  Never
# signals any process but our own master (by PID).
set -eu
. "$(dirname "$0")/lib.sh"

stop_start_status dovecot.sh "$@"

# PIDs of processes left from our Dovecot instance: title
# "dovecot-<instance_name>/<service> ..." (or "<instance_name>/...").
instance_pids() {
	local d pid title
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		title=$({ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
		case $title in
		"dovecot-$1/"*|"$1/"*) printf '%s ' "$pid" ;;
		esac
	done
}

up() {
	[ -n "$(dovecot_pid)" ] && port_open "$IMAPS_PORT" && port_open "$IMAP_PORT"
}

case $cmd in
status)
	if up; then
		echo "dovecot up (pid $(dovecot_pid), imaps 127.0.0.1:$IMAPS_PORT, imap 127.0.0.1:$IMAP_PORT)"
		exit 0
	fi
	echo "dovecot down"
	exit 1
	;;
stop)
	inst=$(sed -n 's/^instance_name = //p' "$DC_CONF" 2>/dev/null | head -n 1)
	env MAILFS_TEST_DIR="$MAILFS_TEST_DIR" IMAPS_PORT="$IMAPS_PORT" IMAP_PORT="$IMAP_PORT" \
		SUBMISSION_PORT="$SUBMISSION_PORT" SUBMISSIONS_PORT="$SUBMISSIONS_PORT" \
		POSTFIX_PORT="$POSTFIX_PORT" OAUTH2_PORT="$OAUTH2_PORT" \
		"$HARNESS_DIR/stop.sh" --dovecot-only
	# The master is gone, but imap-login (TLS proxy) and imap processes of
	# connections opened before go on serving them: a client would still
	# read mail from a "stopped" server.  End them too - only processes
	# whose title names this state dir's instance.
	[ -n "$inst" ] && for sig in TERM TERM TERM KILL; do
		pids=$(instance_pids "$inst")
		[ -n "$pids" ] || break
		kill -"$sig" $pids 2>/dev/null || true
		sleep 0.3
	done
	[ -n "$inst" ] && [ -n "$(instance_pids "$inst")" ] &&
		die "processes of dovecot instance $inst still running: $(instance_pids "$inst")"
	for p in "$IMAPS_PORT" "$IMAP_PORT"; do
		port_open "$p" && die "127.0.0.1:$p still accepts connections after dovecot.sh stop"
	done
	log "dovecot down"
	;;
start)
	env MAILFS_TEST_DIR="$MAILFS_TEST_DIR" IMAPS_PORT="$IMAPS_PORT" IMAP_PORT="$IMAP_PORT" \
		SUBMISSION_PORT="$SUBMISSION_PORT" SUBMISSIONS_PORT="$SUBMISSIONS_PORT" \
		POSTFIX_PORT="$POSTFIX_PORT" OAUTH2_PORT="$OAUTH2_PORT" \
		DOVECOT_PLAIN_CAPS="$DOVECOT_PLAIN_CAPS" \
		DOVECOT_NO_SUBMISSION="${DOVECOT_NO_SUBMISSION:-0}" "$HARNESS_DIR/start.sh"
	up || die "dovecot is not accepting IMAP connections after dovecot.sh start"
	log "dovecot up (pid $(dovecot_pid))"
	;;
esac
