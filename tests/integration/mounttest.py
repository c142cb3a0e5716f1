"""mounttest.py - shared plumbing for the mailfs integration tests.

Check reporting (one "PASS: ..." / "FAIL: ...: detail" line per check),
running the real binary in the foreground with its output in a file,
waiting for the mount, unmounting with fusermount3 and stopping the daemon
by its PID only.  Standard library only.
"""

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "harness"))
sys.dont_write_bytecode = True

import imaptest  # noqa: E402,F401  (re-exported for the tests)

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
        kill_pid(self.proc)
        unregister(self.proc)
        if mounted(self.mountpoint):
            subprocess.run(["fusermount3", "-uz", self.mountpoint],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return um_ok, None


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
                 "unmounted: %s, exit status %s: %s" % ("yes" if um_ok else "no", rc,
                                                         tail(mnt.out)))
    rep = sanitizer_reports([mnt.out] + list(logs))
    checks.check(not rep, "%s: no sanitizer report in %s" % (what, where),
                 "; ".join("%s: %s" % r for r in rep))


# --- outbox/ ------------------------------------------------------------------

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


def write_alice_config(run, h, account, extra=""):
    """run/config/mailfs/config with alice's account as section `account`
    (IMAPS to the harness's Dovecot, password from its file)."""
    d = os.path.join(run, "config", "mailfs")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config"), "w") as f:
        f.write("[%s]\nhost = %s\nport = %d\nuser = alice\ntls = implicit\n"
                "ca_file = %s\npassword_command = cat %s\n%s" % (
                    account, h["host"], h["imaps_port"], h["ca_file"],
                    h["users"]["alice"]["password_file"], extra))


def mount_own_dirs(binary, run, account, what, args, timeout):
    """mailfs with the config of write_alice_config and its own cache and
    data directories under run, logging to run/<what>.log (mnt.log), on
    run/mnt-<what>.  The Mount; check mnt.ok."""
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = os.path.join(run, "config")
    env["XDG_CACHE_HOME"] = os.path.join(run, "cache-" + what)
    env["XDG_DATA_HOME"] = os.path.join(run, "data-" + what)
    env.pop("MAILFS_BIN", None)
    log = os.path.join(run, what + ".log")
    mnt = Mount(binary, ["-o", "log_file=" + log] + list(args), account,
                os.path.join(run, "mnt-" + what), env, timeout)
    mnt.log = log
    return mnt


def run_harness(h, script, *args, plain_caps=None):
    """Run tests/harness/<script> for the harness h describes (its state
    dir and ports; DOVECOT_PLAIN_CAPS as h says unless plain_caps is
    given): (ok, output)."""
    env = dict(os.environ)
    caps = h.get("plain_caps") if plain_caps is None else plain_caps
    env.update({"MAILFS_TEST_DIR": h["state_dir"], "IMAPS_PORT": str(h["imaps_port"]),
                "IMAP_PORT": str(h["imap_port"]), "DOVECOT_PLAIN_CAPS": "1" if caps else "0"})
    for k, j in (("SUBMISSION_PORT", "submission_port"), ("SUBMISSIONS_PORT", "submissions_port"),
                 ("POSTFIX_PORT", "postfix_port"), ("OAUTH2_PORT", "oauth2_port")):
        if j in h:
            env[k] = str(h[j])
    with tempfile.TemporaryFile() as out:   # a file, never a pipe (daemons)
        r = subprocess.run([os.path.join(REPO_ROOT, "tests", "harness", script)] + list(args),
                           env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        out.seek(0)
        return r.returncode == 0, out.read().decode("utf-8", "replace").strip()


def restart_full_caps(h):
    """Restart the harness's Dovecot announcing every capability (after a
    test left it with DOVECOT_PLAIN_CAPS): (ok, output)."""
    return run_harness(h, "start.sh", plain_caps=False)

# --- small helpers every test needs --------------------------------------------

def wait_for(fn, timeout, step=0.25):
    """fn()'s first true value within timeout seconds, else None."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            return None
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
