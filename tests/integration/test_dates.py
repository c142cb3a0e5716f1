#!/usr/bin/env python3
"""test_dates.py - a message's mtime and the date in its name, from Date
headers as real mail writes them.

  sloppy  Messages APPENDed with imaplib, each with a hand-made Date
          header in the obsolete or sloppy forms RFC 5322 section 4.3
          lists and real mail carries (no seconds, the zone against the
          time, two-digit years, no weekday, named and military zones,
          comments, -0000, lower-case months, extra spaces and folding)
          and some that cannot be read (garbage, 30 Feb, hour 25, a date
          without a time).  Each .eml's st_mtime and the "YYYY-MM-DD HHMM"
          (UTC) of its name must be the instant python3's
          email.utils.parsedate_to_datetime gives for the Date header as
          the server holds it; where python raises or gives None, the
          server's INTERNALDATE (each message has its own, far from any
          Date).  A naive result (python's reading of -0000, of a zone it
          does not know and of a missing zone) is a time in UTC, as
          python's documentation says of -0000.
          RFC 5322 comments are removed before python reads the value:
          python tolerates them only after the zone, and misreads or
          rejects "10:30:00 (CET) +0100" and "10:30+0100 (CET)", which
          mailfs reads as the RFC says.
  data    Every message file tests/data/seed.tsv names, APPENDed again to
          a folder of this test: the same comparison.  For a header block
          the email package calls broken, the Date line found in the raw
          header counts too (as in test_read.py).
  import  The issue's example copied into the mount (cp): the server's
          INTERNALDATE of the appended message is the same instant.

Folders dt-<random> and dt-<random>-data, removed at the end.  Needs the
private Dovecot (tests/harness/start.sh).
Environment (MAILFS_BIN, MAILFS_TEST_DIR, MAILFS_TEST_LABEL), output: mounttest.py.
"""

import datetime
import email
import email.errors
import email.parser
import email.policy
import email.utils
import os
import re
import secrets
import sys

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (REPO_ROOT, by_uid, date_instant, emls, imaptest as it,  # noqa: E402
                       mount_own_dirs, raw_header,
                       ready, run_as_owner, setup_test, unmount_and_check, wait_for,
                       write_alice_config)

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "harness"))
import seed  # noqa: E402  (the manifest reader)

BIN, LABEL, C, H, RUN = setup_test("dates")
ACCOUNT = "alice@test"
MOUNT_TIMEOUT = 90
SYNC_TIMEOUT = 120
IMPORT_TIMEOUT = 30
TAG = "dt-" + secrets.token_hex(4)
DATA = TAG + "-data"
OURS_RE = re.compile(r"^dt-[0-9a-f]{8}(-data)?$")
DOMAIN = "dates.mailfs.test"
# INTERNALDATEs: one per message, an hour and a minute apart, in July
# 2021, where no Date below points.
IDATE0 = datetime.datetime(2021, 7, 7, 7, 7, 7, tzinfo=datetime.timezone.utc)
NAME_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d{4}) .* \[(\d+)\]\.eml$", re.S)
EXAMPLE = "Tue, 3 Jan 2023 10:30+0100"

# (what, the Date header's value; None: no Date header).
SLOPPY = [
    ("the issue's example: no seconds, zone against the time", EXAMPLE),
    ("no seconds", "Tue, 3 Jan 2023 10:30 +0100"),
    ("no weekday", "3 Jan 2023 10:30:00 +0100"),
    ("two-digit year 49", "3 Jan 49 10:30:00 +0000"),
    ("two-digit year 50", "3 Jan 50 10:30:00 +0000"),
    ("two-digit year 99", "Sun, 3 Jan 99 10:30:00 +0000"),
    ("two-digit year 69 (1969, before the epoch)", "3 Jan 69 10:30:00 +0000"),
    ("two-digit year 00", "3 Jan 00 10:30:00 +0000"),
    ("three-digit year 103", "3 Jan 103 10:30:00 +0000"),
    ("EST", "Tue, 3 Jan 2023 10:30:00 EST"),
    ("EDT", "Tue, 3 Jan 2023 10:30:00 EDT"),
    ("CST", "Tue, 3 Jan 2023 10:30:00 CST"),
    ("CDT", "Tue, 3 Jan 2023 10:30:00 CDT"),
    ("MST", "Tue, 3 Jan 2023 10:30:00 MST"),
    ("MDT", "Tue, 3 Jan 2023 10:30:00 MDT"),
    ("PST", "Tue, 3 Jan 2023 10:30:00 PST"),
    ("PDT in lower case", "Tue, 3 Jan 2023 10:30:00 pdt"),
    ("UT", "Tue, 3 Jan 2023 10:30:00 UT"),
    ("GMT", "Tue, 3 Jan 2023 10:30:00 GMT"),
    ("military Z", "Tue, 3 Jan 2023 10:30:00 Z"),
    ("military A", "Tue, 3 Jan 2023 10:30:00 A"),
    ("a zone name python does not know (CET)", "Tue, 3 Jan 2023 10:30:00 CET"),
    ("-0000", "Tue, 3 Jan 2023 10:30:00 -0000"),
    ("comment after the zone", "Tue, 3 Jan 2023 10:30:00 +0100 (CET)"),
    ("comment before the zone", "Tue, 3 Jan 2023 10:30:00 (CET) +0100"),
    ("no seconds, zone against the time, comment", "Tue, 3 Jan 2023 10:30+0100 (CET)"),
    ("nested comments with a quoted pair",
     "(sent) Tue, 3 Jan (a (nested) \\) one) 2023 10:30:00 -0800 (PST)"),
    ("lower-case month", "Tue, 3 jan 2023 10:30:00 +0100"),
    ("upper-case month and weekday", "TUE, 3 JAN 2023 10:30:00 +0100"),
    ("extra spaces", "  Tue,   3   Jan   2023    10:30:00    +0100   "),
    ("folded over three lines", "Tue,\r\n 3 Jan 2023\r\n\t10:30:00 +0100"),
    ("no space after the comma", "Tue,3 Jan 2023 10:30:00 +0100"),
    ("month before day", "Tue, Jan 3 2023 10:30 +0100"),
    ("asctime, no zone", "Tue Jan  3 10:30:00 2023"),
    ("RFC 850", "Tuesday, 03-Jan-23 10:30:00 GMT"),
    ("dots in the time", "Tue, 3 Jan 2023 10.30.00 +0100"),
    ("no zone", "Tue, 3 Jan 2023 10:30:00"),
    ("zone with a colon", "Tue, 3 Jan 2023 10:30:00 +01:00"),
    ("29 Feb in a leap year", "Thu, 29 Feb 2024 10:30:00 +0100"),
    ("garbage", "sometime last week, probably"),
    ("empty", ""),
    ("no Date header", None),
    ("30 Feb", "Thu, 30 Feb 2023 10:30:00 +0100"),
    ("29 Feb in a common year", "29 Feb 2023 10:30:00 +0100"),
    ("hour 25", "Tue, 3 Jan 2023 25:30:00 +0100"),
    ("minute 60", "Tue, 3 Jan 2023 10:60:00 +0100"),
    ("second 60", "Tue, 3 Jan 2023 10:30:60 +0100"),
    ("zone +2400", "Tue, 3 Jan 2023 10:30:00 +2400"),
    ("day 0", "0 Jan 2023 10:30:00 +0100"),
    ("year 10000", "3 Jan 10000 10:30:00 +0100"),
    ("a date without a time", "Tue, 3 Jan 2023"),
    ("no year", "Thu Jan 01 00:00:10 +0000"),
]


# --- the independent view -----------------------------------------------------

def strip_comments(s):
    """s with each RFC 5322 comment (nested, with quoted pairs; one left
    open runs to the end) replaced by a space."""
    out, depth, i = [], 0, 0
    while i < len(s):
        c = s[i]
        if depth:
            if c == "\\":
                i += 2
                continue
            depth += {"(": 1, ")": -1}.get(c, 0)
            if depth == 0:
                out.append(" ")
        elif c == "(":
            depth = 1
        else:
            out.append(c)
        i += 1
    return "".join(out)




def wanted(raw, idate):
    """{instants} the file may show for a message as the server holds it:
    python's reading of its Date (comments removed), else idate."""
    hdr = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
        raw, headersonly=True)
    value = hdr.get("Date")
    ts = date_instant(strip_comments(str(value)) if value is not None else None)
    res = {ts if ts is not None else idate}
    if any(isinstance(d, (email.errors.MissingHeaderBodySeparatorDefect,
                          email.errors.InvalidHeaderDefect))
           for d in email.message_from_bytes(raw, policy=email.policy.default).defects):
        alt = date_instant(raw_header(raw, b"Date"))
        if alt is not None:
            res.add(alt)
    return res, value


def utc_minute(ts):
    """"YYYY-MM-DD HHMM" of ts in UTC, for any year python can hold."""
    d = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=ts)
    return "%04d-%02d-%02d %02d%02d" % (d.year, d.month, d.day, d.hour, d.minute)


def fmt(ts):
    return "%s (%d)" % (utc_minute(ts), ts)


# --- on the server --------------------------------------------------------------

def sloppy_message(i, value):
    date = "" if value is None else "Date: %s\r\n" % value
    return ("From: Dates <dt@%s>\r\nTo: alice@mailfs.test\r\nSubject: date case %02d\r\n"
            "%sMessage-ID: <%s-%d@%s>\r\n\r\ncase %d\r\n" % (
                DOMAIN, i, date, TAG, i, DOMAIN, i)).encode()


def append(m, folder, raws):
    """APPEND each message with its own INTERNALDATE: [uid] in order."""
    uids = []
    for i, raw in enumerate(raws):
        idate = IDATE0 + datetime.timedelta(seconds=3660 * i)
        typ, data = m.append(it.wire_name(folder), None, idate, raw)
        it.check(typ, data, "APPEND to " + folder)
        mo = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0] or b"")
        if not mo:
            raise RuntimeError("no APPENDUID: %r" % data)
        uids.append(int(mo.group(1)))
    return uids


def seeded_files():
    """Each message file seed.tsv names, once, in manifest order."""
    seen = []
    for r in seed.read_manifest(os.path.join(REPO_ROOT, "tests", "data", "seed.tsv")):
        if r["file"] and r["file"] not in seen:
            seen.append(r["file"])
    return seen


def setup():
    """Both folders made and filled: {folder: {uid: what}}."""
    files = seeded_files()
    raws = []
    for f in files:
        with open(f, "rb") as fh:
            raws.append(fh.read())
    m = it.connect(H, "alice")
    try:
        it.create_folders(m, [TAG, DATA])
        s_uids = append(m, TAG, [sloppy_message(i, v) for i, (_, v) in enumerate(SLOPPY)])
        d_uids = append(m, DATA, raws)
    finally:
        m.logout()
    return {TAG: {u: SLOPPY[i][0] for i, u in enumerate(s_uids)},
            DATA: {u: os.path.relpath(files[i], os.path.join(REPO_ROOT, "tests", "data"))
                   for i, u in enumerate(d_uids)}}


def server_view(folder):
    """{uid: (raw, INTERNALDATE)} of a folder, per imaplib."""
    m = it.connect(H, "alice")
    try:
        meta = it.folder_meta(m, folder)
        return {u: (it.fetch_raw(m, u), int(d["internaldate"])) for u, d in meta.items()}
    finally:
        m.logout()


# --- the checks -------------------------------------------------------------------

def seen_in_mount(root, folder, uid):
    """(mtime, the name's date) of the UID's .eml, or a string saying why not."""
    name = by_uid(root, folder).get(uid)
    if name is None:
        return "no .eml for UID %d" % uid
    mo = NAME_RE.match(name)
    if not mo:
        return "name %r does not start with 'YYYY-MM-DD HHMM'" % name
    try:
        st = os.stat(os.path.join(root, folder, name))
    except OSError as e:
        return "stat: %s" % e
    return int(st.st_mtime), mo.group(1)


def compare(root, folder, uid, raw, idate):
    """None when the file shows an instant wanted() allows, else why not."""
    want, value = wanted(raw, idate)
    got = seen_in_mount(root, folder, uid)
    if isinstance(got, str):
        return got
    mtime, day = got
    if mtime in want and day == utc_minute(mtime):
        return None
    return "Date %r: mtime %s, name date %s; want %s" % (
        None if value is None else str(value), fmt(mtime), day,
        " or ".join(fmt(t) for t in sorted(want)))


def check_sloppy(root, cases):
    view = server_view(TAG)
    for uid, what in sorted(cases.items()):
        raw, idate = view[uid]
        want, value = wanted(raw, idate)
        raw_python = date_instant(None if value is None else str(value))
        note = ""
        if raw_python not in want and not (raw_python is None and idate in want):
            note = " (comments removed; python on the whole value: %s)" % (
                "none" if raw_python is None else fmt(raw_python))
        src = "INTERNALDATE" if want == {idate} else "python's instant"
        why = compare(root, TAG, uid, raw, idate)
        C.check(why is None, "sloppy: %s: mtime and name date are %s%s" % (what, src, note),
                why)


def check_data(root, files):
    view = server_view(DATA)
    probs = []
    for uid, f in sorted(files.items()):
        why = compare(root, DATA, uid, *view[uid])
        if why:
            probs.append("%s: %s" % (f, why))
    C.problems(probs, "data: each of the %d message files of seed.tsv has python's instant "
               "(INTERNALDATE without one) as mtime and name date" % len(files))


def check_import(root):
    """cp of the issue's example into the folder: its INTERNALDATE."""
    mid = "%s-import@%s" % (TAG, DOMAIN)
    raw = ("From: Dates <dt@%s>\r\nTo: alice@mailfs.test\r\nSubject: imported\r\n"
           "Date: %s\r\nMessage-ID: <%s>\r\n\r\ncopied in\r\n" % (DOMAIN, EXAMPLE, mid)).encode()
    src = os.path.join(RUN, "import.eml")
    with open(src, "wb") as f:
        f.write(raw)
    rc, err = run_as_owner(["cp", "--", src, os.path.join(root, TAG) + "/"])
    if not C.check(rc == 0, "import: cp of a message with Date %r into the folder" % EXAMPLE, err):
        return

    def appended():
        with it.session(H) as m:
            it.select(m, TAG)
            uids = it.search_mid(m, mid)
            if len(uids) != 1:
                return None
            return int(it.folder_meta(m, TAG)[uids[0]]["internaldate"])

    got = wait_for(appended, IMPORT_TIMEOUT, 0.5)
    want = date_instant(EXAMPLE)
    C.check(got == want, "import: the appended message's INTERNALDATE is python's instant "
            "of its Date", "INTERNALDATE %s, want %s" % (
                "none within %d s" % IMPORT_TIMEOUT if got is None else fmt(got), fmt(want)))


def main():
    if not ready(C, BIN, RUN):
        return 1
    write_alice_config(RUN, H, ACCOUNT)
    it.remove_test_mail(H, None, OURS_RE, " (left by an earlier run)")
    mnt = None
    try:
        try:
            made = setup()
        except Exception as e:      # noqa: BLE001
            C.fail("make our folders and messages with imaplib", "%s: %s" % (
                type(e).__name__, e))
            return C.summary()
        mnt = mount_own_dirs(BIN, RUN, ACCOUNT, "dates",
                             ["-o", "poll_interval=3600,idle_folders=0"], MOUNT_TIMEOUT)
        if not C.check(mnt.ok, "mount", mnt.error):
            return C.summary()
        root = mnt.mountpoint
        ok = wait_for(lambda: all(len(emls(root, f)) == len(u) for f, u in made.items()),
                      SYNC_TIMEOUT)
        if not C.check(ok, "both folders list all their messages", {
                f: "%d of %d" % (len(emls(root, f)), len(u)) for f, u in made.items()}):
            return C.summary()
        C.parts(lambda: check_sloppy(root, made[TAG]), lambda: check_data(root, made[DATA]),
                lambda: check_import(root))
    finally:
        if mnt is not None and mnt.ok:
            unmount_and_check(C, mnt, "dates", [mnt.log], "the daemon's output or log")
        it.remove_test_mail(H, None, OURS_RE)
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
