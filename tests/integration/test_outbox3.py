#!/usr/bin/env python3
"""test_outbox3.py - the outbox under hostile names, many writers, cut
input and a full or read-only spool.

Through plain file operations on the mount, checked with independent
clients (imaplib + the email package on bob's INBOX, getfattr/cp/mv run
with timeouts so that a hang is a FAIL, not a hung test, strace on the
daemon, /proc/PID/stat for its CPU time):

- names: a message copied in under names of 240 to 255 bytes is either
  sent (and its status answers at once) or refused at create, and by mv,
  with ENAMETOOLONG; the daemon does not spin (CPU time over 2 s well
  under what a busy loop burns);
- durability of a cancel: with strace -f on the daemon, rm of a queued
  message and mv within outbox/ are followed by an fsync of the spool
  directory before the next request is answered;
- 70 writers at once (more than the 64 the queue once had room for),
  each pausing longer than settle_time after writing a complete header:
  none is sent before its writer closes it, and each arrives once with
  its whole body;
- cut input: a multipart message cut inside its base64 attachment and a
  single-part base64 message cut mid-group are not sent: status
  "failed: <reason>" and a .error say why; the whole message is sent;
- a full spool (XDG_DATA_HOME on a 1 MB tmpfs mounted by the test): a
  large write fails with ENOSPC at write or close and that file is never
  sent, also once there is room again; a message whose state cannot be written shows
  "retrying: ... No space left on device" while the daemon stays idle
  and getfattr answers; once space returns it goes out, once, and so
  does a new message; the same with the tmpfs remounted read-only.

Needs root (tmpfs, strace) and the private servers from
tests/harness/start.sh (with submission and Postfix).  Environment:
MAILFS_BIN (default ./mailfs), MAILFS_TEST_DIR, MAILFS_TEST_LABEL,
OUTBOX3_ONLY (cases to run, e.g. "names full"; default all).
Subjects carry "mailfs-outbox3 <random token>"; the messages are expunged
at the end.  Prints one "PASS: ..." or "FAIL: ...: detail" line per
check; exits 1 when anything failed.
"""

import base64
import email
import email.utils
import errno
import glob
import os
import re
import secrets
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (Mount, OUTBOX_WAIT, OutboxDir, Subjects, check_mount,  # noqa: E402
                       fresh_run_dir, later, mailfs_env, mounted, on_mount, ready_to_send,
                       setup_test, unmount_and_check, write_config_file)
import smtptest as st  # noqa: E402  (tests/harness is on sys.path via mounttest)

BIN, LABEL, C, H, RUN = setup_test("outbox3")
NAMES = "names3@test"        # long names, on a mount of their own
MAIN = "main3@test"          # writers, cut input
HOLD = "hold3@test"          # settle_time 60: nothing leaves during the strace case
FULL = "full3@test"          # spool on a small tmpfs (XDG_DATA_HOME)
TAG = "mailfs-outbox3"
TOKEN = secrets.token_hex(4)
ALICE = st.address(H, "alice") if H.get("users") else "alice@mailfs.test"
BOB = st.address(H, "bob") if H.get("users") else "bob@mailfs.test"
WAIT = OUTBOX_WAIT
MOUNT_TIMEOUT = 90
PROMPT = 5                   # a call that does not wait on the network
SETTLE = 1
NWRITERS = 70
TMPFS = os.path.join(RUN, "data-full")
FULL_SETTLE = 2
ONLY = os.environ.get("OUTBOX3_ONLY", "").split()   # e.g. "names full": only these


S = Subjects(lambda: H, TAG, TOKEN)    # S(case): the unique subject of one case


def arrived(case, n=1, timeout=WAIT):
    return S.arrived("bob", "INBOX", case, n, timeout)


def now_count(case):
    return S.count("bob", "INBOX", case)


def message(case, body=None, headers=()):
    head = ["From: Alice Example <%s>" % ALICE, "To: Bob Example <%s>" % BOB,
            "Subject: " + S(case), "Date: " + email.utils.formatdate(localtime=True)]
    head += list(headers)
    if body is None:
        body = "Hello Bob,\n\nthis is the %s case (%s).\n" % (case, TOKEN)
    return ("\n".join(head) + "\n\n" + body).encode("utf-8")


def multipart(case, attachment):
    """A multipart/mixed message: a text part and a base64 attachment."""
    b64 = base64.encodebytes(attachment).decode("ascii")
    body = ("This is a multi-part message in MIME format.\n\n"
            "--=_b1\nContent-Type: text/plain; charset=utf-8\n\nSee the attachment (%s).\n\n"
            "--=_b1\nContent-Type: application/octet-stream\n"
            "Content-Transfer-Encoding: base64\n"
            "Content-Disposition: attachment; filename=data.bin\n\n%s\n"
            "--=_b1--\n" % (TOKEN, b64))
    return message(case, body, ["MIME-Version: 1.0",
                                'Content-Type: multipart/mixed; boundary="=_b1"'])


class Outbox(OutboxDir):
    """outbox/ where a status is read with getfattr(1) under a timeout."""

    def wait_status(self, name, prefix, timeout=WAIT):
        """Poll user.mail.status (getfattr, each with a timeout) until it
        starts with prefix; the last value, None when the file is gone, or
        "<no answer: ...>" when getfattr hung (then polling stops)."""
        deadline = time.time() + timeout
        while True:
            if not self.exists(name):
                return None
            ok, s = getfattr(self.path(name))
            if not ok:
                return "<no answer: %s>" % s
            if s.startswith(prefix) or time.time() >= deadline:
                return s
            time.sleep(0.2)


def timed(argv, timeout=PROMPT):
    """(exit status or None when still running after timeout, stdout,
    stderr) of a plain tool, in English.  A tool stuck in a FUSE request
    the daemon never answers cannot be killed: it is left behind (it
    ends when the mount does) instead of hanging the test."""
    env = dict(os.environ, LC_ALL="C")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        try:
            p.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        return None, "", "still blocked after %d s (killed)" % timeout
    return (p.returncode, out.decode("utf-8", "replace").strip(),
            err.decode("utf-8", "replace").strip())


def getfattr(path, timeout=PROMPT):
    """user.mail.status by getfattr(1) with a timeout: (answered, value or
    the reason it did not answer)."""
    rc, out, err = timed(["getfattr", "--only-values", "-n", "user.mail.status", path], timeout)
    if rc == 0:
        return True, out
    return False, err or "exit status %s" % rc


def put(ob, name, data):
    """data into outbox/name by cp(1) with a timeout: None, or the error
    (cp's message, which names ENOSPC as "No space left on device")."""
    src = os.path.join(RUN, "put.tmp")
    with open(src, "wb") as f:
        f.write(data)
    rc, _, err = timed(["cp", src, ob.path(name)], 2 * PROMPT)
    return None if rc == 0 else (err or "exit status %s" % rc)


def rm(ob, *names):
    for n in names:
        timed(["rm", "-f", ob.path(n)])


def cpu_share(pid, seconds=2.0):
    """The share of one CPU the process used over `seconds` (utime+stime
    from /proc/PID/stat), or None when it is gone."""
    def ticks():
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])    # fields 14 and 15
    try:
        t0, c0 = time.time(), ticks()
        time.sleep(seconds)
        t1, c1 = time.time(), ticks()
    except (OSError, IndexError, ValueError):
        return None
    return (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0)


def log_lines(mnt):
    try:
        with open(mnt.log, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def check_idle(mnt, what):
    """Over 2 s the daemon uses little CPU and logs few lines.  A daemon
    going round without a pause burns a core (less on a busy machine:
    0.2-0.4 was seen here) and logs thousands of lines; one that backs
    off tries at most once a second (retry_max_delay 2) per message."""
    n0 = log_lines(mnt)
    share = cpu_share(mnt.pid)
    grew = log_lines(mnt) - n0
    C.check(share is not None and share < 0.15 and grew < 20,
            "%s: the daemon does not spin (over 2 s: CPU under 15%% of a core, fewer than "
            "20 log lines)" % what, "share of a CPU: %s, %d log lines" % (
                None if share is None else round(share, 2), grew))


# --- mounting -------------------------------------------------------------------

def write_config():
    def section(name, tag, lines, spool=True):
        common = ["host = 127.0.0.1", "port = %d" % H["imaps_port"], "user = alice",
                  "tls = implicit", "ca_file = %s" % H["ca_file"],
                  "password_command = cat %s" % H["users"]["alice"]["password_file"],
                  "smtp_host = 127.0.0.1", "smtp_port = %d" % H["submission_port"],
                  "smtp_tls = starttls", "from = %s" % ALICE, "save_sent = no",
                  "retry_initial = 1", "retry_max_delay = 2",
                  "cache_dir = %s" % os.path.join(RUN, "cache-" + tag),
                  "log_file = %s" % os.path.join(RUN, tag + ".log")]
        if spool:
            common.append("outbox_dir = %s" % os.path.join(RUN, "outbox-" + tag))
        return "[%s]\n%s\n\n" % (name, "\n".join(common + lines))
    text = section(NAMES, "names", ["settle_time = %d" % SETTLE])
    text += section(MAIN, "main", ["settle_time = %d" % SETTLE])
    text += section(HOLD, "hold", ["settle_time = 60"])
    # The spool where the documentation says: under XDG_DATA_HOME.
    text += section(FULL, "full", ["settle_time = %d" % FULL_SETTLE], spool=False)
    write_config_file(RUN, text)


def mount(account, what, data="data"):
    mnt = Mount(BIN, [], account, os.path.join(RUN, "mnt-" + what),
                mailfs_env(RUN, "cache", data), MOUNT_TIMEOUT)
    mnt.log = os.path.join(RUN, what + ".log")      # log_file of write_config
    return check_mount(C, mnt, "%s: mount %s" % (what, account))


def finish(mnt, what, log):
    unmount_and_check(C, mnt, what, [os.path.join(RUN, log)], "the daemon's output or log")


# --- long names -------------------------------------------------------------------

def long_name(n):
    stem = "n%d-" % n
    return stem + "x" * (n - len(stem))


def case_names(ob, src_dir):
    """Names the kernel accepts: sent, or refused with ENAMETOOLONG."""
    accepted, refused = [], []
    for n in (240, 245, 249, 250, 251, 252, 255):
        name = long_name(n)
        src = os.path.join(src_dir, "src-%d.eml" % n)
        with open(src, "wb") as f:
            f.write(message("name %d" % n))
        rc, _, err = timed(["cp", src, ob.path(name)])
        if rc is None:
            C.fail("names: cp to a %d-byte name returns" % n, err)
            return
        if rc != 0:
            C.check("File name too long" in err and not ob.exists(name),
                    "names: cp to a %d-byte name is refused with ENAMETOOLONG and leaves no file" % n,
                    "exit %s: %s; exists: %s" % (rc, err, ob.exists(name)))
            refused.append(n)
        else:
            accepted.append(n)
    # Past settle_time every accepted one has been looked at by the queue.
    time.sleep(SETTLE + 2)
    sent = []
    for n in accepted:
        name = long_name(n)
        ok, s = getfattr(ob.path(name))
        gone = not ob.exists(name)
        if not C.check(ok or gone, "names: %d-byte name accepted by cp: getfattr user.mail.status "
                       "answers at once once the queue has seen it" % n, s):
            return      # the queue is stuck: the rest would only hang too
        if C.check(gone or not s.startswith("failed:"),
                   "names: %d-byte name accepted by cp: it is being sent, not failed" % n, repr(s)):
            sent.append(n)
    check_idle(ob.mnt, "names")
    for n in sent:
        got = arrived("name %d" % n)
        gone = ob.wait_gone(long_name(n), later(got))
        C.check(len(got) == 1 and gone, "names: the message under a %d-byte name is delivered "
                "once and leaves outbox/" % n, "%d copies; status %r" % (
                    len(got), getfattr(ob.path(long_name(n)))))
    C.check(245 in sent, "names: a 245-byte name is sent", "sent %s, refused %s" % (sent, refused))
    C.check(not refused or min(refused) > max(sent or [0]),
            "names: refused names are the longest ones (one limit)",
            "sent %s, refused %s" % (sent, refused))
    # mv of a waiting temp file to a long name: the same rule.
    tmp = "mv-src.tmp"
    put(ob, tmp, message("name mv"))
    rc, _, err = timed(["mv", ob.path(tmp), ob.path(long_name(252))])
    if rc == 0:
        time.sleep(SETTLE + 2)
        ok, s = getfattr(ob.path(long_name(252)))
        C.check(ok or not ob.exists(long_name(252)),
                "names: mv to a 252-byte name works and getfattr answers at once", s)
    else:
        C.check(rc is not None and "File name too long" in err and ob.exists(tmp),
                "names: mv to a 252-byte name is refused with ENAMETOOLONG, the file stays",
                "exit %s: %s" % (rc, err))
    rm(ob, tmp, long_name(252))
    check_idle(ob.mnt, "names")


# --- fsync after rm and mv --------------------------------------------------------

def strace_start(pid, out):
    p = subprocess.Popen(["strace", "-f", "-qq", "-y", "-o", out, "-e",
                          "trace=unlink,unlinkat,rename,renameat,renameat2,fsync,fdatasync",
                          "-p", str(pid)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)           # attached to every thread
    return p


def strace_stop(p):
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def synced_after(lines, call_re, spool):
    """Did the thread that made the first call matching call_re fsync the
    spool directory afterwards?  (found the call, fsynced)."""
    for i, ln in enumerate(lines):
        m = re.match(r"(\d+)\s+(.*)$", ln)
        if not m or not re.search(call_re, m.group(2)):
            continue
        tid = m.group(1)
        for later_ln in lines[i + 1:]:
            m2 = re.match(r"(\d+)\s+(.*)$", later_ln)
            if m2 and m2.group(1) == tid and re.match(
                    r"fsync\(\d+<%s/?>\) = 0" % re.escape(spool), m2.group(2)):
                return True, True
        return True, False
    return False, False


def case_fsync(ob):
    spool = os.path.realpath(os.path.join(RUN, "outbox-hold"))
    a, b, c = "cancel.eml", "before.eml", "after.eml"
    for n in (a, b):
        err = ob.put(n, message("hold " + n))
        if not C.check(err is None, "fsync: write %s (settle_time 60: it waits)" % n, err):
            return
    out = os.path.join(RUN, "strace.out")
    p = strace_start(ob.mnt.pid, out)
    try:
        os.unlink(ob.path(a))
        os.rename(ob.path(b), ob.path(c))
        time.sleep(0.5)
    finally:
        strace_stop(p)
    with open(out, errors="replace") as f:
        lines = f.read().splitlines()
    found, synced = synced_after(lines, r'^unlink(at)?\(.*"%s/%s"' % (re.escape(spool), a), spool)
    C.check(found and synced, "fsync: rm of a queued message: the daemon unlinks the spool file, "
            "then fsyncs the spool directory (strace -f)",
            "unlink seen: %s; trace: %s" % (found, " | ".join(lines[:20])))
    found, synced = synced_after(lines, r'^rename(at2?)?\(.*"%s/%s"' % (re.escape(spool), b), spool)
    C.check(found and synced, "fsync: mv within outbox/: the daemon renames, then fsyncs the "
            "spool directory (strace -f)",
            "rename seen: %s; trace: %s" % (found, " | ".join(lines[:20])))
    C.check(not ob.exists(a) and ob.exists(c) and not ob.exists(b),
            "fsync: the rm and the mv took effect", repr(os.listdir(ob.dir)))
    ob.remove(c)


# --- many writers -------------------------------------------------------------------

def case_writers(ob):
    """NWRITERS files open at once, each with a complete header and half
    a body, paused past settle_time; then the rest and close."""
    fds = {}
    head = {}
    try:
        for i in range(NWRITERS):
            name = "w%02d.eml" % i
            fds[name] = os.open(ob.path(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            head[name] = message("writer %02d" % i, "first half,\n")
            os.write(fds[name], head[name])
        C.ok("writers: %d files open for writing at once, a complete header in each" % NWRITERS)
        time.sleep(SETTLE + 3)
        early = st.find(H, "bob", "INBOX", S("writer"), exact=False)
        C.check(not early, "writers: none is sent while its writer has it open (paused %d s, "
                "settle_time %d)" % (SETTLE + 3, SETTLE),
                "%d sent early: %s" % (len(early), sorted(m["subject"][-9:] for m in early)))
        for name, fd in fds.items():
            os.write(fd, b"second half.\n")
    finally:
        for fd in fds.values():
            os.close(fd)
    bad = []
    for i in range(NWRITERS):
        got = arrived("writer %02d" % i, timeout=WAIT if not bad else 3)
        bodies = [st.plain_body(m["raw"]) for m in got]
        if bodies != ["first half,\nsecond half.\n"]:
            bad.append("writer %02d: %r" % (i, bodies))
    C.problems(bad, "writers: each of the %d arrives once, with its whole body" % NWRITERS)
    time.sleep(1)
    extra = [m for m in st.find(H, "bob", "INBOX", S("writer"), exact=False)]
    C.check(len(extra) == NWRITERS, "writers: no message twice",
            "%d messages for %d writers" % (len(extra), NWRITERS))
    left = [n for n in fds if ob.exists(n)]
    C.check(not left, "writers: all have left outbox/", repr(left[:5]))


# --- cut input ---------------------------------------------------------------------

def case_cut(ob):
    attachment = bytes(range(256)) * 12
    whole = multipart("cut whole", attachment)
    cut_mp = multipart("cut multipart", attachment)
    cut_mp = cut_mp[:cut_mp.index(b"Content-Disposition") + 800]
    b64 = base64.encodebytes(attachment).decode("ascii")
    cut_at = 1003     # 13 lines of 76 and 2 characters: not whole groups of 4
    assert len(b64[:cut_at].replace("\n", "")) % 4 == 2
    single = message("cut base64", b64[:cut_at], [
        "MIME-Version: 1.0", "Content-Type: application/octet-stream",
        "Content-Transfer-Encoding: base64"])
    for name, data in (("whole.eml", whole), ("cut-mp.eml", cut_mp), ("cut-b64.eml", single)):
        err = ob.put(name, data)
        if not C.check(err is None, "cut: write %s (%d bytes)" % (name, len(data)), err):
            return
    got = arrived("cut whole")
    gone = ob.wait_gone("whole.eml", later(got))
    C.check(len(got) == 1 and gone, "cut: the whole multipart message is delivered once",
            "%d copies; status %r" % (len(got), ob.status("whole.eml")))
    for name, case, why in (("cut-mp.eml", "cut multipart", "closing boundary"),
                            ("cut-b64.eml", "cut base64", "base64")):
        s = ob.wait_status(name, "failed:")
        C.check(s is not None and s.startswith("failed:") and "cut" in s and why in s,
                "cut: %s: status 'failed: <reason>' says it is cut (%s)" % (name, why), repr(s))
        e = ob.error_text(name)
        C.check(e is not None and why in e, "cut: %s.error gives the reason" % name, repr(e))
    time.sleep(2)
    for case in ("cut multipart", "cut base64"):
        C.equal(now_count(case), 0, "cut: '%s' is not delivered (bob's INBOX per imaplib)" % case)
    ob.remove("cut-mp.eml", "cut-b64.eml")


# --- full and read-only spool --------------------------------------------------------

def tmpfs_mount():
    os.makedirs(TMPFS, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", TMPFS],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return r.returncode == 0, r.stdout.decode("utf-8", "replace").strip()


def tmpfs_umount():
    if mounted(TMPFS):
        subprocess.run(["umount", TMPFS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if mounted(TMPFS):
        subprocess.run(["umount", "-l", TMPFS], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def fill(path):
    """Write zeros to path until the filesystem is full; bytes written."""
    n = 0
    with open(path, "wb", buffering=0) as f:
        chunk = b"\0" * 4096
        while True:
            try:
                n += f.write(chunk)
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    break
                raise
    return n


def case_full(ob):
    spools = glob.glob(os.path.join(TMPFS, "mailfs", "*", "outbox"))
    if not C.check(len(spools) == 1, "full: the spool is on the tmpfs ($XDG_DATA_HOME/mailfs/"
                   "USER@HOST/outbox)", repr(spools)):
        return
    filler = os.path.join(TMPFS, "filler")
    # Sanity: a message goes out through this spool.
    err = put(ob, "ok.eml", message("full ok"))
    got = arrived("full ok")
    C.check(err is None and len(got) == 1 and ob.wait_gone("ok.eml", later(got)),
            "full: a message goes out through the tmpfs spool", "%s; %d copies" % (err, len(got)))

    # A file larger than the room left: ENOSPC at write or close.  Then
    # space comes back (a reserve file goes), enough for the queue to
    # prepare what did get written: that must still never be sent.
    reserve = os.path.join(TMPFS, "reserve")
    with open(reserve, "wb") as f:
        f.write(b"\0" * 700 * 1024)
    big = message("full big", "A" * 70 + "\n") + (b"B" * 76 + b"\n") * 20000
    err = put(ob, "big.eml", big)
    C.check(err and "No space left on device" in err,
            "full: cp of a 1.5 MB message fails with ENOSPC (at write or close)", repr(err))
    os.unlink(reserve)
    if ob.exists("big.eml"):
        s = ob.wait_status("big.eml", "failed:", 10)
        C.check(s and s.startswith("failed:") and "No space left" in s,
                "full: the partly written file's status is 'failed: ...' with the write's error",
                repr(s))
    check_idle(ob.mnt, "full (after the failed write)")
    time.sleep(FULL_SETTLE + 2)
    C.equal(now_count("full big"), 0, "full: the partly written file is not sent, also once "
            "there is room again")
    rm(ob, "big.eml")

    # A message written in time, then the filesystem fills before it is
    # picked up (settle_time FULL_SETTLE): its state cannot be written.
    err = put(ob, "later.eml", message("full later"))
    C.check(err is None, "full: a small message is written while there is space", err)
    nfill = fill(filler)
    s = ob.wait_status("later.eml", "retrying:", 15)
    C.check(s and s.startswith("retrying:") and "No space left" in s,
            "full: with the spool full the status is 'retrying: ... No space left on device; "
            "next ...'", "status %r (filler %d bytes)" % (s, nfill))
    ok, s2 = getfattr(ob.path("later.eml"))
    C.check(ok, "full: getfattr answers at once while the spool is full", s2)
    check_idle(ob.mnt, "full (spool full)")
    err = put(ob, "more.eml", message("full more") + b"x" * 8192)
    C.check(err and "No space left on device" in err,
            "full: cp of a new message into outbox/ fails with ENOSPC", repr(err))
    rm(ob, "more.eml")
    C.equal(now_count("full later"), 0, "full: nothing is sent while the spool is full")
    os.unlink(filler)
    got = arrived("full later")
    gone = ob.wait_gone("later.eml", later(got))
    C.check(len(got) == 1 and gone, "full: once space returns the waiting message goes out, "
            "once, and leaves outbox/", "%d copies; status %r" % (
                len(got), getfattr(ob.path("later.eml"))))
    err = put(ob, "after.eml", message("full after"))
    got = arrived("full after")
    C.check(err is None and len(got) == 1 and ob.wait_gone("after.eml", later(got)),
            "full: a new message goes out after that", "%s; %d copies" % (err, len(got)))

    # Read-only spool: the same.
    err = put(ob, "ro.eml", message("full ro"))
    r = subprocess.run(["mount", "-o", "remount,ro", TMPFS], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if not C.check(err is None and r.returncode == 0,
                   "read-only: write a message, remount the tmpfs read-only",
                   "%s; %s" % (err, r.stdout)):
        return
    try:
        s = ob.wait_status("ro.eml", "retrying:", 15)
        C.check(s and s.startswith("retrying:") and "Read-only" in s,
                "read-only: the status is 'retrying: ... Read-only file system; next ...'", repr(s))
        check_idle(ob.mnt, "read-only")
        C.equal(now_count("full ro"), 0, "read-only: nothing is sent")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", TMPFS])
    got = arrived("full ro")
    C.check(len(got) == 1 and ob.wait_gone("ro.eml", later(got)),
            "read-only: once writable again the message goes out, once", "%d copies; status %r"
            % (len(got), getfattr(ob.path("ro.eml"))))


def run_full():
    if not wanted("full"):
        return
    tmpfs_umount()
    ok, out = tmpfs_mount()
    if not C.check(ok, "full: mount a 1 MB tmpfs as XDG_DATA_HOME", out):
        return
    try:
        on_mount(mount(FULL, "full", "data-full"), lambda m: C.case(case_full, Outbox(m)),
                 lambda m: finish(m, "full mount", "full.log"))
    finally:
        tmpfs_umount()
        C.check(not mounted(TMPFS), "full: the tmpfs is unmounted", "still mounted")


# --- main -----------------------------------------------------------------------

def wanted(case):
    return not ONLY or case in ONLY


def with_mount(account, what, fn, *args):
    if not wanted(fn.__name__.replace("case_", "")):
        return
    on_mount(mount(account, what), lambda m: C.case(fn, Outbox(m), *args),
             lambda m: finish(m, what + " mount", what + ".log"))


def main():
    global H
    H = ready_to_send(C, BIN, H)
    if H is None:
        return 1
    tmpfs_umount()
    fresh_run_dir(RUN)
    write_config()
    print("# test_outbox3[%s]: token %s" % (LABEL, TOKEN), flush=True)
    try:
        with_mount(NAMES, "names", case_names, RUN)
        with_mount(HOLD, "hold", case_fsync)
        with_mount(MAIN, "main", case_writers)
        with_mount(MAIN, "main", case_cut)
        run_full()
    finally:
        tmpfs_umount()
        S.cleanup()
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
