/* test_smtp_prep.c - smtp_prepare: completing a file dropped into outbox/
 * for submission, or refusing it with a reason (smtp.h).
 *
 * Outputs are checked with plain string searches on m->data, never by
 * re-parsing with mailfs or GMime code.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "check.h"
#include "mfs_err.h"
#include "mime.h"
#include "smtp.h"

#define DEF_FROM "me@example.org"
#define MAX_LIST 8

/* A string literal and its length, NULs included. */
#define RAW(s) s, sizeof(s) - 1

/* ---- looking at the output ---------------------------------------------- */

/* Length of the header block: up to and including the CRLF that ends its
 * last line (the blank line after it is not counted).  The whole data when
 * there is no blank line. */
static size_t header_len(const struct smtp_msg *m)
{
	const char *end;

	if (m->len >= 2 && !memcmp(m->data, "\r\n", 2))
		return 0;
	end = strstr(m->data, "\r\n\r\n");
	return end ? (size_t)(end - m->data) + 2 : m->len;
}

/* The body: what follows the blank line, or NULL without one. */
static const char *body_of(const struct smtp_msg *m)
{
	size_t h = header_len(m);

	if (h + 2 > m->len || memcmp(m->data + h, "\r\n", 2))
		return NULL;
	return m->data + h + 2;
}

/* Visit the header lines (without their CRLF); a line is a field start
 * when it does not begin with white space. */
struct hline {
	const char *p;
	size_t len;
};

static size_t header_lines(const struct smtp_msg *m, struct hline *out,
			   size_t max)
{
	size_t h = header_len(m), pos = 0, n = 0;

	while (pos < h && n < max) {
		const char *eol = memchr(m->data + pos, '\n', h - pos);
		size_t end = eol ? (size_t)(eol - m->data) : h;
		size_t len = end - pos;

		if (len && m->data[pos + len - 1] == '\r')
			len--;
		out[n].p = m->data + pos;
		out[n].len = len;
		n++;
		pos = end + 1;
	}
	return n;
}

/* How many header fields are called name (case-insensitive); the value
 * of the first one (its first line, leading blanks skipped) into val. */
static int header_find(const struct smtp_msg *m, const char *name, char *val,
		       size_t size)
{
	struct hline l[128];
	size_t n = header_lines(m, l, 128), nl = strlen(name);
	int count = 0;

	if (val && size)
		val[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t k = nl;

		if (l[i].len <= nl || strncasecmp(l[i].p, name, nl))
			continue;
		while (k < l[i].len && (l[i].p[k] == ' ' || l[i].p[k] == '\t'))
			k++;
		if (k >= l[i].len || l[i].p[k] != ':')
			continue;
		if (count++ == 0 && val) {
			k++;
			while (k < l[i].len &&
			       (l[i].p[k] == ' ' || l[i].p[k] == '\t'))
				k++;
			snprintf(val, size, "%.*s", (int)(l[i].len - k),
				 l[i].p + k);
		}
	}
	return count;
}

/* Every LF is preceded by CR, and the header holds no bare CR either. */
static bool crlf_only(const struct smtp_msg *m)
{
	size_t h = header_len(m);

	for (size_t i = 0; i < m->len; i++) {
		if (m->data[i] == '\n' && (i == 0 || m->data[i - 1] != '\r'))
			return false;
		if (i < h && m->data[i] == '\r' &&
		    (i + 1 >= m->len || m->data[i + 1] != '\n'))
			return false;
	}
	return true;
}

static bool rcpt_is(const struct smtp_msg *m, const char *const *want)
{
	size_t n = 0;

	while (n < MAX_LIST && want[n])
		n++;
	if (m->nrcpt != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!m->rcpt[i] || strcmp(m->rcpt[i], want[i]))
			return false;
	return true;
}

/* s with CR and LF spelled out, for a one-line message. */
static const char *esc(const char *s)
{
	static char buf[256];
	size_t n = 0;

	for (; *s && n + 3 < sizeof(buf); s++) {
		if (*s == '\r' || *s == '\n') {
			buf[n++] = '\\';
			buf[n++] = *s == '\r' ? 'r' : 'n';
		} else {
			buf[n++] = *s;
		}
	}
	buf[n] = '\0';
	return buf;
}

static void show(const struct smtp_msg *m)
{
	printf("    from [%s], %zu rcpt:", m->from ? m->from : "(null)",
	       m->nrcpt);
	for (size_t i = 0; i < m->nrcpt; i++)
		printf(" [%s]", m->rcpt[i]);
	printf("\n    data [%.*s]\n", (int)(m->len > 600 ? 600 : m->len),
	       m->data);
}

/* ---- messages that go out ------------------------------------------------ */

static const struct ok_case {
	const char *what;
	const char *raw;
	const char *from;	     /* envelope sender */
	const char *rcpt[MAX_LIST];  /* envelope recipients, in order */
	const char *has[MAX_LIST];   /* "Name: exact value" in the header */
	const char *lacks[MAX_LIST]; /* fields that must not be there */
	const char *body;	     /* exact body after the blank line */
	const char *lacks_text;	     /* not anywhere in data */
} oks[] = {
    {"plain message with To",
     "To: Bob <bob@example.org>\nSubject: hello\n\nhello\nworld\n",
     DEF_FROM,
     {"bob@example.org"},
     {"To: Bob <bob@example.org>", "Subject: hello", "From: " DEF_FROM,
      "MIME-Version: 1.0"},
     {"Bcc", "Content-Type"},
     "hello\r\nworld\r\n",
     NULL},
    {"existing From, Date, Message-ID kept",
     "From: \"Alice A.\" <alice@example.org>\r\n"
     "Date: Tue, 01 Oct 2024 12:00:00 +0200\r\n"
     "Message-ID: <abc.123@example.org>\r\n"
     "To: bob@example.org\r\n"
     "Subject: kept\r\n\r\nbody\r\n",
     "alice@example.org",
     {"bob@example.org"},
     {"From: \"Alice A.\" <alice@example.org>",
      "Date: Tue, 01 Oct 2024 12:00:00 +0200",
      "Message-ID: <abc.123@example.org>", "MIME-Version: 1.0"},
     {NULL},
     "body\r\n",
     DEF_FROM},
    {"existing MIME-Version kept once",
     "To: bob@example.org\nMIME-Version: 1.0\n\nx\n",
     DEF_FROM,
     {"bob@example.org"},
     {"MIME-Version: 1.0"},
     {NULL},
     "x\r\n",
     NULL},
    {"Bcc removed, its address in the envelope",
     "To: bob@example.org\nBcc: Secret Sam <sam@example.org>\n"
     "Subject: s\n\nbody\n",
     DEF_FROM,
     {"bob@example.org", "sam@example.org"},
     {"To: bob@example.org", "Subject: s"},
     {"Bcc"},
     "body\r\n",
     "sam@"},
    {"Bcc first, several, any case",
     "Bcc: one@example.org\nTo: bob@example.org\nbcc: two@example.org\n"
     "BCC : three@example.org\n\nbody\n",
     DEF_FROM,
     {"bob@example.org", "one@example.org", "two@example.org",
      "three@example.org"},
     {"To: bob@example.org"},
     {"Bcc"},
     "body\r\n",
     "@example.org\r\nBCC"},
    {"only Bcc, undisclosed To group",
     "To: undisclosed-recipients:;\nBcc: z@example.org\n\nx\n",
     DEF_FROM,
     {"z@example.org"},
     {"To: undisclosed-recipients:;"},
     {"Bcc"},
     "x\r\n",
     "z@example.org"},
    {"To+Cc+Bcc, groups flattened, names stripped",
     "To: Team: Bob <bob@example.org>, carol@example.org;, "
     "\"Dave, D.\" <dave@example.org>\n"
     "Cc: Eve <eve@example.org>, Friends: fred@example.org;\n"
     "Bcc: \"Gina G\" <gina@example.org>\n\nx\n",
     DEF_FROM,
     {"bob@example.org", "carol@example.org", "dave@example.org",
      "eve@example.org", "fred@example.org", "gina@example.org"},
     {"Cc: Eve <eve@example.org>, Friends: fred@example.org;"},
     {"Bcc"},
     "x\r\n",
     NULL},
    {"only Cc",
     "Cc: carol@example.org\nSubject: cc\n\nx\n",
     DEF_FROM,
     {"carol@example.org"},
     {"Cc: carol@example.org"},
     {"Bcc"},
     "x\r\n",
     NULL},
    {"8-bit body without Content-Type: UTF-8 declared",
     "To: bob@example.org\nSubject: caf\xc3\xa9\n\ncaf\xc3\xa9 cr\xc3\xa8me\n",
     DEF_FROM,
     {"bob@example.org"},
     {"Content-Type: text/plain; charset=UTF-8"},
     {NULL},
     "caf\xc3\xa9 cr\xc3\xa8me\r\n",
     NULL},
    {"8-bit text/plain without charset: UTF-8 declared",
     "To: bob@example.org\nContent-Type: text/plain\n\n\xe2\x82\xac 5\n",
     DEF_FROM,
     {"bob@example.org"},
     {"Content-Type: text/plain; charset=UTF-8"},
     {NULL},
     "\xe2\x82\xac 5\r\n",
     NULL},
    {"8-bit body with explicit charset left alone",
     "To: bob@example.org\n"
     "Content-Type: text/plain; charset=ISO-8859-1\n"
     "Content-Transfer-Encoding: 8bit\n\ncaf\xe9\n",
     DEF_FROM,
     {"bob@example.org"},
     {"Content-Type: text/plain; charset=ISO-8859-1",
      "Content-Transfer-Encoding: 8bit"},
     {NULL},
     "caf\xe9\r\n",
     "UTF-8"},
    {"7-bit text: no charset added",
     "To: bob@example.org\nSubject: ascii\n\njust ascii\n",
     DEF_FROM,
     {"bob@example.org"},
     {"Subject: ascii"},
     {"Content-Type", "Content-Transfer-Encoding"},
     "just ascii\r\n",
     "charset"},
    {"7-bit text/plain: Content-Type unchanged",
     "To: bob@example.org\nContent-Type: text/plain\n\nplain ascii\n",
     DEF_FROM,
     {"bob@example.org"},
     {"Content-Type: text/plain"},
     {NULL},
     "plain ascii\r\n",
     "charset"},
    {"header only, blank line, no body",
     "To: bob@example.org\n\n",
     DEF_FROM,
     {"bob@example.org"},
     {"To: bob@example.org", "From: " DEF_FROM},
     {NULL},
     "",
     NULL},
    {"no trailing newline after the body",
     "To: bob@example.org\n\nno newline",
     DEF_FROM,
     {"bob@example.org"},
     {"To: bob@example.org"},
     {NULL},
     "no newline",
     NULL},
    /* A file written with printf or an editor set not to add a final
     * newline: the added fields must not be glued onto the last one. */
    {"header only, no final newline",
     "Subject: hi\nTo: bob@example.org",
     DEF_FROM,
     {"bob@example.org"},
     {"To: bob@example.org", "From: " DEF_FROM, "Subject: hi"},
     {NULL},
     NULL,
     "example.orgFrom"},
    {"mixed CRLF and LF",
     "To: bob@example.org\r\nSubject: mixed\n\r\nline1\nline2\r\n",
     DEF_FROM,
     {"bob@example.org"},
     {"Subject: mixed"},
     {NULL},
     "line1\r\nline2\r\n",
     NULL},
    /* GMime writes a multipart's prologue and epilogue as they came */
    {"multipart, LF prologue and epilogue",
     "To: bob@example.org\nContent-Type: multipart/mixed; boundary=zz\n\n"
     "This is a multi-part message.\n\n--zz\nContent-Type: text/plain\n\n"
     "hi\n--zz--\nepilogue\nline\n",
     DEF_FROM,
     {"bob@example.org"},
     {"Content-Type: multipart/mixed; boundary=zz"},
     {NULL},
     NULL,
     "\nepilogue\n"},
    {"multipart without a boundary",
     "To: bob@example.org\nContent-Type: multipart/mixed\n\nhello\nworld\n",
     DEF_FROM,
     {"bob@example.org"},
     {"Content-Type: multipart/mixed"},
     {NULL},
     NULL,
     "hello\nworld"},
    {"a bare CR in the body is the body's business",
     "To: bob@example.org\n\nbody\rwith CR\n",
     DEF_FROM,
     {"bob@example.org"},
     {"To: bob@example.org"},
     {NULL},
     "body\rwith CR\r\n",
     NULL},
};

static void test_ok(void)
{
	for (size_t i = 0; i < sizeof(oks) / sizeof(oks[0]); i++) {
		const struct ok_case *c = &oks[i];
		struct mfs_error err = {0};
		struct smtp_msg *m = NULL;
		char val[512], name[64];
		const char *body;
		int rc, f0 = check_fail;

		rc = smtp_prepare(c->raw, strlen(c->raw), DEF_FROM, &m, &err);
		CHECK(rc == 0 && m, "ok %s: accepted (%d %s)", c->what, rc,
		      err.msg);
		if (rc != 0 || !m)
			continue;
		CHECK(m->data && m->len > 0 && strlen(m->data) <= m->len,
		      "ok %s: data", c->what);
		CHECK_STR(m->from, c->from, "ok %s: envelope sender", c->what);
		CHECK(rcpt_is(m, c->rcpt), "ok %s: envelope recipients",
		      c->what);
		CHECK(crlf_only(m), "ok %s: CRLF throughout, no bare LF",
		      c->what);
		CHECK(body_of(m) != NULL, "ok %s: blank line after the header",
		      c->what);

		/* the fields every outgoing message has, exactly once */
		CHECK(header_find(m, "From", val, sizeof(val)) == 1 &&
			  strchr(val, '@'),
		      "ok %s: one From [%s]", c->what, val);
		CHECK(header_find(m, "Date", val, sizeof(val)) == 1 &&
			  strlen(val) >= 16 && strchr(val, ':'),
		      "ok %s: one Date [%s]", c->what, val);
		CHECK(header_find(m, "Message-ID", val, sizeof(val)) == 1 &&
			  val[0] == '<' && strchr(val, '@') &&
			  val[strlen(val) - 1] == '>',
		      "ok %s: one Message-ID [%s]", c->what, val);
		CHECK(header_find(m, "MIME-Version", val, sizeof(val)) == 1 &&
			  !strcmp(val, "1.0"),
		      "ok %s: one MIME-Version [%s]", c->what, val);
		CHECK(header_find(m, "Bcc", NULL, 0) == 0,
		      "ok %s: no Bcc in the header", c->what);

		for (size_t k = 0; k < MAX_LIST && c->has[k]; k++) {
			const char *colon = strstr(c->has[k], ": ");

			snprintf(name, sizeof(name), "%.*s",
				 (int)(colon - c->has[k]), c->has[k]);
			header_find(m, name, val, sizeof(val));
			CHECK_STR(val, colon + 2, "ok %s: %s", c->what,
				  c->has[k]);
		}
		for (size_t k = 0; k < MAX_LIST && c->lacks[k]; k++)
			CHECK(header_find(m, c->lacks[k], NULL, 0) == 0,
			      "ok %s: no %s", c->what, c->lacks[k]);
		if (c->body) {
			size_t bl = strlen(c->body);

			/* a final CRLF may be added to a body without one */
			body = body_of(m);
			if (body && bl && c->body[bl - 1] != '\n' &&
			    !strncmp(body, c->body, bl) &&
			    !strcmp(body + bl, "\r\n"))
				body = c->body;
			CHECK_STR(body, c->body, "ok %s: body kept", c->what);
		}
		if (c->lacks_text)
			CHECK(!memmem(m->data, m->len, c->lacks_text,
				      strlen(c->lacks_text)),
			      "ok %s: no '%s' in the output", c->what,
			      esc(c->lacks_text));
		if (check_fail != f0)
			show(m);
		smtp_msg_free(m);
	}
}

/* Each text part of a multipart message is looked at on its own. */
static void test_multipart_charset(void)
{
	static const char raw[] =
		"To: bob@example.org\n"
		"Content-Type: multipart/mixed; boundary=\"b\"\n\n"
		"--b\nContent-Type: text/plain\n\ncaf\xc3\xa9\n"
		"--b\nContent-Type: text/plain; charset=ISO-8859-1\n\ncaf\xe9\n"
		"--b\nContent-Type: text/html\n\n<p>plain ascii</p>\n"
		"--b--\n";
	struct mfs_error err = {0};
	struct smtp_msg *m = NULL;
	int rc = smtp_prepare(raw, sizeof(raw) - 1, DEF_FROM, &m, &err);
	const char *utf8 = "Content-Type: text/plain; charset=UTF-8\r\n";
	const char *latin = "Content-Type: text/plain; charset=ISO-8859-1\r\n";
	const char *html = "Content-Type: text/html\r\n";

	CHECK(rc == 0 && m, "multipart: prepared (%s)", err.msg);
	if (!m)
		return;
	CHECK(memmem(m->data, m->len, utf8, strlen(utf8)) != NULL,
	      "multipart: the 8-bit text part without charset gets UTF-8");
	CHECK(memmem(m->data, m->len, latin, strlen(latin)) != NULL,
	      "multipart: a declared charset is left alone");
	CHECK(memmem(m->data, m->len, html, strlen(html)) != NULL,
	      "multipart: a 7-bit text part gets no charset");
	CHECK(memmem(m->data, m->len, "caf\xc3\xa9\r\n", 7) != NULL &&
		  memmem(m->data, m->len, "caf\xe9\r\n", 6) != NULL,
	      "multipart: both texts kept as they were");
	smtp_msg_free(m);
}

/* ---- messages that are refused ------------------------------------------- */

static const struct bad_case {
	const char *what;
	const char *raw;
	size_t len;
	bool no_default; /* default_from NULL */
	const char *why; /* in err.msg, case-insensitive */
} bads[] = {
    {"empty input", RAW(""), false, "empty"},
    {"binary garbage (ELF)",
     RAW("\x7f"
	 "ELF\x02\x01\x01\0\0\0\0\0\0\0"),
     false, "NUL"},
    {"binary garbage (PNG)", RAW("\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), false,
     "NUL"},
    {"binary garbage without NUL", RAW("\xde\xad\xbe\xef\x01 x: y\n\n"), false,
     "not a message"},
    {"text without a header", RAW("Hi Bob,\n\nsee you tomorrow.\n"), false,
     "not a message"},
    {"blank line first", RAW("\nTo: bob@example.org\n\nx\n"), false,
     "not a message"},
    {"CRLF blank line first", RAW("\r\nTo: bob@example.org\r\n\r\nx\r\n"),
     false, "not a message"},
    {"mbox From_ line first",
     RAW("From bob@example.org Mon Jan  1 00:00:00 2024\n"
	 "To: bob@example.org\n\nx\n"),
     false, "not a message"},
    {"NUL in the header", RAW("To: bob@example.org\nSubject: a\0b\n\nx\n"),
     false, "NUL"},
    {"NUL in the first field name", RAW("T\0o: bob@example.org\n\nx\n"), false,
     "NUL"},
    {"bare CR in a header value (injection)",
     RAW("To: bob@example.org\nSubject: hi\rBcc: evil@example.org\n\nx\n"),
     false, "CR"},
    {"bare CR at the end of the header",
     RAW("To: bob@example.org\nSubject: hi\r"), false, "CR"},
    {"bare CR before CRLF",
     RAW("To: bob@example.org\r\r\nSubject: x\r\n\r\nx\r\n"), false, "CR"},
    {"unparsable To", RAW("To: not an address\n\nx\n"), false,
     "unparsable address in To"},
    {"To with an address and a bare word",
     RAW("To: bob@example.org, carol\n\nx\n"), false,
     "unparsable address in To"},
    {"To of nothing but a comma", RAW("To: ,\n\nx\n"), false,
     "unparsable address in To"},
    {"To: <>", RAW("To: <>\n\nx\n"), false, "unparsable address in To"},
    {"unparsable Cc", RAW("To: bob@example.org\nCc: @@@\n\nx\n"), false,
     "unparsable address in Cc"},
    {"unparsable Bcc", RAW("To: bob@example.org\nBcc: nobody\n\nx\n"), false,
     "unparsable address in Bcc"},
    {"quoted local part with a space",
     RAW("To: \"bob smith\"@example.org\n\nx\n"), false, "unparsable"},
    {"no recipient at all", RAW("Subject: lonely\n\nx\n"), false,
     "no recipient"},
    {"only an empty group", RAW("To: undisclosed-recipients:;\n\nx\n"), false,
     "no recipient"},
    {"To only in the body", RAW("X-Note: 1\n\nTo: bob@example.org\n"), false,
     "no recipient"},
    {"no From and no default", RAW("To: bob@example.org\nSubject: s\n\nx\n"),
     true, "From"},
    {"unparsable From", RAW("From: <>\nTo: bob@example.org\n\nx\n"), false,
     "From"},
    {"From not an address", RAW("From: me\nTo: bob@example.org\n\nx\n"), false,
     "From"},
    {"DEL in an address", RAW("To: bob\x7f@example.org\n\nx\n"), false,
     "unparsable address in To"},
    /* found by fuzz_outbox: a DEL inside a quoted string GMime read as
     * the address */
    {"DEL in a quoted address", RAW("To:\"Al(@ice\x7f" "A.\" "), false,
     "unparsable address in To"},
    {"multipart cut short (no closing boundary)",
     RAW("To: bob@example.org\nContent-Type: multipart/mixed; boundary=zz\n\n"
	 "--zz\nContent-Type: text/plain\n\nhi\n--zz\n"
	 "Content-Transfer-Encoding: base64\n\nQUJD"),
     false, "cut short: multipart/mixed ends without its closing boundary"},
    {"base64 body cut mid-group",
     RAW("To: bob@example.org\nContent-Type: application/pdf\n"
	 "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\nJcf"),
     false, "cut short: its base64 part"},
};

static struct smtp_msg sentinel;

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad_case *c = &bads[i];
		struct mfs_error err = {0};
		struct smtp_msg *m = &sentinel; /* must be reset */
		int rc;

		rc = smtp_prepare(c->raw, c->len,
				  c->no_default ? NULL : DEF_FROM, &m, &err);
		CHECK(rc == MFS_E_INVAL && err.code == MFS_E_INVAL,
		      "refuse %s: MFS_E_INVAL (%d)", c->what, rc);
		CHECK(m == NULL, "refuse %s: no message", c->what);
		CHECK(strcasestr(err.msg, c->why) != NULL,
		      "refuse %s: reason mentions '%s' [%s]", c->what, c->why,
		      err.msg);
		if (rc == 0 && m)
			show(m);
		if (m != &sentinel)
			smtp_msg_free(m);
	}
}

/* ---- line endings ----------------------------------------------------------
 */

/* The same message with LF and with CRLF line ends gives the same bytes
 * (Date and Message-ID fixed so nothing varies). */
static void test_lf_is_crlf(void)
{
	static const char lf[] =
	    "From: Alice <alice@example.org>\n"
	    "To: Bob <bob@example.org>, carol@example.org\n"
	    "Cc: dave@example.org\n"
	    "Bcc: eve@example.org\n"
	    "Date: Tue, 01 Oct 2024 12:00:00 +0200\n"
	    "Message-ID: <lf.1@example.org>\n"
	    "Subject: a folded\n"
	    "  subject\n"
	    "\n"
	    "para one\n"
	    "\n"
	    "para two \xc3\xa9\n";
	static const char *const rcpt[] = {
	    "bob@example.org", "carol@example.org", "dave@example.org",
	    "eve@example.org", NULL};
	char crlf[sizeof(lf) * 2];
	struct mfs_error e1 = {0}, e2 = {0};
	struct smtp_msg *a = NULL, *b = NULL;
	size_t n = 0;
	int r1, r2, f0 = check_fail;

	for (size_t i = 0; i < sizeof(lf) - 1; i++) {
		if (lf[i] == '\n')
			crlf[n++] = '\r';
		crlf[n++] = lf[i];
	}
	r1 = smtp_prepare(lf, sizeof(lf) - 1, DEF_FROM, &a, &e1);
	r2 = smtp_prepare(crlf, n, DEF_FROM, &b, &e2);
	CHECK(r1 == 0 && r2 == 0, "LF vs CRLF: both accepted (%s / %s)", e1.msg,
	      e2.msg);
	if (r1 || r2)
		goto out;
	CHECK(a->len == b->len && !memcmp(a->data, b->data, a->len),
	      "LF vs CRLF: same output");
	CHECK(crlf_only(a), "LF vs CRLF: LF input comes out CRLF");
	CHECK(rcpt_is(a, rcpt) && rcpt_is(b, rcpt),
	      "LF vs CRLF: same envelope recipients");
	CHECK_STR(a->from, "alice@example.org", "LF vs CRLF: sender (LF)");
	CHECK_STR(b->from, "alice@example.org", "LF vs CRLF: sender (CRLF)");
	CHECK(strstr(a->data, "\r\n\r\npara one\r\n\r\npara two ") != NULL,
	      "LF vs CRLF: body paragraphs kept");
	CHECK(header_find(a, "Bcc", NULL, 0) == 0 && !strstr(a->data, "eve@"),
	      "LF vs CRLF: Bcc gone");
	if (check_fail != f0) {
		show(a);
		show(b);
	}
out:
	smtp_msg_free(a);
	smtp_msg_free(b);
}

/* ---- odds and ends ---------------------------------------------------------
 */

static void test_misc(void)
{
	static const char raw[] = "To: bob@example.org\n\nx\n";
	struct mfs_error err = {0};
	struct smtp_msg *a = NULL, *b = NULL;
	char ida[256], idb[256];
	int rc;

	/* two preparations get different Message-IDs on the sender's domain */
	rc =
	    smtp_prepare(raw, sizeof(raw) - 1, "Me@Mail.Example.NET", &a, &err);
	rc |=
	    smtp_prepare(raw, sizeof(raw) - 1, "Me@Mail.Example.NET", &b, &err);
	CHECK(rc == 0, "Message-ID: accepted (%s)", err.msg);
	if (rc == 0) {
		header_find(a, "Message-ID", ida, sizeof(ida));
		header_find(b, "Message-ID", idb, sizeof(idb));
		CHECK(strcmp(ida, idb) != 0, "Message-ID: unique [%s] [%s]",
		      ida, idb);
		CHECK(strstr(ida, "@Mail.Example.NET>") != NULL,
		      "Message-ID: on the sender's domain [%s]", ida);
		CHECK_STR(a->from, "Me@Mail.Example.NET",
			  "default sender used as given");
	}
	smtp_msg_free(a);
	smtp_msg_free(b);

	/* a default sender that is not an address is no default */
	a = NULL;
	memset(&err, 0, sizeof(err));
	rc = smtp_prepare(raw, sizeof(raw) - 1, "not-an-address", &a, &err);
	CHECK(rc == MFS_E_INVAL && !a && strcasestr(err.msg, "From"),
	      "implausible default sender refused [%s]", err.msg);
	smtp_msg_free(a);

	/* a header From wins over the default */
	a = NULL;
	rc = smtp_prepare(RAW("From: x@example.com\nTo: bob@example.org\n\n"),
			  NULL, &a, &err);
	CHECK(rc == 0 && a && !strcmp(a->from, "x@example.com"),
	      "From in the header needs no default (%s)", err.msg);
	smtp_msg_free(a);

	/* Recipients GMime's lenient parser drops: sending to the others,
	 * silently, is the one wrong answer; all of them or a refusal. */
	{
		static const struct {
			const char *what, *raw;
			size_t n;
		} drops[] = {
		    {"';' between addresses (an Outlook habit)",
		     "To: bob@example.org; carol@example.org\n\nx\n", 2},
		    {"a lone '@' after an address",
		     "To: bob@example.org, @\n\nx\n", 2},
		};

		for (size_t i = 0; i < sizeof(drops) / sizeof(drops[0]); i++) {
			a = NULL;
			memset(&err, 0, sizeof(err));
			rc = smtp_prepare(drops[i].raw, strlen(drops[i].raw),
					  DEF_FROM, &a, &err);
			CHECK((rc == MFS_E_INVAL && !a && err.msg[0]) ||
				  (rc == 0 && a->nrcpt == drops[i].n),
			      "no recipient silently dropped: %s (%d [%s], "
			      "%zu rcpt)",
			      drops[i].what, rc, err.msg, a ? a->nrcpt : 0);
			smtp_msg_free(a);
		}
	}

	/* the err argument may be NULL */
	a = NULL;
	rc = smtp_prepare(RAW("nothing"), DEF_FROM, &a, NULL);
	CHECK(rc == MFS_E_INVAL && !a, "refusal with a NULL err");
	smtp_msg_free(NULL);
}

int main(int argc, char **argv)
{
	/* GSlice's caches hide leaked GObjects from LeakSanitizer, and GLib
	 * reads G_SLICE before main: run again with it set. */
	(void)argc;
	if (!getenv("G_SLICE")) {
		setenv("G_SLICE", "always-malloc", 1);
		execv("/proc/self/exe", argv);
	}
	mime_init();
	test_ok();
	test_bad();
	test_lf_is_crlf();
	test_misc();
	test_multipart_charset();
	mime_shutdown();
	return check_done();
}
