#!/usr/bin/env python3
"""generate.py - writes the hand-made test messages in this directory.

The .eml files are the source of truth for seeding (tests/data/seed.tsv);
this script is how they were written and reproduces them byte for byte
(binary payloads come from a fixed-seed PRNG).  Run it only to change them.
Line endings are LF in the files; the IMAP client turns them into CRLF.
"""

import base64
import os
import random
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))


def b64(data):
    return "\n".join(textwrap.wrap(base64.b64encode(data).decode(), 76))


def write(name, text):
    data = text.encode("utf-8") if isinstance(text, str) else text
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


rng = random.Random(20240101)
pdf = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
       + bytes(rng.randrange(256) for _ in range(20000)) + b"\n%%EOF\n")
png = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
       + bytes(rng.randrange(256) for _ in range(3000)))

write("01-plain.eml", """\
From: Bob Example <bob@example.org>
To: Alice Example <alice@example.org>
Subject: Plain text greeting
Date: Mon, 15 Jan 2024 09:30:00 +0000
Message-ID: <plain-01@mailfs.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hello Alice,

this is a plain text message with nothing special in it.

-- 
Bob
""")

write("02-alternative.eml", """\
From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>
To: alice@example.org
Subject: Alternative parts
Date: Tue, 16 Jan 2024 14:05:09 +0100
Message-ID: <alternative-02@mailfs.test>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt-boundary-02"

This is a multi-part message in MIME format.

--alt-boundary-02
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe aus K=C3=B6ln =E2=80=93 the plain half of an alternative.
A soft line break follows here: this sentence is long enough to be wrap=
ped by quoted-printable.

--alt-boundary-02
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<html><body><p>Gr=C3=BC=C3=9Fe aus <b>K=C3=B6ln</b> =E2=80=93 the HTML half.=
</p></body></html>

--alt-boundary-02--
""")

write("03-attachment-pdf.eml", """\
From: Carol Reports <carol@example.com>
To: Alice Example <alice@example.org>
Subject: Quarterly report (PDF attached)
Date: Wed, 17 Jan 2024 08:00:00 -0800
Message-ID: <pdf-03@mailfs.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mixed-03"

--mixed-03
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

Please find the report attached.

--mixed-03
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64

%s
--mixed-03
Content-Type: image/png
Content-Disposition: inline
Content-Transfer-Encoding: base64

%s
--mixed-03--
""" % (b64(pdf), b64(png)))

# Two words that occur only base64-encoded on the wire: grep on the mount
# must find them in the decoded view and nowhere else.
body04 = ("This body is base64 encoded on the wire.\n"
          "Secret word: xylophonequartz\n").encode()
notes04 = ("Meeting notes\n=============\n\n"
           "The code word for the offsite is zanzibarquokka.\n").encode()
write("04-base64-text.eml", """\
From: Dave <dave@example.net>
To: alice@example.org
Subject: Notes attached, body in base64
Date: Thu, 18 Jan 2024 17:45:30 +0000
Message-ID: <base64-04@mailfs.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mixed-04"

--mixed-04
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

%s
--mixed-04
Content-Type: text/plain; charset=utf-8; name="notes.txt"
Content-Disposition: attachment; filename="notes.txt"
Content-Transfer-Encoding: base64

%s
--mixed-04--
""" % (b64(body04), b64(notes04)))

write("05-rfc2047-utf8.eml", """\
From: =?UTF-8?B?w4lsb2TDqWUgRMO8cmVy?= <elodie@example.fr>
To: alice@example.org
Subject: =?UTF-8?B?w5xuw69jw7Zkw6kgc3ViamVjdCDigJQg5pel5pys6Kqe?=
 =?UTF-8?B?IOKckw==?=
Date: Fri, 19 Jan 2024 11:11:11 +0100
Message-ID: <rfc2047-05@mailfs.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Subject is UTF-8 in base64 encoded-words, folded over two lines.
Body is raw UTF-8: Ünïcödé, 日本語, ✓.
""")

write("06-rfc2047-latin1.eml", """\
From: =?ISO-8859-1?Q?Fran=E7ois_P=E2tissier?= <francois@example.fr>
To: alice@example.org
Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me_br=FBl=E9e?=
Date: Sat, 20 Jan 2024 20:20:20 +0100
Message-ID: <rfc2047-06@mailfs.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Cr=E8me br=FBl=E9e, s'il vous pla=EEt. Latin-1 body, quoted-printable.
""")

write("07-rfc2231-filenames.eml", """\
From: Erik <erik@example.se>
To: alice@example.org
Subject: Attachments with encoded names
Date: Sun, 21 Jan 2024 06:07:08 +0000
Message-ID: <rfc2231-07@mailfs.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mixed-07"

--mixed-07
Content-Type: text/plain; charset=us-ascii

Four attachments, four ways of encoding a file name.

--mixed-07
Content-Type: text/plain; charset=utf-8
Content-Disposition: attachment; filename*=UTF-8''%C3%9Cbersicht%20%E2%82%AC%202024.txt
Content-Transfer-Encoding: base64

""" + b64("Übersicht: 100 €\n".encode()) + """
--mixed-07
Content-Type: text/csv; charset=utf-8
Content-Disposition: attachment;
 filename*0*=UTF-8''Sehr%20lange%20;
 filename*1*=Datei%C3%A4;
 filename*2=".csv"

a,b,c
1,2,3

--mixed-07
Content-Type: application/pdf; name="=?UTF-8?B?UHLDvGZiZXJpY2h0LnBkZg==?="
Content-Disposition: attachment; filename="=?UTF-8?B?UHLDvGZiZXJpY2h0LnBkZg==?="
Content-Transfer-Encoding: base64

""" + b64(pdf[:4000]) + """
--mixed-07
Content-Type: text/plain; charset=iso-8859-1
Content-Disposition: attachment; filename*=iso-8859-1'de'%E4rger.txt
Content-Transfer-Encoding: quoted-printable

=C4rger mit Umlauten.

--mixed-07--
""")

inner08 = """\
From: Frank Inner <frank@example.org>
To: team@example.org
Subject: Inner message: quarterly numbers
Date: Mon, 01 Jan 2024 10:00:00 +0000
Message-ID: <inner-08@mailfs.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="inner-08"

--inner-08
Content-Type: text/plain; charset=us-ascii

The numbers are in the attachment.

--inner-08
Content-Type: text/csv
Content-Disposition: attachment; filename="numbers.csv"

q,revenue
1,100
2,120

--inner-08--
"""
write("08-nested-rfc822.eml", """\
From: Grace <grace@example.org>
To: alice@example.org
Subject: Fwd: Inner message: quarterly numbers
Date: Tue, 02 Jan 2024 12:34:56 +0000
Message-ID: <nested-08@mailfs.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer-08"

--outer-08
Content-Type: text/plain; charset=us-ascii

Forwarding the message below.

--outer-08
Content-Type: message/rfc822
Content-Disposition: inline

%s
--outer-08--
""" % inner08)

write("09-hostile-filenames.eml", """\
From: Mallory <mallory@example.com>
To: alice@example.org
Subject: Totally harmless attachments
Date: Wed, 24 Jan 2024 03:04:05 +0000
Message-ID: <hostile-09@mailfs.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mixed-09"

--mixed-09
Content-Type: text/plain; charset=us-ascii

See attached.

--mixed-09
Content-Type: text/plain; charset=us-ascii
Content-Disposition: attachment; filename="../../etc/passwd"

root:x:0:0:this is not the real passwd file:/root:/bin/sh

--mixed-09
Content-Type: text/plain; charset=us-ascii
Content-Disposition: attachment; filename=".hidden-config"

leading dot must go

--mixed-09
Content-Type: application/octet-stream
Content-Disposition: attachment; filename="C:\\\\Windows\\\\evil.bat"
Content-Transfer-Encoding: base64

%s
--mixed-09
Content-Type: text/plain; charset=us-ascii
Content-Disposition: attachment; filename="dup.txt"

first dup

--mixed-09
Content-Type: text/plain; charset=us-ascii
Content-Disposition: attachment; filename="dup.txt"

second dup

--mixed-09
Content-Type: text/plain; charset=us-ascii
Content-Disposition: attachment; filename="=?UTF-8?Q?bell=07and=0Anewline.txt?="

control characters in a name

--mixed-09--
""" % b64(b"@echo off\r\necho pwned\r\n"))

write("10-subject-slash-ctrl.eml", """\
From: Heidi / Ops <heidi@example.org>
To: alice@example.org
Subject: Q3/Q4 report:\tplan =?UTF-8?Q?with=07bell_and=1Bescape?= ../../x
Date: Thu, 25 Jan 2024 13:14:15 +0000
Message-ID: <slash-10@mailfs.test>

Subject has a slash, a tab, a BEL and an ESC (the last two encoded).
""")

write("11-no-date.eml", """\
From: Ivan <ivan@example.org>
To: alice@example.org
Subject: Message without a Date header
Message-ID: <nodate-11@mailfs.test>

No Date header: the file time must come from INTERNALDATE.
""")

write("12-malformed-header.eml", """\
From: Broken Header <broken@example.org>
Subject: Malformed header block
This line has no colon and is not a continuation
Date: Fri, 26 Jan 2024 09:00:00 +0000
Message-ID: <malformed-12@mailfs.test>
: empty field name
X-Very-Long:""" + " word" * 400 + """

Body after a broken header block.
""")

write("13-malformed-mime.eml", """\
From: Judy <judy@example.org>
To: alice@example.org
Subject: Unterminated multipart and bad base64
Date: Sat, 27 Jan 2024 10:00:00 +0000
Message-ID: <malformed-13@mailfs.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="never-closed-13"

--never-closed-13
Content-Type: text/plain; charset=us-ascii

First part is fine.

--never-closed-13
Content-Type: application/octet-stream; name="broken.bin"
Content-Disposition: attachment; filename="broken.bin"
Content-Transfer-Encoding: base64

!!!this is not base64 at all@@@
AAAA====BBBB
--never-closed-13
Content-Type: text/plain; charset=x-no-such-charset
Content-Transfer-Encoding: quoted-printable

Unknown charset and a broken escape =ZZ here, and the multipart never ends.
""")

write("14-raw-8bit-header.eml",
      b"From: R\xe9mi Latin <remi@example.org>\n"
      b"To: alice@example.org\n"
      b"Subject: Gr\xfc\xdfe in raw Latin-1, not encoded\n"
      b"Date: Sun, 28 Jan 2024 11:00:00 +0000\n"
      b"Message-ID: <raw8bit-14@mailfs.test>\n"
      b"Content-Type: text/plain\n"
      b"\n"
      b"Raw 8-bit body without a charset: \xc3\xa4\xc3\xb6\xc3\xbc (UTF-8 bytes).\n")

write("15-timezone.eml", """\
From: Kim <kim@example.org>
To: alice@example.org
Subject: New Year in New York
Date: Tue, 31 Dec 2024 23:30:00 -0500
Message-ID: <timezone-15@mailfs.test>

Sent at 23:30 in New York, which is 04:30 on 1 January 2025 in UTC.
""")

write("16-long-subject.eml", """\
From: Leo Verbose <leo@example.org>
To: alice@example.org
Subject: =?UTF-8?B?%s?=
Date: Mon, 29 Jan 2024 15:16:17 +0000
Message-ID: <long-16@mailfs.test>

A subject much longer than a file name may be.
""" % base64.b64encode(("Ωμέγα " * 60 + "end").encode()).decode())

write("17-sent.eml", """\
From: Alice Example <alice@example.org>
To: Bob Example <bob@example.org>
Subject: Re: Plain text greeting
Date: Mon, 15 Jan 2024 10:00:00 +0000
Message-ID: <sent-17@mailfs.test>
In-Reply-To: <plain-01@mailfs.test>
References: <plain-01@mailfs.test>

Hi Bob, thanks!
""")

write("18-trash.eml", """\
From: Spammy <offers@example.biz>
To: alice@example.org
Subject: You have won
Date: Tue, 30 Jan 2024 00:00:01 +0000
Message-ID: <trash-18@mailfs.test>

Deleted into Trash.
""")

write("19-headers-only.eml", """\
From: Mike <mike@example.org>
To: alice@example.org
Subject: Headers only, no body at all
Date: Wed, 31 Jan 2024 12:00:00 +0000
Message-ID: <headers-only-19@mailfs.test>""")

write("20-bad-date.eml", """\
From: Nina <nina@example.org>
To: alice@example.org
Subject: Unparsable Date header
Date: sometime last week, probably
Message-ID: <bad-date-20@mailfs.test>

The Date header cannot be parsed: the file time must come from INTERNALDATE.
""")

write("21-html-only.eml", """\
From: Newsletter <news@example.com>
To: alice@example.org
Subject: HTML only
Date: Thu, 01 Feb 2024 07:00:00 +0000
Message-ID: <html-only-21@mailfs.test>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><body><h1>News</h1><p>No plain text part here.</p></body></html>
""")

write("22-draft.eml", """\
From: Alice Example <alice@example.org>
To: Carol Reports <carol@example.com>
Subject: Draft: comments on the report
Date: Fri, 02 Feb 2024 16:00:00 +0000
Message-ID: <draft-22@mailfs.test>

Unfinished draft.
""")

write("23-windows-1252.eml",
      b"From: Olga <olga@example.org>\n"
      b"To: alice@example.org\n"
      b"Subject: Smart quotes\n"
      b"Date: Sat, 03 Feb 2024 18:00:00 +0000\n"
      b"Message-ID: <cp1252-23@mailfs.test>\n"
      b"MIME-Version: 1.0\n"
      b"Content-Type: text/plain; charset=windows-1252\n"
      b"Content-Transfer-Encoding: 8bit\n"
      b"\n"
      b"\x93Smart quotes\x94 cost \x80 5 \x96 in windows-1252.\n")

write("24-bob-hello.eml", """\
From: Alice Example <alice@example.org>
To: Bob Example <bob@example.org>
Subject: Hello Bob
Date: Sun, 04 Feb 2024 09:00:00 +0000
Message-ID: <bob-24@mailfs.test>

A message in bob's mailbox.
""")
