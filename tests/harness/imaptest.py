"""imaptest.py - the independent IMAP client side of the mailfs tests.

Standard library only: imaplib over TLS verified against the test CA, plus
modified UTF-7 (RFC 3501 5.1.3) written here from the RFC, so the tests
never share code with the implementation they check.
"""

import base64
import contextlib
import imaplib
import json
import os
import re
import ssl
import time

HARNESS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HARNESS_DIR))


def state_dir():
    return os.path.abspath(os.environ.get("MAILFS_TEST_DIR")
                           or os.path.join(REPO_ROOT, "tests", "tmp"))


# The IMAP server an integration test talks to: "dovecot" (the default),
# "cyrus" or "courier" (harness.json's "servers"; tests/run sets it for
# test_read, test_write and test_live).
SERVER_ENV = "MAILFS_TEST_SERVER"


def test_server():
    """$MAILFS_TEST_SERVER, else "dovecot"."""
    return os.environ.get(SERVER_ENV) or "dovecot"


def load_harness(sdir=None, server=None):
    """The harness.json written by start.sh (ports, CA, password files).

    With server (a name in its "servers"), pointed at that server
    (for_server()), and from then on the folder names of every helper
    below are the mount's paths: see "Folder names" further down.
    LookupError when start.sh did not start that server."""
    sdir = sdir or state_dir()
    with open(os.path.join(sdir, "harness.json")) as f:
        h = json.load(f)
    if server:
        h = for_server(h, server)
        speak_mount_paths()
    return h


def password(h, user):
    with open(h["users"][user]["password_file"]) as f:
        return f.readline().rstrip("\n")


# --- modified UTF-7 -------------------------------------------------------

def utf7_encode(s):
    """UTF-8 str -> modified UTF-7 str (RFC 3501 5.1.3)."""
    out, buf = [], []

    def flush():
        if buf:
            b = "".join(buf).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=")
                       .replace("/", ",") + "-")
            buf.clear()

    for ch in s:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def utf7_decode(s):
    """Modified UTF-7 str -> UTF-8 str; ValueError when malformed."""
    out, i = [], 0
    while i < len(s):
        ch = s[i]
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        j = s.index("-", i)
        if j == i + 1:
            out.append("&")
        else:
            b64 = s[i + 1:j].replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            out.append(base64.b64decode(b64, validate=True).decode("utf-16-be"))
        i = j + 1
    return "".join(out)


def quote(s):
    """An IMAP quoted string for an ASCII (already mUTF-7) mailbox name."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- folder names: the mount's paths and the server's names ------------------
#
# The tests name folders as the mount shows them ("Archive/2024").  On a
# server with the personal namespace "INBOX." and "." as delimiter
# (Cyrus, Courier) that folder is "INBOX.Archive.2024"; mailfs shows the
# folders below the prefix at the top level and INBOX as INBOX (mailfs(1),
# THE TREE).  Once speak_mount_paths() was called (load_harness(server=))
# every helper here that takes or returns a folder name speaks mount
# paths, translated with the prefix and delimiter the server's NAMESPACE
# gives (asked once, at the first login); before, names are passed as
# they are (seed.py and test_servers.py speak the server's own names).

_NAMES = {"on": False, "prefix": "", "delimiter": "/"}
_NS_RE = re.compile(rb'^\(\("((?:[^"\\]|\\.)*)" (?:"((?:[^"\\]|\\.)*)"|NIL)\)')


def speak_mount_paths():
    """From now on, folder names are mount paths (learned at the next
    connect())."""
    _NAMES.update(on=True, learned=False)


def _learn_names(m):
    """Prefix and delimiter of the server's first personal namespace
    (RFC 2342); without NAMESPACE, no prefix and LIST's delimiter."""
    if "NAMESPACE" in capabilities(m):
        data = check(*m.namespace(), "NAMESPACE")
        mo = _NS_RE.match(data[0] or b"")
        if not mo:
            raise RuntimeError("cannot parse NAMESPACE %r" % (data,))
        prefix, delim = mo.group(1).decode(), (mo.group(2) or b"").decode()
    else:
        data = check(*m.list('""', '""'), "LIST delimiter")
        mo = _LIST_RE.match(data[0] or b"")
        prefix, delim = "", _unquote(mo.group("delim")).decode() if mo else "/"
    _NAMES.update(prefix=prefix, delimiter=delim or "/", learned=True)


def namespace():
    """(prefix, delimiter) the helpers translate with: ("", "/") until
    a connection has learned them."""
    return _NAMES["prefix"], _NAMES["delimiter"]


def server_name(path):
    """The server's (UTF-8) name of the folder the mount shows at path."""
    prefix, delim = namespace()
    if not _NAMES["on"] or path.upper() == "INBOX" or (prefix == "" and delim == "/"):
        return path
    return prefix + delim.join(path.split("/"))


def mount_path(name):
    """The mount's path of the server's folder name (the inverse of
    server_name(); a folder outside the personal namespace keeps its
    levels)."""
    prefix, delim = namespace()
    if not _NAMES["on"] or name.upper() == "INBOX" or (prefix == "" and delim == "/"):
        return name
    if prefix and name.startswith(prefix):
        name = name[len(prefix):]
    return "/".join(p.replace("/", "_") for p in name.split(delim))


def wire_form(folder):
    """The server's name of folder in modified UTF-7, unquoted: as LIST
    sends it and mailfs's index keeps it."""
    return utf7_encode(server_name(folder))


def wire_name(folder):
    """The server's name of folder as a command argument (quoted mUTF-7)."""
    return quote(wire_form(folder))


# --- connections ----------------------------------------------------------

def tls_context(cafile):
    return ssl.create_default_context(cafile=cafile)


def connect(h, user="alice", pw=None):
    """Logged-in IMAP4_SSL connection to the test server."""
    m = imaplib.IMAP4_SSL(h["host"], h["imaps_port"],
                          ssl_context=tls_context(h["ca_file"]), timeout=60)
    m.login(user, pw if pw is not None else password(h, user))
    if _NAMES["on"] and not _NAMES["learned"]:
        _learn_names(m)
    return m


def for_server(h, name):
    """h (harness.json) pointed at the harness's IMAP server name
    ("dovecot", "cyrus" or "courier"; see "servers"): a copy whose
    imaps_port and imap_port are that server's, so that every helper here
    talks to it.  LookupError when start.sh did not start it."""
    srv = (h.get("servers") or {}).get(name)
    if not srv:
        raise LookupError("server %s is not in harness.json (start.sh ran without it: "
                          "tests/harness/packages.sh installs it)" % name)
    hs = dict(h)
    hs.update(imaps_port=srv["imaps_port"], imap_port=srv["imap_port"], server=name)
    return hs


def check(typ, data, what):
    if typ != "OK":
        raise RuntimeError("%s: %s %r" % (what, typ, data))
    return data


def remove_test_mail(h, domain, ours_re, note="", user="alice"):
    """What a test's runs left on the server: expunge the messages whose
    Message-ID ends in @domain from every selectable folder (domain None:
    none), then DELETE every folder ours_re matches, deepest first.  Never
    CLOSE, which would expunge other mail flagged \\Deleted."""
    m = connect(h, user)
    try:
        folders = list_folders(m)
        for f in [n for n, fl, _ in folders if domain and not ({"\\Noselect", "\\NonExistent"} & fl)]:
            if ours_re.search(f):
                continue        # deleted whole below
            select(m, f, readonly=False)
            typ, data = m.uid("SEARCH", "HEADER", "Message-ID", "@" + domain + ">")
            uids = (data[0] or b"").split() if typ == "OK" else []
            if uids:
                s = b",".join(uids).decode()
                check(*m.uid("STORE", s, "+FLAGS.SILENT", "(\\Deleted)"), "STORE " + f)
                check(*m.xatom("UID", "EXPUNGE", s), "UID EXPUNGE " + f)
            deselect(m)
        ours = sorted((n for n, _, _ in folders if ours_re.search(n)),
                      key=lambda n: -n.count("/"))
        for n in ours:
            typ, data = m.delete(wire_name(n))
            if typ != "OK":
                print("# cleanup%s: DELETE %s: %r" % (note, n, data), flush=True)
    finally:
        m.logout()


_LIST_RE = re.compile(rb'^\((?P<flags>[^)]*)\) (?P<delim>"(?:[^"\\]|\\.)*"|NIL) (?P<name>.*)$')


def _unquote(b):
    if b.startswith(b'"') and b.endswith(b'"'):
        return re.sub(rb'\\(.)', rb'\1', b[1:-1])
    return b


# Attribute names are case-insensitive (RFC 3501, 6154); Cyrus says
# \trash and \archive.  list_folders() spells these as written here.
_ATTRS = {a.lower(): a for a in (
    "\\Noselect", "\\NonExistent", "\\Noinferiors", "\\HasChildren",
    "\\HasNoChildren", "\\Marked", "\\Unmarked", "\\Subscribed", "\\Remote",
    "\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")}


def list_folders(m):
    """[(utf8_name, set_of_flags, delimiter)] for LIST "" "*" (the names
    as mount paths after speak_mount_paths(); the server's delimiter); the
    standard attributes spelled as in RFC 3501/6154 (\\Noselect, \\Trash)
    whatever case the server used."""
    data = check(*m.list('""', '"*"'), "LIST")
    res = []
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):          # name sent as a literal
            head, name = item
            mo = _LIST_RE.match(head.rstrip() + b" X")
            raw_name = name
        else:
            mo = _LIST_RE.match(item)
            raw_name = _unquote(mo.group("name")) if mo else None
        if not mo:
            raise RuntimeError("cannot parse LIST line %r" % (item,))
        flags = {_ATTRS.get(f.lower(), f) for f in mo.group("flags").decode().split()}
        delim = _unquote(mo.group("delim")).decode()
        res.append((mount_path(utf7_decode(raw_name.decode("ascii"))), flags, delim))
    return res


_FETCH_RE = re.compile(rb'^\d+ \((.*)\)$')


def _parse_meta(line):
    """Dict from one FETCH line of UID FLAGS RFC822.SIZE INTERNALDATE."""
    mo = _FETCH_RE.match(line)
    if not mo:
        raise RuntimeError("cannot parse FETCH line %r" % line)
    body = mo.group(1)
    uid = int(re.search(rb'\bUID (\d+)', body).group(1))
    flags = re.search(rb'\bFLAGS \(([^)]*)\)', body).group(1).decode().split()
    size = int(re.search(rb'\bRFC822\.SIZE (\d+)', body).group(1))
    idate = re.search(rb'\bINTERNALDATE ("[^"]*")', body).group(1)
    ts = imaplib.Internaldate2tuple(b"INTERNALDATE " + idate)
    return {"uid": uid, "flags": set(flags) - {"\\Recent"}, "size": size,
            "internaldate": time.mktime(ts) if ts else None}


def select(m, folder, readonly=True):
    typ, data = m.select(wire_name(folder), readonly=readonly)
    check(typ, data, "SELECT " + folder)
    return int(data[0])


def folder_meta(m, folder):
    """{uid: {uid, flags, size, internaldate}} for a folder (EXAMINE)."""
    n = select(m, folder, readonly=True)
    res = {}
    if n == 0:
        return res
    data = check(*m.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE)"),
                 "FETCH meta " + folder)
    for line in data:
        if line is None or isinstance(line, tuple):
            continue
        d = _parse_meta(line)
        res[d["uid"]] = d
    return res


def fetch_raw(m, uid):
    """BODY.PEEK[] of one message in the selected folder, as bytes."""
    data = check(*m.uid("FETCH", str(uid), "(BODY.PEEK[])"), "FETCH body %d" % uid)
    for item in data:
        if isinstance(item, tuple):
            return item[1]
    raise RuntimeError("no body for UID %d: %r" % (uid, data))


def capabilities(m):
    """CAPABILITY now (imaplib keeps only the greeting's), upper case."""
    typ, data = m.capability()
    check(typ, data, "CAPABILITY")
    return set(data[0].decode().upper().split())


def _caps(m):
    """capabilities(m), asked once per logged-in connection."""
    caps = getattr(m, "_mailfs_caps", None)
    if caps is None:
        caps = m._mailfs_caps = capabilities(m)
    return caps


def deselect(m):
    """Leave the selected folder without expunging anything: UNSELECT, or
    on a server without it (Courier) EXAMINE INBOX, if the folder was
    selected read-write, then CLOSE, which expunges nothing in a read-only
    selection (RFC 3501 6.4.2).  Courier refuses an APPEND to the folder
    it has open read-only, so APPEND there after this."""
    if m.state != "SELECTED":
        return
    if "UNSELECT" in _caps(m):
        check(*m.unselect(), "UNSELECT")
        return
    if not m.is_readonly:
        check(*m.select("INBOX", readonly=True), "EXAMINE INBOX")
    check(*m.close(), "CLOSE")


def move(m, uid, dest):
    """What another client does to move one message of the selected
    (read-write) folder: UID MOVE, or where the server lacks MOVE
    (Courier) UID COPY, \\Deleted and UID EXPUNGE of that UID only."""
    if "MOVE" in _caps(m):
        check(*m.uid("MOVE", str(uid), wire_name(dest)), "UID MOVE")
        return
    check(*m.uid("COPY", str(uid), wire_name(dest)), "UID COPY")
    check(*m.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)"), "STORE \\Deleted")
    check(*m.xatom("UID", "EXPUNGE", str(uid)), "UID EXPUNGE")


# --- one question each, on a connection of its own ----------------------------

@contextlib.contextmanager
def session(h, user="alice"):
    """with session(h) as m: a logged-in connection, logged out after."""
    m = connect(h, user)
    try:
        yield m
    finally:
        m.logout()


def selectable(m):
    """Names of the folders that can be selected (LIST without \\Noselect)."""
    return [n for n, f, _ in list_folders(m)
            if not ({"\\Noselect", "\\NonExistent"} & f)]


def search_mid(m, mid):
    """UIDs of the messages with Message-ID <mid> in the selected folder."""
    typ, data = m.uid("SEARCH", "HEADER", "Message-ID", '"<%s>"' % mid)
    check(typ, data, "SEARCH")
    return [int(u) for u in (data[0] or b"").split()]


def create_folders(m, folders):
    """CREATE each folder; RuntimeError when the server refuses one."""
    for f in folders:
        check(*m.create(wire_name(f)), "CREATE " + f)


def uid_of_mid(m, folder, mid):
    """Select folder: the UID of its one message with Message-ID <mid>;
    RuntimeError unless there is exactly one."""
    select(m, folder)
    uids = search_mid(m, mid)
    if len(uids) != 1:
        raise RuntimeError("<%s> in %s: UIDs %s" % (mid, folder, uids))
    return uids[0]


def folder_names(h, user="alice"):
    """The set of every folder's name (LIST)."""
    with session(h, user) as m:
        return {n for n, _, _ in list_folders(m)}


def trash_folder(h, user="alice"):
    """The folder LIST marks \\Trash, else "Trash"."""
    with session(h, user) as m:
        folders = list_folders(m)
    for n, f, _ in folders:
        if "\\Trash" in f:
            return n
    return "Trash"


def where(h, mid, user="alice"):
    """Sorted [(folder, uid)] of every message with Message-ID <mid>."""
    with session(h, user) as m:
        res = []
        for f in selectable(m):
            select(m, f)
            res += [(f, u) for u in search_mid(m, mid)]
        return sorted(res)


def raw_of(h, folder, uid, user="alice"):
    """BODY.PEEK[] of one message, as bytes."""
    with session(h, user) as m:
        select(m, folder)
        return fetch_raw(m, uid)


def meta_of(h, folder, user="alice"):
    """folder_meta() of a folder."""
    with session(h, user) as m:
        return folder_meta(m, folder)


def flags_by_uid(h, folder, user="alice"):
    """{uid: set of flags} of a folder, None when it cannot be selected."""
    with session(h, user) as m:
        try:
            return {u: d["flags"] for u, d in folder_meta(m, folder).items()}
        except (RuntimeError, imaplib.IMAP4.error):
            return None


def store(h, folder, uid, how, flags, user="alice"):
    """UID STORE uid HOW FLAGS (flags as sent: "(\\Seen)")."""
    with session(h, user) as m:
        select(m, folder, readonly=False)
        check(*m.uid("STORE", str(uid), how, flags), "STORE %s %d" % (folder, uid))


def expunge(h, folder, uid, user="alice"):
    """What another client does to remove exactly one message: \\Deleted,
    then UID EXPUNGE of that UID only."""
    with session(h, user) as m:
        select(m, folder, readonly=False)
        check(*m.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)"), "STORE \\Deleted")
        check(*m.xatom("UID", "EXPUNGE", str(uid)), "UID EXPUNGE")
