#!/usr/bin/env python3
"""test_diskfull.py - the cache and index on a full file system.

mailfs keeps its index and the bodies it fetched in cache_dir.  Here that
is a small tmpfs the test fills with a ballast file: reading a message
that is not cached then needs disk space there is none of.  Such a read
must fail cleanly (an error, never short or wrong bytes), the daemon must
not loop (its CPU time over a few idle seconds stays low) and must keep
answering (.mailfs/status, listings), and once the ballast is gone the
same read gives the server's bytes.  The outbox spool's full disk is
test_outbox3's.

Needs the private Dovecot from tests/harness/start.sh and root (mount of a
tmpfs).  Its folder is df-<random>, removed at the end.  Prints one
"PASS: ..." or "FAIL: ...: detail" line per check.
"""

import datetime
import os
import re
import secrets
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (ename, errno_of, fresh_run_dir, imaptest as it, listdir,  # noqa: E402
                       mount_own_dirs, mounted, setup_test, unmount_and_check, wait_for,
                       write_alice_config)

BIN, LABEL, C, H, RUN = setup_test("diskfull")
ACCOUNT = "alice@diskfull"
TAG = "df-" + secrets.token_hex(4)
OURS_RE = re.compile(r"(^|/)df-[0-9a-f]{8}\b")
FS_SIZE = 8 * 1024 * 1024
BIG = 3                         # messages of ~600 KB each
TIMEOUT = 5                     # -o timeout


def message(n, size):
    line = ("%s line of message %d, padding to make it big enough.\r\n" % (TAG, n)).encode()
    body = line * (size // len(line) + 1)
    head = ("From: Disk Full <df@mailfs.test>\r\n"
            "To: Alice <alice@mailfs.test>\r\n"
            "Subject: Big %d %s\r\n"
            "Date: Thu, 07 Mar 2024 07:%02d:00 +0000\r\n"
            "Message-ID: <%s-%d@diskfull.mailfs.test>\r\n\r\n" % (n, TAG, n, TAG, n)).encode()
    return head + body


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])     # utime + stime


def fill(path):
    """Write a ballast file until the file system is full: bytes written."""
    n = 0
    chunk = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                w = os.write(fd, chunk)
            except OSError:
                break
            if w <= 0:
                break
            n += w
    finally:
        os.close(fd)
    return n


def refresh(root):
    """Write .mailfs/refresh with os calls, so its error reaches us."""
    fd = os.open(os.path.join(root, ".mailfs", "refresh"), os.O_WRONLY)
    try:
        os.write(fd, b"1\n")
    finally:
        os.close(fd)


def read(path, uncached=False):
    """path's bytes, or the OSError; uncached: not from the kernel's page
    cache (dropped first), so the daemon must serve them."""
    try:
        with open(path, "rb") as f:
            if uncached:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            return f.read()
    except OSError as e:
        return e


def check_full(mnt, raws, fs):
    root = mnt.mountpoint
    folder = os.path.join(root, TAG)

    def names():
        found = {}
        for e in listdir(folder) if isinstance(listdir(folder), list) else []:
            mo = re.search(r"Big (\d+) ", e)
            if mo and e.endswith(".eml"):
                found[int(mo.group(1))] = e
        return found if len(found) == BIG else None

    nm = wait_for(names, 60)
    if not C.check(nm, "the folder's %d messages are listed" % BIG, listdir(folder)):
        return
    # Message 0 read while there is room: cached, and served later.
    got0 = read(os.path.join(folder, nm[0]))
    C.check(got0 == raws[0], "with room on the cache's file system, a read gives the server's bytes",
            ename(got0.errno) if isinstance(got0, OSError) else "%d bytes" % len(got0))
    # Its decoded directory listed too: its parts file is written.
    view = os.path.join(folder, nm[0][:-4])
    want_txt = raws[0].split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
    C.check(listdir(view) == ["body.txt"] and read(os.path.join(view, "body.txt")) == want_txt,
            "with room, its decoded directory lists body.txt, which reads exactly", listdir(view))
    parts_files = [n for n in os.listdir(os.path.join(fs, "c", "bodies")) if n.endswith(".parts")]
    C.check(len(parts_files) == 1, "and its parts file is in the cache directory", parts_files)
    ballast = os.path.join(fs, "ballast")
    n = fill(ballast)
    st = os.statvfs(fs)
    print("# ballast %d bytes; %d bytes left" % (n, st.f_bavail * st.f_frsize), flush=True)

    t0 = time.time()
    got1 = read(os.path.join(folder, nm[1]))
    took = time.time() - t0
    C.check(isinstance(got1, OSError) or got1 == raws[1],
            "with the cache's file system full, reading an uncached message fails with an "
            "error or gives the exact bytes, never short or other bytes",
            "%d bytes, want %d" % (len(got1), len(raws[1])) if not isinstance(got1, OSError) else "")
    print("# full: read of an uncached message: %s after %.1f s" % (
        ename(got1.errno) if isinstance(got1, OSError) else "%d bytes" % len(got1), took), flush=True)
    C.check(isinstance(got1, OSError),
            "with the cache's file system full, the uncached read fails (there is nowhere to put it)",
            "it gave %d bytes" % (len(got1) if not isinstance(got1, OSError) else 0))
    with open(mnt.log, errors="replace") as f:
        why = [l.strip() for l in f if "open %s/" % TAG in l]
    C.check(why and "No space left on device" in why[-1],
            "the log says why the read failed: no space left on device", why[-1:])
    got0 = read(os.path.join(folder, nm[0]))
    C.check(got0 == raws[0], "with the file system full, the cached message still reads exactly",
            ename(got0.errno) if isinstance(got0, OSError) else "%d bytes" % len(got0))
    # Its parts file lost while the disk is full: it cannot be written
    # again, and the part is decoded on its own.
    for n in parts_files:
        os.unlink(os.path.join(fs, "c", "bodies", n))
    fill(ballast + "2")         # full again, for this and what follows
    got = read(os.path.join(view, "body.txt"), uncached=True)
    C.check(got == want_txt, "with the file system full, a decoded part of the cached message "
            "whose parts file was lost still reads exactly",
            ename(got.errno) if isinstance(got, OSError) else "%d bytes" % len(got))

    # Idle, the daemon must not spin on what it could not write.
    hz = os.sysconf("SC_CLK_TCK")
    time.sleep(1)
    c0 = cpu_ticks(mnt.pid)
    time.sleep(3)
    used = (cpu_ticks(mnt.pid) - c0) / hz
    C.check(used < 1.0, "with the file system full, the daemon uses under 1 s of CPU in 3 idle "
            "seconds (no retry loop)", "%.2f s" % used)
    e = errno_of(lambda: open(os.path.join(root, ".mailfs", "status")).read())
    C.check(e == 0, "with the file system full, .mailfs/status still reads", ename(e))
    C.check(isinstance(listdir(folder), list), "with the file system full, the folder still lists",
            listdir(folder))

    # New mail while the index cannot grow: the listing may lag, but the
    # mount must catch up once there is room.
    m = it.connect(H, "alice")
    try:
        it.check(*m.create(it.wire_name(TAG + "-new")), "CREATE")
        it.check(*m.append(it.wire_name(TAG + "-new"), None, None, raws[2]), "APPEND")
    finally:
        m.logout()
    e = errno_of(refresh, root)
    C.check(e != 0, "with the index's file system full, a refresh that cannot record the new "
            "folder fails (the writer hears of it)", ename(e))
    newdir = os.path.join(root, TAG + "-new")
    shown = listdir(newdir)
    print("# full: listing of the new folder: %s" % (shown if isinstance(shown, str) else "%d entries" % len(shown)),
          flush=True)

    os.unlink(ballast)
    os.unlink(ballast + "2")
    wait_for(lambda: errno_of(refresh, root) == 0, 30)
    ok = wait_for(lambda: isinstance(listdir(newdir), list) and
                  any(e.endswith(".eml") for e in listdir(newdir)), 30)
    C.check(ok, "once there is room again, a folder made while the disk was full lists its message",
            listdir(newdir))
    got1 = wait_for(lambda: (lambda g: g if g == raws[1] else None)(read(os.path.join(folder, nm[1]))),
                    3 * TIMEOUT)
    C.check(got1 == raws[1], "once there is room again, the same read gives the server's bytes")
    got2 = read(os.path.join(folder, nm[2]))
    C.check(got2 == raws[2], "and so does a read of another uncached message",
            ename(got2.errno) if isinstance(got2, OSError) else "%d bytes" % len(got2))


def main():
    it.remove_test_mail(H, None, OURS_RE, " (before)")
    fresh_run_dir(RUN)
    write_alice_config(RUN, H, ACCOUNT, "debug = cache\n")
    fs = os.path.join(RUN, "cachefs")
    os.makedirs(fs)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % FS_SIZE, "tmpfs", fs],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if not C.check(r.returncode == 0, "mount a %d MB tmpfs for the cache" % (FS_SIZE >> 20),
                   r.stdout.decode(errors="replace")):
        return 1
    raws = [message(n, 600 * 1024) for n in range(BIG)]
    m = it.connect(H, "alice")
    try:
        it.check(*m.create(it.wire_name(TAG)), "CREATE")
        when = datetime.datetime(2024, 3, 7, 7, 0, tzinfo=datetime.timezone.utc)
        for raw in raws:
            it.check(*m.append(it.wire_name(TAG), None, when, raw), "APPEND")
    finally:
        m.logout()
    mnt = None
    try:
        # No prefetch or readahead beyond what is asked: one message read
        # is one body in the cache.
        mnt = mount_own_dirs(BIN, RUN, ACCOUNT, "full",
                             ["-o", "cache_dir=%s/c,timeout=%d,poll_interval=600" % (fs, TIMEOUT)], 90)
        if C.check(mnt.ok, "mount with cache_dir on the small tmpfs", mnt.error):
            C.section("full disk", check_full, mnt, raws, fs)
            unmount_and_check(C, mnt, "full", [mnt.log])
        else:
            mnt.unmount()
    finally:
        if mnt and mounted(mnt.mountpoint):
            subprocess.run(["fusermount3", "-uz", mnt.mountpoint])
        subprocess.run(["umount", "-l", fs])
        it.remove_test_mail(H, None, OURS_RE, " (after)")
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
