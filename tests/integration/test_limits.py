#!/usr/bin/env python3
"""test_limits.py - what the daemon holds on to: descriptors and decoded
copies, with many files open at once.

  nofile  mailfs is started with a soft RLIMIT_NOFILE of 1024 (the usual
          default) below a higher hard limit.  It raises its soft limit
          to the hard one (/proc/<pid>/limits; at most 2^20), so 1,500
          opens of one cached .eml held at once all succeed (each open
          file holds a descriptor in the daemon).
  views   Three messages of 64 decoded parts each are read part by part
          (as cp -r does), byte-exact.  Each message's parts are decoded
          once into one file in the cache directory (<...>.parts, mode
          0600, the directory 0700): three such files; read again, every
          part is byte-exact and no file was written again (same inode,
          same mtime).  With no file open, the daemon holds no memfd and
          no descriptor on a parts file.
  big     A message over 8 MB whose attachment decodes to 7 MB: 20 opens
          of the attachment held at once read byte-exact and share one
          decoded copy in the daemon (their descriptors are all on the
          message's parts file), not one each.
  header  A message whose Subject header is 5 MB (more than a server
          response may hold in mailfs's memory): its folder still
          syncs, it is listed and reads byte-exact.

Messages are APPENDed with imaplib to a folder named lm-<random>
(removed at the end); decoded parts are checked against python3's email
package.  Needs the private Dovecot (tests/harness/start.sh).
Environment (MAILFS_BIN, MAILFS_TEST_DIR, MAILFS_TEST_LABEL), output: mounttest.py.
"""

import email
import email.policy
import os
import random
import re
import resource
import secrets
import sys
from email.message import EmailMessage

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (emls, imaptest as it, listdir, mount_own_dirs, ready,  # noqa: E402
                       setup_test, unmount_and_check, wait_for, write_alice_config)

BIN, LABEL, C, H, RUN = setup_test("limits")
ACCOUNT = "alice@test"
MOUNT_TIMEOUT = 90
SYNC_TIMEOUT = 120
RELEASE_TIMEOUT = 10
TAG = "lm-" + secrets.token_hex(4)
OURS_RE = re.compile(r"^lm-[0-9a-f]{8}$")
DOMAIN = "limits.mailfs.test"
SOFT = 1024             # the soft RLIMIT_NOFILE mailfs is started with
OPENS = 1500            # .eml opens held at once
NOFILE_MAX = 1 << 20    # what mailfs raises its soft limit to at most
MANY = 3                # messages of PARTS decoded parts
PARTS = 64
BIG = 7 << 20           # bytes of the big message's attachment
BIG_OPENS = 20
HEADER_UID = MANY + 2   # UIDs in order of APPEND


def many_parts(i):
    m = EmailMessage()
    m["From"] = "Limits <lm@%s>" % DOMAIN
    m["To"] = "alice@mailfs.test"
    m["Subject"] = "many parts %d" % i
    m["Date"] = "Mon, 1 Jun 2026 10:0%d:00 +0000" % i
    m["Message-ID"] = "<%s-many-%d@%s>" % (TAG, i, DOMAIN)
    m.set_content("a message of %d parts\n" % PARTS)
    for k in range(PARTS - 1):
        m.add_attachment(("attachment %d of message %d\n" % (k, i)).encode() * 20,
                         maintype="application", subtype="octet-stream",
                         filename="a%02d.bin" % k)
    return m.as_bytes(policy=email.policy.SMTP)


def big_message(data):
    m = EmailMessage()
    m["From"] = "Limits <lm@%s>" % DOMAIN
    m["To"] = "alice@mailfs.test"
    m["Subject"] = "big attachment"
    m["Date"] = "Mon, 1 Jun 2026 11:00:00 +0000"
    m["Message-ID"] = "<%s-big@%s>" % (TAG, DOMAIN)
    m.set_content("one big attachment\n")
    m.add_attachment(data, maintype="application", subtype="octet-stream",
                     filename="big.bin")
    return m.as_bytes(policy=email.policy.SMTP)


def big_header():
    subject = "long" + "".join("\r\n x%068d" % i for i in range(70000))
    return ("From: Limits <lm@%s>\r\nTo: alice@mailfs.test\r\nSubject: %s\r\n"
            "Date: Mon, 1 Jun 2026 12:00:00 +0000\r\nMessage-ID: <%s-header@%s>\r\n\r\n"
            "a header of 5 MB\r\n" % (DOMAIN, subject, TAG, DOMAIN)).encode()


def setup():
    rnd = random.Random(20261201)
    data = rnd.randbytes(BIG)
    m = it.connect(H, "alice")
    try:
        it.check(*m.create(it.wire_name(TAG)), "CREATE " + TAG)
        for i in range(MANY):
            it.check(*m.append(it.wire_name(TAG), None, None, many_parts(i)), "APPEND")
        raw = big_message(data)
        it.check(*m.append(it.wire_name(TAG), None, None, raw), "APPEND big")
        it.check(*m.append(it.wire_name(TAG), None, None, big_header()), "APPEND header")
    finally:
        m.logout()
    return data, len(raw)


def check_header(mnt):
    root = mnt.mountpoint
    names = [n for n in emls(root, TAG) if n.endswith("[%d].eml" % HEADER_UID)]
    if not C.check(len(names) == 1, "header: the message with a 5 MB Subject is listed",
                   emls(root, TAG)):
        return
    with open(os.path.join(root, TAG, names[0]), "rb") as f:
        got = f.read()
    C.check(got == big_header(), "header: it reads byte-exact", "%d bytes, want %d" % (
        len(got), len(big_header())))


def daemon_fds(pid):
    """[(fd, link target, os.stat of it or None)] of the daemon."""
    res = []
    d = "/proc/%d/fd" % pid
    for n in os.listdir(d):
        p = os.path.join(d, n)
        try:
            target = os.readlink(p)
        except OSError:
            continue
        try:
            st = os.stat(p)
        except OSError:
            st = None
        res.append((int(n), target, st))
    return res


def nofile_limits(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                w = line.split()
                return w[3], w[4]
    return None


def check_nofile(mnt, hard):
    got = nofile_limits(mnt.pid)
    want = min(hard, NOFILE_MAX)
    C.check(got and got[0] == str(want) and got[1] == str(hard),
            "nofile: started with a soft RLIMIT_NOFILE of %d, the daemon raised it to the "
            "hard limit %d (at most %d)" % (SOFT, hard, NOFILE_MAX),
            "/proc/pid/limits: soft, hard = %s" % (got,))
    if hard < OPENS + 200:
        print("# nofile: hard limit %d too low for %d opens; skipped" % (hard, OPENS), flush=True)
        return
    root = mnt.mountpoint
    inbox = emls(root, "INBOX")
    path = os.path.join(root, "INBOX", inbox[0])
    with open(path, "rb") as f:
        want = f.read(64)
    files, errors = [], []
    try:
        for i in range(OPENS):
            try:
                files.append(open(path, "rb"))
            except OSError as e:
                errors.append("open %d: %s" % (i + 1, e))
                if len(errors) > 3:
                    break
        bad = [i for i, f in enumerate(files) if f.read(64) != want]
    finally:
        for f in files:
            f.close()
    C.problems(errors, "nofile: %d opens of one cached .eml held at once all succeed" % OPENS)
    C.check(not bad, "nofile: all of them read the same bytes", "%d differ" % len(bad))


def parts_of(raw):
    """{decoded attachment file name: bytes} with python3's email package."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return {p.get_filename(): p.get_payload(decode=True)
            for p in msg.iter_attachments()}


BODIES = os.path.join(RUN, "cache", "bodies")


def parts_files(uids):
    """{file name: os.stat} of the parts files of our folder's uids in the
    cache directory (<folder>.<uidvalidity>.<uid>.parts)."""
    res = {}
    for n in os.listdir(BODIES):
        mo = re.match(r"^\d+\.\d+\.(\d+)\.parts$", n)
        if mo and int(mo.group(1)) in uids:
            res[n] = os.stat(os.path.join(BODIES, n))
    return res


def read_all(root, names, raws):
    """Every decoded part of the messages named, compared with python3's
    email package: [problem]."""
    probs = []
    for n in names:
        d = os.path.join(root, TAG, n[:-4])
        entries = listdir(d)
        if not isinstance(entries, list) or len(entries) != PARTS:
            probs.append("%s: %s" % (n, entries if isinstance(entries, str) else
                                     "%d entries" % len(entries)))
            continue
        want = parts_of(raws[n])
        for e in entries:
            with open(os.path.join(d, e), "rb") as f:
                got = f.read()
            if e in want and got != want[e]:
                probs.append("%s/%s: %d bytes differ" % (n, e, len(got)))
    return probs


def check_views(mnt):
    root = mnt.mountpoint
    names = [n for n in emls(root, TAG) if "many parts" in n]
    if not C.check(len(names) == MANY, "views: %s lists the %d many-part messages" % (TAG, MANY),
                   names):
        return
    m = it.connect(H, "alice")
    try:
        it.select(m, TAG)
        raws = {}
        for n in names:
            uid = int(re.search(r"\[(\d+)\]\.eml$", n).group(1))
            raws[n] = it.fetch_raw(m, uid)
    finally:
        m.logout()
    uids = [int(re.search(r"\[(\d+)\]\.eml$", n).group(1)) for n in names]
    probs = read_all(root, names, raws)
    C.problems(probs, "views: every part of the %d messages of %d parts reads byte-exact"
               % (MANY, PARTS))
    files = parts_files(uids)
    C.check(len(files) == MANY, "views: the cache directory has one parts file for each of "
            "the %d messages" % MANY, sorted(files))
    bad = ["%s: mode %o" % (n, st.st_mode & 0o7777) for n, st in sorted(files.items())
           if st.st_mode & 0o7777 != 0o600]
    dmode = os.stat(BODIES).st_mode & 0o7777
    if dmode != 0o700:
        bad.append("the directory: mode %o" % dmode)
    C.problems(bad, "views: the parts files are mode 0600, their directory 0700")
    probs = read_all(root, names, raws)
    again = parts_files(uids)
    changed = [n for n, st in files.items() if n not in again or
               (again[n].st_ino, again[n].st_mtime_ns) != (st.st_ino, st.st_mtime_ns)]
    C.check(not probs and not changed, "views: read again, every part is byte-exact and no "
            "parts file was written again", probs[:3] + changed)

    def held():
        return [t for _, t, _ in daemon_fds(mnt.pid)
                if t.startswith("/memfd:") or t.endswith(".parts")]
    # The kernel tells the daemon of a close (FUSE release) after close()
    # has returned here: wait for the last ones to arrive.
    wait_for(lambda: not held(), RELEASE_TIMEOUT)
    C.check(not held(), "views: with no file open, the daemon holds no memfd and no "
            "descriptor on a parts file", "%s after %d s" % (held()[:5], RELEASE_TIMEOUT))


def check_big(mnt, data):
    root = mnt.mountpoint
    names = [n for n in emls(root, TAG) if "big attachment" in n]
    if not C.check(len(names) == 1, "big: %s lists the big message" % TAG, emls(root, TAG)):
        return
    path = os.path.join(root, TAG, names[0][:-4], "big.bin")
    files, probs = [], []
    try:
        for i in range(BIG_OPENS):
            try:
                files.append(open(path, "rb"))
            except OSError as e:
                probs.append("open %d: %s" % (i + 1, e))
                break
        for i, f in enumerate(files):
            got = f.read()
            if got != data:
                probs.append("open %d: %d bytes, want %d%s" % (
                    i + 1, len(got), len(data), "" if len(got) != len(data) else " (differ)"))
        # Each open holds a descriptor on the decoded copy it reads (a
        # parts file, a memfd or an unlinked file) of at least its size.
        copies = {(st.st_dev, st.st_ino) for _, t, st in daemon_fds(mnt.pid)
                  if st is not None and st.st_size >= len(data) and
                  (t.endswith(".parts") or t.startswith("/memfd:") or t.endswith(" (deleted)"))}
    finally:
        for f in files:
            f.close()
    C.problems(probs, "big: %d opens of a 7 MB attachment (message over 8 MB) held at once "
               "read byte-exact" % BIG_OPENS)
    C.check(len(copies) == 1, "big: while they are open, the daemon holds one decoded copy "
            "of it, not one per open", "%d copies" % len(copies))


def main():
    if not ready(C, BIN, RUN):
        return 1
    write_alice_config(RUN, H, ACCOUNT)
    it.remove_test_mail(H, None, OURS_RE, " (left by an earlier run)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    mnt = None
    try:
        data, size = setup()
        print("# big message: %d bytes" % size, flush=True)
        # The daemon inherits a soft limit of SOFT; this script itself
        # needs more than that for the opens it holds.
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(SOFT, hard), hard))
        try:
            mnt = mount_own_dirs(BIN, RUN, ACCOUNT, "lim",
                                 ["-o", "cache_dir=%s,poll_interval=3600,idle_folders=0"
                                  % os.path.join(RUN, "cache")], MOUNT_TIMEOUT)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if not C.check(mnt.ok, "mount", mnt.error):
            return 1
        root = mnt.mountpoint
        ok = wait_for(lambda: emls(root, "INBOX") and len(emls(root, TAG)) == MANY + 2,
                      SYNC_TIMEOUT)
        if not C.check(ok, "INBOX and %s list their messages" % TAG, emls(root, TAG)):
            return 1
        C.parts(lambda: check_nofile(mnt, hard), lambda: check_views(mnt),
                lambda: check_big(mnt, data), lambda: check_header(mnt))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        if mnt is not None and mnt.ok:
            unmount_and_check(C, mnt, "lim", [mnt.log], "the daemon's output or log")
        it.remove_test_mail(H, None, OURS_RE)
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
