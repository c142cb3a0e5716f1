"""fakeimap.py - a scripted IMAPS server for what Dovecot will not do on
demand: UIDs at the top of the range, bodies far longer than their
RFC822.SIZE, LIST responses that never end.

It speaks just enough IMAP4rev1 for mailfs (and curl's login before it):
CAPABILITY (IMAP4rev1 only: no extension, so mailfs takes its plain
paths), LOGIN (any password), LIST, EXAMINE/SELECT, UID FETCH of
UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (...)] and
BODY.PEEK[], NOOP, LOGOUT; anything else gets BAD.  A UID set it cannot
parse (e.g. "0:*") gets "BAD Invalid messageset", as Dovecot says.

TLS with the harness's server certificate (it names 127.0.0.1), so
mailfs verifies it against the test CA as usual.  Standard library only,
one thread per connection:

    srv = FakeImap(h, {"INBOX": Mailbox(7, [Msg(1, raw), ...])})
    port = srv.start()
    srv.commands          # [command line without tag], in order
    srv.body_override[uid] = (n, chunk)   # BODY[] of uid: a literal of
                                          # n bytes, chunk repeated
    srv.endless_list = True               # LIST never completes
    srv.select_preamble = b"* X ...\r\n"  # sent before every EXAMINE's answer
    srv.sent_bytes        # bytes written to clients, in total
    srv.stop()
"""

import os
import re
import socket
import ssl
import threading

CHUNK = 1 << 16


class Msg:
    def __init__(self, uid, raw, flags=(), size=None,
                 internaldate="01-Jun-2026 10:00:00 +0000"):
        self.uid = uid
        self.raw = raw
        self.flags = list(flags)
        self.size = len(raw) if size is None else size     # RFC822.SIZE told
        self.internaldate = internaldate

    def header_fields(self, names):
        """The named header fields, raw, as BODY[HEADER.FIELDS] gives them."""
        head = self.raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        out, keep = [], False
        for line in head:
            if line[:1] in (b" ", b"\t"):
                if keep:
                    out.append(line)
                continue
            keep = line.split(b":", 1)[0].strip().upper() in names
            if keep:
                out.append(line)
        return b"".join(ln + b"\r\n" for ln in out) + b"\r\n"


class Mailbox:
    def __init__(self, uidvalidity, msgs, uidnext="auto"):
        self.uidvalidity = uidvalidity
        self.msgs = sorted(msgs, key=lambda m: m.uid)
        # "auto": highest UID + 1; None: not reported at all.
        self.uidnext = uidnext


def parse_set(s, top):
    """UIDs of a UID set ("1:*", "5,7:9") given the highest UID top, as a
    list of (lo, hi) ranges; None when malformed (0, junk)."""
    out = []
    for part in s.split(","):
        ends = part.split(":")
        if len(ends) > 2:
            return None
        nums = []
        for e in ends:
            if e == "*":
                nums.append(top)
            elif e.isdigit() and int(e) > 0 and int(e) < (1 << 32):
                nums.append(int(e))
            else:
                return None
        out.append((min(nums), max(nums)))
    return out


def _quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class FakeImap:
    def __init__(self, h, mailboxes, host="127.0.0.1"):
        tls = os.path.join(h["state_dir"], "tls")
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(os.path.join(tls, "server.pem"),
                                 os.path.join(tls, "server.key"))
        self.host = host
        self.mailboxes = mailboxes
        self.port = None
        self.commands = []
        self.errors = []
        self.body_override = {}
        self.endless_list = False
        self.select_preamble = b""
        self.sent_bytes = 0
        self._lock = threading.Lock()
        self._ls = None
        self._stopping = False
        self._socks = set()

    # --- lifecycle -----------------------------------------------------------

    def start(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.host, 0))
        ls.listen(16)
        self._ls = ls
        self.port = ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self.port

    def stop(self):
        self._stopping = True
        self.endless_list = False
        try:
            self._ls.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while not self._stopping:
            try:
                cs, _ = self._ls.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(cs,), daemon=True).start()

    # --- one connection --------------------------------------------------------

    def _serve(self, raw):
        try:
            s = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        with self._lock:
            self._socks.add(s)
        conn = _Conn(self, s)
        try:
            conn.run()
        except (OSError, ssl.SSLError, ConnectionError):
            pass
        except Exception as e:   # noqa: BLE001 - recorded for the test
            with self._lock:
                self.errors.append("%s: %s" % (type(e).__name__, e))
        finally:
            with self._lock:
                self._socks.discard(s)
            try:
                s.close()
            except OSError:
                pass


class _Conn:
    def __init__(self, srv, s):
        self.srv = srv
        self.s = s
        self.buf = b""
        self.selected = None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)
        with self.srv._lock:
            self.srv.sent_bytes += len(data)

    def line(self):
        while b"\n" not in self.buf:
            d = self.s.recv(CHUNK)
            if not d:
                return None
            self.buf += d
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln.rstrip(b"\r").decode("utf-8", "replace")

    def run(self):
        self.send("* OK fake IMAP ready\r\n")
        while True:
            ln = self.line()
            if ln is None:
                return
            tag, _, rest = ln.partition(" ")
            with self.srv._lock:
                self.srv.commands.append(rest)
            cmd, _, args = rest.partition(" ")
            cmd = cmd.upper()
            if cmd == "UID":
                sub, _, args = args.partition(" ")
                cmd = "UID " + sub.upper()
            fn = {"CAPABILITY": self.capability, "LOGIN": self.ok, "NOOP": self.ok,
                  "LIST": self.list, "EXAMINE": self.select, "SELECT": self.select,
                  "UID FETCH": self.fetch, "LOGOUT": self.logout}.get(cmd)
            if fn is None:
                self.send("%s BAD unknown command\r\n" % tag)
            elif fn(tag, args) is False:
                return

    def ok(self, tag, args):
        self.send("%s OK done\r\n" % tag)

    def logout(self, tag, args):
        self.send("* BYE bye\r\n%s OK done\r\n" % tag)
        return False

    def capability(self, tag, args):
        self.send("* CAPABILITY IMAP4rev1\r\n%s OK done\r\n" % tag)

    def list(self, tag, args):
        if self.srv.endless_list:
            block = "".join('* LIST () "/" "junk%08d"\r\n' % i for i in range(2000))
            while self.srv.endless_list:
                self.send(block)
            return False
        out = "".join('* LIST () "/" %s\r\n' % _quote(n) for n in sorted(self.srv.mailboxes))
        self.send(out + "%s OK done\r\n" % tag)

    def select(self, tag, args):
        if self.srv.select_preamble:
            self.send(self.srv.select_preamble)
        name = args.strip().strip('"')
        mb = self.srv.mailboxes.get(name)
        if mb is None:
            self.send("%s NO no such mailbox\r\n" % tag)
            return
        self.selected = mb
        out = ["* %d EXISTS" % len(mb.msgs), "* 0 RECENT",
               "* OK [UIDVALIDITY %d] ok" % mb.uidvalidity]
        nxt = (mb.msgs[-1].uid + 1 if mb.msgs else 1) if mb.uidnext == "auto" else mb.uidnext
        if nxt is not None:
            out.append("* OK [UIDNEXT %d] ok" % nxt)
        out.append("* FLAGS (\\Seen \\Flagged \\Deleted \\Draft \\Answered)")
        self.send("\r\n".join(out) + "\r\n%s OK [READ-ONLY] done\r\n" % tag)

    def fetch(self, tag, args):
        mb = self.selected
        mo = re.match(r"(\S+) \((.*)\)$", args)
        if mb is None or not mo:
            self.send("%s BAD bad fetch\r\n" % tag)
            return
        top = mb.msgs[-1].uid if mb.msgs else 0
        ranges = parse_set(mo.group(1), top)
        if ranges is None:
            self.send("%s BAD Invalid messageset\r\n" % tag)
            return
        items = mo.group(2).upper()
        fields = re.search(r"HEADER\.FIELDS \(([^)]*)\)", items)
        for seq, m in enumerate(mb.msgs, 1):
            if not any(lo <= m.uid <= hi for lo, hi in ranges):
                continue
            head = "* %d FETCH (UID %d FLAGS (%s)" % (seq, m.uid, " ".join(m.flags))
            if "RFC822.SIZE" in items:
                head += " RFC822.SIZE %d" % m.size
            if "INTERNALDATE" in items:
                head += ' INTERNALDATE "%s"' % m.internaldate
            if fields:
                data = m.header_fields([f.encode() for f in fields.group(1).split()])
                self.send(head + " BODY[HEADER.FIELDS (%s)] {%d}\r\n" % (fields.group(1), len(data)))
                self.send(data + b")\r\n")
            elif "BODY.PEEK[]" in items:
                over = self.srv.body_override.get(m.uid)
                if over is None:
                    self.send(head + " BODY[] {%d}\r\n" % len(m.raw))
                    self.send(m.raw + b")\r\n")
                else:
                    n, chunk = over
                    self.send(head + " BODY[] {%d}\r\n" % n)
                    left = n
                    while left > 0:
                        part = chunk[:left]
                        self.send(part)
                        left -= len(part)
                    self.send(b")\r\n")
            else:
                self.send(head + ")\r\n")
        self.send("%s OK done\r\n" % tag)
