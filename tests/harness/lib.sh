# lib.sh - shared settings for the private test Dovecot.  Source it (bash).
#
# Everything lives in one state directory, $MAILFS_TEST_DIR (default
# tests/tmp).  Layout:
#
#   tls/ca.pem, ca.key         test CA (made at test time by certs.sh)
#   tls/server.pem, .key       server cert for localhost / 127.0.0.1
#   tls/other-ca.pem           a CA that signed nothing (untrusted-cert tests)
#   alice.pw, bob.pw           the users' passwords (random, one line, 0600)
#   dovecot/dovecot.conf       generated config (see start.sh)
#   dovecot/users              passwd-file passdb
#   dovecot/run/               base_dir (master.pid, sockets)
#   dovecot/state/             state_dir
#   dovecot/lmtp               LMTP socket (mode 0666)
#   dovecot/dovecot.log        all Dovecot logging
#   home/<user>/Maildir        mail, owned by $MAIL_USER, LAYOUT=fs
#   harness.env, harness.json  what tests need to know (ports, paths)
#
# Environment knobs: MAILFS_TEST_DIR, IMAPS_PORT (10993), IMAP_PORT (10143),
# MAILFS_MAIL_USER (mailfstest), DOVECOT_PLAIN_CAPS=1 (announce only
# "IMAP4rev1 LITERAL+ IDLE" after login, to exercise fallbacks).

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HARNESS_DIR/../.." && pwd)

MAILFS_TEST_DIR=${MAILFS_TEST_DIR:-$REPO_ROOT/tests/tmp}
mkdir -p "$MAILFS_TEST_DIR"
MAILFS_TEST_DIR=$(cd "$MAILFS_TEST_DIR" && pwd)
export MAILFS_TEST_DIR

IMAPS_PORT=${IMAPS_PORT:-10993}
IMAP_PORT=${IMAP_PORT:-10143}
MAIL_USER=${MAILFS_MAIL_USER:-mailfstest}
DOVECOT_PLAIN_CAPS=${DOVECOT_PLAIN_CAPS:-0}

TLS_DIR=$MAILFS_TEST_DIR/tls
DC_DIR=$MAILFS_TEST_DIR/dovecot
DC_CONF=$DC_DIR/dovecot.conf
DC_BASE=$DC_DIR/run
DC_LOG=$DC_DIR/dovecot.log
DC_LMTP=$DC_DIR/lmtp
HOME_ROOT=$MAILFS_TEST_DIR/home
TEST_USERS="alice bob"

log() { printf '%s\n' "harness: $*" >&2; }
die() { printf '%s\n' "harness: $*" >&2; exit 1; }

# PID of the master this state dir started, or nothing.
dovecot_pid() {
	local pid
	[ -r "$DC_BASE/master.pid" ] || return 0
	pid=$(cat "$DC_BASE/master.pid" 2>/dev/null) || return 0
	case $pid in ''|*[!0-9]*) return 0 ;; esac
	# Alive, and really a dovecot master using our config?
	if [ -r "/proc/$pid/cmdline" ] &&
	   tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q dovecot; then
		printf '%s\n' "$pid"
	fi
}

# port_open PORT: true when something accepts on 127.0.0.1:PORT.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
