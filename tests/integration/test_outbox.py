#!/usr/bin/env python3
"""test_outbox.py - sending mail by writing a file into MOUNT/outbox/.

Mounts alice's account with the real mailfs binary, drops message files
into outbox/ with plain file operations (open/write/close, rename, cp,
unlink, getxattr) and checks the outcome only with independent clients:
imaplib + the email package on bob's and alice's mailboxes, smtplib for the
harness itself.  The path is Dovecot submission (STARTTLS or implicit TLS)
-> private Postfix on 127.0.0.1 -> Dovecot LMTP; the relay changes nothing
in the headers (no Bcc removed, no Date/Message-ID added), so what arrives
is what mailfs sent.

Covered: a simple message (bob's INBOX exactly once, alice's Sent with
\\Seen, file gone, bytes durable in outbox_dir when close() returned,
status "queued", STARTTLS per Dovecot's log); From/Date/Message-ID/
MIME-Version filled in; Bcc delivered but in no copy; Cc with quoted
display names in a CRLF file; rejected inputs (no recipient, unparsable
addresses, bare CR or NUL in a header, binary garbage, no header, empty
file): "failed: ..." status, a .error file, nothing delivered; one bad
recipient among good ones; editor temporaries and dot files not sent until
renamed; unlink cancels; submission down -> "retrying: ...; next ..." ->
up -> delivered once; relay down (421 from the server) -> retrying with
the 4xx reply -> delivered once; SIGKILL right after the write -> remount
-> delivered (at least once); cp of 50 files -> 50 delivered, none twice;
save_sent = no; implicit TLS with sent_folder.  Submission stalled by a
TCP proxy (tests/harness/faultproxy.py) between mailfs and Dovecot, with
a long SMTP timeout: getfattr answers "sending" promptly, .mailfs/status
too, a second cp into outbox/ completes promptly and waits "queued";
after the stall both arrive exactly once; rm of a message stuck in
submission returns promptly, abandons the stalled connection and the
message never arrives; rewriting one stuck in submission sends the new
contents only; unmounting with one stuck in submission is prompt, and
after the remount it is delivered exactly once.  A password only in netrc_file logs in to IMAP and to
submission.  A Sent folder that refuses the APPEND: delivered once, never
again, the file stays with "failed: sent, but not saved to Sent: ...".

Needs the private servers from tests/harness/start.sh (with submission and
Postfix).  Environment: MAILFS_BIN (default ./mailfs), MAILFS_TEST_DIR,
MAILFS_TEST_LABEL.  Every subject carries "mailfs-outbox <random token>",
so reruns on a non-fresh server stay correct; the messages this test
delivered are expunged at the end.  Prints one "PASS: ..." or
"FAIL: ...: detail" line per check; exits 1 when anything failed.
"""

import email
import email.utils
import os
import re
import secrets
import signal
import stat
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (Mount, OUTBOX_WAIT, OutboxDir, Subjects, check_mount,  # noqa: E402
                       file_size, files_holding, imaptest as it, later, mailfs_env, mounted,
                       password_forms, ready_to_send, run_harness, setup_test, unmount_and_check,
                       wait_for, write_config_file)
import smtptest as st  # noqa: E402  (tests/harness is on sys.path via mounttest)

BIN, LABEL, C, H, RUN = setup_test("outbox")
ACCOUNT = "alice@test"             # STARTTLS submission, defaults elsewhere
NOSENT = "nosent@test"             # save_sent = no, outbox_dir set
SMTPS = "smtps@test"               # implicit TLS, sent_folder = Archive
STALL = "stall@test"               # submission through a stalling proxy
NETRC = "netrc@test"               # password only in a netrc file
UNSAVED = "unsaved@test"           # Sent folder that refuses the APPEND
TAG = "mailfs-outbox"
TOKEN = secrets.token_hex(4)
ALICE = st.address(H, "alice") if H.get("users") else "alice@mailfs.test"
BOB = st.address(H, "bob") if H.get("users") else "bob@mailfs.test"
NOBODY = "nobody-%s@%s" % (TOKEN, H.get("mail_domain", "mailfs.test"))
WAIT = OUTBOX_WAIT                 # seconds for anything that should happen
BULK = 50
BULK_WAIT = 180
MOUNT_TIMEOUT = 90
STATUS = "user.mail.status"
# A call that is answered without waiting on the network takes well under
# a second; one that waits for a stalled submission takes STALL_TIMEOUT.
PROMPT = 5
STALL_TIMEOUT = 60


S = Subjects(lambda: H, TAG, TOKEN)    # S(case): the unique subject of one case
arrived = S.arrived
now_count = S.count


def mid(case):
    return "<%s.%s@client.mailfs.test>" % (re.sub(r"[^A-Za-z0-9.-]", "-", case), TOKEN)


def message(case, headers=None, body=None, crlf=False):
    """A message file: the given header lines (default: a complete header
    from alice to bob), then the body."""
    if headers is None:
        headers = ["From: Alice Example <%s>" % ALICE, "To: Bob Example <%s>" % BOB,
                   "Subject: " + S(case), "Date: " + email.utils.formatdate(localtime=True),
                   "Message-ID: " + mid(case), "MIME-Version: 1.0",
                   "Content-Type: text/plain; charset=utf-8"]
    if body is None:
        body = "Hello Bob,\n\nthis is the %s case (%s).\n\n-- \nAlice\n" % (case, TOKEN)
    text = "\n".join(headers) + "\n\n" + body
    if crlf:
        text = text.replace("\n", "\r\n")
    return text.encode("utf-8")


# --- file side ------------------------------------------------------------------

class Outbox(OutboxDir):
    """The mounted outbox/ and the on-disk outbox_dir behind it."""

    def __init__(self, mnt, disk_root):
        super().__init__(mnt)
        self.disk_root = disk_root      # outbox_dir, or a directory above it

    def on_disk(self, data):
        """Files under outbox_dir holding exactly these bytes."""
        hits = []
        for d, _, fs in os.walk(self.disk_root):
            for f in fs:
                p = os.path.join(d, f)
                try:
                    if os.path.getsize(p) == len(data):
                        with open(p, "rb") as fh:
                            if fh.read() == data:
                                hits.append(p)
                except OSError:
                    pass
        return hits


def wait_logins(since, user="alice", timeout=5):
    """Dovecot's submission login lines for user since a log offset (the
    log process writes them a moment after the reply)."""
    return wait_for(lambda: [ln for ln in st.submission_logins(H, since)
                               if "user=<%s>" % user in ln], timeout) or []


# --- server side ----------------------------------------------------------------

def addrs(msg, name):
    return [a.lower() for _, a in email.utils.getaddresses([str(v) for v in msg.get_all(name, [])])]


# --- mounting -------------------------------------------------------------------

def write_config():
    common = ("host = 127.0.0.1\nport = %d\nuser = alice\ntls = implicit\nca_file = %s\n"
              "password_command = cat %s\nsmtp_host = 127.0.0.1\nfrom = %s\n"
              "settle_time = 1\nretry_initial = 1\nretry_max_delay = 2\n"
              % (H["imaps_port"], H["ca_file"], H["users"]["alice"]["password_file"], ALICE))
    text = ("[%s]\n%ssmtp_port = %d\nsmtp_tls = starttls\nsave_sent = yes\nlog_file = %s\n\n"
            % (ACCOUNT, common, H["submission_port"], os.path.join(RUN, "mailfs.log")))
    text += ("[%s]\n%ssmtp_port = %d\nsmtp_tls = starttls\nsave_sent = no\noutbox_dir = %s\n"
             "cache_dir = %s\nlog_file = %s\n\n"
             % (NOSENT, common, H["submission_port"], os.path.join(RUN, "outbox-nosent"),
                os.path.join(RUN, "cache-nosent"), os.path.join(RUN, "nosent.log")))
    text += ("[%s]\n%ssmtp_port = %d\nsmtp_tls = implicit\nsent_folder = Archive\noutbox_dir = %s\n"
             "cache_dir = %s\nlog_file = %s\n\n"
             % (SMTPS, common, H["submissions_port"], os.path.join(RUN, "outbox-smtps"),
                os.path.join(RUN, "cache-smtps"), os.path.join(RUN, "smtps.log")))
    write_config_file(RUN, text)


def add_account(name, lines):
    """Append an account section to the config file (read at mount)."""
    with open(os.path.join(RUN, "config", "mailfs", "config"), "a") as f:
        f.write("[%s]\n%s\n\n" % (name, "\n".join(lines)))


def account_lines(tag, password=True):
    """Settings shared by the accounts added per case; own spool, cache
    and log under RUN/<tag>."""
    lines = ["host = 127.0.0.1", "port = %d" % H["imaps_port"], "user = alice", "tls = implicit",
             "ca_file = %s" % H["ca_file"], "smtp_host = 127.0.0.1", "smtp_tls = starttls",
             "from = %s" % ALICE, "settle_time = 1", "retry_initial = 1", "retry_max_delay = 2",
             "outbox_dir = %s" % os.path.join(RUN, "outbox-" + tag),
             "cache_dir = %s" % os.path.join(RUN, "cache-" + tag),
             "log_file = %s" % os.path.join(RUN, tag + ".log")]
    if password:
        lines.append("password_command = cat %s" % H["users"]["alice"]["password_file"])
    return lines


def timed(argv, timeout=4 * PROMPT):
    """Run a plain tool: (exit status or None if still running after
    timeout, its output (and error output if it failed), seconds taken)."""
    t0 = time.time()
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        out = r.stdout.decode("utf-8", "replace").strip()
        if r.returncode:
            out += " [stderr: %s]" % r.stderr.decode("utf-8", "replace").strip()
        return r.returncode, out, time.time() - t0
    except subprocess.TimeoutExpired:
        return None, "still blocked after %d s (killed)" % timeout, time.time() - t0


def mount(account, mp_name, what):
    return check_mount(C, Mount(BIN, [], account, os.path.join(RUN, mp_name), mailfs_env(RUN),
                                MOUNT_TIMEOUT), "%s: mount %s" % (what, account))


def finish(mnt, what, logs=()):
    unmount_and_check(C, mnt, what, logs, "the daemon's output or log")


# --- the cases ------------------------------------------------------------------

def case_dir(ob):
    try:
        st_ = os.stat(ob.dir)
    except OSError as e:
        C.fail("outbox/ exists at the mount root", e)
        return False
    C.check(stat.S_ISDIR(st_.st_mode) and os.access(ob.dir, os.W_OK)
            and "outbox" in os.listdir(ob.mnt.mountpoint),
            "outbox/ is a writable directory listed at the mount root",
            "mode %o, in listing: %s" % (st_.st_mode, "outbox" in os.listdir(ob.mnt.mountpoint)))
    return True


def case_simple(ob, since):
    case = "simple"
    body_text = "Hello Bob,\n\nthe simple case, %s.\n\n-- \nAlice\n" % TOKEN
    raw = message(case, body=body_text)
    sent0 = st.count(H, "alice", "Sent")
    err = ob.put("simple.eml", raw)
    if not C.check(err is None, "simple: write simple.eml into outbox/ (open, write, close)", err):
        return
    # Right after close(): durable on disk, and waiting.
    hits = ob.on_disk(raw)
    s = ob.status("simple.eml")
    C.check(hits, "simple: when close() returns the exact bytes are in outbox_dir (%s)" % ob.disk_root,
            "no file with these %d bytes under it" % len(raw))
    C.check(s in ("queued", "sending"), "simple: user.mail.status right after close() is queued (or sending)",
            "status %r" % s)
    r = subprocess.run(["getfattr", "--only-values", "-n", STATUS, ob.path("simple.eml")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    C.check(r.returncode == 0 and r.stdout.decode().strip() in ("queued", "sending"),
            "simple: getfattr -n user.mail.status FILE works", (r.returncode, r.stdout, r.stderr))

    got = arrived("bob", "INBOX", case)
    gone = ob.wait_gone("simple.eml", later(got))
    C.check(gone, "simple: the file disappears from outbox/ after sending", "status %r" % ob.status("simple.eml"))
    got = st.find(H, "bob", "INBOX", S(case))
    C.equal(len(got), 1, "simple: arrives in bob's INBOX exactly once")
    sent = st.wait_for(H, "alice", "Sent", S(case), timeout=later(got))
    C.check(len(sent) == 1 and "\\Seen" in sent[0]["flags"],
            "simple: one copy in alice's Sent, flagged \\Seen",
            "%d copies, flags %s" % (len(sent), [m["flags"] for m in sent]))
    C.check(st.count(H, "alice", "Sent") == sent0 + 1, "simple: Sent grew by exactly one message",
            "%d before, %d after" % (sent0, st.count(H, "alice", "Sent")))
    C.check(not ob.on_disk(raw), "simple: the bytes are gone from outbox_dir once sent",
            ob.on_disk(raw)[:3])
    if got:
        m = st.parse(got[0]["raw"])
        body = m.get_body(("plain",))
        probs = []
        if str(m.get("Message-ID", "")).strip() != mid(case):
            probs.append("Message-ID %r" % m.get("Message-ID"))
        if addrs(m, "From") != [ALICE] or addrs(m, "To") != [BOB]:
            probs.append("From %r To %r" % (m.get("From"), m.get("To")))
        if body is None or body.get_content().replace("\r\n", "\n") != body_text:
            probs.append("body differs: %r" % (body.get_content()[:200] if body else None))
        rp = str(m.get("Return-Path", ""))
        if ALICE not in rp.lower():
            probs.append("envelope sender (Return-Path) %r" % rp)
        C.problems(probs, "simple: bob's copy has the file's Message-ID, From, To and body; envelope "
                   "sender is alice")
    logins = wait_logins(since)
    C.check(logins and all(", TLS" in ln and "secured" not in ln for ln in logins),
            "simple: mailfs used STARTTLS (every submission login TLS per Dovecot's log)",
            logins[:3] or "no submission login by alice in Dovecot's log")


def case_fill(ob):
    case = "fill-in"
    raw = message(case, headers=["To: %s" % BOB, "Subject: " + S(case)],
                  body="No From, Date, Message-ID or MIME-Version in the file.\n")
    t0 = time.time()
    err = ob.put("fill.eml", raw)
    if not C.check(err is None, "fill-in: write a message with only To and Subject", err):
        return
    got = arrived("bob", "INBOX", case)
    ob.wait_gone("fill.eml", later(got))
    if not C.check(len(got) == 1, "fill-in: arrives in bob's INBOX exactly once",
                   "%d copies; status %r" % (len(got), ob.status("fill.eml"))):
        C.fail("fill-in: From/Date/Message-ID/MIME-Version added", "not checked: not delivered")
        return
    m = st.parse(got[0]["raw"])
    names = st.header_names(got[0]["raw"])
    probs = []
    if addrs(m, "From") != [ALICE]:
        probs.append("From %r, want %s (the from setting)" % (m.get("From"), ALICE))
    try:
        dt = email.utils.parsedate_to_datetime(str(m.get("Date")))
        if dt.tzinfo is None or abs(dt.timestamp() - t0) > 600:
            probs.append("Date %r is not now" % m.get("Date"))
    except (TypeError, ValueError):
        probs.append("Date %r does not parse" % m.get("Date"))
    msgid = str(m.get("Message-ID", "")).strip()
    if not re.match(r"^<[^<>@\s]+@[^<>@\s]+>$", msgid):
        probs.append("Message-ID %r" % msgid)
    if str(m.get("MIME-Version", "")).strip() != "1.0":
        probs.append("MIME-Version %r" % m.get("MIME-Version"))
    for h in ("from", "date", "message-id", "mime-version"):
        if names.count(h) != 1:
            probs.append("%d %s fields" % (names.count(h), h))
    C.problems(probs, "fill-in: From (= from setting), Date (now), Message-ID, MIME-Version 1.0 added once each")
    sent = st.wait_for(H, "alice", "Sent", S(case))
    C.check(len(sent) == 1 and str(st.parse(sent[0]["raw"]).get("Message-ID", "")).strip() == msgid,
            "fill-in: the Sent copy carries the same generated Message-ID",
            "%d Sent copies; %r vs %r" % (len(sent), sent and st.parse(sent[0]["raw"]).get("Message-ID"), msgid))


def case_bcc(ob):
    case = "bcc"
    raw = message(case, headers=["From: %s" % ALICE, "To: Alice <%s>" % ALICE, "Bcc: %s" % BOB,
                                 "Subject: " + S(case), "Date: " + email.utils.formatdate(),
                                 "Message-ID: " + mid(case)])
    err = ob.put("bcc.eml", raw)
    if not C.check(err is None, "bcc: write a message To alice, Bcc bob", err):
        return
    b = arrived("bob", "INBOX", case)
    a = arrived("alice", "INBOX", case, timeout=later(b))
    ob.wait_gone("bcc.eml", later(b))
    sent = st.wait_for(H, "alice", "Sent", S(case), timeout=later(b))
    b, a = st.find(H, "bob", "INBOX", S(case)), st.find(H, "alice", "INBOX", S(case))
    C.check(len(b) == 1 and len(a) == 1, "bcc: delivered once to the Bcc (bob) and once to the To (alice)",
            "bob %d, alice %d; status %r" % (len(b), len(a), ob.status("bcc.eml")))
    probs = ["%s has a Bcc header" % w for w, ms in (("bob's copy", b), ("alice's copy", a), ("Sent copy", sent))
             for m in ms if "bcc" in st.header_names(m["raw"])]
    probs += ["Sent copy names bob in its header" for m in sent
              if BOB.encode() in m["raw"].split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0].lower()]
    C.check(sent and not probs, "bcc: no Bcc header in bob's, alice's or the Sent copy",
            "; ".join(probs) or "no Sent copy")


def case_cc(ob):
    case = "cc display names"
    raw = message(case, crlf=True, headers=[
        "From: \"Example, Alice\" <%s>" % ALICE, "To: \"Alice A.\" <%s>" % ALICE,
        "Cc: \"Smith, Bob (work)\" <%s>" % BOB, "Subject: " + S(case),
        "Date: " + email.utils.formatdate(), "Message-ID: " + mid(case)])
    err = ob.put("cc.eml", raw)
    if not C.check(err is None, "cc: write a CRLF message To alice, Cc bob, quoted display names with commas", err):
        return
    b = arrived("bob", "INBOX", case)
    arrived("alice", "INBOX", case, timeout=later(b))
    ob.wait_gone("cc.eml", later(b))
    b, a = st.find(H, "bob", "INBOX", S(case)), st.find(H, "alice", "INBOX", S(case))
    C.check(len(b) == 1 and len(a) == 1, "cc: delivered once to To and once to Cc",
            "bob %d, alice %d; status %r" % (len(b), len(a), ob.status("cc.eml")))


BAD = [
    ("bad-norcpt.eml", "no recipient",
     lambda: message("bad no recipient", headers=["From: %s" % ALICE, "Subject: " + S("bad no recipient")])),
    ("bad-addr.eml", "unparsable address (double @)",
     lambda: message("bad addr", headers=["To: bob@@%s" % H.get("mail_domain", "mailfs.test"),
                                          "Subject: " + S("bad addr")])),
    ("bad-addr2.eml", "unparsable address (unclosed angle bracket)",
     lambda: message("bad addr2", headers=["To: Bob <%s" % BOB, "Subject: " + S("bad addr2")])),
    ("bad-cr.eml", "bare CR in a header (injection)",
     lambda: ("From: %s\nTo: %s\nSubject: %s\rBcc: %s\nDate: %s\n\nbody\n"
              % (ALICE, ALICE, S("bad cr"), BOB, email.utils.formatdate())).encode()),
    ("bad-nul.eml", "NUL byte in a header",
     lambda: ("From: %s\nTo: %s\nSubject: %s \0 nul\n\nbody\n" % (ALICE, BOB, S("bad nul"))).encode()),
    ("bad-binary.eml", "binary garbage",
     lambda: b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)) * 8 + secrets.token_bytes(2048)),
    ("bad-noheader.eml", "text without a header",
     lambda: ("Hello Bob,\n\nthis file has no header at all, %s.\nJust text.\n" % S("bad noheader")).encode()),
    ("bad-empty.eml", "empty file", lambda: b""),
]


def case_bad_inputs(ob):
    before = {k: st.count(H, *k) for k in (("bob", "INBOX"), ("alice", "INBOX"), ("alice", "Sent"))}
    written = []
    for name, what, make in BAD:
        err = ob.put(name, make())
        if C.check(err is None, "bad input (%s): write %s" % (what, name), err):
            written.append((name, what))
    # One deadline for all of them.
    wait_for(lambda: all((ob.status(n) or "").startswith("failed:") for n, _ in written), WAIT)
    for name, what in written:
        s = ob.status(name)
        C.check(s is not None and re.match(r"^failed: \S", s),
                "bad input (%s): status becomes 'failed: <reason>'" % what, "status %r" % s)
        e = ob.error_text(name)
        C.check(e is not None and e.strip(), "bad input (%s): %s.error exists, is readable and gives the reason"
                % (what, name), "missing" if e is None else "empty")
    # A good message written after them: once it has arrived, anything the
    # bad ones would have produced would have arrived too.
    sentinel = message("bad sentinel")
    ob.put("bad-sentinel.eml", sentinel)
    got = arrived("bob", "INBOX", "bad sentinel")
    ob.wait_gone("bad-sentinel.eml", later(got))
    st.wait_for(H, "alice", "Sent", S("bad sentinel"), timeout=later(got))
    after = {k: st.count(H, *k) for k in before}
    want = dict(before)
    want[("bob", "INBOX")] += 1
    want[("alice", "Sent")] += 1
    C.check(len(got) == 1 and after == want,
            "bad inputs: nothing of them arrives anywhere (only the good message written after them)",
            "counts before %s, after %s; sentinel copies %d" % (
                {"/".join(k): v for k, v in before.items()}, {"/".join(k): v for k, v in after.items()},
                len(got)))
    still = [n for n, _ in written if not ob.exists(n)]
    C.check(not still, "bad inputs: the failed files stay in outbox/ (for the user to see)",
            "gone: %s" % still)
    ob.remove(*[n for n, _ in written])
    ob.remove(*[n + ".error" for n, _ in written])
    left = [n for n, _ in written if ob.exists(n)]
    C.check(not left, "bad inputs: rm of a failed file works", "still there: %s" % left)


def case_bad_recipient(ob):
    case = "one bad recipient"
    raw = message(case, headers=["From: %s" % ALICE, "To: Bob <%s>, Nobody <%s>" % (BOB, NOBODY),
                                 "Cc: %s" % ALICE, "Subject: " + S(case),
                                 "Date: " + email.utils.formatdate(), "Message-ID: " + mid(case)])
    err = ob.put("badrcpt.eml", raw)
    if not C.check(err is None, "bad recipient: write a message to bob, %s (unknown) and alice" % NOBODY, err):
        return
    b = arrived("bob", "INBOX", case)
    arrived("alice", "INBOX", case, timeout=later(b))
    # The failing address must be reported: in the status of the file if it
    # stays, or in its .error file.
    def reported():
        s = ob.status("badrcpt.eml") or ""
        e = ob.error_text("badrcpt.eml") or ""
        return NOBODY.lower() in (s + "\n" + e).lower()
    rep = wait_for(reported, WAIT)
    b, a = st.find(H, "bob", "INBOX", S(case)), st.find(H, "alice", "INBOX", S(case))
    C.check(len(b) == 1 and len(a) == 1,
            "bad recipient: the good recipients (bob, alice) still get it, exactly once",
            "bob %d, alice %d" % (len(b), len(a)))
    C.check(rep, "bad recipient: the refused address appears in the status or in badrcpt.eml.error",
            "status %r, .error %r" % (ob.status("badrcpt.eml"), (ob.error_text("badrcpt.eml") or "")[:200]))
    ob.remove("badrcpt.eml", "badrcpt.eml.error")


TEMPS = [".draft-hidden.eml", "draft.eml~", ".draft.eml.swp", "draft.swp", "draft.tmp",
         "#draft#", ".#draft"]


def case_temps(ob):
    written = []
    for n in TEMPS:
        err = ob.put(n, message("temp " + n))
        if err is None:
            written.append(n)
    C.check(len(written) == len(TEMPS), "temp names: write %s" % " ".join(TEMPS),
            "written only %s" % written)
    # Deleted before it settled: cancelled.
    err = ob.put("cancel.eml", message("cancelled"))
    try:
        os.unlink(ob.path("cancel.eml"))
    except OSError as e:
        err = err or str(e)
    C.check(err is None and not ob.exists("cancel.eml"), "cancel: write then rm a file in outbox/", err)
    ob.put("temp-sentinel.eml", message("temp sentinel"))
    got = arrived("bob", "INBOX", "temp sentinel")
    ob.wait_gone("temp-sentinel.eml", later(got))
    C.equal(len(got), 1, "temp names: a normal file written after them is delivered once")
    sent = [m["subject"] for m in st.find(H, "bob", "INBOX", S("temp "), exact=False)
            if m["subject"] != S("temp sentinel")]
    C.check(not sent, "temp names: dot files and editor temporaries (*~ *.swp *.tmp #*# .#*) are not sent",
            "sent: %s" % sent)
    C.equal(now_count("bob", "INBOX", "cancelled"), 0, "cancel: a file removed from outbox/ is never sent")
    missing = [n for n in written if not ob.exists(n)]
    C.check(not missing, "temp names: they stay in outbox/ untouched", "gone: %s" % missing)
    # Renamed to a normal name: sent.
    renamed = []
    for old, new in (("draft.tmp", "draft-final.eml"), (".draft-hidden.eml", "hidden-final.eml")):
        try:
            os.rename(ob.path(old), ob.path(new))
            renamed.append((old, new))
        except OSError as e:
            C.fail("temp names: rename %s to %s inside outbox/" % (old, new), e)
    for old, new in renamed:
        got = arrived("bob", "INBOX", "temp " + old)
        ob.wait_gone(new, later(got))
        got = st.find(H, "bob", "INBOX", S("temp " + old))
        C.check(len(got) == 1 and not ob.exists(new),
                "temp names: %s renamed to %s is sent exactly once and leaves outbox/" % (old, new),
                "%d copies; status %r" % (len(got), ob.status(new)))
    ob.remove(*TEMPS)
    left = [n for n in TEMPS if ob.exists(n)]
    C.check(not left, "temp names: rm of the remaining ones works", "still there: %s" % left)
    C.check(not [m for m in st.find(H, "bob", "INBOX", S("temp "), exact=False)
                 if m["subject"] not in (S("temp sentinel"), S("temp draft.tmp"), S("temp .draft-hidden.eml"))],
            "temp names: the removed ones were never sent", "some were")


def case_down(ob):
    ok, out = run_harness(H, "submission.sh", "stop")
    if not C.check(ok, "submission down: tests/harness/submission.sh stop", out):
        return
    try:
        errs = [e for e in (ob.put("down.eml", message("server down")),
                            ob.put("down-cancel.eml", message("down cancelled"))) if e]
        C.check(not errs, "submission down: write two messages", errs)
        s = ob.wait_status("down.eml", "retrying:")
        C.check(s is not None and re.match(r"^retrying: .+; next .+", s),
                "submission down: status becomes 'retrying: <reply>; next <time>', file stays",
                "status %r" % s)
        s2 = ob.wait_status("down-cancel.eml", "retrying:")
        ob.remove("down-cancel.eml")
        C.check(s2 and s2.startswith("retrying:") and not ob.exists("down-cancel.eml"),
                "submission down: rm of a message waiting for a retry works", "status was %r" % s2)
        C.equal(now_count("bob", "INBOX", "server down"), 0, "submission down: nothing delivered meanwhile")
    finally:
        ok, out = run_harness(H, "submission.sh", "start")
        C.check(ok, "submission down: tests/harness/submission.sh start", out)
    got = arrived("bob", "INBOX", "server down")
    gone = ob.wait_gone("down.eml", later(got))
    got = st.find(H, "bob", "INBOX", S("server down"))
    C.check(len(got) == 1 and gone, "submission back: the waiting message is delivered exactly once and leaves outbox/",
            "%d copies; status %r" % (len(got), ob.status("down.eml")))
    C.equal(now_count("bob", "INBOX", "down cancelled"), 0, "submission back: the removed one is never sent")


def case_relay_down(ob):
    ok, out = run_harness(H, "postfix.sh", "stop")
    if not C.check(ok, "4xx: stop the relay (submission answers 421 4.4.0)", out):
        return
    try:
        err = ob.put("relay.eml", message("relay down"))
        C.check(err is None, "4xx: write a message", err)
        # The first try can end in a dropped connection instead (Dovecot
        # hanging up before its 421 is out: "no reply to MAIL FROM"): a
        # retrying status too, but the 421 must come by the next try.
        s = ob.wait_status("relay.eml", "retrying:", pattern=r"\b4\d\d\b.*; next ")
        C.check(s is not None and s.startswith("retrying:") and re.search(r"\b4\d\d\b", s) and "; next " in s,
                "4xx: status becomes 'retrying: <the server's 4xx reply>; next <time>'", "status %r" % s)
    finally:
        ok, out = run_harness(H, "postfix.sh", "start")
        C.check(ok, "4xx: start the relay again", out)
    got = arrived("bob", "INBOX", "relay down")
    gone = ob.wait_gone("relay.eml", later(got))
    got = st.find(H, "bob", "INBOX", S("relay down"))
    C.check(len(got) == 1 and gone, "4xx: after the relay is back it is delivered exactly once and leaves outbox/",
            "%d copies; status %r" % (len(got), ob.status("relay.eml")))


def case_crash(ob):
    """SIGKILL right after close(); returns the new Outbox (remounted) or None."""
    raw = message("crash")
    mnt = ob.mnt
    err = ob.put("crash.eml", raw)
    try:
        os.kill(mnt.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    C.check(err is None, "SIGKILL: write crash.eml, then kill -9 the daemon at once", err)
    mnt.unmount(timeout=10)      # reaps it; fusermount3 -u (-uz) the dead mount
    C.check(not mounted(mnt.mountpoint), "SIGKILL: the dead mount is unmounted", "still mounted")
    C.check(ob.on_disk(raw), "SIGKILL: the bytes written before close() returned are in outbox_dir",
            "no file with these %d bytes under %s" % (len(raw), ob.disk_root))
    new = mount(ACCOUNT, "mnt", "SIGKILL: remount")
    if new is None:
        return None
    nob = Outbox(new, ob.disk_root)
    got = arrived("bob", "INBOX", "crash")
    gone = nob.wait_gone("crash.eml", later(got))
    n = now_count("bob", "INBOX", "crash")
    C.check(n >= 1 and gone, "SIGKILL: after the remount the message is delivered and leaves outbox/",
            "%d copies; status %r" % (n, nob.status("crash.eml")))
    if n > 1:
        print("# note: SIGKILL case delivered %d times (at-least-once allows it)" % n, flush=True)
    return nob


def case_bulk(ob):
    src = os.path.join(RUN, "bulk")
    os.makedirs(src, exist_ok=True)
    files = []
    for i in range(BULK):
        p = os.path.join(src, "bulk-%02d.eml" % i)
        with open(p, "wb") as f:
            f.write(message("bulk %02d" % i))
        files.append(p)
    sent0 = st.count(H, "alice", "Sent")
    r = subprocess.run(["cp"] + files + [ob.dir], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    C.check(r.returncode == 0, "bulk: cp of %d files into outbox/ at once" % BULK, r.stdout[-300:])
    names = [os.path.basename(p) for p in files]

    def delivered():
        return {m["subject"] for m in st.find(H, "bob", "INBOX", S("bulk "), exact=False)}
    want = {S("bulk %02d" % i) for i in range(BULK)}
    done = wait_for(lambda: delivered() >= want, BULK_WAIT, step=1)
    wait_for(lambda: not [n for n in names if ob.exists(n)], later(done), step=0.5)
    got = st.find(H, "bob", "INBOX", S("bulk "), exact=False)
    subjects = [m["subject"] for m in got]
    mids = [str(st.parse(m["raw"]).get("Message-ID", "")).strip() for m in got]
    dup = sorted({s for s in subjects if subjects.count(s) > 1})
    C.check(set(subjects) == want, "bulk: all %d delivered to bob" % BULK,
            "%d of %d; missing e.g. %s" % (len(set(subjects) & want), BULK, sorted(want - set(subjects))[:3]))
    C.check(not dup and len(set(mids)) == len(mids) == len(subjects),
            "bulk: none delivered twice (unique Subjects and Message-IDs)",
            "duplicates: %s; %d Message-IDs for %d messages" % (dup[:5], len(set(mids)), len(subjects)))
    left = [n for n in names if ob.exists(n)]
    C.check(not left, "bulk: outbox/ is empty of them afterwards", "%d left, e.g. %s" % (len(left), left[:3]))
    C.check(st.count(H, "alice", "Sent") == sent0 + BULK, "bulk: Sent grew by exactly %d" % BULK,
            "%d before, %d after" % (sent0, st.count(H, "alice", "Sent")))


def case_nosent():
    mnt = mount(NOSENT, "mnt-nosent", "save_sent = no")
    if mnt is None:
        return
    try:
        ob = Outbox(mnt, os.path.join(RUN, "outbox-nosent"))
        raw = message("nosent")
        sent0 = st.count(H, "alice", "Sent")
        err = ob.put("nosent.eml", raw)
        C.check(err is None and ob.on_disk(raw),
                "outbox_dir = DIR: the written bytes are in that directory when close() returns",
                err or "not under %s" % ob.disk_root)
        got = arrived("bob", "INBOX", "nosent")
        gone = ob.wait_gone("nosent.eml", later(got))
        C.check(len(got) == 1 and gone, "save_sent = no: delivered to bob once, file leaves outbox/",
                "%d copies; status %r" % (len(got), ob.status("nosent.eml")))
        # The Sent append comes before the file leaves outbox/: no wait.
        C.check(st.count(H, "alice", "Sent") == sent0 and now_count("alice", "Sent", "nosent") == 0,
                "save_sent = no: nothing new in Sent", "Sent %d -> %d" % (sent0, st.count(H, "alice", "Sent")))
    finally:
        finish(mnt, "save_sent = no mount", [os.path.join(RUN, "nosent.log")])


def case_smtps():
    since = file_size(H["dovecot_log"])
    mnt = mount(SMTPS, "mnt-smtps", "implicit TLS")
    if mnt is None:
        return
    try:
        ob = Outbox(mnt, os.path.join(RUN, "outbox-smtps"))
        err = ob.put("smtps.eml", message("implicit tls"))
        C.check(err is None, "implicit TLS: write a message", err)
        got = arrived("bob", "INBOX", "implicit tls")
        gone = ob.wait_gone("smtps.eml", later(got))
        C.check(len(got) == 1 and gone, "implicit TLS (smtp_tls = implicit, port %d): delivered once"
                % H["submissions_port"], "%d copies; status %r" % (len(got), ob.status("smtps.eml")))
        arch = st.wait_for(H, "alice", "Archive", S("implicit tls"), timeout=later(got))
        C.check(len(arch) == 1 and "\\Seen" in arch[0]["flags"] and now_count("alice", "Sent", "implicit tls") == 0,
                "sent_folder = Archive: the copy goes to Archive (\\Seen), not Sent",
                "%d in Archive, %d in Sent" % (len(arch), now_count("alice", "Sent", "implicit tls")))
        logins = wait_logins(since)
        C.check(logins and all(", TLS" in ln for ln in logins), "implicit TLS: the submission login is TLS",
                logins[:2] or "no login")
    finally:
        finish(mnt, "implicit TLS mount", [os.path.join(RUN, "smtps.log")])


def case_stall():
    """Submission through a proxy that stalls every connection: the FUSE
    side must not wait for the network."""
    from faultproxy import FaultProxy
    proxy = FaultProxy(H["submission_port"])
    port = proxy.start()
    # Every connection stalls from its first byte (before the greeting)
    # until the mode changes; held-back bytes are relayed afterwards.
    proxy.set_mode("stall")
    add_account(STALL, account_lines("stall") + ["smtp_port = %d" % port,
                                                 "timeout = %d" % STALL_TIMEOUT])
    mnt = mount(STALL, "mnt-stall", "stalled submission")
    if mnt is None:
        proxy.stop()
        return
    try:
        ob = Outbox(mnt, os.path.join(RUN, "outbox-stall"))
        stall_first(ob, proxy)
        stall_cancel(ob, proxy)
        stall_rewrite(ob, proxy)
        mnt = stall_unmount(ob, proxy) or mnt
        C.check(not proxy.errors, "stall: the proxy itself had no errors", proxy.errors)
    finally:
        proxy.set_mode("pass")
        if mounted(mnt.mountpoint) or mnt.proc.poll() is None:
            finish(mnt, "stalled submission mount", [os.path.join(RUN, "stall.log")])
        proxy.stop()


def stall_unmount(ob, proxy):
    """Unmount while a message is stuck in submission, then mount again:
    returns the new Mount (or None)."""
    proxy.set_mode("stall")
    before = proxy.injected("stall")
    err = ob.put("unmount.eml", message("stuck unmount"))
    s = ob.wait_status("unmount.eml", "sending")
    if not C.check(err is None and s == "sending" and wait_stalled(proxy, before),
                   "stall: a fourth message gets stuck in submission ('sending')",
                   "%s; status %r" % (err, s)):
        return None
    t0 = time.time()
    finish(ob.mnt, "stall: unmount with a message stuck in submission",
           [os.path.join(RUN, "stall.log")])
    secs = time.time() - t0
    # Generous: the point is not waiting out the SMTP timeout (STALL_TIMEOUT).
    C.check(secs < 2 * PROMPT, "stall: the unmount does not wait for the stalled server (%d s bound)"
            % (2 * PROMPT), "took %.1f s" % secs)
    proxy.set_mode("pass")
    mnt = mount(STALL, "mnt-stall", "stall: remount")
    if mnt is None:
        return None
    nob = Outbox(mnt, ob.disk_root)
    got = arrived("bob", "INBOX", "stuck unmount")
    gone = nob.wait_gone("unmount.eml", later(got))
    got = st.find(H, "bob", "INBOX", S("stuck unmount"))
    C.check(len(got) == 1 and gone,
            "stall: the message interrupted by the unmount is sent after the remount, exactly once",
            "%d copies; status %r" % (len(got), nob.status("unmount.eml")))
    return mnt


def wait_stalled(proxy, before):
    """Wait until the proxy has stalled one more connection than before."""
    return wait_for(lambda: proxy.injected("stall") > before, WAIT)


def stuck(proxy):
    """Before each probe: a submission is held by the proxy right now (in
    stall mode every connection stalls at once).  A probe that blocked
    until the SMTP timeout lets the attempt end; the retry stalls again."""
    return wait_for(lambda: proxy.open_connections() > 0, WAIT)


def stall_first(ob, proxy):
    before = proxy.injected("stall")
    err = ob.put("stuck.eml", message("stuck"))
    if not C.check(err is None, "stall: write stuck.eml into outbox/", err):
        return
    if not C.check(wait_stalled(proxy, before),
                   "stall: mailfs connects to submission through the proxy, which stalls it",
                   "no stalled connection; proxy events %s" % proxy.events[-3:]):
        return
    stuck(proxy)
    rc, out, secs = timed(["getfattr", "--only-values", "-n", STATUS, ob.path("stuck.eml")])
    C.check(rc == 0 and out == "sending" and secs < PROMPT,
            "stall: getfattr -n user.mail.status answers 'sending' within %d s while the message is "
            "stuck in submission" % PROMPT, "exit %s, %r, %.1f s" % (rc, out, secs))
    stuck(proxy)
    rc, out, secs = timed(["cat", os.path.join(ob.mnt.mountpoint, ".mailfs", "status")])
    C.check(rc == 0 and "outbox stuck.eml: sending" in out and secs < PROMPT,
            "stall: cat .mailfs/status answers within %d s and lists stuck.eml as sending" % PROMPT,
            "exit %s, %.1f s: %r" % (rc, secs, out[-300:]))
    src = os.path.join(RUN, "second.eml")
    with open(src, "wb") as f:
        f.write(message("stall second"))
    stuck(proxy)
    rc, out, secs = timed(["cp", src, ob.dir])
    C.check(rc == 0 and secs < PROMPT and ob.exists("second.eml"),
            "stall: a second cp into outbox/ completes within %d s" % PROMPT,
            "exit %s, %.1f s: %r" % (rc, secs, out))
    stuck(proxy)
    rc, out, secs = timed(["getfattr", "--only-values", "-n", STATUS, ob.path("second.eml")])
    C.check(rc == 0 and out == "queued" and secs < PROMPT,
            "stall: the second file waits its turn ('queued', answered within %d s)" % PROMPT,
            "exit %s, %r, %.1f s" % (rc, out, secs))
    C.equal(now_count("bob", "INBOX", "stuck"), 0, "stall: nothing delivered while the submission is stalled")
    proxy.set_mode("pass")          # the stall ends; nothing was lost
    got = arrived("bob", "INBOX", "stuck")
    gone = ob.wait_gone("stuck.eml", later(got))
    got2 = arrived("bob", "INBOX", "stall second", timeout=later(got))
    gone2 = ob.wait_gone("second.eml", later(got2))
    got = st.find(H, "bob", "INBOX", S("stuck"))
    C.check(len(got) == 1 and gone,
            "stall: once the stall ends the stuck message is delivered exactly once and leaves outbox/",
            "%d copies; status %r" % (len(got), ob.status("stuck.eml")))
    got2 = st.find(H, "bob", "INBOX", S("stall second"))
    C.check(len(got2) == 1 and gone2, "stall: the second file is delivered exactly once after it",
            "%d copies; status %r" % (len(got2), ob.status("second.eml")))


def get_stuck(ob, proxy, name, case, nth):
    """Stall submission and write message(case) as name: one check that it
    gets stuck in submission ('sending'); True when it did."""
    proxy.set_mode("stall")
    before = proxy.injected("stall")
    err = ob.put(name, message(case))
    s = ob.wait_status(name, "sending")
    if not C.check(err is None and s == "sending" and wait_stalled(proxy, before),
                   "stall: a %s message gets stuck in submission ('sending')" % nth,
                   "%s; status %r" % (err, s)):
        return False
    stuck(proxy)
    return True


def stall_cancel(ob, proxy):
    if not get_stuck(ob, proxy, "stuck-rm.eml", "stuck removed", "second"):
        return
    rc, out, secs = timed(["rm", ob.path("stuck-rm.eml")])
    C.check(rc == 0 and secs < PROMPT and not ob.exists("stuck-rm.eml"),
            "stall: rm of the message stuck in submission returns within %d s" % PROMPT,
            "exit %s, %.1f s: %r" % (rc, secs, out))
    closed = wait_for(lambda: proxy.open_connections() == 0, 2 * PROMPT)
    C.check(closed, "stall: mailfs abandons the stalled submission of the removed message "
            "(closes the connection without waiting for its timeout)",
            "%d connection(s) still open" % proxy.open_connections())
    proxy.set_mode("pass")
    err = ob.put("after-rm.eml", message("after removed"))
    got = arrived("bob", "INBOX", "after removed")
    ob.wait_gone("after-rm.eml", later(got))
    n = now_count("bob", "INBOX", "stuck removed")
    C.check(err is None and len(got) == 1 and n == 0,
            "stall: the removed message is never delivered (one written after it is, once)",
            "removed one: %d copies; later one: %d copies" % (n, len(got)))


def stall_rewrite(ob, proxy):
    if not get_stuck(ob, proxy, "rewrite.eml", "rewrite old", "third"):
        return
    t0 = time.time()
    err = ob.put("rewrite.eml", message("rewrite new"))
    secs = time.time() - t0
    C.check(err is None and secs < PROMPT,
            "stall: rewriting the message stuck in submission (open O_TRUNC, write, close) takes "
            "under %d s" % PROMPT, "%s; %.1f s" % (err, secs))
    proxy.set_mode("pass")
    got = arrived("bob", "INBOX", "rewrite new")
    gone = ob.wait_gone("rewrite.eml", later(got))
    got = st.find(H, "bob", "INBOX", S("rewrite new"))
    old = now_count("bob", "INBOX", "rewrite old")
    C.check(len(got) == 1 and old == 0 and gone,
            "stall: after the stall the rewritten contents are delivered once, the old ones never, "
            "and the file leaves outbox/",
            "new: %d copies, old: %d copies; status %r" % (len(got), old, ob.status("rewrite.eml")))


def case_netrc():
    """No password command: the password comes from netrc_file, and
    submission must use it too."""
    netrc = os.path.join(H["state_dir"], "netrc-outbox-" + LABEL)   # outside RUN (secret scan)
    fd = os.open(netrc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        # Plain tokens, as every netrc reader (curl's included) takes them.
        f.write("machine 127.0.0.1\n  login alice\n  password %s\n" % it.password(H, "alice"))
    add_account(NETRC, account_lines("netrc", password=False) + [
        "netrc_file = %s" % netrc, "smtp_port = %d" % H["submission_port"]])
    since = file_size(H["dovecot_log"])
    mnt = mount(NETRC, "mnt-netrc", "netrc_file")
    if mnt is None:
        os.unlink(netrc)
        return
    try:
        ob = Outbox(mnt, os.path.join(RUN, "outbox-netrc"))
        err = ob.put("netrc.eml", message("netrc"))
        C.check(err is None, "netrc: write a message", err)
        got = arrived("bob", "INBOX", "netrc")
        gone = ob.wait_gone("netrc.eml", later(got))
        C.check(len(got) == 1 and gone,
                "netrc: with the password only in netrc_file the message is submitted, delivered once "
                "and leaves outbox/", "%d copies; status %r" % (len(got), ob.status("netrc.eml")))
        logins = wait_logins(since)
        C.check(logins, "netrc: Dovecot's log shows alice's submission login", "no login line")
    finally:
        finish(mnt, "netrc mount", [os.path.join(RUN, "netrc.log")])
        os.unlink(netrc)


def case_unsaved():
    """The APPEND to the Sent folder is refused for good: the message was
    sent and must not be sent again; the file stays with its reason."""
    folder = "NoSuchFolder-" + TOKEN
    add_account(UNSAVED, account_lines("unsaved") + [
        "smtp_port = %d" % H["submission_port"], "sent_folder = %s" % folder])
    mnt = mount(UNSAVED, "mnt-unsaved", "Sent refused")
    if mnt is None:
        return
    try:
        ob = Outbox(mnt, os.path.join(RUN, "outbox-unsaved"))
        err = ob.put("unsaved.eml", message("unsaved"))
        C.check(err is None, "Sent refused: write a message (sent_folder names no folder)", err)
        got = arrived("bob", "INBOX", "unsaved")
        s = ob.wait_status("unsaved.eml", "failed:", later(got))
        C.check(s is not None and s.startswith("failed: sent, but not saved to Sent: "),
                "Sent refused: status becomes 'failed: sent, but not saved to Sent: <reason>', file stays",
                "status %r" % s)
        e = ob.error_text("unsaved.eml") or ""
        C.check("not saved to Sent" in e, "Sent refused: a .error file says so", repr(e[:200]))
        time.sleep(4)                # several retry_initial/retry_max periods
        n = now_count("bob", "INBOX", "unsaved")
        C.check(n == 1 and ob.exists("unsaved.eml"),
                "Sent refused: delivered exactly once and never sent again; the file is kept",
                "%d copies; exists %s" % (n, ob.exists("unsaved.eml")))
        ob.remove("unsaved.eml")
        C.check(not ob.exists("unsaved.eml") and ob.error_text("unsaved.eml") is None,
                "Sent refused: rm removes the file and its .error", "still there")
    finally:
        finish(mnt, "Sent refused mount", [os.path.join(RUN, "unsaved.log")])


def check_no_secrets():
    hits, n = files_holding([RUN], password_forms("alice", it.password(H, "alice")))
    C.check(n and not hits, "the password appears in no log, outbox or cache file",
            "found in %s" % hits if hits else "no files")


# --- main -----------------------------------------------------------------------

def main():
    global H
    H = ready_to_send(C, BIN, H, RUN)
    if H is None:
        return 1
    write_config()

    st.selfcheck(H, C.ok, C.fail)
    print("# test_outbox[%s]: token %s" % (LABEL, TOKEN), flush=True)

    try:
        since = file_size(H["dovecot_log"])
        mnt = mount(ACCOUNT, "mnt", "main")
        if mnt is None:
            C.fail("outbox cases", "not checked: no mount")
        else:
            ob = Outbox(mnt, os.path.join(RUN, "data"))
            try:
                if C.case(case_dir, ob):
                    C.case(case_simple, ob, since)
                    C.case(case_fill, ob)
                    C.case(case_bcc, ob)
                    C.case(case_cc, ob)
                    C.case(case_bad_inputs, ob)
                    C.case(case_bad_recipient, ob)
                    C.case(case_temps, ob)
                    C.case(case_down, ob)
                    C.case(case_relay_down, ob)
                    nob = C.case(case_crash, ob)
                    if nob is not None:
                        ob = nob
                        C.case(case_bulk, ob)
                    else:
                        C.fail("bulk", "not checked: no remount after SIGKILL")
            finally:
                if mounted(ob.mnt.mountpoint) or ob.mnt.proc.poll() is None:
                    finish(ob.mnt, "main mount", [os.path.join(RUN, "mailfs.log")])
        C.case(case_nosent)
        C.case(case_smtps)
        C.case(case_stall)
        C.case(case_netrc)
        C.case(case_unsaved)
        check_no_secrets()
    finally:
        # Leave the servers as found: submission and relay up, and none of
        # this test's messages in the mailboxes (test_read compares the tree
        # with the account).
        run_harness(H, "submission.sh", "start")
        run_harness(H, "postfix.sh", "start")
        S.cleanup()

    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
