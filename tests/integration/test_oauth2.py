"""test_oauth2.py - XOAUTH2 login with a token that changes while mounted.

OAuth2 access tokens expire within about an hour, so mailfs runs its
oauth2_token_command for every login: each new IMAP connection, each
reconnect and each submission.  Here the private Dovecot checks tokens with
its oauth2 passdb against tests/harness/oauth2.py, an introspection
endpoint this test runs on the harness's oauth2_port that accepts only the
tokens listed in a file it re-reads on every request.  The token command
is a script that prints the current token from a file and notes each run.

  - the harness: imaplib logs in with XOAUTH2 with a listed token, and is
    refused with another (so the checks below can fail);
  - mount with XOAUTH2 and read a message, byte-exact against imaplib;
  - rotate the token (the old one is refused from then on, checked with
    imaplib), drop every server-side session with `doveadm kick`: the
    mount reads an uncached message again by itself, the token command ran
    again, Dovecot saw the new token and never the old one again;
  - the token command failing while mounted: an uncached read fails with
    EIO within the timeout, one line in the log names the command, and
    once it works again the mount recovers by itself;
  - outbox: a message sent after another rotation arrives (imaplib), over
    submission with XOAUTH2 and the newest token;
  - no token in any process's argv, in the log (with -o debug=imap), the
    index or the cache, in any form curl may have sent it;
  - at mount: a token the server refuses, and a token command that fails,
    each end mailfs with one line and a non-zero status, nothing mounted.

Needs the private Dovecot from tests/harness/start.sh, seeded (reads
messages of alice's INBOX).  Environment: MAILFS_BIN (default ./mailfs),
MAILFS_TEST_DIR, MAILFS_TEST_LABEL.  One "PASS: ..." or "FAIL: ...: detail"
line per check; exits 1 when anything failed.
"""

import base64
import errno
import imaplib
import os
import re
import secrets
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (by_uid, dovecot_running, ename, file_size, files_holding,  # noqa: E402
                       fresh_run_dir, imaptest as it, mailfs_env, mount_own_dirs, mounted,
                       proc_cmdlines, ready, run_once, setup_test, tail, unmount_and_check,
                       wait_for, write_config_file)
import oauth2  # noqa: E402  (tests/harness is on sys.path via mounttest)
import smtptest  # noqa: E402

BIN, LABEL, C, H, RUN = setup_test("oauth2")
ACCOUNT = "alice-oauth2@test"
TIMEOUT = 5             # -o timeout=
NO_HANG = TIMEOUT + 10  # an uncached read without a login has failed
RECOVER = 75            # a login works again: the mount reads by itself
FOLDERS = ("INBOX", "Archive", "Lists/notmuch")     # seeded, not empty

TOKEN_FILE = os.path.join(RUN, "token")         # what the command prints
RUNS_FILE = os.path.join(RUN, "token.runs")     # one line per run
GOOD_FILE = os.path.join(RUN, "tokens")         # what the server accepts
LOG = os.path.join(RUN, "mount.log")
TAG = "oa-" + secrets.token_hex(4)


def new_token():
    return "mfs-tok-" + secrets.token_urlsafe(24)


def set_token(command_prints, server_accepts):
    """What the token command prints next (None: it fails), and the one
    token the server accepts from now on."""
    if command_prints is None:
        try:
            os.unlink(TOKEN_FILE)
        except FileNotFoundError:
            pass
    else:
        with open(TOKEN_FILE + ".new", "w") as f:
            f.write(command_prints + "\n")
        os.rename(TOKEN_FILE + ".new", TOKEN_FILE)
    with open(GOOD_FILE + ".new", "w") as f:
        f.write("%s alice\n" % server_accepts)
    os.rename(GOOD_FILE + ".new", GOOD_FILE)


def runs():
    try:
        with open(RUNS_FILE) as f:
            return len(f.readlines())
    except OSError:
        return 0


def write_config():
    script = os.path.join(RUN, "token.sh")
    with open(script, "w") as f:
        # Like a real helper: note the run, print the current token or fail.
        f.write("#!/bin/sh\necho run >> %s\nexec cat %s\n" % (RUNS_FILE, TOKEN_FILE))
    os.chmod(script, 0o755)
    common = ("host = %s\nport = %d\nuser = alice\ntls = implicit\nca_file = %s\n"
              % (H["host"], H["imaps_port"], H["ca_file"]))
    text = "[%s]\n%soauth2_token_command = %s\n" % (ACCOUNT, common, script)
    if H.get("smtp"):
        text += ("smtp_host = %s\nsmtp_port = %d\nsmtp_tls = starttls\nfrom = %s\n"
                 "settle_time = 1\nretry_initial = 1\nretry_max_delay = 2\n" % (
                     H["host"], H["submission_port"], smtptest.address(H, "alice")))
    text += "\n[wrongtok@test]\n%soauth2_token_command = echo not-a-good-token\n" % common
    text += "\n[failtok@test]\n%soauth2_token_command = exit 3\n" % common
    write_config_file(RUN, text)


def xoauth2_login(token, user="alice"):
    """None when Dovecot accepts the token for user (imaplib), else why not."""
    m = imaplib.IMAP4_SSL(H["host"], H["imaps_port"],
                          ssl_context=it.tls_context(H["ca_file"]), timeout=60)
    try:
        m.authenticate("XOAUTH2", lambda _: (
            "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode())
        return None
    except imaplib.IMAP4.error as e:
        return str(e)
    finally:
        try:
            m.logout()
        except Exception:       # noqa: BLE001
            pass


def log_since(path, offset):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def imap_logins(since, method="XOAUTH2"):
    return [ln for ln in log_since(H["dovecot_log"], since).splitlines()
            if "imap-login: Info: Login: user=<alice>, method=%s," % method in ln]


def read(path):
    """(bytes, None) or (None, errno)."""
    try:
        with open(path, "rb") as f:
            return f.read(), None
    except OSError as e:
        return None, e.errno


def kick():
    """Drop every session of alice on the server."""
    r = subprocess.run(["doveadm", "-c", H["dovecot_conf"], "kick", "alice"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return r.returncode, r.stdout.decode("utf-8", "replace").strip()


def check_argv(tokens, what):
    bad = [p for p, cmdline in proc_cmdlines() if any(t.encode() in cmdline for t in tokens)]
    C.check(not bad, "%s: no token in any process's argv" % what, "in pid(s) %s" % bad)


def check_no_secrets(paths, tokens, what):
    """A token, or a SASL XOAUTH2/OAUTHBEARER string holding it, in no file
    below paths (but the token files themselves)."""
    forms = []
    for t in tokens:
        b = t.encode()
        forms += [b, base64.b64encode(b),
                  base64.b64encode(b"user=alice\x01auth=Bearer " + b + b"\x01\x01"),
                  base64.b64encode(b"n,a=alice,\x01auth=Bearer " + b + b"\x01\x01")]
    hits, nfiles = files_holding(
        paths, forms, lambda p: p in (TOKEN_FILE, GOOD_FILE) or p.startswith(GOOD_FILE))
    C.check(nfiles > 0 and not hits,
            "%s: no token in any of %d files (log with debug=imap, index, cache, outbox)"
            % (what, nfiles), "in %s" % hits if hits else "no files looked at")


def main():
    if not ready(C, BIN):
        return 1
    if "oauth2_port" not in H:
        C.fail("harness", "no oauth2_port in harness.json: restart tests/harness/start.sh")
        return 1
    fresh_run_dir(RUN)
    write_config()
    t_start = time.time()
    dovecot_running(C, H)
    srv = oauth2.Introspection(H["oauth2_port"], GOOD_FILE)
    try:
        srv.start()
    except OSError as e:
        C.fail("start the introspection endpoint on 127.0.0.1:%d" % H["oauth2_port"], e)
        return 1
    try:
        body(srv)
    finally:
        srv.stop()
        try:
            if H.get("smtp"):
                smtptest.delete_matching(H, "alice", TAG)
        except Exception as e:  # noqa: BLE001
            print("# cleanup failed: %s: %s" % (type(e).__name__, e), flush=True)
    return C.summary("in %.0f s" % (time.time() - t_start))


def body(srv):
    tokens = [new_token()]
    set_token(tokens[0], tokens[0])

    # The harness can tell a good token from a bad one.
    C.equal(xoauth2_login(tokens[0]), None, "harness: Dovecot accepts a listed token (imaplib XOAUTH2)")
    why = xoauth2_login(new_token())
    C.check(why and "AUTHENTICATIONFAILED" in why,
            "harness: Dovecot refuses an unlisted token as a failed login", why or "accepted")

    # One message from each of three folders: reading one makes the mount
    # read ahead in its folder, and each step below must need the server.
    picks = []
    m = it.connect(H)
    try:
        for folder in FOLDERS:
            meta = it.folder_meta(m, folder)
            if meta:
                uid = max(meta)
                picks.append((folder, uid, it.fetch_raw(m, uid)))
    finally:
        m.logout()
    if len(picks) < len(FOLDERS):
        C.fail("a message in each of %s" % (FOLDERS,),
               "only in %s (seed the harness)" % [p[0] for p in picks])
        return

    dc0 = file_size(H["dovecot_log"])
    runs0 = runs()
    mnt = mount_own_dirs(BIN, RUN, ACCOUNT, "x", [
        "-o", "timeout=%d,connections=2,debug=imap:sync" % TIMEOUT], 60)
    if not C.check(mnt.ok, "mount with oauth2_token_command (XOAUTH2)", mnt.error):
        return
    root = mnt.mountpoint
    try:
        live(srv, mnt, root, tokens, picks, dc0, runs0)
    finally:
        check_argv(tokens, "while mounted")
        unmount_and_check(C, mnt, "oauth2 mount", [mnt.log], "its output or log")
    check_no_secrets([RUN], tokens, "after unmount")
    at_mount()


def fetched(log_from, uid):
    """Did the mount fetch uid's body after log offset log_from?"""
    return re.search(r"C: \S+ UID FETCH ([0-9,:]*,)?%d(,[0-9,:]*)? \(UID BODY" % uid,
                     log_since(LOG_PATH[0], log_from)) is not None


LOG_PATH = [None]


def live(srv, mnt, root, tokens, picks, dc0, runs0):
    LOG_PATH[0] = mnt.log
    C.check(runs() > runs0, "the token command ran for the first login",
            "runs %d -> %d" % (runs0, runs()))
    C.check(imap_logins(dc0), "Dovecot logged alice in with XOAUTH2",
            "no 'Login: user=<alice>, method=XOAUTH2' line")
    paths = []
    for folder, uid, _ in picks:
        name = wait_for(lambda: by_uid(root, folder).get(uid), 60)
        if not C.check(name, "%s lists UID %d" % (folder, uid), by_uid(root, folder)):
            return
        paths.append(os.path.join(root, folder, name))
    (f0, u0, raw0), (f1, u1, raw1), (f2, u2, raw2) = picks
    lg = file_size(mnt.log)
    data, e = read(paths[0])
    C.check(data == raw0 and fetched(lg, u0),
            "read %s UID %d from the server, byte-exact (imaplib)" % (f0, u0),
            "error %s" % ename(e) if e else "%d bytes, fetched %s" % (
                len(data or b""), fetched(lg, u0)))

    # Rotate: the old token is refused from now on; drop every session.
    old = tokens[-1]
    tokens.append(new_token())
    set_token(tokens[-1], tokens[-1])
    why = xoauth2_login(old)
    C.check(why and "AUTHENTICATIONFAILED" in why,
            "rotated: Dovecot now refuses the old token (imaplib)", why or "accepted")
    C.equal(xoauth2_login(tokens[-1]), None, "rotated: Dovecot accepts the new token (imaplib)")
    t_rot = time.time()
    runs1 = runs()
    dc1 = file_size(H["dovecot_log"])
    rc, out = kick()
    C.check(rc == 0 and "alice" in out, "doveadm kick alice drops the mount's sessions",
            "status %d: %s" % (rc, out))
    path = paths[1]
    lg = file_size(mnt.log)
    t0 = time.time()
    got = wait_for(lambda: read(path)[0], RECOVER, 0.5)
    C.check(got == raw1 and fetched(lg, u1),
            "after rotation and kick: %s UID %d read from the server, byte-exact (%.1f s)" % (
                f1, u1, time.time() - t0),
            "last error %s" % ename(read(path)[1]) if got is None else
            "bytes differ %s, fetched %s" % (got != raw1, fetched(lg, u1)))
    C.check(runs() > runs1, "after the kick the token command ran again",
            "runs %d -> %d" % (runs1, runs()))
    asked = srv.tokens_asked(t_rot)
    C.check((tokens[-1], True) in asked, "Dovecot checked the new token for the reconnect",
            "asked: %s" % [(t[:12], ok) for t, ok in asked])
    C.check(not any(t == old for t, _ in asked),
            "the old token was never offered again after rotation",
            "asked: %s" % [(t[:12], ok) for t, ok in asked])
    C.check(imap_logins(dc1), "Dovecot logged the mount in again with XOAUTH2",
            "no XOAUTH2 login after the kick")
    ok = wait_for(lambda: "state: online" in (read(os.path.join(root, ".mailfs", "status"))[0]
                                              or b"").decode("utf-8", "replace"), RECOVER, 0.5)
    C.check(ok, "after the kick .mailfs/status says online again",
            (read(os.path.join(root, ".mailfs", "status"))[0] or b"")[:200])

    # The token command fails while mounted: logins fail, reads don't hang.
    set_token(None, new_token())
    log0 = file_size(mnt.log)
    runs2 = runs()
    kick()
    path = paths[2]
    t0 = time.time()
    data, e = read(path)
    took = time.time() - t0
    C.check(data is None and e == errno.EIO and took < NO_HANG,
            "token command failing: uncached read fails with EIO within %d s" % NO_HANG,
            "%s after %.1f s" % ("read %d bytes" % len(data) if data is not None
                                 else ename(e), took))
    line = wait_for(lambda: [ln for ln in log_since(mnt.log, log0).splitlines()
                             if "oauth2_token_command failed (exit status 1)" in ln], 20)
    C.check(line, "the log says in one line that oauth2_token_command failed",
            tail(mnt.log, 3))
    C.check(runs() > runs2, "the failing token command was run",
            "runs %d -> %d" % (runs2, runs()))

    tokens.append(new_token())
    set_token(tokens[-1], tokens[-1])
    lg = file_size(mnt.log)
    t0 = time.time()
    got = wait_for(lambda: read(path)[0], RECOVER, 0.5)
    C.check(got == raw2 and fetched(lg, u2),
            "token command working again: the mount recovers by itself, "
            "%s UID %d from the server, byte-exact (%.1f s)" % (f2, u2, time.time() - t0),
            "last error %s" % ename(read(path)[1]) if got is None else
            "bytes differ %s, fetched %s" % (got != raw2, fetched(lg, u2)))

    if not H.get("smtp"):
        print("# no sending path in this harness: outbox check skipped", flush=True)
        return
    # A submission after another rotation uses the newest token.
    tokens.append(new_token())
    set_token(tokens[-1], tokens[-1])
    t_rot = time.time()
    dc2 = file_size(H["dovecot_log"])
    runs3 = runs()
    subject = "%s oauth2 outbox" % TAG
    with open(os.path.join(root, "outbox", TAG + ".eml"), "w") as f:
        f.write("To: %s\nSubject: %s\n\nsent with XOAUTH2\n" % (
            smtptest.address(H, "alice"), subject))
    found = smtptest.wait_for(H, "alice", "INBOX", subject, timeout=60)
    C.check(len(found) == 1, "outbox: the message arrives (imaplib)", "found %d" % len(found))
    subs = [ln for ln in smtptest.submission_logins(H, dc2)
            if "user=<alice>, method=XOAUTH2" in ln]
    C.check(subs, "outbox: submitted with XOAUTH2", smtptest.submission_logins(H, dc2)[:2])
    C.check((tokens[-1], True) in srv.tokens_asked(t_rot),
            "outbox: the submission used the token current at sending time",
            [(t[:12], ok) for t, ok in srv.tokens_asked(t_rot)])
    C.check(runs() > runs3, "outbox: the token command ran for the submission",
            "runs %d -> %d" % (runs3, runs()))
    gone = wait_for(lambda: os.listdir(os.path.join(root, "outbox")) == [], 30)
    C.check(gone, "outbox: empty again once sent", os.listdir(os.path.join(root, "outbox")))


def at_mount():
    env = mailfs_env(RUN, "cache-once", "data-once")
    for account, want in (("wrongtok@test", "refused"),
                          ("failtok@test",
                           "mailfs: credentials: oauth2_token_command failed (exit status 3)")):
        mp = os.path.join(RUN, "mnt-" + account.split("@")[0])
        os.makedirs(mp, exist_ok=True)
        rc, out, err = run_once(BIN, ["-f", "-o", "timeout=%d" % TIMEOUT, account, mp], env)
        lines = err.decode("utf-8", "replace").strip().splitlines()
        C.check(rc == 77 and not mounted(mp),
                "%s: mailfs exits with status 77 (credentials) without mounting" % account,
                "exit status %s, mounted %s" % (rc, mounted(mp)))
        C.check(len(lines) == 1 and want in lines[0] and lines[0].startswith("mailfs: "),
                "%s: one line on stderr saying so" % account, lines)


if __name__ == "__main__":
    sys.exit(main())
