#!/usr/bin/env python3
"""seed.py - fill the test accounts over IMAP (APPEND over TLS).

usage: seed.py [--manifest FILE] [--user USER ...]

Reads tests/data/seed.tsv (see its header), empties each listed user's
account (expunges every folder, deletes the non-special ones), then
creates the folders and APPENDs the messages with their flags and
INTERNALDATE, in manifest order, so a fresh server gets the same UIDs
every time.  Finally SELECTs every folder (Dovecot creates auto folders
lazily) and compares the message counts with the manifest.

Prints one "PASS: seed ..." or "FAIL: seed ...: detail" line per user.
Needs the server from start.sh ($MAILFS_TEST_DIR/harness.json).
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


def reset(m):
    """Expunge everything; delete every folder but INBOX and special-use."""
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
    doomed = [name for name, flags, _ in folders
              if name != "INBOX" and not (flags & special)]
    for name in sorted(doomed, key=lambda s: -s.count("/")):
        typ, data = m.delete(it.wire_name(name))
        if typ != "OK" and b"NONEXISTENT" not in b" ".join(d for d in data if d):
            raise RuntimeError("DELETE %s: %r" % (name, data))


def ensure_folder(m, folder, made):
    if folder in made or folder == "INBOX":
        return
    typ, data = m.create(it.wire_name(folder))
    if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(d for d in data if d):
        raise RuntimeError("CREATE %s: %r" % (folder, data))
    made.add(folder)


def seed_user(h, user, rows):
    m = it.connect(h, user)
    try:
        reset(m)
        made = set()
        want = collections.Counter()
        for r in rows:
            ensure_folder(m, r["folder"], made)
            if r["file"] is None:
                continue
            with open(r["file"], "rb") as f:
                raw = f.read()
            flags = "(%s)" % " ".join(r["flags"]) if r["flags"] else None
            it.check(*m.append(it.wire_name(r["folder"]), flags, r["internaldate"], raw),
                     "APPEND %s to %s" % (r["file"], r["folder"]))
            want[r["folder"]] += 1
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
            print("FAIL: seed %s: %s" % (user, "; ".join(bad)))
            return False
        print("PASS: seed %s: %d messages in %d folders" % (user, total, len(got)))
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
    a = ap.parse_args()
    rows = read_manifest(a.manifest)
    users = a.user or sorted({r["user"] for r in rows})
    h = it.load_harness()
    ok = True
    for u in users:
        try:
            ok &= seed_user(h, u, [r for r in rows if r["user"] == u])
        except Exception as e:  # one clear line, counted by the runner
            print("FAIL: seed %s: %s: %s" % (u, type(e).__name__, e))
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
