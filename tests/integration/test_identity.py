#!/usr/bin/env python3
"""test_identity.py - one daemon per account, one directory per folder.

One mount per account: alice mounted twice with the same cache and data
directories (so the same index and outbox spool); the second mailfs must
fail with one line naming the first's mountpoint and PID, exit non-zero
and mount nothing.  The lock goes with the daemon: after an unmount, after
a daemonized mount (the PID named is the process that stayed, not the
parent that exited), and after SIGKILL (the kernel drops the lock; the lock
file's stale contents must not block) mounting again works.

One directory per folder: server folders whose names clean to the same
name (".Spam" and "Spam", "a\\b" and "a_b", "a b", "a  b" and "a b " on
Dovecot's '/' delimiter, a subfolder ".sub" beside "sub", a top-level
"outbox" beside the mount's own outbox/) each get a distinct directory:
the folder whose name needs no cleaning keeps it, the others get " (2)",
" (3)" in byte order of their server names.  Messages APPENDed by imaplib
show in their own folder's directory only (and user.mail.folder names
it); rm in one removes from that folder only (per imaplib); when the
folder that kept the name is deleted on the server the others move up;
a remount on the same index gives the same names.

Needs the private Dovecot from tests/harness/start.sh.
Environment (MAILFS_BIN, MAILFS_TEST_DIR, MAILFS_TEST_LABEL), output: mounttest.py.
"""

import os
import re
import secrets
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (Mount, imaptest as it, kill_pid, listdir, mailfs_env, mounted,  # noqa: E402
                       proc_cmdlines, quietly, ready, refresh, register, run_once,
                       sanitizer_reports, setup_test, unmount_and_check, unregister,
                       write_alice_config)

BIN, LABEL, C, H, RUN = setup_test("identity")
ACCOUNT = "alice@test"
MOUNT_TIMEOUT = 90


def mnt_path(n):
    return os.path.join(RUN, "mnt%d" % n)


def mount(n, what, dirs=""):
    """mailfs on mnt<n>, logging to RUN/<what>.log, with the config, cache
    and data directories every mount here shares (those of part dirs)."""
    log = os.path.join(RUN, "%s.log" % what)
    m = Mount(BIN, ["-o", "log_file=" + log], ACCOUNT, mnt_path(n),
              mailfs_env(RUN, "cache" + dirs, "data" + dirs), MOUNT_TIMEOUT)
    m.log = log
    return m


def serves(path):
    """ls of INBOX on the mount works and shows messages."""
    got = listdir(os.path.join(path, "INBOX"))
    return isinstance(got, list) and any(e.endswith(".eml") for e in got), got


class Pid:
    """A daemon known only by its PID (for mounttest.register)."""

    def __init__(self, pid):
        self.pid = pid


def parent_of(pid):
    """The parent PID from /proc/PID/stat, None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (in parentheses) may hold spaces; the fields after it do not.
    return int(stat[stat.rindex(b")") + 2:].split()[1])


def daemon_pids(mountpoint):
    """PIDs of the mailfs processes whose argv names this mountpoint, not
    counting a child of one of them: the daemon forks to run its
    password_command, and until that child execs it is a mailfs with the
    same argv (a loaded ASan run counted one)."""
    found = []
    for pid, cmdline in proc_cmdlines():
        try:
            exe = os.path.realpath("/proc/%d/exe" % pid)
        except OSError:
            continue
        if mountpoint.encode() in cmdline.split(b"\0") and exe == os.path.realpath(BIN):
            found.append(pid)
    return [p for p in found if parent_of(p) not in found]


def check_refused(first_mnt, first_pid, n, what):
    """A second mount at mnt<n> fails with one line naming the first."""
    m = mount(n, what)
    if m.ok:
        C.fail("%s: a second mount of the same account is refused" % what,
               "it mounted on %s" % m.mountpoint)
        m.unmount()
        return
    try:
        with open(m.out, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        lines = ["<%s>" % e]
    C.check(m.rc is not None and m.rc != 0,
            "%s: the second mailfs exits with a non-zero status" % what,
            m.error)
    C.check(len(lines) == 1 and first_mnt in lines[0] and
            ("pid %d" % first_pid) in lines[0],
            "%s: its output is one line naming the first mount's "
            "mountpoint and pid %d" % (what, first_pid), repr(lines))
    if lines:
        print("# %s: %s" % (what, lines[0]), flush=True)
    C.check(not mounted(m.mountpoint),
            "%s: nothing is mounted on the second mountpoint" % what)
    ok, got = serves(first_mnt)
    C.check(ok, "%s: the first mount still serves INBOX" % what, got)


def check_lock():
    # Foreground daemon, refused, unmounted, mounted again.
    m1 = mount(1, "first")
    if not C.check(m1.ok, "first mount of alice", m1.error):
        return
    ok, got = serves(m1.mountpoint)
    C.check(ok, "first mount serves INBOX", got)
    check_refused(m1.mountpoint, m1.pid, 2, "same account at a second mountpoint")
    unmount_and_check(C, m1, "first mount", [m1.log], "its output and log")

    m2 = mount(2, "after-unmount")
    if C.check(m2.ok, "after the first is unmounted, mounting again works",
               m2.error):
        ok, got = serves(m2.mountpoint)
        C.check(ok, "the new mount serves INBOX", got)
        # Mount again the moment fusermount3 returns, as a script would:
        # the old daemon may still be shutting down.
        r = subprocess.run(["fusermount3", "-u", m2.mountpoint])
        m = mount(1, "right-after")
        C.check(r.returncode == 0 and m.ok,
                "mounting again right after fusermount3 -u returns works",
                "fusermount3 status %d; %s" % (r.returncode, m.error))
        unmount_and_check(C, m2, "mount after unmount", [m2.log],
                          "its output and log")
        if m.ok:
            unmount_and_check(C, m, "mount right after unmount", [m.log],
                              "its output and log")

    # Daemonized (no -f): the process that stays holds the lock.
    log = os.path.join(RUN, "daemon.log")
    rc, out, err = run_once(BIN, ["-o", "log_file=" + log, ACCOUNT, mnt_path(1)],
                            mailfs_env(RUN), MOUNT_TIMEOUT)
    pids = daemon_pids(mnt_path(1))
    for p in pids:
        register(Pid(p), mnt_path(1))
    if not C.check(rc == 0 and mounted(mnt_path(1)) and len(pids) == 1,
                   "daemonized mount (no -f) mounts and leaves one daemon",
                   "status %s, mounted %s, daemons %s: %s" % (
                       rc, mounted(mnt_path(1)), pids, (out + err)[-300:])):
        subprocess.run(["fusermount3", "-uz", mnt_path(1)])
        return
    check_refused(mnt_path(1), pids[0], 2, "against a daemonized mount")
    r = subprocess.run(["fusermount3", "-u", mnt_path(1)])
    deadline = time.time() + 30
    while time.time() < deadline and os.path.exists("/proc/%d" % pids[0]):
        time.sleep(0.1)
    gone = not os.path.exists("/proc/%d" % pids[0])
    C.check(r.returncode == 0 and gone,
            "the daemonized mount unmounts and its daemon exits",
            "fusermount3 status %d, daemon %s" % (
                r.returncode, "gone" if gone else "still running"))
    if gone:
        unregister(Pid(pids[0]))
    rep = sanitizer_reports([log])
    C.check(not rep, "daemonized mount: no sanitizer report in its log",
            "; ".join("%s: %s" % r for r in rep))

    # SIGKILL: the lock file stays behind with a dead PID, the lock not.
    m3 = mount(1, "killed")
    if not C.check(m3.ok, "mount again at the first mountpoint", m3.error):
        return
    killed_pid = m3.pid
    os.kill(m3.pid, signal.SIGKILL)
    m3.proc.wait(timeout=30)
    unregister(m3.proc)
    m4 = mount(2, "after-kill")
    if C.check(m4.ok, "after SIGKILL of the daemon (pid %d), mounting "
               "again works" % killed_pid, m4.error):
        ok, got = serves(m4.mountpoint)
        C.check(ok, "the mount after SIGKILL serves INBOX", got)
        check_refused(m4.mountpoint, m4.pid, 3,
                      "against the mount made after SIGKILL")
        unmount_and_check(C, m4, "mount after SIGKILL", [m4.log],
                          "its output and log")
    subprocess.run(["fusermount3", "-uz", mnt_path(1)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_pid(m4.proc)


# --- folders whose names clean to the same name -------------------------------

TAG = "id-" + secrets.token_hex(4)
DOMAIN = "identity.mailfs.test"
OURS_RE = re.compile(r"(^|/)[^/]*\bid-[0-9a-f]{8}\b")   # any run's folders
FIXED = ["outbox", ".mailfs"]       # names no tag can make unique
SPAM = "Spam-" + TAG
AB = "a_b-" + TAG
SP = "a b-" + TAG
# server folder (UTF-8) -> the directory it must show as
EXPECT = {
    SPAM: SPAM,
    "." + SPAM: SPAM + " (2)",
    SPAM + "/sub": SPAM + "/sub",
    SPAM + "/.sub": SPAM + "/sub (2)",
    AB: AB,
    AB.replace("_", "\\"): AB + " (2)",
    SP: SP,
    SP.replace(" ", "  "): SP + " (2)",        # "a  b-..." sorts before
    SP + " ": SP + " (3)",                     # "a b-... "
    "outbox": "outbox (2)",                    # outbox/ is the mount's own
    ".mailfs": "mailfs",                       # .mailfs/ is the mount's own
}
# After the server DELETEs SP, the other two move up.
EXPECT_AFTER = dict(EXPECT)
del EXPECT_AFTER[SP]
EXPECT_AFTER[SP.replace(" ", "  ")] = SP
EXPECT_AFTER[SP + " "] = SP + " (2)"
# Folders that kept their name; rm goes to the others first.
EXACT = [SPAM, SPAM + "/sub", AB, SP]


def mid(folder, n):
    return "%s-%s-%d@%s" % (TAG, re.sub(r"[^A-Za-z0-9]", lambda m: "%%%02x" % ord(m.group()),
                                         folder), n, DOMAIN)


def message(folder, n):
    return ("From: Identity Test <id@%s>\r\nTo: alice@test\r\n"
            "Subject: %s message %d of %r\r\n"
            "Date: Mon, 01 Jun 2026 12:00:00 +0000\r\n"
            "Message-ID: <%s>\r\n\r\nbody of %r %d\r\n" % (
                DOMAIN, TAG, n, folder, mid(folder, n), folder, n)).encode()


def names_cleanup(note=""):
    it.remove_test_mail(H, DOMAIN, OURS_RE, note)
    m = it.connect(H, "alice")
    try:
        for f in FIXED:
            m.delete(it.wire_name(f))
    finally:
        m.logout()


def names_setup():
    """Our folders, two messages in each (by imaplib)."""
    m = it.connect(H, "alice")
    try:
        it.create_folders(m, sorted(EXPECT))
        for f in EXPECT:
            for n in (1, 2):
                it.check(*m.append(it.wire_name(f), None, None, message(f, n)),
                         "APPEND " + f)
    finally:
        m.logout()


def server_mids():
    """{folder: set of our Message-IDs} per imaplib."""
    res = {}
    m = it.connect(H, "alice")
    try:
        for f in EXPECT:
            try:
                it.select(m, f)
            except RuntimeError:
                continue
            typ, data = m.uid("SEARCH", "HEADER", "Message-ID", "@" + DOMAIN + ">")
            uids = (data[0] or b"").split() if typ == "OK" else []
            got = set()
            for u in uids:
                raw = it.fetch_raw(m, int(u))
                mo = re.search(rb"Message-ID: <([^>]*)>", raw)
                if mo:
                    got.add(mo.group(1).decode())
            res[f] = got
            m.unselect()
    finally:
        m.logout()
    return res


def mount_view(root, dirs):
    """{dir: {message-id: user.mail.folder}} for the given directories."""
    res = {}
    for d in dirs:
        path = os.path.join(root, d)
        try:
            names = os.listdir(path)
        except OSError as e:
            res[d] = "<%s>" % e
            continue
        got = {}
        for e in names:
            if not e.endswith(".eml"):
                continue
            try:
                mi = os.getxattr(os.path.join(path, e), "user.mail.message-id").decode()
                fo = os.getxattr(os.path.join(path, e), "user.mail.folder").decode()
            except OSError as ex:
                mi, fo = e, "<%s>" % ex
            if mi.endswith("@" + DOMAIN):
                got[mi] = fo
        res[d] = got
    return res


def wanted_view(expect, present):
    """What mount_view must show: each folder's directory holds exactly
    the messages the server has there, each naming that folder."""
    return {d: {x: f for x in present.get(f, ())} for f, d in expect.items()}


def wait_view(root, expect, present, timeout=60):
    want = wanted_view(expect, present)
    deadline = time.time() + timeout
    while True:
        got = mount_view(root, want)
        if got == want or time.time() > deadline:
            return got, want
        time.sleep(0.5)


def view_problems(got, want):
    probs = []
    for d in sorted(want):
        if got.get(d) != want[d]:
            probs.append("%r: got %r, want %r" % (d, got.get(d), want[d]))
    return probs


def top_names(root):
    got = listdir(root)
    return got if isinstance(got, list) else []


def check_names():
    try:
        names_cleanup(" of earlier runs")
        names_setup()
        present = server_mids()
    except Exception as e:      # noqa: BLE001
        C.fail("make the colliding folders and their messages with imaplib",
               "%s: %s" % (type(e).__name__, e))
        return
    C.ok("made %d folders whose names clean alike, 2 messages each (imaplib)"
         % len(EXPECT))
    print("# run tag %s" % TAG, flush=True)

    m = mount(1, "names", "-names")
    if not C.check(m.ok, "names: mount alice", m.error):
        return
    root = m.mountpoint
    try:
        got, want = wait_view(root, EXPECT, present)
        C.problems(view_problems(got, want),
                   "names: every folder has its own directory, holding its "
                   "own messages only, which name it in user.mail.folder")
        top = top_names(root)
        C.check(top.count("outbox") == 1 and "outbox (2)" in top,
                "names: the root lists outbox/ once, the server's outbox as "
                "'outbox (2)'", repr([t for t in top if "outbox" in t]))
        C.check(os.path.isfile(os.path.join(root, ".mailfs", "status")),
                "names: .mailfs/ is still the control directory")

        # rm one message in each folder that did not keep its name, then
        # one in each that did; imaplib must see each gone from its own
        # folder only.
        for rnd, which in (("renamed", [f for f in EXPECT if f not in EXACT]),
                           ("kept", EXACT)):
            errs = []
            for f in which:
                p = os.path.join(root, EXPECT[f])
                victim = None
                for e in sorted(os.listdir(p)) if os.path.isdir(p) else []:
                    if e.endswith(".eml"):
                        try:
                            if os.getxattr(os.path.join(p, e),
                                           "user.mail.message-id").decode() == mid(f, 1):
                                victim = e
                        except OSError:
                            pass
                if not victim:
                    errs.append("%r: no message %s in %r" % (f, mid(f, 1), EXPECT[f]))
                    continue
                try:
                    os.unlink(os.path.join(p, victim))
                except OSError as e:
                    errs.append("rm %s/%s: %s" % (EXPECT[f], victim, e))
                present[f] = present[f] - {mid(f, 1)}
            C.problems(errs, "names: rm of a message in each folder that %s its "
                       "name" % ("kept" if rnd == "kept" else "did not keep"))
            deadline = time.time() + 30
            while True:
                now = server_mids()
                if now == present or time.time() > deadline:
                    break
                time.sleep(0.5)
            C.problems(["%r: server has %r, want %r" % (f, now.get(f), present[f])
                        for f in sorted(present) if now.get(f) != present[f]],
                       "names: after those rm (%s), imaplib finds each message "
                       "gone from its own folder only" % rnd)

        # The folder that kept the name goes: the others move up.
        mm = it.connect(H, "alice")
        try:
            it.check(*mm.delete(it.wire_name(SP)), "DELETE " + SP)
        finally:
            mm.logout()
        del present[SP]
        r = refresh(root, "\n")
        got, want = wait_view(root, EXPECT_AFTER, present)
        C.problems(([r] if r else []) + view_problems(got, want),
                   "names: after the server deletes %r, %r shows as %r and "
                   "%r as %r" % (SP, SP.replace(" ", "  "), SP, SP + " ", SP + " (2)"))
        C.check(not os.path.exists(os.path.join(root, SP + " (3)")),
                "names: and %r is gone" % (SP + " (3)"))
    finally:
        unmount_and_check(C, m, "names mount", [m.log], "its output and log")

    m = mount(1, "names-again", "-names")
    if C.check(m.ok, "names: mount again on the same index", m.error):
        got, want = wait_view(m.mountpoint, EXPECT_AFTER, present)
        C.problems(view_problems(got, want),
                   "names: the same names and messages after the remount")
        unmount_and_check(C, m, "names remount", [m.log], "its output and log")


def main():
    if not ready(C, BIN, RUN):
        return 1
    write_alice_config(RUN, H, ACCOUNT)
    try:
        check_lock()
        check_names()
    finally:
        quietly("cleanup", names_cleanup)
        for n in (1, 2, 3):
            if mounted(mnt_path(n)):
                subprocess.run(["fusermount3", "-uz", mnt_path(n)])
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
