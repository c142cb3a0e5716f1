#!/usr/bin/env bash
# submission.sh stop | start | status - take the private Dovecot's
# submission service away and bring it back, for "server down" tests.
#
#   stop    restart Dovecot without its submission listeners
#           (DOVECOT_NO_SUBMISSION=1 start.sh): connecting to
#           $SUBMISSION_PORT / $SUBMISSIONS_PORT is refused.  IMAP and LMTP
#           come back at once on the same ports (connections open during the
#           restart are dropped, as in any server restart); Postfix keeps
#           running, so mail already accepted is still delivered.
#   start   restart Dovecot with them again (DOVECOT_NO_SUBMISSION=0).
#   status  "submission up" / "submission down"; exit 0 when up.
#
# Everything else stays as the last start.sh left it: ports, state dir and
# DOVECOT_PLAIN_CAPS are read from $MAILFS_TEST_DIR/harness.env.  Idempotent.
# For a reachable server that answers 4xx instead (relay unreachable:
# "421 4.4.0 ... Failed to connect to relay server"), stop the relay with
# postfix.sh stop / postfix.sh start.
set -eu
. "$(dirname "$0")/lib.sh"

stop_start_status submission.sh "$@"
[ "${SMTP:-0}" = 1 ] || die "this harness has no submission service (dovecot-submissiond/postfix not installed)"

if [ "$cmd" = status ]; then
	if [ -n "$(dovecot_pid)" ] && port_open "$SUBMISSION_PORT" && port_open "$SUBMISSIONS_PORT"; then
		echo "submission up (127.0.0.1:$SUBMISSION_PORT starttls, :$SUBMISSIONS_PORT tls)"
		exit 0
	fi
	echo "submission down"
	exit 1
fi

no_sub=1
[ "$cmd" = start ] && no_sub=0
env MAILFS_TEST_DIR="$MAILFS_TEST_DIR" IMAPS_PORT="$IMAPS_PORT" IMAP_PORT="$IMAP_PORT" \
	SUBMISSION_PORT="$SUBMISSION_PORT" SUBMISSIONS_PORT="$SUBMISSIONS_PORT" \
	POSTFIX_PORT="$POSTFIX_PORT" OAUTH2_PORT="$OAUTH2_PORT" \
	DOVECOT_PLAIN_CAPS="$DOVECOT_PLAIN_CAPS" \
	DOVECOT_NO_SUBMISSION=$no_sub "$HARNESS_DIR/start.sh"

for p in "$SUBMISSION_PORT" "$SUBMISSIONS_PORT"; do
	if [ $no_sub = 1 ]; then
		port_open "$p" && die "127.0.0.1:$p still accepts connections after submission.sh stop"
	else
		port_open "$p" || die "127.0.0.1:$p does not accept connections after submission.sh start"
	fi
done
port_open "$IMAPS_PORT" && port_open "$IMAP_PORT" || die "IMAP is not back after the restart"
log "submission $([ $no_sub = 1 ] && echo down || echo up)"
