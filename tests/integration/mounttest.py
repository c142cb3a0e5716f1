"""mounttest.py - shared plumbing for the mailfs integration tests.

Check reporting (one "PASS: ..." / "FAIL: ...: detail" line per check),
running the real binary in the foreground with its output in a file,
waiting for the mount, unmounting with fusermount3 and stopping the daemon
by its PID only, and the helpers the tests share.  Standard library only.

Every test reads MAILFS_BIN (the binary, default ./mailfs, relative to the
repository root), MAILFS_TEST_DIR (state dir) and MAILFS_TEST_LABEL (in
every check's name, default from MAILFS_BIN; see setup_test()).  It prints
one "PASS: ..." or "FAIL: ...: detail" line per check, then a "# ...
passed, ... failed" line, and exits with status 1 when a check failed.
"""

import base64
import calendar
import email.utils
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "harness"))
sys.dont_write_bytecode = True

import imaptest  # noqa: E402,F401  (re-exported for the tests)
import smtptest  # noqa: E402

SANITIZER_RE = re.compile(
    rb"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    rb"SUMMARY: UndefinedBehaviorSanitizer|WARNING: ThreadSanitizer|"
    rb"LeakSanitizer has encountered a fatal error")


class Checks:
    """Counts and prints checks; every line names what was checked."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.passed = 0
        self.failed = 0

    def ok(self, what):
        self.passed += 1
        print("PASS: %s%s" % (self.prefix, what), flush=True)

    def fail(self, what, detail):
        self.failed += 1
        detail = " ".join(str(detail).split())
        if len(detail) > 600:
            detail = detail[:600] + " ..."
        print("FAIL: %s%s: %s" % (self.prefix, what, detail), flush=True)

    def check(self, cond, what, detail=""):
        if cond:
            self.ok(what)
        else:
            self.fail(what, detail or "condition false")
        return bool(cond)

    def equal(self, got, want, what):
        return self.check(got == want, what, "got %r, want %r" % (got, want))

    def problems(self, probs, what, limit=8):
        """PASS when the list of problems is empty, else FAIL listing some."""
        if not probs:
            self.ok(what)
            return True
        more = " (+%d more)" % (len(probs) - limit) if len(probs) > limit else ""
        self.fail(what, "; ".join(str(p) for p in probs[:limit]) + more)
        return False

    def summary(self, note=""):
        """Print the counts as a # line (with note after them); the exit
        status for main(): 1 when a check failed, else 0."""
        print("# %s%d passed, %d failed%s" % (self.prefix, self.passed, self.failed,
                                             " " + note if note else ""), flush=True)
        return 1 if self.failed else 0

    def section(self, what, fn, *args):
        """fn(*args), its value; an exception is one FAIL named what (its
        traceback follows as # lines) and None, not the end of the test."""
        try:
            return fn(*args)
        except Exception as e:      # noqa: BLE001
            self.fail(what, "test raised %s: %s" % (type(e).__name__, e))
            for line in traceback.format_exc().splitlines():
                print("# " + line, flush=True)
            return None

    def case(self, fn, *args):
        """fn(*args), its value; an exception is one FAIL "NAME: unexpected
        error" (NAME: fn's name without case_) and None."""
        try:
            return fn(*args)
        except Exception as e:      # noqa: BLE001
            self.fail("%s: unexpected error" % fn.__name__.replace("case_", ""),
                      "%s: %s" % (type(e).__name__, e))
            return None

    def parts(self, *fns):
        """Call each fn; an exception in one is one FAIL "a part ran to its
        end" (with the end of its traceback), and the next part runs."""
        for fn in fns:
            try:
                fn()
            except Exception as e:   # noqa: BLE001 - a crash of one part is its FAIL
                self.fail("a part ran to its end", "%s: %s | %s" % (
                    type(e).__name__, e, " | ".join(traceback.format_exc().splitlines()[-4:])))


def default_signals():
    """In the child: SIGINT/SIGTERM as a terminal would deliver them, even
    when this script was started with them ignored (e.g. in background)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _pid_dir():
    d = os.path.join(imaptest.state_dir(), "pids")
    os.makedirs(d, exist_ok=True)
    return d


def register(proc, what):
    """Note a started daemon's PID so tests/run can stop exactly it if this
    script dies first ($MAILFS_TEST_DIR/pids/<pid> holds the mountpoint)."""
    with open(os.path.join(_pid_dir(), str(proc.pid)), "w") as f:
        f.write(what + "\n")


def unregister(proc):
    try:
        os.unlink(os.path.join(_pid_dir(), str(proc.pid)))
    except OSError:
        pass


def mounted(path):
    """True when path is a mount point (per /proc/self/mounts)."""
    path = os.path.realpath(path)
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                            line.split()[1])
                if mp == path:
                    return True
    except OSError:
        pass
    return False


def tail(path, n=5):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])


class Mount:
    """`mailfs -f ARGS... TARGET MOUNTPOINT` in the background.

    Output (stdout and stderr) goes to <mountpoint>.out, never to a pipe."""

    def __init__(self, binary, args, target, mountpoint, env, timeout=60):
        self.mountpoint = mountpoint
        self.out = mountpoint + ".out"
        self.error = None
        self.rc = None
        os.makedirs(mountpoint, exist_ok=True)
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                [binary, "-f"] + list(args) + [target, mountpoint],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, preexec_fn=default_signals)
        register(self.proc, mountpoint)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if mounted(mountpoint):
                return
            if self.proc.poll() is not None:
                unregister(self.proc)
                self.rc = self.proc.returncode
                self.error = "mailfs exited with status %d before mounting: %s" % (
                    self.rc, tail(self.out))
                return
            time.sleep(0.1)
        self.error = "not mounted after %d s: %s" % (timeout, tail(self.out))

    @property
    def ok(self):
        return self.error is None

    @property
    def pid(self):
        return self.proc.pid

    def interrupt(self, sig, timeout=20):
        """Send sig to the daemon (by PID); (exit status or None, still
        mounted) once it exited or timeout passed."""
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.rc = self.proc.wait(timeout=timeout)
            unregister(self.proc)
        except subprocess.TimeoutExpired:
            return None, mounted(self.mountpoint)
        return self.rc, mounted(self.mountpoint)

    def unmount(self, timeout=30):
        """fusermount3 -u, then wait for the daemon.  Returns (unmount_ok,
        daemon exit status or None when it had to be killed)."""
        um_ok = True
        if mounted(self.mountpoint):
            um_ok = False
            for _ in range(20):
                r = subprocess.run(["fusermount3", "-u", self.mountpoint],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if r.returncode == 0:
                    um_ok = True
                    break
                time.sleep(0.5)
        try:
            self.rc = self.proc.wait(timeout=timeout)
            unregister(self.proc)
            return um_ok, self.rc
        except subprocess.TimeoutExpired:
            pass
        # A daemon that does not exit: where each thread is, for the FAIL.
        self.hang = thread_stacks(self.proc.pid, self.out + ".threads")
        kill_pid(self.proc)
        unregister(self.proc)
        if mounted(self.mountpoint):
            subprocess.run(["fusermount3", "-uz", self.mountpoint],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return um_ok, None


def thread_stacks(pid, path):
    """Every thread's stack of a live process, by gdb, into path; a
    one-line summary (the innermost mailfs function of each thread)."""
    try:
        r = subprocess.run(["gdb", "-batch", "-nx", "-p", str(pid), "-ex", "thread apply all bt"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "no stacks (gdb: %s)" % e
    text = r.stdout.decode(errors="replace")
    with open(path, "w") as f:
        f.write(text)
    where = []
    for block in text.split("\nThread ")[1:]:
        frames = re.findall(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\w+) \(.*?\) at ((?:fs|imap|smtp|util)/\S+)",
                            block, re.M)
        if frames:
            where.append("%s (%s)" % frames[0])
    return "threads stuck in: %s; stacks in %s" % (", ".join(where) or "no mailfs frame", path)


def kill_pid(proc):
    """SIGTERM, then SIGKILL, to this one process (by PID)."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        return
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass


def run_once(binary, args, env, timeout=60):
    """Run mailfs expecting it to exit: (rc or None on timeout, stdout, stderr).

    Output goes through files; on timeout the process is killed by PID."""
    import tempfile
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen([binary] + list(args), stdin=subprocess.DEVNULL,
                             stdout=out, stderr=err, env=env, start_new_session=True)
        register(p, "run_once")
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_pid(p)
            rc = None
        unregister(p)
        out.seek(0)
        err.seek(0)
        return rc, out.read(), err.read()


def sanitizer_reports(paths):
    """[(path, first matching line)] for sanitizer output in these files."""
    found = []
    for p in paths:
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError:
            continue
        m = SANITIZER_RE.search(data)
        if m:
            start = data.rfind(b"\n", 0, m.start()) + 1
            end = data.find(b"\n", m.end())
            found.append((p, data[start:end if end >= 0 else None].decode("utf-8", "replace")))
    return found


# --- helpers the integration tests share ---------------------------------------

def listdir(path):
    """Sorted names in path, or a string saying why not (for a check's detail)."""
    try:
        return sorted(os.listdir(path))
    except OSError as e:
        return "listdir: %s" % e


# Root without the capabilities that bypass file modes: what a command run
# this way may do follows the modes the mount shows, as for an ordinary
# user who mounted it (mailfs mounts with default_permissions).
AS_OWNER = ["setpriv", "--inh-caps=-all",
            "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def run_as_owner(argv, timeout=120):
    """run() with AS_OWNER."""
    return run(AS_OWNER + list(argv), timeout)


def run(argv, timeout=120):
    """(exit status, stderr) of a command, its messages in English."""
    env = dict(os.environ, LC_ALL="C")
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=env)
    return p.returncode, p.stderr.decode("utf-8", "replace").strip()


def ename(e):
    """An errno as its name ("ENOENT"), 0 as "success"."""
    return errno.errorcode.get(e, str(e)) if isinstance(e, int) and e else (
        "success" if e == 0 else str(e))


def unmount_and_check(checks, mnt, what, logs=(), where="the daemon's output"):
    """fusermount3 -u; check the daemon exited 0 and left no sanitizer report
    in its output or the given logs."""
    um_ok, rc = mnt.unmount()
    checks.check(um_ok and rc == 0 and not mounted(mnt.mountpoint),
                 "%s: fusermount3 -u unmounts and the daemon exits with status 0" % what,
                 "unmounted: %s, exit status %s: %s%s" % (
                     "yes" if um_ok else "no", rc, tail(mnt.out),
                     "; " + mnt.hang if getattr(mnt, "hang", None) else ""))
    rep = sanitizer_reports([mnt.out] + list(logs))
    checks.check(not rep, "%s: no sanitizer report in %s" % (what, where),
                 "; ".join("%s: %s" % r for r in rep))


# --- outbox/ ------------------------------------------------------------------

OUTBOX_WAIT = 30    # seconds for anything an outbox test waits for to happen


class OutboxDir:
    """The mount's outbox/, seen with plain system calls."""

    STATUS = "user.mail.status"

    def __init__(self, mnt):
        self.mnt = mnt
        self.dir = os.path.join(mnt.mountpoint, "outbox")

    def path(self, name):
        return os.path.join(self.dir, name)

    def put(self, name, data):
        """open/write/close; None or the error."""
        try:
            with open(self.path(name), "wb") as f:
                f.write(data)
            return None
        except OSError as e:
            return "%s: %s" % (name, e)

    def exists(self, name):
        return os.path.lexists(self.path(name))

    def status(self, name):
        """user.mail.status, None when the file is gone, '<errno>' else."""
        try:
            return os.getxattr(self.path(name), self.STATUS).decode("utf-8", "replace")
        except OSError as e:
            if e.errno == errno.ENOENT:
                return None
            return "<%s>" % (e.strerror or e)

    def error_text(self, name):
        """Contents of <name>.error, or None."""
        try:
            with open(self.path(name + ".error"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return None

    def ctl_status(self):
        """.mailfs/status at the mount root, or '<error>'."""
        try:
            with open(os.path.join(self.mnt.mountpoint, ".mailfs", "status")) as f:
                return f.read()
        except OSError as e:
            return "<%s>" % e

    def remove(self, *names):
        for n in names:
            try:
                os.unlink(self.path(n))
            except OSError:
                pass

    def wait_gone(self, name, timeout=OUTBOX_WAIT):
        """True once name is gone from outbox/ within timeout seconds."""
        return wait_for(lambda: not self.exists(name), timeout, 0.2)

    def wait_status(self, name, prefix, timeout=OUTBOX_WAIT, pattern=None, step=0.2):
        """Poll until the status starts with prefix (and has a match for
        the regex pattern, if given); returns the last status."""
        last = [None]

        def probe():
            last[0] = self.status(name)
            return (last[0] is not None and last[0].startswith(prefix) and
                    (pattern is None or re.search(pattern, last[0]) is not None))
        wait_for(probe, timeout, step)
        return last[0]


def later(found):
    """Timeout for a wait that follows one: short when the first found
    nothing (the checks fail either way; the run stays bounded)."""
    return OUTBOX_WAIT if found else 3


class Subjects:
    """The subjects of one run of an outbox test: S(case) is "TAG TOKEN
    case", unique to the run; what arrived under them is read with
    smtptest (imaplib).  harness() gives the harness dict, which a test
    may load again after restarting a server."""

    def __init__(self, harness, tag, token):
        self.harness, self.tag, self.token = harness, tag, token

    def __call__(self, case):
        return "%s %s %s" % (self.tag, self.token, case)

    def arrived(self, user, folder, case, n=1, timeout=OUTBOX_WAIT):
        """The messages with case's subject in user's folder once there are
        n of them (smtptest.wait_for)."""
        return smtptest.wait_for(self.harness(), user, folder, self(case), n, timeout)

    def count(self, user, folder, case):
        """How many messages with case's subject user's folder holds now."""
        return len(smtptest.find(self.harness(), user, folder, self(case)))

    def cleanup(self):
        """Delete what any run of the test delivered (subjects starting
        with "TAG ") from alice's and bob's mailboxes; failures are noted."""
        for u in ("alice", "bob"):
            quietly("cleanup of %s's mailbox" % u, smtptest.delete_matching, self.harness(), u,
                    self.tag + " ")


def ready_to_send(checks, binary, h, run=None):
    """ready() for an outbox test (run, when given, made empty), then make
    sure the harness's submission service and Postfix relay run (a run
    that died half-way may have left them down): the harness, loaded again
    when submission had to be started, or None after a FAIL."""
    if not ready(checks, binary, run):
        return None
    if not h.get("smtp"):
        checks.fail("harness", "no submission/Postfix in %s/harness.json (tests/harness/start.sh "
                    "with dovecot-submissiond and postfix installed)" % h["state_dir"])
        return None
    if not h.get("submission"):
        ok, out = run_harness(h, "submission.sh", "start")
        checks.check(ok, "harness: bring submission back up", out)
        h = imaptest.load_harness()
    ok, out = run_harness(h, "postfix.sh", "start")
    if not checks.check(ok, "harness: the Postfix relay is running", out):
        return None
    return h


# --- a test's own run directory, account and mounts ----------------------------

def fresh_run_dir(run):
    """An empty directory for this run; whatever an earlier run left
    mounted in it is unmounted first."""
    if os.path.isdir(run):
        for e in os.listdir(run):
            p = os.path.join(run, e)
            if mounted(p):
                subprocess.run(["fusermount3", "-uz", p])
        shutil.rmtree(run)
    os.makedirs(run)


def mailfs_bin():
    """$MAILFS_BIN (default ./mailfs); a relative one from the repository root."""
    binary = os.environ.get("MAILFS_BIN", "./mailfs")
    return binary if os.path.isabs(binary) else os.path.join(REPO_ROOT, binary)


def label_of(binary):
    """$MAILFS_TEST_LABEL, else "asan" for a binary with asan in its path,
    else the binary's name."""
    return os.environ.get("MAILFS_TEST_LABEL") or (
        "asan" if "asan" in binary else os.path.basename(binary))


SERVERS = ("dovecot", "cyrus", "courier")


def setup_test(name, servers=("dovecot",)):
    """What integration test `name` starts with: (BIN, LABEL, C, H, RUN):
    mailfs_bin(), label_of(BIN), Checks named "name[LABEL]: ", the
    harness and the test's run directory <state dir>/<name>-<LABEL>.

    A test that runs on other servers than Dovecot names them in servers
    (SERVERS: every one): then H is imaptest.load_harness(server=
    $MAILFS_TEST_SERVER), pointed at that server with the folder names of
    the imaplib helpers translated to mount paths, and on a server other
    than Dovecot the label names it ("cyrus" for a release binary, else
    e.g. "asan-cyrus").  A test run with $MAILFS_TEST_SERVER naming a
    server it does not list exits with status 2 and one line.  servers
    None: the test picks its servers itself ($MAILFS_TEST_SERVER is not
    read)."""
    binary = mailfs_bin()
    label = label_of(binary)
    server = imaptest.test_server() if servers is not None else "dovecot"
    if servers is not None and server not in servers:
        print("test_%s: runs against %s only, not %s=%s" % (
            name, " and ".join(servers), imaptest.SERVER_ENV, server), file=sys.stderr)
        sys.exit(2)
    if server != "dovecot" and server not in label:
        label = server if label in ("release", os.path.basename(binary)) else "%s-%s" % (
            label, server)
    h = imaptest.load_harness(server=server) if servers and len(servers) > 1 else \
        imaptest.load_harness()
    return (binary, label, Checks("%s[%s]: " % (name, label)), h,
            os.path.join(h["state_dir"], "%s-%s" % (name, label)))


def server_of(h):
    """The IMAP server h points at ("dovecot" unless for_server() said)."""
    return h.get("server", "dovecot")


def not_on(h, why):
    """On a server other than Dovecot: print "# not on SERVER: why" and
    return True (the caller skips a part that needs Dovecot's own tools);
    on Dovecot False."""
    if server_of(h) == "dovecot":
        return False
    print("# not on %s: %s" % (server_of(h), why), flush=True)
    return True


def ready(checks, binary, run=None):
    """The start of a test's main(): False after one FAIL when binary is
    not an executable file; else True, with run (when given) made an empty
    directory (fresh_run_dir)."""
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        checks.fail("mailfs binary", "%s is missing or not executable" % binary)
        return False
    if run is not None:
        fresh_run_dir(run)
    return True


def write_config_file(run, text):
    """text as run/config/mailfs/config (the config of XDG_CONFIG_HOME=run/config)."""
    d = os.path.join(run, "config", "mailfs")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config"), "w") as f:
        f.write(text)


def write_alice_config(run, h, account, extra=""):
    """run/config/mailfs/config with alice's account as section `account`
    (IMAPS to the harness's Dovecot, password from its file)."""
    write_config_file(run, "[%s]\nhost = %s\nport = %d\nuser = alice\ntls = implicit\n"
                      "ca_file = %s\npassword_command = cat %s\n%s" % (
                          account, h["host"], h["imaps_port"], h["ca_file"],
                          h["users"]["alice"]["password_file"], extra))


def mailfs_env(run, cache="cache", data="data"):
    """The environment for a mailfs of this run: XDG_CONFIG_HOME run/config,
    XDG_CACHE_HOME run/<cache>, XDG_DATA_HOME run/<data> (left as it is
    when data is None), no MAILFS_BIN."""
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = os.path.join(run, "config")
    env["XDG_CACHE_HOME"] = os.path.join(run, cache)
    if data is not None:
        env["XDG_DATA_HOME"] = os.path.join(run, data)
    env.pop("MAILFS_BIN", None)
    return env


def mount_own_dirs(binary, run, account, what, args, timeout):
    """mailfs with the config of write_alice_config and its own cache and
    data directories under run, logging to run/<what>.log (mnt.log), on
    run/mnt-<what>.  The Mount; check mnt.ok."""
    env = mailfs_env(run, "cache-" + what, "data-" + what)
    log = os.path.join(run, what + ".log")
    mnt = Mount(binary, ["-o", "log_file=" + log] + list(args), account,
                os.path.join(run, "mnt-" + what), env, timeout)
    mnt.log = log
    return mnt


def mount_checked(checks, binary, run, account, what, opts, timeout, first=()):
    """mount_own_dirs() with the args first and then -o opts (none when
    opts is empty), and one check "WHAT: mount -o OPTS" ("WHAT: mount
    (defaults)").  The Mount, or None when it did not mount."""
    args = ["-o", opts] if opts else []
    return check_mount(checks, mount_own_dirs(binary, run, account, what, list(first) + args,
                                              timeout),
                       "%s: mount %s" % (what, " ".join(args) or "(defaults)"))


def on_mount(mnt, fn, end):
    """fn(mnt), then end(mnt) (unmount and its checks) even when fn raised;
    fn's value.  Nothing runs when mnt is None (it did not mount: that was
    its FAIL)."""
    if mnt is None:
        return None
    try:
        return fn(mnt)
    finally:
        end(mnt)


def server_setup(checks, fn, what="make our folders and messages with imaplib"):
    """fn(), which prepares the account with imaplib: its value, or None
    after one FAIL named what (the test ends)."""
    try:
        return fn()
    except Exception as e:      # noqa: BLE001
        checks.fail(what,
                    "%s: %s (is the server running? tests/harness/start.sh)" % (
                        type(e).__name__, e))
        return None


def check_mount(checks, mnt, what):
    """One check named what: did mnt mount?  mnt, or None when it did not
    (then it is unmounted and its daemon stopped)."""
    if not checks.check(mnt.ok, what, mnt.error):
        mnt.unmount()
        return None
    return mnt


def run_harness(h, script, *args, plain_caps=None):
    """Run tests/harness/<script> for the harness h describes (its state
    dir and ports; DOVECOT_PLAIN_CAPS as h says unless plain_caps is
    given): (ok, output)."""
    env = dict(os.environ)
    caps = h.get("plain_caps") if plain_caps is None else plain_caps
    # The harness's base ports are Dovecot's, also when h points at
    # another server (imaptest.for_server).
    dc = (h.get("servers") or {}).get("dovecot") or h
    env.update({"MAILFS_TEST_DIR": h["state_dir"], "IMAPS_PORT": str(dc["imaps_port"]),
                "IMAP_PORT": str(dc["imap_port"]), "DOVECOT_PLAIN_CAPS": "1" if caps else "0"})
    for k, j in (("SUBMISSION_PORT", "submission_port"), ("SUBMISSIONS_PORT", "submissions_port"),
                 ("POSTFIX_PORT", "postfix_port"), ("OAUTH2_PORT", "oauth2_port")):
        if j in h:
            env[k] = str(h[j])
    with tempfile.TemporaryFile() as out:   # a file, never a pipe (daemons)
        r = subprocess.run([os.path.join(REPO_ROOT, "tests", "harness", script)] + list(args),
                           env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        out.seek(0)
        return r.returncode == 0, out.read().decode("utf-8", "replace").strip()


def dovecot_running(checks, h, what="start Dovecot (found stopped)"):
    """Start the harness's Dovecot when dovecot.sh status says it is not
    running (an earlier test may have died with it stopped); then one check
    named what."""
    server_running(checks, dict(h, server="dovecot"), what)


SERVER_TITLES = {"dovecot": "Dovecot", "cyrus": "Cyrus", "courier": "Courier"}


def server_title(h):
    """The name of h's IMAP server as a word in a check ("Cyrus")."""
    return SERVER_TITLES.get(server_of(h), server_of(h))


def server_script(h):
    """The harness script that stops, starts and tells the status of h's
    IMAP server alone: dovecot.sh, cyrus.sh or courier.sh (the same
    words: stop|start|status; start keeps mail, ports and UIDVALIDITYs)."""
    return "%s.sh" % server_of(h)


def server_running(checks, h, what=None):
    """Start h's IMAP server when its script's status says it is not
    running (an earlier test may have died with it stopped); then one
    check named what ("start <Server> (found stopped)")."""
    ok, out = run_harness(h, server_script(h), "status")
    if not ok:
        ok, out = run_harness(h, server_script(h), "start")
        checks.check(ok, what or "start %s (found stopped)" % server_title(h), out)


def restart_full_caps(h):
    """Restart the harness's Dovecot announcing every capability (after a
    test left it with DOVECOT_PLAIN_CAPS): (ok, output)."""
    return run_harness(h, "start.sh", plain_caps=False)

# --- small helpers every test needs --------------------------------------------

def wait_for(fn, timeout, step=0.25):
    """Call fn() every step seconds: its first true value within timeout
    seconds, else its last (false) value."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(step)


def errno_of(fn, *args):
    """0 when fn(*args) succeeds, the errno of its OSError, or a string
    naming any other exception (reported, never raised)."""
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno
    except Exception as e:      # noqa: BLE001
        return "%s: %s" % (type(e).__name__, e)


def by_uid(root, folder):
    """{uid: .eml name} in the mount's folder (plain os.listdir), or {}."""
    try:
        entries = os.listdir(os.path.join(root, folder))
    except OSError:
        return {}
    res = {}
    for e in entries:
        mo = re.search(r" \[(\d+)\]\.eml$", e)
        if mo:
            res[int(mo.group(1))] = e
    return res


def eml_name(root, folder, uid):
    """The .eml name of UID in the mount's folder, or None (also when two
    names end in [UID].eml)."""
    try:
        entries = os.listdir(os.path.join(root, folder))
    except OSError:
        return None
    suffix = " [%d].eml" % uid
    hits = [e for e in entries if e.endswith(suffix)]
    return hits[0] if len(hits) == 1 else None


def cat(path, timeout):
    """stdout bytes of `cat path` (in English), or a string saying why not."""
    try:
        r = subprocess.run(["cat", "--", path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=dict(os.environ, LC_ALL="C"))
    except subprocess.TimeoutExpired:
        return "cat timed out after %d s" % timeout
    if r.returncode != 0:
        return "cat exit %d: %s" % (r.returncode, r.stderr.decode("utf-8", "replace").strip())
    return r.stdout


def first_diff(a, b):
    """Index of the first element where a and b differ (the shorter
    one's length when one is a prefix of the other)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def file_size(path):
    """Size of a file (a log, to read what is written after), 0 when missing."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def proc_cmdlines():
    """[(pid, raw /proc/PID/cmdline bytes)] of the processes running now."""
    res = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                res.append((int(p), f.read()))
        except OSError:
            continue
    return res


def password_forms(user, pw):
    """A password as bytes and as base64 in the AUTH PLAIN forms a client
    sends: what must appear in no file the daemon writes."""
    user, pw = user.encode(), pw.encode()
    return [pw, base64.b64encode(pw), base64.b64encode(b"\0" + user + b"\0" + pw),
            base64.b64encode(user + b"\0" + user + b"\0" + pw)]


def files_holding(paths, forms, skip=lambda p: False):
    """(files holding any of the byte strings forms, number of files read)
    in the given files and the trees below the given directories; files for
    which skip(path) is true are not read."""
    hits, nfiles = [], 0
    for top in paths:
        walk = os.walk(top) if os.path.isdir(top) else [
            (os.path.dirname(top), [], [os.path.basename(top)])]
        for d, _, fs in walk:
            for f in fs:
                p = os.path.join(d, f)
                if skip(p):
                    continue
                try:
                    with open(p, "rb") as fh:
                        data = fh.read()
                except OSError:
                    continue
                nfiles += 1
                if any(s in data for s in forms):
                    hits.append(p)
    return hits, nfiles


def quietly(what, fn, *args):
    """fn(*args) where a failure is only noted (# WHAT failed: ...), as in
    the cleanup at a test's end, which must not hide its checks."""
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001
        print("# %s failed: %s: %s" % (what, type(e).__name__, e), flush=True)


def wait_visible(checks, root, where_uid, what, timeout):
    """One check: every message of where_uid ({key: (folder, uid)}) shows
    in the mount within timeout seconds.  {key: .eml name} of those shown."""
    names = {}

    def all_there():
        for k, (folder, uid) in where_uid.items():
            if k not in names:
                n = eml_name(root, folder, uid)
                if n:
                    names[k] = n
        return len(names) == len(where_uid)

    checks.check(wait_for(all_there, timeout),
                 "%s: our %d messages show in the mount within %d s" % (
                     what, len(where_uid), timeout),
                 "missing: %s" % sorted(set(where_uid) - set(names)))
    return names


def refresh(root, text="1\n"):
    """Write text to the mount's .mailfs/refresh (resync now): None, or
    the error as a string."""
    try:
        with open(os.path.join(root, ".mailfs", "refresh"), "w") as f:
            f.write(text)
        return None
    except OSError as e:
        return str(e)


def emls(root, folder):
    """Sorted names of the .eml files in the mount's folder, [] when it
    cannot be listed."""
    try:
        return sorted(e for e in os.listdir(os.path.join(root, folder)) if e.endswith(".eml"))
    except OSError:
        return []


def date_instant(value):
    """Seconds since the epoch of python's reading of a Date header value
    (email.utils.parsedate_to_datetime; a naive result is UTC), or None
    when python gives none."""
    if value is None:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:
        return calendar.timegm(dt.timetuple())
    return int(dt.timestamp())


def raw_header(raw, name):
    """The value of the first header line `name:` before the first empty
    line of raw (bytes; unfolded, stripped, as text), or None."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in re.sub(rb"\r\n[ \t]", b" ", head).split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip().decode("utf-8", "replace")
    return None
