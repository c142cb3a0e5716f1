#!/usr/bin/env python3
"""test_hostile.py - servers that break the rules (a scripted IMAPS
server, tests/integration/fakeimap.py, does what Dovecot will not).

  uidmax  INBOX holds UIDs 1 and 4294967295 (the highest there is) and
          reports no UIDNEXT (there is none left).  Both list and read
          byte-exact, a refresh succeeds (a second pass over the folder
          has nothing "new" to ask for), and no command ever names UID 0
          (what "4294967295 + 1" wraps to).
  biglit  A message whose RFC822.SIZE is 163 bytes comes as a BODY[]
          literal of 100 MB (the cache holds 64 MB).  Reading it fails
          with EIO after at most a few MB, the cache directory stays
          small, the log says why, and the honest message beside it
          still reads byte-exact (also when fetched in one batch with
          the liar).
  endless LIST never completes: junk mailboxes for ever.  The daemon
          gives up on that LIST (the log says so) with its memory
          bounded (as for bigresp), the mount answers meanwhile, and once the server
          behaves INBOX shows up by itself.
  bigresp Every EXAMINE's answer starts with one untagged response of
          60 MB (a single atom), while four readers fetch at once, each
          on its own connection.  The daemon's peak memory (VmHWM) stays
          under 128 MB (512 MB for the ASan build): a response held in
          memory is capped per connection, and the caps add up to little.

Needs the harness's TLS files (tests/harness/start.sh); no mail server.
Environment (MAILFS_BIN, MAILFS_TEST_DIR, MAILFS_TEST_LABEL), output: mounttest.py.
"""

import os
import re
import sys
import threading
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (Mount, by_uid, cat, check_mount, listdir, mailfs_env, ready,  # noqa: E402
                       refresh, setup_test, unmount_and_check, wait_for)
import fakeimap  # noqa: E402

BIN, LABEL, C, H, RUN = setup_test("hostile")
MOUNT_TIMEOUT = 60
SYNC_TIMEOUT = 60
CMD_TIMEOUT = 60
UID_MAX = 4294967295


def message(n, subject):
    return ("From: Hostile <h@hostile.mailfs.test>\r\nTo: alice@mailfs.test\r\n"
            "Subject: %s\r\nDate: Mon, 1 Jun 2026 10:%02d:00 +0000\r\n"
            "Message-ID: <h%d@hostile.mailfs.test>\r\n\r\nbody %d\r\n"
            % (subject, n, n, n)).encode()


def mount(what, port, opts="", debug="imap:sync"):
    log = os.path.join(RUN, what + ".log")
    args = "ca_file=%s,password_command=echo secret,cache_dir=%s,log_file=%s," \
           "debug=%s,poll_interval=3600,timeout=10%s" % (
               H["ca_file"], os.path.join(RUN, "cache-" + what), log, debug, opts)
    env = mailfs_env(RUN, "xdg-cache", "data-" + what)
    os.makedirs(env["XDG_CONFIG_HOME"], exist_ok=True)
    mnt = Mount(BIN, ["-o", args], "imaps://alice@127.0.0.1:%d" % port,
                os.path.join(RUN, "mnt-" + what), env, MOUNT_TIMEOUT)
    mnt.log = log
    return check_mount(C, mnt, "%s: mount the scripted server" % what)


def finish(mnt, what):
    unmount_and_check(C, mnt, what, [mnt.log], "the daemon's output or log")


# --- uidmax ---------------------------------------------------------------------

def uidmax_part():
    what = "uidmax"
    msgs = [fakeimap.Msg(1, message(1, "first")), fakeimap.Msg(UID_MAX, message(2, "last"))]
    srv = fakeimap.FakeImap(H, {"INBOX": fakeimap.Mailbox(7, msgs, uidnext=None)})
    srv.start()
    mnt = None
    try:
        mnt = mount(what, srv.port, ",idle_folders=0")
        if mnt is None:
            return
        root = mnt.mountpoint
        got = wait_for(lambda: len(by_uid(root, "INBOX")) == 2 and by_uid(root, "INBOX"),
                       SYNC_TIMEOUT)
        if not C.check(got and set(got) == {1, UID_MAX}, "uidmax: INBOX lists UIDs 1 and %d"
                       % UID_MAX, listdir(os.path.join(root, "INBOX"))):
            return
        probs = []
        for m in msgs:
            data = cat(os.path.join(root, "INBOX", got[m.uid]), CMD_TIMEOUT)
            if data != m.raw:
                probs.append("UID %d: %s" % (m.uid, data if isinstance(data, str) else
                                             "%d bytes" % len(data)))
        C.problems(probs, "uidmax: both read byte-exact")
        for i in (1, 2):
            e = refresh(root)
            C.check(e is None, "uidmax: refresh %d succeeds (a full pass over the folder)" % i, e)
        zero = [c for c in srv.commands if re.match(r"UID FETCH (0\b|.*[,:]0\b)", c)]
        C.check(not zero, "uidmax: no command names UID 0", zero[:3])
        C.check(set(by_uid(root, "INBOX")) == {1, UID_MAX},
                "uidmax: after the refreshes INBOX still lists UIDs 1 and %d" % UID_MAX,
                listdir(os.path.join(root, "INBOX")))
    finally:
        if mnt is not None:
            finish(mnt, what)
        srv.stop()
        C.check(not srv.errors, "uidmax: the scripted server ran without errors of its own",
                srv.errors[:3])


# --- biglit ---------------------------------------------------------------------

BIGLIT = 100 << 20


def dir_bytes(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_size
            except OSError:
                pass
    return total


def log_has(mnt, pattern):
    try:
        with open(mnt.log, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    m = re.search(pattern, text)
    return m.group(0) if m else None


def biglit_part():
    what = "biglit"
    honest = fakeimap.Msg(1, message(1, "honest"))
    liar = fakeimap.Msg(2, message(2, "liar"))
    srv = fakeimap.FakeImap(H, {"INBOX": fakeimap.Mailbox(9, [honest, liar])})
    srv.body_override[2] = (BIGLIT, b"A" * 65536)
    srv.start()
    mnt = None
    try:
        mnt = mount(what, srv.port, ",idle_folders=0,cache_size=64M")
        if mnt is None:
            return
        root = mnt.mountpoint
        got = wait_for(lambda: len(by_uid(root, "INBOX")) == 2 and by_uid(root, "INBOX"),
                       SYNC_TIMEOUT)
        if not C.check(got, "biglit: INBOX lists both messages",
                       listdir(os.path.join(root, "INBOX"))):
            return
        sent0 = srv.sent_bytes
        data = cat(os.path.join(root, "INBOX", got[2]), CMD_TIMEOUT)
        C.check(isinstance(data, str) and "Input/output error" in data,
                "biglit: reading the message sent as a %d MB literal for an RFC822.SIZE of "
                "%d fails with EIO" % (BIGLIT >> 20, liar.size),
                data if isinstance(data, str) else "read %d bytes" % len(data))
        cache = os.path.join(RUN, "cache-" + what)
        C.check(dir_bytes(cache) < (8 << 20), "biglit: the cache directory holds less than "
                "8 MB after it", "%d bytes" % dir_bytes(cache))
        C.check(srv.sent_bytes - sent0 < BIGLIT // 2, "biglit: mailfs stopped reading the "
                "literal long before its end", "the server sent %d bytes" % (
                    srv.sent_bytes - sent0))
        C.check(log_has(mnt, r"(?i)body.*(over|bigger|larger).*"), "biglit: the log says the "
                "body was refused for its size", "no such line")
        data = cat(os.path.join(root, "INBOX", got[1]), CMD_TIMEOUT)
        C.check(data == honest.raw, "biglit: the honest message then reads byte-exact "
                "(fetched with the liar as readahead)",
                data if isinstance(data, str) else "%d bytes" % len(data))
    finally:
        if mnt is not None:
            finish(mnt, what)
        srv.stop()


# --- endless ----------------------------------------------------------------------

# The ASan build keeps freed memory in quarantine and pads every block.
RSS_LIMIT = (512 if "asan" in LABEL else 128) << 20
ENDLESS_FOR = 15


def rss(pid, what="VmHWM"):
    """The daemon's peak (VmHWM) or current (VmRSS) resident memory."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(what + ":"):
                    return int(line.split()[1]) << 10
    except OSError:
        pass
    return 0


def endless_part():
    what = "endless"
    msgs = [fakeimap.Msg(1, message(1, "after the storm"))]
    srv = fakeimap.FakeImap(H, {"INBOX": fakeimap.Mailbox(11, msgs)})
    srv.endless_list = True
    srv.start()
    mnt = None
    try:
        # No protocol trace: it would log every junk mailbox.
        mnt = mount(what, srv.port, ",idle_folders=0", debug="sync")
        if mnt is None:
            return
        root = mnt.mountpoint
        peak, t0 = 0, time.time()
        while time.time() - t0 < ENDLESS_FOR and peak < RSS_LIMIT:
            peak = rss(mnt.pid)
            time.sleep(0.2)
        srv.endless_list = False    # before a daemon over the limit takes the box down
        sent = srv.sent_bytes
        print("# endless: the server sent %d MB of LIST in %.0f s; daemon peak RSS %d MB"
              % (sent >> 20, time.time() - t0, peak >> 20), flush=True)
        C.check(peak < RSS_LIMIT, "endless: the daemon's memory stays under %d MB while the "
                "server sends LIST responses for ever" % (RSS_LIMIT >> 20),
                "peak RSS %d MB" % (peak >> 20))
        C.check(log_has(mnt, r"(?i)(too many|more than).*mailboxes.*"),
                "endless: the log says the LIST was given up", "no such line")
        entries = listdir(root)
        C.check(isinstance(entries, list), "endless: meanwhile the mount answers ls", entries)
        got = wait_for(lambda: by_uid(root, "INBOX"), 90)
        C.check(got and set(got) == {1}, "endless: once the server behaves, INBOX shows up "
                "by itself", listdir(root))
    finally:
        srv.endless_list = False
        if mnt is not None:
            finish(mnt, what)
        srv.stop()


# --- bigresp ---------------------------------------------------------------------

BIGRESP = 60 << 20
READERS = 4


def bigresp_part():
    what = "bigresp"
    msgs = [fakeimap.Msg(i, message(i, "reader %d" % i)) for i in range(1, READERS + 1)]
    srv = fakeimap.FakeImap(H, {"INBOX": fakeimap.Mailbox(13, msgs)})
    srv.start()
    mnt = None
    try:
        mnt = mount(what, srv.port, ",idle_folders=0,connections=%d" % READERS, debug="sync")
        if mnt is None:
            return
        root = mnt.mountpoint
        got = wait_for(lambda: len(by_uid(root, "INBOX")) == READERS and by_uid(root, "INBOX"),
                       SYNC_TIMEOUT)
        if not C.check(got, "bigresp: INBOX lists its %d messages" % READERS,
                       listdir(os.path.join(root, "INBOX"))):
            return
        before = rss(mnt.pid)
        srv.select_preamble = b"* XJUNK " + b"x" * BIGRESP + b"\r\n"
        results = {}
        threads = [threading.Thread(target=lambda u=u: results.__setitem__(
            u, cat(os.path.join(root, "INBOX", got[u]), CMD_TIMEOUT))) for u in sorted(got)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(CMD_TIMEOUT + 10)
        peak = rss(mnt.pid)
        print("# bigresp: peak RSS %d MB before, %d MB after; the server sent %d MB"
              % (before >> 20, peak >> 20, srv.sent_bytes >> 20), flush=True)
        C.check(peak < RSS_LIMIT, "bigresp: the daemon's peak memory stays under %d MB while "
                "%d connections get a %d MB response each" % (
                    RSS_LIMIT >> 20, READERS, BIGRESP >> 20), "VmHWM %d MB" % (peak >> 20))
        C.check(mnt.proc.poll() is None, "bigresp: the daemon is still running",
                "exited with %s" % mnt.proc.poll())
        srv.select_preamble = b""
        probs = []
        for m in msgs:
            data = cat(os.path.join(root, "INBOX", got[m.uid]), CMD_TIMEOUT)
            if data != m.raw:
                probs.append("UID %d: %s" % (m.uid, data if isinstance(data, str) else
                                             "%d bytes" % len(data)))
        C.problems(probs, "bigresp: once the server behaves, every message reads byte-exact")
    finally:
        if mnt is not None:
            finish(mnt, what)
        srv.select_preamble = b""
        srv.stop()


def main():
    if not ready(C, BIN, RUN):
        return 1
    C.parts(uidmax_part, biglit_part, endless_part, bigresp_part)
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
