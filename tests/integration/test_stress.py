#!/usr/bin/env python3
"""test_stress.py - many writers, another client and a flaky network at
once, for a bounded time; then invariants checked with an independent IMAP
client (imaplib).

One mount of the real binary, whose IMAP connections all go through the
fault proxy (tests/harness/faultproxy.py, -o port=<proxy>).

First, one deterministic case: a run of 12 rm (the first done at once, the
rest queued and sent in batches, see README) during which every open
connection of the mount is dropped; every rm returns 0, so all 12 must end
in Trash (a batch that meets a connection that died in the pool is sent
again).

Then, for $STRESS_SECONDS (default 60) seconds:

- 8 worker processes do rm (unlink of X.eml or rmdir of X/), mv (rename of
  X.eml or X/ between folders A and B, and from Trash back to either),
  cp-in of new messages (open/write/close, retried once on failure),
  setfattr of user.mail.flags, ls and cat on the mount.  Each worker owns
  a disjoint set of messages (seeded in A and B before mounting, plus those
  it copies in) and is the only one that changes them; it finds them by
  listing (the subject names the message) and tracks where each must be.
- one imaplib client in another process appends, expunges (UID EXPUNGE),
  moves and re-flags messages of its own in folders C1 and C2, and every
  few seconds deletes one of them and creates it again with new messages
  (UIDs start again at 1).  The workers list and cat C1 and C2 but never
  write to them.  (Dovecot 2.3 itself sometimes fails a command on a
  mailbox recreated under other sessions, "[SERVERBUG]": the client then
  logs in again and reads its two folders back as its model.  It may also
  give the new mailbox the UIDVALIDITY of the old one, against RFC 3501
  2.3.1.1; the client notes it, and a cat in that folder that returned
  another whole message of it is then reported as the server's doing.)
- the proxy in front of the mount injects one fault every 2-4 s (a random
  mode: drop, reset or a 2 s stall, after a random byte count; every fifth
  one a stall longer than the mount's timeout).

Invariants (imaplib, after the mount is unmounted):
- no message of ours exists twice;
- a message whose last call returned 0 is where that call put it (rm:
  Trash, or expunged when rm'd in Trash; mv: the target; cp: the folder),
  with exactly the flags of its last setfattr (or its seed flags): also a
  queued rm/mv of a run (see README: returned at once, sent ~20 ms later);
- a message whose last call failed is in the state before or after that
  call (for rm in Trash, which is STORE \\Deleted + UID EXPUNGE, also still
  in Trash with \\Deleted added), never a third place; a worker leaves a
  message alone after a failed call;
- bystanders (seeded in A and B, owned by nobody) and the client's
  messages are exactly as their owner left them, nowhere else;
- every cat returned an error or exactly the bytes of the message its name
  and its Message-ID name; every message on the server has its bytes;
- no listing (ls of a folder) showed a name twice, and every listing of A
  and B showed each bystander of that folder (checked by the workers as
  they list, while everything changes);
- the daemon is alive at the end, `ls` works, `sync` of each folder
  succeeds, fusermount3 -u unmounts it and it exits 0 without a sanitizer
  report.

Needs the private Dovecot from tests/harness/start.sh.  Folders are named
sx-<random>-...; Message-IDs end in @stress.mailfs.test (also in Trash);
all removed at the end.  Environment: MAILFS_BIN, MAILFS_TEST_DIR,
MAILFS_TEST_LABEL, STRESS_SECONDS, STRESS_SEED (to repeat a run's choices;
timing still differs).  Prints one "PASS: ..." or "FAIL: ...: detail" line
per invariant and a "# ..." summary.
"""

import collections
import datetime
import hashlib
import imaplib
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (Checks, check_mount, ename, errno_of, fresh_run_dir,  # noqa: E402
                       imaptest as it, label_of, mailfs_bin, mount_own_dirs, ready, register, run,
                       unmount_and_check, unregister, wait_for, write_alice_config)
import faultproxy  # noqa: E402  (tests/harness is on sys.path via mounttest)

BIN = mailfs_bin()
LABEL = label_of(BIN)
C = Checks("stress[%s]: " % LABEL)
ACCOUNT = "alice@stress"
DOMAIN = "stress.mailfs.test"
OURS_RE = re.compile(r"(^|/)sx-[0-9a-f]{8}\b")    # any run's folders
WORKERS = 8
PER_WORKER = 20         # seeded messages a worker owns (half in A, half in B)
BYSTANDERS = 16         # seeded in A and B, owned by nobody
CLIENT_SEED = 8         # the imaplib client's messages in C1 and in C2
TIMEOUT = 5             # -o timeout= of the mount
MOUNT_TIMEOUT = 90
SHOW_TIMEOUT = 90       # the seeded messages show in the fresh mount
GRACE = 90              # after the deadline: workers end their last call
FLAGSET = ("\\Seen", "\\Flagged", "\\Answered", "$Stress1", "$Stress2")
DELETED = "\\Deleted"
PLACES = ("A", "B", "T")
RUN_RM = 12             # rm'd in one run across dropped connections


# --- messages: bytes are a pure function of (tag, key) ----------------------

def message(tag, key):
    """The message with key (w3n17, b4, c12) in the run tagged tag: every
    process can rebuild any message's bytes from its Message-ID."""
    r = random.Random("%s/%s" % (tag, key))
    lines = r.choice((2, 2, 6, 20, 60, 200, 600, 1500, 3000))
    words = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
             "hotel", "india", "juliet", "kilo", "lima", key)
    body = "".join("%05d %s\r\n" % (i, " ".join(r.choice(words) for _ in range(9)))
                   for i in range(lines))
    return ("From: Stress Test <st@%s>\r\n"
            "To: Alice <alice@mailfs.test>\r\n"
            "Subject: Stress %s %s\r\n"
            "Date: Wed, 06 Mar 2024 %02d:%02d:%02d +0000\r\n"
            "Message-ID: <%s-%s@%s>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n"
            "\r\n%s" % (DOMAIN, tag[-4:], key, r.randrange(24), r.randrange(60),
                        r.randrange(60), tag, key, DOMAIN, body)).encode()


def seed_flags(tag, key):
    r = random.Random("%s/%s/flags" % (tag, key))
    return sorted(r.choice(((), (), ("\\Seen",), ("\\Flagged",), ("\\Seen", "$Stress1"))))


def mid_key(tag, raw):
    """The key of the message whose bytes these are (by Message-ID), or None."""
    mo = re.search(rb"^Message-ID: <%s-([a-z0-9]+)@%s>\r?$" % (
        re.escape(tag.encode()), re.escape(DOMAIN.encode())), raw[:4096], re.M)
    return mo.group(1).decode() if mo else None


def name_re(tag):
    """A derived name of one of this run's messages: (key, UID)."""
    return re.compile(r" - Stress %s ([a-z0-9]+) \[(\d+)\]\.eml$" % tag[-4:])


def keys_in(tag, entries):
    """{key: [.eml names]} of this run's messages in a listing."""
    rx = name_re(tag)
    res = collections.defaultdict(list)
    for e in entries:
        mo = rx.search(e)
        if mo:
            res[mo.group(1)].append(e)
    return res


def uid_of(name):
    mo = re.search(r"\[(\d+)\](\.eml)?$", name)
    return mo.group(1) if mo else "?"


def sha(b):
    return hashlib.sha256(b).hexdigest()[:16]


def now_s():
    t = time.time()
    return time.strftime("%H:%M:%S", time.localtime(t)) + ".%03d" % int(t % 1 * 1000)


# --- a worker (its own process) ----------------------------------------------

class Worker:
    """One process changing its own messages and reading everyone's."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.tag = cfg["tag"]
        self.root = cfg["root"]
        self.folders = cfg["folders"]       # A, B, T, C1, C2 -> UTF-8 name
        self.n = cfg["worker"]
        self.rnd = random.Random(cfg["seed"])
        self.deadline = cfg["deadline"]
        self.next_new = 0
        # key -> {loc, flags, alts, frozen, hist}; loc: A, B, T, X (gone),
        # N (never made); alts: [(loc, flags)] it may end in.
        self.msgs = {}
        for key, (loc, flags) in cfg["msgs"].items():
            self.msgs[key] = {"loc": loc, "flags": sorted(flags),
                              "alts": [[loc, sorted(flags)]], "frozen": False,
                              "hist": [[now_s(), "seeded", loc, "", "ok"]]}
        self.ops = collections.Counter()
        self.fails = collections.defaultdict(collections.Counter)
        self.notes = collections.Counter()
        self.bad_reads = []
        self.reads_ok = 0
        self.listings = 0
        self.list_twice = []    # [time, place, entries, [names listed twice]]
        self.list_missing = []  # [time, place, entries, bystander key]
        self.bystanders = collections.defaultdict(list)
        for key, place in cfg["bystanders"].items():
            self.bystanders[place].append(key)
        self._keys_for = self._keys = None

    def path(self, place, name=""):
        if place == "root":
            return self.root
        return os.path.join(self.root, self.folders[place], name) if name else \
            os.path.join(self.root, self.folders[place])

    def count(self, kind, rc):
        self.ops[kind] += 1
        if rc:
            self.fails[kind][rc] += 1

    def listing(self, place):
        """ls of a folder (counted as an ls); None on error."""
        try:
            ents = os.listdir(self.path(place))
        except OSError as e:
            self.count("ls", ename(e.errno))
            return None
        self.count("ls", None)
        if place != "root":
            self.observe(place, ents)
        return ents

    def observe(self, place, ents):
        """Check one listing: no name twice, every bystander of the folder
        there once (nobody moves them); and note what it says about our
        own messages (notes only: the mount's view may lag the server)."""
        self.listings += 1
        counts = collections.Counter(ents)
        twice = sorted(n for n, c in counts.items() if c > 1)
        if twice:
            self.list_twice.append([now_s(), place, len(ents), twice[:3]])
        for key in self.bystanders.get(place, ()):
            if key not in self.keys_listed(place, ents):
                self.list_missing.append([now_s(), place, len(ents), key])
        for key, names in keys_in(self.tag, ents).items():
            m = self.msgs.get(key)
            if m and m["loc"] != place and not m["frozen"]:
                self.notes["own message listed where it is not"] += 1
            if m and m["loc"] == place and not m["frozen"] and len(names) == 1:
                m["seen"] = names[0]
        listed = set(ents)
        for key, m in self.msgs.items():
            if m.get("seen") and m["loc"] == place and not m["frozen"] and \
                    m["seen"] not in listed:
                self.notes["own message listed before, untouched since, missing"] += 1

    def keys_listed(self, place, ents):
        if self._keys_for is not ents:
            self._keys_for, self._keys = ents, keys_in(self.tag, ents)
        return self._keys

    def mine_in(self, place, ents):
        """[(key, name)] of our messages listed in place that are known
        (by our own confirmed calls) to be there."""
        res = []
        for key, names in keys_in(self.tag, ents).items():
            m = self.msgs.get(key)
            if m and not m["frozen"] and m["loc"] == place and len(names) == 1:
                res.append((key, names[0]))
        return res

    def record(self, key, op, frm, to, rc, new_flags=None, alts=None):
        """A call on an owned message returned rc (0 or an errno name)."""
        m = self.msgs[key]
        m["hist"].append([now_s(), op, frm, to, "ok" if not rc else rc])
        if frm != to:
            m["seen"] = None
        if not rc:
            m["loc"] = to
            if new_flags is not None:
                m["flags"] = sorted(new_flags)
            m["alts"] = [[m["loc"], m["flags"]]]
        else:
            m["alts"] = alts
            m["frozen"] = True

    # -- the operations --

    def some_of_mine(self):
        """A place to change (A and B twice as likely as T) and this
        worker's messages listed there, shuffled: (place, [(key, name)])."""
        place = self.rnd.choice(("A", "A", "B", "B", "T"))
        mine = self.mine_in(place, self.listing(place) or [])
        self.rnd.shuffle(mine)
        return place, mine

    def op_rm(self):
        place, mine = self.some_of_mine()
        if not mine:
            return
        for key, name in mine[:self.rnd.choice((1, 1, 2, 3, 5, 8))]:
            m = self.msgs[key]
            as_dir = self.rnd.random() < 0.25
            to = "X" if place == "T" else "T"
            try:
                if as_dir:
                    os.rmdir(self.path(place, name[:-4]))
                else:
                    os.unlink(self.path(place, name))
                rc = None
            except OSError as e:
                rc = ename(e.errno)
            self.count("rm", rc)
            flags = m["flags"]
            alts = [[place, flags], [to, flags]]
            if to == "X":
                alts.append([place, sorted(set(flags) | {DELETED})])
            self.record(key, "rm%s [%s]" % (" -r X/" if as_dir else "", uid_of(name)), place, to,
                        rc, alts=alts)

    def op_mv(self):
        place, mine = self.some_of_mine()
        if not mine:
            return
        to = {"A": "B", "B": "A"}.get(place) or self.rnd.choice(("A", "B"))
        for key, name in mine[:self.rnd.choice((1, 1, 2, 3, 5, 8))]:
            m = self.msgs[key]
            as_dir = self.rnd.random() < 0.25
            src = name[:-4] if as_dir else name
            try:
                os.rename(self.path(place, src), self.path(to, src))
                rc = None
            except OSError as e:
                rc = ename(e.errno)
            self.count("mv", rc)
            self.record(key, "mv%s [%s]" % (" X/" if as_dir else "", uid_of(name)), place, to, rc,
                        alts=[[place, m["flags"]], [to, m["flags"]]])

    def op_flags(self):
        place = self.rnd.choice(PLACES)
        ents = self.listing(place)
        mine = self.mine_in(place, ents or [])
        if not mine:
            return
        key, name = self.rnd.choice(mine)
        m = self.msgs[key]
        new = sorted(self.rnd.sample(FLAGSET, self.rnd.randrange(len(FLAGSET) + 1)))
        try:
            os.setxattr(self.path(place, name), "user.mail.flags", " ".join(new).encode())
            rc = None
        except OSError as e:
            rc = ename(e.errno)
        self.count("setfattr", rc)
        self.record(key, "setfattr [%s] %r" % (uid_of(name), " ".join(new)), place, place, rc,
                    new_flags=new,
                    alts=[[place, m["flags"]], [place, new]])

    def cp_once(self, place, name, raw):
        try:
            with open(self.path(place, name), "wb") as f:
                f.write(raw)
            return None
        except OSError as e:
            return ename(e.errno)

    def op_cp(self):
        key = "w%dn%d" % (self.n, 1000 + self.next_new)
        self.next_new += 1
        place = self.rnd.choice(("A", "B"))
        raw = message(self.tag, key)
        name = "in-%s.eml" % key
        self.msgs[key] = {"loc": "N", "flags": [], "alts": [["N", []]], "frozen": False,
                          "hist": []}
        rc = self.cp_once(place, name, raw)
        self.count("cp", rc)
        self.record(key, "cp %s" % name, "N", place, rc, new_flags=[],
                    alts=[["N", []], [place, []]])
        if rc and self.rnd.random() < 0.5:
            # The writer tries again (the file is still staged): a copy
            # whose APPEND the server did but whose reply was lost must be
            # recognised, not appended twice.
            time.sleep(0.2)
            rc = self.cp_once(place, name, raw)
            self.count("cp", rc)
            self.msgs[key]["frozen"] = False
            self.record(key, "cp again %s" % name, "N", place, rc, new_flags=[],
                        alts=[["N", []], [place, []]])

    def op_cat(self):
        place = self.rnd.choice(("A", "B", "T", "C1", "C2"))
        ents = self.listing(place)
        names = [n for ns in keys_in(self.tag, ents or []).values() for n in ns]
        if not names:
            return
        name = self.rnd.choice(names)
        key = name_re(self.tag).search(name).group(1)
        try:
            with open(self.path(place, name), "rb") as f:
                data = f.read()
        except OSError as e:
            self.count("cat", ename(e.errno))
            return
        self.count("cat", None)
        want = message(self.tag, key)
        if data == want:
            self.reads_ok += 1
            return
        got = mid_key(self.tag, data)
        self.bad_reads.append({
            "t": now_s(), "folder": place, "name": name, "len": len(data),
            "want_len": len(want), "got_key": got, "sha": sha(data),
            "whole_other": bool(got and data == message(self.tag, got))})

    def op_ls(self):
        place = self.rnd.choice(("A", "B", "T", "C1", "C2", "root"))
        self.listing(place)

    def run(self):
        ops = ((self.op_rm, 16), (self.op_mv, 20), (self.op_cp, 8), (self.op_flags, 14),
               (self.op_ls, 14), (self.op_cat, 28))
        fns = [f for f, _ in ops]
        weights = [w for _, w in ops]
        while time.time() < self.deadline:
            self.rnd.choices(fns, weights)[0]()

    def result(self):
        return {"ops": dict(self.ops),
                "fails": {k: dict(v) for k, v in self.fails.items()},
                "notes": dict(self.notes), "bad_reads": self.bad_reads,
                "reads_ok": self.reads_ok, "msgs": self.msgs, "listings": self.listings,
                "list_twice": self.list_twice[:20], "n_twice": len(self.list_twice),
                "list_missing": self.list_missing[:20], "n_missing": len(self.list_missing)}


def worker_main(cfg_path):
    with open(cfg_path) as f:
        cfg = json.load(f)
    w = Worker(cfg)
    res = {"error": None}
    try:
        w.run()
    except Exception:   # noqa: BLE001 - reported by the parent as a FAIL
        res["error"] = traceback.format_exc()
    res.update(w.result())
    with open(cfg["out"] + ".tmp", "w") as f:
        json.dump(res, f)
    os.rename(cfg["out"] + ".tmp", cfg["out"])
    return 0


# --- the other client (its own process, imaplib, no faults) ----------------------

# Dovecot's own trouble with a mailbox deleted and created again while
# other sessions have it open ("Corrupted transaction log ... indexid
# changed", then NO [SERVERBUG] or "IMAP session state is inconsistent"):
# the client logs in again and reads its folders back, not a failure of
# mailfs ("Mailbox was deleted under us" is the same).  So is
# [ALREADYEXISTS] on the CREATE right after our own DELETE: on Maildir a
# folder another session opens at the moment it is deleted can be left
# behind, empty (mailfs(1), "Known server issue"); the messages check says
# whether it really was empty.  Anything else the server refuses ends the
# client (a FAIL).
SERVER_TROUBLE = re.compile(r"SERVERBUG|Internal error|inconsistent|deleted under us|"
                            r"CREATE: NO \[b?'?\[ALREADYEXISTS\]", re.I)


class Client:
    """Changes its own folders C1 and C2 behind the mount's back."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.tag = cfg["tag"]
        self.h = it.load_harness(cfg["state_dir"])
        self.folders = cfg["folders"]
        self.rnd = random.Random(cfg["seed"])
        self.model = {p: {k: sorted(f) for k, f in d.items()} for p, d in cfg["model"].items()}
        self.gone = []
        self.next_key = cfg["next_key"]
        self.ops = collections.Counter()
        self.trouble = []       # the server's own errors, healed
        self.anomalies = []     # our messages not where we left them
        self.m = it.connect(self.h)
        self.selected = None
        self.uvs = {"C1": [], "C2": []}     # UIDVALIDITY of each generation seen
        self.cur_uv = {}
        self.uv_reused = []
        self.uv_events = []

    def wire(self, place):
        return it.wire_name(self.folders[place])

    def select(self, place):
        it.select(self.m, self.folders[place], readonly=False)
        self.selected = place
        uv = (self.m.response("UIDVALIDITY")[1] or [None])[0]
        uv = uv.decode() if uv else None
        cur = self.cur_uv.get(place)
        if uv and uv != cur:
            # A new generation of the folder (ours, after recreate, or the
            # server changing it by itself); an earlier one's value again
            # breaks RFC 3501 2.3.1.1: the same UIDs now name other
            # messages, and no client can tell.
            if uv in self.uvs[place]:
                self.uv_reused.append([now_s(), place, uv, list(self.uvs[place])])
            elif cur is not None:
                self.uv_events.append([now_s(), place, "changed by itself", cur, uv])
            self.uvs[place].append(uv)
            self.cur_uv[place] = uv

    def uid_of(self, place, key):
        """Its UID where the model says it is; None (and an anomaly) when
        it is not there exactly once."""
        self.select(place)
        typ, data = self.m.uid("SEARCH", "HEADER", "Message-ID",
                               '"<%s-%s@%s>"' % (self.tag, key, DOMAIN))
        it.check(typ, data, "SEARCH")
        uids = (data[0] or b"").split()
        if len(uids) != 1:
            self.anomalies.append("%s %s: in %s (where the client left it) as UIDs %r" % (
                now_s(), key, self.folders[place], uids))
            return None
        return uids[0].decode()

    def append(self, place, key=None):
        if key is None:
            key = "c%d" % self.next_key
            self.next_key += 1
        flags = seed_flags(self.tag, key)
        when = datetime.datetime(2024, 3, 6, 12, 0, tzinfo=datetime.timezone.utc)
        it.check(*self.m.append(self.wire(place), "(%s)" % " ".join(flags) if flags else None,
                                when, message(self.tag, key)), "APPEND " + key)
        self.model[place][key] = flags
        self.ops["append"] += 1

    def pick(self):
        places = [p for p in self.model if self.model[p]]
        if not places:
            return None, None
        place = self.rnd.choice(places)
        return place, self.rnd.choice(sorted(self.model[place]))

    def expunge(self):
        place, key = self.pick()
        uid = key and self.uid_of(place, key)
        if not uid:
            return
        it.check(*self.m.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)"), "STORE")
        it.check(*self.m.xatom("UID", "EXPUNGE", uid), "UID EXPUNGE")
        del self.model[place][key]
        self.gone.append(key)
        self.ops["expunge"] += 1

    def move(self):
        place, key = self.pick()
        uid = key and self.uid_of(place, key)
        if not uid:
            return
        other = "C2" if place == "C1" else "C1"
        it.check(*self.m.uid("MOVE", uid, self.wire(other)), "UID MOVE")
        self.model[other][key] = self.model[place].pop(key)
        self.ops["move"] += 1

    def flags(self):
        place, key = self.pick()
        uid = key and self.uid_of(place, key)
        if not uid:
            return
        new = sorted(self.rnd.sample(FLAGSET, self.rnd.randrange(len(FLAGSET) + 1)))
        it.check(*self.m.uid("STORE", uid, "FLAGS.SILENT", "(%s)" % " ".join(new)), "STORE")
        self.model[place][key] = new
        self.ops["flags"] += 1

    def recreate(self):
        place = self.rnd.choice(("C1", "C2"))
        if self.selected:
            self.m.unselect()
            self.selected = None
        it.check(*self.m.delete(self.wire(place)), "DELETE")
        self.gone += sorted(self.model[place])
        self.model[place] = {}
        it.check(*self.m.create(self.wire(place)), "CREATE")
        self.cur_uv[place] = None
        for _ in range(self.rnd.randrange(3, 7)):
            self.append(place)
        self.ops["recreate"] += 1

    def heal(self, e):
        """After the server's own error: log in again, read back what our
        folders hold (nobody else writes to them) as the model."""
        self.trouble.append("%s %s" % (now_s(), " ".join(str(e).split())[:200]))
        try:
            self.m.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
        self.m = it.connect(self.h)
        self.selected = None
        names = {n for n, _, _ in it.list_folders(self.m)}
        for place in ("C1", "C2"):
            if self.folders[place] not in names:
                it.check(*self.m.create(self.wire(place)), "CREATE")
                self.cur_uv[place] = None
            self.select(place)
            typ, data = self.m.uid("SEARCH", "HEADER", "Message-ID", "%s-c" % self.tag)
            it.check(typ, data, "SEARCH")
            uids = (data[0] or b"").split()
            now = {}
            if uids:
                typ, data = self.m.uid("FETCH", b",".join(uids).decode(),
                                       "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
                it.check(typ, data, "FETCH")
                for item in data:
                    if isinstance(item, tuple):
                        key = mid_key(self.tag, item[1])
                        mo = re.search(rb"FLAGS \(([^)]*)\)", item[0])
                        if key and mo:
                            now[key] = sorted(set(mo.group(1).decode().split()) - {"\\Recent"})
            self.gone += sorted(set(self.model[place]) - set(now))
            self.model[place] = now

    def step(self, fn, *args):
        try:
            fn(*args)
        except imaplib.IMAP4.abort as e:
            self.heal(e)
        except (imaplib.IMAP4.error, RuntimeError) as e:
            if not SERVER_TROUBLE.search(str(e)):
                raise
            self.heal(e)

    def run(self):
        deadline = self.cfg["deadline"]
        next_recreate = time.time() + self.rnd.uniform(4, 8)
        while time.time() < deadline:
            if time.time() >= next_recreate:
                self.step(self.recreate)
                next_recreate = time.time() + self.rnd.uniform(5, 10)
            else:
                fn = self.rnd.choices((self.append, self.expunge, self.move, self.flags),
                                      (3, 2, 3, 2))[0]
                if fn == self.append:
                    self.step(fn, self.rnd.choice(("C1", "C2")))
                else:
                    self.step(fn)
            time.sleep(self.rnd.uniform(0.05, 0.25))


def client_main(cfg_path):
    with open(cfg_path) as f:
        cfg = json.load(f)
    res = {"error": None}
    cl = None
    try:
        cl = Client(cfg)
        cl.run()
    except Exception:   # noqa: BLE001 - reported by the parent as a FAIL
        res["error"] = traceback.format_exc()
    if cl:
        res.update({"model": cl.model, "gone": cl.gone, "ops": dict(cl.ops),
                    "next_key": cl.next_key, "trouble": cl.trouble,
                    "uv_reused": cl.uv_reused, "uv_events": cl.uv_events,
                    "anomalies": cl.anomalies})
        try:
            cl.m.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    with open(cfg["out"] + ".tmp", "w") as f:
        json.dump(res, f)
    os.rename(cfg["out"] + ".tmp", cfg["out"])
    return 0


# --- the parent: setup, faults, checks ----------------------------------------

H = None
RUN = None


def setup(tag, folders):
    """Our folders and seeded messages: ({worker: {key: (loc, flags)}},
    {bystander key: (loc, flags)}, {C1/C2: {key: flags}})."""
    owned = {w: {} for w in range(WORKERS)}
    by = {}
    client = {"C1": {}, "C2": {}}
    todo = []       # (place, key)
    for w in range(WORKERS):
        for j in range(PER_WORKER):
            key = "w%dn%d" % (w, j)
            place = "A" if j % 2 == 0 else "B"
            owned[w][key] = (place, seed_flags(tag, key))
            todo.append((place, key))
    for j in range(BYSTANDERS):
        key = "b%d" % j
        by[key] = ("A" if j % 2 == 0 else "B", seed_flags(tag, key))
        todo.append((by[key][0], key))
    for j in range(2 * CLIENT_SEED):
        key = "c%d" % j
        place = "C1" if j % 2 == 0 else "C2"
        client[place][key] = seed_flags(tag, key)
        todo.append((place, key))
    random.Random(tag).shuffle(todo)
    todo += [("R", "r%d" % j) for j in range(RUN_RM)]
    m = it.connect(H)
    try:
        for p in ("A", "B", "C1", "C2", "R"):
            it.check(*m.create(it.wire_name(folders[p])), "CREATE " + folders[p])
        when = datetime.datetime(2024, 3, 6, 12, 0, tzinfo=datetime.timezone.utc)
        for place, key in todo:
            flags = seed_flags(tag, key)
            it.check(*m.append(it.wire_name(folders[place]),
                               "(%s)" % " ".join(flags) if flags else None,
                               when, message(tag, key)), "APPEND " + key)
    finally:
        m.logout()
    return owned, by, client


def server_state(tag, only=None, also=()):
    """{key: [(folder, flags, bytes ok)]} of every message of this run on
    the server (every selectable folder, or those named in only; the
    folders named in also are opened by name even when LIST leaves them
    out), and [problems]."""
    m = it.connect(H)
    res = collections.defaultdict(list)
    probs = []
    fetch_re = re.compile(rb"UID (\d+)|FLAGS \(([^)]*)\)")
    try:
        names = [name for name, fl, _ in it.list_folders(m)
                 if not {"\\Noselect", "\\NonExistent"} & fl and
                 (not only or name in only)]
        for name in also:
            if name in names:
                continue
            try:
                typ, _ = m.select(it.wire_name(name), readonly=True)
            except imaplib.IMAP4.error:
                typ = "NO"
            if typ == "OK":
                # Not a failure of mailfs: the message check below says
                # whether anything is missing.
                print("# stress: LIST did not show %s, but it can be selected" % name,
                      flush=True)
                m.unselect()
                names.append(name)
            else:
                print("# stress: %s is not on the server (neither LIST nor SELECT "
                      "finds it)" % name, flush=True)
        for name in names:
            it.select(m, name)
            typ, data = m.uid("SEARCH", "HEADER", "Message-ID", "%s-" % tag)
            uids = (data[0] or b"").split() if typ == "OK" else []
            for i in range(0, len(uids), 50):
                s = b",".join(uids[i:i + 50]).decode()
                typ, data = m.uid("FETCH", s, "(UID FLAGS BODY.PEEK[])")
                it.check(typ, data, "FETCH " + name)
                for item in data:
                    if not isinstance(item, tuple):
                        continue
                    head, raw = item
                    flags = None
                    for mo in fetch_re.finditer(head):
                        if mo.group(2) is not None:
                            flags = mo.group(2).decode().split()
                    key = mid_key(tag, raw)
                    if flags is None:
                        probs.append("%s: no FLAGS before the body in %r" % (name, head[:80]))
                        flags = []
                    if key is None:
                        probs.append("%s: a message without our Message-ID: %r" % (name, raw[:80]))
                        continue
                    ok = raw == message(tag, key)
                    res[key].append((name, sorted(set(flags) - {"\\Recent"}), ok))
            m.unselect()
    finally:
        m.logout()
    return res, probs


class Faults(threading.Thread):
    """One fault every 2-4 s through the proxy, in random modes."""

    def __init__(self, proxy, seed):
        super().__init__(name="faults", daemon=True)
        self.proxy = proxy
        self.rnd = random.Random(seed)
        self.stop_evt = threading.Event()
        self.modes = 0

    def run(self):
        i = 0
        wait = self.rnd.uniform(2, 4)
        while not self.stop_evt.wait(wait):
            i += 1
            if i % 5 == 0:
                mode = "stall after=%d seconds=forever limit=1" % self.rnd.randrange(4000)
                wait = TIMEOUT + 2      # longer than the mount's timeout
            else:
                mode = "random seed=%d min=0 max=3000 stall=2 limit=3" % self.rnd.randrange(1 << 30)
                wait = self.rnd.uniform(2, 4)
            self.proxy.set_mode(mode)
            self.modes += 1
        self.proxy.set_mode("pass")

    def stop(self):
        self.stop_evt.set()
        self.join(30)


def start_child(kind, cfg, out_dir):
    path = os.path.join(out_dir, "%s.json" % cfg["name"])
    cfg["out"] = os.path.join(out_dir, "%s.result.json" % cfg["name"])
    with open(path, "w") as f:
        json.dump(cfg, f)
    log = open(os.path.join(out_dir, "%s.out" % cfg["name"]), "wb")
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), kind, path],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
    log.close()
    register(p, "test_stress %s" % cfg["name"])
    return p


def collect(p, cfg, until):
    """The child's result dict, or {"error": ...} when it hung or died."""
    try:
        p.wait(timeout=max(1, until - time.time()))
    except subprocess.TimeoutExpired:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        unregister(p)
        return {"error": "%s did not finish within %d s of the deadline (killed)" % (
            cfg["name"], GRACE)}
    unregister(p)
    try:
        with open(cfg["out"]) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"error": "%s exited with status %s and no result (%s)" % (
            cfg["name"], p.returncode, e)}


ROUTINE_RE = re.compile(r"^\S+ mailfs: (.*: \d+ new, \d+ gone|IDLE: folder \d+ changed|"
                        r".*: unchanged \(LIST-STATUS\)|moved |expunged |appended |"
                        r"open .*: UID \d+ no longer)")


def log_lines(path, t_hms, width=2, limit=12):
    """The mount's log lines within width seconds of HH:MM:SS that are
    not routine (warnings, refusals, retries)."""
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    h, mi, s = (int(x) for x in t_hms[:8].split(":"))
    t0 = h * 3600 + mi * 60 + s
    out = []
    for ln in lines:
        mo = re.match(r"(\d\d):(\d\d):(\d\d) ", ln)
        if mo and abs(int(mo.group(1)) * 3600 + int(mo.group(2)) * 60 + int(mo.group(3)) - t0) <= width \
                and not ROUTINE_RE.match(ln):
            out.append(ln)
    return out[:limit]


def run_across_drop(root, proxy, tag, folders, mnt):
    """A run of rm (write-behind: the first done at once, the rest queued
    and sent ~20 ms later) during which every open IMAP connection of the
    mount is dropped, while the run goes on: every rm returned 0, so every
    message must end in Trash (a batch sent on a connection that died in
    the pool must be sent again, not given up)."""
    rdir = os.path.join(root, folders["R"])
    names = wait_for(lambda: len(keys_in(tag, os.listdir(rdir))) == RUN_RM and
                     sorted(n for ns in keys_in(tag, os.listdir(rdir)).values() for n in ns), 30)
    if not C.check(names, "run across a drop: the %d messages of R are listed" % RUN_RM):
        return
    rcs, gaps = [], []
    t_last = time.time()
    for i, name in enumerate(names):
        if i == 4:
            # Between two batches of the run: all connections die (the
            # pooled ones unnoticed until used); new ones pass.
            proxy.set_mode("drop after=0")
            wait_for(lambda: proxy.open_connections() == 0, 0.3, 0.02)
            proxy.set_mode("pass")
        gaps.append(time.time() - t_last)
        rcs.append(ename(errno_of(os.unlink, os.path.join(rdir, name))))
        t_last = time.time()
    rc, err = run(["sync", rdir])
    C.check(rc == 0 and all(e == "success" for e in rcs),
            "run across a drop: rm of %d messages (every connection dropped after the 4th) "
            "and sync all succeed" % RUN_RM, "rm: %s; sync: %d %s" % (rcs, rc, err))
    state, _ = server_state(tag, [folders["R"], folders["T"]])
    where = {k: [f for f, _, _ in state.get(k, [])] for k in ("r%d" % j for j in range(RUN_RM))}
    bad = ["r%d: %s" % (j, where["r%d" % j]) for j in range(RUN_RM)
           if where["r%d" % j] != [folders["T"]]]
    if bad:
        print("# run across a drop: gaps between the calls %s s" % [round(g, 2) for g in gaps],
              flush=True)
        for ln in open(mnt.log, errors="replace").read().splitlines():
            if "refused" in ln or folders["R"] in ln:
                print("#   log: %s" % ln, flush=True)
    C.problems(bad, "run across a drop: every message rm returned 0 for is in %s, once" %
               folders["T"])


def judge(tag, state, owners, folders):
    """Check every owned message against its owner's record."""
    loc_of = {folders["A"]: "A", folders["B"]: "B", folders["T"]: "T"}
    dup, conf_loc, conf_flags, third, examples = [], [], [], [], []
    for owner, msgs in owners.items():
        for key, mm in sorted(msgs.items()):
            copies = state.get(key, [])
            if len(copies) > 1:
                dup.append("%s (%s): %d copies: %s" % (key, owner, len(copies),
                                                      [(f, fl) for f, fl, _ in copies]))
                examples.append(mm)
                continue
            actual = ("X", None) if not copies else (loc_of.get(copies[0][0], copies[0][0]),
                                                     copies[0][1])
            alts = [(a[0] if a[0] != "N" else "X", sorted(a[1])) for a in mm["alts"]]
            if any(actual[0] == a[0] and (a[0] == "X" or actual[1] == a[1]) for a in alts):
                continue
            last = mm["hist"][-1] if mm["hist"] else None
            what = "%s (%s): last call %s -> %s at %s; want %s, found %s; calls: %s" % (
                key, owner, last[1] if last else "-", last[4] if last else "-",
                last[0] if last else "-", alts,
                "nowhere" if actual[0] == "X" else "%s %s" % actual,
                "; ".join("%s %s %s->%s %s" % tuple(h) for h in mm["hist"][-4:]))
            examples.append(mm)
            if mm["frozen"]:
                third.append(what)
            elif actual[0] != alts[0][0]:
                conf_loc.append(what)
            else:
                conf_flags.append(what)
    return dup, conf_loc, conf_flags, third, examples


def main_test():
    global H, RUN
    H = it.load_harness()
    RUN = os.path.join(H["state_dir"], "stress-" + LABEL)
    if not ready(C, BIN):
        return 1
    secs = float(os.environ.get("STRESS_SECONDS") or 60)
    seed = int(os.environ.get("STRESS_SEED") or secrets.randbits(31))
    rnd = random.Random(seed)
    tag = "sx-%08x" % rnd.getrandbits(32)
    folders = {"A": tag + "-A", "B": tag + "-B", "C1": tag + "-C1", "C2": tag + "-C2",
               "R": tag + "-R"}
    t_start = time.time()
    it.remove_test_mail(H, DOMAIN, OURS_RE, " (before)")
    fresh_run_dir(RUN)
    write_alice_config(RUN, H, ACCOUNT, "debug = %s\n" % (os.environ.get("STRESS_DEBUG") or "fs:sync"))
    folders["T"] = it.trash_folder(H)
    proxy = faultproxy.FaultProxy(H["imaps_port"], H["host"])
    proxy.start()
    mnt = None
    try:
        owned, by, client = setup(tag, folders)
        print("# stress: seed %d, tag %s, %d s, %d workers, %d+%d+%d messages seeded" % (
            seed, tag, secs, WORKERS, WORKERS * PER_WORKER, BYSTANDERS, 2 * CLIENT_SEED),
            flush=True)
        mnt = mount_own_dirs(BIN, RUN, ACCOUNT, "main",
                             ["-o", "port=%d,timeout=%d,poll_interval=10" % (proxy.port, TIMEOUT)],
                             MOUNT_TIMEOUT)
        mnt = check_mount(C, mnt, "mount through the fault proxy")
        if mnt is None:
            return 1
        root = mnt.mountpoint

        def seeded_shown():
            n = 0
            for p in ("A", "B", "C1", "C2"):
                try:
                    n += len(keys_in(tag, os.listdir(os.path.join(root, folders[p]))))
                except OSError:
                    return False
            return n == WORKERS * PER_WORKER + BYSTANDERS + 2 * CLIENT_SEED
        if not C.check(wait_for(seeded_shown, SHOW_TIMEOUT),
                       "the mount shows every seeded message within %d s" % SHOW_TIMEOUT):
            return 1
        os.listdir(os.path.join(root, folders["T"]))
        run_across_drop(root, proxy, tag, folders, mnt)
        t_load = time.time()
        deadline = t_load + secs
        out_dir = os.path.join(RUN, "procs")
        os.makedirs(out_dir, exist_ok=True)
        children = []
        ccfg = {"name": "client", "tag": tag, "state_dir": H["state_dir"],
                "folders": folders, "seed": rnd.getrandbits(31), "deadline": deadline,
                "model": client, "next_key": 2 * CLIENT_SEED}
        children.append((start_child("--client", ccfg, out_dir), ccfg))
        for w in range(WORKERS):
            wcfg = {"name": "worker%d" % w, "tag": tag, "root": root, "folders": folders,
                    "worker": w, "seed": rnd.getrandbits(31), "deadline": deadline,
                    "msgs": owned[w], "bystanders": {k: v[0] for k, v in by.items()}}
            children.append((start_child("--worker", wcfg, out_dir), wcfg))
        faults = Faults(proxy, rnd.getrandbits(31))
        faults.start()
        results = {}
        for p, cfg in children:
            results[cfg["name"]] = collect(p, cfg, deadline + GRACE)
        faults.stop()
        proxy.set_mode("pass")
        t_end = time.time()
        return finish(tag, folders, mnt, proxy, faults, results, owned, by,
                      t_start, t_load, t_end, secs)
    finally:
        if mnt is not None and mnt.proc.poll() is None:
            mnt.unmount()
        proxy.stop()
        it.remove_test_mail(H, DOMAIN, OURS_RE, " (after)")


def finish(tag, folders, mnt, proxy, faults, results, owned, by, t_start, t_load, t_end, secs):
    root = mnt.mountpoint
    errors = ["%s: %s" % (n, r["error"].strip().splitlines()[-1]) for n, r in results.items()
              if r.get("error")]
    for n, r in results.items():
        if r.get("error"):
            for line in r["error"].strip().splitlines()[-12:]:
                print("# %s: %s" % (n, line), flush=True)
    C.problems(errors, "the 8 workers and the imaplib client ran to the deadline without "
               "an error of their own")

    # What ran: ops and failures per kind, faults.
    ops, fails, notes = collections.Counter(), collections.defaultdict(collections.Counter), \
        collections.Counter()
    bad_reads, reads_ok = [], 0
    for n, r in results.items():
        if not n.startswith("worker") or "ops" not in r:
            continue
        ops.update(r["ops"])
        for k, v in r["fails"].items():
            fails[k].update(v)
        notes.update(r["notes"])
        bad_reads += [dict(b, worker=n) for b in r["bad_reads"]]
        reads_ok += r["reads_ok"]
    kinds = ("rm", "mv", "cp", "setfattr", "ls", "cat")
    fault_events = [e for e in proxy.events if e[2] != "stall end"]
    fault_kinds = collections.Counter(e[2].split()[0] for e in fault_events)
    cl = results.get("client", {})
    print("# stress: %.0f s of load (%.0f s in all so far): ops %s; failed %s; faults %d (%s) "
          "in %d modes, %d connections; client %s" % (
              t_end - t_load, t_end - t_start,
              ", ".join("%s %d" % (k, ops[k]) for k in kinds),
              ", ".join("%s %d %s" % (k, sum(fails[k].values()), dict(fails[k]))
                        for k in kinds if fails[k]) or "none",
              len(fault_events), ", ".join("%s %d" % kv for kv in sorted(fault_kinds.items())),
              faults.modes, proxy.connections, cl.get("ops")), flush=True)
    if notes:
        print("# stress: the mount's listings (may lag the server): %s" % dict(notes), flush=True)
    C.check(fault_events, "the proxy injected faults during the run", "none injected")
    C.check(not proxy.errors, "the proxy ran without errors of its own", proxy.errors[:3])
    ok_kinds = [k for k in kinds if ops[k] - sum(fails[k].values()) > 0]
    C.check(len(ok_kinds) == len(kinds), "every kind of call (rm, mv, cp, setfattr, ls, cat) "
            "succeeded at least once", "only %s" % ok_kinds)

    # Dovecot 2.3 may give a folder deleted and created again under other
    # sessions the UIDVALIDITY of the one before (the imaplib client saw
    # it): then an old name's UID is another message, and no client can
    # tell.  Whole other messages read in such a folder are its doing.
    reused = {r[1] for r in cl.get("uv_reused") or []}
    for r in (cl.get("uv_reused") or [])[:3]:
        print("# stress: Dovecot gave %s a UIDVALIDITY again at %s: %s (earlier ones %s)" % (
            r[1], r[0], r[2], r[3]), flush=True)
    for r in (cl.get("uv_events") or [])[:3]:
        print("# stress: UIDVALIDITY of %s %s at %s: %s -> %s" % (r[1], r[2], r[0], r[3], r[4]),
              flush=True)
    excused = [b for b in bad_reads if b["folder"] in reused and b["whole_other"]]
    for b in excused[:3]:
        print("# stress: excused (UIDVALIDITY reused): %(worker)s %(t)s cat %(folder)s/%(name)s "
              "gave message %(got_key)s" % b, flush=True)
    bad_reads = [b for b in bad_reads if b not in excused]
    C.problems(["%(worker)s %(t)s cat %(folder)s/%(name)s: %(len)d bytes (want %(want_len)d), "
                "Message-ID names %(got_key)s, whole other message: %(whole_other)s" % b
                for b in bad_reads],
               "every cat (%d) returned an error or exactly the bytes of the message its "
               "name and Message-ID name" % (ops["cat"] - sum(fails["cat"].values())))

    n_list = sum(r.get("listings", 0) for r in results.values())
    twice = sorted(t + [n] for n, r in results.items() for t in r.get("list_twice", []))
    C.problems(["%s %s %s (%d entries): %s listed twice" % (t[4], t[0], t[1], t[2], t[3])
                for t in twice] + ["(%d listings in all)" % sum(
                    r.get("n_twice", 0) for r in results.values())] * bool(twice),
               "no listing of a folder (%d) showed an entry twice" % n_list, limit=4)
    missing = sorted(t + [n] for n, r in results.items() for t in r.get("list_missing", []))
    C.problems(["%s %s %s (%d entries): %s missing" % (t[4], t[0], t[1], t[2], t[3])
                for t in missing] + ["(%d listings in all)" % sum(
                    r.get("n_missing", 0) for r in results.values())] * bool(missing),
               "every listing of A and B showed each of its bystanders (never moved)", limit=4)

    # The end: alive, listable, sync, unmount.
    alive = mnt.proc.poll() is None
    try:
        top = os.listdir(root)
    except OSError as e:
        top = "ls: %s" % e
    C.check(alive and isinstance(top, list) and folders["A"] in top,
            "the daemon is alive after the run (its PID exists and ls of the mount works)",
            "alive: %s, ls: %s" % (alive, top if isinstance(top, str) else "ok"))
    t0 = time.time()
    rc, err = run(["sync"] + [os.path.join(root, folders[p]) for p in ("A", "B", "T", "C1", "C2")],
                  timeout=120)
    C.check(rc == 0, "sync of each folder succeeds", "status %d: %s" % (rc, err))
    unmount_and_check(C, mnt, "end", [mnt.log], "the daemon's output or log")
    print("# stress: sync took %.1f s" % (time.time() - t0), flush=True)

    # The server's state, per imaplib.
    state, probs = server_state(tag, also=[folders[p] for p in ("A", "B", "C1", "C2")])
    C.problems(probs, "every message of this run on the server has our Message-ID")
    corrupt = ["%s in %s" % (k, f) for k, cs in state.items() for f, _, ok in cs if not ok]
    C.problems(corrupt, "every message of this run on the server has exactly the bytes it "
               "was made with (%d messages)" % sum(len(v) for v in state.values()))
    owners = {n: r["msgs"] for n, r in results.items() if n.startswith("worker") and "msgs" in r}
    dup, conf_loc, conf_flags, third, examples = judge(tag, state, owners, folders)
    n_owned = sum(len(v) for v in owners.values())
    n_frozen = sum(1 for v in owners.values() for m in v.values() if m["frozen"])
    C.problems(dup, "no message a worker owns exists twice on the server (%d messages)" % n_owned)
    C.problems(conf_loc, "every owned message whose last call returned 0 is where that call "
               "put it (%d)" % (n_owned - n_frozen))
    C.problems(conf_flags, "every owned message whose last call returned 0 has exactly the "
               "flags of its last setfattr (or its seed flags)")
    C.problems(third, "every owned message whose last call failed (%d) is in its state before "
               "or after that call" % n_frozen)
    for mm in examples[:3]:
        last = mm["hist"][-1]
        print("# history: %s" % " | ".join("%s %s %s->%s %s" % tuple(h) for h in mm["hist"]),
              flush=True)
        for ln in log_lines(mnt.log, last[0]):
            print("#   log: %s" % ln, flush=True)

    loc_name = {"A": folders["A"], "B": folders["B"]}
    bprobs = []
    for key, (loc, flags) in sorted(by.items()):
        got = [(f, fl) for f, fl, _ in state.get(key, [])]
        if got != [(loc_name[loc], sorted(flags))]:
            bprobs.append("%s: want %s %s, found %s" % (key, loc_name[loc], flags, got))
    C.problems(bprobs, "the %d bystanders (owned by nobody) are where they were, once, with "
               "their flags" % len(by))

    cprobs = list(cl.get("anomalies") or [])
    if cl.get("trouble"):
        print("# stress: Dovecot's own errors the client logged in again after: %s" %
              "; ".join(cl["trouble"][:5]), flush=True)
    if "model" in cl:
        for place, msgs in cl["model"].items():
            for key, flags in sorted(msgs.items()):
                got = [(f, fl) for f, fl, _ in state.get(key, [])]
                if got != [(folders[place], sorted(flags))]:
                    cprobs.append("%s: want %s %s, found %s" % (key, folders[place], flags, got))
        for key in cl["gone"]:
            if state.get(key):
                cprobs.append("%s: expunged or deleted by the client, found %s" % (
                    key, [(f, fl) for f, fl, _ in state[key]]))
        known = {k for v in owners.values() for k in v} | set(by) | set(cl["gone"]) | \
            {"r%d" % j for j in range(RUN_RM)} | \
            {k for msgs in cl["model"].values() for k in msgs}
        unknown = sorted(k for k in state if k not in known)
        C.problems(["%s at %s" % (k, [f for f, _, _ in state[k]]) for k in unknown],
                   "no message of this run exists that nobody made")
    else:
        cprobs.append("the client left no model")
    C.problems(cprobs, "the imaplib client's messages are exactly as it left them (in its "
               "folders, deleted and recreated %d times), nowhere else" %
               (cl.get("ops") or {}).get("recreate", 0))
    print("# stress: done in %.0f s (setup %.0f s, load %.0f s, end and checks %.0f s)" % (
        time.time() - t_start, t_load - t_start, t_end - t_load, time.time() - t_end), flush=True)
    return 1 if C.failed else 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[2])
    if len(sys.argv) == 3 and sys.argv[1] == "--client":
        return client_main(sys.argv[2])
    rc = C.section("the test ran to its end", main_test)
    if rc is None:
        rc = 1
    C.summary()
    return rc


if __name__ == "__main__":
    sys.exit(main())
