#!/usr/bin/env python3
"""test_outbox2.py - the outbox's documented timing and failure behaviour.

test_outbox.py covers sending itself; this file covers what the man page
promises about when and how often a message goes out, checked against the
real servers (Dovecot submission -> private Postfix -> Dovecot LMTP) and
only through plain file operations and independent clients (imaplib + the
email package on the mailboxes, Dovecot's log for submission logins,
smtplib for the server's own reply):

- settle time: an editor's several open/write/close cycles with pauses
  shorter than settle_time (the default, 2 s), the first close just
  before a second boundary and an editor's swap file written in the
  pause (it makes the queue look), and one open with a pause longer than settle_time
  between its writes: exactly the final content arrives, once;
- a recipient the relay refuses for good (5xx at RCPT TO): status
  "failed: <the server's reply>" (the reply smtplib gets for the same
  address), a NAME.error with it, nothing delivered or saved, one
  submission and no retry;
- SIGKILL while a message is "sending" (submission stalled by
  tests/harness/faultproxy.py): after the remount it is delivered (at
  least once) and leaves outbox/;
- .mailfs/status lists a message that waits ("outbox: 1 queued", then
  "outbox NAME: queued" or "retrying: ...", the same as its xattr);
- From defaults to the account's address (user = alice@mailfs.test, no
  `from` setting) for a message without From;
- a temporary failure (the relay stopped: 421 from submission) with the
  default retry_initial: "retrying: <reply>; next <time>" with <time>
  about 60 s (the documented default) after the attempt; with
  give_up_after = 3 the message ends "failed: <reply>" after retries, with
  a .error, and is not tried again.

Needs the private servers from tests/harness/start.sh (with submission and
Postfix).  Environment: MAILFS_BIN (default ./mailfs), MAILFS_TEST_DIR,
MAILFS_TEST_LABEL.  Subjects carry "mailfs-outbox2 <random token>"; the
messages are expunged at the end.  Prints one "PASS: ..." or
"FAIL: ...: detail" line per check; exits 1 when anything failed.
"""

import email
import email.utils
import os
import re
import secrets
import signal
import sys
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (Mount, OUTBOX_WAIT, OutboxDir, Subjects, check_mount,  # noqa: E402
                       file_size, later, mailfs_env, mounted, on_mount, ready_to_send, run_harness,
                       setup_test, unmount_and_check, wait_for, write_config_file)
import smtptest as st  # noqa: E402  (tests/harness is on sys.path via mounttest)

BIN, LABEL, C, H, RUN = setup_test("outbox2")
MAIN = "main2@test"          # user is an address, no `from`; submission via a proxy
RETRY = "retry2@test"        # default retry_initial
GIVEUP = "giveup2@test"      # give_up_after = 3
TAG = "mailfs-outbox2"
TOKEN = secrets.token_hex(4)
ALICE = st.address(H, "alice") if H.get("users") else "alice@mailfs.test"
BOB = st.address(H, "bob") if H.get("users") else "bob@mailfs.test"
NOBODY = "nobody-%s@%s" % (TOKEN, H.get("mail_domain", "mailfs.test"))
WAIT = OUTBOX_WAIT
MOUNT_TIMEOUT = 90
STATUS = "user.mail.status"
SETTLE = 2                   # the documented default settle_time
RETRY_INITIAL = 60           # the documented default retry_initial
GIVE_UP = 3                  # give_up_after of GIVEUP
STALL_TIMEOUT = 60


S = Subjects(lambda: H, TAG, TOKEN)    # S(case): the unique subject of one case
arrived = S.arrived
now_count = S.count


def message(case, headers=None, body=None):
    if headers is None:
        headers = ["From: Alice Example <%s>" % ALICE, "To: Bob Example <%s>" % BOB,
                   "Subject: " + S(case), "Date: " + email.utils.formatdate(localtime=True),
                   "Content-Type: text/plain; charset=utf-8"]
    if body is None:
        body = "Hello Bob,\n\nthis is the %s case (%s).\n" % (case, TOKEN)
    return ("\n".join(headers) + "\n\n" + body).encode("utf-8")


Outbox = OutboxDir


def logins(since, user):
    """user's submission logins in Dovecot's log since an offset."""
    return [ln for ln in st.submission_logins(H, since) if "user=<%s>" % user in ln]


def settle_logins(since, user, quiet=1.5, timeout=5):
    """The login count once Dovecot's log process has caught up (no new
    line for `quiet` seconds)."""
    n, t_last, deadline = len(logins(since, user)), time.time(), time.time() + timeout
    while time.time() < deadline and time.time() - t_last < quiet:
        time.sleep(0.2)
        m = len(logins(since, user))
        if m != n:
            n, t_last = m, time.time()
    return n


NEXT = r"next \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"


def status_time(s):
    """The epoch seconds of "...; next YYYY-MM-DD HH:MM:SS" (local time)."""
    m = re.search(r"; next (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$", s or "")
    if not m:
        return None
    return time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S"))


# --- mounting -------------------------------------------------------------------

def write_config(proxy_port):
    def section(name, tag, user, lines):
        return "[%s]\n%s\n\n" % (name, "\n".join([
            "host = 127.0.0.1", "port = %d" % H["imaps_port"], "user = %s" % user,
            "tls = implicit", "ca_file = %s" % H["ca_file"],
            "password_command = cat %s" % H["users"]["alice"]["password_file"],
            "smtp_host = 127.0.0.1", "smtp_tls = starttls",
            "outbox_dir = %s" % os.path.join(RUN, "outbox-" + tag),
            "cache_dir = %s" % os.path.join(RUN, "cache-" + tag),
            "log_file = %s" % os.path.join(RUN, tag + ".log")] + lines))
    # MAIN: settle_time left at its default; no `from`, so From defaults to
    # the user name, an address; short retries so a wrong retry would show.
    text = section(MAIN, "main", ALICE, [
        "smtp_port = %d" % proxy_port, "timeout = %d" % STALL_TIMEOUT,
        "retry_initial = 1", "retry_max_delay = 2"])
    text += section(RETRY, "retry", "alice", [
        "smtp_port = %d" % H["submission_port"], "from = %s" % ALICE, "settle_time = 1"])
    text += section(GIVEUP, "giveup", "alice", [
        "smtp_port = %d" % H["submission_port"], "from = %s" % ALICE, "settle_time = 1",
        "retry_initial = 1", "retry_max_delay = 1", "give_up_after = %d" % GIVE_UP])
    write_config_file(RUN, text)


def mount(account, mp_name, what):
    return check_mount(C, Mount(BIN, [], account, os.path.join(RUN, mp_name), mailfs_env(RUN),
                                MOUNT_TIMEOUT), "%s: mount %s" % (what, account))


def finish(mnt, what, log):
    unmount_and_check(C, mnt, what, [os.path.join(RUN, log)], "the daemon's output or log")


# --- settle time ------------------------------------------------------------------

def sleep_until(t):
    d = t - time.time()
    if d > 0:
        time.sleep(d)


def write_step(ob, name, flags, data):
    """One open/write/close; the time close() returned, or the error."""
    fd = os.open(ob.path(name), os.O_WRONLY | flags, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return time.time()


def case_settle_cycles(ob):
    """An editor's save in three open/write/close cycles (a first draft,
    a rewrite, an appended line), each pause shorter than settle_time,
    with its swap file written in between.  The first close lands just
    before a second boundary: a settle time counted in whole seconds of
    mtime would end there after little more than settle_time - 1
    seconds."""
    case = "settle cycles"
    name = "settle.eml"
    head = ["From: %s" % ALICE, "To: %s" % BOB, "Subject: " + S(case)]
    v1 = message(case, head, "first draft\n")
    v2 = message(case, head, "second draft, rewritten\n")
    ps = b"P.S. appended in a third step\n"
    final_body = "second draft, rewritten\n" + ps.decode()
    pause = SETTLE - 0.5
    now = time.time()
    sleep_until(int(now) + (1 if now % 1 < 0.9 else 2) + 0.95)
    try:
        t1 = write_step(ob, name, os.O_CREAT | os.O_TRUNC, v1)
        s = ob.status(name)
        listing = ob.ctl_status()
        # The editor's swap file, written just after the second boundary
        # (any write in outbox/ makes the queue look again).
        sleep_until(int(t1) + 1.05)
        write_step(ob, "." + name + ".swp", os.O_CREAT | os.O_TRUNC, b"swap")
        sleep_until(t1 + pause)
        t2 = write_step(ob, name, os.O_CREAT | os.O_TRUNC, v2)
        sleep_until(t2 + pause)
        write_step(ob, name, os.O_CREAT | os.O_APPEND, ps)
        ob.remove("." + name + ".swp")
    except OSError as e:
        C.fail("settle: three open/write/close cycles, %.1f s apart" % pause, e)
        return
    C.ok("settle: three open/write/close cycles, %.1f s apart (settle_time %d)" % (pause, SETTLE))
    C.equal(s, "queued", "settle: between the cycles the file's status is 'queued'")
    C.check("outbox: 1 queued\n" in listing and "outbox %s: queued\n" % name in listing,
            ".mailfs/status: lists the waiting message ('outbox: 1 queued', 'outbox %s: queued')" % name,
            repr(listing[-300:]))
    got = arrived("bob", "INBOX", case)
    gone = ob.wait_gone(name, later(got))
    # Anything sent earlier went out before the final version: it is in
    # by now, or arrives within a moment.
    got = arrived("bob", "INBOX", case, n=2, timeout=3 if got else 0)
    bodies = [st.plain_body(m["raw"]) for m in got]
    C.check(len(got) == 1 and gone, "settle: the message is delivered exactly once and leaves outbox/",
            "%d copies (bodies %r); status %r" % (len(got), bodies, ob.status(name)))
    C.check(bodies and all(b == final_body for b in bodies),
            "settle: what arrives is the final content (rewrite + appended line), no earlier version",
            "bodies %r" % bodies)


def case_settle_open(ob):
    """One open, a pause longer than settle_time between two writes: an
    open writer holds the file back however long it pauses."""
    case = "settle open"
    name = "open.eml"
    head = ["From: %s" % ALICE, "To: %s" % BOB, "Subject: " + S(case)]
    part1 = message(case, head, "first half,\n")
    part2 = b"second half after a long pause.\n"
    try:
        fd = os.open(ob.path(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, part1)
            time.sleep(SETTLE + 1.5)
            s = ob.status(name)
            early = now_count("bob", "INBOX", case)
            os.write(fd, part2)
        finally:
            os.close(fd)
    except OSError as e:
        C.fail("settle: one open, two writes %.1f s apart" % (SETTLE + 1.5), e)
        return
    C.check(s == "queued" and early == 0,
            "settle: while the writer pauses longer than settle_time the file waits ('queued', "
            "nothing delivered)", "status %r, %d copies delivered" % (s, early))
    got = arrived("bob", "INBOX", case)
    gone = ob.wait_gone(name, later(got))
    got = arrived("bob", "INBOX", case, n=2, timeout=3 if got else 0)
    bodies = [st.plain_body(m["raw"]) for m in got]
    C.check(len(got) == 1 and gone and bodies[0] == "first half,\n" + part2.decode(),
            "settle: after close() the whole file is delivered exactly once",
            "%d copies, bodies %r; status %r" % (len(got), bodies, ob.status(name)))


# --- permanent refusal ----------------------------------------------------------

def case_refused(ob):
    case = "refused"
    name = "refused.eml"
    replies = st.rcpt_replies(H, [NOBODY])
    _, code, text = replies[0]
    if not C.check(500 <= code < 600, "refused: the relay refuses %s with 5xx (per smtplib)" % NOBODY,
                   replies):
        return
    sent0 = st.count(H, "alice", "Sent")
    since = file_size(H["dovecot_log"])
    err = ob.put(name, message(case, ["From: %s" % ALICE, "To: Nobody <%s>" % NOBODY,
                                      "Subject: " + S(case)]))
    if not C.check(err is None, "refused: write a message to %s only" % NOBODY, err):
        return
    s = ob.wait_status(name, "failed:")
    C.check(s is not None and s.startswith("failed: %d " % code) and text in s,
            "refused: status is 'failed: <the server's reply>' (%d ... %s)" % (code, text),
            "status %r" % s)
    e = ob.error_text(name)
    C.check(e is not None and str(code) in e and text in e,
            "refused: %s.error gives the server's reply" % name, repr(e))
    # A retry would come after retry_initial (1 s) at most retry_max_delay (2 s).
    time.sleep(4)
    n = settle_logins(since, ALICE)
    C.check(n == 1, "refused: one submission, not retried (%s's submission logins in "
            "Dovecot's log over the next 4 s)" % ALICE, "%d logins" % n)
    s2 = ob.status(name)
    C.check(s2 == s and ob.exists(name), "refused: the file stays, status unchanged",
            "status %r, exists %s" % (s2, ob.exists(name)))
    bob_n, sent_n = now_count("bob", "INBOX", case), st.count(H, "alice", "Sent")
    C.check(bob_n == 0 and sent_n == sent0 and now_count("alice", "Sent", case) == 0,
            "refused: nothing delivered, nothing saved to Sent",
            "bob %d, Sent %d -> %d" % (bob_n, sent0, sent_n))
    ob.remove(name)
    C.check(not ob.exists(name) and ob.error_text(name) is None,
            "refused: rm removes the file and its .error", "still there")


# --- From default ----------------------------------------------------------------

def case_from(ob):
    case = "from default"
    name = "nofrom.eml"
    err = ob.put(name, message(case, ["To: %s" % BOB, "Subject: " + S(case)]))
    if not C.check(err is None, "From default: write a message without From (no `from` set, "
                   "user = %s)" % ALICE, err):
        return
    got = arrived("bob", "INBOX", case)
    ob.wait_gone(name, later(got))
    if not C.check(len(got) == 1, "From default: delivered once", "%d copies; status %r"
                   % (len(got), ob.status(name))):
        return
    m = st.parse(got[0]["raw"])
    froms = [a.lower() for _, a in email.utils.getaddresses([str(v) for v in m.get_all("From", [])])]
    C.equal(froms, [ALICE], "From default: the delivered From is the account's address")
    rp = str(m.get("Return-Path", "")).lower()
    C.check(ALICE in rp, "From default: the envelope sender (Return-Path) is the account's address",
            repr(rp))


# --- SIGKILL while sending --------------------------------------------------------

def case_crash(ob, proxy):
    """Returns the remounted Outbox, or None."""
    case = "crash sending"
    name = "crash.eml"
    proxy.set_mode("stall")
    before = proxy.injected("stall")
    err = ob.put(name, message(case))
    s = ob.wait_status(name, "sending")
    stalled = wait_for(lambda: proxy.injected("stall") > before, WAIT)
    if not C.check(err is None and s == "sending" and stalled,
                   "SIGKILL while sending: the message is stuck in submission ('sending')",
                   "%s; status %r, stalled %s" % (err, s, stalled)):
        proxy.set_mode("pass")
        return ob
    C.equal(now_count("bob", "INBOX", case), 0, "SIGKILL while sending: nothing delivered yet")
    mnt = ob.mnt
    try:
        os.kill(mnt.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    mnt.unmount(timeout=10)      # reaps it; fusermount3 -u (-uz) the dead mount
    C.check(not mounted(mnt.mountpoint), "SIGKILL while sending: the dead mount is unmounted",
            "still mounted")
    proxy.set_mode("pass")
    new = mount(MAIN, "mnt-main", "SIGKILL while sending: remount")
    if new is None:
        return None
    nob = Outbox(new)
    got = arrived("bob", "INBOX", case)
    gone = nob.wait_gone(name, later(got))
    n = now_count("bob", "INBOX", case)
    C.check(n >= 1 and gone, "SIGKILL while sending: after the remount the message is delivered "
            "(at least once) and leaves outbox/", "%d copies; status %r" % (n, nob.status(name)))
    if n > 1:
        print("# note: delivered %d times after SIGKILL (at-least-once allows it)" % n, flush=True)
    sent = st.wait_for(H, "alice", "Sent", S(case), timeout=later(got))
    C.check(sent, "SIGKILL while sending: and saved to Sent", "no Sent copy")
    return nob


# --- temporary failures: the announced retry time, giving up ------------------------

def case_retry_default(ob):
    """With the default retry_initial, the first retry is announced about
    60 s after the failed attempt.  Called with the relay stopped."""
    name = "retry.eml"
    since = file_size(H["dovecot_log"])
    t0 = time.time()
    err = ob.put(name, message("retry default"))
    s = ob.wait_status(name, "retrying:", step=0.1)
    t1 = time.time()
    sent = st.relay_down_421s(H, "alice", since)
    if s and re.match(r"^retrying: no reply to ", s) and sent == 0:
        # Dovecot hung up without writing its 421 (seen once in a loaded
        # run): nothing to show but which reply never came.
        C.check(err is None and re.match(r"^retrying: no reply to [A-Z ]+: .+; " + NEXT, s),
                "retry: status is 'retrying: no reply to <command>: <why>; next <time>' "
                "(Dovecot's log: its session ended before its 421 was written)",
                "%s; status %r" % (err, s))
    else:
        C.check(err is None and s and re.match(r"^retrying: 4\d\d .+; " + NEXT, s),
                "retry: status is 'retrying: <the 4xx reply>; next <time>'",
                "%s; status %r; Dovecot wrote the 421 in %s of alice's sessions"
                % (err, s, sent))
    nxt = status_time(s)
    # The attempt was between t0 and t1 (whole seconds on the daemon's side).
    C.check(nxt is not None and t0 + RETRY_INITIAL - 5 <= nxt <= t1 + RETRY_INITIAL + 5,
            "retry: the next attempt is announced about %d s (retry_initial's default) after the "
            "failed one" % RETRY_INITIAL,
            "next %r is %s s after the write, %s s after the status appeared" % (
                s, nxt and round(nxt - t0, 1), nxt and round(nxt - t1, 1)))
    listing = ob.ctl_status()
    C.check("outbox: 1 queued\n" in listing and "outbox %s: %s\n" % (name, s) in listing,
            ".mailfs/status: lists the retrying message with the same status as its xattr",
            repr(listing[-300:]))
    ob.remove(name)
    C.check(not ob.exists(name), "retry: rm cancels the retrying message", "still there")


def case_give_up(ob):
    """give_up_after = 3 with a failure that does not go away: retried,
    then failed with the last reply, then left alone.  Relay stopped."""
    name = "giveup.eml"
    since = file_size(H["dovecot_log"])
    t0 = time.time()
    err = ob.put(name, message("give up"))
    s = ob.wait_status(name, "failed:", timeout=GIVE_UP + 20)
    t1 = time.time()
    C.check(err is None and s and re.match(r"^failed: 4\d\d ", s),
            "give up: after give_up_after (%d s) the status is 'failed: <the last 4xx reply>'" % GIVE_UP,
            "%s; status %r" % (err, s))
    C.check(t1 - t0 >= GIVE_UP, "give up: not before give_up_after has passed",
            "failed %.1f s after the write" % (t1 - t0))
    e = ob.error_text(name)
    C.check(e is not None and re.search(r"\b4\d\d\b", e), "give up: %s.error gives the reply" % name, repr(e))
    n1 = settle_logins(since, "alice")
    C.check(n1 >= 2, "give up: it was retried before giving up (alice's submission logins)",
            "%d logins" % n1)
    time.sleep(3)
    n2 = settle_logins(since, "alice")
    C.check(n2 == n1 and ob.status(name) == s, "give up: no attempt after giving up (3 s later)",
            "%d logins, then %d; status %r" % (n1, n2, ob.status(name)))
    ob.remove(name)


def case_temporary():
    """The relay stopped: Dovecot's submission answers MAIL FROM with 421."""
    ok, out = run_harness(H, "postfix.sh", "stop")
    if not C.check(ok, "temporary failure: stop the relay (submission answers 421)", out):
        return
    try:
        on_mount(mount(RETRY, "mnt-retry", "retry"),
                 lambda m: C.case(case_retry_default, Outbox(m)),
                 lambda m: finish(m, "retry mount", "retry.log"))
        on_mount(mount(GIVEUP, "mnt-giveup", "give up"),
                 lambda m: C.case(case_give_up, Outbox(m)),
                 lambda m: finish(m, "give up mount", "giveup.log"))
    finally:
        ok, out = run_harness(H, "postfix.sh", "start")
        C.check(ok, "temporary failure: start the relay again", out)
    # Nothing of these was ever accepted; let Postfix's queue settle anyway.
    time.sleep(1)
    C.check(now_count("bob", "INBOX", "retry default") == 0 and now_count("bob", "INBOX", "give up") == 0,
            "temporary failure: the cancelled and the given-up message are never delivered", "delivered")


# --- main -----------------------------------------------------------------------

def main():
    global H
    H = ready_to_send(C, BIN, H, RUN)
    if H is None:
        return 1
    print("# test_outbox2[%s]: token %s" % (LABEL, TOKEN), flush=True)

    from faultproxy import FaultProxy
    proxy = FaultProxy(H["submission_port"])
    try:
        write_config(proxy.start())
        mnt = mount(MAIN, "mnt-main", "main")
        if mnt is not None:
            ob = Outbox(mnt)
            try:
                C.case(case_settle_cycles, ob)
                C.case(case_settle_open, ob)
                C.case(case_refused, ob)
                C.case(case_from, ob)
                ob = C.case(case_crash, ob, proxy) or ob
            finally:
                proxy.set_mode("pass")
                if mounted(ob.mnt.mountpoint) or ob.mnt.proc.poll() is None:
                    finish(ob.mnt, "main mount", "main.log")
        C.check(not proxy.errors, "the submission proxy itself had no errors", proxy.errors)
        C.case(case_temporary)
    finally:
        proxy.stop()
        run_harness(H, "postfix.sh", "start")
        S.cleanup()

    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
