#!/usr/bin/env python3
"""test_sizelie.py - a server that reports RFC822.SIZE wrongly.

Dovecot always reports sizes correctly, so this test puts a scripted
man-in-the-middle (tests/harness/lieproxy.py) between mailfs and Dovecot:
it terminates TLS with the harness's server certificate, talks TLS to
Dovecot (verified against the test CA) and rewrites RFC822.SIZE in FETCH
responses, by UID: UID % 3 == 1 is reported MINUS bytes too small, UID % 3
== 2 PLUS bytes too large, UID % 3 == 0 is left alone (the control group).
Literals (message bodies) pass byte for byte.

mailfs(1): "If a server reports a size (RFC822.SIZE) that differs from the
bytes it then sends, the index is corrected and the kernel's cached
attributes are invalidated."  Checked against imaplib talking to Dovecot
directly (the true sizes and bytes):

  - before anything is read, stat shows the size the server claimed;
  - cat of each .eml returns exactly the true bytes: not cut at a smaller
    claimed size, not padded to a larger one;
  - after reading, stat reports the true size (polled for at most 5 s:
    the invalidation is asynchronous);
  - messages mailfs fetched along with another one (readahead; the log
    names their mismatch) show the true size before anyone reads them:
    only the inval_inode notification can tell the kernel;
  - a second and third cat (through the page cache now) are still exact;
  - the daemon log has a line naming the mismatch;
  - after a remount on the same cache_dir, again through the lying proxy,
    ls -l shows the true sizes (the corrected index persisted and the
    re-sync did not undo it), and cat is still exact.

Needs the private Dovecot from tests/harness/start.sh, seeded by seed.py.
Environment (MAILFS_BIN, MAILFS_TEST_DIR, MAILFS_TEST_LABEL), output: mounttest.py.
"""

import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (Mount, cat, first_diff, imaptest as it, mailfs_env, ready,  # noqa: E402
                       setup_test, unmount_and_check)
import lieproxy  # noqa: E402  (tests/harness is on sys.path via mounttest)

BIN, LABEL, C, H, RUN = setup_test("sizelie")
FOLDERS = ("INBOX", "Archive/2024")
# Read in descending UID order, so that (if mailfs reads ahead to higher
# UIDs) every message is fetched by its own open: the path where the kernel
# may still hold the claimed size while the read starts.
DESCENDING = ("Archive/2024",)
MINUS, PLUS = 7, 13
DELTA = lieproxy.mod3_delta(MINUS, PLUS)
MOUNT_TIMEOUT = 90
SYNC_TIMEOUT = 120
INVAL_TIMEOUT = 5.0
CAT_TIMEOUT = 60

NAME_RE = re.compile(r"^.* \[(\d+)\]\.eml$", re.S)


class Msg:
    def __init__(self, folder, uid, size, raw):
        self.folder = folder
        self.uid = uid
        self.size = size            # RFC822.SIZE from Dovecot itself
        self.raw = raw              # BODY.PEEK[] from Dovecot itself
        self.true = len(raw)
        self.lied = self.true + DELTA(uid)

    @property
    def kind(self):
        d = DELTA(self.uid)
        return "smaller" if d < 0 else "larger" if d > 0 else "honest"

    def __repr__(self):
        return "%s/%d" % (self.folder, self.uid)


def truth():
    """{folder: {uid: Msg}} straight from Dovecot."""
    m = it.connect(H, "alice")
    try:
        res = {}
        for f in FOLDERS:
            meta = it.folder_meta(m, f)
            res[f] = {u: Msg(f, u, d["size"], it.fetch_raw(m, u)) for u, d in meta.items()}
        return res
    finally:
        m.logout()


def describe(data, m):
    """Why `data` is not m.raw, in the terms of this test."""
    if isinstance(data, str):
        return data
    if len(data) == m.lied and m.lied < m.true and data == m.raw[:m.lied]:
        return "cut at the claimed %d of %d bytes" % (m.lied, m.true)
    if len(data) == m.lied and m.lied > m.true and data[:m.true] == m.raw:
        return "padded to the claimed %d bytes (%r after the true %d)" % (
            m.lied, data[m.true:], m.true)
    return "%d bytes, want %d (claimed %d), first difference at %d" % (
        len(data), m.true, m.lied, first_diff(data, m.raw))


def size_of(path):
    try:
        return os.stat(path).st_size
    except OSError as e:
        return "stat: %s" % e


def poll_size(path, want, timeout=INVAL_TIMEOUT):
    """Stat until st_size == want or timeout; (last size, seconds)."""
    t0 = time.time()
    while True:
        got = size_of(path)
        if got == want or time.time() - t0 >= timeout:
            return got, time.time() - t0
        time.sleep(0.05)


def files_by_uid(root, folder):
    res = {}
    try:
        names = os.listdir(os.path.join(root, folder))
    except OSError:
        return res
    for n in names:
        mo = NAME_RE.match(n)
        if mo:
            res[int(mo.group(1))] = os.path.join(root, folder, n)
    return res


def wait_listed(root, msgs, timeout=SYNC_TIMEOUT):
    """{folder: {uid: path}} once every folder lists every UID, else None."""
    deadline = time.time() + timeout
    while True:
        got = {f: files_by_uid(root, f) for f in FOLDERS}
        if all(set(got[f]) >= set(msgs[f]) for f in FOLDERS):
            return got
        if time.time() >= deadline:
            return None
        time.sleep(0.2)


def ls_sizes(root, folder):
    """{uid: size} as `ls -l` prints them (None on failure, with reason)."""
    r = subprocess.run(["ls", "-l", "--time-style=+%s", "--", os.path.join(root, folder)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    if r.returncode != 0:
        return None, "ls exit %d: %s" % (r.returncode, r.stderr.decode("utf-8", "replace").strip())
    res = {}
    for line in r.stdout.decode("utf-8", "replace").splitlines():
        f = line.split(None, 6)
        if len(f) < 7 or not f[0].startswith("-"):
            continue
        mo = NAME_RE.match(f[6])
        if mo:
            res[int(mo.group(1))] = int(f[4])
    return res, ""


def mount(name, proxy_port, log):
    url = "imaps://alice@127.0.0.1:%d" % proxy_port
    opts = "ca_file=%s,password_command=cat %s,cache_dir=%s,log_file=%s" % (
        H["ca_file"], H["users"]["alice"]["password_file"], os.path.join(RUN, "cache"), log)
    env = mailfs_env(RUN, "xdg-cache")
    os.makedirs(env["XDG_CONFIG_HOME"], exist_ok=True)     # empty: no config file
    return Mount(BIN, ["-o", opts], url, os.path.join(RUN, name), env, MOUNT_TIMEOUT)


def finish(mnt, what, logs):
    unmount_and_check(C, mnt, what, logs, "the daemon's output or log")


# --- the parts ------------------------------------------------------------------

def check_proxy(port, msgs):
    """The proxy itself, with imaplib: lies about sizes, bodies intact."""
    h = dict(H, imaps_port=port)
    probs = []
    try:
        m = it.connect(h, "alice")
        try:
            for f in FOLDERS:
                meta = it.folder_meta(m, f)
                for u, t in sorted(msgs[f].items()):
                    if u not in meta:
                        probs.append("%r missing" % t)
                        continue
                    if meta[u]["size"] != t.lied:
                        probs.append("%r: RFC822.SIZE %d, want %d" % (t, meta[u]["size"], t.lied))
                    raw = it.fetch_raw(m, u)
                    if raw != t.raw:
                        probs.append("%r: body %s" % (t, describe(raw, t)))
        finally:
            m.logout()
    except Exception as e:   # noqa: BLE001 - any failure is this check's FAIL
        probs.append("%s: %s" % (type(e).__name__, e))
    C.problems(probs, "the proxy (imaplib through it, TLS verified with the test CA) reports "
               "RFC822.SIZE -%d/+%d by UID and passes bodies byte-exact" % (MINUS, PLUS))


def first_mount(port, msgs, log):
    mnt = mount("mnt", port, log)
    if not C.check(mnt.ok, "mount imaps://alice@127.0.0.1:<proxy port> (the lying proxy) "
                   "with a fresh cache_dir", mnt.error):
        mnt.unmount()
        return False
    try:
        root = mnt.mountpoint
        files = wait_listed(root, msgs)
        if not C.check(files is not None, "%s list every message within %d s"
                       % (" and ".join(FOLDERS), SYNC_TIMEOUT),
                       {f: sorted(set(msgs[f]) - set(files_by_uid(root, f))) for f in FOLDERS}):
            return False

        # 1. Before reading: the kernel has what the server claimed.
        for f in FOLDERS:
            probs = []
            for u, m in sorted(msgs[f].items()):
                got = size_of(files[f][u])
                if got != m.lied:
                    probs.append("UID %d: st_size %s, claimed %d, true %d" % (u, got, m.lied, m.true))
            C.problems(probs, "%s: before reading, st_size is the server's claimed RFC822.SIZE "
                       "(-%d for UID%%3==1, +%d for UID%%3==2, exact otherwise)" % (f, MINUS, PLUS))

        # 2. First cat of each message, by UID (descending in DESCENDING);
        # then stat.  mailfs
        # may fetch neighbours along (readahead): those get corrected while
        # nobody reads them, so only the invalidation can update what the
        # kernel holds (a read would refresh the attributes anyway, as it
        # invalidates atime).  Which ones were fetched: the log says.
        read, ahead, ahead_stale = set(), set(), []
        for f in FOLDERS:
            bad = {"smaller": [], "larger": [], "honest": []}
            stale = []
            for u, m in sorted(msgs[f].items(), reverse=(f in DESCENDING)):
                p = files[f][u]
                data = cat(p, CAT_TIMEOUT)
                read.add((f, u))
                for af, au in sorted(logged_mismatches(log, msgs) - read - ahead):
                    ahead.add((af, au))
                    am = msgs[af][au]
                    got, secs = poll_size(files[af][au], am.true)
                    if got != am.true:
                        ahead_stale.append("%s/%d: st_size %s after %.1f s, true %d (claimed %d)"
                                           % (af, au, got, secs, am.true, am.lied))
                if data != m.raw:
                    bad[m.kind].append("UID %d: %s" % (u, describe(data, m)))
                got, secs = poll_size(p, m.true)
                if got != m.true:
                    stale.append("UID %d: st_size %s after %.1f s, true %d (claimed %d)"
                                 % (u, got, secs, m.true, m.lied))
            C.problems(bad["smaller"], "%s: first cat of every message claimed %d bytes too "
                       "small returns all the true bytes (not truncated)" % (f, MINUS))
            C.problems(bad["larger"], "%s: first cat of every message claimed %d bytes too "
                       "large returns exactly the true bytes (not padded)" % (f, PLUS))
            C.problems(bad["honest"], "%s: first cat of every correctly sized message is "
                       "byte-exact" % f)
            C.problems(stale, "%s: after reading, stat reports the true size within %.0f s "
                       "(kernel attributes invalidated)" % (f, INVAL_TIMEOUT))

        print("# %d mis-sized messages were fetched ahead of being read" % len(ahead), flush=True)
        C.problems(ahead_stale, "messages fetched along with another one (mismatch logged, not "
                   "read yet): stat shows the true size within %.0f s (inval_inode)" % INVAL_TIMEOUT)

        # 3. Again, now through the page cache with the corrected size.
        for f in FOLDERS:
            for n in ("second", "third"):
                probs = []
                for u, m in sorted(msgs[f].items()):
                    data = cat(files[f][u], CAT_TIMEOUT)
                    if data != m.raw:
                        probs.append("UID %d (%s): %s" % (u, m.kind, describe(data, m)))
                    got = size_of(files[f][u])
                    if got != m.true:
                        probs.append("UID %d: st_size %s, true %d" % (u, got, m.true))
                C.problems(probs, "%s: %s cat of every message is byte-exact and st_size "
                           "stays true" % (f, n))
    finally:
        finish(mnt, "first mount", [log])
    return True


def log_lines(log):
    with open(log, "rb") as fh:
        return fh.read().decode("utf-8", "replace").splitlines()


def num(n):
    return re.compile(r"(?<!\d)%d(?!\d)" % n)


def mentions(lines, m):
    """A log line naming m's folder, UID, claimed and true size."""
    wire = it.utf7_encode(m.folder)
    lied, true, uid = num(m.lied), num(m.true), num(m.uid)
    return any(wire in ln and uid.search(ln) and lied.search(ln) and true.search(ln)
               for ln in lines)


def logged_mismatches(log, msgs):
    """{(folder, uid)} of the mis-sized messages the log mentions so far."""
    try:
        lines = log_lines(log)
    except OSError:
        return set()
    return {(f, u) for f in FOLDERS for u, m in msgs[f].items()
            if m.lied != m.true and mentions(lines, m)}


def check_log(log, msgs):
    try:
        lines = log_lines(log)
    except OSError as e:
        C.fail("daemon log names every size mismatch", "cannot read %s: %s" % (log, e))
        return
    missing = ["%s/%d (claimed %d, sent %d)" % (f, u, m.lied, m.true)
               for f in FOLDERS for u, m in sorted(msgs[f].items())
               if m.lied != m.true and not mentions(lines, m)]
    hint = [ln for ln in lines if "said" in ln or "size" in ln.lower()][:2]
    C.problems(missing + (["e.g. %r" % hint] if missing and hint else []),
               "daemon log (log_file) has a line naming folder, UID, claimed and true size "
               "of every mis-sized message read")


def remount(port, msgs, log):
    mnt = mount("mnt2", port, log)
    if not C.check(mnt.ok, "remount through the lying proxy on the same cache_dir", mnt.error):
        mnt.unmount()
        return
    try:
        root = mnt.mountpoint
        files = wait_listed(root, msgs)
        if not C.check(files is not None, "remount: every message listed within %d s" % SYNC_TIMEOUT,
                       {f: sorted(set(msgs[f]) - set(files_by_uid(root, f))) for f in FOLDERS}):
            return
        for f in FOLDERS:
            sizes, err = ls_sizes(root, f)
            probs = [err] if sizes is None else []
            for u, m in sorted(msgs[f].items()):
                if sizes is not None and sizes.get(u) != m.true:
                    probs.append("UID %d: ls -l size %s, true %d (claimed %d)"
                                 % (u, sizes.get(u), m.true, m.lied))
            C.problems(probs, "%s: after remount (index persisted, re-synced through the "
                       "liar), ls -l shows the true size of every message read" % f)
        probs = []
        for f in FOLDERS:
            for u, m in sorted(msgs[f].items()):
                if m.lied == m.true:
                    continue
                data = cat(files[f][u], CAT_TIMEOUT)
                if data != m.raw:
                    probs.append("%s/%d: %s" % (f, u, describe(data, m)))
        C.problems(probs, "after remount, cat of every mis-sized message is byte-exact")
    finally:
        finish(mnt, "remount", [log])


# --- main ---------------------------------------------------------------------

def main():
    if not ready(C, BIN, RUN):
        return 1

    try:
        msgs = truth()
    except Exception as e:   # noqa: BLE001
        C.fail("read the account with imaplib", "%s: %s (is the server running and seeded? "
               "tests/harness/start.sh && tests/harness/seed.py)" % (type(e).__name__, e))
        return 1
    allm = [m for f in FOLDERS for m in msgs[f].values()]
    C.check(all(m.size == m.true for m in allm),
            "Dovecot itself reports RFC822.SIZE equal to the BODY.PEEK[] length",
            [(m, m.size, m.true) for m in allm if m.size != m.true][:5])
    kinds = {k: sum(1 for m in allm if m.kind == k) for k in ("smaller", "larger", "honest")}
    C.check(all(n >= 3 for n in kinds.values()),
            "%s hold messages of each kind (claimed too small/too large/exact)" % " and ".join(FOLDERS),
            kinds)

    proxy = lieproxy.LieProxy(H, DELTA)
    try:
        port = proxy.start()
    except RuntimeError as e:
        C.fail("start the lying proxy", e)
        return 1
    log = os.path.join(RUN, "mailfs.log")
    try:
        check_proxy(port, msgs)
        before = len(proxy.rewrites)
        if first_mount(port, msgs, log):
            told = {(mb, u) for mb, u, _, _ in proxy.rewrites[before:]}
            want = {(m.folder, m.uid) for m in allm if m.lied != m.true}
            print("# the proxy rewrote %d RFC822.SIZE items for mailfs"
                  % (len(proxy.rewrites) - before), flush=True)
            C.check(want <= told, "the proxy lied to mailfs about every mis-sized message",
                    "never rewritten for %s" % sorted(want - told)[:8])
            check_log(log, msgs)
            remount(port, msgs, log)
    finally:
        proxy.stop()
    print("# lieproxy: %d connections" % proxy.connections, flush=True)
    C.check(not proxy.errors, "the proxy ran without errors",
            "; ".join(proxy.errors[:5]))
    if proxy.loop_errors:
        print("# lieproxy: asyncio reported: %s" % "; ".join(proxy.loop_errors[:5]), flush=True)

    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
