"""faultproxy.py - a TCP proxy that injects network faults on demand.

    client --TCP--> proxy 127.0.0.1:<port> --TCP--> upstream (Dovecot's IMAPS)

It relays raw bytes and never looks inside them: TLS runs end to end
between the client and Dovecot (the server certificate names 127.0.0.1,
so a client connecting to the proxy's port on 127.0.0.1 verifies it as
usual).  What it does to the connections is set at run time by a mode,
which applies to every open connection and to every new one:

  pass                        relay everything (the default)
  drop  [after=N] [limit=K]   after N more bytes of server->client data on
                              a connection, close both sides (FIN) - the
                              client sees the stream end, maybe in the
                              middle of a TLS record
  reset [after=N] [limit=K]   the same, but the client side is closed with
                              SO_LINGER 0: the client gets an RST
  stall [after=N] [seconds=S|forever] [limit=K]
                              after N more server->client bytes, stop
                              relaying in both directions for S seconds
                              (default forever, i.e. until the mode
                              changes or the client gives up and closes);
                              then carry on with nothing lost
  refuse [limit=K]            new connections are reset at once (open ones
                              are left alone): "port closed" without
                              stopping the server
  random [seed=N] [min=A] [max=B] [stall=S] [limit=K]
                              every connection (open or new) gets a plan
                              from random.Random(seed), drawn in the order
                              the proxy meets them: drop, reset or stall
                              (for S seconds, default forever) after a
                              byte count in [A, B] (defaults 0, 2000000),
                              or nothing; the kinds are dealt from a
                              shuffled deck, so any four consecutive plans
                              from a fresh deck hold each kind once

N counts server->client bytes from the moment the mode was set (for
connections already open) or from the connection's start (for new ones);
after=0 (the default) means at once, without waiting for data.  The cut is
exact: with after=N the client receives exactly N more bytes.  limit=K:
at most K faults are injected under this mode (a stall counts when it
starts); after that, connections are relayed untouched.  Setting a mode
(even the same one again) starts a new count and new plans; setting
`pass` also ends every stall at once.

Every injected fault is recorded in .events as (seconds since start,
connection number, kind, server->client bytes relayed on that connection
until then), so a test can say what it did.

In a test (standard library only, threads):

    p = FaultProxy(h["imaps_port"])          # h = imaptest.load_harness()
    port = p.start()
    p.set_mode("drop after=1500000 limit=3")  # or p.set_mode("drop", after=...)
    ... p.events, p.connections, p.bytes_down, p.errors ...
    p.set_mode("pass")
    p.stop()

Run as a program it serves until interrupted, and takes the mode from a
control file (re-read whenever it changes, one mode line as above):

    python3 tests/harness/faultproxy.py [--port P] [--upstream-port U]
        [--control FILE] [--mode "MODE"]

prints the port it listens on, and each fault as it is injected.
Upstream defaults to the IMAPS port in $MAILFS_TEST_DIR/harness.json.
"""

import os
import random
import select
import socket
import struct
import sys
import threading
import time

CHUNK = 65536
FOREVER = float("inf")
KINDS = ("pass", "drop", "reset", "stall", "refuse", "random")


class Mode:
    """One parsed mode line."""

    def __init__(self, kind="pass", after=0, seconds=FOREVER, limit=None,
                 seed=0, lo=0, hi=2000000):
        if kind not in KINDS:
            raise ValueError("unknown mode %r (one of %s)" % (kind, ", ".join(KINDS)))
        self.kind = kind
        self.after = int(after)
        self.seconds = seconds
        self.limit = None if limit is None else int(limit)
        self.seed = seed
        self.lo, self.hi = int(lo), int(hi)
        if self.after < 0 or self.lo < 0 or self.hi < self.lo:
            raise ValueError("bad byte counts in mode %s" % self)

    @classmethod
    def parse(cls, text, **kw):
        words = text.split()
        if not words:
            raise ValueError("empty mode")
        args = {}
        for w in words[1:]:
            k, sep, v = w.partition("=")
            if not sep:
                raise ValueError("want key=value, got %r" % w)
            args[k] = v
        args.update({k: str(v) for k, v in kw.items()})
        out = {"kind": words[0]}
        for k, v in args.items():
            if k in ("seconds", "stall"):
                out["seconds"] = FOREVER if v in ("forever", "inf") else float(v)
            elif k == "after":
                out["after"] = int(v)
            elif k == "limit":
                out["limit"] = int(v)
            elif k == "seed":
                out["seed"] = int(v)
            elif k == "min":
                out["lo"] = int(v)
            elif k == "max":
                out["hi"] = int(v)
            else:
                raise ValueError("unknown mode argument %r" % k)
        return cls(**out)

    def __str__(self):
        s = self.kind
        if self.kind in ("drop", "reset", "stall"):
            s += " after=%d" % self.after
        if self.kind in ("stall", "random"):
            s += " %s=%s" % ("seconds" if self.kind == "stall" else "stall",
                             "forever" if self.seconds == FOREVER else self.seconds)
        if self.kind == "random":
            s += " seed=%d min=%d max=%d" % (self.seed, self.lo, self.hi)
        if self.limit is not None:
            s += " limit=%d" % self.limit
        return s


class _Conn:
    """One relayed connection and its fault plan for the current mode."""

    def __init__(self, num, client, upstream):
        self.num = num
        self.client = client
        self.upstream = upstream
        self.gen = -1           # mode generation the plan belongs to
        self.plan = None        # (kind, budget bytes, stall seconds) or None
        self.down = 0           # server->client bytes relayed, in total
        self.since = 0          # ... since the current plan was made
        self.stall_until = None
        self.to_upstream = b""  # client data held back during a stall
        self.closed = False


class FaultProxy:
    def __init__(self, upstream_port, upstream_host="127.0.0.1", host="127.0.0.1", port=0):
        self.upstream = (upstream_host, int(upstream_port))
        self.host = host
        self.want_port = port
        self.port = None
        self.events = []        # (t, conn number, kind, server->client bytes so far)
        self.errors = []        # problems of the proxy itself
        self.connections = 0
        self.bytes_down = 0
        self.bytes_up = 0
        self.on_event = None    # optional callback(event tuple)
        self._lock = threading.Lock()
        self._mode = Mode()
        self._gen = 0
        self._injected = 0
        self._rng = random.Random(0)
        self._deck = []
        self._conns = set()
        self._listener = None
        self._stopping = False
        self._threads = []
        self._t0 = time.time()

    # --- control -----------------------------------------------------------

    def set_mode(self, text, **kw):
        """Set the mode from a line ("drop after=1000 limit=2") and/or
        keywords (set_mode("drop", after=1000)); returns the Mode."""
        m = Mode.parse(text, **kw)
        with self._lock:
            self._mode = m
            self._gen += 1
            self._injected = 0
            self._rng = random.Random(m.seed)
            self._deck = []
        return m

    @property
    def mode(self):
        with self._lock:
            return self._mode

    def injected(self, kind=None):
        """How many faults were injected so far (of one kind)."""
        with self._lock:
            return sum(1 for e in self.events if e[2] != "stall end" and
                       (kind is None or e[2].split()[0] == kind))

    def open_connections(self):
        with self._lock:
            return len(self._conns)

    # --- lifecycle -----------------------------------------------------------

    def start(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.host, self.want_port))
        ls.listen(64)
        self._listener = ls
        self.port = ls.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name="faultproxy-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self.port

    def stop(self, timeout=10):
        self._stopping = True
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            self._close(c)
        deadline = time.time() + timeout
        for t in list(self._threads):
            t.join(max(0.1, deadline - time.time()))

    # --- internals -------------------------------------------------------------

    def _event(self, c, kind):
        ev = (round(time.time() - self._t0, 3), c.num if c else 0, kind, c.down if c else 0)
        with self._lock:
            self.events.append(ev)
        cb = self.on_event
        if cb:
            try:
                cb(ev)
            except Exception:   # noqa: BLE001 - a printing callback must not kill us
                pass

    def _accept_loop(self):
        while not self._stopping:
            try:
                cs, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                num = self.connections
                refuse = (self._mode.kind == "refuse" and
                          (self._mode.limit is None or self._injected < self._mode.limit))
                if refuse:
                    self._injected += 1
            if refuse:
                c = _Conn(num, cs, None)
                self._event(c, "refuse")
                _rst(cs)
                continue
            try:
                us = socket.create_connection(self.upstream, timeout=10)
                us.settimeout(None)
            except OSError as e:
                # Upstream down: the client sees its connection closed, as
                # with a server that is not there.
                with self._lock:
                    self.errors.append("upstream connect: %s" % e)
                _rst(cs)
                continue
            for s in (cs, us):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Conn(num, cs, us)
            with self._lock:
                self._conns.add(c)
            t = threading.Thread(target=self._relay, args=(c,), name="faultproxy-%d" % num,
                                 daemon=True)
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _replan(self, c):
        """Called with the lock held: a new plan when the mode changed."""
        if c.gen == self._gen:
            return
        c.gen = self._gen
        c.since = 0
        m = self._mode
        c.stall_until = None        # a new mode ends a stall
        if m.kind in ("drop", "reset", "stall"):
            c.plan = (m.kind, m.after, m.seconds)
        elif m.kind == "random":
            # Kinds come from a shuffled deck, so every four plans hold
            # each of drop, reset, stall and nothing once.
            if not self._deck:
                self._deck = ["drop", "reset", "stall", None]
                self._rng.shuffle(self._deck)
            kind = self._deck.pop()
            budget = self._rng.randint(m.lo, m.hi)
            c.plan = None if kind is None else (kind, budget, m.seconds if kind == "stall" else 0)
        else:
            c.plan = None

    def _may_inject(self):
        """Lock held: True (and counted) when the mode's limit allows one more."""
        lim = self._mode.limit
        if lim is not None and self._injected >= lim:
            return False
        self._injected += 1
        return True

    def _fire(self, c):
        """The plan's byte budget is used up: inject its fault.  Returns
        False when the connection is gone."""
        with self._lock:
            plan = c.plan
            c.plan = None
            if plan is None or not self._may_inject():
                return True
            kind, _, secs = plan
            if kind == "stall":
                c.stall_until = time.time() + secs if secs != FOREVER else FOREVER
        self._event(c, kind if kind != "stall" else
                    "stall %s" % ("forever" if secs == FOREVER else "%gs" % secs))
        if kind == "drop":
            self._close(c)
            return False
        if kind == "reset":
            self._close(c, rst=True)
            return False
        return True

    def _close(self, c, rst=False):
        with self._lock:
            if c.closed:
                return
            c.closed = True
            self._conns.discard(c)
        if rst:
            _rst(c.client)
        else:
            _shut(c.client)
        if c.upstream is not None:
            _shut(c.upstream)

    def _budget(self, c):
        """Lock held: bytes the client may still get before the plan fires
        (None: no limit)."""
        if c.plan is None:
            return None
        return max(0, c.plan[1] - c.since)

    def _relay(self, c):
        try:
            self._relay_loop(c)
        except (ConnectionError, TimeoutError):
            pass                # a peer went away: the end of this connection
        except Exception as e:   # noqa: BLE001 - recorded for the test
            if not c.closed:
                with self._lock:
                    self.errors.append("connection %d: %s: %s" % (c.num, type(e).__name__, e))
        finally:
            self._close(c)

    def _relay_loop(self, c):
        cs, us = c.client, c.upstream
        while not c.closed and not self._stopping:
            with self._lock:
                self._replan(c)
                budget = self._budget(c)
                stall = c.stall_until
            if budget == 0:
                if not self._fire(c):
                    return
                continue
            now = time.time()
            if stall is not None:
                if stall != FOREVER and now >= stall:
                    with self._lock:
                        c.stall_until = None
                    self._event(c, "stall end")
                    continue
                # Stalled: hold back both directions, but notice the client
                # going away (and keep what it sends for later).
                r, _, _ = select.select([cs], [], [], 0.1)
                if r:
                    data = cs.recv(CHUNK)
                    if not data:
                        return
                    c.to_upstream += data
                continue
            if c.to_upstream:
                us.sendall(c.to_upstream)
                self.bytes_up += len(c.to_upstream)
                c.to_upstream = b""
            r, _, _ = select.select([cs, us], [], [], 0.1)
            if cs in r:
                data = cs.recv(CHUNK)
                if not data:
                    return
                us.sendall(data)
                self.bytes_up += len(data)
            if us in r:
                with self._lock:
                    self._replan(c)
                    budget = self._budget(c)
                n = CHUNK if budget is None else min(CHUNK, budget)
                if n == 0:
                    continue
                data = us.recv(n)
                if not data:
                    return
                cs.sendall(data)
                with self._lock:
                    c.down += len(data)
                    c.since += len(data)
                    self.bytes_down += len(data)


def _shut(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


def _rst(s):
    """Close with SO_LINGER 0: the peer gets an RST, not a FIN."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


def main(argv):
    import argparse
    import signal

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="listen port (default: any free one)")
    ap.add_argument("--upstream-port", type=int,
                    help="default: imaps_port of $MAILFS_TEST_DIR/harness.json")
    ap.add_argument("--control", help="file holding the mode line; re-read when it changes")
    ap.add_argument("--mode", default="pass", help="initial mode (default pass)")
    a = ap.parse_args(argv)
    up = a.upstream_port
    if up is None:
        import imaptest
        up = imaptest.load_harness()["imaps_port"]
    p = FaultProxy(up, port=a.port)
    p.on_event = lambda ev: print("faultproxy: %.3f conn %d: %s after %d bytes" % ev, flush=True)
    p.set_mode(a.mode)
    port = p.start()
    print("faultproxy: 127.0.0.1:%d -> %s:%d, mode %s" % ((port,) + p.upstream + (p.mode,)),
          flush=True)
    last = None
    try:
        while True:
            if a.control:
                try:
                    with open(a.control) as f:
                        text = f.read().strip()
                except OSError:
                    text = None
                if text and text != last:
                    last = text
                    try:
                        print("faultproxy: mode %s" % p.set_mode(text), flush=True)
                    except ValueError as e:
                        print("faultproxy: control file: %s" % e, flush=True)
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    p.stop()
    print("faultproxy: %d connections, %d bytes down, %d up, %d faults, errors: %s"
          % (p.connections, p.bytes_down, p.bytes_up, len(p.events), p.errors or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
