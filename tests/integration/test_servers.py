#!/usr/bin/env python3
"""test_servers.py - the harness's IMAP servers themselves: Dovecot, Cyrus
and Courier (tests/harness/start.sh; "servers" in harness.json).  No
mailfs: python3 imaplib only, TLS verified against the test CA.

For each server:
  present  harness.json names it (a server start.sh left out, e.g. for
           want of tests/harness/packages.sh, is a FAIL, not a skip: tests/run
           installs all three).
  imaps    alice logs in over IMAPS; CAPABILITY after login has IDLE and
           NAMESPACE, and SPECIAL-USE exactly when harness.json says so.
  starttls on the IMAP port STARTTLS is offered and a login after it works;
           Cyrus and Courier refuse LOGIN before it (Dovecot takes loopback
           as secure and does not).
  log      the log harness.json names shows alice's login.
  names    NAMESPACE's first personal namespace and every LIST delimiter
           are harness.json's prefix and delimiter; every folder but INBOX
           is below the prefix; the trash folder is listed, marked \\Trash
           exactly when the server has SPECIAL-USE.
  seeded   alice's and bob's folders hold what seed.py --server put there
           (tests/data/seed.tsv, less what seed.py's REFUSED says the
           server refuses), every manifest folder is listed, and no other
           folder holds mail.  tests/run runs this test right after
           seeding; after other tests Dovecot's counts may differ.
  idle     connection 1 IDLEs in a folder of its own; an APPEND to it from
           connection 2 shows up as EXISTS on connection 1 within
           IDLE_WAIT seconds (Dovecot, Cyrus with idled and Courier with
           IMAP_ENHANCEDIDLE push at once; a server that only polls would
           need a minute).  The folder is deleted after.

Courier's mount namespace (courier.sh) starts as a copy of every mount
there is: a FUSE mount in it would outlive its fusermount3 -u, and its
daemon would never exit.  "courier: mounts" restarts Courier while a
mailfs (the one binary this test runs) is mounted on Dovecot, unmounts
it, and wants the daemon gone within 10 s.

The CAPABILITY of each after login is printed as a # line.
Environment (MAILFS_TEST_DIR, MAILFS_TEST_LABEL), output: mounttest.py.
"""

import imaplib
import os
import re
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (imaptest as it, mount_own_dirs, ready, run_harness,  # noqa: E402
                       setup_test, write_alice_config)
import seed  # noqa: E402  (tests/harness, put on sys.path by mounttest)

BIN, LABEL, C, H, RUN = setup_test("servers", None)
SERVERS = ("dovecot", "cyrus", "courier")
IDLE_WAIT = 10
IDLE_FOLDER = "mailfs-servers-idle"

_NS_RE = re.compile(rb'^\(\("((?:[^"\\]|\\.)*)" (?:"((?:[^"\\]|\\.)*)"|NIL)\)')


def personal_namespace(m):
    """(prefix, delimiter) of the first personal namespace."""
    data = it.check(*m.namespace(), "NAMESPACE")
    mo = _NS_RE.match(data[0] or b"")
    if not mo:
        raise RuntimeError("cannot parse NAMESPACE %r" % (data,))
    return mo.group(1).decode(), (mo.group(2) or b"").decode()


def connect_plain(hs):
    return imaplib.IMAP4(hs["host"], hs["imap_port"], timeout=60)


def check_starttls(name, hs, srv):
    m = connect_plain(hs)
    try:
        caps = set(m.capabilities)
        C.check("STARTTLS" in caps, "%s: the IMAP port offers STARTTLS" % name, sorted(caps))
        if name != "dovecot":
            C.check("LOGINDISABLED" in caps, "%s: LOGINDISABLED before STARTTLS" % name,
                    sorted(caps))
            try:
                typ, data = m.login("alice", it.password(hs, "alice"))
            except imaplib.IMAP4.error as e:
                typ, data = "NO", [str(e)]
            C.check(typ != "OK", "%s: LOGIN before STARTTLS is refused" % name, data)
    finally:
        try:
            m.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    m = connect_plain(hs)
    try:
        m.starttls(ssl_context=it.tls_context(hs["ca_file"]))
        typ, _ = m.login("alice", it.password(hs, "alice"))
        C.equal(typ, "OK", "%s: LOGIN after STARTTLS (certificate verified)" % name)
    finally:
        m.logout()


def check_log(name, srv):
    log = srv["log"]
    if name == "cyrus":
        # Telemetry: one file per imapd process in log/<user>/.
        d = os.path.join(log, "alice")
        n = len(os.listdir(d)) if os.path.isdir(d) else 0
        C.check(n > 0, "cyrus: telemetry of alice's sessions in %s" % d, "no file")
        return
    want = {"dovecot": "Login: user=<alice>", "courier": "LOGIN, user=alice,"}[name]
    try:
        with open(log, errors="replace") as f:
            text = f.read()
    except OSError as e:
        text = ""
        C.fail("%s: log %s" % (name, log), e)
        return
    C.check(want in text, "%s: its log %s shows alice's login" % (name, log),
            "no %r in it" % want)


def check_names(name, m, srv, caps):
    prefix, delim = personal_namespace(m)
    C.equal((prefix, delim), (srv["prefix"], srv["delimiter"]),
            "%s: NAMESPACE's personal namespace is harness.json's" % name)
    folders = it.list_folders(m)
    names = {n for n, _, _ in folders}
    C.check("INBOX" in names, "%s: LIST shows INBOX" % name, sorted(names))
    C.problems(["%s: delimiter %r" % (n, d) for n, _, d in folders if d != srv["delimiter"]],
               "%s: every LIST delimiter is %r" % (name, srv["delimiter"]))
    C.problems([n for n in names if n != "INBOX" and not n.startswith(srv["prefix"])],
               "%s: every folder is below the prefix %r" % (name, srv["prefix"]))
    C.equal("SPECIAL-USE" in caps, srv["special_use"],
            "%s: SPECIAL-USE announced as harness.json says" % name)
    trash = [f for n, f, _ in folders if n == srv["trash"]]
    C.check(trash, "%s: the trash folder %s is listed" % (name, srv["trash"]), sorted(names))
    marked = sorted(n for n, f, _ in folders if "\\Trash" in f)
    C.equal(marked, [srv["trash"]] if srv["special_use"] else [],
            "%s: folders LIST marks \\Trash" % name)


def check_seeded(name, hs, srv):
    rows = seed.read_manifest(os.path.join(seed.DATA_DIR, "seed.tsv"))
    for user in sorted({r["user"] for r in rows}):
        mine = [r for r in rows if r["user"] == user]
        with it.session(hs, user) as m:
            folders = it.list_folders(m)
            specials = seed.specials_of(folders)
            listed = {n for n, _, _ in folders}
            made = {seed.server_folder(r["folder"], srv, specials).rstrip("/") for r in mine}
            want = {}
            for r in seed.counted_rows(mine, name):
                f = seed.server_folder(r["folder"], srv, specials)
                want[f] = want.get(f, 0) + 1
            got = {n: it.select(m, n) for n, f, _ in folders
                   if not ({"\\Noselect", "\\NonExistent"} & f)}
        C.problems(sorted(made - listed), "%s: %s: every manifest folder is listed" % (name, user))
        probs = ["%s: %d, want %d" % (f, got.get(f, 0), n) for f, n in sorted(want.items())
                 if got.get(f, 0) != n]
        probs += ["%s: %d messages, want none" % (f, n) for f, n in sorted(got.items())
                  if n and f not in want]
        C.problems(probs, "%s: %s: %d seeded messages in %d folders" % (
            name, user, sum(want.values()), len(want)))


def idle_message(name):
    return ("From: Harness <harness@mailfs.test>\r\nTo: alice@mailfs.test\r\n"
            "Subject: IDLE check on %s\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n"
            "Message-ID: <idle-%s-%d@servers.mailfs.test>\r\n\r\nbody\r\n"
            % (name, name, os.getpid())).encode()


def check_idle(name, hs, srv):
    folder = srv["prefix"] + IDLE_FOLDER
    with it.session(hs) as m:
        if folder in {n for n, _, _ in it.list_folders(m)}:
            it.check(*m.delete(it.wire_name(folder)), "DELETE an old " + folder)
        it.check(*m.create(it.wire_name(folder)), "CREATE " + folder)
    m1 = it.connect(hs)
    try:
        it.select(m1, folder)
        m1.send(b"I1 IDLE\r\n")
        m1.sock.settimeout(IDLE_WAIT)
        line = m1.readline()
        if not C.check(line.startswith(b"+"), "%s: IDLE is accepted" % name, line):
            return
        t0 = time.monotonic()
        with it.session(hs) as m2:
            it.check(*m2.append(it.wire_name(folder), None, None, idle_message(name)),
                     "APPEND to " + folder)
        seen, lines = None, []
        try:
            while time.monotonic() - t0 < IDLE_WAIT:
                line = m1.readline()
                if not line:
                    break
                lines.append(line.strip())
                if re.match(rb"^\* 1 EXISTS", line):
                    seen = time.monotonic() - t0
                    break
        except (socket.timeout, TimeoutError):
            pass
        if not C.check(seen is not None, "%s: an APPEND from another connection shows up "
                       "in IDLE within %d s%s" % (name, IDLE_WAIT, "" if seen is None else
                                                  " (after %.2f s)" % seen),
                       lines or "nothing came"):
            return      # a timed-out TLS socket reads no more
        m1.sock.settimeout(60)
        m1.send(b"DONE\r\n")
        while not line.startswith(b"I1 "):
            line = m1.readline()
            if not line:
                break
        C.check(line.startswith(b"I1 OK"), "%s: IDLE ends with OK after DONE" % name, line)
    finally:
        try:
            m1.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
        with it.session(hs) as m:
            m.delete(it.wire_name(folder))


def check_server(name):
    srv = (H.get("servers") or {}).get(name)
    if not C.check(srv, "%s: in harness.json" % name,
                   "not started by start.sh (tests/harness/packages.sh installs it)"):
        return
    hs = it.for_server(H, name)
    with it.session(hs) as m:
        caps = it.capabilities(m)
        print("# %s: CAPABILITY after login: %s" % (name, " ".join(sorted(caps))), flush=True)
        C.ok("%s: alice logs in over IMAPS (certificate verified)" % name)
        C.check({"IDLE", "NAMESPACE"} <= caps, "%s: IDLE and NAMESPACE announced" % name,
                sorted(caps))
        C.section("%s: names" % name, check_names, name, m, srv, caps)
    C.section("%s: starttls" % name, check_starttls, name, hs, srv)
    C.section("%s: log" % name, check_log, name, srv)
    C.section("%s: seeded" % name, check_seeded, name, hs, srv)
    C.section("%s: idle" % name, check_idle, name, hs, srv)


def check_courier_mounts():
    write_alice_config(RUN, H, "alice@servers")
    mnt = mount_own_dirs(BIN, RUN, "alice@servers", "courier", [], 60)
    try:
        if not C.check(mnt.ok, "courier: mounts: mailfs mounted on Dovecot", mnt.error):
            return
        ok, out = run_harness(H, "courier.sh", "stop")
        if ok:
            ok, out = run_harness(H, "courier.sh", "start")
        if not C.check(ok, "courier: mounts: Courier restarted while mailfs is mounted", out):
            return
        subprocess.run(["fusermount3", "-u", mnt.mountpoint], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        try:
            rc = mnt.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        C.check(rc == 0, "courier: mounts: after fusermount3 -u the daemon exits (status 0) "
                "within 10 s: Courier's namespace keeps no copy of the mount", "status %s" % rc)
    finally:
        mnt.unmount()


def main():
    if not ready(C, BIN, RUN):
        return 1
    for name in SERVERS:
        C.section(name, check_server, name)
    if (H.get("servers") or {}).get("courier"):
        C.section("courier: mounts", check_courier_mounts)
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
