#!/usr/bin/env python3
"""seed.py - fill the test accounts over IMAP (APPEND over TLS).

usage: seed.py [--manifest FILE] [--user USER ...] [--server NAME]

Reads tests/data/seed.tsv (see its header), empties each listed user's
account (expunges every folder, deletes all but INBOX, the special-use
folders and the server's trash), then creates the folders and APPENDs
the messages with their flags and INTERNALDATE, in manifest order, so a
fresh server gets the same UIDs every time.  Finally SELECTs every folder
(Dovecot creates auto folders lazily) and compares the message counts
with the manifest.

--server: dovecot (default), cyrus or courier (start.sh's servers,
"servers" in harness.json).  On Cyrus and Courier a manifest folder is
put in the personal namespace ("INBOX." there, "." as delimiter):
Archive/2024 is INBOX.Archive.2024, INBOX stays INBOX, and a top folder
named like a special-use one (Sent, Trash, Drafts, Junk, Archive) is the
folder the server marks so (Cyrus: INBOX.Sent ...; Courier marks none, so
INBOX.Sent, and Trash is its INBOX.Trash).  "Lists" is never created:
Courier then lists INBOX.Lists as \\Noselect, as Dovecot does; Cyrus makes
it an ordinary empty folder.  "Projects/" (an empty \\Noselect folder on
Dovecot) is an ordinary empty folder INBOX.Projects on both: Cyrus drops
the trailing delimiter, and Courier would create nothing that LIST shows.
Cyrus refuses two messages whose header is not RFC 5322 ("NO Message
contains invalid header"): they are in REFUSED below, seed.py prints a
"# ..." note for each and leaves them out of the count check; any other
refusal, or one of those accepted, is a FAIL (counted_rows() gives what
is on each server, for the tests).

Prints one "PASS: seed ..." or "FAIL: seed ...: detail" line per user.
Needs the servers from start.sh ($MAILFS_TEST_DIR/harness.json).
"""

import argparse
import collections
import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imaptest as it  # noqa: E402

DEFAULT_INTERNALDATE = "2023-03-03T03:03:03+00:00"
DATA_DIR = os.path.join(it.REPO_ROOT, "tests", "data")


def read_manifest(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 5:
                raise SystemExit("%s:%d: want 5 TAB-separated columns" % (path, n))
            user, folder, flags, idate, fname = cols
            rows.append({
                "user": user, "folder": folder,
                "flags": [] if flags == "-" else flags.split(),
                "internaldate": datetime.datetime.fromisoformat(
                    DEFAULT_INTERNALDATE if idate == "-" else idate),
                "file": None if fname == "-" else os.path.join(DATA_DIR, fname),
            })
    return rows


# What a server refuses to store, by manifest file, with its reason:
# these messages are not on that server after seeding.
REFUSED = {
    "cyrus": {
        # "This line has no colon and is not a continuation" in the header.
        "mailfs/12-malformed-header.eml": "Message contains invalid header",
        # Headers only: the last header line has no line end.
        "mailfs/19-headers-only.eml": "Message contains invalid header",
    },
}

SPECIAL = {"Sent": "\\Sent", "Trash": "\\Trash", "Drafts": "\\Drafts",
           "Junk": "\\Junk", "Archive": "\\Archive"}


def counted_rows(rows, server):
    """The rows of the manifest whose message is on server once seeded
    (those with a file, less what server refuses)."""
    refused = REFUSED.get(server, {})
    return [r for r in rows if r["file"] is not None
            and os.path.relpath(r["file"], DATA_DIR) not in refused]


def server_folder(folder, srv, specials=None):
    """The name of manifest folder on server srv (harness.json's
    "servers" entry): in its personal namespace, with its delimiter; a top
    folder named like a special-use one is the one marked so (specials:
    {attribute: name} from LIST), else srv's trash for Trash.  A trailing
    "/" (an empty \\Noselect folder on Dovecot) is kept only on Dovecot."""
    if folder == "INBOX":
        return folder
    if srv["prefix"] == "" and srv["delimiter"] == "/":
        return folder
    parts = folder.rstrip("/").split("/")
    attr = SPECIAL.get(parts[0])
    if attr and specials and attr in specials:
        top = specials[attr]
    elif parts[0] == "Trash":
        top = srv["trash"]
    else:
        top = srv["prefix"] + parts[0]
    return srv["delimiter"].join([top] + parts[1:])


def specials_of(folders):
    """{attribute: folder} of the special-use folders LIST shows."""
    res = {}
    for name, flags, _ in folders:
        for a in flags & set(SPECIAL.values()):
            res.setdefault(a, name)
    return res


def reset(m, srv):
    """Expunge everything; delete every folder but INBOX, the special-use
    ones and the server's trash."""
    folders = it.list_folders(m)
    for name, flags, _ in folders:
        if "\\Noselect" in flags or "\\NonExistent" in flags:
            continue
        n = it.select(m, name, readonly=False)
        if n:
            it.check(*m.store("1:*", "+FLAGS.SILENT", "(\\Deleted)"), "STORE " + name)
            it.check(*m.expunge(), "EXPUNGE " + name)
        m.close()
    special = {"\\Sent", "\\Trash", "\\Drafts", "\\Archive", "\\Junk", "\\All", "\\Flagged"}
    doomed = [(name, delim) for name, flags, delim in folders
              if name not in ("INBOX", srv["trash"]) and not (flags & special)]
    for name, delim in sorted(doomed, key=lambda f: -f[0].count(f[1] or "/")):
        typ, data = m.delete(it.wire_name(name))
        if typ == "OK" or b"NONEXISTENT" in b" ".join(d for d in data if d):
            continue
        # Courier's \Noselect parents go with their last child.
        if name in {n for n, _, _ in it.list_folders(m)}:
            raise RuntimeError("DELETE %s: %r" % (name, data))


def ensure_folder(m, folder, made):
    if folder in made or folder == "INBOX":
        return
    typ, data = m.create(it.wire_name(folder))
    if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(d for d in data if d):
        raise RuntimeError("CREATE %s: %r" % (folder, data))
    made.add(folder)


def seed_user(h, server, user, rows):
    srv = h["servers"][server]
    label = user if server == "dovecot" else "%s on %s" % (user, server)
    refused = REFUSED.get(server, {})
    m = it.connect(h, user)
    try:
        reset(m, srv)
        kept = it.list_folders(m)
        specials = specials_of(kept)
        # What reset() kept exists already (Cyrus and Courier answer a
        # CREATE of it with a NO, without ALREADYEXISTS).
        made = {n for n, _, _ in kept}
        want = collections.Counter()
        skipped = []
        for r in rows:
            folder = server_folder(r["folder"], srv, specials)
            ensure_folder(m, folder, made)
            if r["file"] is None:
                continue
            with open(r["file"], "rb") as f:
                raw = f.read()
            flags = "(%s)" % " ".join(r["flags"]) if r["flags"] else None
            rel = os.path.relpath(r["file"], DATA_DIR)
            typ, data = m.append(it.wire_name(folder), flags, r["internaldate"], raw)
            why = b" ".join(d for d in data if d).decode(errors="replace")
            if rel in refused:
                if typ == "OK":
                    raise RuntimeError("%s took %s, which REFUSED says it refuses" % (server, rel))
                if refused[rel] not in why:
                    raise RuntimeError("APPEND %s to %s: %s %s (want NO %s)"
                                       % (rel, folder, typ, why, refused[rel]))
                skipped.append(rel)
                print("# seed %s: %s refuses %s (%s): not seeded" % (label, server, rel, why),
                      flush=True)
                continue
            it.check(typ, data, "APPEND %s to %s" % (r["file"], folder))
            want[folder] += 1
        # Materialise lazily auto-created folders and count.
        got = {}
        for name, flags, _ in it.list_folders(m):
            if "\\Noselect" in flags or "\\NonExistent" in flags:
                continue
            got[name] = it.select(m, name, readonly=True)
        bad = ["%s: %d on server, %d in manifest" % (f, got.get(f, -1), n)
               for f, n in want.items() if got.get(f) != n]
        bad += ["%s: %d unexpected messages" % (f, n)
                for f, n in got.items() if n and f not in want]
        total = sum(want.values())
        if bad:
            print("FAIL: seed %s: %s" % (label, "; ".join(bad)))
            return False
        print("PASS: seed %s: %d messages in %d folders%s" % (
            label, total, len(got),
            " (%d refused, as REFUSED says)" % len(skipped) if skipped else ""))
        return True
    finally:
        try:
            m.logout()
        except Exception:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", default=os.path.join(DATA_DIR, "seed.tsv"))
    ap.add_argument("--user", action="append")
    ap.add_argument("--server", default="dovecot", choices=("dovecot", "cyrus", "courier"))
    a = ap.parse_args()
    rows = read_manifest(a.manifest)
    users = a.user or sorted({r["user"] for r in rows})
    h = it.load_harness()
    if "servers" not in h:      # a harness.json from before the servers
        h["servers"] = {"dovecot": {"prefix": "", "delimiter": "/", "trash": "Trash"}}
    try:
        hs = it.for_server(h, a.server)
    except LookupError as e:
        print("FAIL: seed %s: %s" % (a.server, e))
        return 1
    ok = True
    for u in users:
        try:
            ok &= seed_user(hs, a.server, u, [r for r in rows if r["user"] == u])
        except Exception as e:  # one clear line, counted by the runner
            print("FAIL: seed %s%s: %s: %s" % (
                u, "" if a.server == "dovecot" else " on " + a.server, type(e).__name__, e))
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
