"""lieproxy.py - a scripted IMAPS man-in-the-middle that misreports sizes.

Some servers (Gmail) report RFC822.SIZE wrongly; Dovecot never does.  This
proxy sits between a client and the test Dovecot and changes, in
server->client data only, every `RFC822.SIZE <n>` of a FETCH response to
`<n + delta(uid)>`; everything else, literals above all (message bodies,
header fields), passes byte for byte.

  client --TLS (server.pem/.key of the harness)--> proxy 127.0.0.1:<free port>
         --TLS (verified against the test CA)-----> Dovecot's IMAPS port

The stream parsing is deliberately simple: it knows Dovecot's response
format.  A response is a line; a line ending in "{N}" (or "~{N}") is
followed by exactly N literal bytes and then the rest of the same
response.  Only FETCH responses ("* <seq> FETCH (...") are rewritten, and
only in their line parts, never inside a literal.  The UID of the message
is taken from the same response (Dovecot always sends UID when the client
uses UID FETCH).  The client->server direction is relayed unchanged; it is
parsed the same way only to note the selected mailbox (SELECT/EXAMINE), so
each rewrite is recorded as (mailbox, uid, true size, lied size).

Standard library only (asyncio, in a background thread):

    p = LieProxy(h, delta)            # h = imaptest.load_harness()
    port = p.start()
    ... p.rewrites, p.errors, p.connections ...
    p.stop()

Run as a program it serves until interrupted:
    python3 tests/harness/lieproxy.py [--minus K] [--plus K]
(UID % 3 == 1: n - K (default 7), UID % 3 == 2: n + K (default 13)).
"""

import asyncio
import os
import re
import ssl
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imaptest  # noqa: E402

LITERAL_RE = re.compile(rb"~?\{(\d+)\}\r?\n\Z")
FETCH_RE = re.compile(rb"\* \d+ FETCH \(", re.I)
SIZE_RE = re.compile(rb"(RFC822\.SIZE )(\d+)", re.I)
UID_RE = re.compile(rb"[( ]UID (\d+)[ )]", re.I)
SELECT_RE = re.compile(rb"^\S+ (?:SELECT|EXAMINE) (\"(?:[^\"\\]|\\.)*\"|[^ \r\n{]+)", re.I)
LINE_LIMIT = 1 << 20
CHUNK = 65536


def mod3_delta(minus=7, plus=13):
    """The default lie: UID % 3 == 1 -> -minus, == 2 -> +plus, else 0."""
    def delta(uid):
        return (0, -minus, plus)[uid % 3]
    return delta


class LieProxy:
    def __init__(self, h, delta, host="127.0.0.1"):
        tls = os.path.join(h["state_dir"], "tls")
        self.upstream = (h["host"], h["imaps_port"])
        self.host = host
        self.delta = delta
        self.server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_ctx.load_cert_chain(os.path.join(tls, "server.pem"),
                                        os.path.join(tls, "server.key"))
        self.client_ctx = imaptest.tls_context(h["ca_file"])
        self.port = None
        self.rewrites = []      # (mailbox or None, uid, true, lied)
        self.unchanged = 0      # RFC822.SIZE items passed as they were
        self.connections = 0
        self.errors = []        # problems the proxy itself ran into
        self.loop_errors = []   # what asyncio would have printed (TLS EOFs...)
        self._loop = None
        self._thread = None
        self._server = None
        self._tasks = set()

    # --- lifecycle ---------------------------------------------------------

    def start(self, timeout=10):
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.set_exception_handler(self._loop_error)
            try:
                self._server = self._loop.run_until_complete(asyncio.start_server(
                    self._handle, self.host, 0, ssl=self.server_ctx, limit=LINE_LIMIT))
                self.port = self._server.sockets[0].getsockname()[1]
            except Exception as e:   # noqa: BLE001 - reported to the test
                self.errors.append("listen: %s: %s" % (type(e).__name__, e))
            ready.set()
            if self._server is not None:
                self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="lieproxy", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or self.port is None:
            raise RuntimeError("lieproxy did not start: %s" % "; ".join(self.errors))
        return self.port

    def stop(self, timeout=10):
        if self._loop is None or self._thread is None:
            return

        async def shutdown():
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

        if self._server is not None and self._loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
            try:
                fut.result(timeout)
            except Exception as e:   # noqa: BLE001
                self.errors.append("shutdown: %s: %s" % (type(e).__name__, e))
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None

    def _loop_error(self, loop, context):
        exc = context.get("exception")
        self.loop_errors.append("%s%s" % (context.get("message", ""),
                                          ": %r" % exc if exc else ""))

    # --- one connection ------------------------------------------------------

    async def _handle(self, creader, cwriter):
        task = asyncio.current_task()
        self._tasks.add(task)
        self.connections += 1
        state = {"mailbox": None}
        swriter = None
        try:
            try:
                sreader, swriter = await asyncio.wait_for(asyncio.open_connection(
                    self.upstream[0], self.upstream[1], ssl=self.client_ctx,
                    server_hostname=self.upstream[0], limit=LINE_LIMIT), 30)
            except Exception as e:   # noqa: BLE001
                self.errors.append("upstream connect: %s: %s" % (type(e).__name__, e))
                return
            up = asyncio.ensure_future(self._pump(creader, swriter, state, False))
            down = asyncio.ensure_future(self._pump(sreader, cwriter, state, True))
            done, pending = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
        except asyncio.CancelledError:
            pass
        finally:
            for w in (cwriter, swriter):
                if w is not None:
                    w.close()
            self._tasks.discard(task)

    async def _pump(self, reader, writer, state, downstream):
        """Relay one direction response by response (line, then literal)."""
        cont = False        # the next line continues a response after a literal
        fetch = False
        uid = None
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as e:
                    if e.partial:
                        writer.write(e.partial)
                        await writer.drain()
                    return
                except asyncio.LimitOverrunError:
                    # Not a line we know; pass the bytes on untouched.
                    chunk = await reader.read(CHUNK)
                    if not chunk:
                        return
                    writer.write(chunk)
                    await writer.drain()
                    continue
                if downstream:
                    if not cont:
                        fetch = bool(FETCH_RE.match(line))
                        uid = None
                    if fetch:
                        line, uid = self._rewrite(line, uid, state["mailbox"])
                elif not cont:
                    m = SELECT_RE.match(line)
                    if m:
                        state["mailbox"] = _mailbox(m.group(1))
                writer.write(line)
                m = LITERAL_RE.search(line)
                cont = m is not None
                if m:
                    left = int(m.group(1))
                    while left > 0:
                        chunk = await reader.read(min(left, CHUNK))
                        if not chunk:
                            return
                        writer.write(chunk)
                        left -= len(chunk)
                await writer.drain()
        except (ConnectionError, ssl.SSLError, OSError):
            return

    def _rewrite(self, line, uid, mailbox):
        if uid is None:
            m = UID_RE.search(line)
            if m:
                uid = int(m.group(1))

        def sub(m):
            n = int(m.group(2))
            d = self.delta(uid) if uid is not None else 0
            if uid is None:
                self.errors.append("RFC822.SIZE without UID in %r" % line[:200])
            if d == 0 or n + d < 0:
                self.unchanged += 1
                return m.group(0)
            self.rewrites.append((mailbox, uid, n, n + d))
            return m.group(1) + str(n + d).encode()

        return SIZE_RE.sub(sub, line), uid


def _mailbox(tok):
    if tok.startswith(b'"'):
        tok = re.sub(rb"\\(.)", rb"\1", tok[1:-1])
    try:
        return imaptest.utf7_decode(tok.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return tok.decode("ascii", "replace")


def main(argv):
    import argparse
    import signal
    import time

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minus", type=int, default=7)
    ap.add_argument("--plus", type=int, default=13)
    a = ap.parse_args(argv)
    p = LieProxy(imaptest.load_harness(), mod3_delta(a.minus, a.plus))
    port = p.start()
    print("lieproxy: imaps://127.0.0.1:%d -> %s:%d" % ((port,) + p.upstream), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    p.stop()
    print("lieproxy: %d connections, %d sizes rewritten, errors: %s"
          % (p.connections, len(p.rewrites), p.errors or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
