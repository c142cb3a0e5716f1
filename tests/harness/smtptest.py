#!/usr/bin/env python3
"""smtptest.py - the independent sending side of the mailfs tests, and a
self-check of the harness's submission path.

As a module: smtplib over TLS verified against the test CA (STARTTLS on
the submission port, implicit TLS on the submissions port), and imaplib
look-ups of delivered messages by Subject.  Standard library only; shares
no code with mailfs.

As a program (`python3 tests/harness/smtptest.py`, after start.sh): checks
that alice can submit over STARTTLS and over implicit TLS, that the message
lands in bob's INBOX exactly once with its headers untouched (no Bcc
removed, nothing added but Return-Path/Delivered-To/Received), that an
unknown recipient is refused at RCPT TO with a 5xx while the good one in
the same transaction is delivered, that a wrong password is refused, and
that every login was TLS-protected per Dovecot's log.  One "PASS: ..." or
"FAIL: ...: detail" line per check; exit 1 when anything failed.
"""

import email
import email.policy
import os
import re
import secrets
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imaptest as it  # noqa: E402


def address(h, user):
    return h["users"][user].get("address") or "%s@%s" % (user, h.get("mail_domain", "mailfs.test"))


def smtp_connect(h, user="alice", implicit=False, pw=None, timeout=30, mech=None):
    """Logged-in SMTP connection to the submission service: STARTTLS on
    submission_port, or implicit TLS on submissions_port.  mech: only this
    SASL mechanism ("PLAIN"/"LOGIN"), else smtplib tries each offered."""
    ctx = it.tls_context(h["ca_file"])
    if implicit:
        s = smtplib.SMTP_SSL(h["host"], h["submissions_port"], context=ctx, timeout=timeout)
    else:
        s = smtplib.SMTP(h["host"], h["submission_port"], timeout=timeout)
        s.starttls(context=ctx)
    s.ehlo("client.mailfs.test")
    pw = pw if pw is not None else it.password(h, user)
    if mech:
        s.user, s.password = user, pw
        s.auth(mech, getattr(s, "auth_" + mech.lower()))
    else:
        s.login(user, pw)
    return s


def submit(h, raw, rcpts, user="alice", sender=None, implicit=False):
    """Send raw bytes; returns smtplib's dict of refused recipients."""
    s = smtp_connect(h, user, implicit)
    try:
        return s.sendmail(sender or address(h, user), rcpts, raw)
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            pass


def rcpt_replies(h, rcpts, user="alice"):
    """[(rcpt, code, text)] for RCPT TO of each address (then RSET)."""
    s = smtp_connect(h, user)
    try:
        code, text = s.mail(address(h, user))
        if code != 250:
            raise RuntimeError("MAIL FROM: %d %r" % (code, text))
        res = []
        for r in rcpts:
            code, text = s.rcpt(r)
            res.append((r, code, text.decode("utf-8", "replace")))
        s.rset()
        return res
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            pass


# --- delivered messages, through imaplib -------------------------------------

def _quoted(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse(raw):
    """A message as the email package reads it (policy default)."""
    return email.message_from_bytes(raw, policy=email.policy.default)


def plain_body(raw):
    """The text/plain body of a message with LF line ends, or None."""
    b = parse(raw).get_body(("plain",))
    return b.get_content().replace("\r\n", "\n") if b is not None else None


def subject_of(raw):
    msg = parse(raw)
    try:
        return str(msg.get("Subject", ""))
    except Exception:          # undecodable header: compare raw text
        return ""


def find(h, user, folder, subject, exact=True, m=None):
    """Messages in user's folder whose Subject contains `subject` (and, with
    exact, equals it): [{uid, flags, raw, subject}].  Read-only (EXAMINE,
    BODY.PEEK): sets no flag."""
    own = m is None
    if own:
        m = it.connect(h, user)
    try:
        n = it.select(m, folder, readonly=True)
        if n == 0:
            return []
        data = it.check(*m.uid("SEARCH", "CHARSET", "UTF-8", "HEADER", "Subject",
                                _quoted(subject)), "SEARCH " + folder)
        uids = [int(u) for u in (data[0] or b"").split()]
        res = []
        for uid in uids:
            meta = it.check(*m.uid("FETCH", str(uid), "(FLAGS)"), "FETCH flags")
            flags = set()
            for line in meta:
                if isinstance(line, bytes):
                    mo = re.search(rb"FLAGS \(([^)]*)\)", line)
                    if mo:
                        flags = set(mo.group(1).decode().split())
            raw = it.fetch_raw(m, uid)
            subj = subject_of(raw)
            if exact and subj != subject:
                continue
            res.append({"uid": uid, "flags": flags, "raw": raw, "subject": subj})
        return res
    finally:
        if own:
            try:
                m.logout()
            except Exception:
                pass


def count(h, user, folder):
    """Number of messages in a folder (EXAMINE)."""
    m = it.connect(h, user)
    try:
        return it.select(m, folder, readonly=True)
    finally:
        m.logout()


def wait_for(h, user, folder, subject, n=1, timeout=30):
    """Poll until at least n messages with this Subject are in the folder;
    returns what was found last (may be fewer on timeout)."""
    deadline = time.time() + timeout
    found = []
    while True:
        try:
            found = find(h, user, folder, subject)
        except Exception:      # server restarting: try again
            found = found or []
        if len(found) >= n or time.time() >= deadline:
            return found
        time.sleep(0.25)


def header_names(raw):
    """Lower-case names of the top-level header fields, in order."""
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    names = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        names.append(line.split(b":", 1)[0].strip().lower().decode("ascii", "replace"))
    return names


def delete_matching(h, user, text):
    """Expunge every message of user whose Subject contains text (all
    selectable folders); returns how many.  For cleaning up after a test."""
    m = it.connect(h, user)
    total = 0
    try:
        for name, flags, _ in it.list_folders(m):
            if "\\Noselect" in flags or "\\NonExistent" in flags:
                continue
            if it.select(m, name, readonly=False) == 0:
                m.close()
                continue
            data = it.check(*m.uid("SEARCH", "CHARSET", "UTF-8", "HEADER", "Subject",
                                    _quoted(text)), "SEARCH " + name)
            uids = (data[0] or b"").split()
            if uids:
                it.check(*m.uid("STORE", b",".join(uids).decode(), "+FLAGS.SILENT",
                                "(\\Deleted)"), "STORE " + name)
                it.check(*m.expunge(), "EXPUNGE " + name)
                total += len(uids)
            m.close()
        return total
    finally:
        try:
            m.logout()
        except Exception:
            pass


def submission_logins(h, since):
    """Dovecot's 'submission-login: ... Login:' lines after byte offset since."""
    with open(h["dovecot_log"], "rb") as f:
        f.seek(since)
        data = f.read().decode("utf-8", "replace")
    return [ln for ln in data.splitlines() if "submission-login: Info: Login: " in ln]


def relay_down_421s(h, user, since, wait=5):
    """How many of user's submission sessions since an offset in Dovecot's
    log ended having written "235 Logged in" and the relay-down 421: its
    "Disconnected: Failed to connect to relay server" line counts the bytes
    written in out=.  None when no such line shows within `wait` s.  Under
    load Dovecot can hang up without the 421, and a client then has no
    reply to show."""
    reply = "235 2.7.0 Logged in.\r\n" \
        "421 4.4.0 %s Failed to connect to relay server (connect)\r\n" % h["mail_domain"]
    who = "submission(%s)" % address(h, user)
    deadline = time.time() + wait
    while True:
        with open(h["dovecot_log"], "rb") as f:
            f.seek(since)
            lines = f.read().decode("utf-8", "replace").splitlines()
        outs = [int(m.group(1)) for ln in lines
                if who in ln and "Failed to connect to relay server" in ln
                for m in [re.search(r"\bout=(\d+)", ln)] if m]
        if outs or time.time() > deadline:
            break
        time.sleep(0.2)
    return sum(1 for o in outs if o >= len(reply)) if outs else None


# --- self-check --------------------------------------------------------------

def selfcheck(h, ok, fail, prefix="harness: "):
    """Check the sending path; ok(what) / fail(what, detail) report."""
    def check(cond, what, detail):
        (ok(prefix + what) if cond else fail(prefix + what, detail))
        return cond

    if not h.get("smtp"):
        fail(prefix + "submission service", "harness.json says no smtp (dovecot-submissiond "
             "and postfix installed? start.sh warned)")
        return False
    if not h.get("submission"):
        fail(prefix + "submission service", "down (submission.sh start)")
        return False
    alice, bob = address(h, "alice"), address(h, "bob")
    nobody = "nobody-%s@%s" % (secrets.token_hex(3), h.get("mail_domain", "mailfs.test"))
    tok = secrets.token_hex(5)
    good = True
    since = os.path.getsize(h["dovecot_log"])

    # STARTTLS, with a Bcc header that must survive (the relay is transparent).
    subj = "harness selfcheck %s starttls" % tok
    raw = ("From: %s\r\nTo: %s\r\nBcc: %s\r\nSubject: %s\r\n\r\nhello over STARTTLS\r\n"
           % (alice, bob, bob, subj)).encode()
    try:
        refused = submit(h, raw, [bob])
        got = wait_for(h, "bob", "INBOX", subj)
        good &= check(refused == {} and len(got) == 1,
                      "alice submits over STARTTLS (127.0.0.1:%d) and it lands in bob's INBOX once"
                      % h["submission_port"], "refused %r, %d copies in bob's INBOX" % (refused, len(got)))
        if got:
            names = header_names(got[0]["raw"])
            good &= check("bcc" in names and "message-id" not in names and "date" not in names,
                          "the relay delivers headers as sent (Bcc kept, no Date/Message-ID added)",
                          "header fields: %s" % names)
            good &= check(re.search(rb"^Return-Path: <" + re.escape(alice.encode()) + rb">",
                                    got[0]["raw"], re.M | re.I) is not None,
                          "envelope sender arrives as Return-Path", got[0]["raw"][:200])
    except Exception as e:
        good = False
        fail(prefix + "alice submits over STARTTLS", "%s: %s" % (type(e).__name__, e))

    # Implicit TLS.
    subj = "harness selfcheck %s implicit" % tok
    raw = ("From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nhello over TLS\r\n" % (alice, bob, subj)).encode()
    try:
        refused = submit(h, raw, [bob], implicit=True)
        got = wait_for(h, "bob", "INBOX", subj)
        good &= check(refused == {} and len(got) == 1,
                      "alice submits over implicit TLS (127.0.0.1:%d) and it lands in bob's INBOX once"
                      % h["submissions_port"], "refused %r, %d copies" % (refused, len(got)))
    except Exception as e:
        good = False
        fail(prefix + "alice submits over implicit TLS", "%s: %s" % (type(e).__name__, e))

    # One bad recipient among good ones.
    subj = "harness selfcheck %s badrcpt" % tok
    raw = ("From: %s\r\nTo: %s, %s\r\nSubject: %s\r\n\r\nsome get it\r\n" % (alice, bob, nobody, subj)).encode()
    try:
        replies = rcpt_replies(h, [bob, nobody, "carol@example.org", alice])
        codes = {r: c for r, c, _ in replies}
        good &= check(codes[bob] == 250 and codes[alice] == 250 and 500 <= codes[nobody] < 600
                      and 500 <= codes["carol@example.org"] < 600,
                      "RCPT TO: alice/bob accepted, unknown user and foreign domain refused with 5xx",
                      replies)
        refused = submit(h, raw, [bob, nobody])
        got = wait_for(h, "bob", "INBOX", subj)
        good &= check(list(refused) == [nobody] and 500 <= refused[nobody][0] < 600 and len(got) == 1,
                      "a transaction with a refused recipient still delivers to the good one",
                      "refused %r, %d copies" % (refused, len(got)))
    except Exception as e:
        good = False
        fail(prefix + "recipient refusal", "%s: %s" % (type(e).__name__, e))

    try:
        smtp_connect(h, "bob", mech="LOGIN").quit()
        ok(prefix + "bob logs in with AUTH LOGIN over STARTTLS")
    except Exception as e:
        good = False
        fail(prefix + "bob logs in with AUTH LOGIN over STARTTLS", "%s: %s" % (type(e).__name__, e))
    try:
        smtp_connect(h, "alice", pw="not-the-password", mech="PLAIN").quit()
        good &= check(False, "a wrong password is refused", "login succeeded")
    except smtplib.SMTPAuthenticationError as e:
        good &= check(500 <= e.smtp_code < 600, "a wrong password is refused (%d)" % e.smtp_code, e)
    except Exception as e:
        good &= check(False, "a wrong password is refused", "%s: %s" % (type(e).__name__, e))

    # The log process writes the login lines a moment after the replies.
    deadline = time.time() + 5
    while True:
        logins = [ln for ln in submission_logins(h, since)
                  if "user=<alice>" in ln or "user=<bob>" in ln]
        if len(logins) >= 5 or time.time() > deadline:
            break
        time.sleep(0.1)
    good &= check(len(logins) >= 5 and all(", TLS" in ln and "secured" not in ln for ln in logins),
                  "every submission login was TLS-protected per Dovecot's log",
                  logins[:3] or "no login line")
    try:
        delete_matching(h, "bob", "harness selfcheck %s" % tok)
    except Exception:
        pass
    return good


def main():
    h = it.load_harness()
    res = {"failed": 0}

    def ok(what):
        print("PASS: " + what, flush=True)

    def fail(what, detail):
        res["failed"] += 1
        print("FAIL: %s: %s" % (what, " ".join(str(detail).split())[:600]), flush=True)

    selfcheck(h, ok, fail, prefix="smtp harness: ")
    return 1 if res["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
