#!/usr/bin/env bash
# start.sh [--fresh] - start the private test Dovecot 2.3 (idempotent).
#
# Listens on 127.0.0.1 only: IMAPS (implicit TLS) on $IMAPS_PORT (10993) and
# IMAP with STARTTLS on $IMAP_PORT (10143), ssl = required.  Users alice and
# bob (passwd-file, passwords in $MAILFS_TEST_DIR/<user>.pw).  Mail is
# Maildir with LAYOUT=fs (one directory per folder, "/" as the hierarchy
# separator, so "Archive/2024" is home/alice/Maildir/Archive/2024 and names
# may contain "."), owned by the unprivileged $MAIL_USER (created if
# missing).  Special-use folders Sent, Trash, Drafts, Archive, Junk are
# auto-created and subscribed.  LMTP listens on $MAILFS_TEST_DIR/dovecot/lmtp.
#
# OAuth2: the same users may also log in with SASL XOAUTH2 or OAUTHBEARER;
# Dovecot's oauth2 passdb asks http://127.0.0.1:$OAUTH2_PORT/introspect
# (RFC 7662, POST) whether a token is good.  tests/harness/oauth2.py is
# that endpoint, run by the tests that need it; without it such logins
# fail and password logins are not affected.
#
# Sending mail: Dovecot's submission service on 127.0.0.1:$SUBMISSION_PORT
# (10587, STARTTLS) and $SUBMISSIONS_PORT (10465, implicit TLS), AUTH PLAIN
# and LOGIN with the same users, relaying over SMTP to a private Postfix on
# 127.0.0.1:$POSTFIX_PORT (10025; postfix.sh, started here after Dovecot),
# which delivers alice@mailfs.test and bob@mailfs.test through LMTP and
# refuses every other recipient at RCPT TO with a 5xx.
# DOVECOT_NO_SUBMISSION=1 leaves the submission listeners out ("submission
# server down"; see submission.sh).  Without dovecot-submissiond or postfix
# installed, a warning, and IMAP only (harness.json: "smtp": false).
#
# Then Cyrus IMAP 3.6 and Courier IMAP 5.0 (cyrus.sh, courier.sh: the same
# users and passwords, mail of their own, IMAPS on IMAPS_PORT - 200 and
# - 100, IMAP+STARTTLS on - 210 and - 110); without what packages.sh
# installs, a warning, and null for them in harness.json's "servers".
#
# Already running with the same config: nothing happens.  Running with a
# different config (e.g. DOVECOT_PLAIN_CAPS changed): restarted.
# --fresh: stop, delete all mail (Cyrus's and Courier's too) and Postfix's
# queue, start (deterministic UIDs for seeding).
set -eu
. "$(dirname "$0")/lib.sh"

fresh=0
case ${1:-} in
--fresh) fresh=1 ;;
'') ;;
*) die "usage: start.sh [--fresh]" ;;
esac

[ "$(id -u)" = 0 ] || die "must run as root (Dovecot master, mail user)"
DOVECOT=$(command -v dovecot || echo /usr/sbin/dovecot)
[ -x "$DOVECOT" ] || die "dovecot not installed (apt-get install dovecot-imapd dovecot-lmtpd)"
getent passwd dovecot >/dev/null || die "system user 'dovecot' missing (dovecot-core not installed?)"
getent passwd dovenull >/dev/null || die "system user 'dovenull' missing (dovecot-core not installed?)"

if ! id "$MAIL_USER" >/dev/null 2>&1; then
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin "$MAIL_USER"
	log "created system user $MAIL_USER"
fi
MAIL_UID=$(id -u "$MAIL_USER")
MAIL_GID=$(id -g "$MAIL_USER")

# srv_gc: remove server dirs that no state dir uses any more (their
# checkout was deleted or moved) and whose servers are not running.  Only
# root's mailfs-test.* below $SRV_PARENT whose owner file is over a minute
# old: a start.sh running right now may not have made its link yet.
srv_gc() {
	local d owner pid
	for d in "$SRV_PARENT"/mailfs-test.*; do
		[ -d "$d" ] && [ ! -L "$d" ] && [ "$(stat -c %u "$d")" = 0 ] || continue
		[ -f "$d/owner" ] && [ -n "$(find "$d/owner" -mmin +1)" ] || continue
		owner=$(head -n 1 "$d/owner")
		[ "$(readlink "$owner/server" 2>/dev/null)" = "$d" ] && continue
		[ -n "$(dovecot_pid "$d/dovecot/run")$(dovecot_pid "$d/dovecot-plain/run")" ] && continue
		pid_file_alive "$d/postfix/spool/pid/master.pid" && continue
		pid_file_alive "$d/cyrus/run/master.pid" && continue
		pid_file_alive "$d/courier/courier.pid" && continue
		rm -rf "$d"
		log "removed $d (server files of $owner, which no longer uses them)"
	done
}

# srv_reachable: every unprivileged server user can search $SRV, else say
# which directory above it is in the way.
srv_reachable() {
	local u d rest
	command -v setpriv >/dev/null || return 0
	as_user() {
		setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- "$@"
	}
	for u in dovecot dovenull postfix cyrus courier "$MAIL_USER"; do
		getent passwd "$u" >/dev/null || continue
		as_user test -x "$SRV/." && continue
		# The first directory from the top that it cannot search.
		d= rest=${SRV#/}/
		while [ -n "$rest" ]; do
			d=$d/${rest%%/*}
			rest=${rest#*/}
			as_user test -x "$d/." || break
		done
		die "user $u cannot reach $SRV: it cannot search $d (mode $(stat -c %a "$d")); chmod o+x it, or set MAILFS_SERVER_PARENT to a directory every user can reach"
	done
}

# The servers' files go to a server dir (see lib.sh): the first time for
# this state dir, or when its server dir is gone, make one.
if [ "$SRV" = "$MAILFS_TEST_DIR" ]; then
	legacy=
	for n in $SRV_LINKS; do
		[ -d "$MAILFS_TEST_DIR/$n" ] && [ ! -L "$MAILFS_TEST_DIR/$n" ] && legacy="$legacy $n"
	done
	if [ -n "$legacy" ]; then
		# An older harness kept them in the state dir: stop what it
		# started, drop its files.
		"$HARNESS_DIR/stop.sh"
		for n in $legacy; do
			rm -rf "${MAILFS_TEST_DIR:?}/$n"
		done
		log "removed the servers' files from $MAILFS_TEST_DIR (${legacy# }): they move to a server dir, so seed again"
	fi
	srv_gc
	mkdir -p "$SRV_PARENT"
	SRV=$(mktemp -d "$SRV_PARENT/mailfs-test.XXXXXXXX") || die "cannot make a server dir in $SRV_PARENT"
	chmod 755 "$SRV"
	printf '%s\n' "$MAILFS_TEST_DIR" >"$SRV/owner"
	chmod 644 "$SRV/owner"
	ln -sfn "$SRV" "$SRV_LINK.new"
	mv -Tf "$SRV_LINK.new" "$SRV_LINK"
	set_paths
	log "server dir $SRV (for $MAILFS_TEST_DIR)"
fi
mkdir -p "$DC_DIR" "$PL_DIR" "$PF_DIR" "$HOME_ROOT"
for n in $SRV_LINKS; do
	if [ ! "$(readlink "$MAILFS_TEST_DIR/$n")" = "$SRV/$n" ]; then
		[ -e "$MAILFS_TEST_DIR/$n" ] && [ ! -L "$MAILFS_TEST_DIR/$n" ] &&
			die "$MAILFS_TEST_DIR/$n is in the way of a symlink to $SRV/$n: remove it"
		ln -sfn "$SRV/$n" "$MAILFS_TEST_DIR/$n.new"
		mv -Tf "$MAILFS_TEST_DIR/$n.new" "$MAILFS_TEST_DIR/$n"
	fi
done
srv_reachable

# Unix socket paths are limited to 108 bytes; Dovecot's longest is about
# base_dir + 30.
[ ${#DC_BASE} -le 70 ] || die "state dir path too long for unix sockets: $DC_BASE (set MAILFS_TEST_DIR)"

# smtp: the whole sending path (submission + Postfix) is part of this
# harness; submission: Dovecot's submission listeners are on right now.
smtp=1
if ! submission_installed; then
	smtp=0
	log "warning: dovecot-submissiond or postfix not installed: no submission/SMTP (IMAP only)"
fi
if [ $smtp = 1 ]; then
	for p in "$SUBMISSION_PORT" "$SUBMISSIONS_PORT" "$POSTFIX_PORT"; do
		case $p in ''|*[!0-9]*) die "bad port '$p' (SUBMISSION_PORT, SUBMISSIONS_PORT, POSTFIX_PORT)" ;; esac
		[ "$p" -ge 1024 ] && [ "$p" -le 65535 ] ||
			die "port $p out of range: set SUBMISSION_PORT, SUBMISSIONS_PORT and POSTFIX_PORT"
	done
fi
submission=$smtp
[ "$DOVECOT_NO_SUBMISSION" = 1 ] && submission=0

"$HARNESS_DIR/certs.sh"

mkdir -p "$DC_DIR" "$DC_DIR/state" "$HOME_ROOT"
chmod 755 "$DC_DIR" "$HOME_ROOT"

# Passwords: random per state dir, so a leaked password is easy to grep for.
umask 077
users_new=$DC_DIR/users.new
: >"$users_new"
for u in $TEST_USERS; do
	if [ ! -s "$MAILFS_TEST_DIR/$u.pw" ]; then
		printf '%s-%s\n' "$u" "$(openssl rand -hex 12)" >"$MAILFS_TEST_DIR/$u.pw"
	fi
	printf '%s:{PLAIN}%s::::::\n' "$u" "$(head -n 1 "$MAILFS_TEST_DIR/$u.pw")" >>"$users_new"
done
umask 022
chgrp dovecot "$users_new"
chmod 640 "$users_new"
mv -f "$users_new" "$DC_DIR/users"

caps=
if [ "$DOVECOT_PLAIN_CAPS" = 1 ]; then
	caps="  imap_capability = IMAP4rev1 LITERAL+ IDLE"
fi

protocols="imap lmtp"
submission_conf=
if [ $submission = 1 ]; then
	protocols="imap lmtp submission"
	submission_conf="
# Submission (RFC 6409): STARTTLS on $SUBMISSION_PORT, implicit TLS on
# $SUBMISSIONS_PORT; relays everything to the private Postfix.
submission_relay_host = 127.0.0.1
submission_relay_port = $POSTFIX_PORT
submission_relay_trusted = no
submission_relay_ssl = no
service submission-login {
  inet_listener submission {
    address = 127.0.0.1
    port = $SUBMISSION_PORT
  }
  inet_listener submissions {
    address = 127.0.0.1
    port = $SUBMISSIONS_PORT
    ssl = yes
  }
}"
fi

# The token endpoint (tests/harness/oauth2.py): it answers with the user
# a token belongs to, which must be the one logging in.
cat >"$DC_OAUTH2" <<EOF
introspection_mode = post
introspection_url = http://127.0.0.1:$OAUTH2_PORT/introspect
force_introspection = yes
username_attribute = username
username_format = %n
active_attribute = active
active_value = true
timeout_msecs = 5000
EOF

conf_new=$DC_CONF.new
cat >"$conf_new" <<EOF
# Generated by tests/harness/start.sh - private test instance, do not edit.
$(dc_common_conf "mailfs-test-$(printf '%s' "$MAILFS_TEST_DIR" | cksum | cut -d' ' -f1)" \
	"$DC_BASE" "$DC_DIR/state" "$DC_LOG")
mail_debug = no

protocols = $protocols
auth_mechanisms = plain login xoauth2 oauthbearer

$(dc_mail_conf)
# Only for token mechanisms, so a wrong password never waits on (or fails
# differently for lack of) the introspection endpoint on $OAUTH2_PORT.
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $DC_OAUTH2
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
}
service lmtp {
  unix_listener $DC_LMTP {
    mode = 0666
  }
}
protocol imap {
  mail_max_userip_connections = 50
$caps
}
protocol lmtp {
  # RCPT TO:<alice@$MAIL_DOMAIN> (from Postfix) is the user alice.
  auth_username_format = %Ln
}
$submission_conf
EOF

# Dovecot's ports: IMAP always, submission when enabled.
dc_ports="$IMAPS_PORT $IMAP_PORT"
[ $submission = 1 ] && dc_ports="$dc_ports $SUBMISSION_PORT $SUBMISSIONS_PORT"
dc_ports_open() {
	local p
	for p in $dc_ports; do
		port_open "$p" || return 1
	done
}

pid=$(dovecot_pid)
restart=1
if [ -n "$pid" ] && [ $fresh = 0 ] && cmp -s "$conf_new" "$DC_CONF" && dc_ports_open; then
	rm -f "$conf_new"
	log "dovecot already running (pid $pid)"
	restart=0
fi
if [ $restart = 1 ]; then
	if [ $fresh = 1 ]; then
		# Postfix too: nothing queued may reach the wiped mailboxes.
		"$HARNESS_DIR/stop.sh"
	elif [ -n "$pid" ]; then
		# Only Dovecot: a running Postfix keeps its queue and retries LMTP.
		"$HARNESS_DIR/stop.sh" --dovecot-only
	fi
	mv -f "$conf_new" "$DC_CONF"

	for u in $TEST_USERS; do
		if [ $fresh = 1 ]; then
			rm -rf "${HOME_ROOT:?}/$u"
		fi
		mkdir -p "$HOME_ROOT/$u"
		chown "$MAIL_UID:$MAIL_GID" "$HOME_ROOT/$u"
		chmod 700 "$HOME_ROOT/$u"
	done

	for p in $dc_ports; do
		port_open "$p" && die "port 127.0.0.1:$p is already in use by another process"
	done

	: >>"$DC_LOG"
	# The master daemonizes; keep its stdio off our caller's pipes (a caller
	# reading our output would otherwise wait for Dovecot to exit).
	if ! "$DOVECOT" -c "$DC_CONF" </dev/null >"$DC_DIR/startup.out" 2>&1; then
		cat "$DC_DIR/startup.out" >&2
		die "dovecot failed to start; see $DC_LOG"
	fi

	i=0
	until dc_ports_open && [ -S "$DC_LMTP" ]; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			tail -n 20 "$DC_LOG" >&2 || true
			"$HARNESS_DIR/stop.sh" || true
			die "dovecot did not open its ports within 10 s"
		fi
		sleep 0.1
	done
	log "dovecot started (pid $(dovecot_pid)), imaps 127.0.0.1:$IMAPS_PORT, imap+starttls 127.0.0.1:$IMAP_PORT, plain_caps=$DOVECOT_PLAIN_CAPS$([ $submission = 1 ] && echo ", submission+starttls 127.0.0.1:$SUBMISSION_PORT, submissions 127.0.0.1:$SUBMISSIONS_PORT")"
fi

# The relay behind submission (idempotent: restarted only if its config
# changed; --fresh empties its queue).
if [ $smtp = 1 ]; then
	if [ $fresh = 1 ]; then
		"$HARNESS_DIR/postfix.sh" start --fresh
	else
		"$HARNESS_DIR/postfix.sh" start
	fi
fi

# Cyrus and Courier beside Dovecot, each on its own ports with its own
# mail (cyrus.sh, courier.sh); without packages.sh's trees, a warning and
# null in harness.json.
cyrus=0 courier=0
if [ -n "$(cyrus_tree)" ]; then
	"$HARNESS_DIR/cyrus.sh" start $([ $fresh = 1 ] && echo --fresh)
	cyrus=1
else
	"$HARNESS_DIR/cyrus.sh" stop
	log "warning: cyrus-common or the unpacked cyrus-imapd missing (tests/harness/packages.sh): no Cyrus"
fi
if [ -n "$(courier_tree)" ]; then
	"$HARNESS_DIR/courier.sh" start $([ $fresh = 1 ] && echo --fresh)
	courier=1
else
	"$HARNESS_DIR/courier.sh" stop
	log "warning: courier-authdaemon or the unpacked courier-imap missing (tests/harness/packages.sh): no Courier"
fi

# What tests need to know, for shell and for Python.
cat >"$MAILFS_TEST_DIR/harness.env.new" <<EOF
MAILFS_TEST_DIR='$MAILFS_TEST_DIR'
SERVER_DIR='$SRV'
IMAPS_PORT=$IMAPS_PORT
IMAP_PORT=$IMAP_PORT
CA_FILE='$TLS_DIR/ca.pem'
OTHER_CA_FILE='$TLS_DIR/other-ca.pem'
DOVECOT_LOG='$DC_LOG'
DOVECOT_CONF='$DC_CONF'
LMTP_SOCKET='$DC_LMTP'
DOVECOT_PLAIN_CAPS=$DOVECOT_PLAIN_CAPS
SMTP=$smtp
SUBMISSION=$submission
DOVECOT_NO_SUBMISSION=$DOVECOT_NO_SUBMISSION
SUBMISSION_PORT=$SUBMISSION_PORT
SUBMISSIONS_PORT=$SUBMISSIONS_PORT
POSTFIX_PORT=$POSTFIX_PORT
PLAIN_IMAPS_PORT=$PLAIN_IMAPS_PORT
OAUTH2_PORT=$OAUTH2_PORT
POSTFIX_CONF='$PF_CONF'
POSTFIX_LOG='$PF_LOG'
MAIL_DOMAIN=$MAIL_DOMAIN
CYRUS=$cyrus
CYRUS_IMAPS_PORT=$CYRUS_IMAPS_PORT
CYRUS_IMAP_PORT=$CYRUS_IMAP_PORT
CYRUS_LOG='$CY_LOG'
COURIER=$courier
COURIER_IMAPS_PORT=$COURIER_IMAPS_PORT
COURIER_IMAP_PORT=$COURIER_IMAP_PORT
COURIER_LOG='$CO_LOG'
EOF
mv -f "$MAILFS_TEST_DIR/harness.env.new" "$MAILFS_TEST_DIR/harness.env"
python3 - "$MAILFS_TEST_DIR" <<EOF
import json, sys
d = sys.argv[1]
json.dump({
    "state_dir": d,
    "server_dir": "$SRV",
    "home_dir": "$HOME_ROOT",
    "host": "127.0.0.1",
    "imaps_port": $IMAPS_PORT,
    "imap_port": $IMAP_PORT,
    "ca_file": "$TLS_DIR/ca.pem",
    "other_ca_file": "$TLS_DIR/other-ca.pem",
    "dovecot_log": "$DC_LOG",
    "dovecot_conf": "$DC_CONF",
    "lmtp_socket": "$DC_LMTP",
    "plain_caps": $DOVECOT_PLAIN_CAPS == 1,
    "smtp": $smtp == 1,
    "submission": $submission == 1,
    "submission_port": $SUBMISSION_PORT,
    "submissions_port": $SUBMISSIONS_PORT,
    "postfix_port": $POSTFIX_PORT,
    "plain_imaps_port": $PLAIN_IMAPS_PORT,
    "plain_log": "$PL_LOG",
    "oauth2_port": $OAUTH2_PORT,
    "oauth2_url": "http://127.0.0.1:$OAUTH2_PORT/introspect",
    "postfix_conf": "$PF_CONF",
    "postfix_log": "$PF_LOG",
    "mail_domain": "$MAIL_DOMAIN",
    "users": {u: {"password_file": d + "/" + u + ".pw",
                  "address": u + "@$MAIL_DOMAIN"} for u in "$TEST_USERS".split()},
    # Every IMAP server of this harness, the same users on each: what
    # its config makes it announce (test_servers.py checks that it does).
    # prefix and delimiter: its personal namespace; trash: the name of
    # the trash folder as it spells it.
    "servers": {
        "dovecot": {"imaps_port": $IMAPS_PORT, "imap_port": $IMAP_PORT,
                    "log": "$DC_LOG", "prefix": "", "delimiter": "/",
                    "special_use": True, "trash": "Trash"},
        "cyrus": {"imaps_port": $CYRUS_IMAPS_PORT, "imap_port": $CYRUS_IMAP_PORT,
                  "log": "$CY_LOG", "master_log": "$CY_MLOG",
                  "prefix": "INBOX.", "delimiter": ".",
                  "special_use": True, "trash": "INBOX.Trash"} if $cyrus else None,
        "courier": {"imaps_port": $COURIER_IMAPS_PORT, "imap_port": $COURIER_IMAP_PORT,
                    "log": "$CO_LOG", "prefix": "INBOX.", "delimiter": ".",
                    "special_use": False, "trash": "INBOX.Trash"} if $courier else None,
    },
}, open(d + "/harness.json.new", "w"), indent=1)
EOF
mv -f "$MAILFS_TEST_DIR/harness.json.new" "$MAILFS_TEST_DIR/harness.json"
