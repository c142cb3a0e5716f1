#!/usr/bin/env python3
"""test_identity.py - one daemon per account, one directory per folder.

One mount per account: alice mounted twice with the same cache and data
directories (so the same index and outbox spool); the second mailfs must
fail with one line naming the first's mountpoint and PID, exit non-zero
and mount nothing.  The lock goes with the daemon: after an unmount, after
a daemonized mount (the PID named is the process that stayed, not the
parent that exited), and after SIGKILL (the kernel drops the lock; the lock
file's stale contents must not block) mounting again works.

Needs the private Dovecot from tests/harness/start.sh.  Environment:
MAILFS_BIN (default ./mailfs), MAILFS_TEST_DIR (state dir),
MAILFS_TEST_LABEL (prefix for check names, default from MAILFS_BIN).

Prints one "PASS: ..." or "FAIL: ...: detail" line per check; exits 1 when
anything failed.
"""

import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mounttest import (REPO_ROOT, Checks, Mount, imaptest as it,  # noqa: E402
                       fresh_run_dir, kill_pid, listdir, mounted, register, run_once,
                       sanitizer_reports, unmount_and_check, unregister,
                       write_alice_config)

BIN = os.environ.get("MAILFS_BIN", "./mailfs")
if not os.path.isabs(BIN):
    BIN = os.path.join(REPO_ROOT, BIN)
LABEL = os.environ.get("MAILFS_TEST_LABEL") or (
    "asan" if "asan" in BIN else os.path.basename(BIN))
C = Checks("identity[%s]: " % LABEL)
H = it.load_harness()
RUN = os.path.join(H["state_dir"], "identity-" + LABEL)
ACCOUNT = "alice@test"
MOUNT_TIMEOUT = 90


def env():
    """The same config, cache and data directories for every mount here."""
    e = dict(os.environ)
    e["XDG_CONFIG_HOME"] = os.path.join(RUN, "config")
    e["XDG_CACHE_HOME"] = os.path.join(RUN, "cache")
    e["XDG_DATA_HOME"] = os.path.join(RUN, "data")
    e.pop("MAILFS_BIN", None)
    return e


def mnt_path(n):
    return os.path.join(RUN, "mnt%d" % n)


def mount(n, what):
    log = os.path.join(RUN, "%s.log" % what)
    m = Mount(BIN, ["-o", "log_file=" + log], ACCOUNT, mnt_path(n), env(),
              MOUNT_TIMEOUT)
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


def daemon_pids(mountpoint):
    """PIDs of the mailfs processes whose argv names this mountpoint."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
            exe = os.path.realpath("/proc/%s/exe" % p)
        except OSError:
            continue
        if mountpoint.encode() in argv and exe == os.path.realpath(BIN):
            found.append(int(p))
    return found


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
                            env(), MOUNT_TIMEOUT)
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


def main():
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        C.fail("mailfs binary", "%s is missing or not executable" % BIN)
        return 1
    fresh_run_dir(RUN)
    write_alice_config(RUN, H, ACCOUNT)
    try:
        check_lock()
    finally:
        for n in (1, 2, 3):
            if mounted(mnt_path(n)):
                subprocess.run(["fusermount3", "-uz", mnt_path(n)])
    print("# test_identity[%s]: %d passed, %d failed" % (LABEL, C.passed, C.failed))
    return 1 if C.failed else 0


if __name__ == "__main__":
    sys.exit(main())
