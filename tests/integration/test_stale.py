#!/usr/bin/env python3
"""test_stale.py - writes through the mount after another client deleted
and recreated a folder (new UIDVALIDITY, the same UIDs reused by other
messages) must change nothing on the server and fail.

The mount lists a folder, then imaplib DELETEs it, CREATEs it again and
APPENDs new messages that get the UIDs the old ones had.  With polling and
IDLE off the mount's index still shows the old messages under names that
end in those UIDs.  Every write that names an old message or the folder
(rm to Trash, rm with -o delete=expunge, mv to another folder, setfattr of
flags, rename of the folder, rmdir) must fail with ESTALE (or ENOENT) and
leave the new messages exactly as they were, per imaplib; afterwards the
folder is rebuilt and shows the new messages, and rm of one of those acts
on that one.

Needs the private Dovecot from tests/harness/start.sh.  Its folders are
named st-<random>; Message-IDs end in @stale.mailfs.test; all removed at
the end.  Prints one "PASS: ..." or "FAIL: ...: detail" line per check.
"""

import datetime
import errno
import os
import re
import secrets
import sys
import threading
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (eml_name, ename, errno_of, fresh_run_dir, imaptest as it,  # noqa: E402
                       mount_checked, setup_test, unmount_and_check, wait_for, write_alice_config)

BIN, LABEL, C, H, RUN = setup_test("stale")
ACCOUNT = "alice@stale"
TAG = "st-" + secrets.token_hex(4)
DOMAIN = "stale.mailfs.test"
OURS_RE = re.compile(r"(^|/)st-[0-9a-f]{8}\b")
STALE = (errno.ESTALE, errno.ENOENT)
# No polling and no IDLE: only our own writes can tell the mount.
OPTS = "poll_interval=600,idle_folders=0"


def message(tag, n):
    return ("From: Stale Test <st@mailfs.test>\r\n"
            "To: Alice <alice@mailfs.test>\r\n"
            "Subject: Stale %s\r\n"
            "Date: Tue, 05 Mar 2024 09:%02d:00 +0000\r\n"
            "Message-ID: <%s-%s@%s>\r\n"
            "\r\nBody of %s.\r\n" % (tag, n, TAG, tag, DOMAIN, tag)).encode()


def mid(tag):
    return "%s-%s@%s" % (TAG, tag, DOMAIN)


def fill(m, folder, tags):
    """APPEND one message per tag to folder (in order: UIDs 1, 2, ...)."""
    when = datetime.datetime(2024, 3, 5, 9, 0, tzinfo=datetime.timezone.utc)
    for n, tag in enumerate(tags):
        it.check(*m.append(it.wire_name(folder), None, when, message(tag, n)),
                 "APPEND " + tag)


def recreate(folder, tags):
    """DELETE and CREATE folder, then fill it with new messages."""
    m = it.connect(H)
    try:
        it.check(*m.delete(it.wire_name(folder)), "DELETE " + folder)
        it.check(*m.create(it.wire_name(folder)), "CREATE " + folder)
        fill(m, folder, tags)
    finally:
        m.logout()


def state():
    """{folder: {uid: (Message-ID, flags)}} of our folders and Trash."""
    m = it.connect(H)
    try:
        res = {}
        for name, flags, _ in it.list_folders(m):
            if not (OURS_RE.search(name) or "\\Trash" in flags or name == "Trash"):
                continue
            if {"\\Noselect", "\\NonExistent"} & flags:
                continue
            msgs = {}
            for uid, d in it.folder_meta(m, name).items():
                raw = it.fetch_raw(m, uid)
                mo = re.search(rb"Message-ID: <([^>]*)>", raw)
                if mo and mo.group(1).decode().endswith("@" + DOMAIN):
                    msgs[uid] = (mo.group(1).decode(), frozenset(d["flags"]))
            if OURS_RE.search(name) or msgs:
                res[name] = msgs
        return res
    finally:
        m.logout()


def listing_shows(root, folder, tag):
    try:
        return any(("Stale %s [" % tag) in e for e in os.listdir(os.path.join(root, folder)))
    except OSError:
        return False


def refresh(root):
    """Make the mount resync now (it does not poll): .mailfs/refresh."""
    with open(os.path.join(root, ".mailfs", "refresh"), "w") as f:
        f.write("1\n")


def mount(what, opts):
    return mount_checked(C, BIN, RUN, ACCOUNT, what, opts, 90)


def messages_writes(mnt, what, expunge):
    """rm, mv and setfattr on old names after the folder was recreated."""
    root = mnt.mountpoint

    def T(t):
        return what + "-" + t

    src, dest = TAG + "-" + what, TAG + "-" + what + "-to"
    m = it.connect(H)
    try:
        it.create_folders(m, (src, dest))
        fill(m, src, [T("old1"), T("old2"), T("old3")])
    finally:
        m.logout()
    refresh(root)
    def names():
        found = {u: eml_name(root, src, u) for u in (1, 2, 3)}
        return found if all(found.values()) else None

    old = wait_for(names, 60)
    if not C.check(old, "%s: the folder's three messages are listed" % what):
        return
    os.listdir(os.path.join(root, dest))
    recreate(src, [T("new1"), T("new2"), T("new3")])
    before = state()
    C.equal(sorted(v[0] for v in before[src].values()),
            sorted(mid(t) for t in (T("new1"), T("new2"), T("new3"))),
            "%s: imaplib: the recreated folder holds the three new messages" % what)

    e = errno_of(os.unlink, os.path.join(root, src, old[1]))
    C.check(e in STALE, "%s: rm of an old message [1] after the folder was recreated "
            "fails with ESTALE or ENOENT" % what, "got %s" % ename(e))
    e = errno_of(os.rename, os.path.join(root, src, old[2]),
                 os.path.join(root, dest, old[2]))
    C.check(e in STALE, "%s: mv of an old message [2] to another folder fails "
            "with ESTALE or ENOENT" % what, "got %s" % ename(e))
    e = errno_of(os.setxattr, os.path.join(root, src, old[3]), "user.mail.flags",
                 b"\\Flagged \\Seen")
    C.check(e in STALE, "%s: setfattr of flags on an old message [3] fails with "
            "ESTALE or ENOENT" % what, "got %s" % ename(e))
    after = state()
    C.equal(after, before, "%s: imaplib: no message moved, expunged or re-flagged "
            "in any of our folders or Trash" % what)

    # The failures made the mount look again: the new messages show, and
    # a write on one of them acts on exactly that one.
    ok = wait_for(lambda: listing_shows(root, src, T("new1")) and not listing_shows(root, src, T("old3")), 30)
    C.check(ok, "%s: the folder is rebuilt: its listing shows the new messages, "
            "not the old ones" % what, os.listdir(os.path.join(root, src)))
    if not ok:
        return
    n2 = eml_name(root, src, 2)
    e = errno_of(os.unlink, os.path.join(root, src, n2)) if n2 else "no [2]"
    final = state()
    trash = [f for f in final if not OURS_RE.search(f)]
    in_trash = [v[0] for f in trash for v in final[f].values()]
    C.check(e == 0 and mid(T("new2")) not in [v[0] for v in final[src].values()] and
            sorted(v[0] for v in final[src].values()) == [mid(T("new1")), mid(T("new3"))] and
            (expunge or mid(T("new2")) in in_trash) and
            (not expunge or mid(T("new2")) not in in_trash),
            "%s: rm of the new [2] then %s exactly that message" %
            (what, "expunges" if expunge else "moves to Trash"),
            "rm: %s; server: %s" % (ename(e), final))


def bulk_writes(mnt):
    """A run of rm that mailfs batches (write-behind) spans the folder's
    recreation: whatever each rm returns, no new message is touched."""
    root = mnt.mountpoint
    src = TAG + "-bulk"
    olds = ["bold%d" % i for i in range(1, 6)]
    news = ["bnew%d" % i for i in range(1, 6)]
    m = it.connect(H)
    try:
        it.check(*m.create(it.wire_name(src)), "CREATE " + src)
        fill(m, src, olds)
    finally:
        m.logout()
    refresh(root)

    def names():
        found = {u: eml_name(root, src, u) for u in range(1, 6)}
        return found if all(found.values()) else None

    old = wait_for(names, 60)
    if not C.check(old, "bulk: the folder's five messages are listed"):
        return
    e1 = errno_of(os.unlink, os.path.join(root, src, old[1]))
    recreate(src, news)
    before = state()
    rcs = [errno_of(os.unlink, os.path.join(root, src, old[u])) for u in (2, 3, 4, 5)]
    os.sync()
    fd = os.open(os.path.join(root, src), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)            # waits for queued changes (README)
    finally:
        os.close(fd)
    after = state()
    C.check(e1 == 0 and all(e in (0,) + STALE for e in rcs),
            "bulk: rm of the first old message succeeds; the four after the "
            "recreation succeed (queued) or fail with ESTALE or ENOENT",
            "first %s, then %s" % (ename(e1), [ename(e) for e in rcs]))
    C.equal(after, before, "bulk: imaplib: after fsync of the folder, none of the "
            "new messages was moved or expunged")


def reopen(mnt):
    """A folder rebuilt (new UIDVALIDITY) while the kernel still holds its
    name: opening the folder by its path right after the rebuild must open
    the rebuilt one, not fail because the name's old inode is gone."""
    root = mnt.mountpoint
    rounds, fails = 8, []
    for i in range(rounds):
        f = "%s-reopen%d" % (TAG, i)
        m = it.connect(H)
        try:
            it.check(*m.create(it.wire_name(f)), "CREATE " + f)
            fill(m, f, ["ro%d" % i])
        finally:
            m.logout()
        refresh(root)
        if not wait_for(lambda: eml_name(root, f, 1), 60):
            fails.append("%s: never listed" % f)
            continue
        recreate(f, ["rn%d" % i])
        # Opens all through the rebuild: the index changes first and the
        # kernel is told after, from another thread.
        stop = threading.Event()
        errs = []

        def opener(path=os.path.join(root, f)):
            while not stop.is_set():
                try:
                    os.close(os.open(path, os.O_RDONLY | os.O_DIRECTORY))
                except OSError as e:
                    errs.append(ename(e.errno))
                    return
        t = threading.Thread(target=opener)
        t.start()
        try:
            refresh(root)
            time.sleep(0.3)
        finally:
            stop.set()
            t.join()
        if errs:
            fails.append("%s: open: %s" % (f, errs[0]))
    C.check(not fails, "reopen: a folder rebuilt under a name the kernel holds opens "
            "by its path all through the rebuild (%d rounds)" % rounds, fails)


def folder_writes(mnt):
    """mv of a folder and rmdir after it was recreated."""
    root = mnt.mountpoint
    ren, gone, empty = TAG + "-ren", TAG + "-ren2", TAG + "-empty"
    m = it.connect(H)
    try:
        it.create_folders(m, (ren, empty))
        fill(m, ren, ["rold"])
    finally:
        m.logout()
    refresh(root)
    ok = wait_for(lambda: eml_name(root, ren, 1) and os.path.isdir(os.path.join(root, empty)), 60)
    if not C.check(ok, "folders: the folders to rename and remove are listed"):
        return
    os.listdir(os.path.join(root, empty))
    recreate(ren, ["rnew"])
    recreate(empty, [])
    e = errno_of(os.rename, os.path.join(root, ren), os.path.join(root, gone))
    C.check(e in STALE, "folders: mv of a folder recreated by another client fails "
            "with ESTALE or ENOENT", "got %s" % ename(e))
    e = errno_of(os.rmdir, os.path.join(root, empty))
    C.check(e in STALE, "folders: rmdir of an empty folder recreated by another "
            "client fails with ESTALE or ENOENT", "got %s" % ename(e))
    m = it.connect(H)
    try:
        names = {n for n, _, _ in it.list_folders(m)}
    finally:
        m.logout()
    C.check(ren in names and gone not in names and empty in names,
            "folders: imaplib: neither folder was renamed or deleted",
            sorted(n for n in names if OURS_RE.search(n)))


def main():
    it.remove_test_mail(H, DOMAIN, OURS_RE, " (before)")
    fresh_run_dir(RUN)
    write_alice_config(RUN, H, ACCOUNT, "debug = fs:sync\n")
    try:
        mnt = mount("trash", OPTS)
        if mnt:
            C.section("trash", messages_writes, mnt, "trash", False)
            C.section("folders", folder_writes, mnt)
            C.section("bulk", bulk_writes, mnt)
            C.section("reopen", reopen, mnt)
            unmount_and_check(C, mnt, "trash", [mnt.log])
        mnt = mount("expunge", OPTS + ",delete=expunge")
        if mnt:
            C.section("expunge", messages_writes, mnt, "expunge", True)
            unmount_and_check(C, mnt, "expunge", [mnt.log])
    finally:
        it.remove_test_mail(H, DOMAIN, OURS_RE, " (after)")
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
