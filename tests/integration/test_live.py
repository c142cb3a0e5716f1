#!/usr/bin/env python3
"""test_live.py - the tree stays live and resilient (issue 4): changes made
by another client show without a forced refresh (IDLE) or after one
(.mailfs/refresh, SIGUSR1, polling); a folder recreated with a new
UIDVALIDITY is rebuilt; folders created, deleted and renamed elsewhere
follow; .mailfs/status tells the truth; a prefetched folder reads offline
while the server is stopped, uncached reads fail with EIO within the timeout
instead of hanging, and the mount recovers by itself; through a proxy that
drops, resets and stalls connections (tests/harness/faultproxy.py) no file
is ever copied with wrong bytes.  Every result is checked with an
independent IMAP client (imaplib) on the same server.

Needs the private servers from tests/harness/start.sh (seeded: the parts
that compare every folder's count use the seeded folders too).  The test
makes its own folders, all named lv-<random>..., and its own messages with
Message-IDs ...@live.mailfs.test (in those folders and in INBOX), and
removes them at the end.  It stops and starts the server alone
(tests/harness/dovecot.sh, cyrus.sh, courier.sh), and always leaves it
running.  Runs against Dovecot, or the server $MAILFS_TEST_SERVER names
(cyrus, courier), folders named by their mount paths (imaptest's "Folder
names").  Dovecot only (a "# not on SERVER" line elsewhere): that the
parallel reads came over several IMAP sessions, which Dovecot's log
counts.
Environment (MAILFS_BIN, MAILFS_TEST_DIR, MAILFS_TEST_LABEL,
MAILFS_TEST_SERVER), output: mounttest.py.

Three kinds of mount of the real binary, each with its own cache:
  live   -o idle_folders=2,poll_interval=3600,timeout=5: polling is
         effectively off, so whatever shows by itself came through IDLE;
  poll   -o idle_folders=0,poll_interval=2: no IDLE, polling only;
  fault  through faultproxy (-o port=<proxy>), -o timeout=5, a fresh cache
         for each round of faults.
"""

import datetime
import errno
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (SERVERS, by_uid, ename, imaptest as it, listdir,  # noqa: E402
                       mount_checked, mount_own_dirs, not_on, quietly, ready, restart_full_caps,
                       run_harness, server_of, server_running, server_script, server_setup,
                       server_title, setup_test, tail, unmount_and_check, wait_for,
                       write_alice_config)
import faultproxy  # noqa: E402  (tests/harness is on sys.path via mounttest)

BIN, LABEL, C, H, RUN = setup_test("live", SERVERS)
SH = server_script(H)       # stops and starts the server alone
SRV = server_title(H)       # "Dovecot", "Cyrus", "Courier"
ACCOUNT = "alice@test"
MOUNT_TIMEOUT = 90
SYNC_TIMEOUT = 120      # a fresh mount shows our folders and messages
TIMEOUT = 5             # -o timeout= of every mount here
SHOW = 15               # a pushed change shows within this (spec: ~2 s)
RESYNC = 30             # an asynchronous resync (SIGUSR1) has shown a change
NO_HANG = TIMEOUT + 10  # an operation on an unreachable server has failed
RECOVER = 75            # the server back: the mount is online again by itself
CACHE_SIZE = "64M"
CACHE_BYTES = 64 << 20
CP_TIMEOUT = 150        # one cp -r of the fault folder, faults included

TAG = "lv-" + secrets.token_hex(4)
DOMAIN = "live.mailfs.test"
OURS_RE = re.compile(r"(^|/)lv-[0-9a-f]{8}\b")   # any run's folders

WATCH = TAG + "-watch"      # listed last: watched with IDLE (idle_folders=2)
UNW = TAG + "-unw"          # listed before WATCH: not watched; .mailfs/refresh
SIG = TAG + "-sig"          # not watched; SIGUSR1
UV = TAG + "-uv"            # deleted and recreated: new UIDVALIDITY
DEL = TAG + "-del"          # deleted on the server
REN_A = TAG + "-renA"       # renamed on the server (with a subfolder) ...
REN_B = TAG + "-renB"       # ... to this
NEWF = TAG + "-new"         # created on the server
OFF = TAG + "-off"          # never read: EIO while the server is down
POLL = TAG + "-poll"        # the polling mount's folder
POLL_NEW = TAG + "-pollnew"  # created while the polling mount runs
BIG = TAG + "-big"          # copied through the fault proxy
SETUP_FOLDERS = [WATCH, UNW, SIG, UV, DEL, REN_A, REN_A + "/sub", OFF, POLL, BIG]

# Messages made at setup: tag -> folder.
SETUP_MESSAGES = [
    ("unw1", UNW), ("unw2", UNW), ("unw3", UNW),
    ("sig1", SIG), ("sig2", SIG),
    ("uvA", UV), ("uvB", UV), ("uvC", UV),
    ("del1", DEL), ("ren1", REN_A), ("rensub1", REN_A + "/sub"),
    ("off1", OFF), ("off2", OFF),
    ("watch0", WATCH), ("poll0", POLL),
]
# The fault folder: (tag, attachment bytes); the large ones make 1-5 MB
# messages once base64-encoded.
BIG_MESSAGES = [("s1", 900), ("s2", 4000), ("L1", 700000), ("s3", 12000),
                ("L2", 1500000), ("L3", 2500000), ("s4", 30000), ("L4", 3600000)]

# The lines of .mailfs/status (see mailfs(1)).
STATE_RE = re.compile(r"^state: (online|offline(?:: (.*))?)$")
CACHE_RE = re.compile(r"^cache: (\d+) bytes in (\d+) bodies, cap (\d+)$")
FETCHED_RE = re.compile(r"^fetched: (\d+) bodies, (\d+) bytes$")
FOLDER_RE = re.compile(r"^folder (.+): (\d+) messages, synced "
                       r"(never|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(, idle)?$")
PREFETCH_RUN_RE = re.compile(r"^prefetch (.+): (\d+)/(\d+) messages, (\d+) bytes, "
                             r"([\d.]+) MB/s, ETA ([\d.]+) s$")
PREFETCH_DONE_RE = re.compile(r"^prefetch (.+): done, (\d+) messages, (\d+) bytes in ([\d.]+) s$")
OUTBOX_RE = re.compile(r"^outbox: (\d+) queued$")


# --- the independent view (imaplib) ------------------------------------------

def mid_of(tag):
    return "%s-%s@%s" % (TAG, tag, DOMAIN)


def uid_of(folder, tag):
    m = it.connect(H)
    try:
        return it.uid_of_mid(m, folder, mid_of(tag))
    finally:
        m.logout()


def counts():
    """{folder: message count} of every selectable folder on the server."""
    m = it.connect(H)
    try:
        return {f: it.select(m, f) for f in it.selectable(m)}
    finally:
        m.logout()


def uidvalidity(m, folder):
    typ, data = m.status(it.wire_name(folder), "(UIDVALIDITY)")
    it.check(typ, data, "STATUS " + folder)
    return int(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1))


def make_message(tag, subject=None, body=None, attachment=None, minute=0):
    """A message of ours (CRLF); attachment: (filename, bytes)."""
    subject = subject or "Live test %s" % tag
    body = body or "Hello from %s.\r\nSecond line.\r\n" % tag
    head = ("From: Live Test <lt@%s>\r\n"
            "To: Alice <alice@mailfs.test>\r\n"
            "Subject: %s\r\n"
            "Date: Mon, 04 Mar 2024 11:%02d:00 +0000\r\n"
            "Message-ID: <%s>\r\n"
            "MIME-Version: 1.0\r\n" % (DOMAIN, subject, minute % 60, mid_of(tag)))
    if attachment is None:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()
    import base64
    fname, data = attachment
    b64 = base64.b64encode(data).decode()
    lines = "\r\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
    bnd = "bnd-" + tag
    return (head + 'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n'
            "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s"
            "--%s\r\nContent-Type: application/octet-stream\r\n"
            'Content-Disposition: attachment; filename="%s"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n"
            "--%s--\r\n" % (bnd, bnd, body, bnd, fname, lines, bnd)).encode()


WHEN = datetime.datetime(2024, 3, 4, 11, 0, tzinfo=datetime.timezone.utc)


def append(folder, raw, flags=None, m=None):
    """APPEND; returns the new UID (found by the message's Message-ID)."""
    own = m is None
    m = m or it.connect(H)
    try:
        it.deselect(m)      # Courier refuses an APPEND to the folder m EXAMINEs
        it.check(*m.append(it.wire_name(folder), flags, WHEN, raw), "APPEND to " + folder)
        mid = re.search(rb"Message-ID: <([^>]+)>", raw).group(1).decode()
        it.select(m, folder)
        uids = it.search_mid(m, mid)
        if not uids:
            raise RuntimeError("APPENDed <%s> not found in %s" % (mid, folder))
        return max(uids)
    finally:
        if own:
            m.logout()


def move(folder, uid, dest):
    m = it.connect(H)
    try:
        it.select(m, folder, readonly=False)
        it.move(m, uid, dest)
    finally:
        m.logout()


class Big:
    """One message of the fault folder, with what its decoded view holds."""

    def __init__(self, tag, nbytes, n):
        self.tag = tag
        self.fname = "blob-%s.bin" % tag
        self.data = random.Random("%s-%s" % (TAG, tag)).randbytes(nbytes)
        self.text = "Fault test %s: %d bytes attached.\r\n" % (tag, nbytes)
        self.raw = make_message(tag, "Fault test %s" % tag, self.text,
                                (self.fname, self.data), minute=n)
        self.uid = None


def setup():
    """Our folders and messages (after removing those of earlier runs):
    ({tag: uid}, [Big])."""
    it.remove_test_mail(H, DOMAIN, OURS_RE, " of earlier runs")
    m = it.connect(H)
    try:
        it.create_folders(m, SETUP_FOLDERS)
        uids = {}
        for n, (tag, folder) in enumerate(SETUP_MESSAGES):
            uids[tag] = append(folder, make_message(tag, minute=n), m=m)
        bigs = [Big(tag, nb, n) for n, (tag, nb) in enumerate(BIG_MESSAGES)]
        for b in bigs:
            b.uid = append(BIG, b.raw, m=m)
        # The server's own bytes are the reference (BODY.PEEK[]).
        it.select(m, BIG)
        for b in bigs:
            b.raw = it.fetch_raw(m, b.uid)
        return uids, bigs
    finally:
        m.logout()


# --- the mount -------------------------------------------------------------------

def mount(what, opts):
    return mount_checked(C, BIN, RUN, ACCOUNT, what, opts, MOUNT_TIMEOUT, ["-o", "debug=sync"])


def finish(mnt, what):
    unmount_and_check(C, mnt, what, [mnt.log], "the daemon's output or log")


def log_lines(mnt, pattern, n=4):
    """The last n lines of the daemon's log matching a regex, for a FAIL."""
    try:
        with open(mnt.log, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    rx = re.compile(pattern, re.I)
    hits = [ln for ln in lines if rx.search(ln)][-n:]
    return " | log: " + " | ".join(hits) if hits else ""


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        return "read failed: %s" % ename(e.errno)


def flags_x(path):
    try:
        return set(os.getxattr(path, "user.mail.flags").decode().split())
    except OSError as e:
        return "getxattr failed: %s" % ename(e.errno)


def has_flags(path, want, unwanted=()):
    """user.mail.flags holds every flag of want and none of unwanted."""
    got = flags_x(path)
    return isinstance(got, set) and want <= got and not (got & set(unwanted))


def describe(got, want):
    if isinstance(got, str):
        return got
    if got == want:
        return "identical"
    n = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    return "%d bytes, want %d, first difference at byte %d" % (len(got), len(want), n)


def ctl(root, name):
    return os.path.join(root, ".mailfs", name)


def status_text(root):
    try:
        with open(ctl(root, "status"), "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return None if e.errno is None else "error: %s" % ename(e.errno)


class Status:
    """.mailfs/status, parsed."""

    def __init__(self, text):
        self.text = text
        self.state = self.reason = self.cache = self.fetched = self.outbox = None
        self.folders = {}       # path -> (count, synced or None, idle)
        self.prefetch = {}      # path -> ("running", done, total, bytes) / ("done", n, bytes, s)
        self.other = []
        if text is None or text.startswith("error: "):
            return
        for ln in text.splitlines():
            mo = STATE_RE.match(ln)
            if mo:
                self.state = "online" if mo.group(1) == "online" else "offline"
                self.reason = mo.group(2)
                continue
            mo = CACHE_RE.match(ln)
            if mo:
                self.cache = tuple(int(x) for x in mo.groups())
                continue
            mo = FETCHED_RE.match(ln)
            if mo:
                self.fetched = tuple(int(x) for x in mo.groups())
                continue
            mo = FOLDER_RE.match(ln)
            if mo:
                synced = None if mo.group(3) == "never" else mo.group(3)
                self.folders[mo.group(1)] = (int(mo.group(2)), synced, bool(mo.group(4)))
                continue
            mo = PREFETCH_DONE_RE.match(ln)
            if mo:
                self.prefetch[mo.group(1)] = ("done", int(mo.group(2)), int(mo.group(3)),
                                              float(mo.group(4)))
                continue
            mo = PREFETCH_RUN_RE.match(ln)
            if mo:
                self.prefetch[mo.group(1)] = ("running", int(mo.group(2)), int(mo.group(3)),
                                              int(mo.group(4)))
                continue
            mo = OUTBOX_RE.match(ln)
            if mo:
                self.outbox = int(mo.group(1))
                continue
            if ln.strip():
                self.other.append(ln)

    def short(self):
        return " | ".join((self.text or "(none)").splitlines()[:40])


def status(root):
    return Status(status_text(root))


def synced_epoch(s):
    """A status 'synced' time as seconds since the epoch, read as UTC and as
    local time (the man page does not say which): a set of candidates."""
    if not s:
        return set()
    t = datetime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S")
    return {t.replace(tzinfo=datetime.timezone.utc).timestamp(), time.mktime(t.timetuple())}


def write_ctl(root, name, text):
    """Write to a control file in this process: (errno or 0, seconds)."""
    t0 = time.time()
    try:
        fd = os.open(ctl(root, name), os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        return 0, time.time() - t0
    except OSError as e:
        return e.errno, time.time() - t0


def refresh(root):
    return write_ctl(root, "refresh", "\n")


# --- bounded operations in a child process ----------------------------------------
#
# What may block on an unreachable server runs in a child, killed (by PID)
# when it takes too long, so a hang is a FAIL, not a stuck test.

CHILD = r'''
import errno, json, os, sys, time
def en(e):
    return errno.errorcode.get(e.errno, str(e.errno))
def out(*a):
    print(json.dumps(list(a)), flush=True)
op = sys.argv[1]
if op == "read":            # read OUTDIR PATH...: [i, "ok"|ERRNO, seconds]
    for i, p in enumerate(sys.argv[3:]):
        t = time.time()
        try:
            with open(p, "rb") as f:
                data = f.read()
            with open(os.path.join(sys.argv[2], str(i)), "wb") as o:
                o.write(data)
            out(i, "ok", time.time() - t)
        except OSError as e:
            out(i, en(e), time.time() - t)
elif op == "write":         # write PATH TEXT: ["ok"|ERRNO, seconds]
    t = time.time()
    try:
        fd = os.open(sys.argv[2], os.O_WRONLY)
        try:
            os.write(fd, sys.argv[3].encode())
        finally:
            os.close(fd)
        out("ok", time.time() - t)
    except OSError as e:
        out(en(e), time.time() - t)
elif op == "walk":          # walk ROOT FOLDER...: [folder, n_eml | ERRNO, seconds]
    for f in sys.argv[3:]:
        t = time.time()
        try:
            d = os.path.join(sys.argv[2], f)
            names = os.listdir(d)
            for n in names:
                os.lstat(os.path.join(d, n))
            out(f, sum(1 for n in names if n.endswith(".eml")), time.time() - t)
        except OSError as e:
            out(f, en(e), time.time() - t)
'''


def child(args, timeout):
    """Run CHILD with args: (finished in time, [result rows], seconds)."""
    with tempfile.TemporaryFile() as out:
        t0 = time.time()
        p = subprocess.Popen([sys.executable, "-c", CHILD] + list(args), stdin=subprocess.DEVNULL,
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            p.wait(timeout=timeout)
            done = True
        except subprocess.TimeoutExpired:
            done = False
            p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        dt = time.time() - t0
        out.seek(0)
        rows = []
        for ln in out.read().decode("utf-8", "replace").splitlines():
            try:
                rows.append(json.loads(ln))
            except ValueError:
                rows.append(["?", ln, 0])
        return done, rows, dt


# --- live mount: the parts -----------------------------------------------------------

def part_control(root):
    """.mailfs/ is hidden from readdir but there by name; status reads."""
    top = listdir(root)
    C.check(isinstance(top, list) and ".mailfs" not in top,
            "control: .mailfs is not listed by readdir of the mount root (cp -r/rsync skip it)",
            "root lists %s" % top)
    C.check(os.path.isdir(os.path.join(root, ".mailfs")),
            "control: .mailfs/ is reachable by name and is a directory")
    probs = []
    for n in ("status", "refresh", "prefetch"):
        try:
            st = os.stat(ctl(root, n))
            if not (st.st_mode & 0o170000) == 0o100000:
                probs.append("%s: not a regular file (mode %o)" % (n, st.st_mode))
        except OSError as e:
            probs.append("%s: stat: %s" % (n, ename(e.errno)))
    C.problems(probs, "control: .mailfs/status, refresh and prefetch exist as files")
    s = status(root)
    C.check(s.text is not None and not s.text.startswith("error"),
            "control: .mailfs/status reads", s.text)
    C.equal(s.state, "online", "control: status has 'state: online' while the server is up")
    C.check(s.cache is not None and s.cache[2] == CACHE_BYTES,
            "control: status has 'cache: <bytes> bytes in <n> bodies, cap <bytes>' with the "
            "cap of -o cache_size=%s (%d)" % (CACHE_SIZE, CACHE_BYTES), s.short())
    C.check(s.fetched is not None, "control: status has 'fetched: <n> bodies, <bytes> bytes'",
            s.short())
    C.equal(s.outbox, 0, "control: status has 'outbox: 0 queued' (nothing in outbox/)")
    C.check("INBOX" in s.folders, "control: status has a 'folder INBOX: <n> messages, synced ...' "
            "line", s.short())
    if s.other:
        print("# status lines of no documented form: %s" % s.other[:6], flush=True)
    e = 0
    try:
        fd = os.open(ctl(root, "status"), os.O_WRONLY)
        os.close(fd)
    except OSError as ex:
        e = ex.errno
    C.check(e in (errno.EACCES, errno.EPERM, errno.EROFS),
            "control: .mailfs/status cannot be opened for writing (EACCES/EPERM/EROFS)",
            "open(O_WRONLY): %s" % ename(e))
    # A readdir of the root shows no control file by any other name either.
    C.check(isinstance(top, list) and not [n for n in top if n.startswith(".")],
            "control: the root lists no dot entries at all", top)


def part_push(mnt, root):
    """Test 1: INBOX is watched with IDLE: append, flags, expunge, move by
    another client show by themselves (polling is off: poll_interval=3600)."""
    by_uid(root, "INBOX")
    raw = make_message("push1", minute=41)
    t0 = time.time()
    uid = append("INBOX", raw)
    raw = it.raw_of(H, "INBOX", uid)
    name = wait_for(lambda: by_uid(root, "INBOX").get(uid), SHOW)
    dt = time.time() - t0
    if not C.check(name, "push: a message APPENDed to INBOX by imaplib shows in a plain "
                   "os.listdir within %d s (IDLE; poll_interval=3600)" % SHOW,
                   "UID %d not listed%s" % (uid, log_lines(mnt, "idle|INBOX"))):
        return None
    print("# push: new INBOX message listed after %.1f s" % dt, flush=True)
    path = os.path.join(root, "INBOX", name)
    try:
        size = os.stat(path).st_size
    except OSError as e:
        size = ename(e.errno)
    C.equal(size, len(raw), "push: the new message's size is exact before it is read")
    C.check(read(path) == raw, "push: the new message reads byte-exact (imaplib BODY.PEEK[])",
            describe(read(path), raw))
    C.check(os.path.isdir(path[:-4]), "push: its decoded directory is listed beside it")

    t0 = time.time()
    it.store(H, "INBOX", uid, "+FLAGS", "(\\Flagged $LiveTest)")
    got = wait_for(lambda: has_flags(path, {"\\Flagged", "$LiveTest"}), SHOW)
    C.check(got, "push: flags added by imaplib (\\Flagged $LiveTest) show in "
            "user.mail.flags within %d s" % SHOW, "user.mail.flags: %s" % (flags_x(path),))
    if got:
        print("# push: flags shown after %.1f s" % (time.time() - t0), flush=True)
    it.store(H, "INBOX", uid, "-FLAGS", "(\\Flagged)")
    got = wait_for(lambda: has_flags(path, {"$LiveTest"}, {"\\Flagged"}), SHOW)
    C.check(got, "push: a flag removed by imaplib (\\Flagged) goes from user.mail.flags "
            "within %d s" % SHOW, "user.mail.flags: %s" % (flags_x(path),))
    want = {f for f in it.meta_of(H, "INBOX")[uid]["flags"]}
    C.equal(flags_x(path), want, "push: user.mail.flags equals the server's flags")

    t0 = time.time()
    it.expunge(H, "INBOX", uid)
    gone = wait_for(lambda: uid not in by_uid(root, "INBOX") and not os.path.lexists(path)
                    and not os.path.lexists(path[:-4]), SHOW)
    C.check(gone, "push: a message expunged by imaplib disappears (listdir and lookup of "
            "NAME.eml and NAME/) within %d s" % SHOW,
            "still there: %s" % [p for p in (path, path[:-4]) if os.path.lexists(p)])
    if gone:
        print("# push: expunge shown after %.1f s" % (time.time() - t0), flush=True)

    raw2 = make_message("push2", minute=42)
    uid2 = append("INBOX", raw2)
    name2 = wait_for(lambda: by_uid(root, "INBOX").get(uid2), SHOW)
    if C.check(name2, "push: a second APPENDed message shows within %d s" % SHOW):
        move("INBOX", uid2, UNW)
        gone = wait_for(lambda: uid2 not in by_uid(root, "INBOX"), SHOW)
        C.check(gone, "push: a message moved away by imaplib (UID MOVE to another folder) "
                "disappears from INBOX within %d s" % SHOW)
    return True


def part_watch(mnt, root):
    """idle_folders=2: INBOX and the most recently listed folder are watched;
    a folder listed before that is not.  A message appended to the watched
    folder shows by itself."""
    for f in (UNW, SIG, WATCH):          # WATCH is listed last
        C.check(by_uid(root, f), "watch: %s lists its messages" % f, listdir(os.path.join(root, f)))
        time.sleep(0.3)

    def watched():
        s = status(root)
        ok = (s.folders.get("INBOX", (0, 0, False))[2] and s.folders.get(WATCH, (0, 0, False))[2]
              and not s.folders.get(UNW, (0, 0, True))[2] and not s.folders.get(SIG, (0, 0, True))[2])
        return s if ok else None
    s = wait_for(watched, SHOW, 0.5)
    st = status(root)
    C.check(s, "watch: with idle_folders=2, status marks INBOX and the last listed folder ', idle', "
            "the folders listed before it not",
            "; ".join("folder %s: %s" % (f, st.folders.get(f)) for f in ("INBOX", WATCH, UNW, SIG)))
    raw = make_message("watch1", minute=43)
    t0 = time.time()
    uid = append(WATCH, raw)
    name = wait_for(lambda: by_uid(root, WATCH).get(uid), SHOW)
    C.check(name, "watch: a message APPENDed to the most recently listed folder shows within %d s "
            "(IDLE; poll_interval=3600)" % SHOW, "not listed%s" % log_lines(mnt, "idle"))
    if name:
        print("# watch: new message listed after %.1f s" % (time.time() - t0), flush=True)
        got = read(os.path.join(root, WATCH, name))
        C.check(got == it.raw_of(H, WATCH, uid), "watch: it reads byte-exact", describe(got, raw))


def part_refresh(mnt, root, uids):
    """Test 2: changes in a folder not watched show once a write to
    .mailfs/refresh has returned."""
    s = status(root)
    C.check(UNW in s.folders and not s.folders[UNW][2],
            "refresh: %s is not watched by IDLE before the refresh" % UNW, s.folders.get(UNW))
    raw4 = make_message("unw4", minute=44)
    u4 = append(UNW, raw4)
    it.expunge(H, UNW, uids["unw1"])
    it.store(H, UNW, uids["unw2"], "+FLAGS", "(\\Flagged)")
    server = it.meta_of(H, UNW)
    e, dt = refresh(root)
    if not C.check(e == 0, "refresh: writing .mailfs/refresh succeeds", "%s after %.1f s%s" % (
            ename(e), dt, log_lines(mnt, "refresh|sync"))):
        return
    print("# refresh: the write returned after %.2f s" % dt, flush=True)
    got = by_uid(root, UNW)
    if not C.equal(sorted(got), sorted(server), "refresh: right after the write returns, %s "
                   "lists exactly the server's UIDs (new one and one moved in shown, expunged "
                   "one gone)" % UNW):
        t0 = time.time()
        late = wait_for(lambda: sorted(by_uid(root, UNW)) == sorted(server), 10, 0.5)
        print("# refresh: %s" % ("the listing was right %.1f s later" % (time.time() - t0)
                                 if late else "still wrong 10 s later"), flush=True)
    if u4 in got:
        data = read(os.path.join(root, UNW, got[u4]))
        C.check(data == it.raw_of(H, UNW, u4), "refresh: the new message reads byte-exact",
                describe(data, raw4))
    if uids["unw2"] in got:
        C.equal(flags_x(os.path.join(root, UNW, got[uids["unw2"]])),
                server[uids["unw2"]]["flags"],
                "refresh: a flag set by imaplib shows in user.mail.flags")


def part_signal(mnt, root, uids):
    """Test 7: SIGUSR1 starts a full resync (asynchronously)."""
    s = status(root)
    C.check(SIG in s.folders and not s.folders[SIG][2],
            "sigusr1: %s is not watched by IDLE" % SIG, s.folders.get(SIG))
    raws = {t: make_message(t, minute=45 + i) for i, t in enumerate(("sig3", "sig4"))}
    new = {t: append(SIG, r) for t, r in raws.items()}
    it.store(H, SIG, uids["sig1"], "+FLAGS", "(\\Answered)")
    want = it.meta_of(H, SIG)
    t_sig = time.time()
    os.kill(mnt.pid, signal.SIGUSR1)

    def resynced():
        s = status(root)
        f = s.folders.get(SIG)
        if not f or f[0] != len(want) or not f[1]:
            return None
        return s if any(t >= int(t_sig) for t in synced_epoch(f[1])) else None
    s = wait_for(resynced, RESYNC, 0.5)
    if not C.check(s, "sigusr1: within %d s of kill -USR1, status shows %s synced after the "
                   "signal with the server's count (%d)" % (RESYNC, SIG, len(want)),
                   "status: %s%s" % (status(root).folders.get(SIG), log_lines(mnt, "USR1|resync|sync"))):
        return
    print("# sigusr1: resync seen after %.1f s" % (time.time() - t_sig), flush=True)
    got = by_uid(root, SIG)
    C.equal(sorted(got), sorted(want), "sigusr1: %s lists exactly the server's UIDs" % SIG)
    probs = []
    for t, u in new.items():
        data = read(os.path.join(root, SIG, got[u])) if u in got else "not listed"
        if data != it.raw_of(H, SIG, u):
            probs.append("%s: %s" % (t, describe(data, raws[t])))
    C.problems(probs, "sigusr1: the messages added before the signal read byte-exact")
    p1 = os.path.join(root, SIG, got.get(uids["sig1"], "?"))
    ok = wait_for(lambda: flags_x(p1) == want[uids["sig1"]]["flags"], 5)
    C.check(ok, "sigusr1: a flag set before the signal shows in user.mail.flags",
            "%s, server %s" % (flags_x(p1), want[uids["sig1"]]["flags"]))


def part_uidvalidity(mnt, root):
    """Test 3: a folder deleted and recreated (new UIDVALIDITY) with other
    messages under the same UIDs, one of them even under the same name,
    is rebuilt: no old entries, new bytes, new sizes, new decoded parts."""
    old = by_uid(root, UV)
    if not C.equal(len(old), 3, "uidvalidity: %s lists its 3 messages" % UV):
        return
    oldraw = set()
    for u, n in old.items():             # bodies and decoded parts in every cache
        oldraw.add(read(os.path.join(root, UV, n)))
        read(os.path.join(root, UV, n[:-4], "body.txt"))
    held = cache_files_holding(oldraw)
    C.check(len(held) == len(old), "uidvalidity: the body cache holds a file for each of the "
            "%d messages read" % len(old), "%d files hold their bytes" % len(held))
    m = it.connect(H)
    try:
        v1 = uidvalidity(m, UV)
        for attempt in range(3):
            it.check(*m.delete(it.wire_name(UV)), "DELETE " + UV)
            it.check(*m.create(it.wire_name(UV)), "CREATE " + UV)
            v2 = uidvalidity(m, UV)
            if v2 != v1:
                break
            time.sleep(1.1)
        # UID 1: same Subject, Date and From as the old UID 1, so the same
        # name, but other bytes (longer); UID 2: another message.
        new1 = make_message("uvA", body="Recreated folder, new body of A.\r\n" * 20, minute=5)
        new2 = make_message("uvD", minute=6)
        u1 = append(UV, new1, m=m)
        u2 = append(UV, new2, m=m)
        it.select(m, UV)
        new = {u1: it.fetch_raw(m, u1), u2: it.fetch_raw(m, u2)}
    finally:
        m.logout()
    C.check(v2 != v1 and sorted(new) == sorted(old)[:2],
            "uidvalidity: imaplib recreated %s with a new UIDVALIDITY (%d -> %d) and UIDs %s "
            "reused" % (UV, v1, v2, sorted(new)), "UIDs %s, old %s" % (sorted(new), sorted(old)))
    e, dt = refresh(root)
    if not C.check(e == 0, "uidvalidity: writing .mailfs/refresh succeeds", ename(e)):
        return
    try:
        entries = sorted(os.listdir(os.path.join(root, UV)))
    except OSError as ex:
        entries = "listdir: %s" % ename(ex.errno)
    got = by_uid(root, UV)
    if not C.equal(sorted(got), sorted(new), "uidvalidity: after the refresh %s lists exactly "
                   "the new UIDs" % UV):
        # Not a check: tell a late rebuild from a stale one.
        t0 = time.time()
        late = wait_for(lambda: sorted(by_uid(root, UV)) == sorted(new), 10, 0.5)
        print("# uidvalidity: %s" % ("the listing was right %.1f s later" % (time.time() - t0)
                                     if late else "still wrong 10 s later: %s" % (
                                         listdir(os.path.join(root, UV)),)), flush=True)
        # The checks below look at what the tree shows now.
        got = by_uid(root, UV)
        try:
            entries = sorted(os.listdir(os.path.join(root, UV)))
        except OSError as ex:
            entries = "listdir: %s" % ename(ex.errno)
    want_entries = sorted([n for n in got.values()] + [n[:-4] for n in got.values()])
    C.equal(entries, want_entries, "uidvalidity: no old names left (only each new .eml and its "
            "decoded directory)")
    C.check(isinstance(entries, list) and not [e for e in entries if "uvB" in e or "uvC" in e],
            "uidvalidity: the old messages' names (uvB, uvC) are gone", entries)
    C.check(old.get(1) == got.get(1), "uidvalidity: the recreated UID 1 has the same name as "
            "the old one (same Subject/Date/From; the hard case)", "%s / %s" % (old.get(1), got.get(1)))
    probs = []
    for u, raw in sorted(new.items()):
        if u not in got:
            probs.append("UID %d not listed" % u)
            continue
        p = os.path.join(root, UV, got[u])
        try:
            size = os.stat(p).st_size
        except OSError as ex:
            size = ename(ex.errno)
        if size != len(raw):
            probs.append("UID %d: stat size %s, want %d" % (u, size, len(raw)))
        data = read(p)
        if data != raw:
            probs.append("UID %d: %s" % (u, describe(data, raw)))
    C.problems(probs, "uidvalidity: the new messages have their new sizes and read byte-exact "
               "(no stale body from the old folder)")
    if 1 in got:
        body = read(os.path.join(root, UV, got[1][:-4], "body.txt"))
        want = b"Recreated folder, new body of A.\n" * 20
        C.check(body in (want, want.replace(b"\n", b"\r\n")),
                "uidvalidity: the new UID 1's decoded body.txt is the new text",
                describe(body, want))
    # The index forgets the old folder: its bodies must not stay on disk,
    # outside the cache's cap, for ever.
    left = wait_for(lambda: not cache_files_holding(oldraw), 10, 0.5)
    C.check(left, "uidvalidity: the old folder's cached bodies are removed from the cache "
            "directory within 10 s", "still there: %s" % cache_files_holding(oldraw))


def cache_files_holding(raws):
    """Files in the live mount's body cache whose bytes are one of raws."""
    top = os.path.join(RUN, "cache-live", "mailfs")
    found = []
    sizes = {len(r) for r in raws if isinstance(r, bytes)}
    for dirpath, _, files in os.walk(top):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                if os.path.getsize(p) in sizes:
                    with open(p, "rb") as fh:
                        if fh.read() in raws:
                            found.append(p)
            except OSError:
                pass
    return found


def part_folders(mnt, root, uids):
    """Test 4: folders created, deleted and renamed by imaplib appear,
    disappear and move after a refresh."""
    for f in (DEL, REN_A, REN_A + "/sub"):
        by_uid(root, f)                  # known to the kernel before the change
    m = it.connect(H)
    try:
        it.check(*m.create(it.wire_name(NEWF)), "CREATE " + NEWF)
        it.check(*m.create(it.wire_name(NEWF + "/child")), "CREATE child")
        newraw = make_message("new1", minute=47)
        nu = append(NEWF, newraw, m=m)
        it.check(*m.delete(it.wire_name(DEL)), "DELETE " + DEL)
        it.check(*m.rename(it.wire_name(REN_A), it.wire_name(REN_B)), "RENAME")
        it.select(m, NEWF)
        newraw = it.fetch_raw(m, nu)
        it.select(m, REN_B)
        ru = it.search_mid(m, mid_of("ren1"))
        renraw = it.fetch_raw(m, ru[0]) if len(ru) == 1 else None
        it.select(m, REN_B + "/sub")
        su = it.search_mid(m, mid_of("rensub1"))
        subraw = it.fetch_raw(m, su[0]) if len(su) == 1 else None
        server = {n for n, _, _ in it.list_folders(m)}
    finally:
        m.logout()
    C.check({NEWF, NEWF + "/child", REN_B, REN_B + "/sub"} <= server and
            not {DEL, REN_A, REN_A + "/sub"} & server,
            "folders: imaplib created, deleted and renamed folders on the server",
            sorted(n for n in server if TAG in n))
    e, dt = refresh(root)
    if not C.check(e == 0, "folders: writing .mailfs/refresh succeeds", ename(e)):
        return
    top = listdir(root)
    top = top if isinstance(top, list) else []
    C.check(NEWF in top and os.path.isdir(os.path.join(root, NEWF, "child")),
            "folders: a folder created by imaplib (with a subfolder) appears after the refresh",
            [n for n in top if TAG in n])
    C.check(DEL not in top and not os.path.lexists(os.path.join(root, DEL)),
            "folders: a folder deleted by imaplib disappears (listdir and lookup) after the refresh",
            [n for n in top if TAG in n])
    C.check(REN_A not in top and not os.path.lexists(os.path.join(root, REN_A)) and REN_B in top,
            "folders: a folder renamed by imaplib moves to its new name after the refresh",
            [n for n in top if TAG in n])
    got = by_uid(root, NEWF)
    C.check(len(got) == 1 and read(os.path.join(root, NEWF, list(got.values())[0])) == newraw,
            "folders: the created folder's message is listed and reads byte-exact", got)
    got = by_uid(root, REN_B)
    C.check(renraw is not None and len(got) == 1 and
            read(os.path.join(root, REN_B, list(got.values())[0])) == renraw,
            "folders: the renamed folder's message is listed there and reads byte-exact", got)
    got = by_uid(root, REN_B + "/sub")
    C.check(subraw is not None and len(got) == 1 and
            read(os.path.join(root, REN_B, "sub", list(got.values())[0])) == subraw,
            "folders: the renamed folder's subfolder moved with it, its message byte-exact", got)
    s = status(root)
    C.check({NEWF, REN_B, REN_B + "/sub"} <= set(s.folders) and
            not {DEL, REN_A, REN_A + "/sub"} & set(s.folders),
            "folders: status has lines for the new and renamed folders, none for the deleted "
            "or renamed-away ones", sorted(f for f in s.folders if TAG in f))


def part_status_counts(mnt, root):
    """Test 5: after a refresh, status has a line for every folder of the
    server with its message count, synced after the refresh started."""
    t0 = time.time()
    e, dt = refresh(root)
    C.check(e == 0, "status: writing .mailfs/refresh succeeds", ename(e))
    server = counts()
    s = status(root)
    C.equal(s.state, "online", "status: state is online")
    probs = []
    for f, n in sorted(server.items()):
        got = s.folders.get(f)
        if got is None:
            probs.append("%s: no line" % f)
        elif got[0] != n:
            probs.append("%s: %d messages, server has %d" % (f, got[0], n))
    C.problems(probs, "status: a 'folder' line for each of the server's %d selectable folders "
               "with the server's message count" % len(server))
    extra = sorted(set(s.folders) - set(server))
    m = it.connect(H)
    try:
        noselect = {n for n, fl, _ in it.list_folders(m) if "\\Noselect" in fl}
    finally:
        m.logout()
    C.check(all(f in noselect and s.folders[f][0] == 0 for f in extra),
            "status: no 'folder' line for a folder the server does not have", extra)
    probs = ["%s: synced %s" % (f, v[1]) for f, v in sorted(s.folders.items())
             if f in server and not any(t >= int(t0) - 1 for t in synced_epoch(v[1]))]
    C.problems(probs, "status: every folder's 'synced' time is not before the refresh (read as "
               "UTC or local time)")
    # fetched: grows by at least one body and its size when an uncached
    # message of a seeded folder is read.
    m = it.connect(H)
    try:
        arch = it.folder_meta(m, "Archive")
    finally:
        m.logout()
    files = by_uid(root, "Archive")
    before = status(root).fetched
    target = next((u for u in sorted(arch) if u in files), None)
    if target is None or before is None:
        C.fail("status: 'fetched' grows when a body is downloaded", "no Archive message or no "
               "fetched line: %s" % s.short())
        return
    data = read(os.path.join(root, "Archive", files[target]))
    after = status(root).fetched
    C.check(after and after[0] >= before[0] + 1 and after[1] >= before[1] + len(data),
            "status: reading an uncached message makes 'fetched' grow by at least 1 body and "
            "its %d bytes" % len(data), "before %s, after %s" % (before, after))
    c = status(root).cache
    C.check(c and c[1] >= 1 and c[0] >= len(data) and c[0] <= c[2],
            "status: 'cache' counts the bodies read, under its cap", c)


def part_offline(mnt, root):
    """Test 6: prefetch INBOX and Archive/2024, stop the server: they read
    byte-exact from the cache, every folder lists, an uncached read fails
    with EIO within the timeout; the server back: the mount recovers by
    itself."""
    # The reference, taken while the server is up.
    m = it.connect(H)
    try:
        folders = it.selectable(m)
        truth = {}
        for f in ("INBOX", "Archive/2024"):
            it.select(m, f)
            truth[f] = {u: it.fetch_raw(m, u) for u in it.folder_meta(m, f)}
        it.select(m, OFF)
        offraw = {u: it.fetch_raw(m, u) for u in it.folder_meta(m, OFF)}
        server_counts = {f: it.select(m, f) for f in folders}
    finally:
        m.logout()
    offfiles = by_uid(root, OFF)          # listed, never read
    C.equal(sorted(offfiles), sorted(offraw), "offline: %s lists its messages (never read)" % OFF)

    e, dt = write_ctl(root, "prefetch", "NoSuchFolder-%s\n" % TAG)
    C.equal(ename(e), "ENOENT", "prefetch: writing an unknown folder fails with ENOENT")
    e, dt = write_ctl(root, "prefetch", "INBOX\nArchive/2024\n")
    C.check(e == 0 and dt < TIMEOUT, "prefetch: writing 'INBOX' and 'Archive/2024' (one per line) "
            "returns at once", "%s after %.1f s" % (ename(e), dt))
    seen_running = []

    def done():
        s = status(root)
        for f, p in s.prefetch.items():
            if p[0] == "running" and (f, p) not in seen_running:
                seen_running.append((f, p))
        return s if all(s.prefetch.get(f, ("",))[0] == "done" for f in truth) else None
    s = wait_for(done, 120, 0.3)
    if not C.check(s, "prefetch: status reports 'prefetch <folder>: done, ...' for both within "
                   "120 s", status(root).short()):
        return
    if seen_running:
        print("# prefetch: progress lines seen: %s" % seen_running[:3], flush=True)
    for f in truth:
        p = s.prefetch[f]
        C.check(p[1] == len(truth[f]) and p[2] == sum(len(r) for r in truth[f].values()),
                "prefetch: the done line for %s counts the server's %d messages and %d bytes" % (
                    f, len(truth[f]), sum(len(r) for r in truth[f].values())),
                "status: prefetch %s: %s" % (f, p))
    c = s.cache
    C.check(c and c[1] >= sum(len(t) for t in truth.values()),
            "prefetch: status counts at least the prefetched bodies in the cache", c)
    names = {f: by_uid(root, f) for f in truth}

    ok, out = run_harness(H, SH, "stop")
    if not C.check(ok, "offline: tests/harness/%s stop" % SH, out):
        return
    t_down = time.time()
    try:
        # ls and stat answer from the index, without blocking.
        done_, rows, dt = child(["walk", root] + sorted(server_counts), 60)
        probs = ["%s: %s" % (r[0], r[1]) for r in rows if r[1] != server_counts.get(r[0])]
        probs += ["%s: not reached" % f for f in sorted(set(server_counts) - {r[0] for r in rows})]
        slow = ["%s %.1f s" % (r[0], r[2]) for r in rows if r[2] > 5]
        C.problems(probs + (["the walk did not finish in 60 s"] if not done_ else []),
                   "offline: every folder lists (listdir + lstat of every entry) with the "
                   "server's message count while %s is down" % SRV)
        C.problems(slow, "offline: no folder listing takes more than 5 s (%.1f s for all)" % dt)

        # Prefetched bodies read byte-exact from the cache.
        with tempfile.TemporaryDirectory(dir=RUN) as outdir:
            paths, want = [], []
            for f in truth:
                for u, raw in sorted(truth[f].items()):
                    paths.append(os.path.join(root, f, names[f].get(u, "?")))
                    want.append((f, u, raw))
            done_, rows, dt = child(["read", outdir] + paths, 120)
            probs = []
            res = {r[0]: r for r in rows}
            for i, (f, u, raw) in enumerate(want):
                r = res.get(i)
                if r is None:
                    probs.append("%s/%d: not read (child %s)" % (f, u, "done" if done_ else "killed"))
                elif r[1] != "ok":
                    probs.append("%s/%d: %s" % (f, u, r[1]))
                else:
                    with open(os.path.join(outdir, str(i)), "rb") as fh:
                        data = fh.read()
                    if data != raw:
                        probs.append("%s/%d: %s" % (f, u, describe(data, raw)))
            C.problems(probs, "offline: every prefetched message of INBOX and Archive/2024 (%d) "
                       "reads byte-exact from the cache while %s is down" % (len(want), SRV))

        # A body never read: EIO within the timeout, no hang.
        u0 = sorted(offfiles)[0] if offfiles else None
        p0 = os.path.join(root, OFF, offfiles.get(u0, "?"))
        with tempfile.TemporaryDirectory(dir=RUN) as outdir:
            done_, rows, dt = child(["read", outdir, p0], NO_HANG + 5)
        r = rows[0] if rows else None
        C.check(done_ and r and r[1] == "EIO" and r[2] <= NO_HANG,
                "offline: reading a never-read message fails with EIO within timeout+10 s "
                "(-o timeout=%d)" % TIMEOUT,
                "%s after %.1f s%s" % (r[1] if r else "no answer (hung, killed)", dt,
                                       log_lines(mnt, "timeout|connect|offline")))
        if r:
            print("# offline: uncached read answered %s after %.1f s" % (r[1], r[2]), flush=True)
        s = wait_for(lambda: status(root).state == "offline" and status(root), NO_HANG, 0.5)
        C.check(s and s.reason, "offline: status says 'state: offline: <reason>'",
                status(root).short())
        if s:
            print("# offline: %s" % [ln for ln in s.text.splitlines() if ln.startswith("state")],
                  flush=True)
        done_, rows, dt = child(["write", ctl(root, "refresh"), "\n"], NO_HANG + 5)
        r = rows[0] if rows else None
        C.check(done_ and r and r[0] == "EIO" and r[1] <= NO_HANG,
                "offline: writing .mailfs/refresh fails with EIO within timeout+10 s",
                "%s after %.1f s" % (r[0] if r else "no answer (hung, killed)", dt))
    finally:
        ok, out = run_harness(H, SH, "start")
        C.check(ok, "offline: tests/harness/%s start" % SH, out)
    if not ok:
        return
    print("# offline: %s was down for %.1f s" % (SRV, time.time() - t_down), flush=True)

    # Recovery by itself: no refresh, no remount.
    t_up = time.time()
    s = wait_for(lambda: status(root).state == "online", RECOVER, 0.5)
    C.check(s, "recover: status is 'state: online' again within %d s of %s's start, by "
            "itself" % (RECOVER, SRV), "%s%s" % (status(root).short()[:300],
                                          log_lines(mnt, "connect|online|offline|retry")))
    if s:
        print("# recover: online again after %.1f s" % (time.time() - t_up), flush=True)
    raw = make_message("back1", minute=48)
    uid = append("INBOX", raw)
    name = wait_for(lambda: by_uid(root, "INBOX").get(uid), SHOW + 10)
    C.check(name, "recover: a message APPENDed to INBOX after the restart shows by itself "
            "(IDLE again) within %d s" % (SHOW + 10), log_lines(mnt, "idle|connect"))
    if u0 is not None:
        data = read(p0)
        C.check(data == offraw[u0], "recover: the never-read message now reads byte-exact",
                describe(data, offraw[u0]))

    # A second outage: a refresh write triggers a reconnect attempt at once.
    ok, out = run_harness(H, SH, "stop")
    if not C.check(ok, "recover: %s stop (second outage)" % SH, out):
        return
    try:
        done_, rows, dt = child(["write", ctl(root, "refresh"), "\n"], NO_HANG + 5)
        r = rows[0] if rows else None
        C.check(done_ and r and r[0] == "EIO",
                "recover: writing .mailfs/refresh while %s is down fails with EIO" % SRV,
                "%s after %.1f s" % (r[0] if r else "no answer (hung, killed)", dt))
    finally:
        ok, out = run_harness(H, SH, "start")
        C.check(ok, "recover: %s start (second outage)" % SH, out)
    if not ok:
        return
    done_, rows, dt = child(["write", ctl(root, "refresh"), "\n"], NO_HANG + 5)
    r = rows[0] if rows else None
    C.check(done_ and r and r[0] == "ok" and r[1] <= NO_HANG,
            "recover: right after %s is back, a write to .mailfs/refresh reconnects and "
            "succeeds within timeout+10 s" % SRV, "%s after %.1f s%s" % (
                r[0] if r else "no answer (hung, killed)", dt, log_lines(mnt, "connect|retry")))
    C.equal(status(root).state, "online", "recover: status is online after that refresh")


def live_mount(uids):
    mnt = mount("live", "idle_folders=2,poll_interval=3600,timeout=%d,cache_size=%s" % (
        TIMEOUT, CACHE_SIZE))
    if mnt is None:
        return
    try:
        root = mnt.mountpoint
        ok = wait_for(lambda: isinstance(listdir(root), list) and
                      {WATCH, UNW, SIG, UV, DEL, REN_A, OFF} <= set(listdir(root)), SYNC_TIMEOUT, 0.5)
        if not C.check(ok, "live: the mount lists our folders within %d s" % SYNC_TIMEOUT,
                       listdir(root)):
            return
        for name, fn, args in (("control", part_control, (root,)),
                               ("push", part_push, (mnt, root)),
                               ("watch", part_watch, (mnt, root)),
                               ("refresh", part_refresh, (mnt, root, uids)),
                               ("sigusr1", part_signal, (mnt, root, uids)),
                               ("uidvalidity", part_uidvalidity, (mnt, root)),
                               ("folders", part_folders, (mnt, root, uids)),
                               ("status", part_status_counts, (mnt, root)),
                               ("offline", part_offline, (mnt, root))):
            try:
                fn(*args)
            except Exception as e:   # noqa: BLE001 - one FAIL, then the next part
                C.fail("%s: the part ran to its end" % name, "%s: %s | %s" % (
                    type(e).__name__, e, traceback.format_exc().splitlines()[-3:]))
            if mnt.proc.poll() is not None:
                C.fail("live: the daemon is still running after part %s" % name,
                       "exited with %s: %s" % (mnt.proc.returncode, tail(mnt.out)))
                return
    finally:
        finish(mnt, "live")


def out_lines(mnt):
    """The daemon's stdout and stderr, as lines."""
    try:
        with open(mnt.out, "rb") as f:
            return f.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return []


def offline_start():
    """Test 6b: the server down at mount time.  With the index the live
    mount left, mailfs mounts anyway, says so in one line, lists from the
    index, fails an uncached read with EIO, and goes online by itself once
    the server is back; with no index it exits non-zero with one line."""
    m = it.connect(H)
    try:
        it.select(m, OFF)
        offraw = {u: it.fetch_raw(m, u) for u in it.folder_meta(m, OFF)}
    finally:
        m.logout()
    ok, out = run_harness(H, SH, "stop")
    if not C.check(ok, "offline start: tests/harness/%s stop" % SH, out):
        return
    mnt = None
    try:
        mnt = mount_own_dirs(BIN, RUN, ACCOUNT, "live", ["-o", "debug=sync", "-o",
                             "idle_folders=2,timeout=%d" % TIMEOUT], MOUNT_TIMEOUT)
        if not C.check(mnt.ok, "offline start: with the index of an earlier mount, mailfs mounts "
                       "while %s is down" % SRV, mnt.error):
            return
        said = [ln for ln in out_lines(mnt) if "offline" in ln]
        C.check(len(said) == 1 and "serving %s offline from its index" % ACCOUNT in said[0],
                "offline start: one line on stderr says it serves the account offline from "
                "its index", tail(mnt.out))
        root = mnt.mountpoint
        names = by_uid(root, OFF)
        C.equal(sorted(names), sorted(offraw), "offline start: %s lists its messages from the "
                "index" % OFF)
        uncached = [u for u in sorted(names) if u != sorted(names)[0]]
        p1 = os.path.join(root, OFF, names[uncached[0]]) if uncached else None
        if p1:
            with tempfile.TemporaryDirectory(dir=RUN) as outdir:
                done_, rows, dt = child(["read", outdir, p1], NO_HANG + 5)
            r = rows[0] if rows else None
            C.check(done_ and r and r[1] == "EIO",
                    "offline start: reading a never-read message fails with EIO",
                    "%s after %.1f s" % (r[1] if r else "no answer (hung, killed)", dt))
        C.equal(status(root).state, "offline", "offline start: status says offline")
    finally:
        ok, out = run_harness(H, SH, "start")
        C.check(ok, "offline start: tests/harness/%s start" % SH, out)
        if mnt is not None and mnt.ok and ok:
            s = wait_for(lambda: status(mnt.mountpoint).state == "online", RECOVER, 0.5)
            C.check(s, "offline start: online within %d s of %s's start, by itself" % (
                RECOVER, SRV),
                    "%s%s" % (status(mnt.mountpoint).short()[:300],
                              log_lines(mnt, "connect|online|offline|retry")))
            if p1:
                data = read(p1)
                C.check(data == offraw[uncached[0]], "offline start: then the never-read message "
                        "reads byte-exact", describe(data, offraw[uncached[0]]))
        if mnt is not None:
            finish(mnt, "offline start")

    # Never mounted before: nothing to serve, a clear error instead.
    ok, out = run_harness(H, SH, "stop")
    if not C.check(ok, "offline start: %s stop (fresh cache)" % SH, out):
        return
    try:
        mnt = mount_own_dirs(BIN, RUN, ACCOUNT, "offline-fresh", [], MOUNT_TIMEOUT)
        lines = out_lines(mnt)
        C.check(not mnt.ok and mnt.rc not in (None, 0) and len(lines) == 1 and
                "connect" in lines[0].lower(),
                "offline start: with no index, mailfs exits non-zero before mounting with one "
                "line naming the connection failure", "%s | %s" % (mnt.error, lines))
        if mnt.ok:
            mnt.unmount()
    finally:
        ok, out = run_harness(H, SH, "start")
        C.check(ok, "offline start: %s start (fresh cache)" % SH, out)


# --- polling mount -------------------------------------------------------------------

def poll_mount():
    """idle_folders=0: no IDLE at all; poll_interval=2: changes show by
    polling, folder creation and deletion too."""
    mnt = mount("poll", "idle_folders=0,poll_interval=2,timeout=%d" % TIMEOUT)
    if mnt is None:
        return
    try:
        root = mnt.mountpoint
        ok = wait_for(lambda: POLL in (listdir(root) if isinstance(listdir(root), list) else []),
                      SYNC_TIMEOUT, 0.5)
        if not C.check(ok, "poll: the mount lists %s" % POLL, listdir(root)):
            return
        by_uid(root, POLL)
        by_uid(root, "INBOX")
        s = status(root)
        C.check(s.folders and not [f for f, v in s.folders.items() if v[2]],
                "poll: with idle_folders=0 no status folder line says ', idle'", s.short())
        raw = make_message("poll1", minute=49)
        uid = append(POLL, raw)
        name = wait_for(lambda: by_uid(root, POLL).get(uid), SHOW)
        C.check(name, "poll: a message APPENDed by imaplib shows within %d s by polling "
                "(poll_interval=2)" % SHOW, log_lines(mnt, "sync|poll"))
        if name:
            data = read(os.path.join(root, POLL, name))
            C.check(data == it.raw_of(H, POLL, uid), "poll: it reads byte-exact", describe(data, raw))
        m = it.connect(H)
        try:
            it.check(*m.create(it.wire_name(POLL_NEW)), "CREATE " + POLL_NEW)
        finally:
            m.logout()
        ok = wait_for(lambda: POLL_NEW in (listdir(root) if isinstance(listdir(root), list) else []),
                      SHOW)
        C.check(ok, "poll: a folder created by imaplib appears within %d s without a refresh"
                % SHOW, [n for n in listdir(root) if TAG in n] if isinstance(listdir(root), list) else "")
        m = it.connect(H)
        try:
            it.check(*m.delete(it.wire_name(POLL_NEW)), "DELETE " + POLL_NEW)
        finally:
            m.logout()
        ok = wait_for(lambda: POLL_NEW not in (listdir(root) if isinstance(listdir(root), list)
                                               else [POLL_NEW]), SHOW)
        C.check(ok, "poll: a folder deleted by imaplib disappears within %d s without a refresh"
                % SHOW)
    except Exception as e:   # noqa: BLE001
        C.fail("poll: the part ran to its end", "%s: %s" % (type(e).__name__, e))
    finally:
        finish(mnt, "poll")


# --- parallel readers --------------------------------------------------------------

SESSION_RE = re.compile(r"imap\(alice\)<(\d+)><([^>]*)>: Info: Disconnected.*body_count=(\d+)")


def parallel_mount(bigs):
    """find | xargs -P8 cat on a cold cache: every file byte-exact, and the
    bodies came over more than one of the pool's connections (Dovecot logs
    each session's body_count when it ends)."""
    log = H.get("dovecot_log")
    start = os.path.getsize(log) if log and os.path.exists(log) else 0
    mnt = mount("par", "connections=4,idle_folders=0,poll_interval=3600,timeout=%d" % TIMEOUT)
    if mnt is None:
        return
    try:
        root = mnt.mountpoint
        folder = os.path.join(root, BIG)
        names = by_uid(root, BIG)
        if not C.check(len(names) == len(bigs), "parallel: %s lists its %d messages" % (BIG, len(bigs)),
                       names):
            return
        p = subprocess.run(["sh", "-c", "find \"$1\" -maxdepth 1 -name '*.eml' -print0 | "
                            "xargs -0 -P8 -n1 cat > /dev/null", "sh", folder],
                           capture_output=True, text=True, timeout=120)
        C.check(p.returncode == 0 and not p.stderr,
                "parallel: find %s -name '*.eml' | xargs -P8 cat succeeds" % BIG,
                "status %d: %s" % (p.returncode, p.stderr[:300]))
        bad = [b.tag for b in bigs
               if read(os.path.join(folder, names.get(b.uid, "?"))) != b.raw]
        C.check(not bad, "parallel: every file reads byte-exact afterwards", bad)
    finally:
        finish(mnt, "par")
    if not_on(H, "the parallel reads' IMAP sessions are counted in Dovecot's log "
              "(body_count at each disconnect)"):
        return
    if not log:
        C.fail("parallel: the Dovecot log is known", "no dovecot_log in harness.json")
        return
    sessions = []
    for _ in range(20):     # Dovecot writes the lines as the sessions end
        with open(log, errors="replace") as f:
            f.seek(start)
            sessions = [(g[0], int(g[2])) for g in SESSION_RE.findall(f.read())]
        busy = [n for _, n in sessions if n > 0]
        if len(busy) >= 2 and sum(busy) >= len(bigs):
            break       # every body's session has ended and been logged
        time.sleep(0.25)
    busy = [n for _, n in sessions if n > 0]
    C.check(len(busy) >= 2 and sum(busy) >= len(bigs),
            "parallel: the %d bodies came over %d IMAP sessions (not all through one)"
            % (sum(busy), len(busy)), sessions)


# --- fault proxy ---------------------------------------------------------------------

ERR_PATH_RE = re.compile(r"'([^']*)'")


def copy_folder(root, dest):
    """cp -r ROOT/BIG DEST/ (a new directory, so the copy is DEST/BIG):
    (exit status or None when killed, stderr, seconds)."""
    env = dict(os.environ, LC_ALL="C")
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    t0 = time.time()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(["cp", "-r", os.path.join(root, BIG), dest], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err, env=env,
                             start_new_session=True)
        try:
            rc = p.wait(timeout=CP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=30)
            rc = None
        err.seek(0)
        return rc, err.read().decode("utf-8", "replace"), time.time() - t0


def expected_files(root, bigs):
    """{relative path in BIG: bytes} of everything cp -r must produce."""
    names = by_uid(root, BIG)
    exp = {}
    for b in bigs:
        n = names.get(b.uid)
        if n is None:
            continue
        exp[n] = b.raw
        # The CRLF before a boundary belongs to the boundary (RFC 2046).
        exp[n[:-4] + "/body.txt"] = b.text[:-2].replace("\r\n", "\n").encode()
        exp[n[:-4] + "/" + b.fname] = b.data
    return exp


def judge(dest, exp, stderr):
    """(problems, identical, excused): every expected file is identical in
    the copy, or cp reported an error for it (or a directory above it)."""
    base = os.path.join(dest, BIG)
    failed = set()
    for ln in stderr.splitlines():
        for p in ERR_PATH_RE.findall(ln):
            mark = "/%s/" % BIG
            if mark in p:
                failed.add(p.split(mark, 1)[1].rstrip("/"))
            elif p.rstrip("/").endswith("/" + BIG):
                failed.add("")
    probs, same, excused = [], 0, 0
    for rel, want in sorted(exp.items()):
        parts = rel.split("/")
        if "" in failed or any("/".join(parts[:i]) in failed for i in range(1, len(parts) + 1)):
            excused += 1
            continue
        path = os.path.join(base, rel)
        try:
            with open(path, "rb") as f:
                got = f.read()
        except OSError as e:
            probs.append("%s: not copied and no error reported (%s)" % (rel, ename(e.errno)))
            continue
        if rel.endswith("/body.txt") and got == want.replace(b"\n", b"\r\n"):
            got = want
        if got != want:
            probs.append("%s: copied without an error but %s" % (rel, describe(got, want)))
        else:
            same += 1
    # Nothing copied that is not ours to expect.
    for d, _, files in os.walk(base):
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), base)
            if rel not in exp and not any(rel.startswith(x + "/") for x in failed if x):
                probs.append("%s: unexpected file in the copy" % rel)
    return probs, same, excused


def fault_round(proxy, bigs, label, mode):
    """A fresh cache, a mount through the proxy, one cp -r under faults,
    then one in pass-through."""
    proxy.set_mode("pass")
    mnt = mount("fault-" + label, "port=%d,timeout=%d,idle_folders=1,poll_interval=3600"
                % (proxy.port, TIMEOUT))
    if mnt is None:
        return
    try:
        root = mnt.mountpoint
        ok = wait_for(lambda: len(by_uid(root, BIG)) == len(bigs), SYNC_TIMEOUT, 0.5)
        if not C.check(ok, "fault %s: the mount through the proxy lists the %d messages of %s" % (
                label, len(bigs), BIG), by_uid(root, BIG)):
            return
        exp = expected_files(root, bigs)
        before = len(proxy.events)
        proxy.set_mode(mode)
        dest = os.path.join(RUN, "copy-%s-1" % label)
        rc, err, dt = copy_folder(root, dest)
        proxy.set_mode("pass")
        events = proxy.events[before:]
        faults = [e for e in events if e[2] != "stall end"]
        print("# fault %s (%s): cp -r exited %s after %.1f s; the proxy injected %s; cp said: %s"
              % (label, mode, rc, dt, [(e[2], e[3]) for e in faults][:10],
                 " | ".join(err.splitlines()[:6])), flush=True)
        C.check(faults, "fault %s: the proxy injected faults during cp -r (%s)" % (label, mode),
                "none injected")
        C.check(rc is not None, "fault %s: cp -r under faults finishes within %d s (no hang)" % (
            label, CP_TIMEOUT), "killed after %.1f s" % dt)
        probs, same, excused = judge(dest, exp, err)
        print("# fault %s: %d files identical, %d with an error reported, of %d" % (
            label, same, excused, len(exp)), flush=True)
        C.problems(probs, "fault %s: every file of cp -r under faults is byte-identical to the "
                   "server's or cp reported an error for it (never short or mixed)" % label)
        # Excusing every file would pass the check above; the faults are
        # few and fetches retry, so most files must come through.
        C.check(same * 2 >= len(exp), "fault %s: at least half the files (%d of %d) come through "
                "cp -r under faults byte-identical" % (label, (len(exp) + 1) // 2, len(exp)),
                "%d identical" % same)
        if rc != 0:
            C.check(re.search(r"Input/output error", err),
                    "fault %s: the errors cp reported are EIO" % label, err[:300])
        dest2 = os.path.join(RUN, "copy-%s-2" % label)
        rc2, err2, dt2 = copy_folder(root, dest2)
        probs, same, excused = judge(dest2, exp, err2)
        C.check(rc2 == 0 and not probs and same == len(exp),
                "fault %s: then with the proxy in pass-through, a second cp -r copies all %d "
                "files byte-identical" % (label, len(exp)),
                "exit %s, %s; %s" % (rc2, err2.strip()[:300], "; ".join(probs[:5])))
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(dest2, ignore_errors=True)
    except Exception as e:   # noqa: BLE001
        C.fail("fault %s: the round ran to its end" % label, "%s: %s | %s" % (
            type(e).__name__, e, traceback.format_exc().splitlines()[-3:]))
    finally:
        proxy.set_mode("pass")
        finish(mnt, "fault " + label)
        shutil.rmtree(os.path.join(RUN, "cache-fault-" + label), ignore_errors=True)


def fault_mounts(bigs):
    proxy = faultproxy.FaultProxy(H["imaps_port"], H["host"])
    try:
        proxy.start()
    except OSError as e:
        C.fail("fault: start the fault proxy", e)
        return
    try:
        for label, mode in (("drop", "drop after=1500000 limit=3"),
                            ("reset", "reset after=700000 limit=3"),
                            ("stall", "stall after=1000000 seconds=forever limit=2"),
                            ("random", "random seed=20261130 min=100000 max=3000000 "
                                       "stall=forever limit=5")):
            fault_round(proxy, bigs, label, mode)
    finally:
        proxy.stop()
    print("# faultproxy: %d connections, %d bytes down" % (proxy.connections, proxy.bytes_down),
          flush=True)
    C.check(not proxy.errors, "fault: the proxy ran without errors of its own",
            "; ".join(proxy.errors[:5]))


# --- main ------------------------------------------------------------------------------

def main():
    global H
    if not ready(C, BIN, RUN):
        return 1
    write_alice_config(RUN, H, ACCOUNT)
    t_start = time.time()

    # An earlier test that died may have left the server stopped, or
    # Dovecot announcing only basic capabilities; this test wants the full
    # set.
    server_running(C, H)
    if H.get("plain_caps") and server_of(H) == "dovecot":
        ok, out = restart_full_caps(H)
        C.check(ok, "restart Dovecot with all capabilities", out)
        H = it.load_harness(server="dovecot")

    got = server_setup(C, setup)
    if got is None:
        return 1
    uids, bigs = got
    C.ok("made %d folders and %d messages (Message-ID ...@%s, %.1f MB) with imaplib" % (
        len(SETUP_FOLDERS), len(uids) + len(bigs), DOMAIN,
        sum(len(b.raw) for b in bigs) / 1e6))
    print("# run tag %s" % TAG, flush=True)

    try:
        live_mount(uids)
        offline_start()
        poll_mount()
        parallel_mount(bigs)
        fault_mounts(bigs)
    finally:
        server_running(C, H, "%s is left running (%s start)" % (SRV, SH))
        quietly("cleanup", it.remove_test_mail, H, DOMAIN, OURS_RE)

    return C.summary("in %.0f s" % (time.time() - t_start))


if __name__ == "__main__":
    sys.exit(main())
