#!/usr/bin/env python3
"""test_fstab.py - mailfs started the way /etc/fstab starts it.

mount(8) runs mount.fuse3 for type fuse.mailfs, which runs
`mailfs SOURCE MOUNTPOINT -o OPTIONS` (no -f: the daemon detaches).  mount
itself resets PATH, so this test calls mount.fuse3 directly with the
binary under test first in PATH and the options of README's fstab line
(noauto,user,_netdev); the same command line reaches mailfs.  Checks: the
mount appears, INBOX lists and a message reads byte-exact against imaplib,
fusermount3 -u unmounts and the detached daemon exits, without sanitizer
reports.

Environment: MAILFS_BIN (default ./mailfs), MAILFS_TEST_DIR.
"""

import os
import subprocess
import sys

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (Checks, fresh_run_dir, imaptest as it, listdir, mailfs_bin,  # noqa: E402
                       mounted, proc_cmdlines, sanitizer_reports, wait_for, write_alice_config)

BIN = mailfs_bin()
# The binary's name or asan, even under $MAILFS_TEST_LABEL: the check
# names this test has always printed.
LABEL = "asan" if "asan" in BIN else os.path.basename(BIN)
C = Checks("fstab[%s]: " % LABEL)
H = it.load_harness()
RUN = os.path.join(H["state_dir"], "fstab-" + LABEL)
ACCOUNT = "alice@test"
MNT = os.path.join(RUN, "mnt")
LOG = os.path.join(RUN, "mailfs.log")
OUT = os.path.join(RUN, "mount.out")


def daemons():
    """PIDs of mailfs processes whose command line names our mountpoint."""
    found = []
    for pid, cmdline in proc_cmdlines():
        argv = cmdline.split(b"\0")
        if MNT.encode() in argv and any(a.endswith(b"mailfs") for a in argv[:1]):
            found.append(pid)
    return found


def main():
    fresh_run_dir(RUN)
    write_alice_config(RUN, H, ACCOUNT)
    bindir = os.path.join(RUN, "bin")
    os.makedirs(bindir)
    os.symlink(BIN, os.path.join(bindir, "mailfs"))
    os.makedirs(MNT)
    env = {"PATH": bindir + ":/usr/sbin:/usr/bin:/sbin:/bin",
           "XDG_CONFIG_HOME": os.path.join(RUN, "config"),
           "XDG_CACHE_HOME": os.path.join(RUN, "cache"),
           "XDG_DATA_HOME": os.path.join(RUN, "data"),
           "LC_ALL": "C"}
    # The daemon detaches with stderr on /dev/null: sanitizers must write
    # their reports to files to be seen.
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        v = os.environ.get(k, "")
        env[k] = (v + ":" if v else "") + "log_path=" + os.path.join(RUN, "sanitizer")

    m = it.connect(H, "alice")
    try:
        truth = {}
        it.select(m, "INBOX")
        for u in sorted(it.folder_meta(m, "INBOX"))[:3]:
            truth[u] = it.fetch_raw(m, u)
    finally:
        m.logout()

    argv = ["mount.fuse3", ACCOUNT, MNT, "-t", "mailfs",
            "-o", "noauto,user,_netdev,log_file=" + LOG]
    with open(OUT, "wb") as out:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out,
                           stderr=subprocess.STDOUT, env=env, timeout=120)
    with open(OUT, "rb") as f:
        said = f.read().decode("utf-8", "replace").strip()
    ok = C.check(r.returncode == 0 and wait_for(lambda: mounted(MNT), 30),
                 "mount.fuse3 %s MNT -t mailfs -o noauto,user,_netdev,...: exits 0 and the "
                 "mount is there (the daemon detached)" % ACCOUNT,
                 "status %d, mounted: %s: %s" % (r.returncode, mounted(MNT), said))
    # The parent of the fork that detaches may still be on its way out
    # right after the mount appears.
    wait_for(lambda: len(daemons()) == 1, 10)
    pids = daemons()
    try:
        if not ok:
            return 1
        C.check(len(pids) == 1, "one detached mailfs daemon serves the mount", pids)
        inbox = os.path.join(MNT, "INBOX")
        names = wait_for(lambda: [e for e in (listdir(inbox) or []) if isinstance(e, str)
                                  and e.endswith(".eml")], 60)
        by_uid = {}
        for n in names or []:
            if n.endswith("].eml") and " [" in n:
                by_uid[int(n.rsplit(" [", 1)[1][:-5])] = n
        bad = []
        for u, raw in truth.items():
            try:
                with open(os.path.join(inbox, by_uid[u]), "rb") as f:
                    data = f.read()
            except (KeyError, OSError) as e:
                bad.append("UID %d: %s" % (u, e))
                continue
            if data != raw:
                bad.append("UID %d: %d bytes, want %d" % (u, len(data), len(raw)))
        C.problems(bad, "INBOX lists and its first %d messages read byte-exact (imaplib)"
                   % len(truth))
    finally:
        r = subprocess.run(["fusermount3", "-u", MNT], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=60)
        gone = wait_for(lambda: not any(os.path.exists("/proc/%d" % p) for p in pids), 30)
        C.check(r.returncode == 0 and not mounted(MNT) and gone,
                "fusermount3 -u unmounts and the detached daemon exits",
                "status %d (%s), still mounted: %s, daemons left: %s" % (
                    r.returncode, r.stderr.decode(errors="replace").strip(), mounted(MNT),
                    [p for p in pids if os.path.exists("/proc/%d" % p)]))
        for p in pids:          # ours, by PID, only if it outlived the unmount
            if os.path.exists("/proc/%d" % p):
                os.kill(p, 9)
        rep = sanitizer_reports([OUT, LOG] + [os.path.join(RUN, f) for f in os.listdir(RUN)
                                              if f.startswith("sanitizer")])
        C.check(not rep, "no sanitizer report in the mount's output, log or sanitizer files",
                "; ".join("%s: %s" % x for x in rep))
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
