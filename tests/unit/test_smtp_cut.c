/* test_smtp_cut.c - smtp_msg_cut: is a message visibly cut short, as an
 * interrupted copy leaves it (smtp.h)?
 *
 * Each case runs as written (LF) and with every LF made CRLF: the answer
 * must not depend on the line ending.  Then every prefix of a few whole
 * messages: each is cut or not exactly as the table of cut points says.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "smtp.h"

#define TO "To: bob@example.org\n"
#define MP(b) TO "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=" b "\n\n"

static const struct cut_case {
	const char *what;
	const char *raw;
	const char *why;	/* NULL: not cut; else in the reason */
} cases[] = {
    /* ---- not cut ---- */
    {"empty input", "", NULL},
    {"plain text", TO "\nhello\n", NULL},
    {"plain text without a final newline", TO "\nhello", NULL},
    {"header only, no blank line, no final newline (printf)",
     "Subject: hi\nTo: bob@example.org", NULL},
    {"header only, blank line", TO "\n", NULL},
    {"multipart, closed", MP("zz") "pre\n--zz\nContent-Type: text/plain\n\nhi\n--zz--\n",
     NULL},
    {"multipart, close delimiter without a newline",
     MP("zz") "--zz\n\nhi\n--zz--", NULL},
    {"multipart, close delimiter with trailing blanks",
     MP("zz") "--zz\n\nhi\n--zz-- \t\n", NULL},
    {"multipart, epilogue after the close", MP("zz") "--zz\n\nhi\n--zz--\nepilogue\n--zz\n",
     NULL},
    {"multipart, quoted boundary with a space and an escape",
     TO "Content-Type: multipart/mixed; boundary=\"a \\\"b\"\n\n--a \"b\n\nhi\n--a \"b--\n",
     NULL},
    {"multipart, names in any case, boundary on a folded line",
     TO "content-TYPE : Multipart/Alternative;\n\tBOUNDARY=\"q1\"\n\n--q1\n\nx\n--q1--\n",
     NULL},
    {"multipart, comments around the type",
     TO "Content-Type: (c) multipart (d) / mixed (e); boundary=k\n\n--k\n\nx\n--k--\n", NULL},
    {"multipart without a boundary parameter (not judged)",
     TO "Content-Type: multipart/mixed\n\nhello\n", NULL},
    {"multipart, boundary longer than 200 (not judged)",
     TO "Content-Type: multipart/mixed; boundary="
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	"\n\n--x\n",
     NULL},
    {"nested multiparts, both closed",
     MP("o") "--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\n\na\n--i\n\nb\n"
	     "--i--\n--o--\n",
     NULL},
    {"a boundary that extends another is not it",
     MP("b") "--b\nContent-Type: multipart/related; boundary=b2\n\n--b2\n\nx\n--b2--\n"
	     "--b--\n",
     NULL},
    {"nested multipart never closed inside a closed one (odd mail, no cut)",
     MP("o") "--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\n\na\n--o--\n",
     NULL},
    {"a line that only starts like a delimiter is none",
     MP("zz") "--zz\n\n--zzz\n--zz--\n", NULL},
    {"base64, whole groups", TO "Content-Transfer-Encoding: base64\n\nQUJD\nQQ==\n", NULL},
    {"base64, whole groups, no final newline",
     TO "Content-Transfer-Encoding: base64\n\nQUJDRA==", NULL},
    {"base64 cut at a group boundary (not visible)",
     TO "Content-Transfer-Encoding: base64\n\nQUJDREVG\nR0hJ", NULL},
    {"base64 with a footer appended (not judged)",
     TO "Content-Transfer-Encoding: base64\n\nQUJDRA\n-- \nList footer\n", NULL},
    {"base64 part short but closed before the end (odd mail, no cut)",
     MP("zz") "--zz\nContent-Transfer-Encoding: base64\n\nQUJ\n--zz\n\ntext\n--zz--\n",
     NULL},
    {"single-part text cut mid-word (not visible)", TO "\nDear Bob, the meeting is at no",
     NULL},
    {"quoted-printable cut after a soft break (not judged)",
     TO "Content-Transfer-Encoding: quoted-printable\n\nline =\n", NULL},
    {"message/rfc822 part with a closed multipart inside",
     MP("o") "--o\nContent-Type: message/rfc822\n\n" TO
	     "Content-Type: multipart/mixed; boundary=i\n\n--i\n\nx\n--i--\n--o--\n",
     NULL},
    {"digest: a part without Content-Type is a message",
     TO "Content-Type: multipart/digest; boundary=d\n\n--d\n\n" TO
	"Content-Type: multipart/mixed; boundary=i\n\n--i\n\nx\n--i--\n\n--d--\n",
     NULL},
    {"the first Content-Type counts",
     TO "Content-Type: text/plain\nContent-Type: multipart/mixed; boundary=z\n\nx\n", NULL},

    /* ---- cut ---- */
    {"multipart without its close", MP("zz") "--zz\nContent-Type: text/plain\n\nhi\n",
     "multipart/mixed ends without its closing boundary"},
    {"multipart cut inside the close delimiter", MP("zz") "--zz\n\nhi\n--zz-",
     "closing boundary"},
    {"multipart cut right after a delimiter", MP("zz") "--zz\n\nhi\n--zz",
     "closing boundary"},
    {"multipart cut inside a part's header",
     MP("zz") "--zz\nContent-Type: text/pl", "closing boundary"},
    {"multipart cut in the preamble", MP("zz") "This is a multi-part", "closing boundary"},
    {"multipart declared, header never ended",
     TO "Content-Type: multipart/alternative; boundary=zz\n",
     "multipart/alternative ends without its closing boundary"},
    {"multipart declared, cut inside its boundary parameter",
     TO "Content-Type: multipart/mixed; boundary=\"zz", "closing boundary"},
    {"inner closed, outer open: the outer is named",
     MP("o") "--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\n\na\n--i--\n",
     "multipart/mixed ends"},
    {"both open", MP("o") "--o\nContent-Type: multipart/related; boundary=i\n\n--i\n\na\n",
     "multipart/mixed ends"},
    {"message/rfc822 inside, cut in its multipart",
     MP("o") "--o\nContent-Type: message/rfc822\n\n" TO
	     "Content-Type: multipart/mixed; boundary=i\n\n--i\n\nx\n",
     "closing boundary"},
    {"base64 cut mid-group", TO "Content-Transfer-Encoding: base64\n\nQUJD\nQU",
     "base64 part ends in the middle of a 4-character group"},
    {"base64 cut inside the padding", TO "Content-Transfer-Encoding: base64\n\nQQ=",
     "base64"},
    {"base64, encoding name in any case, folded",
     TO "content-transfer-encoding:\n  BASE64\n\nQUJDR", "base64"},
    {"base64 attachment cut, multipart still open",
     MP("zz") "--zz\nContent-Transfer-Encoding: base64\n\nQUJDRA==\nQU",
     "multipart/mixed ends without its closing boundary"},
    {"base64 top level with a message/rfc822 type is a leaf",
     TO "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nVG86IGJ",
     "base64"},
};

/* LF -> CRLF; the caller frees. */
static char *crlf(const char *s)
{
	size_t n = strlen(s), extra = 0, j = 0;
	char *out;

	for (size_t i = 0; i < n; i++)
		extra += s[i] == '\n';
	out = malloc(n + extra + 1);
	if (!out)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			out[j++] = '\r';
		out[j++] = s[i];
	}
	out[j] = '\0';
	return out;
}

static void test_table(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct cut_case *c = &cases[i];
		char *dos = crlf(c->raw);
		const char *forms[2] = {c->raw, dos};

		for (int f = 0; f < 2; f++) {
			char why[128] = "";
			bool cut = smtp_msg_cut(forms[f], strlen(forms[f]), why,
						sizeof(why));

			if (!c->why)
				CHECK(!cut, "%s (%s): not cut [%s]", c->what,
				      f ? "CRLF" : "LF", why);
			else
				CHECK(cut && strstr(why, c->why),
				      "%s (%s): cut, '%s' [%s]", c->what,
				      f ? "CRLF" : "LF", c->why, why);
		}
		free(dos);
	}
}

/* Every prefix of a whole message: cut from the opening of the multipart
 * up to the last byte of its closing delimiter, and not cut from there
 * on; the base64 attachment's own prefixes are all inside the multipart. */
static void test_prefixes(void)
{
	static const char whole[] =
	    "From: a@example.org\nTo: b@example.org\nSubject: s\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=\"=_x\"\n\n"
	    "preamble\n--=_x\nContent-Type: text/plain\n\nSee attached.\n"
	    "--=_x\nContent-Type: application/octet-stream\n"
	    "Content-Transfer-Encoding: base64\n\n"
	    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v\n"
	    "MDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZH\n--=_x--\nepilogue\n";
	const char *mp = strstr(whole, "Content-Type: multipart");
	const char *close = strstr(whole, "--=_x--") + strlen("--=_x--");
	size_t bad = 0, n = strlen(whole);

	for (size_t len = 0; len <= n; len++) {
		char why[128];
		bool cut = smtp_msg_cut(whole, len, why, sizeof(why));
		/* Until the Content-Type line is whole (its newline read), a
		 * header cut there may still declare nothing: not judged. */
		const char *ct_end = strchr(mp, '\n');
		bool want;

		if (whole + len <= ct_end)
			continue;
		want = whole + len < close;
		if (cut != want) {
			bad++;
			printf("    prefix of %zu bytes: cut %d, want %d\n", len,
			       cut, want);
		}
	}
	CHECK(bad == 0, "multipart with base64: every prefix from the end of "
			"its Content-Type to the closing delimiter is cut, "
			"none after (%zu wrong)", bad);

	static const char b64[] = "To: b@example.org\n"
				  "Content-Type: application/pdf\n"
				  "Content-Transfer-Encoding: base64\n\n"
				  "JVBERi0xLjQKJcfs\nj6IKNSAwIG9iago8\nPC9MZW5n==\n";
	const char *body = strstr(b64, "\n\n") + 2;
	size_t wrong = 0;

	for (size_t len = (size_t)(body - b64); len <= strlen(b64); len++) {
		size_t chars = 0;
		char why[128];

		for (const char *p = body; p < b64 + len; p++)
			chars += *p != '\n';
		if (smtp_msg_cut(b64, len, why, sizeof(why)) != (chars % 4 != 0))
			wrong++;
	}
	CHECK(wrong == 0, "single-part base64: a prefix is cut exactly when "
			  "its characters are not whole groups of four (%zu "
			  "wrong)", wrong);
}

static void test_why(void)
{
	static const char raw[] = MP("zz") "--zz\n\nhi\n";
	char small[8];

	memset(small, 'x', sizeof(small));
	CHECK(smtp_msg_cut(raw, strlen(raw), small, 5) && small[4] == '\0' &&
		  small[5] == 'x',
	      "the reason is cut to whylen, NUL included, nothing written past");
	CHECK(smtp_msg_cut(raw, strlen(raw), NULL, 0),
	      "why may be NULL with whylen 0");
	CHECK(!smtp_msg_cut(NULL, 0, NULL, 0), "no bytes: not cut");
}

int main(void)
{
	test_table();
	test_prefixes();
	test_why();
	return check_done();
}
