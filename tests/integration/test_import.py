#!/usr/bin/env python3
"""test_import.py - copy message files into folders through the mount
(cp, mv from a local disk, rsync's temporary file renamed to its final
name) and check every result with an independent IMAP client (imaplib) on
the same server.

Needs the private Dovecot from tests/harness/start.sh (seeded or not: the
test makes its own folders, all named imp-<random>..., fills them with
imaplib and removes them at the end; it touches nothing else).
Environment (MAILFS_BIN, MAILFS_TEST_DIR, MAILFS_TEST_LABEL), output: mounttest.py.

1. Backup and restore: messages from tests/data (one with an mbox "From "
   line, two sharing a Message-ID with different sizes, 8-bit ones, a PDF
   attachment) are APPENDed to a folder with an INTERNALDATE unlike their
   Date; plain cp copies every .eml out of the mount; the folder is DELETEd
   with imaplib and made again with mkdir through the mount; one backup
   file is rewritten with LF line endings; cp copies the files back.  The
   server must then hold the same messages byte for byte (LF turned back
   into CRLF), with INTERNALDATE = Date, shown in the mount under their
   derived names, without flags; copying the backup in again, at once and
   after the sync, adds nothing; a message another client expunged a moment
   ago (the mount's index still lists it) is restored by copying it in.
2. Not a message (random bytes, text without a header, an empty file):
   close() fails with EINVAL, nothing is APPENDed, nothing is left behind.
3. rsync's pattern: a dot-temp file written, chmod'ed and utime'd, then
   renamed: APPENDed on the rename, not before, byte for byte.
4. mv from a local disk (a copy across devices) APPENDs.
5. With -o ro, cp into a folder fails with EROFS and nothing is APPENDed.
"""

import collections
import datetime
import email
import email.policy
import email.utils
import errno
import glob
import os
import random
import re
import secrets
import shutil
import sys
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (REPO_ROOT, by_uid, ename, imaptest as it, listdir,  # noqa: E402
                       mount_checked, quietly, ready, run_as_owner, server_setup, setup_test,
                       unmount_and_check, wait_for, write_alice_config)

BIN, LABEL, C, H, RUN = setup_test("import")
DATA = os.path.join(REPO_ROOT, "tests", "data")
ACCOUNT = "alice@test"
MOUNT_TIMEOUT = 90
SYNC_TIMEOUT = 120      # a freshly mounted tree shows our messages
GONE_TIMEOUT = 150      # the mount notices a folder DELETEd behind its back
SHOW_TIMEOUT = 30       # an imported message shows under its derived name

TAG = "imp-" + secrets.token_hex(4)
DOMAIN = "import.mailfs.test"
OURS_RE = re.compile(r"(^|/)imp-[0-9a-f]{8}\b")    # any run's folders

BACK = TAG                      # backed up, DELETEd, made again, restored
MISC = TAG + "-misc"            # not-a-message, rsync, mv, -o ro
SAME = TAG + "-same"            # restored over itself; no Message-ID
SETUP_FOLDERS = [BACK, MISC, SAME]

# The backup set: file under tests/data, and what the backup copy becomes.
BACKUP_SET = [
    ("mailfs/01-plain.eml", "lf"),              # restored with LF line ends
    ("mailfs/03-attachment-pdf.eml", None),     # base64 PDF, 31 KB
    ("mailfs/05-rfc2047-utf8.eml", None),       # raw UTF-8 in the body
    ("mailfs/15-timezone.eml", None),           # -0500, next day in UTC
    ("mailfs/23-windows-1252.eml", None),       # 8-bit body
    ("notmuch/insert/mbox-attachment.eml", None),   # starts with "From "
    ("notmuch/duplicate/msg-1-1.eml", None),    # same Message-ID as 1-2,
    ("notmuch/duplicate/msg-1-2.eml", None),    # different size: both stay
    ("notmuch/html/embedded-image.eml", None),  # "Message-Id:", UTF-8
]
# The backup's original UIDs are above len(BACKUP_SET) (a first copy of the
# set is APPENDed and expunged), so the restored messages (UIDs 1..N in the
# recreated folder) never get the name of a backup file.
INTERNALDATE = datetime.datetime(2001, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)

IDATE_RE = re.compile(rb'INTERNALDATE "([^"]+)"')
FLAGS_RE = re.compile(rb"FLAGS \(([^)]*)\)")
UID_RE = re.compile(rb"\bUID (\d+)")
SIZE_RE = re.compile(rb"RFC822\.SIZE (\d+)")


# --- the independent view (imaplib) ------------------------------------------

def crlf(b):
    """What a message file becomes as an IMAP literal: CRLF line ends."""
    return re.sub(rb"\r?\n", b"\r\n", b)


def header(raw, name):
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    v = msg[name]
    return " ".join(str(v).split()) if v is not None else None


def date_of(raw):
    """The Date header as an aware datetime, or None."""
    v = header(raw, "Date")
    try:
        return email.utils.parsedate_to_datetime(v) if v else None
    except (TypeError, ValueError):
        return None


def mid_of(raw):
    return header(raw, "Message-ID")


def server_msgs(folder):
    """[{uid, size, idate (aware datetime), raw}] of a folder, by UID;
    None when it cannot be selected."""
    m = it.connect(H)
    try:
        try:
            n = it.select(m, folder)
        except RuntimeError:
            return None
        if n == 0:
            return []
        typ, data = m.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])")
        it.check(typ, data, "FETCH " + folder)
        res = []
        for item in data:
            if not isinstance(item, tuple):
                continue
            head, raw = item
            d = {"uid": int(UID_RE.search(head).group(1)),
                 "size": int(SIZE_RE.search(head).group(1)),
                 "flags": set(FLAGS_RE.search(head).group(1).decode().split()) - {"\\Recent"},
                 "idate": datetime.datetime.strptime(
                     IDATE_RE.search(head).group(1).decode(), "%d-%b-%Y %H:%M:%S %z"),
                 "raw": raw}
            res.append(d)
        return sorted(res, key=lambda d: d["uid"])
    finally:
        m.logout()


def count(folder):
    s = server_msgs(folder)
    return None if s is None else len(s)


def setup():
    """Our folders (after removing those of earlier runs); the backup set
    in BACK.  Returns [{uid, raw, file}]."""
    it.remove_test_mail(H, None, OURS_RE, " of earlier runs")
    m = it.connect(H)
    try:
        it.create_folders(m, SETUP_FOLDERS)
        files = []
        for rel, _ in BACKUP_SET:
            with open(os.path.join(DATA, rel), "rb") as fh:
                files.append((rel, fh.read()))
        for rnd in range(2):
            for rel, raw in files:
                it.check(*m.append(it.wire_name(BACK), None, INTERNALDATE, raw), "APPEND " + rel)
            if rnd == 0:
                it.select(m, BACK, readonly=False)
                it.check(*m.uid("STORE", "1:*", "+FLAGS.SILENT", "(\\Deleted)"), "STORE")
                it.check(*m.expunge(), "EXPUNGE")
                m.close()
    finally:
        m.logout()
    msgs = server_msgs(BACK)
    if len(msgs) != len(files):
        raise RuntimeError("%s holds %d messages, want %d" % (BACK, len(msgs), len(files)))
    for d, (rel, raw) in zip(msgs, files):
        if d["raw"] != crlf(raw):
            raise RuntimeError("%s: the server's bytes are not the APPENDed ones" % rel)
        d["file"] = rel
    return msgs


# --- the mount ---------------------------------------------------------------

def write_file(path, data, mode=0o644):
    """open(O_CREAT|O_EXCL), write, close as separate steps: (errno of the
    open or write, errno of the close); 0 for success."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as e:
        return e.errno, None
    werr = 0
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError as e:
        werr = e.errno
    try:
        os.close(fd)
        return werr, 0
    except OSError as e:
        return werr, e.errno


def emls(path):
    """{uid: name} of the .eml files listed in a folder of the mount."""
    return by_uid(path, "")


def mount(what, opts):
    return mount_checked(C, BIN, RUN, ACCOUNT, what, opts, MOUNT_TIMEOUT)


def finish(mnt, what):
    unmount_and_check(C, mnt, what, [mnt.log])


def mnt_log_of(root):
    """The daemon log of the mount at root (see mount())."""
    return os.path.join(RUN, os.path.basename(root)[len("mnt-"):] + ".log")


def log_tail(log, pattern, n=3):
    """The daemon log's last lines matching pattern (for FAIL details)."""
    try:
        with open(log, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return " | ".join([ln for ln in lines if re.search(pattern, ln)][-n:])


# --- 1. backup and restore ------------------------------------------------------

def key(raw):
    return (mid_of(raw), raw)


def compare_restore(orig, got, what):
    """Checks that the folder holds exactly the original messages."""
    if got is None:
        C.fail("%s: the folder holds the original messages" % what, "%s cannot be selected" % BACK)
        return False
    want_ids = collections.Counter(mid_of(d["raw"]) for d in orig)
    got_ids = collections.Counter(mid_of(d["raw"]) for d in got)
    C.check(got_ids == want_ids, "%s: the server has the same Message-IDs (%d messages)" % (what, len(orig)),
            "missing %s, extra %s" % (sorted((want_ids - got_ids).elements()),
                                       sorted((got_ids - want_ids).elements())))
    want = collections.Counter(key(d["raw"]) for d in orig)
    have = collections.Counter(key(d["raw"]) for d in got)
    probs = []
    for k in sorted(want - have, key=str):
        near = [d for d in got if mid_of(d["raw"]) == k[0]]
        probs.append("<%s>: %s" % (k[0], "no message with that Message-ID" if not near else
                                   "server has %s bytes, original %d; first difference at %s" % (
                                       [len(d["raw"]) for d in near], len(k[1]),
                                       [first_diff(d["raw"], k[1]) for d in near])))
    for k in sorted(have - want, key=str):
        probs.append("extra <%s> (%d bytes)" % (k[0], len(k[1])))
    return C.problems(probs, "%s: every message's BODY.PEEK[] is byte for byte the original "
                      "(the LF-only backup file back in CRLF)" % what)


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return "%d: %r / %r" % (i, a[max(0, i - 10):i + 20], b[max(0, i - 10):i + 20])
    return "at the end (%d / %d bytes)" % (len(a), len(b))


def check_idates(got, what):
    probs = []
    for d in got:
        date = date_of(d["raw"])
        if date is None:
            probs.append("UID %d: no parsable Date" % d["uid"])
        elif d["idate"] != date:
            probs.append("<%s>: INTERNALDATE %s, Date %s" % (
                mid_of(d["raw"]), d["idate"].isoformat(), date.isoformat()))
    C.problems(probs, "%s: every message's INTERNALDATE is its Date header (not the original "
               "INTERNALDATE %s, not the time of the copy)" % (what, INTERNALDATE.isoformat()))


def cp_in(files, dest):
    return run_as_owner(["cp", "--"] + list(files) + [dest + "/"])


def check_backup(root, orig):
    folder = os.path.join(root, BACK)
    names = wait_for(lambda: (lambda e: e if set(e) == {d["uid"] for d in orig} else None)(emls(folder)),
                     SYNC_TIMEOUT)
    if not C.check(names, "backup: our %d messages show in the mount within %d s" % (len(orig), SYNC_TIMEOUT),
                   "listed UIDs %s, want %s" % (sorted(emls(folder)), [d["uid"] for d in orig])):
        return
    by_uid = {d["uid"]: d for d in orig}

    # The backup: plain cp of every .eml.
    bdir = os.path.join(RUN, "backup")
    os.makedirs(bdir)
    rc, err = cp_in(sorted(glob.glob(glob.escape(folder) + "/*.eml")), bdir)
    C.check(rc == 0 and not err, "backup: cp Folder/*.eml to a local directory succeeds",
            "status %d: %s" % (rc, err))
    backup = {}         # backup file name -> original message
    probs = []
    for uid, name in sorted(names.items()):
        p = os.path.join(bdir, name)
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError as e:
            probs.append("%s: %s" % (name, e))
            continue
        if data != by_uid[uid]["raw"]:
            probs.append("%s: %d bytes, server %d" % (name, len(data), len(by_uid[uid]["raw"])))
        backup[name] = by_uid[uid]
    C.problems(probs, "backup: each copied file is the server's BODY.PEEK[] of its message")
    if len(backup) != len(orig):
        return
    # One backup file as a Unix tool would keep it: LF line ends.
    for name, d in backup.items():
        if dict(BACKUP_SET)[d["file"]] == "lf":
            p = os.path.join(bdir, name)
            with open(p, "rb") as f:
                data = f.read()
            with open(p, "wb") as f:
                f.write(data.replace(b"\r\n", b"\n"))
            print("# backup file with LF line ends: %s" % name, flush=True)

    # The folder is lost on the server...
    m = it.connect(H)
    try:
        typ, data = m.delete(it.wire_name(BACK))
    finally:
        m.logout()
    C.check(typ == "OK" and BACK not in it.folder_names(H), "backup: imaplib DELETEs the folder",
            "%s %r" % (typ, data))
    t0 = time.time()
    gone = wait_for(lambda: isinstance(listdir(root), list) and BACK not in listdir(root),
                    GONE_TIMEOUT, step=1)
    C.check(gone, "backup: the DELETEd folder is gone from the mount within %d s" % GONE_TIMEOUT,
            "still listed")
    if gone:
        print("# the mount dropped the DELETEd folder after %.1f s" % (time.time() - t0), flush=True)

    # ... made again through the mount, and the backup copied back.
    try:
        os.mkdir(folder)
        e = 0
    except OSError as ex:
        e = ex.errno
    C.check(e == 0, "restore: mkdir Mount/Folder makes the folder again", ename(e))
    C.check(BACK in it.folder_names(H), "restore: the server LISTs the folder made by mkdir")
    if count(BACK) != 0:
        C.fail("restore: the recreated folder is empty on the server", "%s messages" % count(BACK))
        return
    files = [os.path.join(bdir, n) for n in sorted(backup)]
    rc, err = cp_in(files, folder)
    C.check(rc == 0 and not err, "restore: cp backup/*.eml Mount/Folder/ (%d files) succeeds" % len(files),
            "status %d: %s" % (rc, err))
    got = server_msgs(BACK)
    # Restoring again straight away: the index may not have the new
    # messages yet.
    rc2, err2 = cp_in(files, folder)
    got2 = server_msgs(BACK)
    ok = compare_restore(orig, got, "restore")
    check_idates(got or [], "restore")
    C.check(rc2 == 0 and not err2, "restore again at once: cp succeeds", "status %d: %s" % (rc2, err2))
    C.check(got2 is not None and len(got2) == len(orig) and got is not None
            and [d["uid"] for d in got2] == [d["uid"] for d in got],
            "restore again at once (before the mount synced): nothing is added on the server",
            "%s messages after, %d want; UIDs %s" % (
                None if got2 is None else len(got2), len(orig),
                None if got2 is None else [d["uid"] for d in got2]))
    if not ok or got is None:
        return

    # The restored messages show under their derived names: the backup
    # file's name with the new UID.
    new_uid = {}
    for name, d in backup.items():
        hits = [g["uid"] for g in got if g["raw"] == d["raw"]]
        new_uid[name] = hits[0] if len(hits) == 1 else None
    want_names = sorted(re.sub(r"\[\d+\]\.eml$", "[%d].eml" % u, n) for n, u in new_uid.items())
    t0 = time.time()
    shown = wait_for(lambda: sorted(emls(folder).values()) == want_names, SHOW_TIMEOUT)
    listing = listdir(folder)
    C.check(shown, "restore: the folder's listing shows the %d messages under their derived names "
            "(the backup names with the new UIDs) within %d s" % (len(want_names), SHOW_TIMEOUT),
            "listed %s, want %s" % (listing if isinstance(listing, str) else
                                    [e for e in listing if e.endswith(".eml")], want_names))
    if shown:
        print("# restored messages shown after %.1f s" % (time.time() - t0), flush=True)
    leftovers = [n for n in backup if isinstance(listing, list) and n in listing]
    C.check(isinstance(listing, list) and not leftovers,
            "restore: no backup file name (old UID) is left in the listing", leftovers)
    probs = []
    for name, u in sorted(new_uid.items()):
        if u is None:
            continue
        p = os.path.join(folder, re.sub(r"\[\d+\]\.eml$", "[%d].eml" % u, name))
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError as ex:
            probs.append("%s: %s" % (p, ex))
            continue
        want = [g["raw"] for g in got if g["uid"] == u][0]
        if data != want:
            probs.append("%s: %d bytes, server %d" % (os.path.basename(p), len(data), len(want)))
    C.problems(probs, "restore: reading the restored X.eml files gives the server's bytes")
    flagged = ["UID %d: %s" % (g["uid"], sorted(g["flags"])) for g in server_msgs(BACK) or [] if g["flags"]]
    C.problems(flagged, "restore: the restored messages have no flags, \\Seen neither (after the "
               "restores and the reads)")

    # Once more, now that the mount has synced (the index has them).
    rc3, err3 = cp_in(files, folder)
    got3 = server_msgs(BACK)
    C.check(rc3 == 0 and not err3, "restore again after the sync: cp succeeds", "status %d: %s" % (rc3, err3))
    C.check(got3 is not None and [d["uid"] for d in got3] == [d["uid"] for d in got],
            "restore again after the sync: nothing is added on the server",
            "UIDs %s, before %s" % (None if got3 is None else [d["uid"] for d in got3],
                                    [d["uid"] for d in got]))
    time.sleep(2)
    listing = listdir(folder)
    C.check(isinstance(listing, list) and sorted(e for e in listing if e.endswith(".eml")) == want_names,
            "restore again: the listing still shows just the %d messages" % len(want_names),
            listing)

    # A message another client expunged a moment ago (the mount's index
    # still lists it) is restored: "already in the folder" means on the
    # server.
    name = sorted(backup)[0]
    d = backup[name]
    u = new_uid[name]
    m = it.connect(H)
    try:
        it.select(m, BACK, readonly=False)
        it.check(*m.uid("STORE", str(u), "+FLAGS.SILENT", "(\\Deleted)"), "STORE")
        it.check(*m.expunge(), "EXPUNGE")    # only that one is \\Deleted here
        m.close()
    finally:
        m.logout()
    rc4, err4 = cp_in([os.path.join(bdir, name)], folder)
    got4 = server_msgs(BACK) or []
    hits = [g for g in got4 if g["raw"] == d["raw"]]
    C.check(rc4 == 0 and len(got4) == len(orig) and len(hits) == 1,
            "restore of a message another client expunged a moment ago (still in the mount's index) "
            "appends it again",
            "cp status %d (%s); server has %d messages, want %d; %d with its bytes; log: %s" % (
                rc4, err4, len(got4), len(orig), len(hits), log_tail(mnt_log_of(root), re.escape(name))))


# --- 1b. restoring over the same names; messages without a Message-ID ------

# A blank line inside a folded header ends the header section early, as in
# real broken mail: the Message-ID line below it is body text.
NO_MID = ("From: Broken Folding <bf@import.mailfs.test>\r\n"
          "To: Alice <alice@mailfs.test>\r\n"
          "Subject: A folded header with a blank\r\n"
          "\r\n"
          "  line in it %s\r\n"
          "Message-ID: <%s-nomid@import.mailfs.test>\r\n"
          "Date: Wed, 06 Mar 2024 08:00:00 +0000\r\n"
          "\r\n"
          "Body of a message without a Message-ID.\r\n")
WITH_MID = ("From: Same Name <sn@import.mailfs.test>\r\n"
            "To: Alice <alice@mailfs.test>\r\n"
            "Subject: Restored over itself %s\r\n"
            "Date: Wed, 06 Mar 2024 08:01:00 +0000\r\n"
            "Message-ID: <%s-same@import.mailfs.test>\r\n"
            "\r\n"
            "Body.\r\n")


def check_same_names(root):
    folder = os.path.join(root, SAME)
    raws = [(NO_MID % (TAG, TAG)).encode(), (WITH_MID % (TAG, TAG)).encode()]
    m = it.connect(H)
    try:
        for raw in raws:
            it.check(*m.append(it.wire_name(SAME), None, INTERNALDATE, raw), "APPEND")
    finally:
        m.logout()
    with open(os.path.join(root, ".mailfs", "refresh"), "w") as f:
        f.write("1\n")
    names = wait_for(lambda: (lambda e: e if len(e) == 2 else None)(emls(folder)), SYNC_TIMEOUT)
    if not C.check(names, "same names: the folder's two messages show", listdir(folder)):
        return
    before = server_msgs(SAME)
    bdir = os.path.join(RUN, "backup-same")
    os.makedirs(bdir)
    rc, err = cp_in([os.path.join(folder, n) for n in names.values()], bdir)
    C.check(rc == 0 and not err, "same names: cp of both .eml out succeeds", "status %d: %s" % (rc, err))
    files = [os.path.join(bdir, n) for n in sorted(names.values())]

    # The backup copied back over the very messages it was taken from.
    rc, err = cp_in(files, folder)
    after = server_msgs(SAME)
    C.check(rc == 0 and not err, "same names: cp of the backup over the same names "
            "(the same bytes) succeeds", "status %d: %s" % (rc, err))
    C.check(after == before, "same names: imaplib: the folder is unchanged (same UIDs, "
            "bytes and flags)", "%d messages, UIDs %s" % (len(after or []), [d["uid"] for d in after or []]))

    # Restored under another name (a second restore into a fresh folder
    # would be this): the message without a Message-ID is recognised by
    # its bytes and not appended again.
    nomid = [p for p in files if "folded header" in p]
    dst = os.path.join(folder, "restored-again.eml")
    rc, err = run_as_owner(["cp", "--"] + nomid + [dst])
    after = server_msgs(SAME)
    C.check(rc == 0 and len(nomid) == 1 and after == before,
            "same names: a message without a Message-ID copied in again under "
            "another name adds nothing", "cp status %d (%s); %d messages, want %d" % (
                rc, err, len(after or []), len(before)))
    # With LF line ends, as a Unix tool would keep it: the same message.
    lf = os.path.join(bdir, "lf.eml")
    with open(nomid[0], "rb") as f, open(lf, "wb") as g:
        g.write(f.read().replace(b"\r\n", b"\n"))
    rc, err = run_as_owner(["cp", "--", lf, os.path.join(folder, "restored-lf.eml")])
    after = server_msgs(SAME)
    C.check(rc == 0 and after == before,
            "same names: the same message with LF line ends adds nothing either",
            "cp status %d (%s); %d messages, want %d" % (rc, err, len(after or []), len(before)))

    # Different bytes over an existing message's name are refused.
    other = [p for p in files if "Restored over itself" in p][0]
    changed = os.path.join(bdir, "changed.eml")
    with open(other, "rb") as f, open(changed, "wb") as g:
        g.write(f.read().replace(b"Body.", b"Bodx."))
    rc, err = run_as_owner(["cp", "--", changed, other.replace(bdir, folder)])
    after = server_msgs(SAME)
    C.check(rc != 0 and "Operation not permitted" in err and after == before,
            "same names: cp of different bytes over a message fails with EPERM and changes nothing",
            "cp status %d (%s); server changed: %s" % (rc, err, after != before))
    with open(other.replace(bdir, folder), "rb") as f:
        shown = f.read()
    C.check(shown == [d["raw"] for d in before if d["raw"] in shown][0] if shown else False,
            "same names: the message file still reads as the server's bytes", "%d bytes" % len(shown))


# --- 2. not a message -------------------------------------------------------------

def check_not_message(root, mnt):
    folder = os.path.join(root, MISC)
    src = os.path.join(RUN, "notmsg")
    os.makedirs(src)
    whole = open(os.path.join(DATA, "mailfs", "03-attachment-pdf.eml"), "rb").read()
    cases = [
        ("random.bin", "random bytes", bytes([0x00, 0xff]) + random.Random(20240304).randbytes(8190)),
        # An interrupted cp: a multipart message cut in its attachment.
        ("cut.eml", "a multipart message cut short", whole[:len(whole) * 2 // 3]),
        ("notes.eml", "a text file without a header",
         b"Dear diary,\n\nToday I restored my mail from a backup.\nNothing here is a header.\n"),
        ("empty.eml", "an empty file", b""),
    ]
    before = count(MISC)
    for name, what, data in cases:
        p = os.path.join(src, name)
        with open(p, "wb") as f:
            f.write(data)
        dst = os.path.join(folder, name)
        rc, err = run_as_owner(["cp", p, folder + "/"])
        C.check(rc != 0 and "Invalid argument" in err,
                "not a message (%s): cp fails with 'Invalid argument'" % what,
                "status %d: %s" % (rc, err))
        wrote, closed = write_file(os.path.join(folder, "2-" + name), data)
        C.check(wrote == 0 and closed == errno.EINVAL,
                "not a message (%s): open and write succeed, close() fails with EINVAL" % what,
                "open/write: %s, close: %s" % (ename(wrote), ename(closed)))
        n = count(MISC)
        C.check(n == before, "not a message (%s): nothing is appended" % what,
                "%s messages, before %s; log: %s" % (n, before, log_tail(mnt.log, "append|not a message")))
        listing = listdir(folder)
        left = [e for e in (listing if isinstance(listing, list) else []) if name in e]
        C.check(isinstance(listing, list) and not left and not os.path.lexists(dst)
                and not os.path.lexists(os.path.join(folder, "2-" + name)),
                "not a message (%s): no file is left in the folder (listing or lookup)" % what,
                "listing %s, lookup %s" % (left or listing, os.path.lexists(dst)))


# --- 3. rsync: dot-temp file, then rename ------------------------------------------

def rsync_message():
    mid = "%s-rsync@%s" % (TAG, DOMAIN)
    b = "bnd-" + TAG
    return ("From: Rsync Test <rsync@mailfs.test>\r\n"
            "To: Alice <alice@mailfs.test>\r\n"
            "Subject: Restored by rsync %s\r\n"
            "Date: Tue, 05 Mar 2024 11:22:33 +0100\r\n"
            "Message-ID: <%s>\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n'
            "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            "Gr\u00fc\u00dfe aus dem Backup.\r\n"
            "--%s\r\nContent-Type: application/octet-stream\r\n"
            'Content-Disposition: attachment; filename="data.bin"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n"
            "--%s--\r\n" % (TAG, mid, b, b, b, b)).encode("utf-8"), mid


def with_mid(msgs, mid):
    return [d for d in (msgs or []) if mid_of(d["raw"]) == "<%s>" % mid]


def check_rsync(root):
    folder = os.path.join(root, MISC)
    raw, mid = rsync_message()
    final = "%s rsync.eml" % TAG
    temp = os.path.join(folder, ".%s.%s" % (final, "AbC123"))
    before = count(MISC)
    wrote, closed = write_file(temp, raw, 0o600)
    C.check(wrote == 0 and closed == 0, "rsync: writing and closing the dot-temp file succeeds",
            "open/write: %s, close: %s" % (ename(wrote), ename(closed)))
    mtime = 1709634153      # the message's Date
    errs = []
    for what, fn in (("chmod", lambda: os.chmod(temp, 0o644)),
                     ("utime", lambda: os.utime(temp, (mtime, mtime)))):
        try:
            fn()
        except OSError as e:
            errs.append("%s: %s" % (what, ename(e.errno)))
    C.check(not errs, "rsync: chmod and utime on the dot-temp file succeed", errs)
    try:
        st = os.stat(temp)
        stat_ok = st.st_size == len(raw) and int(st.st_mtime) == mtime
        detail = "size %d (want %d), mtime %d (want %d)" % (st.st_size, len(raw), st.st_mtime, mtime)
    except OSError as e:
        stat_ok, detail = False, ename(e.errno)
    C.check(stat_ok, "rsync: the dot-temp file is there with its size and the mtime set", detail)
    n1 = count(MISC)
    time.sleep(2)
    n2 = count(MISC)
    C.check(n1 == before and n2 == before,
            "rsync: nothing is appended while only the dot-temp name exists (checked at once and 2 s later)",
            "messages %s then %s, before %s" % (n1, n2, before))
    try:
        os.rename(temp, os.path.join(folder, final))
        e = 0
    except OSError as ex:
        e = ex.errno
    C.check(e == 0, "rsync: renaming the dot-temp file to its final name succeeds", ename(e))
    got = server_msgs(MISC)
    hits = with_mid(got, mid)
    C.check(len(got or []) == before + 1 and len(hits) == 1,
            "rsync: the rename appends the message, once",
            "%d messages (before %s), %d with its Message-ID" % (len(got or []), before, len(hits)))
    if hits:
        C.check(hits[0]["raw"] == raw, "rsync: the server's BODY.PEEK[] is byte for byte the file",
                "%d bytes, file %d; %s" % (len(hits[0]["raw"]), len(raw), first_diff(hits[0]["raw"], raw)))
        C.equal(hits[0]["idate"], date_of(raw), "rsync: INTERNALDATE is the Date header")
    C.check(not os.path.lexists(temp) and not os.path.lexists(os.path.join(folder, final)),
            "rsync: neither the temp nor the final name is left as a file of its own",
            listdir(folder))
    if hits:
        uid = hits[0]["uid"]
        name = wait_for(lambda: emls(folder).get(uid), SHOW_TIMEOUT)
        C.check(name and name.startswith("2024-03-05 1022 Rsync Test - Restored by rsync %s" % TAG),
                "rsync: shows as '2024-03-05 1022 Rsync Test - Restored by rsync ... [UID].eml' within %d s"
                % SHOW_TIMEOUT, "got %r" % name)


# --- 4. mv from a local disk -----------------------------------------------------

def check_mv(root):
    folder = os.path.join(root, MISC)
    src_file = os.path.join(DATA, "notmuch", "html", "attribute-text.eml")    # LF only
    with open(src_file, "rb") as f:
        raw = f.read()
    mid = mid_of(raw)
    # A local disk (not the mount): the state dir's file system.
    local = os.path.join(RUN, "local")
    os.makedirs(local)
    src = os.path.join(local, "attribute-text.eml")
    shutil.copyfile(src_file, src)
    before = server_msgs(MISC)
    rc, err = run_as_owner(["mv", src, folder + "/"])
    C.check(rc == 0 and not err, "mv local.eml Mount/Folder/ (across devices: a copy) succeeds",
            "status %d: %s" % (rc, err))
    C.check(not os.path.exists(src), "mv: the local file is gone")
    got = server_msgs(MISC)
    hits = [d for d in (got or []) if mid_of(d["raw"]) == mid]
    C.check(len(got or []) == len(before or []) + 1 and len(hits) == 1,
            "mv: the message is appended, once",
            "%d messages (before %d), %d with its Message-ID %s" % (
                len(got or []), len(before or []), len(hits), mid))
    if hits:
        C.check(hits[0]["raw"] == crlf(raw),
                "mv: the server's BODY.PEEK[] is the file's bytes (its LF line ends as CRLF)",
                "%d bytes, want %d; %s" % (len(hits[0]["raw"]), len(crlf(raw)),
                                           first_diff(hits[0]["raw"], crlf(raw))))
        C.equal(hits[0]["idate"], date_of(raw), "mv: INTERNALDATE is the Date header")
        uid = hits[0]["uid"]
        name = wait_for(lambda: emls(folder).get(uid), SHOW_TIMEOUT)
        C.check(name, "mv: the message shows in the folder under its derived name within %d s" % SHOW_TIMEOUT,
                listdir(folder))
    C.check(not os.path.lexists(os.path.join(folder, "attribute-text.eml")),
            "mv: the local file name is not left in the folder")


# --- 5. -o ro ---------------------------------------------------------------------

def ro_mount():
    mnt = mount("ro", "ro")
    if not mnt:
        return
    try:
        root = mnt.mountpoint
        folder = os.path.join(root, MISC)
        shown = wait_for(lambda: os.path.isdir(folder), SYNC_TIMEOUT)
        if not C.check(shown, "-o ro: our folder shows within %d s" % SYNC_TIMEOUT, listdir(root)):
            return
        before = server_msgs(MISC)
        src = os.path.join(RUN, "ro.eml")
        with open(src, "wb") as f:
            f.write(b"From: RO <ro@mailfs.test>\r\nTo: alice@mailfs.test\r\nSubject: ro\r\n"
                    b"Date: Wed, 06 Mar 2024 12:00:00 +0000\r\n"
                    b"Message-ID: <%s-ro@%s>\r\n\r\nro\r\n" % (TAG.encode(), DOMAIN.encode()))
        rc, err = run_as_owner(["cp", src, folder + "/"])
        C.check(rc != 0 and "Read-only file system" in err,
                "-o ro: cp msg.eml Folder/ fails with 'Read-only file system'", "status %d: %s" % (rc, err))
        with open(src, "rb") as f:
            wrote, closed = write_file(os.path.join(folder, "ro2.eml"), f.read())
        C.check(wrote == errno.EROFS, "-o ro: open(O_CREAT) in a folder fails with EROFS",
                "open/write: %s, close: %s" % (ename(wrote), ename(closed)))
        after = server_msgs(MISC)
        C.check(after is not None and before is not None
                and [d["uid"] for d in after] == [d["uid"] for d in before],
                "-o ro: nothing is appended",
                "UIDs %s, before %s" % (after and [d["uid"] for d in after],
                                        before and [d["uid"] for d in before]))
        C.check(not os.path.lexists(os.path.join(folder, "ro.eml")), "-o ro: no file ro.eml shows in the folder")
    finally:
        finish(mnt, "-o ro mount")


# --- main --------------------------------------------------------------------

def default_mount(orig):
    # IDLE on INBOX only: the backup round trip DELETEs a folder the
    # mount has just listed, and an IDLE session SELECTing it at that
    # instant can make Dovecot's Maildir keep the folder (a server race,
    # see mailfs(1)); this test is about importing, not about that.
    mnt = mount("rw", "idle_folders=1")
    if not mnt:
        return
    try:
        root = mnt.mountpoint
        C.section("backup and restore", check_backup, root, orig)
        if not C.check(wait_for(lambda: os.path.isdir(os.path.join(root, MISC)), SYNC_TIMEOUT),
                       "the second folder shows in the mount", listdir(root)):
            return
        C.section("not a message", check_not_message, root, mnt)
        C.section("same names", check_same_names, root)
        C.section("rsync", check_rsync, root)
        C.section("mv", check_mv, root)
    finally:
        finish(mnt, "default mount")


def leftover_mount():
    """A dot file written into a folder and never renamed is kept aside
    (findable by name, not appended) until the next mount drops it."""
    raw, _ = rsync_message()
    name = ".%s left-over.eml" % TAG
    before = count(MISC)
    mnt = mount("rw", "idle_folders=1")
    if not mnt:
        return
    try:
        path = os.path.join(mnt.mountpoint, MISC, name)
        if not C.check(wait_for(lambda: os.path.isdir(os.path.dirname(path)), SYNC_TIMEOUT),
                       "leftover: the folder shows in the mount", listdir(mnt.mountpoint)):
            return
        wrote, closed = write_file(path, raw, 0o600)
        C.check(wrote == 0 and closed == 0 and os.path.exists(path),
                "leftover: a dot file written into a folder is there by its name",
                "open/write: %s, close: %s" % (ename(wrote), ename(closed)))
    finally:
        finish(mnt, "leftover: first mount")
    mnt = mount("rw", "idle_folders=1")
    if not mnt:
        return
    try:
        path = os.path.join(mnt.mountpoint, MISC, name)
        wait_for(lambda: os.path.isdir(os.path.dirname(path)), SYNC_TIMEOUT)
        C.check(not os.path.lexists(path), "leftover: the next mount has dropped it")
        C.equal(count(MISC), before, "leftover: nothing was appended to the folder")
    finally:
        finish(mnt, "leftover: second mount")


def main():
    if not ready(C, BIN, RUN):
        return 1
    write_alice_config(RUN, H, ACCOUNT, "debug = fs:sync\n")
    if H.get("plain_caps"):
        print("# note: Dovecot announces only basic capabilities (DOVECOT_PLAIN_CAPS)", flush=True)

    orig = server_setup(C, setup)
    if orig is None:
        return 1
    C.ok("made %d folders and %d messages with imaplib (UIDs %d..%d)" % (
        len(SETUP_FOLDERS), len(orig), orig[0]["uid"], orig[-1]["uid"]))
    print("# run tag %s" % TAG, flush=True)

    try:
        default_mount(orig)
        leftover_mount()
        ro_mount()
    finally:
        quietly("cleanup", it.remove_test_mail, H, None, OURS_RE)
        left = [n for n in it.folder_names(H) if TAG in n]
        C.check(not left, "cleanup: our folders are gone from the server", left)

    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
