#!/usr/bin/env python3
"""test_systemd.py - mailfs as a systemd user service, without a systemd
user instance: the unit's own lines run as systemd would run them, against
a notify socket and a journal stream of this test's making.

  unit     systemd/mailfs@.service.in, made into a unit for this binary,
           passes `systemd-analyze verify`; its RestartPreventExitStatus
           is exactly the statuses mailfs(1)'s EXIT STATUS says need
           someone to act (64 76 77 78).
  service  With HOME=<run>/home and the account in its config: the unit's
           ExecStartPre, then ExecStart with NOTIFY_SOCKET set (a datagram
           socket of this test, as systemd's) and stderr a file named by
           JOURNAL_STREAM.  mailfs sends READY=1 only once the tree can be
           used (INBOX is listed at that moment), at ~/Mail/ACCOUNT; its
           log lines carry "<N>" priorities and no time; ExecStop
           unmounts, STOPPING=1 comes, and mailfs exits 0.
  early    A refused login with stderr the journal: one "<3>mailfs: ..."
           line, exit status 77; the same with JOURNAL_STREAM naming
           another file: no prefix.
  install  `make install DESTDIR=...` (release binary only) installs
           exactly the binary, the man pages and the unit, the unit's
           ExecStart naming $(PREFIX)/bin/mailfs.

Needs the private Dovecot (tests/harness/start.sh).
Environment (MAILFS_BIN, MAILFS_TEST_DIR, MAILFS_TEST_LABEL), output: mounttest.py.
"""

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (REPO_ROOT, kill_pid, listdir, mounted, ready, register,  # noqa: E402
                       run_once, sanitizer_reports, setup_test, tail, unregister,
                       wait_for, write_alice_config)

BIN, LABEL, C, H, RUN = setup_test("systemd")
ACCOUNT = "work"
UNIT_IN = os.path.join(REPO_ROOT, "systemd", "mailfs@.service.in")
NOT_RETRIED = {64, 76, 77, 78}
READY_TIMEOUT = 90


def unit_text():
    """The unit for this binary: @BINDIR@ is the binary's directory."""
    with open(UNIT_IN) as f:
        return f.read().replace("@BINDIR@", os.path.dirname(BIN))


def unit_lines(text, key):
    """The values of key= in the [Service] section, in order."""
    sect, out = None, []
    for ln in text.splitlines():
        ln = ln.strip()
        if ln.startswith("["):
            sect = ln
        elif sect == "[Service]" and ln.startswith(key + "="):
            out.append(ln[len(key) + 1:])
    return out


def expand(line, home):
    """A unit's command line with the specifiers it uses (%i, %h)."""
    return [a.replace("%i", ACCOUNT).replace("%h", home) for a in shlex.split(line)]


def case_unit():
    text = unit_text()
    path = os.path.join(RUN, "mailfs@%s.service" % ACCOUNT)
    with open(path, "w") as f:
        f.write(text)
    tool = shutil.which("systemd-analyze")
    if C.check(tool is not None, "unit: systemd-analyze is installed", "not found"):
        p = subprocess.run([tool, "verify", "--man=no", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        C.check(p.returncode == 0 and not p.stdout.strip(),
                "unit: systemd-analyze verify finds nothing to say",
                "status %d: %r" % (p.returncode, p.stdout[:300]))
    prevent = unit_lines(text, "RestartPreventExitStatus")
    got = {int(x) for x in prevent[0].split()} if prevent else set()
    C.check(got == NOT_RETRIED and unit_lines(text, "Restart") == ["on-failure"],
            "unit: Restart=on-failure, and RestartPreventExitStatus is the statuses that need "
            "someone to act (%s)" % " ".join(map(str, sorted(NOT_RETRIED))),
            "Restart %r, RestartPreventExitStatus %r" % (unit_lines(text, "Restart"), prevent))
    man = open(os.path.join(REPO_ROOT, "man", "mailfs.1")).read()
    sect = man[man.index(".SH EXIT STATUS"):]
    sect = sect[:sect.index("\n.SH ", 1)]
    listed = {int(x) for x in re.findall(r"^\.B (\d+)$", sect, re.M)}
    C.check(NOT_RETRIED <= listed, "unit: mailfs(1) EXIT STATUS explains each of them",
            "listed: %s" % sorted(listed))
    return text


class Listener:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.got = []

    def wait(self, key, timeout):
        """Datagrams until one holds the line key (e.g. "READY=1"); True
        if it came within timeout."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(key in m.split("\n") for m in self.got):
                return True
            self.sock.settimeout(max(0.05, deadline - time.time()))
            try:
                self.got.append(self.sock.recv(4096).decode("utf-8", "replace"))
            except socket.timeout:
                pass
        return any(key in m.split("\n") for m in self.got)

    def close(self):
        self.sock.close()


def service_env(home):
    env = dict(os.environ)
    for k in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "MAILFS_BIN"):
        env.pop(k, None)
    env["HOME"] = home
    return env


def journal_stream(path):
    st = os.stat(path)
    return "%d:%d" % (st.st_dev, st.st_ino)


def case_service(text):
    home = os.path.join(RUN, "home")
    os.makedirs(home)
    # The account in ~/.config/mailfs/config, as a user would have it.
    write_alice_config(home, H, ACCOUNT)
    os.rename(os.path.join(home, "config"), os.path.join(home, ".config"))
    env = service_env(home)
    mnt = os.path.join(home, "Mail", ACCOUNT)
    pre = unit_lines(text, "ExecStartPre")
    start = unit_lines(text, "ExecStart")
    stop = unit_lines(text, "ExecStop")
    if not C.check(len(start) == 1 and len(stop) == 1, "service: one ExecStart and one ExecStop",
                   "%r %r" % (start, stop)):
        return
    for line in pre:
        p = subprocess.run(expand(line, home), env=env, timeout=60)
        C.check(p.returncode == 0, "service: ExecStartPre %s succeeds" % line,
                "status %d" % p.returncode)
    C.check(os.path.isdir(mnt), "service: ~/Mail/%s is there to mount on" % ACCOUNT, "missing")

    listener = Listener(os.path.join(RUN, "notify"))
    err_path = os.path.join(RUN, "journal")
    err = open(err_path, "wb")
    env["NOTIFY_SOCKET"] = listener.path
    env["JOURNAL_STREAM"] = journal_stream(err_path)
    proc = subprocess.Popen(expand(start[0], home), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err)
    register(proc, mnt)
    try:
        is_ready = listener.wait("READY=1", READY_TIMEOUT)
        # Listed at once: READY=1 promises a usable tree.
        entries = listdir(mnt) if is_ready else None
        C.check(is_ready, "service: mailfs sends READY=1 to NOTIFY_SOCKET",
                "nothing within %d s; got %r; stderr: %s" % (READY_TIMEOUT, listener.got,
                                                             tail(err_path)))
        C.check(is_ready and mounted(mnt) and entries is not None and "INBOX" in entries,
                "service: at READY=1 the tree is mounted at ~/Mail/%s and lists INBOX" % ACCOUNT,
                "mounted %s, entries %r" % (mounted(mnt), entries))
        p = subprocess.run(expand(stop[0], home), env=env, timeout=60,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        C.check(p.returncode == 0, "service: ExecStop (%s) succeeds" % stop[0],
                "status %d: %r" % (p.returncode, p.stdout[:200]))
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        C.check(listener.wait("STOPPING=1", 5), "service: mailfs sends STOPPING=1 as it unmounts",
                "got %r" % listener.got)
        C.check(rc == 0 and not mounted(mnt), "service: after ExecStop mailfs exits 0, unmounted",
                "status %s, mounted %s" % (rc, mounted(mnt)))
    finally:
        if proc.poll() is None:
            kill_pid(proc)
        if mounted(mnt):
            subprocess.run(["fusermount3", "-uz", mnt])
        unregister(proc)
        err.close()
        listener.close()
    lines = [ln for ln in open(err_path, encoding="utf-8", errors="replace").read().splitlines()
             if ln]
    bad = [ln for ln in lines if not re.match(r"^<[0-7]>mailfs: ", ln)]
    C.check(lines and not bad,
            "service: every line on the journal stream is '<N>mailfs: ...' (no time of its own)",
            "%d lines, not so: %r" % (len(lines), bad[:3]))
    C.check(any(re.match(r"^<6>mailfs: mounted ", ln) for ln in lines),
            "service: 'mounted ...' is logged at info (<6>)", "%r" % lines[:5])
    rep = sanitizer_reports([err_path])
    C.check(not rep, "service: no sanitizer report", "; ".join("%s: %s" % r for r in rep))


def case_early():
    """A refused login: its one line at priority error, exit 77."""
    home = os.path.join(RUN, "home-bad")
    write_alice_config(home, H, ACCOUNT)
    cfg = os.path.join(home, "config", "mailfs", "config")
    with open(cfg) as f:
        text = f.read()
    wrong = os.path.join(home, "wrong.pw")
    with open(wrong, "w") as f:
        f.write("not-the-password\n")
    with open(cfg, "w") as f:
        f.write(re.sub(r"password_command = .*", "password_command = cat " + wrong, text))
    mnt = os.path.join(home, "mnt")
    os.makedirs(mnt)
    env = service_env(home)
    env["XDG_CONFIG_HOME"] = os.path.join(home, "config")
    env["XDG_CACHE_HOME"] = os.path.join(home, "cache")
    for journal in (True, False):
        err_path = os.path.join(home, "stderr-%s" % journal)
        other = os.path.join(home, "other")
        open(other, "w").close()
        with open(err_path, "wb") as err:
            env["JOURNAL_STREAM"] = journal_stream(err_path if journal else other)
            p = subprocess.Popen([BIN, "-f", ACCOUNT, mnt], env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err)
            register(p, mnt)
            try:
                rc = p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                kill_pid(p)
                rc = None
            unregister(p)
        lines = open(err_path, encoding="utf-8", errors="replace").read().splitlines()
        want = r"^<3>mailfs: \S" if journal else r"^mailfs: \S"
        C.check(rc == 77 and len(lines) == 1 and re.match(want, lines[0]),
                "early: a refused login with stderr %s: exit 77 and one line '%smailfs: ...'" % (
                    "the journal" if journal else "not the journal (JOURNAL_STREAM names another "
                    "file)", "<3>" if journal else ""),
                "status %s, lines %r" % (rc, lines[:3]))


def case_install():
    dest = os.path.join(RUN, "destdir")
    p = subprocess.run(["make", "-s", "install", "DESTDIR=" + dest, "PREFIX=/usr"],
                       cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    got = sorted(os.path.relpath(os.path.join(d, f), dest)
                 for d, _, fs in os.walk(dest) for f in fs)
    pages = sorted("usr/share/man/man%s/%s" % (m.rsplit(".", 1)[1], m)
                   for m in os.listdir(os.path.join(REPO_ROOT, "man"))
                   if re.match(r".+\.[1-8]$", m))
    want = sorted(["usr/bin/mailfs", "usr/lib/systemd/user/mailfs@.service"] + pages)
    C.check(p.returncode == 0 and got == want,
            "install: make install DESTDIR=... PREFIX=/usr installs exactly %s" % ", ".join(want),
            "status %d, got %r: %r" % (p.returncode, got, p.stdout[-300:]))
    unit = os.path.join(dest, "usr/lib/systemd/user/mailfs@.service")
    starts = unit_lines(open(unit).read(), "ExecStart") if os.path.exists(unit) else []
    C.check(starts and starts[0].startswith("/usr/bin/mailfs "),
            "install: the installed unit runs /usr/bin/mailfs", "%r" % starts)


def main():
    if not ready(C, BIN, RUN):
        return C.summary()
    text = C.case(case_unit)
    if text:
        C.case(case_service, text)
    C.case(case_early)
    # The install builds with the Makefile's defaults: once, for the
    # release binary.
    if LABEL == "release":
        C.case(case_install)
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
