#!/usr/bin/env python3
"""test_write.py - change alice's mailbox through the mount with plain file
operations (setfattr, rm, rm -r, mv, mkdir, rmdir) and check every result
with an independent IMAP client (imaplib) on the same server.

Needs the private servers from tests/harness/start.sh, seeded (the test
makes its own folders, all named wt-<random>..., and APPENDs its own
messages with unique Message-IDs ...@write.mailfs.test, into those folders
and into INBOX; it moves some into the seeded Archive, Archive/2024 and
"Café Ünïcode", operates only on its own messages and removes them at the
end).  Runs against Dovecot, or the server $MAILFS_TEST_SERVER names
(cyrus, courier), folders named by their mount paths (imaptest's "Folder
names"); the trash is the folder LIST marks \\Trash, else Trash.
Environment (MAILFS_BIN, MAILFS_TEST_DIR, MAILFS_TEST_LABEL,
MAILFS_TEST_SERVER), output: mounttest.py.

Three mounts of the real binary, each with its own cache directory: the
default one (rm moves to Trash), -o delete=expunge, and -o ro.  The tools
run as root without the capabilities that bypass file modes
(mounttest.AS_OWNER), so they succeed only if the modes the mount shows
let the owner make the change, as an ordinary user would need.
"""

import datetime
import errno
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (SERVERS, by_uid, eml_name, ename, errno_of, imaptest as it,  # noqa: E402
                       listdir, mount_checked, quietly, ready, restart_full_caps, run,
                       run_as_owner, server_of, server_setup, setup_test, unmount_and_check,
                       wait_for, wait_visible, write_alice_config)

BIN, LABEL, C, H, RUN = setup_test("write", SERVERS)
ACCOUNT = "alice@test"
MOUNT_TIMEOUT = 90
SYNC_TIMEOUT = 120      # a freshly mounted tree shows our messages
SHOW_TIMEOUT = 30       # a moved message shows in its new folder

TAG = "wt-" + secrets.token_hex(4)
DOMAIN = "write.mailfs.test"
OURS_RE = re.compile(r"(^|/)[^/]*\bwt-[0-9a-f]{8}\b")   # any run's folders

# Folders this run creates (UTF-8 names).
MAIN = TAG                      # scratch folder: flags, rm, rm -r, expunge
BULK = TAG + "-bulk"            # rm -rf Folder/*
FULL = TAG + "-full"            # rmdir of a non-empty folder
EMPTY = TAG + "-empty"          # rmdir of an empty folder
REN_A = TAG + "-A"              # mv FolderA FolderB, with a subfolder
REN_B = TAG + "-B"
RO = TAG + "-ro"                # the -o ro mount's messages
RO_EMPTY = TAG + "-roempty"
NEW = TAG + "-new"              # made by mkdir through the mount
NEW_SUB = "Archive/" + TAG + "-sub"
NEW_UTF8 = "Ünïcödé " + TAG
CAFE = "Café Ünïcode"           # seeded
SETUP_FOLDERS = [MAIN, BULK, FULL, EMPTY, REN_A, REN_A + "/sub", RO, RO_EMPTY]

# tag: (folder, multipart, initial flags)
MESSAGES = {
    "read1": (MAIN, True, ()),
    "flags": (MAIN, False, ("\\Answered", "$Old")),
    "rm1": (MAIN, False, ()),
    "rmr": (MAIN, True, ()),
    "ex1": (MAIN, False, ()),
    "bulk1": (BULK, False, ()),
    "bulk2": (BULK, True, ()),
    "bulk3": (BULK, False, ("\\Seen",)),
    "bulk4": (BULK, False, ()),
    "full1": (FULL, False, ()),
    "ren1": (REN_A, False, ()),
    "ren2": (REN_A + "/sub", False, ()),
    "ro1": (RO, False, ()),
    "ro2": (RO, False, ()),
    "mv1": ("INBOX", False, ()),
    "mv2": ("INBOX", True, ()),
    "mv3": ("INBOX", False, ()),
    "mv4": ("INBOX", False, ()),
    "mv5": ("INBOX", False, ()),
}
ORDER = list(MESSAGES)


# --- the independent view (imaplib) ------------------------------------------

def mid_of(tag):
    return "%s-%s@%s" % (TAG, tag, DOMAIN)


def flags_of(folder, uid):
    return (it.flags_by_uid(H, folder) or {}).get(uid)


def account_state():
    """(all folder names, {folder: {uid: flags}}) of the whole account."""
    m = it.connect(H)
    try:
        names = {n for n, _, _ in it.list_folders(m)}
        return names, {f: {u: frozenset(d["flags"]) for u, d in it.folder_meta(m, f).items()}
                       for f in it.selectable(m)}
    finally:
        m.logout()


LIST_LINE = re.compile(rb'^\(([^)]*)\) ("(?:[^"\\]|\\.)*"|NIL) (.*)$')


def wire_names():
    """The folder names exactly as LIST sends them (modified UTF-7)."""
    m = it.connect(H)
    try:
        typ, data = m.list('""', '"*"')
        it.check(typ, data, "LIST")
    finally:
        m.logout()
    res = set()
    for item in data:
        if isinstance(item, tuple):
            res.add(item[1].decode("ascii", "replace"))
            continue
        mo = LIST_LINE.match(item or b"")
        if mo:
            n = mo.group(3)
            if n.startswith(b'"') and n.endswith(b'"'):
                n = re.sub(rb"\\(.)", rb"\1", n[1:-1])
            res.add(n.decode("ascii", "replace"))
    return res


def make_message(tag, n, multipart):
    mid = mid_of(tag)
    head = ("From: Write Test <wt@mailfs.test>\r\n"
            "To: Alice <alice@mailfs.test>\r\n"
            "Subject: Write test %s\r\n"
            "Date: Mon, 04 Mar 2024 10:%02d:00 +0000\r\n"
            "Message-ID: <%s>\r\n"
            "MIME-Version: 1.0\r\n" % (tag, n, mid))
    if not multipart:
        return head + ("Content-Type: text/plain; charset=utf-8\r\n\r\n"
                       "Hello from %s.\r\nSecond line.\r\n" % tag)
    b = "bnd-" + tag
    return head + (
        'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n'
        "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Body of %s.\r\n"
        "--%s\r\nContent-Type: application/octet-stream\r\n"
        'Content-Disposition: attachment; filename="data-%s.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n"
        "--%s--\r\n" % (b, b, tag, b, tag, b))


class Msg:
    def __init__(self, tag, folder, uid, raw):
        self.tag, self.folder, self.uid, self.raw = tag, folder, uid, raw
        self.mid = mid_of(tag)

    def __repr__(self):
        return "<%s> %s/%d" % (self.mid, self.folder, self.uid)


def setup():
    """Our folders and messages (after removing those of earlier runs);
    returns {tag: Msg}."""
    it.remove_test_mail(H, DOMAIN, OURS_RE, " of earlier runs")
    m = it.connect(H)
    try:
        it.create_folders(m, SETUP_FOLDERS)
        raws = {}
        when = datetime.datetime(2024, 3, 4, 10, 0, tzinfo=datetime.timezone.utc)
        for n, tag in enumerate(ORDER):
            folder, multipart, flags = MESSAGES[tag]
            raw = make_message(tag, n, multipart).encode()
            raws[tag] = raw
            it.check(*m.append(it.wire_name(folder), "(%s)" % " ".join(flags) if flags else None,
                               when, raw), "APPEND " + tag)
        msgs = {}
        for tag in ORDER:
            folder = MESSAGES[tag][0]
            msgs[tag] = Msg(tag, folder, it.uid_of_mid(m, folder, mid_of(tag)), raws[tag])
        return msgs
    finally:
        m.logout()


# --- the mount ---------------------------------------------------------------

def gone_from_mount(root, folder, name):
    """Problems when NAME.eml or NAME/ still shows in the mount's folder:
    in its listing at once; by lookup within LOOKUP_GRACE s.  The name
    the call removed is gone from the kernel at once; its sibling (X/ for
    rm X.eml, X.eml for rm -r X/) the kernel may still hold until the
    daemon's notifier thread tells it, right after the reply (a reply
    cannot: the kernel holds the directory's lock until it has one)."""
    stem = name[:-4]
    probs = []
    ents = listdir(os.path.join(root, folder))
    if isinstance(ents, str):
        return [ents]
    for n in (name, stem):
        if n in ents:
            probs.append("%r still listed" % n)
        path = os.path.join(root, folder, n)
        if not wait_for(lambda: not os.path.lexists(path), LOOKUP_GRACE):
            probs.append("%r still found by lookup after %d s" % (n, LOOKUP_GRACE))
    return probs


LOOKUP_GRACE = 5


def mount(what, opts):
    return mount_checked(C, BIN, RUN, ACCOUNT, what, opts, MOUNT_TIMEOUT)


def wait_msgs(root, msgs, what):
    """Wait until every message of msgs ({tag: Msg}) shows in the mount;
    {tag: .eml name}."""
    return wait_visible(C, root, {t: (m.folder, m.uid) for t, m in msgs.items()}, what,
                        SYNC_TIMEOUT)


def finish(mnt, what):
    unmount_and_check(C, mnt, what, [mnt.log])


# --- checks on the default mount ----------------------------------------------

def check_reading(root, msgs, names):
    m = msgs["read1"]
    path = os.path.join(root, m.folder, names["read1"])
    before = flags_of(m.folder, m.uid)
    with open(path, "rb") as f:
        data = f.read()
    d = path[:-4]
    parts = {}
    for e in os.listdir(d):
        with open(os.path.join(d, e), "rb") as f:
            parts[e] = f.read()
    C.check(data == m.raw and "body.txt" in parts and "data-read1.bin" in parts,
            "reading: X.eml is the APPENDed bytes and X/ holds body.txt and the attachment",
            "%d bytes (want %d), parts %s" % (len(data), len(m.raw), sorted(parts)))
    after = flags_of(m.folder, m.uid)
    C.check(before == set() and after == set(),
            "reading X.eml and every decoded part sets no flag on the server (no \\Seen)",
            "flags before %s, after %s" % (before, after))


def check_flags(root, msgs, names):
    m = msgs["flags"]
    path = os.path.join(root, m.folder, names["flags"])
    want = {"\\Seen", "\\Flagged", "$Label1"}
    rc, err = run_as_owner(["setfattr", "-n", "user.mail.flags", "-v", "\\Seen \\Flagged $Label1", path])
    C.check(rc == 0, "setfattr -n user.mail.flags -v '\\Seen \\Flagged $Label1' succeeds",
            "status %d: %s" % (rc, err))
    got = flags_of(m.folder, m.uid)
    C.equal(got, want, "the server then has exactly \\Seen \\Flagged $Label1 "
            "(keyword stored, \\Answered and $Old replaced)")
    p = subprocess.run(["getfattr", "--only-values", "-n", "user.mail.flags", path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    shown = p.stdout.decode("utf-8", "replace").split()
    C.check(p.returncode == 0 and set(shown) == want and len(shown) == len(want),
            "getfattr -n user.mail.flags then shows exactly those flags",
            "status %d, value %r, stderr %r" % (p.returncode, p.stdout, p.stderr[:200]))

    for bad in ("\\Recent", "(bad", "\\Seen \\Recent"):
        rc, err = run_as_owner(["setfattr", "-n", "user.mail.flags", "-v", bad, path])
        e = errno_of(os.setxattr, path, "user.mail.flags", bad.encode())
        got = flags_of(m.folder, m.uid)
        C.check(rc != 0 and "Invalid argument" in err and e == errno.EINVAL and got == want,
                "setfattr -v %r is refused with EINVAL and the server's flags stay as they were" % bad,
                "setfattr status %d (%s), setxattr(2): %s, server flags %s" % (rc, err, ename(e), got))

    rc, err = run_as_owner(["setfattr", "-n", "user.mail.flags", "-v", "\\Flagged $Label2", path])
    got = flags_of(m.folder, m.uid)
    C.check(rc == 0 and got == {"\\Flagged", "$Label2"},
            "setfattr -v '\\Flagged $Label2' then leaves exactly those on the server (\\Seen removed)",
            "status %d (%s), server flags %s" % (rc, err, got))


def renamed(name, uid):
    """The name a message gets in another folder: the same derived stem
    (date, sender, subject) with its new UID."""
    return re.sub(r"\[\d+\]\.eml$", "[%d].eml" % uid, name)


def trash_appears(root, trash, mid, old_name, what):
    """The message's single place on the server must be Trash; then it must
    show in the mount's Trash under its new UID.  Returns (uid, name)."""
    loc = it.where(H, mid)
    ok = C.check(len(loc) == 1 and loc[0][0] == trash,
                 "%s: the message is gone from its folder on the server and is in %s" % (what, trash),
                 "found at %s" % loc)
    if not ok:
        return None, None
    uid = loc[0][1]
    t0 = time.time()
    want = renamed(old_name, uid)
    name = wait_for(lambda: eml_name(root, trash, uid), SHOW_TIMEOUT)
    C.check(name == want, "%s: it shows in the mount's %s under its derived name with the new UID "
            "within %d s" % (what, trash, SHOW_TIMEOUT),
            "want %r; %s has %s" % (want, trash, [e for e in listdir(os.path.join(root, trash))
                                                  if "Write test" in e]))
    if name:
        print("# %s: showed in %s after %.1f s" % (what, trash, time.time() - t0), flush=True)
    return uid, name if name == want else None


def check_rm(root, msgs, names, trash):
    m = msgs["rm1"]
    name = names["rm1"]
    path = os.path.join(root, m.folder, name)
    C.check(os.path.isfile(path) and os.path.isdir(path[:-4]),
            "rm: X.eml and X/ are there before", listdir(os.path.join(root, m.folder)))
    rc, err = run_as_owner(["rm", path])
    C.check(rc == 0 and not err, "rm X.eml succeeds", "status %d: %s" % (rc, err))
    C.problems(gone_from_mount(root, m.folder, name), "rm: X.eml and X/ are gone from the folder's listing at once, and from lookup")
    uid, tname = trash_appears(root, trash, m.mid, name, "rm X.eml")
    if uid is not None:
        C.check(it.raw_of(H, trash, uid) == m.raw, "rm: the message in %s has the same bytes" % trash)
    if not tname:
        return
    rc, err = run_as_owner(["rm", os.path.join(root, trash, tname)])
    C.check(rc == 0 and not err, "rm of the message inside %s succeeds" % trash, "status %d: %s" % (rc, err))
    loc = it.where(H, m.mid)
    C.check(loc == [], "rm inside %s expunges it for good (gone from %s, nowhere else on the server)" % (
        trash, trash), "found at %s" % loc)
    C.problems(gone_from_mount(root, trash, tname), "rm inside %s: gone from its listing" % trash)


def check_rm_r(root, msgs, names, trash):
    m = msgs["rmr"]
    name = names["rmr"]
    d = os.path.join(root, m.folder, name[:-4])
    rc, err = run_as_owner(["rm", "-r", d + "/"])
    C.check(rc == 0 and not err, "rm -r X/ (the decoded directory) succeeds", "status %d: %s" % (rc, err))
    C.problems(gone_from_mount(root, m.folder, name), "rm -r X/: X.eml and X/ are gone from the listing at once, and from lookup")
    uid, _ = trash_appears(root, trash, m.mid, name, "rm -r X/")
    if uid is not None:
        C.check(it.raw_of(H, trash, uid) == m.raw, "rm -r X/: the message in %s has the same bytes" % trash)


def check_rm_rf_folder(root, msgs, names, trash):
    tags = [t for t in ORDER if MESSAGES[t][0] == BULK]
    folder = os.path.join(root, BULK)
    before = listdir(folder)
    C.check(isinstance(before, list) and len(before) == 2 * len(tags),
            "rm -rf Folder/*: the folder shows %d messages as X.eml + X/" % len(tags), before)
    rc, err = run_as_owner(["sh", "-c", 'rm -rf -- "$1"/*', "sh", folder])
    C.check(rc == 0 and not err, "rm -rf Folder/* on a folder with %d messages succeeds without errors" % len(tags),
            "status %d: %s" % (rc, err))
    # A run of rm is sent in batches just after it; sync(1) of the
    # directory (fsync) is the documented way to wait for the server.
    C.check(run(["sync", folder])[0] == 0, "rm -rf Folder/*: sync Folder succeeds")
    left = it.flags_by_uid(H, BULK)
    C.check(left == {}, "rm -rf Folder/*: the folder is empty on the server", "UIDs left: %s" % sorted(left))
    locs = {t: it.where(H, msgs[t].mid) for t in tags}
    bad = ["%s at %s" % (t, l) for t, l in locs.items() if len(l) != 1 or l[0][0] != trash]
    C.problems(bad, "rm -rf Folder/*: every message was moved to %s" % trash)
    C.equal(listdir(folder), [], "rm -rf Folder/*: the folder's listing is empty at once")


def check_mv(root, msgs, names):
    cases = [("mv1", "Archive", False), ("mv2", "Archive", True),
             ("mv3", "Archive/2024", False), ("mv4", CAFE, False)]
    for tag, dest, as_dir in cases:
        m = msgs[tag]
        name = names[tag]
        src = os.path.join(root, m.folder, name[:-4] if as_dir else name)
        what = "mv INBOX/%s %s/" % ("X" if as_dir else "X.eml", dest)
        raw_before = it.raw_of(H, m.folder, m.uid)
        rc, err = run_as_owner(["mv", src, os.path.join(root, dest) + "/"])
        C.check(rc == 0 and not err, "%s succeeds" % what, "status %d: %s" % (rc, err))
        # mv2 follows mv1 to the same folder within the batching window,
        # so it may only be queued: sync(1) of the folder is the
        # documented way to wait until the server has done it.
        C.check(run(["sync", os.path.join(root, m.folder)])[0] == 0, "%s: sync INBOX succeeds" % what)
        loc = it.where(H, m.mid)
        ok = C.check(len(loc) == 1 and loc[0][0] == dest,
                     "%s: gone from INBOX on the server, in %s with the same Message-ID" % (what, dest),
                     "found at %s" % loc)
        if ok:
            after = it.raw_of(H, dest, loc[0][1])
            C.check(after == raw_before and after == m.raw,
                    "%s: BODY.PEEK[] in %s is identical to before" % (what, dest),
                    "%d bytes, before %d" % (len(after), len(raw_before)))
        C.problems(gone_from_mount(root, m.folder, name), "%s: X.eml and X/ are gone from INBOX's listing" % what)
        if ok:
            uid = loc[0][1]
            want = renamed(name, uid)
            shown = wait_for(lambda: eml_name(root, dest, uid), SHOW_TIMEOUT)
            C.check(shown == want, "%s: shows in the mount's %s under its derived name with the new UID "
                    "within %d s" % (what, dest, SHOW_TIMEOUT), "got %r, want %r" % (shown, want))

    # A rename inside one folder: names are derived, so EPERM.
    m = msgs["mv5"]
    name = names["mv5"]
    src = os.path.join(root, m.folder, name)
    dst = os.path.join(root, m.folder, "other.eml")
    flags = flags_of(m.folder, m.uid)
    rc, err = run_as_owner(["mv", src, dst])
    e = errno_of(os.rename, src, dst)
    C.check(rc != 0 and e == errno.EPERM,
            "mv INBOX/X.eml INBOX/other.eml fails with EPERM",
            "mv status %d (%s), rename(2): %s" % (rc, err, ename(e)))
    loc = it.where(H, m.mid)
    C.check(loc == [(m.folder, m.uid)] and flags_of(m.folder, m.uid) == flags,
            "mv INBOX/X.eml INBOX/other.eml: nothing changed on the server",
            "found at %s (was %s/%d)" % (loc, m.folder, m.uid))
    C.check(os.path.isfile(src) and not os.path.lexists(dst),
            "mv INBOX/X.eml INBOX/other.eml: X.eml still shows, other.eml does not")


BULK_N = 300


def check_bulk(root, mnt, trash):
    """rm and mv of many messages go out as a few UID-set commands."""
    folder = TAG + "-many"
    mids = ["%s-many%d@%s" % (TAG, i, DOMAIN) for i in range(BULK_N)]
    m = it.connect(H)
    try:
        it.check(*m.create(it.wire_name(folder)), "CREATE " + folder)
        for i, mid in enumerate(mids):
            raw = ("From: Bulk <bulk@%s>\r\nTo: alice@%s\r\nSubject: many %d\r\n"
                   "Message-ID: <%s>\r\nDate: Mon, 4 Mar 2024 10:00:00 +0000\r\n\r\nbody %d\r\n"
                   % (DOMAIN, DOMAIN, i, mid, i)).encode()
            it.check(*m.append(it.wire_name(folder), None, None, raw), "APPEND many")
    finally:
        m.logout()
    d = os.path.join(root, folder)
    with open(os.path.join(root, ".mailfs", "refresh"), "w") as f:
        f.write("\n")
    names = [n for n in (listdir(d) or []) if n.endswith(".eml")]
    if not C.check(len(names) == BULK_N, "bulk: the new folder shows %d .eml files after a refresh" % BULK_N,
                   "%d shown" % len(names)):
        return

    def moves():
        try:
            with open(mnt.log, errors="replace") as f:
                return sum(1 for line in f if re.search(r": (moved|expunged) ", line))
        except OSError:
            return 0

    before = moves()
    rc, err = run_as_owner(["sh", "-c", 'cd "$1" && rm -- *.eml', "sh", d])
    C.check(rc == 0 and not err, "bulk: rm of %d .eml files succeeds" % BULK_N, "status %d: %s" % (rc, err))
    C.check(run(["sync", d])[0] == 0, "bulk: sync of the folder succeeds")
    C.equal(listdir(d), [], "bulk: the folder's listing is empty right after rm")
    C.equal(it.flags_by_uid(H, folder), {}, "bulk: the folder is empty on the server")
    m = it.connect(H)
    try:
        it.select(m, trash)
        in_trash = [mid for mid in mids if it.search_mid(m, mid)]
    finally:
        m.logout()
    C.check(len(in_trash) == BULK_N, "bulk: all %d messages are in %s" % (BULK_N, trash),
            "%d there" % len(in_trash))
    cmds = moves() - before
    # Batched: how many batches depends on the machine's load (a run is
    # cut where rm pauses 20 ms), so the bound is loose; test_changes
    # checks the batching itself against a scripted server.
    C.check(0 < cmds <= BULK_N // 3, "bulk: rm of %d messages was batched (at most %d MOVE "
            "commands)" % (BULK_N, BULK_N // 3), "%d commands" % cmds)

    # And back with mv, by name, as a user would.
    tdir = os.path.join(root, trash)
    back = [n for n in (listdir(tdir) or []) if n.endswith(".eml") and " - many " in n]
    before = moves()
    rc, err = run_as_owner(["sh", "-c", 'cd "$1" && mv -- *" - many "*.eml "$2"/', "sh", tdir, d])
    C.check(rc == 0 and not err, "bulk: mv of %d .eml files to another folder succeeds" % len(back),
            "status %d: %s" % (rc, err[:300]))
    C.check(run(["sync", tdir, d])[0] == 0, "bulk: sync of both folders succeeds")
    cmds = moves() - before
    C.check(0 < cmds <= len(back) // 3, "bulk: mv of %d messages was batched (at most %d MOVE "
            "commands)" % (len(back), len(back) // 3), "%d commands" % cmds)
    left = it.flags_by_uid(H, folder) or {}
    C.check(len(left) == BULK_N, "bulk: all %d are back in the folder on the server" % BULK_N,
            "%d there" % len(left))
    shown = wait_for(lambda: len([n for n in (listdir(d) or []) if n.endswith(".eml")]) == BULK_N or None,
                     SHOW_TIMEOUT)
    C.check(shown, "bulk: the mount shows all %d back within %d s" % (BULK_N, SHOW_TIMEOUT))


def index_rows(cache, folder):
    """{uid: (sender, subject, internaldate)} of a folder in the index
    under cache (read with python's sqlite3), {} when unreadable."""
    for d, _, fs in os.walk(cache):
        if "index.sqlite" not in fs:
            continue
        try:
            db = sqlite3.connect("file:%s?mode=ro" % os.path.join(d, "index.sqlite"),
                                 uri=True, timeout=10)
            try:
                return {u: (a, b, c) for u, a, b, c in db.execute(
                    "SELECT uid, sender, subject, internaldate FROM messages WHERE folder ="
                    " (SELECT id FROM folders WHERE wire = ?)", (it.wire_form(folder),))}
            finally:
                db.close()
        except sqlite3.Error:
            return {}
    return {}


REF_N = 40          # messages of the refused-batch check
REF_AFTER = 8       # of them mv'd after the server confirmed the DELETE


def check_bulk_refused(root, mnt):
    """A queued batch the server refuses puts its messages back.

    Another client deletes the target while a run of mv goes on.  The run
    must outlast the DELETE (0.02 s on Dovecot and Cyrus, 2 s on Courier,
    which deletes at the end of that time): mv goes on, one every 0.1 s
    (a run ends after a pause of half a second, mailfs(1)), while the
    DELETE runs on its own connection, and REF_AFTER more once it is
    answered.  Those are refused and must be back in the source; any of
    the ones before may have been moved before the folder went (then they
    went with it) or come back."""
    src, dst = TAG + "-refsrc", TAG + "-refdst"
    n = REF_N
    mids = ["%s-ref%d@%s" % (TAG, i, DOMAIN) for i in range(n)]
    m = it.connect(H)
    try:
        it.create_folders(m, (src, dst))
        for i, mid in enumerate(mids):
            raw = ("From: R <r@%s>\r\nSubject: refused %d\r\nMessage-ID: <%s>\r\n"
                   "Date: Mon, 4 Mar 2024 10:00:00 +0000\r\n\r\nbody\r\n" % (DOMAIN, i, mid)).encode()
            it.check(*m.append(it.wire_name(src), None, None, raw), "APPEND refused")
    finally:
        m.logout()
    with open(os.path.join(root, ".mailfs", "refresh"), "w") as f:
        f.write("\n")
    sdir, ddir = os.path.join(root, src), os.path.join(root, dst)
    names = sorted((x for x in (listdir(sdir) or []) if x.endswith(".eml")),
                   key=lambda x: int(re.search(r"refused (\d+) ", x).group(1)))
    if not C.check(len(names) == n, "refused batch: %d messages listed" % n, "%d" % len(names)):
        return
    errs, during, after, deleted = [], [], [], {}
    other = it.connect(H)     # logged in before the run starts
    try:
        os.rename(os.path.join(sdir, names[0]), os.path.join(ddir, names[0]))

        def delete():
            deleted["reply"] = other.delete(it.wire_name(dst))
        t = threading.Thread(target=delete)
        t.start()
        i = 1
        while t.is_alive() and i < n - REF_AFTER:
            errs.append(ename(errno_of(os.rename, os.path.join(sdir, names[i]),
                                       os.path.join(ddir, names[i]))))
            during.append(i)
            i += 1
            t.join(0.1)
        t.join()
        for j in range(i, i + REF_AFTER):
            errs.append(ename(errno_of(os.rename, os.path.join(sdir, names[j]),
                                       os.path.join(ddir, names[j]))))
            after.append(j)
    finally:
        other.logout()
    print("# refused batch: %d mv while the DELETE ran, %d after" % (len(during), len(after)),
          flush=True)
    if not C.check(deleted.get("reply", ("",))[0] == "OK" and len(after) == REF_AFTER,
                   "refused batch: another client DELETEs the target while the run of mv "
                   "goes on", "%r, %d mv after it" % (deleted.get("reply"), len(after))):
        return
    C.check(all(e in ("success", "ENOENT") for e in errs),
            "refused batch: the queued mv calls return", "%s" % errs)
    C.check(run(["sync", sdir])[0] == 0, "refused batch: sync of the source folder succeeds")
    locs = {i: [] for i in range(n)}
    with it.session(H) as m:
        for f in it.selectable(m):
            it.select(m, f)
            for i in range(n):
                locs[i] += [(f, u) for u in it.search_mid(m, mids[i])]
    probs = ["refused %d at %s" % (i, locs[i]) for i in after if len(locs[i]) != 1 or
             locs[i][0][0] != src]
    probs += ["refused %d (mv'd during the DELETE) at %s" % (i, locs[i]) for i in during
              if locs[i] and (len(locs[i]) != 1 or locs[i][0][0] != src)]
    probs += ["refused 0 (moved at once) at %s" % locs[0]] if locs[0] else []
    C.problems(probs, "refused batch: the %d mv'd after the DELETE are still in the source on "
               "the server, the ones before in the source or gone with the target" % len(after))
    left = it.flags_by_uid(H, src) or {}
    shown = wait_for(lambda: sorted(by_uid(root, src)) == sorted(left) or None, SHOW_TIMEOUT)
    C.check(shown, "refused batch: the source folder shows exactly the server's %d messages "
            "again" % len(left), "shown %s, server %s" % (sorted(by_uid(root, src)),
                                                          sorted(left)))
    # Only the put-back restores their rows (the sync never takes a UID it
    # has seen for new): they must come back whole.
    cache = os.path.join(RUN, "cache-" + os.path.basename(mnt.mountpoint)[len("mnt-"):])
    server = {}
    m = it.connect(H)
    try:
        server = {u: int(d["internaldate"]) for u, d in it.folder_meta(m, src).items()}
    finally:
        m.logout()
    rows, probs = index_rows(cache, src), []
    for uid, idate in sorted(server.items()):
        r = rows.get(uid)
        if r is None:
            probs.append("UID %d: no row" % uid)
        elif r[0] != "R" or not re.fullmatch(r"refused \d+", r[1] or "") or r[2] != idate:
            probs.append("UID %d: (%r, %r, %r), want ('R', 'refused N', %d)" % (uid, *r, idate))
    C.problems(probs, "refused batch: their index rows keep sender, subject and internaldate")
    try:
        with open(mnt.log, errors="replace") as f:
            said = [line for line in f if "refused, they are back" in line]
    except OSError:
        said = []
    C.check(said, "refused batch: the log says so, with the server's words")


def check_mkdir_rmdir(root, msgs):
    for name, what in ((NEW, "mkdir Mount/NewFolder"), (NEW_SUB, "mkdir Mount/Archive/Sub (nested)"),
                       (NEW_UTF8, "mkdir 'Mount/Ünïcödé ...' (non-ASCII)")):
        rc, err = run_as_owner(["mkdir", os.path.join(root, name)])
        C.check(rc == 0 and not err, "%s succeeds" % what, "status %d: %s" % (rc, err))
        wire = it.wire_form(name)
        names = wire_names()
        C.check(wire in names, "%s: the server LISTs it (modified UTF-7 name)" % what,
                "want %r; LIST has %s" % (wire, sorted(n for n in names if TAG in n)))
        C.check(os.path.isdir(os.path.join(root, name)), "%s: a directory in the mount" % what)

    before = it.folder_names(H)
    e = errno_of(os.mkdir, os.path.join(root, MAIN))
    C.check(e == errno.EEXIST and it.folder_names(H) == before,
            "mkdir of an existing folder name fails with EEXIST and the server's folders stay",
            ename(e))

    for name, what in ((EMPTY, "rmdir of an empty folder"), (NEW, "rmdir of the folder made by mkdir"),
                       (NEW_SUB, "rmdir of the nested folder made by mkdir"),
                       (NEW_UTF8, "rmdir of the non-ASCII folder made by mkdir")):
        rc, err = run_as_owner(["rmdir", os.path.join(root, name)])
        C.check(rc == 0 and not err, "%s succeeds" % what, "status %d: %s" % (rc, err))
        names = it.folder_names(H)
        C.check(name not in names, "%s: the folder is deleted on the server" % what,
                "LIST still has %r" % name)
        C.check(not os.path.lexists(os.path.join(root, name)), "%s: gone from the mount" % what)

    m = msgs["full1"]
    flags = it.flags_by_uid(H, FULL)
    e = errno_of(os.rmdir, os.path.join(root, FULL))
    C.check(e == errno.ENOTEMPTY, "rmdir of a folder with a message fails with ENOTEMPTY", ename(e))
    C.check(FULL in it.folder_names(H) and it.flags_by_uid(H, FULL) == flags == {m.uid: set()}
            and it.where(H, m.mid) == [(FULL, m.uid)],
            "rmdir of a non-empty folder: the folder and its message are untouched on the server",
            "folder listed: %s, messages %s" % (FULL in it.folder_names(H), it.flags_by_uid(H, FULL)))
    C.check(eml_name(root, FULL, m.uid), "rmdir of a non-empty folder: its message still shows in the mount")

    before = it.folder_names(H)
    e = errno_of(os.rmdir, os.path.join(root, TAG + "-no-such-folder"))
    C.check(e == errno.ENOENT and it.folder_names(H) == before,
            "rmdir of a missing name fails with ENOENT and no folder changes", ename(e))


def check_rename_folder(root, msgs):
    rc, err = run_as_owner(["mv", os.path.join(root, REN_A), os.path.join(root, REN_B)])
    C.check(rc == 0 and not err, "mv Mount/FolderA Mount/FolderB (with a subfolder) succeeds",
            "status %d: %s" % (rc, err))
    names = it.folder_names(H)
    C.check({REN_B, REN_B + "/sub"} <= names and not {REN_A, REN_A + "/sub"} & names,
            "mv FolderA FolderB: the server has FolderB and FolderB/sub, no FolderA",
            sorted(n for n in names if TAG in n))
    l1, l2 = it.where(H, msgs["ren1"].mid), it.where(H, msgs["ren2"].mid)
    C.check(len(l1) == 1 and l1[0][0] == REN_B and len(l2) == 1 and l2[0][0] == REN_B + "/sub",
            "mv FolderA FolderB: the messages are in FolderB and FolderB/sub on the server",
            "%s / %s" % (l1, l2))
    top = listdir(root)
    C.check(isinstance(top, list) and REN_B in top and REN_A not in top
            and os.path.isdir(os.path.join(root, REN_B, "sub")) and not os.path.lexists(os.path.join(root, REN_A)),
            "mv FolderA FolderB: the mount shows FolderB with sub/, FolderA is gone",
            [e for e in top if TAG in e] if isinstance(top, list) else top)
    if len(l1) == 1 and len(l2) == 1:
        shown = wait_for(lambda: eml_name(root, l1[0][0], l1[0][1]) and eml_name(root, l2[0][0], l2[0][1]),
                         SHOW_TIMEOUT)
        C.check(shown, "mv FolderA FolderB: the messages show in FolderB/ and FolderB/sub/ within %d s"
                % SHOW_TIMEOUT, "%s / %s" % (listdir(os.path.join(root, REN_B)),
                                             listdir(os.path.join(root, REN_B, "sub"))))


def check_no_seen(msgs):
    """Nothing but setfattr set \\Seen on any of our messages (rm -r, mv and
    rm -rf decoded or read some of them)."""
    probs = []
    for tag, m in sorted(msgs.items()):
        if tag in ("flags",) or "\\Seen" in MESSAGES[tag][2]:
            continue
        for f, u in it.where(H, m.mid):
            fl = flags_of(f, u)
            if fl and "\\Seen" in fl:
                probs.append("%s in %s/%d: %s" % (tag, f, u, sorted(fl)))
    C.problems(probs, "after all the changes none of our messages got \\Seen without setfattr")


def default_mount(msgs, trash):
    mnt = mount("trash", None)
    if not mnt:
        return
    try:
        root = mnt.mountpoint
        want = {t: m for t, m in msgs.items() if t not in ("ro1", "ro2", "ex1")}
        names = wait_msgs(root, want, "default mount")
        if len(names) != len(want):
            return
        # Reading after a STORE in the same folder: a connection may then
        # have it selected read-write, where a plain BODY[] would set \Seen.
        C.section("setfattr user.mail.flags", check_flags, root, msgs, names)
        C.section("reading", check_reading, root, msgs, names)
        C.section("rm X.eml", check_rm, root, msgs, names, trash)
        C.section("rm -r X/", check_rm_r, root, msgs, names, trash)
        C.section("rm -rf Folder/*", check_rm_rf_folder, root, msgs, names, trash)
        C.section("mv", check_mv, root, msgs, names)
        C.section("bulk rm/mv", check_bulk, root, mnt, trash)
        C.section("refused batch", check_bulk_refused, root, mnt)
        C.section("mkdir/rmdir", check_mkdir_rmdir, root, msgs)
        C.section("folder rename", check_rename_folder, root, msgs)
        C.section("no \\Seen", check_no_seen, msgs)
    finally:
        finish(mnt, "default mount")


def expunge_mount(msgs, trash):
    mnt = mount("expunge", "delete=expunge")
    if not mnt:
        return
    try:
        root = mnt.mountpoint
        names = wait_msgs(root, {"ex1": msgs["ex1"]}, "delete=expunge")
        if not names:
            return
        m = msgs["ex1"]
        rc, err = run_as_owner(["rm", os.path.join(root, m.folder, names["ex1"])])
        C.check(rc == 0 and not err, "delete=expunge: rm X.eml succeeds", "status %d: %s" % (rc, err))
        loc = it.where(H, m.mid)
        C.check(loc == [], "delete=expunge: rm expunges the message (not in %s, nowhere on the server)" % trash,
                "found at %s" % loc)
        C.problems(gone_from_mount(root, m.folder, names["ex1"]),
                   "delete=expunge: X.eml and X/ are gone from the listing at once")
    finally:
        finish(mnt, "delete=expunge mount")


def ro_mount(msgs):
    mnt = mount("ro", "ro")
    if not mnt:
        return
    try:
        root = mnt.mountpoint
        names = wait_msgs(root, {t: msgs[t] for t in ("ro1", "ro2")}, "-o ro")
        if len(names) != 2:
            return
        before = account_state()
        p1 = os.path.join(root, RO, names["ro1"])
        p2 = os.path.join(root, RO, names["ro2"])

        def write_outbox():
            with open(os.path.join(root, "outbox", TAG + ".eml"), "w") as f:
                f.write("To: bob@mailfs.test\nSubject: ro\n\nro\n")

        cases = [
            ("rm X.eml", os.unlink, p1),
            ("rm -r X/ (rmdir of the decoded directory)", os.rmdir, p1[:-4]),
            ("mv X.eml Archive/", os.rename, p2, os.path.join(root, "Archive", names["ro2"])),
            ("mv X/ Archive/", os.rename, p2[:-4], os.path.join(root, "Archive", names["ro2"][:-4])),
            ("mkdir", os.mkdir, os.path.join(root, TAG + "-ronew")),
            ("rmdir of an empty folder", os.rmdir, os.path.join(root, RO_EMPTY)),
            ("mv FolderA FolderB", os.rename, os.path.join(root, RO_EMPTY), os.path.join(root, TAG + "-ro2")),
            ("setfattr user.mail.flags", os.setxattr, p1, "user.mail.flags", b"\\Seen \\Flagged"),
            ("writing a file in outbox/", write_outbox),
        ]
        for what, fn, *args in cases:
            e = errno_of(fn, *args)
            C.check(e == errno.EROFS, "-o ro: %s fails with EROFS" % what, "got %s" % ename(e))
        rc, err = run_as_owner(["rm", "-f", p1])
        C.check(rc != 0 and "Read-only file system" in err, "-o ro: rm -f X.eml reports 'Read-only file system'",
                "status %d: %s" % (rc, err))
        after = account_state()
        C.check(after == before, "-o ro: nothing changed on the server",
                "folders +%s -%s; changed folders %s" % (
                    sorted(after[0] - before[0]), sorted(before[0] - after[0]),
                    sorted(f for f in set(before[1]) | set(after[1])
                           if before[1].get(f) != after[1].get(f))))
        C.check(os.path.isfile(p1) and os.path.isfile(p2), "-o ro: the messages still show in the mount")
    finally:
        finish(mnt, "-o ro mount")


# --- main --------------------------------------------------------------------

def main():
    global H
    if not ready(C, BIN, RUN):
        return 1
    write_alice_config(RUN, H, ACCOUNT, "debug = fs:sync\n")

    # test_read's fallback part may have left Dovecot announcing only basic
    # capabilities (if it died there); the writes here want the full set.
    if H.get("plain_caps") and server_of(H) == "dovecot":
        ok, out = restart_full_caps(H)
        C.check(ok, "restart Dovecot with all capabilities", out)
        H = it.load_harness(server="dovecot")

    got = server_setup(C, lambda: (setup(), it.trash_folder(H)))
    if got is None:
        return 1
    msgs, trash = got
    C.ok("made %d folders and %d messages (Message-ID ...@%s) with imaplib" % (
        len(SETUP_FOLDERS), len(msgs), DOMAIN))
    print("# run tag %s, Trash is %r" % (TAG, trash), flush=True)

    try:
        default_mount(msgs, trash)
        expunge_mount(msgs, trash)
        ro_mount(msgs)
    finally:
        quietly("cleanup", it.remove_test_mail, H, DOMAIN, OURS_RE)

    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
