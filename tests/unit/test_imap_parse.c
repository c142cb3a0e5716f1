/* test_imap_parse.c - the IMAP response parser against real server lines.
 *
 * Responses are compared through a one-line dump: atoms bare, strings
 * quoted (C-style escapes for control bytes), NIL, (lists), sunk literals
 * as <sunk OFF+LEN>, and for status responses the status word, [code] and
 * the text in quotes.  Every table row is parsed whole, one byte at a
 * time and in odd-sized chunks, which must all give the same dump.
 */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "imap_parse.h"
#include "mfs_err.h"

#define IN(s) s, sizeof(s) - 1

static void dump_value(FILE *f, const struct imap_value *v)
{
	size_t i;
	unsigned char c;

	switch (v->type) {
	case IMAP_V_ATOM:
		fwrite(v->str, 1, v->len, f);
		break;
	case IMAP_V_STRING:
		fputc('"', f);
		for (i = 0; i < v->len; i++) {
			c = v->str[i];
			if (c == '"' || c == '\\')
				fprintf(f, "\\%c", c);
			else if (c == '\r')
				fputs("\\r", f);
			else if (c == '\n')
				fputs("\\n", f);
			else if (c < 0x20 || c == 0x7f)
				fprintf(f, "\\x%02x", c);
			else
				fputc(c, f);
		}
		fputc('"', f);
		break;
	case IMAP_V_NIL:
		fputs("NIL", f);
		break;
	case IMAP_V_LIST:
		fputc('(', f);
		for (i = 0; i < v->n; i++) {
			if (i)
				fputc(' ', f);
			dump_value(f, &v->items[i]);
		}
		fputc(')', f);
		break;
	case IMAP_V_SUNK:
		fprintf(f, "<sunk %llu+%zu>", (unsigned long long)v->off,
			v->len);
		break;
	}
}

/* clang-format off */
static const char *const status_names[] = {
	"NONE", "OK", "NO", "BAD", "BYE", "PREAUTH",
};
/* clang-format on */

static void dump_text(FILE *f, char *text)
{
	struct imap_value v = {
	    .type = IMAP_V_STRING,
	    .str = text,
	    .len = text ? strlen(text) : 0,
	};

	dump_value(f, &v);
}

/* malloc'd one-line rendering of r, or NULL for no response */
static char *dump(const struct imap_resp *r)
{
	char *s = NULL;
	size_t len = 0, i;
	FILE *f;

	if (!r)
		return NULL;
	f = open_memstream(&s, &len);
	if (!f)
		return NULL;
	if (r->kind == IMAP_R_CONT) {
		fputs("+ ", f);
		dump_text(f, r->text);
	} else {
		fputs(r->kind == IMAP_R_TAGGED ? r->tag : "*", f);
		if (r->status != IMAP_S_NONE) {
			fprintf(f, " %s", status_names[r->status]);
			if (r->code.n) {
				fputs(" [", f);
				for (i = 0; i < r->code.n; i++) {
					if (i)
						fputc(' ', f);
					dump_value(f, &r->code.items[i]);
				}
				fputc(']', f);
			}
			fputc(' ', f);
			dump_text(f, r->text);
		} else {
			for (i = 0; i < r->data.n; i++) {
				fputc(' ', f);
				dump_value(f, &r->data.items[i]);
			}
		}
	}
	fclose(f);
	return s;
}

/* Feed in chunks of `chunk` bytes (0: all at once) until a response
 * completes or an error.  Sets *used to the bytes consumed; returns 0
 * with *out (NULL if the input ran out first) or the negative error. */
static int parse(struct imap_parser *p, const char *in, size_t len,
		 size_t chunk, struct imap_resp **out, size_t *used)
{
	size_t pos = 0, n;
	ssize_t got;

	*out = NULL;
	*used = 0;
	while (pos < len) {
		n = chunk && chunk < len - pos ? chunk : len - pos;
		got = imap_parser_feed(p, in + pos, n, out);
		if (got < 0)
			return (int)got;
		pos += got;
		*used = pos;
		if (*out)
			return 0;
	}
	return 0;
}

/* clang-format off */
static const struct {
	const char *in;
	size_t len;
	const char *want;
} good[] = {
	/* greeting, capabilities, login */
	{ IN("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE "
	     "IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.\r\n"),
	  "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE "
	  "IDLE LITERAL+ STARTTLS AUTH=PLAIN] \"Dovecot ready.\"" },
	{ IN("* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
	     "SORT SORT=DISPLAY THREAD=REFERENCES MULTIAPPEND UNSELECT "
	     "CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE "
	     "QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
	     "LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY "
	     "STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE\r\n"),
	  "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
	  "SORT SORT=DISPLAY THREAD=REFERENCES MULTIAPPEND UNSELECT "
	  "CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE "
	  "QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
	  "LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY "
	  "STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE" },
	{ IN("a1 OK [CAPABILITY IMAP4rev1 SASL-IR CONDSTORE] Logged in\r\n"),
	  "a1 OK [CAPABILITY IMAP4rev1 SASL-IR CONDSTORE] \"Logged in\"" },
	{ IN("* PREAUTH [CAPABILITY IMAP4rev1] Logged in as mailfs\r\n"),
	  "* PREAUTH [CAPABILITY IMAP4rev1] \"Logged in as mailfs\"" },
	{ IN("a2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
	  "a2 NO [AUTHENTICATIONFAILED] \"Authentication failed.\"" },
	{ IN("a3 BAD Error in IMAP command UID FETCH: Invalid messageset "
	     "(0.001 + 0.000 secs).\r\n"),
	  "a3 BAD \"Error in IMAP command UID FETCH: Invalid messageset "
	  "(0.001 + 0.000 secs).\"" },
	{ IN("* ENABLED QRESYNC\r\n"), "* ENABLED QRESYNC" },
	{ IN("* ID (\"name\" \"Dovecot\")\r\n"), "* ID (\"name\" \"Dovecot\")" },
	{ IN("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"),
	  "* NAMESPACE ((\"\" \"/\")) NIL NIL" },

	/* LIST and STATUS */
	{ IN("* LIST (\\HasNoChildren) \"/\" INBOX\r\n"),
	  "* LIST (\\HasNoChildren) \"/\" INBOX" },
	{ IN("* LIST (\\HasNoChildren \\UnMarked \\Sent) \".\" \"Sent Items\"\r\n"),
	  "* LIST (\\HasNoChildren \\UnMarked \\Sent) \".\" \"Sent Items\"" },
	{ IN("* LIST (\\HasChildren) \".\" Archive\r\n"),
	  "* LIST (\\HasChildren) \".\" Archive" },
	{ IN("* LIST (\\Noselect) NIL \"\"\r\n"), "* LIST (\\Noselect) NIL \"\"" },
	{ IN("* LIST () \"/\" \"&U,BTFw-/&ZeVnLIqe-\"\r\n"),
	  "* LIST () \"/\" \"&U,BTFw-/&ZeVnLIqe-\"" },
	{ IN("* LIST () \"/\" Entw\xc3\xbcrfe\r\n"),	/* UTF8=ACCEPT */
	  "* LIST () \"/\" Entw\xc3\xbcrfe" },
	{ IN("* LIST () \"/\" \"Entw\xc3\xbcrfe\"\r\n"),
	  "* LIST () \"/\" \"Entw\xc3\xbcrfe\"" },
	{ IN("* LIST () \"/\" {6}\r\nfo\"o) \r\n"),
	  "* LIST () \"/\" \"fo\\\"o) \"" },
	{ IN("* LIST () \"\\\\\" \"a\\\\b \\\"q\\\"\"\r\n"),
	  "* LIST () \"\\\\\" \"a\\\\b \\\"q\\\"\"" },
	{ IN("* LIST () \"/\" ~peter/mail\r\n"),
	  "* LIST () \"/\" ~peter/mail" },
	{ IN("* STATUS INBOX (MESSAGES 231 UIDNEXT 44292 UIDVALIDITY "
	     "1716371234 UNSEEN 3 HIGHESTMODSEQ 89)\r\n"),
	  "* STATUS INBOX (MESSAGES 231 UIDNEXT 44292 UIDVALIDITY "
	  "1716371234 UNSEEN 3 HIGHESTMODSEQ 89)" },
	{ IN("* STATUS \"Sent Items\" (MESSAGES 0)\r\n"),
	  "* STATUS \"Sent Items\" (MESSAGES 0)" },
	{ IN("* QUOTA \"\" (STORAGE 10 512)\r\n"),
	  "* QUOTA \"\" (STORAGE 10 512)" },

	/* SELECT / EXAMINE */
	{ IN("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft "
	     "$Forwarded $Label1)\r\n"),
	  "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft "
	  "$Forwarded $Label1)" },
	{ IN("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen "
	     "\\Draft $Forwarded \\*)] Flags permitted.\r\n"),
	  "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen "
	  "\\Draft $Forwarded \\*)] \"Flags permitted.\"" },
	{ IN("* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n"),
	  "* OK [PERMANENTFLAGS ()] \"Read-only mailbox.\"" },
	{ IN("* 172 EXISTS\r\n"), "* 172 EXISTS" },
	{ IN("* 1 RECENT\r\n"), "* 1 RECENT" },
	{ IN("* OK [UNSEEN 12] First unseen.\r\n"),
	  "* OK [UNSEEN 12] \"First unseen.\"" },
	{ IN("* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"),
	  "* OK [UIDVALIDITY 3857529045] \"UIDs valid\"" },
	{ IN("* OK [UIDNEXT 4392] Predicted next UID\r\n"),
	  "* OK [UIDNEXT 4392] \"Predicted next UID\"" },
	{ IN("* OK [HIGHESTMODSEQ 715194045007] Highest\r\n"),
	  "* OK [HIGHESTMODSEQ 715194045007] \"Highest\"" },
	{ IN("A142 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n"),
	  "A142 OK [READ-WRITE] \"Select completed (0.001 + 0.000 secs).\"" },
	{ IN("* OK [CLOSED] Previous mailbox closed.\r\n"),
	  "* OK [CLOSED] \"Previous mailbox closed.\"" },

	/* FETCH */
	{ IN("* 12 FETCH (UID 4827 FLAGS (\\Seen $Label1) RFC822.SIZE 44827 "
	     "INTERNALDATE \"22-May-2024 10:23:00 +0200\" MODSEQ (12121231000) "
	     "BODY[HEADER.FIELDS (DATE FROM SUBJECT)] {62}\r\n"
	     "Date: Wed, 22 May 2024 10:23:00 +0200\r\n"
	     "From: a@example.org\r\n\r\n)\r\n"),
	  "* 12 FETCH (UID 4827 FLAGS (\\Seen $Label1) RFC822.SIZE 44827 "
	  "INTERNALDATE \"22-May-2024 10:23:00 +0200\" MODSEQ (12121231000) "
	  "BODY[HEADER.FIELDS (DATE FROM SUBJECT)] "
	  "\"Date: Wed, 22 May 2024 10:23:00 +0200\\r\\n"
	  "From: a@example.org\\r\\n\\r\\n\")" },
	{ IN("* 3 FETCH (UID 9 BODY[] {55}\r\n"
	     "Subject: x\r\n\r\n* 2 FETCH (FLAGS (\\Seen))\r\nA001 OK done\r\n"
	     ")\r\n"),
	  "* 3 FETCH (UID 9 BODY[] \"Subject: x\\r\\n\\r\\n"
	  "* 2 FETCH (FLAGS (\\\\Seen))\\r\\nA001 OK done\\r\\n\")" },
	{ IN("* 1 FETCH (UID 1 BODY[HEADER] {12}\r\nA001 OK ha\r\n)\r\n"),
	  "* 1 FETCH (UID 1 BODY[HEADER] \"A001 OK ha\\r\\n\")" },
	{ IN("* 1 FETCH (BODY[]<0> {3}\r\nabc)\r\n"),
	  "* 1 FETCH (BODY[]<0> \"abc\")" },
	{ IN("* 1 FETCH (UID 4 BINARY[1] ~{5}\r\nab\0\r\n BINARY.SIZE[1] 5)\r\n"),
	  "* 1 FETCH (UID 4 BINARY[1] \"ab\\x00\\r\\n\" BINARY.SIZE[1] 5)" },
	{ IN("* 1 FETCH (BODY[TEXT] {2+}\r\nhi)\r\n"),
	  "* 1 FETCH (BODY[TEXT] \"hi\")" },
	{ IN("* 1 FETCH (BODY[TEXT] {0}\r\n)\r\n"),
	  "* 1 FETCH (BODY[TEXT] \"\")" },
	{ IN("* 5 FETCH (FLAGS ())\r\n"), "* 5 FETCH (FLAGS ())" },
	{ IN("* 1 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" "
	     "\"utf-8\") NIL NIL \"7bit\" 12 1 NIL NIL NIL NIL)(\"text\" "
	     "\"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" "
	     "40 2 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"b1\") "
	     "NIL NIL NIL))\r\n"),
	  "* 1 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" "
	  "\"utf-8\") NIL NIL \"7bit\" 12 1 NIL NIL NIL NIL) (\"text\" "
	  "\"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" "
	  "40 2 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"b1\") "
	  "NIL NIL NIL))" },
	{ IN("* 2 FETCH (ENVELOPE (nil \"x\" NIL))\r\n"),
	  "* 2 FETCH (ENVELOPE (NIL \"x\" NIL))" },

	/* expunges, searches */
	{ IN("* 2 EXPUNGE\r\n"), "* 2 EXPUNGE" },
	{ IN("* SEARCH\r\n"), "* SEARCH" },
	{ IN("* SEARCH 2 84 882\r\n"), "* SEARCH 2 84 882" },
	{ IN("* ESEARCH (TAG \"A282\") UID MIN 2 COUNT 3 ALL 2,10:11\r\n"),
	  "* ESEARCH (TAG \"A282\") UID MIN 2 COUNT 3 ALL 2,10:11" },
	{ IN("* VANISHED (EARLIER) 1:3\r\n"), "* VANISHED (EARLIER) 1:3" },
	{ IN("* VANISHED 405,407,410:425\r\n"),
	  "* VANISHED 405,407,410:425" },
	{ IN("* OK [COPYUID 38 1:3 100:102] Moved UIDs.\r\n"),
	  "* OK [COPYUID 38 1:3 100:102] \"Moved UIDs.\"" },
	{ IN("A5 OK [APPENDUID 38505 3955] Append completed.\r\n"),
	  "A5 OK [APPENDUID 38505 3955] \"Append completed.\"" },
	{ IN("A6 NO [TRYCREATE] Mailbox doesn't exist: Foo\r\n"),
	  "A6 NO [TRYCREATE] \"Mailbox doesn't exist: Foo\"" },
	{ IN("* OK [BADCHARSET (US-ASCII UTF-8)] x\r\n"),
	  "* OK [BADCHARSET (US-ASCII UTF-8)] \"x\"" },

	/* end of session, continuations, odd but tolerated forms */
	{ IN("* BYE Logging out\r\n"), "* BYE \"Logging out\"" },
	{ IN("* BYE\r\n"), "* BYE \"\"" },
	{ IN("+ idling\r\n"), "+ \"idling\"" },
	{ IN("+ VXNlcm5hbWU6\r\n"), "+ \"VXNlcm5hbWU6\"" },
	{ IN("+\r\n"), "+ \"\"" },
	{ IN("+ \r\n"), "+ \"\"" },
	{ IN("+ OK\n"), "+ \"OK\"" },
	{ IN("+idling\r\n"), "+ \"idling\"" },
	{ IN("A1 OK done\n"), "A1 OK \"done\"" },
	{ IN("A1 OK\r\n"), "A1 OK \"\"" },
	{ IN("a1 ok fine\r\n"), "a1 OK \"fine\"" },
	{ IN("* OK [ALERT]\r\n"), "* OK [ALERT] \"\"" },
	{ IN("* OK [ALERT]No space\r\n"), "* OK [ALERT] \"No space\"" },
	{ IN("* OK  [two spaces] are text\r\n"),
	  "* OK \" [two spaces] are text\"" },
	{ IN("* OK \xc3\xa4 8-bit text \"[{(\r\n"),
	  "* OK \"\xc3\xa4 8-bit text \\\"[{(\"" },
	{ IN("* SEARCH  1   2 \r\n"), "* SEARCH 1 2" },
	{ IN("* X (a)(b)\"c\"d\r\n"), "* X (a) (b) \"c\" d" },
	{ IN("* X \"\\q\"\r\n"), "* X \"q\"" },
	{ IN("* OKAY x\r\n"), "* OKAY x" },
	{ IN("* X ]a[b c]d\r\n"), "* X ]a[b c]d" },
	{ IN("* 1 EXISTS\n"), "* 1 EXISTS" },
	{ IN("* X a[b[c] d]e f\r\n"), "* X a[b[c] d]e f" },
	{ IN("* X BODY[HEADER.FIELDS (\"A\" {3})]\r\n"),
	  "* X BODY[HEADER.FIELDS (\"A\" {3})]" },
};
/* clang-format on */

/* clang-format off */
static const struct {
	const char *in;
	size_t len;
	int rc;
} bad[] = {
	{ IN("\r\n"), MFS_E_PROTO },
	{ IN(" * OK\r\n"), MFS_E_PROTO },
	{ IN("*\r\n"), MFS_E_PROTO },
	{ IN("* \r\n"), MFS_E_PROTO },
	{ IN("*OK\r\n"), MFS_E_PROTO },
	{ IN("A1\r\n"), MFS_E_PROTO },
	{ IN("A1 \r\n"), MFS_E_PROTO },
	{ IN("A1 FOO bar\r\n"), MFS_E_PROTO },
	{ IN("A1 3 EXISTS\r\n"), MFS_E_PROTO },
	{ IN("A1 BYE x\r\n"), MFS_E_PROTO },
	{ IN("A1 \"OK\" x\r\n"), MFS_E_PROTO },
	{ IN("A1 (OK) x\r\n"), MFS_E_PROTO },
	{ IN("A(1 OK x\r\n"), MFS_E_PROTO },
	{ IN("A\xc3\xa4 OK x\r\n"), MFS_E_PROTO },
	{ IN("A1 OK(x\r\n"), MFS_E_PROTO },
	{ IN("A1 OK [UIDVALIDITY 3\r\n"), MFS_E_PROTO },
	{ IN("* OK [PERMANENTFLAGS (\\Seen] x\r\n"), MFS_E_PROTO },
	{ IN("* OK [PERMANENTFLAGS (\\Seen)\r\n"), MFS_E_PROTO },
	{ IN("* 1 FETCH (UID 4\r\n"), MFS_E_PROTO },
	{ IN("* 1 FETCH (FLAGS (\\Seen)\r\n"), MFS_E_PROTO },
	{ IN("* 1 FETCH UID 4)\r\n"), MFS_E_PROTO },
	{ IN("* LIST () \"/\" \"foo\r\n"), MFS_E_PROTO },
	{ IN("* LIST () \"/\" \"fo\\\r\n\"\r\n"), MFS_E_PROTO },
	{ IN("* LIST () \"/\" \"fo\0o\"\r\n"), MFS_E_PROTO },
	{ IN("* 1 FETCH (BODY[HEADER\r\n"), MFS_E_PROTO },
	{ IN("* 1 FETCH (BODY[HEADER.FIELDS (A)\r\n)]\r\n"), MFS_E_PROTO },
	{ IN("* 1 FETCH (BODY[] {}\r\n"), MFS_E_PROTO },
	{ IN("* 1 FETCH (BODY[] {1x}\r\n"), MFS_E_PROTO },
	{ IN("* 1 FETCH (BODY[] {+}\r\n"), MFS_E_PROTO },
	{ IN("* 1 FETCH (BODY[] {1+x}\r\n"), MFS_E_PROTO },
	{ IN("* 1 FETCH (BODY[] {-1}\r\n"), MFS_E_PROTO },
	{ IN("* 1 FETCH (BODY[] {5}x"), MFS_E_PROTO },
	{ IN("* 1 FETCH (BODY[] {5} \r\n"), MFS_E_PROTO },
	{ IN("* 1 FETCH (BODY[] {5}\rx"), MFS_E_PROTO },
	{ IN("* 1 FETCH (BODY[] {99999999999999999999999}\r\n"), MFS_E_PROTO },
	{ IN("* 1 FETCH (BODY[] {18446744073709551616}\r\n"), MFS_E_PROTO },
	{ IN("* 1 FETCH (BODY[] {18446744073709551615}\r\n"), MFS_E_TOOBIG },
	{ IN("* X a[b[c]\r\n"), MFS_E_PROTO },
	{ IN("* OK hi\rX\r\n"), MFS_E_PROTO },
	{ IN("* 1 EXISTS\r\r\n"), MFS_E_PROTO },
	{ IN("* OK a\0b\r\n"), MFS_E_PROTO },
	{ IN("* 3 EX\0ISTS\r\n"), MFS_E_PROTO },
	{ IN("* SEARCH 1\t2\r\n"), MFS_E_PROTO },
	{ IN("* X \x7f\r\n"), MFS_E_PROTO },
	{ IN("* X )\r\n"), MFS_E_PROTO },
	{ IN("+ a\0\r\n"), MFS_E_PROTO },
};
/* clang-format on */

static void test_good(void)
{
	static const size_t chunks[] = {0, 1, 2, 3, 7, 64};
	struct imap_parser *p = imap_parser_new(1 << 20, 1 << 20);
	struct imap_resp *r;
	size_t i, k, used;
	char *d;
	int rc;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		for (k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
			rc = parse(p, good[i].in, good[i].len, chunks[k], &r,
				   &used);
			d = dump(r);
			if (k == 0) {
				CHECK(rc == 0 && used == good[i].len,
				      "good %zu: parses whole (rc %d, %zu/%zu)",
				      i, rc, used, good[i].len);
				CHECK_STR(d, good[i].want, "good %zu: %s", i,
					  good[i].want);
			} else {
				CHECK(rc == 0 && used == good[i].len && d &&
					  !strcmp(d, good[i].want),
				      "good %zu: same in %zu-byte chunks", i,
				      chunks[k]);
			}
			free(d);
			imap_resp_free(r);
			imap_parser_reset(p);
		}
	}
	imap_parser_free(p);
}

static void test_bad(void)
{
	struct imap_parser *p = imap_parser_new(1 << 20, 1 << 20);
	struct imap_resp *r;
	size_t i, used;
	int rc, rc1;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rc = parse(p, bad[i].in, bad[i].len, 0, &r, &used);
		CHECK(rc == bad[i].rc && !r, "bad %zu: rejected (%d)", i, rc);
		imap_resp_free(r);
		/* the error sticks until reset */
		CHECK(imap_parser_feed(p, "* 1 EXISTS\r\n", 12, &r) == rc && !r,
		      "bad %zu: error is sticky", i);
		imap_parser_reset(p);
		rc1 = parse(p, bad[i].in, bad[i].len, 1, &r, &used);
		CHECK(rc1 == rc && !r, "bad %zu: same byte by byte", i);
		imap_resp_free(r);
		imap_parser_reset(p);
	}
	/* after reset the parser is as good as new */
	rc = parse(p, IN("* 1 EXISTS\r\n"), 0, &r, &used);
	CHECK(rc == 0 && r && r->data.n == 2, "usable after reset");
	imap_resp_free(r);
	imap_parser_free(p);
}

/* Every response of a stream comes out in turn, each feed stopping right
 * after its response, whatever the chunking. */
static void test_stream(void)
{
	struct imap_parser *p = imap_parser_new(64, 1 << 20);
	struct imap_resp *r;
	char *all = NULL, *d, *big;
	size_t len = 0, i, k, pos, chunk, n;
	ssize_t got;
	int ok;
	FILE *f = open_memstream(&all, &len);

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		fwrite(good[i].in, 1, good[i].len, f);
	fclose(f);

	for (chunk = 1; chunk <= 4096; chunk *= 4) {
		ok = 1;
		pos = 0;
		k = 0;
		while (pos < len && ok) {
			n = chunk < len - pos ? chunk : len - pos;
			got = imap_parser_feed(p, all + pos, n, &r);
			if (got < 0 || (size_t)got > n ||
			    (r == NULL && (size_t)got != n)) {
				ok = 0;
				break;
			}
			pos += got;
			if (!r)
				continue;
			d = dump(r);
			if (k >= sizeof(good) / sizeof(good[0]) || !d ||
			    strcmp(d, good[k].want))
				ok = 0;
			k++;
			free(d);
			imap_resp_free(r);
		}
		CHECK(ok && k == sizeof(good) / sizeof(good[0]),
		      "stream of %zu responses in %zu-byte chunks", k, chunk);
	}
	free(all);

	/* a long line, then business as usual */
	big = malloc(10007);
	memcpy(big, "* OK ", 5);
	memset(big + 5, 't', 10000);
	memcpy(big + 10005, "\r\n", 2);
	got = imap_parser_feed(p, big, 10007, &r);
	CHECK(got == 10007 && r && r->text && strlen(r->text) == 10000,
	      "10000-byte text");
	imap_resp_free(r);
	free(big);
	got = imap_parser_feed(p, "* 1 EXISTS\r\n", 12, &r);
	CHECK(got == 12 && r, "short line after a long one");
	imap_resp_free(r);

	/* a partial response consumes everything and returns nothing */
	got = imap_parser_feed(p, "* 1 FETCH (UID", 14, &r);
	CHECK(got == 14 && !r, "partial response consumed");
	got = imap_parser_feed(p, "", 0, &r);
	CHECK(got == 0 && !r, "empty feed");
	got = imap_parser_feed(p, " 5)\r\nA1 OK x\r\n", 14, &r);
	CHECK(got == 5 && r, "rest completes it, stops after it");
	d = dump(r);
	CHECK_STR(d, "* 1 FETCH (UID 5)", "split response");
	free(d);
	imap_resp_free(r);
	got = imap_parser_feed(p, "A1 OK x\r\n", 9, &r);
	CHECK(got == 9 && r && r->kind == IMAP_R_TAGGED &&
		  !strcmp(r->tag, "A1") && r->status == IMAP_S_OK,
	      "next response");
	imap_resp_free(r);

	/* reset throws away a partial response */
	got = imap_parser_feed(p, "* 1 FETCH (BODY[] {100}\r\nabc", 28, &r);
	CHECK(got == 28 && !r, "partial literal");
	imap_parser_reset(p);
	got = imap_parser_feed(p, "* BYE x\r\n", 9, &r);
	CHECK(got == 9 && r && r->status == IMAP_S_BYE, "reset mid-literal");
	imap_resp_free(r);
	imap_parser_free(p);
}

static void test_depth(void)
{
	struct imap_parser *p = imap_parser_new(64, 1 << 20);
	struct imap_resp *r;
	char buf[256];
	size_t used, n, i;
	int rc, depth;

	for (depth = 64; depth <= 65; depth++) {
		memcpy(buf, "* X ", 4);
		n = 4;
		for (i = 0; i < (size_t)depth; i++)
			buf[n++] = '(';
		for (i = 0; i < (size_t)depth; i++)
			buf[n++] = ')';
		buf[n++] = '\r';
		buf[n++] = '\n';
		rc = parse(p, buf, n, 0, &r, &used);
		if (depth == 64)
			CHECK(rc == 0 && r, "64 nested lists are fine");
		else
			CHECK(rc == MFS_E_PROTO && !r,
			      "65 nested lists are not");
		imap_resp_free(r);
		imap_parser_reset(p);
	}
	/* lists inside a resp-text-code are capped the same way */
	memcpy(buf, "* OK [X ", 8);
	n = 8;
	for (i = 0; i < 65; i++)
		buf[n++] = '(';
	rc = parse(p, buf, n, 0, &r, &used);
	CHECK(rc == MFS_E_PROTO, "65 nested lists in a code are not");
	imap_parser_free(p);
}

static void test_caps(void)
{
	struct imap_parser *p = imap_parser_new(16, 1024);
	struct imap_resp *r;
	char buf[4096];
	size_t used, n;
	int rc;

	/* a 600-byte literal fits in 1024 when there is no sink */
	memcpy(buf, "* 1 FETCH (BODY[] {600}\r\n", 25);
	memset(buf + 25, 'x', 600);
	memcpy(buf + 625, ")\r\n", 3);
	rc = parse(p, buf, 628, 0, &r, &used);
	CHECK(rc == 0 && r, "literal under max_total without sink");
	imap_resp_free(r);
	rc = parse(p, IN("* 1 FETCH (BODY[] {2000}\r\n"), 0, &r, &used);
	CHECK(rc == MFS_E_TOOBIG, "literal over max_total without sink");
	imap_parser_reset(p);

	memcpy(buf, "* SEARCH ", 9);
	memset(buf + 9, '1', 2000);
	rc = parse(p, buf, 2009, 0, &r, &used);
	CHECK(rc == MFS_E_TOOBIG, "long atom");
	imap_parser_reset(p);

	memcpy(buf, "* OK ", 5);
	memset(buf + 5, 't', 2000);
	rc = parse(p, buf, 2005, 0, &r, &used);
	CHECK(rc == MFS_E_TOOBIG, "long text");
	imap_parser_reset(p);

	memcpy(buf, "* X \"", 5);
	memset(buf + 5, 'q', 2000);
	rc = parse(p, buf, 2005, 0, &r, &used);
	CHECK(rc == MFS_E_TOOBIG, "long quoted string");
	imap_parser_reset(p);

	/* empty tokens cost memory too */
	memcpy(buf, "* X ", 4);
	for (n = 4; n < 2000; n += 3)
		memcpy(buf + n, "() ", 3);
	rc = parse(p, buf, n, 0, &r, &used);
	CHECK(rc == MFS_E_TOOBIG, "many empty lists");
	imap_parser_reset(p);

	memcpy(buf, "A", 1);
	memset(buf + 1, 'a', 2000);
	rc = parse(p, buf, 2001, 0, &r, &used);
	CHECK(rc == MFS_E_TOOBIG, "long tag");
	imap_parser_reset(p);

	/* the cap is per response: many small ones in a row are fine */
	for (n = 0; n < 100; n++) {
		rc = parse(p, IN("* OK [UIDNEXT 4392] Predicted next UID\r\n"),
			   0, &r, &used);
		imap_resp_free(r);
		if (rc != 0)
			break;
	}
	CHECK(n == 100, "cap is per response");
	imap_parser_free(p);

	/* max_total == 0 admits nothing at all */
	p = imap_parser_new(0, 0);
	rc = parse(p, IN("* 1 EXISTS\r\n"), 0, &r, &used);
	CHECK(rc == MFS_E_TOOBIG, "zero cap");
	imap_parser_free(p);
}

struct sink {
	char buf[4096];
	size_t len;
	int calls;
	int fail; /* error to return, 0 for none */
};

static int sink_fn(void *ctx, const char *buf, size_t len)
{
	struct sink *s = ctx;

	s->calls++;
	if (s->fail)
		return s->fail;
	if (len > sizeof(s->buf) - s->len)
		return MFS_E_IO;
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
	return 0;
}

static void test_sink(void)
{
	static const char in[] =
	    "* 1 FETCH (UID 7 BODY[HEADER] {3}\r\nabc BODY[] {10}\r\n"
	    "0123456789 BODY[TEXT] {6}\r\nHELLO!)\r\n";
	static const size_t chunks[] = {0, 1, 5};
	struct imap_parser *p = imap_parser_new(4, 4096);
	struct sink s;
	struct imap_resp *r;
	size_t used, k;
	char *d;
	int rc;
	char *big;

	for (k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
		memset(&s, 0, sizeof(s));
		imap_parser_set_sink(p, sink_fn, &s);
		rc = parse(p, in, sizeof(in) - 1, chunks[k], &r, &used);
		d = dump(r);
		CHECK(rc == 0 && used == sizeof(in) - 1,
		      "sink: parses in %zu-byte chunks", chunks[k]);
		CHECK_STR(d,
			  "* 1 FETCH (UID 7 BODY[HEADER] \"abc\" BODY[] "
			  "<sunk 0+10> BODY[TEXT] <sunk 10+6>)",
			  "sink: big literals sunk, small kept (%zu)",
			  chunks[k]);
		CHECK(s.len == 16 && !memcmp(s.buf, "0123456789HELLO!", 16),
		      "sink: got the bytes in order (%zu)", chunks[k]);
		if (chunks[k] == 0)
			CHECK(s.calls == 2, "sink: one call per literal");
		if (chunks[k] == 1)
			CHECK(s.calls == 16, "sink: one call per byte");
		free(d);
		imap_resp_free(r);

		/* offsets keep counting until the sink is set again */
		rc = parse(p, IN("* 2 FETCH (BODY[] {5}\r\nworld)\r\n"),
			   chunks[k], &r, &used);
		d = dump(r);
		CHECK_STR(d, "* 2 FETCH (BODY[] <sunk 16+5>)",
			  "sink: offsets continue");
		free(d);
		imap_resp_free(r);
	}

	/* 1 MB through a parser capped at 4 kB: never held in memory */
	memset(&s, 0, sizeof(s));
	imap_parser_set_sink(p, sink_fn, &s);
	big = malloc(1 << 20);
	memset(big, 'B', 1 << 20);
	rc = parse(p, IN("* 1 FETCH (BODY[] {1048576}\r\n"), 0, &r, &used);
	CHECK(rc == 0 && !r, "big literal announced");
	s.len = 0;
	for (k = 0; k < (1 << 20); k += 4096) {
		ssize_t got = imap_parser_feed(p, big + k, 4096, &r);

		if (got != 4096 || r)
			break;
		s.len = 0; /* the bytes themselves don't matter here */
	}
	CHECK(k == (1 << 20), "1 MB streamed through the sink");
	rc = parse(p, IN(")\r\n"), 0, &r, &used);
	d = dump(r);
	CHECK_STR(d, "* 1 FETCH (BODY[] <sunk 0+1048576>)", "big literal");
	free(d);
	imap_resp_free(r);
	free(big);

	/* without a sink the same literal is TOOBIG */
	imap_parser_set_sink(p, NULL, NULL);
	rc = parse(p, IN("* 1 FETCH (BODY[] {1048576}\r\n"), 0, &r, &used);
	CHECK(rc == MFS_E_TOOBIG, "no sink: big literal is TOOBIG");
	imap_parser_reset(p);

	/* a sink's error aborts the parse with that code */
	memset(&s, 0, sizeof(s));
	s.fail = MFS_E_IO;
	imap_parser_set_sink(p, sink_fn, &s);
	rc = parse(p, in, sizeof(in) - 1, 0, &r, &used);
	CHECK(rc == MFS_E_IO && !r, "sink error propagates");
	imap_parser_reset(p);

	/* a huge announced length is fine for the sink */
	s.fail = 0;
	rc = parse(p, IN("* 1 FETCH (BODY[] {18446744073709551615}\r\nabc"), 0,
		   &r, &used);
	CHECK(rc == 0 && !r && s.len == 3, "huge sunk literal streams");
	imap_parser_free(p);
}

static void test_access(void)
{
	struct imap_parser *p = imap_parser_new(64, 4096);
	struct imap_resp *r;
	const struct imap_value *att, *v;
	uint64_t n;
	size_t used;
	int rc;

	rc = parse(p,
		   IN("* 12 FETCH (uid 4827 FLAGS (\\Seen) BODY[]<0> {1}\r\n"
		      "x BODY[] \"y\" RFC822.SIZE 18446744073709551615 "
		      "MODSEQ 18446744073709551616 X 12a Y \"12\")\r\n"),
		   0, &r, &used);
	CHECK(rc == 0 && r, "fetch parsed");
	if (!r)
		goto out;
	CHECK(imap_atom_is(imap_list_get(&r->data, 1), "fetch"),
	      "atom_is ignores case");
	CHECK(!imap_atom_is(imap_list_get(&r->data, 1), "FETCHX"),
	      "atom_is is not a prefix match");
	CHECK(!imap_atom_is(NULL, "X"), "atom_is(NULL)");
	CHECK(imap_list_get(&r->data, 3) == NULL, "list_get past the end");
	CHECK(imap_list_get(imap_list_get(&r->data, 0), 0) == NULL,
	      "list_get on an atom");
	CHECK(imap_list_get(NULL, 0) == NULL, "list_get(NULL)");
	att = imap_list_get(&r->data, 2);
	CHECK(imap_value_u64(imap_list_get(&r->data, 0), &n) == 0 && n == 12,
	      "message number");
	v = imap_fetch_item(att, "UID");
	CHECK(v && imap_value_u64(v, &n) == 0 && n == 4827,
	      "fetch_item ignores case");
	v = imap_fetch_item(att, "FLAGS");
	CHECK(v && v->type == IMAP_V_LIST && v->n == 1 &&
		  imap_atom_is(&v->items[0], "\\seen"),
	      "FLAGS list");
	v = imap_fetch_item(att, "BODY[]");
	CHECK(v && v->type == IMAP_V_STRING && !strcmp(v->str, "y"),
	      "BODY[] does not match BODY[]<0>");
	v = imap_fetch_item(att, "BODY[]<0>");
	CHECK(v && v->type == IMAP_V_STRING && !strcmp(v->str, "x"),
	      "BODY[]<0> by its full name");
	CHECK(imap_fetch_item(att, "BODY") == NULL, "no prefix match");
	CHECK(imap_fetch_item(att, "4827") == NULL, "values are not keys");
	CHECK(imap_fetch_item(imap_list_get(&r->data, 0), "UID") == NULL,
	      "fetch_item on an atom");
	v = imap_fetch_item(att, "RFC822.SIZE");
	CHECK(imap_value_u64(v, &n) == 0 && n == UINT64_MAX, "u64 max");
	v = imap_fetch_item(att, "MODSEQ");
	CHECK(imap_value_u64(v, &n) == MFS_E_PROTO, "u64 overflow");
	v = imap_fetch_item(att, "X");
	CHECK(imap_value_u64(v, &n) == MFS_E_PROTO, "u64 of 12a");
	v = imap_fetch_item(att, "Y");
	CHECK(imap_value_u64(v, &n) == MFS_E_PROTO, "u64 of a string");
	CHECK(imap_value_u64(NULL, &n) == MFS_E_PROTO, "u64 of NULL");
	imap_resp_free(r);

	rc = parse(p, IN("* OK [UIDVALIDITY 3] UIDs valid\r\n"), 0, &r, &used);
	CHECK(rc == 0 && r && r->kind == IMAP_R_UNTAGGED && !r->tag &&
		  r->status == IMAP_S_OK && r->code.type == IMAP_V_LIST &&
		  r->code.n == 2 && r->data.type == IMAP_V_LIST &&
		  r->data.n == 0 && r->text && !strcmp(r->text, "UIDs valid"),
	      "status response fields");
	imap_resp_free(r);
	rc = parse(p, IN("* 3 EXISTS\r\n"), 0, &r, &used);
	CHECK(rc == 0 && r && r->status == IMAP_S_NONE && r->code.n == 0 &&
		  !r->text && r->data.n == 2,
	      "data response fields");
	imap_resp_free(r);
	rc = parse(p, IN("+ go\r\n"), 0, &r, &used);
	CHECK(rc == 0 && r && r->kind == IMAP_R_CONT && !r->tag &&
		  !strcmp(r->text, "go"),
	      "continuation fields");
	imap_resp_free(r);
	rc = parse(p, IN("* X {0}\r\n \"\" NIL\r\n"), 0, &r, &used);
	CHECK(rc == 0 && r && r->data.items[1].str &&
		  r->data.items[1].len == 0 && r->data.items[2].str &&
		  r->data.items[3].type == IMAP_V_NIL,
	      "empty strings are non-NULL");
out:
	imap_resp_free(r);
	imap_parser_free(p);
}

struct ranges {
	uint32_t lo[8], hi[8];
	unsigned n;
};

static int add_range(void *ctx, uint32_t lo, uint32_t hi)
{
	struct ranges *r = ctx;

	if (r->n == 8)
		return MFS_E_TOOBIG;
	r->lo[r->n] = lo;
	r->hi[r->n++] = hi;
	return 0;
}

static void test_uidset(void)
{
	struct ranges r = { 0 };

	CHECK(imap_uidset_each("1:3,7,10:8,4294967295", add_range, &r) == 0 &&
		      r.n == 4 && r.lo[0] == 1 && r.hi[0] == 3 && r.lo[1] == 7 &&
		      r.hi[1] == 7 && r.lo[2] == 8 && r.hi[2] == 10 &&
		      r.lo[3] == 4294967295u && r.hi[3] == 4294967295u,
	      "uid set ranges, reversed range normalised");
	static const char *const bad[] = { "", "0", "1:", ":3", "1,,2", "1,",
					   "4294967296", "1:*", "a", "1 2",
					   "01", "1:0" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r.n = 0;
		CHECK(imap_uidset_each(bad[i], add_range, &r) == MFS_E_PROTO,
		      "uid set \"%s\" refused", bad[i]);
	}
	r.n = 0;
	CHECK(imap_uidset_each("1,2,3,4,5,6,7,8,9", add_range, &r) ==
		      MFS_E_TOOBIG && r.n == 8,
	      "callback error stops the walk");
	CHECK(imap_uidset_each(NULL, add_range, &r) == MFS_E_PROTO,
	      "NULL set refused");
}

int main(void)
{
	test_good();
	test_bad();
	test_stream();
	test_depth();
	test_caps();
	test_sink();
	test_access();
	test_uidset();
	imap_resp_free(NULL);
	imap_parser_free(NULL);
	return check_done();
}
