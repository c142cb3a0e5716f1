#!/usr/bin/env python3
"""test_plain.py - mailfs against a server without IMAP extensions.

Mounts the real binary on the second Dovecot of tests/harness/plain.sh,
which serves alice's mail but announces only "IMAP4rev1 UIDPLUS" (no
CONDSTORE, QRESYNC, MOVE, LITERAL+, IDLE, ENABLE, BINARY, LIST-STATUS,
ESEARCH, SPECIAL-USE), then only "IMAP4rev1 UIDPLUS CONDSTORE", and checks
every result with an independent client (imaplib on the main instance,
same mail):

  - changes by another client show through polling alone (-o
    poll_interval=2, no IDLE): an APPENDed message appears, an expunged one
    disappears, a flag change shows in getfattr -n user.mail.flags; and
    changes made while unmounted show after a remount (resync of a known
    folder by UID range and FLAGS, or CHANGEDSINCE with CONDSTORE);
  - rm moves a message to Trash with UID COPY + \\Deleted + UID EXPUNGE,
    and another message that already carries \\Deleted in the same folder
    is NOT expunged; mv to another folder the same way;
  - cp of a .eml into a folder APPENDs it with a synchronising literal;
  - with IMAP4rev1 alone (no UIDPLUS either) rm and mv fail with
    EOPNOTSUPP and change nothing on the server;
  - the protocol trace (-o debug=imap) shows the fallbacks were used:
    Dovecot obeys UID MOVE or {n+} it did not announce, so only what
    mailfs sent tells.

The test makes its own folders (pl-<random>...) and messages (Message-ID
...@plain.mailfs.test) and removes them, wherever they ended up, at the
end; it starts plain.sh's instance and stops it again.  Needs the harness
of tests/harness/start.sh.
Environment (MAILFS_BIN, MAILFS_TEST_DIR, MAILFS_TEST_LABEL), output: mounttest.py.
"""

import datetime
import imaplib
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (Mount, REPO_ROOT, check_mount, eml_name, imaptest as it,  # noqa: E402
                       listdir, mailfs_env, quietly, ready, restart_full_caps, run, server_setup,
                       setup_test, unmount_and_check, wait_for, wait_visible, write_alice_config)

BIN, LABEL, C, H, RUN = setup_test("plain")
ACCOUNT = "alice@plain"
MOUNT_TIMEOUT = 90
SYNC_TIMEOUT = 120      # a fresh mount shows our messages
POLL = 2                # -o poll_interval
SHOW_TIMEOUT = 30       # a change by another client shows (several polls)

TAG = "pl-" + secrets.token_hex(4)
DOMAIN = "plain.mailfs.test"
OURS_RE = re.compile(r"(^|/)pl-[0-9a-f]{8}\b")   # any run's folders

BARE_CAPS = ["IMAP4rev1", "UIDPLUS"]
MISSING = ["CONDSTORE", "QRESYNC", "MOVE", "LITERAL+", "IDLE", "ENABLE", "BINARY",
           "LIST-STATUS", "ESEARCH", "SPECIAL-USE", "UIDPLUS"]


# --- the independent view (imaplib on the main instance) ----------------------

def mid_of(tag):
    return "%s-%s@%s" % (TAG, tag, DOMAIN)


def make_message(tag, n):
    return ("From: Plain Test <pl@mailfs.test>\r\n"
            "To: Alice <alice@mailfs.test>\r\n"
            "Subject: Plain test %s\r\n"
            "Date: Tue, 05 Mar 2024 09:%02d:00 +0000\r\n"
            "Message-ID: <%s>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Hello from %s.\r\n" % (tag, n % 60, mid_of(tag), tag)).encode()


def where(tag):
    """Sorted [(folder, uid)] of every message with this tag's Message-ID."""
    return it.where(H, mid_of(tag))


def append(folder, tag, n, flags=None):
    """APPEND our message; its UID (from a SEARCH by Message-ID)."""
    m = it.connect(H)
    try:
        when = datetime.datetime(2024, 3, 5, 9, n % 60, tzinfo=datetime.timezone.utc)
        it.check(*m.append(it.wire_name(folder), flags, when, make_message(tag, n)),
                 "APPEND " + tag)
        return it.uid_of_mid(m, folder, mid_of(tag))
    finally:
        m.logout()


# --- the plain server -----------------------------------------------------------

def plain_port():
    return H.get("plain_imaps_port") or H["imaps_port"] - 300


def plain_sh(*args):
    """tests/harness/plain.sh ARGS: (ok, output)."""
    env = dict(os.environ, MAILFS_TEST_DIR=H["state_dir"])
    with tempfile.TemporaryFile() as out:   # a file, never a pipe
        r = subprocess.run([os.path.join(REPO_ROOT, "tests", "harness", "plain.sh")] + list(args),
                           env=env, stdin=subprocess.DEVNULL, stdout=out,
                           stderr=subprocess.STDOUT)
        out.seek(0)
        return r.returncode == 0, out.read().decode("utf-8", "replace").strip()


def plain_caps():
    """(capabilities before login, after login) of the plain instance."""
    m = imaplib.IMAP4_SSL(H["host"], plain_port(), ssl_context=it.tls_context(H["ca_file"]),
                          timeout=60)
    try:
        before = set(c.upper() for c in m.capabilities)
        m.login("alice", it.password(H, "alice"))
        return before, it.capabilities(m)
    finally:
        m.logout()


def start_plain(what, caps):
    ok, out = plain_sh("start", *caps)
    if not C.check(ok, "%s: plain.sh start %s" % (what, " ".join(caps)), out):
        return False
    before, after = plain_caps()
    want = set(c.upper() for c in caps)
    missing = [c for c in MISSING if c not in want]
    bad = ["%s announces %s" % (when, c) for when, s in (("before login", before),
                                                         ("after login", after))
           for c in missing if c in s]
    bad += ["lacks %s" % c for c in want if c not in after]
    return C.problems(bad, "%s: the server announces %s and none of %s" % (
        what, " ".join(caps), " ".join(missing)))


def port_open(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return True
    except OSError:
        return False


def plain_logins():
    try:
        with open(H.get("plain_log") or os.path.join(H["state_dir"], "dovecot-plain",
                                                    "dovecot.log"), "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return 0
    return data.count("imap-login: Info: Login: user=<alice>")


# --- the mount ---------------------------------------------------------------

def flags_shown(path):
    """The words of getfattr -n user.mail.flags, or None when it fails."""
    p = subprocess.run(["getfattr", "--only-values", "-n", "user.mail.flags", path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    return set(p.stdout.decode("utf-8", "replace").split()) if p.returncode == 0 else None


def sent(log):
    """The commands mailfs sent (its "C: " trace lines), tags stripped."""
    try:
        with open(log, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [mo.group(1) for mo in re.finditer(r"mailfs: C: \S+ (.*)", data)]


def log_text(log):
    try:
        with open(log, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def mount(what, dirs=None):
    """mailfs on the plain server, logging to RUN/<what>.log, with the
    cache and data directories of dirs (default: its own, what)."""
    env = mailfs_env(RUN, "cache-" + (dirs or what), "data-" + (dirs or what))
    log = os.path.join(RUN, what + ".log")
    mnt = Mount(BIN, ["-o", "log_file=%s,poll_interval=%d" % (log, POLL)], ACCOUNT,
                os.path.join(RUN, "mnt-" + what), env, MOUNT_TIMEOUT)
    mnt.log = log
    return check_mount(C, mnt, "%s: mount on the plain server (-o poll_interval=%d)" % (what, POLL))


# --- checks ---------------------------------------------------------------------

def check_polled(what, root, folder, uids, n0):
    """Another client appends, re-flags and expunges; each shows by polling."""
    t0 = time.time()
    new_tag = "%s-new" % what
    new_uid = append(folder, new_tag, n0)
    name = wait_for(lambda: eml_name(root, folder, new_uid), SHOW_TIMEOUT)
    C.check(name, "%s: a message APPENDed by another client shows within %d s (polling)" % (
        what, SHOW_TIMEOUT), "%s has %s" % (folder, listdir(os.path.join(root, folder))))
    if name:
        print("# %s: new message showed after %.1f s" % (what, time.time() - t0), flush=True)

    path = os.path.join(root, folder, eml_name(root, folder, uids["flag"]) or "?")
    before = flags_shown(path)
    it.store(H, folder, uids["flag"], "+FLAGS", "(\\Flagged $PlainLabel)")
    want = (before or set()) | {"\\Flagged", "$PlainLabel"}
    got = wait_for(lambda: flags_shown(path) == want, SHOW_TIMEOUT)
    C.check(before is not None and "\\Flagged" not in before and got,
            "%s: flags added by another client show in getfattr -n user.mail.flags within %d s" % (
                what, SHOW_TIMEOUT), "before %s, now %s, want %s" % (before, flags_shown(path), want))
    it.store(H, folder, uids["flag"], "-FLAGS", "(\\Flagged)")
    want = want - {"\\Flagged"}
    got = wait_for(lambda: flags_shown(path) == want, SHOW_TIMEOUT)
    C.check(got, "%s: a flag removed by another client is gone from user.mail.flags within %d s" % (
        what, SHOW_TIMEOUT), "now %s, want %s" % (flags_shown(path), want))

    gone = eml_name(root, folder, uids["gone"])
    it.expunge(H, folder, uids["gone"])
    ok = wait_for(lambda: eml_name(root, folder, uids["gone"]) is None, SHOW_TIMEOUT)
    C.check(gone and ok, "%s: a message expunged by another client disappears within %d s" % (
        what, SHOW_TIMEOUT), "before: %r, now: %r" % (gone, eml_name(root, folder, uids["gone"])))
    return new_uid


def check_both_ways(what, root, folder, uids, n0):
    """One expunged and one appended between two polls: the count stays the
    same, which must not hide either change."""
    m = it.connect(H)
    try:
        when = datetime.datetime(2024, 3, 5, 9, n0 % 60, tzinfo=datetime.timezone.utc)
        tag = "%s-swap" % what
        it.select(m, folder, readonly=False)
        it.check(*m.uid("STORE", str(uids["swap"]), "+FLAGS.SILENT", "(\\Deleted)"), "STORE")
        it.check(*m.xatom("UID", "EXPUNGE", str(uids["swap"])), "UID EXPUNGE")
        it.check(*m.append(it.wire_name(folder), None, when, make_message(tag, n0)), "APPEND")
        it.select(m, folder)
        new = it.search_mid(m, mid_of(tag))
    finally:
        m.logout()
    ok = wait_for(lambda: eml_name(root, folder, uids["swap"]) is None and
                  len(new) == 1 and eml_name(root, folder, new[0]), SHOW_TIMEOUT)
    C.check(ok, "%s: one message expunged and one APPENDed at once by another client (same count): "
            "the old one disappears and the new one shows within %d s" % (what, SHOW_TIMEOUT),
            "old UID %d still shown: %s; new UIDs %s shown: %s" % (
                uids["swap"], eml_name(root, folder, uids["swap"]), new,
                new and eml_name(root, folder, new[0])))


def check_rm(what, mnt, folder, uids, trash):
    """rm moves to Trash by COPY + \\Deleted + UID EXPUNGE; the message that
    already carried \\Deleted stays."""
    root = mnt.mountpoint
    keep_before = (it.flags_by_uid(H, folder) or {}).get(uids["keep"])
    C.check(keep_before is not None and "\\Deleted" in keep_before,
            "%s: before rm, another message of the folder carries \\Deleted on the server" % what,
            "its flags: %s" % keep_before)
    name = eml_name(root, folder, uids["rm"])
    mark = len(sent(mnt.log))
    rc, err = run(["rm", os.path.join(root, folder, name or "?")])
    C.check(name and rc == 0 and not err, "%s: rm X.eml succeeds" % what, "status %d: %s" % (rc, err))
    C.check(run(["sync", os.path.join(root, folder)])[0] == 0, "%s: sync Folder succeeds" % what)
    loc = wait_for(lambda: [x for x in [where("%s-rm" % what)] if len(x) == 1 and x[0][0] == trash],
                   SHOW_TIMEOUT)
    C.check(loc, "%s: the removed message is gone from its folder and is in %s on the server" % (
        what, trash), "found at %s" % where("%s-rm" % what))
    after = it.flags_by_uid(H, folder) or {}
    C.check(uids["keep"] in after and "\\Deleted" in after[uids["keep"]],
            "%s: the other message flagged \\Deleted is still in the folder (not expunged)" % what,
            "UIDs left: %s" % sorted(after))
    cmds = sent(mnt.log)[mark:]
    copy = [c for c in cmds if c.startswith("UID COPY %d " % uids["rm"])]
    bad = [c for c in cmds if c.startswith(("UID MOVE", "EXPUNGE", "CLOSE"))]
    exp = [c for c in cmds if c.startswith("UID EXPUNGE")]
    C.check(copy and not bad and exp and all(c == "UID EXPUNGE %d" % uids["rm"] for c in exp),
            "%s: mailfs sent UID COPY and UID EXPUNGE of exactly that UID, "
            "no UID MOVE, EXPUNGE or CLOSE" % what, "sent: %s" % cmds[:20])


def check_mv(what, mnt, folder, dest, uids):
    root = mnt.mountpoint
    name = eml_name(root, folder, uids["mv"])
    mark = len(sent(mnt.log))
    rc, err = run(["mv", os.path.join(root, folder, name or "?"), os.path.join(root, dest) + "/"])
    C.check(name and rc == 0 and not err, "%s: mv X.eml OtherFolder/ succeeds" % what,
            "status %d: %s" % (rc, err))
    run(["sync", os.path.join(root, folder)])
    tag = "%s-mv" % what
    loc = wait_for(lambda: [x for x in [where(tag)] if len(x) == 1 and x[0][0] == dest],
                   SHOW_TIMEOUT)
    C.check(loc, "%s: the message is in the other folder and only there on the server" % what,
            "found at %s" % where(tag))
    if loc:
        uid = loc[0][0][1]
        shown = wait_for(lambda: eml_name(root, dest, uid), SHOW_TIMEOUT)
        C.check(shown, "%s: it shows in the mount's other folder under its new UID within %d s" % (
            what, SHOW_TIMEOUT), "%s has %s" % (dest, listdir(os.path.join(root, dest))))
        C.check(it.raw_of(H, dest, uid) == make_message(tag, uids["mv_n"]),
                "%s: the moved message has the same bytes" % what)
    after = it.flags_by_uid(H, folder) or {}
    C.check(uids["keep"] in after, "%s: the message flagged \\Deleted is still in the folder" % what,
            "UIDs left: %s" % sorted(after))
    cmds = sent(mnt.log)[mark:]
    C.check(any(c.startswith("UID COPY %d " % uids["mv"]) for c in cmds) and
            not any(c.startswith(("UID MOVE", "EXPUNGE", "CLOSE")) for c in cmds),
            "%s: mailfs moved it with UID COPY, not UID MOVE, EXPUNGE or CLOSE" % what,
            "sent: %s" % cmds[:20])


def check_cp(what, mnt, folder):
    root = mnt.mountpoint
    tag = "%s-cp" % what
    raw = make_message(tag, 42)
    src = os.path.join(RUN, "%s.eml" % tag)
    with open(src, "wb") as f:
        f.write(raw)
    mark = len(sent(mnt.log))
    rc, err = run(["cp", src, os.path.join(root, folder) + "/"])
    C.check(rc == 0 and not err, "%s: cp file.eml Folder/ succeeds" % what, "status %d: %s" % (rc, err))
    loc = wait_for(lambda: [x for x in [where(tag)] if x], SHOW_TIMEOUT)
    C.check(loc and len(loc[0]) == 1 and loc[0][0][0] == folder,
            "%s: the server has the message once, in that folder" % what,
            "found at %s" % where(tag))
    if loc and len(loc[0]) == 1:
        C.check(it.raw_of(H, folder, loc[0][0][1]) == raw, "%s: with the same bytes" % what)
    cmds = sent(mnt.log)[mark:]
    app = [c for c in cmds if c.startswith("APPEND ")]
    C.check(app and all(re.search(r" \{%d\}$" % len(raw), c) for c in app),
            "%s: mailfs APPENDed with a synchronising literal {%d} (no LITERAL+)" % (what, len(raw)),
            "APPEND lines: %s" % app)


def check_remount(what, folder, uids, n0):
    """Changes made while nothing is mounted show after a remount on the
    same cache: the resync of folders the index knows already."""
    gone_uid = uids["new"]
    it.expunge(H, folder, gone_uid)
    it.store(H, folder, uids["flag"], "+FLAGS", "(\\Answered)")
    tag = "%s-offline" % what
    new_uid = append(folder, tag, n0)
    mnt = mount(what + "-remount", dirs=what)
    if not mnt:
        return
    try:
        root = mnt.mountpoint
        ok = wait_for(lambda: eml_name(root, folder, new_uid) and
                      eml_name(root, folder, gone_uid) is None, SYNC_TIMEOUT)
        C.check(ok, "%s: after a remount on the same cache, a message APPENDed meanwhile shows and "
                "one expunged meanwhile is gone" % what, "new UID %d: %s, expunged UID %d: %s" % (
                    new_uid, eml_name(root, folder, new_uid), gone_uid,
                    eml_name(root, folder, gone_uid)))
        path = os.path.join(root, folder, eml_name(root, folder, uids["flag"]) or "?")
        got = wait_for(lambda: "\\Answered" in (flags_shown(path) or ()), SHOW_TIMEOUT)
        C.check(got, "%s: after the remount, a flag set meanwhile shows in user.mail.flags" % what,
                "now %s" % flags_shown(path))
        text = log_text(mnt.log)
        C.check(re.search(r"%s: 1 new, 1 gone" % re.escape(folder), text),
                "%s: the remount resynced the folder it knew (1 new, 1 gone), not from scratch" % what,
                "sync lines: %s" % re.findall(r"mailfs: %s: .*" % re.escape(folder), text)[:5])
    finally:
        unmount_and_check(C, mnt, what + "-remount", [mnt.log])


def run_variant(what, caps, trash, n0):
    """Our folders and messages, a mount on the plain server with caps, and
    every check."""
    folder = "%s-%s" % (TAG, what)
    dest = folder + "-dest"
    if not start_plain(what, caps):
        return
    with it.session(H) as m:
        it.create_folders(m, (folder, dest))
    uids = {}
    for i, k in enumerate(("keep", "rm", "mv", "flag", "gone", "swap")):
        uids[k] = append(folder, "%s-%s" % (what, k), n0 + i,
                         "(\\Deleted)" if k == "keep" else None)
    uids["mv_n"] = n0 + 2
    logins = plain_logins()
    mnt = mount(what)
    if not mnt:
        return
    try:
        root = mnt.mountpoint
        wait_visible(C, root, {k: (folder, uids[k]) for k in ("keep", "rm", "mv", "flag", "gone",
                                                            "swap")}, what, SYNC_TIMEOUT)
        C.check(plain_logins() > logins, "%s: mailfs logged in to the plain server" % what,
                "no new login in its log")
        # The IDLE watcher finds out once the folder list is in.
        said = wait_for(lambda: "server has no IDLE: polling only" in log_text(mnt.log),
                        SHOW_TIMEOUT)
        C.check(said and not any(c == "IDLE" for c in sent(mnt.log)),
                "%s: mailfs knows there is no IDLE (says it polls, never sends IDLE)" % what,
                "log: %s" % [ln for ln in log_text(mnt.log).splitlines() if "IDLE" in ln][:5])
        uids["new"] = C.section(what + ": polling", check_polled, what, root, folder, uids, n0 + 10)
        C.section(what + ": expunge + append", check_both_ways, what, root, folder, uids, n0 + 11)
        C.section(what + ": rm", check_rm, what, mnt, folder, uids, trash)
        C.section(what + ": mv", check_mv, what, mnt, folder, dest, uids)
        C.section(what + ": cp", check_cp, what, mnt, folder)
        cmds = sent(mnt.log)
        if "CONDSTORE" in caps:
            C.check(any("CHANGEDSINCE" in c for c in cmds) and
                    re.search(r"%s: .*\(CONDSTORE\)" % re.escape(folder), log_text(mnt.log)),
                    "%s: resyncs asked for changes since a MODSEQ (CHANGEDSINCE, no QRESYNC)" % what,
                    "no CHANGEDSINCE or no (CONDSTORE) sync line")
        else:
            bad = [c for c in cmds if re.search(r"CONDSTORE|CHANGEDSINCE|MODSEQ|QRESYNC|ENABLE|"
                                                r"BINARY|UID MOVE|RETURN", c)]
            C.check(not bad, "%s: mailfs used no extension the server did not announce" % what,
                    "sent: %s" % bad[:5])
    finally:
        unmount_and_check(C, mnt, what, [mnt.log])
    if uids.get("new"):
        C.section(what + ": remount", check_remount, what, folder, uids, n0 + 20)


def run_no_uidplus(trash, n0):
    """IMAP4rev1 alone: without MOVE or UIDPLUS, nothing can expunge just
    one message, so rm and mv must be refused and change nothing."""
    what = "nouidplus"
    folder = "%s-%s" % (TAG, what)
    dest = folder + "-dest"
    if not start_plain(what, ["IMAP4rev1"]):
        return
    with it.session(H) as m:
        it.create_folders(m, (folder, dest))
    uids = {k: append(folder, "%s-%s" % (what, k), n0 + i,
                      "(\\Deleted)" if k == "keep" else None)
            for i, k in enumerate(("keep", "rm", "mv"))}
    mnt = mount(what)
    if not mnt:
        return
    try:
        root = mnt.mountpoint
        names = wait_visible(C, root, {k: (folder, u) for k, u in uids.items()}, what,
                             SYNC_TIMEOUT)
        mark = len(sent(mnt.log))
        rc, err = run(["rm", os.path.join(root, folder, names.get("rm", "?"))])
        C.check(rc != 0 and "Operation not supported" in err,
                "%s: rm X.eml fails with EOPNOTSUPP" % what, "status %d: %s" % (rc, err))
        rc, err = run(["mv", os.path.join(root, folder, names.get("mv", "?")),
                       os.path.join(root, dest) + "/"])
        C.check(rc != 0 and "Operation not supported" in err,
                "%s: mv X.eml OtherFolder/ fails with EOPNOTSUPP" % what, "status %d: %s" % (rc, err))
        phantom = os.path.join(root, dest, names.get("mv", "?"))
        C.check(not os.path.lexists(phantom),
                "%s: after the failed mv, OtherFolder/X.eml does not exist" % what,
                "lstat finds %s" % phantom)
        run(["sync", os.path.join(root, folder)])
        time.sleep(1)
        locs = {k: where("%s-%s" % (what, k)) for k in uids}
        bad = ["%s at %s" % (k, l) for k, l in locs.items() if l != [(folder, uids[k])]]
        flags = (it.flags_by_uid(H, folder) or {}).get(uids["keep"]) or set()
        if "\\Deleted" not in flags:
            bad.append("keep lost \\Deleted: %s" % flags)
        C.problems(bad, "%s: all three messages are still in the folder, and only there, on the "
                   "server (\\Deleted one included)" % what)
        cmds = [c for c in sent(mnt.log)[mark:]
                if c.startswith(("UID COPY", "UID MOVE", "UID STORE", "EXPUNGE", "UID EXPUNGE",
                                 "CLOSE"))]
        C.check(not cmds, "%s: mailfs sent no COPY, MOVE, STORE, EXPUNGE or CLOSE" % what,
                "sent: %s" % cmds)
        C.check(eml_name(root, folder, uids["rm"]) and eml_name(root, folder, uids["mv"]),
                "%s: the mount still lists both messages" % what,
                "%s has %s" % (folder, listdir(os.path.join(root, folder))))
        C.section(what + ": cp", check_cp, what, mnt, folder)
    finally:
        unmount_and_check(C, mnt, what, [mnt.log])


def main():
    global H
    if not ready(C, BIN, RUN):
        return 1
    # The independent client wants the main instance with every capability
    # (another test may have died leaving it with DOVECOT_PLAIN_CAPS).
    if H.get("plain_caps"):
        ok, out = restart_full_caps(H)
        C.check(ok, "restart Dovecot with all capabilities", out)
        H = it.load_harness()
    h = dict(H)
    h["imaps_port"] = plain_port()
    write_alice_config(RUN, h, ACCOUNT, "debug = imap:fs:sync\n")
    def prepare():
        it.remove_test_mail(H, DOMAIN, OURS_RE, " of earlier runs")
        return it.trash_folder(H)
    trash = server_setup(C, prepare, "read the account with imaplib")
    if trash is None:
        return 1
    print("# run tag %s, Trash is %r, plain server on port %d" % (TAG, trash, plain_port()),
          flush=True)
    try:
        C.section("bare", run_variant, "bare", BARE_CAPS, trash, 0)
        C.section("condstore", run_variant, "condstore", BARE_CAPS + ["CONDSTORE"], trash, 30)
        C.section("nouidplus", run_no_uidplus, trash, 50)
    finally:
        quietly("cleanup", it.remove_test_mail, H, DOMAIN, OURS_RE)
        ok, out = plain_sh("stop")
        C.check(ok and not port_open(plain_port()),
                "plain.sh stop stops the plain server (its port is closed)", out)

    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
