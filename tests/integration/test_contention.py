#!/usr/bin/env python3
"""test_contention.py - the index under contention: FUSE-side writes
(cache bookkeeping, decoded parts, LRU touches) while another writer holds
the index's write lock, or while the sync thread waits on a stalled server.

  touch  A mount with one cached body.  python3's sqlite3 holds a write
         transaction (BEGIN IMMEDIATE) on the mount's index while the
         cached .eml is opened 300 times (the cache records LRU touches in
         batches of 256: the batch's transaction cannot start).  Every
         open must work, the daemon must stay up and byte-exact, and
         (ASan/UBSan build) nothing may write past the batch.
  stall  A mount through tests/harness/faultproxy.py.  A folder gets 400
         new messages (imaplib APPEND); the proxy is set to stall the
         first connection that receives 50,000 more bytes, and a resync is
         asked for: that is the sync thread's connection, in the middle of
         the UID FETCH of the new messages' headers.  While it is stalled,
         other readers: cat of uncached .eml files must be byte-exact,
         `ls` of a decoded directory whose parts were never decoded must
         list them, and every body in the cache directory must have its
         row in the index's cache table (else it never counts against the
         cap and is never evicted), every decoded parts file must be
         recorded in its body's row with its size, and no row may record
         one that is not there.  Then the stall ends and the folder
         lists all 400 messages.

  orphan A body is fetched while python3's sqlite3 holds the index's
         write lock for longer than mailfs waits for it: its row in the
         cache table cannot be written.  After a remount on the same
         cache, every body on disk has its row again (else it would
         never count against the cap nor be evicted).

Checked against imaplib on Dovecot itself, and the index with python3's
sqlite3 (read-only).  Needs the private Dovecot (tests/harness/start.sh),
seeded.  Makes a folder named ct-<random> and removes it at the end.
Environment (MAILFS_BIN, MAILFS_TEST_DIR, MAILFS_TEST_LABEL), output: mounttest.py.
"""

import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (by_uid, cat, check_mount, imaptest as it, listdir,  # noqa: E402
                       mount_own_dirs, ready, setup_test, unmount_and_check, wait_for,
                       write_alice_config)
import faultproxy  # noqa: E402  (tests/harness is on sys.path via mounttest)

BIN, LABEL, C, H, RUN = setup_test("contention")
ACCOUNT = "alice@test"
MOUNT_TIMEOUT = 90
SYNC_TIMEOUT = 120
TAG = "ct-" + secrets.token_hex(4)
OURS_RE = re.compile(r"^ct-[0-9a-f]{8}$")
DOMAIN = "contention.mailfs.test"
NEW = 400               # messages appended while mounted
STALL_AFTER = 50000     # bytes into the resync: inside the headers' FETCH
OPENS = 300             # opens of a cached body under a held lock
CMD_TIMEOUT = 120


def mount(what, opts):
    mnt = mount_own_dirs(BIN, RUN, ACCOUNT, what,
                         ["-o", "cache_dir=%s,debug=sync:cache,%s" % (cache_dir(what), opts)],
                         MOUNT_TIMEOUT)
    return check_mount(C, mnt, "%s: mount -o %s" % (what, opts))


def cache_dir(what):
    return os.path.join(RUN, "cache-" + what)


def finish(mnt, what):
    unmount_and_check(C, mnt, what, [mnt.log], "the daemon's output or log")


def ls(path):
    """(exit status, names, stderr) of `ls -1 path`."""
    try:
        r = subprocess.run(["ls", "-1", "--", path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=CMD_TIMEOUT, env=dict(os.environ, LC_ALL="C"))
    except subprocess.TimeoutExpired:
        return None, [], "timed out after %d s" % CMD_TIMEOUT
    return (r.returncode, r.stdout.decode("utf-8", "replace").split("\n")[:-1],
            r.stderr.decode("utf-8", "replace").strip())


def server_bodies(folder, uids):
    m = it.connect(H, "alice")
    try:
        it.select(m, folder)
        return {u: it.fetch_raw(m, u) for u in uids}
    finally:
        m.logout()


def index_path(what):
    return os.path.join(cache_dir(what), "index.sqlite")


def cache_rows(what):
    """The cache table's (folder, uid) rows and {(folder, uid): views}."""
    db = sqlite3.connect("file:%s?mode=ro" % index_path(what), uri=True, timeout=30)
    try:
        rows = set(db.execute("SELECT folder, uid FROM cache").fetchall())
        views = dict(((f, u), v) for f, u, v in db.execute(
            "SELECT folder, uid, views FROM cache WHERE views IS NOT NULL"))
        return rows, views
    finally:
        db.close()


def cache_mismatch(what):
    """Bodies on disk without a row in the cache table, and rows without
    a body; decoded parts files whose row does not record them with their
    size, and rows that record one not on disk; read with python3's
    sqlite3: [problem].  The rows are read before and after the
    directory: a file is renamed into place before its row is written, so
    one stored while we look shows in the second reading only, and a row
    counts as lacking its file only when it was there before the listing
    and still is after it."""
    before, vbefore = cache_rows(what)
    files, parts = set(), {}
    bodies = os.path.join(cache_dir(what), "bodies")
    for n in os.listdir(bodies):
        mo = re.match(r"^(\d+)\.(\d+)\.(\d+)\.(eml|parts)$", n)
        if mo and mo.group(4) == "eml":
            files.add((int(mo.group(1)), int(mo.group(3))))
        elif mo:
            try:
                size = os.stat(os.path.join(bodies, n)).st_size
            except FileNotFoundError:
                continue        # evicted meanwhile
            parts[(int(mo.group(1)), int(mo.group(3)))] = size
    after, vafter = cache_rows(what)
    probs = ["body %d/%d on disk has no cache row" % k for k in sorted(files - after)]
    probs += ["cache row %d/%d has no body on disk" % k for k in sorted((before & after) - files)]
    probs += ["parts file %d/%d of %d bytes, its row says %s" % (k + (v, vafter.get(k)))
              for k, v in sorted(parts.items()) if vafter.get(k) != v and vbefore.get(k) != v]
    probs += ["cache row %d/%d records a parts file not on disk" % k
              for k in sorted((set(vbefore) & set(vafter)) - set(parts))]
    return probs, len(files)


# --- touch: a batch of LRU touches whose transaction cannot start -----------

def touch_part():
    what = "touch"
    mnt = mount(what, "poll_interval=3600,idle_folders=0")
    if mnt is None:
        return
    try:
        root = mnt.mountpoint
        names = wait_for(lambda: by_uid(root, "INBOX"), SYNC_TIMEOUT)
        if not C.check(names, "touch: INBOX lists its messages", listdir(root)):
            return
        uid = min(names)
        path = os.path.join(root, "INBOX", names[uid])
        want = server_bodies("INBOX", [uid])[uid]
        C.check(cat(path, CMD_TIMEOUT) == want,
                "touch: the first cat of INBOX/%d is byte-exact (now cached)" % uid)
        db = sqlite3.connect(index_path(what), timeout=30, isolation_level=None)
        errors = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for i in range(OPENS):
                try:
                    with open(path, "rb") as f:
                        f.read(1)
                except OSError as e:
                    errors.append("open %d: %s" % (i + 1, e))
                    if len(errors) > 3:
                        break
        finally:
            db.execute("ROLLBACK")
            db.close()
        C.problems(errors, "touch: %d opens of the cached body while another process holds "
                   "the index's write lock all succeed" % OPENS)
        C.check(cat(path, CMD_TIMEOUT) == want, "touch: then the body still reads byte-exact")
        C.check(mnt.proc.poll() is None, "touch: the daemon is still running",
                "exited with %s" % mnt.proc.poll())
    finally:
        finish(mnt, what)


# --- stall: the sync thread's connection stalls mid-FETCH -------------------

def append_new(folder, n):
    m = it.connect(H, "alice")
    try:
        pad = "x" * 200
        for i in range(n):
            msg = ("From: Contention <ct@%s>\r\nTo: alice@mailfs.test\r\n"
                   "Subject: contention %d %s\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n"
                   "Message-ID: <%s-%d@%s>\r\n\r\nbody %d\r\n"
                   % (DOMAIN, i, pad, TAG, i, DOMAIN, i))
            it.check(*m.append(it.wire_name(folder), None, None, msg.encode()), "APPEND")
    finally:
        m.logout()


def stall_part(proxy):
    what = "stall"
    m = it.connect(H, "alice")
    try:
        it.check(*m.create(it.wire_name(TAG)), "CREATE " + TAG)
    finally:
        m.logout()
    mnt = mount(what, "port=%d,poll_interval=3600,idle_folders=0,timeout=120" % proxy.port)
    if mnt is None:
        return
    try:
        root = mnt.mountpoint
        inbox = wait_for(lambda: by_uid(root, "INBOX"), SYNC_TIMEOUT)
        if not C.check(inbox and os.path.isdir(os.path.join(root, TAG)),
                       "stall: INBOX and %s are listed" % TAG, listdir(root)):
            return
        append_new(TAG, NEW)
        before = len(proxy.events)
        proxy.set_mode("stall after=%d seconds=forever limit=1" % STALL_AFTER)
        os.kill(mnt.pid, signal.SIGUSR1)    # SIGUSR1: resync now (asynchronously)
        stalled = wait_for(lambda: [e for e in proxy.events[before:] if e[2].startswith("stall")],
                           60)
        if not C.check(stalled, "stall: the proxy stalls the resync's connection after %d bytes"
                       % STALL_AFTER, proxy.events[before:]):
            return
        time.sleep(1)           # the sync is waiting on the network now

        uids = sorted(inbox)[:3]
        want = server_bodies("INBOX", uids)
        probs = []
        for u in uids:
            got = cat(os.path.join(root, "INBOX", inbox[u]), CMD_TIMEOUT)
            if got != want[u]:
                probs.append("UID %d: %s" % (u, got if isinstance(got, str) else
                                             "%d bytes, want %d" % (len(got), len(want[u]))))
        C.problems(probs, "stall: meanwhile cat of %d uncached INBOX messages is byte-exact"
                   % len(uids))
        u = sorted(inbox)[-1]
        rc, names, err = ls(os.path.join(root, "INBOX", inbox[u][:-4]))
        C.check(rc == 0 and names, "stall: meanwhile ls of a decoded directory never listed "
                "before lists its parts", "exit %s: %s %s" % (rc, err, names))
        pf = [n for n in os.listdir(os.path.join(cache_dir(what), "bodies"))
              if re.match(r"^\d+\.\d+\.%d\.parts$" % u, n)]
        C.check(len(pf) == 1, "stall: its parts were decoded into one parts file in the cache "
                "directory", pf)
        probs, nfiles = cache_mismatch(what)
        C.problems(probs, "stall: meanwhile every body in the cache (%d) has its row in the "
                   "index's cache table and no row lacks its body; every parts file is "
                   "recorded with its size" % nfiles)

        proxy.set_mode("pass")
        got = wait_for(lambda: len(by_uid(root, TAG)) == NEW, SYNC_TIMEOUT, 0.5)
        C.check(got, "stall: once the stall ends, %s lists all %d new messages" % (TAG, NEW),
                "%d listed" % len(by_uid(root, TAG)))
    finally:
        proxy.set_mode("pass")
        finish(mnt, what)
    probs, nfiles = cache_mismatch(what)
    C.problems(probs, "stall: after unmounting, every body in the cache (%d) has its row "
               "and every row its body; every parts file is recorded with its size" % nfiles)


# --- orphan: a body whose cache row could not be written ---------------------

def orphan_part():
    what = "orphan"
    mnt = mount(what, "poll_interval=3600,idle_folders=0")
    if mnt is None:
        return
    try:
        root = mnt.mountpoint
        names = wait_for(lambda: by_uid(root, "INBOX"), SYNC_TIMEOUT)
        if not C.check(names, "orphan: INBOX lists its messages", listdir(root)):
            return
        uid = max(names)
        want = server_bodies("INBOX", [uid])[uid]
        db = sqlite3.connect(index_path(what), timeout=30, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            got = cat(os.path.join(root, "INBOX", names[uid]), CMD_TIMEOUT)
        finally:
            db.execute("ROLLBACK")
            db.close()
        C.check(got == want, "orphan: an uncached body read while another process holds the "
                "index's write lock is byte-exact")
        probs, n = cache_mismatch(what)
        print("# orphan: right after it, %d bodies, problems: %s" % (n, probs), flush=True)
    finally:
        finish(mnt, what)
    mnt = mount(what, "poll_interval=3600,idle_folders=0")
    if mnt is None:
        return
    try:
        root = mnt.mountpoint
        wait_for(lambda: by_uid(root, "INBOX"), SYNC_TIMEOUT)
        # The check runs in the background at start; give it a moment.
        wait_for(lambda: not cache_mismatch(what)[0], 10)
        probs, n = cache_mismatch(what)
        C.problems(probs, "orphan: after a remount, every body in the cache (%d) has its row "
                   "in the cache table" % n)
    finally:
        finish(mnt, what)


def main():
    if not ready(C, BIN, RUN):
        return 1
    write_alice_config(RUN, H, ACCOUNT)
    it.remove_test_mail(H, None, OURS_RE, " (left by an earlier run)")
    proxy = faultproxy.FaultProxy(H["imaps_port"], H["host"])
    proxy.start()
    try:
        C.parts(touch_part, orphan_part, lambda: stall_part(proxy))
    finally:
        proxy.stop()
        it.remove_test_mail(H, None, OURS_RE)
    C.check(not proxy.errors, "the proxy ran without errors of its own", proxy.errors[:5])
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
