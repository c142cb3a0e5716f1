#!/usr/bin/env python3
"""test_read.py - mount alice's account with the real mailfs binary and
compare what plain file operations see with what an independent IMAP client
(imaplib + the email package) sees on the same server.

Needs the private servers from tests/harness/start.sh, seeded by seed.py.
Runs against Dovecot, or the server $MAILFS_TEST_SERVER names (cyrus,
courier: seed.py --server), folders named by their mount paths
(imaptest's "Folder names"); what it expects is what that server holds.
Dovecot only (a "# not on SERVER" line elsewhere): that Dovecot's log calls
the STARTTLS logins TLS, and Dovecot restarted with few capabilities (on
Courier, which lacks them, every mount here uses those fallbacks).
Environment (MAILFS_BIN, MAILFS_TEST_DIR, MAILFS_TEST_LABEL,
MAILFS_TEST_SERVER), output: mounttest.py.
"""

import base64
import calendar
import email
import email.errors
import email.header
import email.parser
import email.policy
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (SERVERS, Mount, REPO_ROOT, check_mount, date_instant, emls,  # noqa: E402
                       file_size, files_holding, first_diff, imaptest as it, mailfs_env, mounted, not_on,
                       password_forms, proc_cmdlines, ready, run_harness, run_once,
                       raw_header, sanitizer_reports, server_of, setup_test, tail,
                       write_config_file)

BIN, LABEL, C, H, RUN = setup_test("read", SERVERS)
PW = it.password(H, "alice")
ACCOUNT = "alice@test"
MOUNT_TIMEOUT = 90
SYNC_TIMEOUT = 120

NAME_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d{4}) (.*) \[(\d+)\]\.eml$", re.S)
CTRL_RE = re.compile("[\x00-\x1f\x7f]")


# --- the independent view ---------------------------------------------------

class Msg:
    """One message as the server and the email package see it."""

    def __init__(self, folder, meta, raw):
        self.folder = folder
        self.uid = meta["uid"]
        self.flags = meta["flags"]
        self.size = meta["size"]
        self.internaldate = int(meta["internaldate"])
        self.raw = raw
        self.email = email.message_from_bytes(raw, policy=email.policy.default)
        hdr = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
            raw, headersonly=True)
        self.message_id = (hdr.get("Message-ID") or "").strip().strip("<>") or None
        self.message_ids = {self.message_id or ""}
        # The file time: the Date header, else INTERNALDATE.  For messages
        # whose header block python calls broken, a Date (Message-ID) line
        # found further down is accepted too (which reading is right is not
        # ours to say).
        ts = date_instant(hdr.get("Date"))
        self.mtimes = {ts if ts is not None else self.internaldate}
        if any(isinstance(d, (email.errors.MissingHeaderBodySeparatorDefect,
                              email.errors.InvalidHeaderDefect))
               for d in self.email.defects):
            alt = date_instant(raw_header(raw, b"Date"))
            if alt is not None:
                self.mtimes.add(alt)
            self.message_ids.add((raw_header(raw, b"Message-ID") or "").strip().strip("<>"))

    def __repr__(self):
        return "%s/%d" % (self.folder, self.uid)




def snapshot():
    """Folders (name -> LIST flags) and messages (name -> {uid: Msg})."""
    m = it.connect(H, "alice")
    try:
        folders = {n: f for n, f, _ in it.list_folders(m)}
        msgs = {}
        for name, flags in folders.items():
            if "\\Noselect" in flags or "\\NonExistent" in flags:
                continue
            meta = it.folder_meta(m, name)
            msgs[name] = {uid: Msg(name, md, it.fetch_raw(m, uid))
                          for uid, md in meta.items()}
        return folders, msgs
    finally:
        m.logout()


def server_flags():
    m = it.connect(H, "alice")
    try:
        res = {}
        for name, flags, _ in it.list_folders(m):
            if "\\Noselect" in flags or "\\NonExistent" in flags:
                continue
            res[name] = {u: d["flags"] for u, d in it.folder_meta(m, name).items()}
        return res
    finally:
        m.logout()


# --- what names should look like (names.h contract) -------------------------

def clean_component(s, fallback="", maxlen=255):
    """Reference for names_component(): basename, controls to space, runs of
    spaces collapsed, outer spaces and leading dots removed, byte cap."""
    s = re.split(r"[/\\]", s)[-1]
    s = CTRL_RE.sub(" ", s)
    s = re.sub(r"\s+", " ", s)
    prev = None
    while prev != s:
        prev = s
        s = s.strip(" ").lstrip(".")
    b = s.encode("utf-8")[:maxlen]
    s = b.decode("utf-8", "ignore").rstrip(" ")
    if s in ("", ".", ".."):
        s = fallback
    return s


def name_matcher(expected):
    """Matches `expected` or the names_unique() variants "stem (N).ext"."""
    dot = expected.rfind(".")
    stem, ext = (expected[:dot], expected[dot:]) if dot > 0 else (expected, "")
    rx = re.compile(re.escape(stem) + r"( \(\d+\))?" + re.escape(ext) + "$")
    return lambda n: bool(rx.match(n)) or n == expected


def leaves(part, depth=0):
    """Leaf parts in order, not descending into message/* parts."""
    if part.get_content_maintype() == "multipart" and depth < 50:
        sub = part.get_payload()
        if isinstance(sub, list):
            for s in sub:
                yield from leaves(s, depth + 1)
            return
    yield part


def raw_children(raw, boundary):
    """Raw bytes (headers + body) of a top-level multipart's direct parts."""
    body_at = raw.find(b"\r\n\r\n")
    if body_at < 0 or not boundary:
        return None
    delim = b"\r\n--" + boundary.encode("ascii", "replace")
    chunks = raw[body_at + 2:].split(delim)
    parts = []
    for c in chunks[1:]:
        if c.startswith(b"--"):
            return parts
        nl = c.find(b"\r\n")
        if nl < 0:
            return None
        parts.append(c[nl + 2:])
    return None          # never closed: do not guess


def transfer_ok(part):
    """False when the part's transfer encoding is broken (bad base64, bad
    quoted-printable escapes): decoding it is guesswork, not compared."""
    cte = str(part.get("Content-Transfer-Encoding") or "").strip().lower()
    payload = part.get_payload(decode=False)
    if not isinstance(payload, str):
        return True
    if cte == "base64":
        try:
            base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
        except ValueError:
            return False
    elif cte == "quoted-printable":
        if re.search(r"=(?![0-9A-Fa-f]{2})(?![ \t]*(\r?\n|$))", payload):
            return False
    return True


def text_of(part):
    """A text part decoded strictly to UTF-8 with LF line ends, or None
    when that needs guessing (unknown charset, bytes invalid in the charset,
    broken transfer encoding).  mailfs writes body text with LF line ends
    (the local form of text, RFC 2049); CRLF is accepted too."""
    if part.defects or not transfer_ok(part):
        return None
    data = part.get_payload(decode=True)
    if data is None:
        return None
    try:
        text = data.decode(part.get_content_charset() or "us-ascii")
    except (LookupError, UnicodeDecodeError):
        return None
    return text.encode("utf-8").replace(b"\r\n", b"\n")


def same_text(got, want, html=False):
    """got is want, in LF or CRLF form; HTML may start with a UTF-8 BOM
    (mailfs(1): so a browser does not believe a stale <meta charset>)."""
    if html and got.startswith(b"\xef\xbb\xbf"):
        got = got[3:]
    return got == want or got == want.replace(b"\n", b"\r\n")


def is_body_candidate(p, ctype):
    try:
        return (p.get_content_type() == ctype and not p.is_attachment()
                and not p.get_filename())
    except Exception:
        return False


def expected_decoded(msg):
    """(body_txt_part, body_html_part, [(desc, matcher, bytes_or_None,
    text_type_or_None)]): the body parts, then every other leaf."""
    top = msg.email
    lv = list(leaves(top))
    body = next((p for p in lv if is_body_candidate(p, "text/plain")), None)
    html = next((p for p in lv if is_body_candidate(p, "text/html")), None)
    kids = None
    if top.get_content_maintype() == "multipart" and not top.defects:
        kids = raw_children(msg.raw, top.get_boundary())
    top_parts = top.get_payload() if top.is_multipart() else []
    parts = []
    for i, p in enumerate(lv):
        if p is body or p is html:
            continue
        try:
            fname = p.get_filename()
        except Exception:
            fname = None
        if p.get_content_maintype() == "message":
            content = None
            if (p.get_content_subtype() == "rfc822" and kids is not None
                    and isinstance(top_parts, list) and len(kids) == len(top_parts)):
                for k, tp in enumerate(top_parts):
                    if tp is p:
                        sep = kids[k].find(b"\r\n\r\n")
                        content = kids[k][sep + 4:] if sep >= 0 else None
            inner = p.get_payload(0) if p.is_multipart() else None
            subj = str(inner["subject"]) if inner is not None and inner["subject"] else ""
            if fname:
                match = name_matcher(clean_component(fname))
            elif clean_component(subj):
                match = name_matcher(clean_component(subj, maxlen=251) + ".eml")
            else:
                match = lambda n: n.endswith(".eml")  # noqa: E731
            parts.append(("message part %d (%s)" % (i + 1, subj or fname), match, content, None))
            continue
        if fname and clean_component(fname):
            match = name_matcher(clean_component(fname))
            desc = "attachment %r" % fname
        else:
            match = re.compile(r"^part\d+(\.[A-Za-z0-9_+-]+)?( \(\d+\))?$").match
            desc = "unnamed %s part %d" % (p.get_content_type(), i + 1)
        if (not fname and not p.is_attachment()
                and p.get_content_type() in ("text/plain", "text/html")):
            # an inline text part that is not the body: text, like the body
            parts.append((desc, match, text_of(p), p.get_content_type()))
        else:
            content = None if p.defects or not transfer_ok(p) else p.get_payload(decode=True)
            parts.append((desc, match, content, None))
    return body, html, parts


# --- reading the mount -------------------------------------------------------

def listing(root):
    """Every path under root (relative, '/' suffix for dirs), sorted."""
    res = []
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        for n in dirs:
            res.append(os.path.normpath(os.path.join(rel, n)) + "/")
        for n in files:
            res.append(os.path.normpath(os.path.join(rel, n)))
    return sorted(res)


def wait_synced(root, folders, msgs, timeout=SYNC_TIMEOUT):
    """Wait until the tree shows every folder and message count (mounting
    does not wait for a full sync).  Returns seconds taken or None."""
    want_top = {n.split("/")[0] for n in folders}
    t0 = time.time()
    while True:
        try:
            top = {e for e in os.listdir(root) if not e.startswith(".") and e != "outbox"}
            if top == want_top and all(len(emls(root, f)) == len(u) for f, u in msgs.items()):
                return time.time() - t0
        except OSError:
            pass
        if time.time() - t0 > timeout:
            return None
        time.sleep(0.25)


def xattr(path, name):
    try:
        return os.getxattr(path, name).decode("utf-8", "replace")
    except OSError:
        return None


def check_tree(root, folders, msgs):
    want_top = sorted({n.split("/")[0] for n in folders})
    try:
        got_top = sorted(e for e in os.listdir(root) if not e.startswith(".") and e != "outbox")
    except OSError as e:
        got_top = "listdir failed: %s" % e
    C.equal(got_top, want_top, "top-level directories are the server's folders (UTF-8 names), "
            "besides mailfs's own outbox/")
    C.check(os.path.isdir(os.path.join(root, "outbox")), "outbox/ is a directory at the mount root")
    probs = []
    for name, flags in sorted(folders.items()):
        path = os.path.join(root, name)
        if not os.path.isdir(path):
            probs.append("%s: not a directory" % name)
            continue
        entries = set(os.listdir(path))
        subdirs = {e for e in entries
                   if os.path.isdir(os.path.join(path, e)) and e + ".eml" not in entries}
        want = {n[len(name) + 1:].split("/")[0] for n in folders if n.startswith(name + "/")}
        if subdirs != want:
            probs.append("%s: sub-folders %s, server has %s" % (name, sorted(subdirs), sorted(want)))
        if "\\Noselect" in flags:
            if any(e.endswith(".eml") for e in entries):
                probs.append("%s: \\Noselect folder has .eml files" % name)
            if entries - want:
                probs.append("%s: \\Noselect folder has entries %s" % (name, sorted(entries - want)))
    C.problems(probs, "every folder is a directory with the server's sub-folders; \\Noselect ones hold only folders")
    C.check(os.path.isdir(os.path.join(root, "Archive", "2024")),
            "nested folder Archive/2024 is a directory inside Archive")
    C.check(os.path.isdir(os.path.join(root, "Lists")) and not emls(root, "Lists")
            and os.path.isdir(os.path.join(root, "Lists", "notmuch")),
            "parent Lists (no messages: \\Noselect, or an empty folder) is a directory "
            "holding notmuch/")
    C.check(os.path.isdir(os.path.join(root, "Café Ünïcode")),
            "non-ASCII folder appears as 'Café Ünïcode'", "got %s" % got_top)


def check_messages(root, msgs):
    """Name/UID mapping, sizes (stat before read), bytes, mtime, xattrs.
    Returns {folder: {uid: filename}}."""
    names = {}
    for folder, bymsg in sorted(msgs.items()):
        files = sorted(emls(root, folder))
        C.equal(len(files), len(bymsg), "%s: number of .eml files equals messages on the server" % folder)
        byuid, bad_names = {}, []
        for f in files:
            mo = NAME_RE.match(f)
            if not mo:
                bad_names.append("%r does not match the name pattern" % f)
                continue
            byuid.setdefault(int(mo.group(3)), []).append(f)
        probs = ["UID %d has no .eml" % u for u in sorted(set(bymsg) - set(byuid))]
        probs += ["%s: no such UID on the server" % byuid[u] for u in sorted(set(byuid) - set(bymsg))]
        probs += ["UID %d has %d files" % (u, len(v)) for u, v in byuid.items() if len(v) > 1]
        C.problems(bad_names + probs, "%s: names match '<date> <time> ... [<uid>].eml' with the server's UIDs" % folder)
        names[folder] = {u: v[0] for u, v in byuid.items() if u in bymsg}

        hyg = []
        for f in os.listdir(os.path.join(root, folder)):
            try:
                blen = len(f.encode("utf-8"))
            except UnicodeEncodeError:
                hyg.append("%r is not valid UTF-8" % f)
                continue
            if "/" in f or CTRL_RE.search(f) or f.startswith(".") or blen > 255:
                hyg.append(repr(f))
        C.problems(hyg, "%s: no name has '/', control characters, a leading '.' or over 255 bytes" % folder)

        # Phase 1: stat everything before anything is read.
        stats = {}
        for u, f in names[folder].items():
            try:
                stats[u] = os.stat(os.path.join(root, folder, f))
            except OSError as e:
                stats[u] = e
        sz, dt = [], []
        for u, st in sorted(stats.items()):
            m = bymsg[u]
            if isinstance(st, OSError):
                sz.append("UID %d: stat: %s" % (u, st))
                continue
            if st.st_size != m.size:
                sz.append("UID %d: st_size %d, RFC822.SIZE %d" % (u, st.st_size, m.size))
            if int(st.st_mtime) not in m.mtimes:
                dt.append("UID %d: mtime %s, want %s" % (u, fmt_ts(st.st_mtime),
                                                          " or ".join(fmt_ts(t) for t in m.mtimes)))
            mo = NAME_RE.match(names[folder][u])
            if mo.group(1) not in {time.strftime("%Y-%m-%d %H%M", time.gmtime(t)) for t in m.mtimes}:
                dt.append("UID %d: name date %s, want %s" % (u, mo.group(1), fmt_ts(min(m.mtimes))))
        C.problems(sz, "%s: st_size before reading equals the server's RFC822.SIZE" % folder)
        C.problems(dt, "%s: mtime and name date are the Date header in UTC (INTERNALDATE without one)" % folder)

        # Phase 2: read and compare with BODY.PEEK[].
        rd = []
        for u, f in sorted(names[folder].items()):
            try:
                with open(os.path.join(root, folder, f), "rb") as fh:
                    data = fh.read()
            except OSError as e:
                rd.append("UID %d: read: %s" % (u, e))
                continue
            want = bymsg[u].raw
            st = stats[u]
            if data != want:
                rd.append("UID %d: %d bytes differ from the server's %d (first difference at %d)" % (
                    u, len(data), len(want), first_diff(data, want)))
            elif not isinstance(st, OSError) and st.st_size != len(data):
                rd.append("UID %d: st_size %d but %d bytes read" % (u, st.st_size, len(data)))
        C.problems(rd, "%s: every .eml is byte-identical to BODY.PEEK[] and as long as st_size" % folder)

        xa = []
        for u, f in sorted(names[folder].items()):
            p = os.path.join(root, folder, f)
            m = bymsg[u]
            v = xattr(p, "user.mail.uid")
            if v != str(u):
                xa.append("UID %d: user.mail.uid=%r" % (u, v))
            v = xattr(p, "user.mail.flags")
            if set((v or "").split()) - {"\\Recent"} != m.flags:
                xa.append("UID %d: user.mail.flags=%r, server %s" % (u, v, sorted(m.flags)))
            v = xattr(p, "user.mail.message-id")
            if (v or "").strip().strip("<>") not in m.message_ids:
                xa.append("UID %d: user.mail.message-id=%r, want %s" % (u, v, " or ".join(map(repr, m.message_ids))))
            v = xattr(p, "user.mail.folder")
            if v != it.server_name(folder):
                xa.append("UID %d: user.mail.folder=%r, want %r" % (u, v, it.server_name(folder)))
        C.problems(xa, "%s: xattrs user.mail.uid/flags/message-id/folder match the server" % folder)
    return names


def fold(s):
    """Whitespace runs to one space, none at the ends (as mime_summary)."""
    return " ".join(s.split())


def index_expect(m):
    """(sender, subject) the index should hold for m, or None when the
    header is one a parser may read either way (defects, raw 8-bit bytes,
    no or several From/Subject lines): not compared."""
    head = m.raw.split(b"\r\n\r\n", 1)[0]
    if any(b > 0x7f for b in head):
        return None
    hdr = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
        m.raw, headersonly=True)
    if hdr.defects or len(hdr.get_all("From") or []) > 1 or len(hdr.get_all("Subject") or []) > 1:
        return None
    subject = hdr.get("Subject")
    if subject is not None:
        subject = fold(str(email.header.make_header(email.header.decode_header(subject))))
    sender = None
    if hdr.get("From") is not None:
        try:
            addrs = m.email["From"].addresses
        except (AttributeError, IndexError, ValueError, TypeError):
            return None
        if m.email["From"].defects:
            return None
        for a in addrs:
            name = fold(a.display_name or "")
            sender = name or a.addr_spec or None
            break
    return sender, subject


def index_path():
    """The first mount's index (account alice@test, cache under RUN)."""
    paths = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(RUN, "cache"))
             for f in fs if f == "index.sqlite"]
    return paths[0] if len(paths) == 1 else None


def check_index(msgs, what=""):
    """The index's messages table, read with python's sqlite3 while the
    mount runs: sender, subject and internaldate of each row against the
    server (INTERNALDATE) and the email package (From, decoded Subject)."""
    path = index_path()
    if not C.check(path, what + "one index.sqlite under the cache directory"):
        return
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
        try:
            cols = {r[1] for r in db.execute("PRAGMA table_info(messages)")}
            wires = dict(db.execute("SELECT id, wire FROM folders WHERE wire IS NOT NULL"))
            rows = db.execute("SELECT folder, uid, sender, subject, internaldate"
                              " FROM messages").fetchall()
        finally:
            db.close()
    except sqlite3.Error as e:
        C.fail("read index.sqlite with python's sqlite3", str(e))
        return
    C.check({"sender", "subject", "internaldate"} <= cols,
            what + "index messages table has sender, subject, internaldate columns", sorted(cols))
    byname = {w: i for i, w in wires.items()}
    got = {(f, u): (snd, sub, idate) for f, u, snd, sub, idate in rows}
    idates, texts, compared, encoded = [], [], 0, 0
    for folder, bymsg in sorted(msgs.items()):
        fid = byname.get(it.wire_form(folder))
        for uid, m in sorted(bymsg.items()):
            row = got.get((fid, uid))
            if row is None:
                idates.append("%s/%d: no row" % (folder, uid))
                continue
            if row[2] != m.internaldate:
                idates.append("%s/%d: internaldate %r, server %d" % (folder, uid, row[2], m.internaldate))
            want = index_expect(m)
            if want is None:
                continue
            compared += 1
            encoded += b"=?" in m.raw.split(b"\r\n\r\n", 1)[0]
            if (row[0], row[1]) != want:
                texts.append("%s/%d: (%r, %r), want (%r, %r)" % (folder, uid, row[0], row[1], *want))
    C.problems(idates, what + "every index row's internaldate is the server's INTERNALDATE")
    C.problems(texts, what + "index sender/subject equal the email package's From (display name, else "
               "address) and decoded Subject (%d clean headers, %d with encoded words)" % (compared, encoded))
    C.check(compared >= 20 and encoded >= 2, what + "enough clean headers compared",
            "%d compared, %d with encoded words" % (compared, encoded))


def make_old_index():
    """Turn the (unmounted) index back into the previous version's schema,
    as an index made before sender, subject and internaldate were kept.
    Returns {(folder id, uid): name} of its rows, or None."""
    path = index_path()
    if not C.check(path, "old index: one index.sqlite under the cache directory"):
        return None
    try:
        db = sqlite3.connect(path, timeout=10)
        try:
            db.execute("DROP INDEX IF EXISTS messages_unfilled")
            for col in ("sender", "subject", "internaldate"):
                db.execute("ALTER TABLE messages DROP COLUMN %s" % col)
            db.commit()
            return {(f, u): n for f, u, n in db.execute("SELECT folder, uid, name FROM messages")}
        finally:
            db.close()
    except sqlite3.Error as e:
        C.fail("rewrite the index to the previous schema", str(e))
        return None


def wait_filled(names_before, timeout=SYNC_TIMEOUT):
    """Wait until the mount has upgraded the index and its sync filled every
    row in; then its names must be the ones the old index had."""
    path = index_path()
    t0, left, err = time.time(), None, ""
    while path and time.time() - t0 < timeout:
        try:
            db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
            try:
                left = db.execute("SELECT count(*) FROM messages WHERE internaldate IS NULL"
                                  ).fetchone()[0]
                names = {(f, u): n for f, u, n in db.execute("SELECT folder, uid, name FROM messages")}
            finally:
                db.close()
            if left == 0:
                break
        except sqlite3.Error as e:
            err = str(e)       # e.g. no such column before the upgrade
        time.sleep(0.25)
    if not C.check(left == 0, "old index: upgraded on mount and every row filled in by the sync "
                   "within %d s" % timeout, "%s rows unfilled %s" % (left, err)):
        return
    C.check(names == names_before, "old index: no message changed its name",
            diff(["%s/%s %s" % (k[0], k[1], v) for k, v in names_before.items()],
                 ["%s/%s %s" % (k[0], k[1], v) for k, v in names.items()]))


def fmt_ts(t):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def check_decoded(root, msgs, names):
    for folder, bymsg in sorted(msgs.items()):
        exist, sizes, bodies, parts = [], [], [], []
        for u, f in sorted(names[folder].items()):
            d = os.path.join(root, folder, f[:-4])
            if not os.path.isdir(d):
                exist.append("UID %d: no directory %r" % (u, f[:-4]))
                continue
            try:
                entries = os.listdir(d)
                sts = {e: os.lstat(os.path.join(d, e)) for e in entries}
            except OSError as e:
                exist.append("UID %d: %s" % (u, e))
                continue
            content = {}
            for e, st in sts.items():
                if not os.path.isfile(os.path.join(d, e)):
                    parts.append("UID %d: %r is not a regular file" % (u, e))
                    continue
                with open(os.path.join(d, e), "rb") as fh:
                    content[e] = fh.read()
                if st.st_size != len(content[e]):
                    sizes.append("UID %d %r: st_size %d, read %d" % (u, e, st.st_size, len(content[e])))
            body, html, want = expected_decoded(bymsg[u])
            for fname, part in (("body.txt", body), ("body.html", html)):
                if part is None:
                    if fname in content:
                        bodies.append("UID %d: %s but the message has no such body part" % (u, fname))
                    continue
                if fname not in content:
                    bodies.append("UID %d: no %s" % (u, fname))
                    continue
                exp = text_of(part)
                if exp is None:
                    try:
                        content[fname].decode("utf-8")
                    except UnicodeDecodeError:
                        bodies.append("UID %d: %s is not UTF-8" % (u, fname))
                elif not same_text(content[fname], exp, fname == "body.html"):
                    bodies.append("UID %d: %s differs from the decoded part (%d vs %d bytes, at %d)" % (
                        u, fname, len(content[fname]), len(exp), first_diff(content[fname], exp)))
            unused = {e for e in content if e not in ("body.txt", "body.html")}
            for desc, match, data, text in want:
                cands = [e for e in sorted(unused) if match(e) and (
                    data is None or (same_text(content[e], data, text == "text/html")
                                     if text else content[e] == data))]
                if cands:
                    unused.discard(cands[0])
                    continue
                named = [e for e in sorted(unused) if match(e)]
                if named:
                    parts.append("UID %d: %s: %r has %d bytes, want %d identical bytes" % (
                        u, desc, named[0], len(content[named[0]]), len(data)))
                else:
                    parts.append("UID %d: %s: no matching file among %s" % (u, desc, sorted(unused)))
            for e in sorted(unused):
                parts.append("UID %d: unexpected file %r" % (u, e))
        C.problems(exist, "%s: every message has its decoded directory" % folder)
        C.problems(sizes, "%s: every decoded part's st_size equals its bytes" % folder)
        C.problems(bodies, "%s: body.txt/body.html are the decoded text parts in UTF-8" % folder)
        C.problems(parts, "%s: attachments and nested messages have decoded names and bytes" % folder)


def find_mid(msgs, names, mid):
    for folder, bymsg in msgs.items():
        for u, m in bymsg.items():
            if m.message_id == mid and u in names.get(folder, {}):
                return folder, u, names[folder][u], m
    return None


def check_specials(root, msgs, names):
    """Hand-made messages whose exact outcome is known."""
    def get(mid, what):
        r = find_mid(msgs, names, mid)
        if r is None:
            C.fail(what, "message <%s> not found in the tree" % mid)
        return r

    def ddir(r):
        return os.path.join(root, r[0], r[2][:-4])

    def files(r):
        try:
            return set(os.listdir(ddir(r)))
        except OSError:
            return set()

    def read(r, n):
        try:
            with open(os.path.join(ddir(r), n), "rb") as f:
                return f.read()
        except OSError as e:
            return "error: %s" % e

    w = "name is '2024-01-15 0930 Bob Example - Plain text greeting [uid].eml'"
    r = get("plain-01@mailfs.test", w)
    if r:
        C.equal(r[2], "2024-01-15 0930 Bob Example - Plain text greeting [%d].eml" % r[1], w)
    w = "Date -0500 late on 31 Dec 2024 is named in UTC '2025-01-01 0430'"
    r = get("timezone-15@mailfs.test", w)
    if r:
        C.check(r[2].startswith("2025-01-01 0430 Kim - New Year in New York ["), w, repr(r[2]))
    for mid, when, what in (("nodate-11@mailfs.test", "2021-06-15 06:30:00", "without Date"),
                            ("bad-date-20@mailfs.test", "2022-02-22 22:22:22", "with an unparsable Date")):
        w = "message %s gets INTERNALDATE %s as mtime and name date" % (what, when)
        r = get(mid, w)
        if r:
            ts = calendar.timegm(time.strptime(when, "%Y-%m-%d %H:%M:%S"))
            mt = int(os.stat(os.path.join(root, r[0], r[2])).st_mtime)
            C.check(mt == ts and r[2].startswith(time.strftime("%Y-%m-%d %H%M ", time.gmtime(ts))),
                    w, "mtime %s, name %r" % (fmt_ts(mt), r[2]))
    w = "RFC 2047 UTF-8 B subject and sender are decoded in the name"
    r = get("rfc2047-05@mailfs.test", w)
    if r:
        C.check("Élodée Dürer - Ünïcödé subject — 日本語 ✓ [" in r[2], w, repr(r[2]))
    w = "RFC 2047 ISO-8859-1 Q subject is decoded in the name and body.txt is UTF-8"
    r = get("rfc2047-06@mailfs.test", w)
    if r:
        body = read(r, "body.txt")
        C.check("François Pâtissier - Café crème brûlée [" in r[2] and isinstance(body, bytes) and
                same_text(body, "Crème brûlée, s'il vous plaît. Latin-1 body, quoted-printable.\n".encode()),
                w, "%r / %r" % (r[2], read(r, "body.txt")))
    w = "windows-1252 body.txt is converted to UTF-8"
    r = get("cp1252-23@mailfs.test", w)
    if r:
        body = read(r, "body.txt")
        C.check(isinstance(body, bytes) and
                same_text(body, "“Smart quotes” cost € 5 – in windows-1252.\n".encode()), w, repr(body))
    w = "RFC 2231 / 2047 attachment names are decoded"
    r = get("rfc2231-07@mailfs.test", w)
    if r:
        want = {"Übersicht € 2024.txt", "Sehr lange Dateiä.csv", "Prüfbericht.pdf", "ärger.txt"}
        C.check(want <= files(r), w, "missing %s in %s" % (sorted(want - files(r)), sorted(files(r))))
    w = "nested message/rfc822 is '<subject>.eml' with its raw bytes"
    r = get("nested-08@mailfs.test", w)
    if r:
        inner = open(os.path.join(REPO_ROOT, "tests/data/mailfs/08-nested-rfc822.eml"), "rb").read()
        inner = inner[inner.index(b"From: Frank Inner"):inner.index(b"\n--outer-08--")]
        inner = inner.replace(b"\n", b"\r\n")
        C.equal(read(r, "Inner message: quarterly numbers.eml"), inner, w)
    w = "hostile attachment names stay inside the message directory"
    r = get("hostile-09@mailfs.test", w)
    if r:
        fs = files(r)
        want = {"passwd", "hidden-config", "evil.bat", "dup.txt", "dup (2).txt", "bell and newline.txt"}
        bad = [n for n in fs if "/" in n or n.startswith(".") or CTRL_RE.search(n)]
        escaped = [p for p in ("etc", "passwd", "evil.bat") if os.path.exists(os.path.join(root, r[0], p))]
        C.check(want <= fs and not bad and not escaped
                and read(r, "passwd").startswith(b"root:x:0:0:this is not the real"), w,
                "missing %s, bad %s, escaped %s, have %s" % (sorted(want - fs), bad, escaped, sorted(fs)))
    w = "subject with '/' and control characters gives a clean name"
    r = get("slash-10@mailfs.test", w)
    if r:
        C.check("Q3" in r[2] and "Q4" in r[2] and not CTRL_RE.search(r[2]) and "/" not in r[2]
                and "  " not in r[2], w, repr(r[2]))
    w = "over-long subject is cut to a name of at most 255 bytes keeping '[uid].eml'"
    r = get("long-16@mailfs.test", w)
    if r:
        C.check(len(r[2].encode()) <= 255 and r[2].endswith(" [%d].eml" % r[1])
                and "Ωμέγα Ωμέγα" in r[2], w, "%d bytes: %r" % (len(r[2].encode()), r[2]))
    w = "HTML-only message has body.html and no body.txt"
    r = get("html-only-21@mailfs.test", w)
    if r:
        C.check("body.html" in files(r) and "body.txt" not in files(r), w, sorted(files(r)))
    w = "base64 PDF attachment is decoded byte for byte"
    r = get("pdf-03@mailfs.test", w)
    if r:
        d = read(r, "report.pdf")
        C.check(isinstance(d, bytes) and d.startswith(b"%PDF-1.4\n") and len(d) == 20000 + 58, w,
                "got %r" % (d[:40],))


def check_grep(root, msgs, names):
    for word, fname, what in (("zanzibarquokka", "notes.txt", "a base64 attachment"),
                              ("xylophonequartz", "body.txt", "a base64 text body")):
        w = "grep -rl finds '%s' (only inside %s) in the decoded file and nowhere else" % (word, what)
        r = find_mid(msgs, names, "base64-04@mailfs.test")
        if r is None:
            C.fail(w, "message <base64-04@mailfs.test> not found")
            continue
        want = [os.path.join(root, r[0], r[2][:-4], fname)]
        p = subprocess.run(["grep", "-rl", "--", word, root], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=300)
        got = sorted(os.fsdecode(x) for x in p.stdout.split(b"\n") if x)
        C.check(got == want and p.returncode == 0, w,
                "grep status %d, found %s, want %s, stderr %r" % (p.returncode, got, want, p.stderr[:200]))


def check_seen(before):
    after = server_flags()
    probs = []
    for folder, flags in sorted(before.items()):
        for u, f in sorted(flags.items()):
            g = after.get(folder, {}).get(u)
            if g != f:
                probs.append("%s UID %d: %s -> %s" % (folder, u, sorted(f), sorted(g or [])))
    unseen = sum(1 for fl in before.values() for f in fl.values() if "\\Seen" not in f)
    C.check(unseen >= 10, "the account has unseen messages to test with", "only %d" % unseen)
    C.problems(probs, "reading every file changed no flag on the server (no \\Seen)")


# --- processes, secrets, errors ----------------------------------------------

def write_config(run, closed_port, log_file):
    """Config file with the good account and one section per error case.
    The good account also sets debug and log_file as config keys; so does
    badca@test, whose error must still reach stderr."""
    good_pw = "cat %s" % H["users"]["alice"]["password_file"]
    sections = {
        ACCOUNT: (H["imaps_port"], "implicit", H["ca_file"], good_pw),
        "wrongpw@test": (H["imaps_port"], "implicit", H["ca_file"], "echo not-the-password"),
        "badca@test": (H["imaps_port"], "implicit", H["other_ca_file"], good_pw),
        "closed@test": (closed_port, "implicit", H["ca_file"], good_pw),
        "plain@test": (H["imap_port"], "none", H["ca_file"], good_pw),
    }
    text = ""
    for name, (port, tls, ca, pwcmd) in sections.items():
        text += ("[%s]\nhost = 127.0.0.1\nport = %d\nuser = alice\ntls = %s\n"
                 "ca_file = %s\npassword_command = %s\n" % (name, port, tls, ca, pwcmd))
        if name == ACCOUNT:
            text += "debug = imap:fs:sync\nlog_file = %s\n" % log_file
        if name == "badca@test":
            text += "log_file = %s\n" % os.path.join(run, "badca.log")
        if name == "closed@test":
            # Never mounted: with the index of an earlier mount (the good
            # account's, same user and host) mailfs would mount offline
            # instead, which test_live checks.
            text += "cache_dir = %s\n" % os.path.join(run, "cache-closed")
        text += "\n"
    write_config_file(run, text)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def check_argv(pid):
    bad = [p for p, cmdline in proc_cmdlines() if PW.encode() in cmdline]
    C.check(os.path.exists("/proc/%d" % pid) and not bad,
            "password appears in no process's argv (ps) while mounted",
            "in pid(s) %s" % bad if bad else "daemon pid %d not running" % pid)


def check_no_secrets(paths, what):
    hits, nfiles = files_holding(paths, password_forms("alice", PW))
    C.check(nfiles > 0 and not hits, "password (plain or base64 AUTH forms) appears in none of %s" % what,
            "found in %s" % hits if hits else "no files to search")


def finish_mount(mnt, what, logs=(), sig=None):
    """End a mount with fusermount3 -u, or with a signal to the daemon (as
    Ctrl-C or kill would), and check that it unmounted and exited 0."""
    if sig is None:
        um_ok, rc = mnt.unmount()
        how = "fusermount3 -u unmounts and the daemon exits"
    else:
        rc, still = mnt.interrupt(sig)
        um_ok = not still and rc is not None
        how = "%s to the foreground daemon unmounts and it exits" % signal.Signals(sig).name
        if not um_ok:
            mnt.unmount()
    C.check(um_ok and rc == 0 and not mounted(mnt.mountpoint),
            "%s: %s with status 0" % (what, how),
            "unmounted: %s, exit status %s: %s" % ("yes" if um_ok else "no", rc, tail(mnt.out)))
    rep = sanitizer_reports([mnt.out] + list(logs))
    C.check(not rep, "%s: no sanitizer report in the daemon's output" % what,
            "; ".join("%s: %s" % r for r in rep))


# Exit statuses by cause (mailfs(1) EXIT STATUS; sysexits.h numbers).
EX_USAGE, EX_TEMPFAIL, EX_PROTOCOL, EX_NOPERM, EX_CONFIG = 64, 75, 76, 77, 78


def error_case(what, args, env, want, keywords=None, mountpoint=None):
    mp = mountpoint or os.path.join(RUN, "mnt-error")
    if mountpoint is None:
        os.makedirs(mp, exist_ok=True)
    rc, out, err = run_once(BIN, ["-f"] + args + [mp], env, timeout=60)
    if rc is None and mounted(mp):
        subprocess.run(["fusermount3", "-uz", mp])
    lines = [ln for ln in err.decode("utf-8", "replace").split("\n") if ln.strip()]
    line = lines[0] if lines else ""
    probs = []
    if rc != want:
        probs.append("exit status %s, want %d" % ("timeout" if rc is None else rc, want))
    if len(lines) != 1 or not line.startswith("mailfs: "):
        probs.append("stderr is not one 'mailfs: ...' line: %r" % err[:300])
    if keywords and not re.search(keywords, line, re.I):
        probs.append("message %r does not mention /%s/" % (line, keywords))
    if mounted(mp):
        probs.append("something is mounted")
        subprocess.run(["fusermount3", "-uz", mp])
    if PW in err.decode("utf-8", "replace") + out.decode("utf-8", "replace"):
        probs.append("password printed")
    C.problems(probs, "%s: exit status %d, one clear line on stderr, no mount" % (what, want))


def check_errors(env, cport):
    error_case("wrong password", ["wrongpw@test"], env, EX_NOPERM, r"auth|login|password|credential|reject")
    error_case("untrusted certificate (CA that did not sign it; log_file set)", ["badca@test"], env,
               EX_PROTOCOL, r"certificate|tls|ssl")
    error_case("unreachable server (closed port %d)" % cport, ["closed@test"], env, EX_TEMPFAIL)
    error_case("nonexistent mountpoint", [ACCOUNT], env, EX_USAGE,
               mountpoint=os.path.join(RUN, "no", "such", "dir"))
    error_case("tls=none without allow_plaintext", ["plain@test"], env, EX_CONFIG, r"plaintext")
    error_case("unknown -o option", ["-o", "no_such_option_xyz", ACCOUNT], env, EX_USAGE)
    error_case("unknown account", ["nobody@nowhere"], env, EX_CONFIG)

    rc, out, err = run_once(BIN, ["--version"], env, timeout=30)
    ver = re.search(r"^VERSION\s*=\s*(\S+)", open(os.path.join(REPO_ROOT, "Makefile")).read(), re.M)
    C.check(rc == 0 and ver and ver.group(1).encode() in out + err,
            "--version exits 0 and prints the Makefile's version",
            "status %s, output %r" % (rc, (out + err)[:200]))
    rc, out, err = run_once(BIN, ["--help"], env, timeout=30)
    C.check(rc == 0 and b"usage" in (out + err).lower() and b"-o" in out + err,
            "--help exits 0 and prints usage with options", "status %s, output %r" % (rc, (out + err)[:200]))
    # Every option fs/main.c accepts, by its name in the option table.
    spec = open(os.path.join(REPO_ROOT, "fs", "main.c")).read()
    names = sorted(set(re.findall(r'OPT\("([a-z_0-9]+)', spec)))
    missing = [n for n in names if not re.search(rb"-o %s\b" % n.encode(), out)]
    C.check(len(names) > 20 and not missing,
            "--help names every one of the %d -o options mailfs takes" % len(names),
            "missing: %s" % missing)
    C.check(b"allow_other" in out and b"-s" in out,
            "--help lists FUSE's own options too (allow_other, -s)", out[-300:])


def dovecot_logins(since):
    with open(H["dovecot_log"], "rb") as f:
        f.seek(since)
        data = f.read().decode("utf-8", "replace")
    return [ln for ln in data.splitlines() if "imap-login: Info: Login: user=<alice>" in ln]


def check_fallback(env, base_folders, base_msgs):
    """Restart Dovecot announcing only IMAP4rev1 LITERAL+ IDLE and repeat
    the size and byte checks on two folders with a fresh cache."""
    what = "fallback (server without BINARY/CONDSTORE/...)"
    if not_on(H, "Dovecot restarted announcing only IMAP4rev1 LITERAL+ IDLE (start.sh "
              "DOVECOT_PLAIN_CAPS=1)"):
        return
    ok, out = run_harness(H, "start.sh", plain_caps=True)
    if not C.check(ok, "%s: restart Dovecot with DOVECOT_PLAIN_CAPS=1" % what, out):
        return
    try:
        m = it.connect(H, "alice")
        caps = it.capabilities(m)
        m.logout()
        C.check("BINARY" not in caps and "CONDSTORE" not in caps and "IMAP4REV1" in caps,
                "%s: server really announces only basic capabilities" % what, sorted(caps))
        folders = ("INBOX", "Archive/2024")
        msgs = {f: base_msgs[f] for f in folders}
        envf = dict(env)
        envf["XDG_CACHE_HOME"] = os.path.join(RUN, "cache-fallback")
        mnt = Mount(BIN, ["-o", "log_file=" + os.path.join(RUN, "fallback.log")], ACCOUNT,
                    os.path.join(RUN, "mnt-fallback"), envf, MOUNT_TIMEOUT)
        if not check_mount(C, mnt, "%s: mount" % what):
            return
        try:
            C.check(wait_synced(mnt.mountpoint, base_folders, msgs) is not None,
                    "%s: tree complete within %d s" % (what, SYNC_TIMEOUT))
            for folder in folders:
                probs = []
                bymsg = msgs[folder]
                files = {}
                for f in emls(mnt.mountpoint, folder):
                    mo = NAME_RE.match(f)
                    if mo:
                        files[int(mo.group(3))] = os.path.join(mnt.mountpoint, folder, f)
                stats = {u: os.stat(p) for u, p in files.items()}
                for u, m in sorted(bymsg.items()):
                    if u not in files:
                        probs.append("UID %d missing" % u)
                        continue
                    with open(files[u], "rb") as fh:
                        data = fh.read()
                    if stats[u].st_size != m.size or data != m.raw:
                        probs.append("UID %d: st_size %d, read %d bytes, server %d bytes%s" % (
                            u, stats[u].st_size, len(data), m.size, "" if data == m.raw else ", content differs"))
                C.problems(probs, "%s: %s: st_size before reading and bytes equal the server's" % (what, folder))
        finally:
            finish_mount(mnt, what, [os.path.join(RUN, "fallback.log")])
    finally:
        ok, out = run_harness(H, "start.sh", plain_caps=False)
        C.check(ok, "%s: restart Dovecot with all capabilities again" % what, out)


# --- main --------------------------------------------------------------------

def case_first_mount(env, log1, folders, msgs, flags_before):
    """The tree, messages, decoded parts, grep and flags on a fresh cache:
    the listing, for the mounts that follow."""
    mnt = Mount(BIN, [], ACCOUNT, os.path.join(RUN, "mnt"), env, MOUNT_TIMEOUT)
    if not C.check(mnt.ok, "mount %s from the config file (debug = imap:fs:sync; log_file)"
                   % ACCOUNT, mnt.error):
        mnt.unmount()
        C.fail("tree, messages, decoded parts, grep, flags", "not checked: no mount")
        return None
    try:
        root = mnt.mountpoint
        t = wait_synced(root, folders, msgs)
        C.check(t is not None, "all folders and messages appear within %d s" % SYNC_TIMEOUT,
                "tree still incomplete")
        check_argv(mnt.pid)
        check_tree(root, folders, msgs)
        names = check_messages(root, msgs)
        check_decoded(root, msgs, names)
        check_specials(root, msgs, names)
        check_grep(root, msgs, names)
        check_index(msgs)
        check_seen(flags_before)
        return listing(root)
    finally:
        finish_mount(mnt, "first mount", [log1])


def case_remount(env, log1, folders, msgs, listing1):
    """The warm cache: the same names again."""
    mnt = Mount(BIN, [], ACCOUNT, os.path.join(RUN, "mnt2"), env, MOUNT_TIMEOUT)
    if not C.check(mnt.ok, "remount on the same cache", mnt.error):
        return
    try:
        wait_synced(mnt.mountpoint, folders, msgs)
        l2 = listing(mnt.mountpoint)
        C.check(listing1 is not None and l2 == listing1, "remount lists exactly the same names",
                diff(listing1, l2))
    finally:
        finish_mount(mnt, "remount", [log1])


def case_old_index(env, log1, msgs, listing1):
    """The same cache, its index turned back into the previous version's:
    upgraded in place, filled in, names kept."""
    old_names = make_old_index()
    mnt = Mount(BIN, [], ACCOUNT, os.path.join(RUN, "mnt2b"), env, MOUNT_TIMEOUT)
    if C.check(mnt.ok and old_names, "mount on an index of the previous version", mnt.error):
        try:
            wait_filled(old_names)
            check_index(msgs, "old index: ")
            l2 = listing(mnt.mountpoint)
            C.check(listing1 is not None and l2 == listing1,
                    "old index: the mount lists exactly the same names", diff(listing1, l2))
        finally:
            finish_mount(mnt, "mount on an old index", [log1])
    elif mnt.ok:
        finish_mount(mnt, "mount on an old index", [log1])


def url_opts(cache):
    return "ca_file=%s,password_command=cat %s,cache_dir=%s" % (
        H["ca_file"], H["users"]["alice"]["password_file"], os.path.join(RUN, cache))


def case_starttls(env, folders, msgs, listing1):
    """imap:// URL: STARTTLS, fresh cache; Dovecot must log the login as
    TLS."""
    url = "imap://alice@127.0.0.1:%d" % H["imap_port"]
    since = file_size(H["dovecot_log"])
    mnt = Mount(BIN, ["-o", url_opts("cache-starttls")], url, os.path.join(RUN, "mnt3"), env,
                MOUNT_TIMEOUT)
    if not C.check(mnt.ok, "mount %s (STARTTLS) with -o options" % url, mnt.error):
        return
    try:
        wait_synced(mnt.mountpoint, folders, msgs)
        l3 = listing(mnt.mountpoint)
        C.check(listing1 is not None and l3 == listing1,
                "fresh cache over STARTTLS lists exactly the same names", diff(listing1, l3))
        if not not_on(H, "Dovecot's log tells TLS logins from \"secured\" ones (this "
                      "server refuses LOGIN before STARTTLS anyway)"):
            logins = dovecot_logins(since)
            C.check(logins and all(", TLS" in ln and "secured" not in ln for ln in logins),
                    "every STARTTLS login is TLS-protected per Dovecot's log",
                    logins[:3] or "no login line")
    finally:
        finish_mount(mnt, "STARTTLS mount", sig=signal.SIGTERM)


def case_imaps(env, folders, msgs, listing1):
    """imaps:// URL with -o debug and log_file."""
    url = "imaps://alice@127.0.0.1:%d" % H["imaps_port"]
    log4 = os.path.join(RUN, "imaps.log")
    mnt = Mount(BIN, ["-o", url_opts("cache-imaps") + ",debug=imap:fs,log_file=" + log4], url,
                os.path.join(RUN, "mnt4"), env, MOUNT_TIMEOUT)
    if not C.check(mnt.ok, "mount %s (implicit TLS) with -o options incl. debug=imap:fs" % url,
                   mnt.error):
        return
    try:
        wait_synced(mnt.mountpoint, folders, msgs)
        want = sorted(e[len("INBOX/"):] for e in (listing1 or [])
                      if e.startswith("INBOX/") and e.endswith(".eml") and e.count("/") == 1)
        got = sorted(emls(mnt.mountpoint, "INBOX"))
        C.check(listing1 is not None and got == want, "imaps:// URL mount lists the same INBOX",
                diff(want, got))
        C.check(os.path.exists(log4) and os.path.getsize(log4) > 0,
                "-o debug=imap:fs,log_file=FILE writes a debug log", "no or empty " + log4)
    finally:
        finish_mount(mnt, "imaps:// mount", [log4], sig=signal.SIGINT)


def main():
    if not ready(C, BIN, RUN):
        return 1
    cport = closed_port()
    log1 = os.path.join(RUN, "mailfs.log")
    write_config(RUN, cport, log1)
    env = mailfs_env(RUN, "cache")

    # A previous run that died in the fallback part may have left Dovecot in
    # its reduced-capability mode; start.sh restarts only if that is so.
    if H.get("plain_caps") and server_of(H) == "dovecot":
        ok, out = run_harness(H, "start.sh", plain_caps=False)
        C.check(ok, "restart Dovecot with all capabilities", out)
    try:
        folders, msgs = snapshot()
    except Exception as e:
        C.fail("read the account with imaplib", "%s: %s (is the server running and seeded? "
               "tests/harness/start.sh && tests/harness/seed.py)" % (type(e).__name__, e))
        return 1
    flags_before = {f: {u: m.flags for u, m in b.items()} for f, b in msgs.items()}
    C.check(sum(len(b) for b in msgs.values()) >= 50 and "Café Ünïcode" in folders
            and "Lists/notmuch" in folders and not msgs.get("Lists"),
            "seeded account is there (>= 50 messages, UTF-8 folder, Lists without messages "
            "holding Lists/notmuch)",
            "%d messages in %s" % (sum(len(b) for b in msgs.values()), sorted(folders)))

    listing1 = C.case(case_first_mount, env, log1, folders, msgs, flags_before)
    C.case(case_remount, env, log1, folders, msgs, listing1)
    C.case(case_old_index, env, log1, msgs, listing1)
    C.case(case_starttls, env, folders, msgs, listing1)
    C.case(case_imaps, env, folders, msgs, listing1)
    check_no_secrets([RUN], "the logs, daemon output and cache/index files")
    check_errors(env, cport)
    check_fallback(env, folders, msgs)
    return C.summary()


def diff(a, b):
    if a is None:
        return "first listing missing"
    sa, sb = set(a), set(b)
    return "only first: %s; only second: %s" % (sorted(sa - sb)[:5], sorted(sb - sa)[:5])


if __name__ == "__main__":
    sys.exit(main())
