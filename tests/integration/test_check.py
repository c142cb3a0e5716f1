#!/usr/bin/env python3
"""test_check.py - `mailfs --check ACCOUNT`: logs in over IMAP and SMTP,
says what a mount would use, mounts nothing, and exits by cause.

  good     alice on the harness's Dovecot: exit 0; the `capability` line
           is the CAPABILITY imaplib gets after login; every `uses` line
           names an extension the server offers; `folders` is the number
           of LIST entries imaplib sees; `sent` and `trash` are the
           folders LIST marks \\Sent and \\Trash, `drafts` and `junk` the
           ones marked so; Dovecot's log shows alice's submission login
           (the SMTP login happened); no cache, index or outbox
           directory is made and no scratch file is left in TMPDIR.
  config   trash_folder = Archive: `trash Archive (as configured)`.
  courier  Courier (no SPECIAL-USE, INBOX. namespace): Trash found by its
           name, INBOX.Trash, as a mount would find it.
  errors   a refused login: 77 and one line; a closed IMAP port: 75; a
           closed SMTP port: 75, the line naming smtp; a certificate from
           another CA: 76; --check with a MOUNTPOINT: 64.

Needs the private Dovecot (tests/harness/start.sh).
Environment (MAILFS_BIN, MAILFS_TEST_DIR, MAILFS_TEST_LABEL), output: mounttest.py.
"""

import os
import re
import socket
import sys

sys.dont_write_bytecode = True  # before importing mounttest (found next to this script)
from mounttest import (file_size, imaptest as it, mailfs_env, ready, run_once,  # noqa: E402
                       setup_test, wait_for, write_config_file)

BIN, LABEL, C, H, RUN = setup_test("check")
TIMEOUT = 120


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def section(name, port=None, pw_file=None, ca=None, smtp_port=None, extra=""):
    return ("[%s]\nhost = %s\nport = %d\nuser = alice\ntls = implicit\nca_file = %s\n"
            "password_command = cat %s\nsmtp_port = %d\nsmtp_tls = starttls\n%s\n" % (
                name, H["host"], port or H["imaps_port"], ca or H["ca_file"],
                pw_file or H["users"]["alice"]["password_file"], smtp_port or H["submission_port"],
                extra))


def check_run(account, extra_args=()):
    """(status, stdout lines, stderr lines) of mailfs --check account."""
    tmp = os.path.join(RUN, "tmp")
    os.makedirs(tmp, exist_ok=True)
    env = mailfs_env(RUN)
    env["TMPDIR"] = tmp
    rc, out, err = run_once(BIN, ["--check", account] + list(extra_args), env, timeout=TIMEOUT)
    return (rc, out.decode("utf-8", "replace").splitlines(),
            [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()])


def field(lines, label):
    """The values of the lines labelled label, in order."""
    return [ln[len(label):].strip() for ln in lines if re.match(r"^%s\s" % re.escape(label), ln)]


def case_good():
    since = file_size(H["dovecot_log"])
    rc, out, err = check_run("alice@test")
    C.check(rc == 0 and not err, "good: --check exits 0 and says nothing on stderr",
            "status %s, stderr %r, stdout %r" % (rc, err[:3], out[-3:]))
    with it.session(H) as m:
        caps = it.capabilities(m)
        listed = it.list_folders(m)
    got = set(" ".join(field(out, "capability")).upper().split())
    C.check(got == caps, "good: the capability line is the server's CAPABILITY after login (imaplib)",
            "mailfs %s, imaplib %s" % (sorted(got ^ caps)[:6], len(caps)))
    used = [u.split(":")[0] for u in field(out, "uses")]
    C.check(used and all(u.upper() in caps for u in used),
            "good: every 'uses' line names an extension the server offers", "%r" % used)
    C.check(field(out, "folders") == [str(len(listed))],
            "good: 'folders' is the number of LIST entries (imaplib: %d)" % len(listed),
            "%r" % field(out, "folders"))
    for label, flag in (("sent", "\\Sent"), ("trash", "\\Trash"), ("drafts", "\\Drafts"),
                        ("junk", "\\Junk")):
        want = sorted(n for n, f, _ in listed if flag in f)
        C.check(want and field(out, label) == ["%s (marked by the server)" % want[0]],
                "good: '%s' is the folder LIST marks %s (%s)" % (label, flag, want),
                "%r" % field(out, label))
    C.check(wait_for(lambda: any("user=<alice" in ln for ln in submission_logins(since)), 10),
            "good: Dovecot's log shows alice's submission login (the SMTP login happened)",
            "no submission login since the check")
    C.check(field(out, "login") == ["alice: logged in", "alice: logged in for sending"],
            "good: both logins are reported", "%r" % field(out, "login"))
    left = os.listdir(os.path.join(RUN, "tmp"))
    C.check(not left, "good: no scratch file is left in TMPDIR", "%r" % left)
    made = [d for d in ("cache", "data") if os.path.exists(os.path.join(RUN, d))]
    C.check(not made, "good: no cache, index or outbox directory is made (XDG_CACHE_HOME, "
            "XDG_DATA_HOME of this run)", "made %r" % made)


def submission_logins(since):
    with open(H["dovecot_log"], "rb") as f:
        f.seek(since)
        return [ln for ln in f.read().decode("utf-8", "replace").splitlines()
                if "submission-login: Info: Login: " in ln]


def case_config():
    rc, out, err = check_run("archive@test")
    C.check(rc == 0 and field(out, "trash") == ["Archive (as configured)"],
            "config: with trash_folder = Archive: 'trash Archive (as configured)'",
            "status %s, %r, stderr %r" % (rc, field(out, "trash"), err[:2]))


def case_courier():
    srv = (H.get("servers") or {}).get("courier")
    if not srv:
        print("# courier: not started by the harness; case left out", flush=True)
        return
    rc, out, err = check_run("courier@test")
    C.check(rc == 0 and field(out, "trash") == ["INBOX.Trash (found by its name)"],
            "courier: Trash found by its name as a mount finds it: 'trash INBOX.Trash (found by "
            "its name)'", "status %s, %r, stderr %r" % (rc, field(out, "trash"), err[:2]))
    C.check(field(out, "namespace")[:1] == ['"INBOX.", delimiter \'.\': folders shown without it'],
            "courier: the INBOX. namespace is reported", "%r" % field(out, "namespace"))


def case_errors():
    for account, want, what, pat in (
            ("wrongpw@test", 77, "a refused login", r"^mailfs: imap: .*refused"),
            ("closed@test", 75, "a closed IMAP port", r"^mailfs: imap: "),
            ("nosmtp@test", 75, "a closed SMTP port", r"^mailfs: smtp: "),
            ("badca@test", 76, "a certificate from another CA", r"^mailfs: imap: ")):
        rc, out, err = check_run(account)
        C.check(rc == want and len(err) == 1 and re.search(pat, err[0]),
                "errors: %s: exit status %d and one line /%s/" % (what, want, pat),
                "status %s, stderr %r" % (rc, err[:3]))
    mnt = os.path.join(RUN, "mnt")
    os.makedirs(mnt, exist_ok=True)
    rc, out, err = check_run("alice@test", [mnt])
    C.check(rc == 64 and len(err) == 1 and not out,
            "errors: --check with a MOUNTPOINT: exit status 64 and one line",
            "status %s, stdout %r, stderr %r" % (rc, out[:2], err[:3]))


def main():
    if not ready(C, BIN, RUN):
        return C.summary()
    wrong = os.path.join(RUN, "wrong.pw")
    with open(wrong, "w") as f:
        f.write("not-the-password\n")
    text = section("alice@test") + section("archive@test", extra="trash_folder = Archive") + \
        section("wrongpw@test", pw_file=wrong) + section("closed@test", port=free_port()) + \
        section("nosmtp@test", smtp_port=free_port()) + \
        section("badca@test", ca=H["other_ca_file"])
    srv = (H.get("servers") or {}).get("courier")
    if srv:
        text += section("courier@test", port=srv["imaps_port"])
    write_config_file(RUN, text)
    C.case(case_good)
    C.case(case_config)
    C.case(case_courier)
    C.case(case_errors)
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
