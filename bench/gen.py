#!/usr/bin/env python3
"""gen.py - write a deterministic folder of realistic messages into a Maildir.

usage: gen.py [--count N] [--seed S] [--small] [--uid UID --gid GID] CURDIR

Writes N messages (default 10,000) as files in CURDIR (a Maildir's cur/),
named the way Dovecot likes them ("<time>.M<n>P<pid>.bench,S=<size>,W=<vsize>:2,<flags>",
S= and W= so the server can take the sizes from the name) with the
message's Date as the file's mtime (its INTERNALDATE).  Files are chowned
to UID:GID.  The same seed always gives byte-identical files.

The mix, roughly like a working mailbox (tuned so the mean is ~60 KB):
  50%  text/plain (UTF-8, 7bit or quoted-printable), a few KB
  30%  multipart/alternative (text/plain + text/html)
  20%  multipart/mixed: a text or alternative body plus 1-3 base64
       attachments (pdf, jpeg, png, zip, docx...) of 10 KB .. 4 MB
Headers carry Received chains, DKIM signatures, RFC 2047 subjects,
threads (In-Reply-To/References), mailing-list headers.

--small: small messages only, 2-5 KB each (the same headers; 75%
text/plain, 25% multipart/alternative), for the 100,000-message folder
of the memory measurement.

Prints one summary line: count, total bytes, mean, largest.  Standard
library only.
"""

import argparse
import base64
import email.utils
import os
import quopri
import random
import sys

BASE_TS = 1_700_000_000          # 2023-11-14: the newest message's date
SPAN = 2 * 365 * 86400           # messages spread over two years

FIRST = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi",
         "Ivan", "Judy", "Mallory", "Niaj", "Olivia", "Peggy", "Rupert",
         "Sybil", "Trent", "Victor", "Walter", "Zoë", "José", "Søren",
         "François", "Łukasz", "Ingrid", "Chen", "Priya", "Yusuf", "Aiko"]
LAST = ["Smith", "Jones", "Müller", "García", "Rossi", "Novák", "Kowalski",
        "Dubois", "Andersson", "Tanaka", "Kim", "Okafor", "Silva", "Ivanova",
        "O'Brien", "van Dijk", "Nguyen", "Patel", "Schmidt", "Larsen"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com",
           "lists.example.org", "corp.example", "university.example.edu",
           "shop.example", "bank.example", "news.example.net"]
WORDS = ("the of and to in is that for it as with was on be by this are "
         "from at or have an not which but all they we were can more one "
         "meeting project report budget quarter review schedule deadline "
         "invoice attached please find below regards thanks update draft "
         "proposal customer server release version fix issue ticket team "
         "Monday Tuesday Wednesday Thursday Friday agenda notes minutes "
         "follow-up question answer price order shipping delivery account "
         "password security policy contract signature approval feedback "
         "travel hotel flight conference slides presentation workshop "
         "über café naïve résumé straße niño smörgåsbord Ångström "
         "data analysis results figure table chapter section appendix").split()
SUBJECTS = ["Quarterly report", "Meeting notes", "Re: budget for next year",
            "Invoice {n}", "Your order #{n} has shipped", "Draft proposal v{n}",
            "Weekly update", "Ticket #{n}: server not responding",
            "Lunch on Friday?", "Slides for the workshop", "Travel plans",
            "Contract renewal", "Fwd: photos from the trip",
            "Release {n}.0 announcement", "Security notice",
            "Réunion de l'équipe", "Überprüfung der Unterlagen",
            "Conference registration confirmed", "Minutes {n}",
            "Question about the data analysis"]
ATTACH = [("application/pdf", "pdf"), ("image/jpeg", "jpg"),
          ("image/png", "png"), ("application/zip", "zip"),
          ("application/vnd.openxmlformats-officedocument."
           "wordprocessingml.document", "docx"),
          ("application/vnd.ms-excel", "xls"), ("text/calendar", "ics")]
ATTNAMES = ["report", "invoice", "photo", "scan", "slides", "data",
            "contract", "Übersicht", "résumé", "minutes", "budget"]


def lognormal_int(rng, median, sigma, lo, hi):
    import math
    return int(min(hi, max(lo, rng.lognormvariate(math.log(median), sigma))))


class Gen:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        rng = self.rng
        # A pool of paragraphs; bodies are built from it (fast, still varied).
        self.paras = []
        for _ in range(600):
            words = [rng.choice(WORDS) for _ in range(rng.randint(25, 140))]
            words[0] = words[0].capitalize()
            text, line = [], ""
            for w in words:
                if len(line) + len(w) + 1 > 72:
                    text.append(line)
                    line = w
                else:
                    line = (line + " " + w) if line else w
            text.append(line + ".")
            self.paras.append("\n".join(text))
        self.people = []
        for _ in range(400):
            f, l = rng.choice(FIRST), rng.choice(LAST)
            addr = "%s.%s@%s" % (f.lower(), l.lower().replace(" ", "").replace("'", ""),
                                 rng.choice(DOMAINS))
            addr = addr.encode("ascii", "ignore").decode()
            self.people.append(("%s %s" % (f, l), addr))
        self.msgids = []

    # ---- pieces ----
    def addr(self, person):
        name, a = person
        return email.utils.formataddr((name, a), charset="utf-8")

    def text(self, size):
        out, n = [], 0
        while n < size:
            p = self.rng.choice(self.paras)
            out.append(p)
            n += len(p) + 2
        return "\n\n".join(out) + "\n"

    def encode_subject(self, s):
        try:
            s.encode("ascii")
            return s
        except UnicodeEncodeError:
            return "=?UTF-8?B?%s?=" % base64.b64encode(s.encode()).decode()

    def text_part(self, size, qp):
        body = self.text(size)
        if qp:
            enc = quopri.encodestring(body.encode()).decode()
            return ("Content-Type: text/plain; charset=utf-8\n"
                    "Content-Transfer-Encoding: quoted-printable\n\n" + enc)
        return ("Content-Type: text/plain; charset=utf-8; format=flowed\n"
                "Content-Transfer-Encoding: 8bit\n\n" + body)

    def html_part(self, size):
        rng = self.rng
        paras, n = [], 0
        while n < size:
            p = rng.choice(self.paras).replace("\n", " ")
            paras.append('<p style="margin:0 0 12px 0;font-family:Arial,'
                         'sans-serif;font-size:14px;color:#222">%s</p>' % p)
            n += len(paras[-1])
        html = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                "</head><body>\n<div class=\"content\">\n" + "\n".join(paras) +
                "\n</div></body></html>\n")
        enc = quopri.encodestring(html.encode()).decode()
        return ("Content-Type: text/html; charset=utf-8\n"
                "Content-Transfer-Encoding: quoted-printable\n\n" + enc)

    def boundary(self, i, depth):
        return "----=_Part_%d_%d.%08x" % (i, depth, self.rng.getrandbits(32))

    def multipart(self, kind, parts, i, depth):
        b = self.boundary(i, depth)
        out = ['Content-Type: multipart/%s; boundary="%s"\n\n' % (kind, b),
               "This is a multi-part message in MIME format.\n"]
        for p in parts:
            out.append("\n--%s\n%s" % (b, p))
        out.append("\n--%s--\n" % b)
        return "".join(out)

    def alternative(self, i, depth):
        size = lognormal_int(self.rng, 3000, 0.8, 300, 60000)
        return self.multipart("alternative",
                              [self.text_part(size, True),
                               self.html_part(int(size * 1.6))], i, depth)

    def attachment(self):
        rng = self.rng
        ctype, ext = rng.choice(ATTACH)
        size = lognormal_int(rng, 70_000, 1.1, 8_000, 4_000_000)
        name = "%s-%d.%s" % (rng.choice(ATTNAMES), rng.randint(1, 999), ext)
        data = base64.encodebytes(rng.randbytes(size)).decode()
        try:
            name.encode("ascii")
            disp = 'attachment; filename="%s"' % name
        except UnicodeEncodeError:
            from urllib.parse import quote
            disp = "attachment; filename*=utf-8''%s" % quote(name)
        return ('Content-Type: %s; name="%s"\n'
                "Content-Transfer-Encoding: base64\n"
                "Content-Disposition: %s\n\n%s" % (
                    ctype, self.encode_subject(name), disp, data))

    def headers(self, i, date, frm, to, subject):
        rng = self.rng
        h = []
        h.append("Return-Path: <%s>" % frm[1])
        hops = rng.randint(1, 3)
        for k in range(hops):
            h.append("Received: from mx%d.%s (mx%d.%s [192.0.2.%d])\n"
                     "\tby mail.example.com (Postfix) with ESMTPS id %08X%02X\n"
                     "\tfor <%s>; %s" % (
                         k + 1, rng.choice(DOMAINS), k + 1, rng.choice(DOMAINS),
                         rng.randint(1, 254), rng.getrandbits(32), k, to[1],
                         email.utils.formatdate(date - k * 7, localtime=False)))
        if rng.random() < 0.6:
            sig = base64.b64encode(rng.randbytes(256)).decode()
            h.append("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\n"
                     "\td=%s; s=sel%d; t=%d;\n"
                     "\th=from:to:subject:date:message-id;\n"
                     "\tbh=%s;\n\tb=%s\n\t %s" % (
                         frm[1].split("@")[1], rng.randint(1, 9), date,
                         base64.b64encode(rng.randbytes(32)).decode(),
                         sig[:70], sig[70:]))
        h.append("From: %s" % self.addr(frm))
        h.append("To: %s" % self.addr(to))
        if rng.random() < 0.25:
            cc = rng.sample(self.people, rng.randint(1, 4))
            h.append("Cc: %s" % ",\n\t".join(self.addr(p) for p in cc))
        h.append("Subject: %s" % subject)
        h.append("Date: %s" % email.utils.formatdate(date, localtime=False))
        mid = "<%d.%x@%s>" % (i, rng.getrandbits(48), frm[1].split("@")[1])
        h.append("Message-ID: %s" % mid)
        if self.msgids and rng.random() < 0.3:
            parent = rng.choice(self.msgids[-200:])
            h.append("In-Reply-To: %s" % parent)
            h.append("References: %s" % parent)
        self.msgids.append(mid)
        if rng.random() < 0.2:
            h.append("List-Id: Team discussion <team.lists.example.org>")
            h.append("List-Unsubscribe: <mailto:team-leave@lists.example.org>")
        h.append("X-Mailer: %s" % rng.choice(
            ["Thunderbird 115.4.1", "Apple Mail (2.3731)", "Outlook 16.0",
             "mutt/2.2.9", "Roundcube Webmail/1.6.4"]))
        h.append("MIME-Version: 1.0")
        return "\n".join(h) + "\n"

    def message(self, i, date):
        rng = self.rng
        frm, to = rng.sample(self.people, 2)
        subject = rng.choice(SUBJECTS).format(n=rng.randint(1, 9999))
        if rng.random() < 0.3:
            subject = "Re: " + subject
        subject = self.encode_subject(subject)
        r = rng.random()
        if r < 0.50:
            body = self.text_part(lognormal_int(rng, 2500, 0.9, 100, 80000),
                                  rng.random() < 0.3)
        elif r < 0.80:
            body = self.alternative(i, 0)
        else:
            first = (self.alternative(i, 1) if rng.random() < 0.5 else
                     self.text_part(lognormal_int(rng, 1500, 0.8, 100, 20000),
                                    False))
            parts = [first] + [self.attachment()
                               for _ in range(rng.choice([1, 1, 1, 2, 3]))]
            body = self.multipart("mixed", parts, i, 0)
        return (self.headers(i, date, frm, to, subject) + body).encode()

    def small(self, i, date):
        """A 2-5 KB message: the usual headers, a short body."""
        rng = self.rng
        frm, to = rng.sample(self.people, 2)
        subject = rng.choice(SUBJECTS).format(n=rng.randint(1, 9999))
        if rng.random() < 0.3:
            subject = "Re: " + subject
        head = self.headers(i, date, frm, to, self.encode_subject(subject))
        room = rng.randint(2000, 5000) - len(head.encode())
        if rng.random() < 0.25:
            # text + html: the html part is ~1.6x the text, QP adds a bit.
            t = max(100, room // 3)
            body = self.multipart("alternative",
                                  [self.text_part(t, False),
                                   self.html_part(t)], i, 0)
        else:
            body = self.text_part(max(100, room - 200), rng.random() < 0.3)
        data = (head + body).encode()
        if len(data) > 5000:        # paragraphs come whole: trim the text
            data = data[:5000 - 1] + b"\n"
        return data

    def flags(self):
        r = self.rng.random()
        if r < 0.80:
            f = "S"
        elif r < 0.90:
            f = ""
        elif r < 0.96:
            f = "RS"
        else:
            f = "FS"
        return f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=20231114)
    ap.add_argument("--uid", type=int, default=-1)
    ap.add_argument("--gid", type=int, default=-1)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("curdir")
    a = ap.parse_args()

    g = Gen(a.seed)
    total = largest = 0
    for i in range(a.count):
        # Oldest first, so the server's UID order matches the date order.
        date = BASE_TS - SPAN + (SPAN * i) // a.count + g.rng.randint(0, 600)
        data = g.small(i, date) if a.small else g.message(i, date)
        flags = g.flags()
        name = "%d.M%dP1.bench,S=%d,W=%d:2,%s" % (
            date, i, len(data), len(data) + data.count(b"\n"), flags)
        path = os.path.join(a.curdir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if a.uid >= 0:
                os.fchown(fd, a.uid, a.gid)
        finally:
            os.close(fd)
        os.utime(path, (date, date))
        total += len(data)
        largest = max(largest, len(data))
    print("generated %d messages, %d bytes (%.1f MB), mean %.1f KB, largest %.1f KB"
          % (a.count, total, total / 1e6, total / a.count / 1e3, largest / 1e3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
