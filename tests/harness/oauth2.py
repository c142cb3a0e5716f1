#!/usr/bin/env python3
"""oauth2.py - the OAuth2 token introspection endpoint (RFC 7662) that the
private Dovecot's oauth2 passdb asks (tests/harness/start.sh points it at
http://127.0.0.1:$OAUTH2_PORT/introspect).

A token is good while it is listed in a file, one "TOKEN USER" per line,
re-read on every request: a test rotates a token by rewriting the file,
and the old one is refused from then on.  The answer is
{"active": true, "username": USER} or {"active": false}.  Requests may
POST token=... (introspection_mode = post), GET ...?token=... or carry
"Authorization: Bearer ..."; every token asked about is remembered, in
order, so a test can tell which ones Dovecot saw.  127.0.0.1 only.

    srv = oauth2.Introspection(h["oauth2_port"], tokens_file); srv.start()
    srv.asked          # [(time, token, accepted)]
    srv.stop()

As a program: python3 tests/harness/oauth2.py --port P --tokens FILE
(runs until killed; one line per request on stdout, tokens shortened).
"""

import argparse
import http.server
import json
import threading
import time
import urllib.parse


def read_tokens(path):
    """{token: user} from the file; empty if it is missing."""
    good = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    good[parts[0]] = parts[1]
    except OSError:
        pass
    return good


class Introspection:
    def __init__(self, port, tokens_file, verbose=False):
        self.port = port
        self.tokens_file = tokens_file
        self.verbose = verbose
        self.asked = []
        self.lock = threading.Lock()
        self.httpd = None
        self.thread = None

    def _handler(self):
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            # One request per connection: stop() then really stops answering
            # (a kept-alive connection would outlive the listener).
            protocol_version = "HTTP/1.0"

            def log_message(self, fmt, *args):     # quiet unless asked
                pass

            def _token(self, body):
                auth = self.headers.get("Authorization", "")
                if auth.lower().startswith("bearer "):
                    return auth[7:].strip()
                url = urllib.parse.urlsplit(self.path)
                for src in (body, url.query):
                    q = urllib.parse.parse_qs(src)
                    if "token" in q:
                        return q["token"][0]
                # introspection_mode = get appends the token to the URL.
                tail = url.path.rsplit("/", 1)[-1]
                return urllib.parse.unquote(tail) if tail != "introspect" else ""

            def _answer(self, body):
                token = self._token(body)
                user = read_tokens(srv.tokens_file).get(token)
                with srv.lock:
                    srv.asked.append((time.time(), token, user is not None))
                if srv.verbose:
                    print("%s %s...: %s" % (self.command, token[:6],
                                            user or "refused"), flush=True)
                doc = {"active": True, "username": user} if user else {"active": False}
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self._answer(self.rfile.read(n).decode("utf-8", "replace"))

            def do_GET(self):
                self._answer("")

        return Handler

    def start(self):
        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port),
                                                     self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self.port

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def tokens_asked(self, since=0.0):
        """[(token, accepted)] asked about after time since."""
        with self.lock:
            return [(t, ok) for (ts, t, ok) in self.asked if ts >= since]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tokens", required=True)
    a = ap.parse_args()
    srv = Introspection(a.port, a.tokens, verbose=True)
    srv.start()
    print("listening on 127.0.0.1:%d" % a.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
