/* test_bodystructure.c - BODYSTRUCTURE into a table of parts
 * (imap/bodystructure.c): RFC 3501's examples, structures as Dovecot,
 * Cyrus and Courier send them, the tolerated deviations, malformed ones
 * refused and the bounds.
 *
 * Each row is a BODYSTRUCTURE value, wrapped in a FETCH response and run
 * through the real parser (so are the 78 structures Dovecot gave for the
 * test account's messages, tests/unit/data/bodystructure-dovecot.txt); the table is compared through a dump of one
 * entry per part: section, type/subtype, then what is set of multipart
 * (M) or message (msg "subject"), size/lines, encoding, disposition and
 * parameters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "imap_bodystructure.h"
#include "imap_parse.h"
#include "mfs_err.h"

static void dump_params(FILE *f, const char *what,
			const struct imap_bs_params *ps)
{
	if (ps->n == 0)
		return;
	fprintf(f, " %s(", what);
	for (size_t i = 0; i < ps->n; i++)
		fprintf(f, "%s%s=%s", i ? " " : "", ps->p[i].name,
			ps->p[i].value ? ps->p[i].value : "NIL");
	fputc(')', f);
}

/* "[section] type/subtype ..." for every part, joined by "; ". */
static char *dump(const struct imap_bs *bs)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	for (size_t i = 0; f && i < bs->n; i++) {
		const struct imap_bs_part *p = &bs->parts[i];

		fprintf(f, "%s[%s] %s/%s", i ? "; " : "", p->section, p->type,
			p->subtype ? p->subtype : "NIL");
		if (p->parent != (i ? p->parent : -1) ||
		    (i && p->depth != bs->parts[p->parent].depth + 1))
			fputs(" BADTREE", f);
		if (p->multipart)
			fputs(" M", f);
		else
			fprintf(f, " %llu/%llu %s", (unsigned long long)p->size,
				(unsigned long long)p->lines,
				p->encoding ? p->encoding : "NIL");
		if (p->message)
			fprintf(f, " msg \"%s\"", p->subject ? p->subject : "NIL");
		if (p->id)
			fprintf(f, " id=%s", p->id);
		if (p->description)
			fprintf(f, " desc=%s", p->description);
		if (p->disposition)
			fprintf(f, " disp=%s", p->disposition);
		dump_params(f, "p", &p->params);
		dump_params(f, "d", &p->dparams);
	}
	if (f)
		fclose(f);
	return buf;
}

/* Parse "* 1 FETCH (BODYSTRUCTURE <bs>)" and convert its value. */
static int run(const char *bs, char **out)
{
	struct imap_parser *p = imap_parser_new(4096, 1 << 20);
	struct imap_resp *r = NULL;
	struct imap_bs *t = NULL;
	char *line = NULL;
	int rc = MFS_E_PROTO;

	*out = NULL;
	if (!p || asprintf(&line, "* 1 FETCH (BODYSTRUCTURE %s)\r\n", bs) < 0)
		goto out;
	if (imap_parser_feed(p, line, strlen(line), &r) < 0 || !r)
		goto out;
	rc = imap_bs_parse(imap_fetch_item(imap_list_get(&r->data, 2),
					   "BODYSTRUCTURE"),
			   &t);
	if (rc == 0)
		*out = dump(t);
out:
	imap_bs_free(t);
	imap_resp_free(r);
	imap_parser_free(p);
	free(line);
	return rc;
}

static const struct {
	const char *what, *bs;
	int rc;
	const char *want;
} cases[] = {
	{ "RFC 3501: a single text part",
	  "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" "
	  "3028 92)",
	  0, "[1] TEXT/PLAIN 3028/92 7BIT p(CHARSET=US-ASCII)" },
	{ "RFC 3501: a multipart of two",
	  "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" "
	  "1152 23)(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\" \"NAME\" "
	  "\"cc.diff\") \"<960723163407.20117h@cac.washington.edu>\" "
	  "\"Compiler diff\" \"BASE64\" 4554 73) \"MIXED\")",
	  0,
	  "[] MULTIPART/MIXED M; [1] TEXT/PLAIN 1152/23 7BIT "
	  "p(CHARSET=US-ASCII); [2] TEXT/PLAIN 4554/73 BASE64 "
	  "id=<960723163407.20117h@cac.washington.edu> desc=Compiler diff "
	  "p(CHARSET=US-ASCII NAME=cc.diff)" },
	{ "Dovecot: alternative with extension data",
	  "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 12 1 "
	  "NIL NIL NIL NIL)(\"text\" \"html\" NIL NIL NIL \"base64\" 40 2 NIL "
	  "NIL NIL NIL) \"alternative\" (\"boundary\" \"b1\") NIL NIL NIL)",
	  0,
	  "[] MULTIPART/alternative M p(boundary=b1); [1] text/plain 12/1 "
	  "7bit p(charset=utf-8); [2] text/html 40/2 base64" },
	{ "a forwarded message with an attachment inside, and dispositions",
	  "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 20 1 "
	  "NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 500 "
	  "(\"Mon, 1 Jun 2026 10:00:00 +0000\" \"Inner subject\" ((\"A\" NIL "
	  "\"a\" \"x.org\")) NIL NIL NIL NIL NIL NIL \"<m@x>\") "
	  "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 "
	  "1 NIL NIL NIL NIL)(\"application\" \"pdf\" (\"name\" \"r.pdf\") NIL "
	  "NIL \"base64\" 300 NIL (\"attachment\" (\"filename\" \"r.pdf\")) "
	  "NIL NIL) \"mixed\" (\"boundary\" \"b2\") NIL NIL NIL) 20 NIL "
	  "(\"attachment\" (\"filename\" \"fwd.eml\")) NIL NIL) \"mixed\" "
	  "(\"boundary\" \"b1\") NIL NIL NIL)",
	  0,
	  "[] MULTIPART/mixed M p(boundary=b1); [1] text/plain 20/1 7bit "
	  "p(charset=utf-8); [2] message/rfc822 500/20 7bit msg \"Inner "
	  "subject\" disp=attachment d(filename=fwd.eml); [2] MULTIPART/mixed "
	  "M p(boundary=b2); [2.1] text/plain 10/1 7bit p(charset=us-ascii); "
	  "[2.2] application/pdf 300/0 base64 disp=attachment p(name=r.pdf) "
	  "d(filename=r.pdf)" },
	{ "a message that is one forwarded message of one part",
	  "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 100 (NIL NIL NIL NIL "
	  "NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" NIL NIL NIL \"7bit\" "
	  "10 1) 5)",
	  0,
	  "[1] message/rfc822 100/5 7bit msg \"NIL\"; [1.1] text/plain 10/1 "
	  "7bit" },
	{ "RFC 2231 parameters are passed on as sent",
	  "(\"application\" \"octet-stream\" (\"name*\" "
	  "\"utf-8''%E2%82%AC.txt\") NIL NIL \"base64\" 8 NIL (\"attachment\" "
	  "(\"filename*0*\" \"utf-8''%E2%82\" \"filename*1*\" \"%AC.txt\")) "
	  "NIL NIL)",
	  0,
	  "[1] application/octet-stream 8/0 base64 disp=attachment "
	  "p(name*=utf-8''%E2%82%AC.txt) d(filename*0*=utf-8''%E2%82 "
	  "filename*1*=%AC.txt)" },
	{ "a literal for a file name",
	  "(\"application\" \"pdf\" NIL NIL NIL \"base64\" 8 NIL "
	  "(\"attachment\" (\"filename\" {5}\r\nr.pdf)) NIL NIL)",
	  0, "[1] application/pdf 8/0 base64 disp=attachment d(filename=r.pdf)" },
	{ "tolerated: numbers as strings, a bare disposition, no extension",
	  "((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" \"12\" \"1\")"
	  "(\"IMAGE\" \"PNG\" NIL NIL NIL \"BASE64\" 30 NIL \"inline\") "
	  "\"MIXED\")",
	  0,
	  "[] MULTIPART/MIXED M; [1] TEXT/PLAIN 12/1 7BIT; [2] IMAGE/PNG 30/0 "
	  "BASE64 disp=inline" },
	{ "tolerated: message/rfc822 without envelope and body is a leaf",
	  "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 30)",
	  0, "[1] MESSAGE/RFC822 30/0 7BIT" },
	{ "tolerated: an odd parameter list loses its last name",
	  "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"UTF-8\" \"FORMAT\") NIL NIL "
	  "\"8BIT\" 3 1)",
	  0, "[1] TEXT/PLAIN 3/1 8BIT p(CHARSET=UTF-8)" },
	{ "malformed: NIL", "NIL", MFS_E_PROTO, NULL },
	{ "malformed: too few fields", "(\"TEXT\" \"PLAIN\" NIL NIL NIL)",
	  MFS_E_PROTO, NULL },
	{ "malformed: a multipart without its subtype",
	  "((\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 1 1))", MFS_E_PROTO,
	  NULL },
	{ "malformed: a size that is not a number",
	  "(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" ABC 1)", MFS_E_PROTO,
	  NULL },
	{ "malformed: NIL for the type",
	  "(NIL \"PLAIN\" NIL NIL NIL \"7BIT\" 1 1)", MFS_E_PROTO, NULL },
	{ "malformed: a parameter list that is a string",
	  "(\"TEXT\" \"PLAIN\" \"CHARSET\" NIL NIL \"7BIT\" 1 1)", MFS_E_PROTO,
	  NULL },
};

/* n nested multiparts around one text part. */
static char *nested(unsigned n)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	for (unsigned i = 0; f && i < n; i++)
		fputc('(', f);
	if (f)
		fputs("(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 1 1)", f);
	for (unsigned i = 0; f && i < n; i++)
		fputs(" \"MIXED\")", f);
	if (f)
		fclose(f);
	return s;
}

/* A multipart of n text parts. */
static char *wide(unsigned n)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (f)
		fputc('(', f);
	for (unsigned i = 0; f && i < n; i++)
		fputs("(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 1 1)", f);
	if (f) {
		fputs(" \"MIXED\")", f);
		fclose(f);
	}
	return s;
}

/* A text part with n parameters. */
static char *many_params(unsigned n)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (f)
		fputs("(\"TEXT\" \"PLAIN\" (", f);
	for (unsigned i = 0; f && i < n; i++)
		fprintf(f, "%s\"P%u\" \"v\"", i ? " " : "", i);
	if (f) {
		fputs(") NIL NIL \"7BIT\" 1 1)", f);
		fclose(f);
	}
	return s;
}

static void bounds(void)
{
	char *s, *out = NULL;
	int rc;

	s = nested(IMAP_BS_MAX_DEPTH - 1);
	rc = run(s, &out);
	CHECK(rc == 0 && out && strstr(out, "[1.1.1.1.1"),
	      "%u nested multiparts are read (%d)", IMAP_BS_MAX_DEPTH - 1, rc);
	free(s);
	free(out);
	s = nested(IMAP_BS_MAX_DEPTH);
	CHECK(run(s, &out) == MFS_E_TOOBIG, "%u are too deep",
	      IMAP_BS_MAX_DEPTH);
	free(s);
	free(out);
	s = wide(IMAP_BS_MAX_PARTS - 1);
	rc = run(s, &out);
	CHECK(rc == 0 && out && strstr(out, "[999] "),
	      "a multipart of %u parts is read (%d)", IMAP_BS_MAX_PARTS - 1,
	      rc);
	free(s);
	free(out);
	s = wide(IMAP_BS_MAX_PARTS);
	CHECK(run(s, &out) == MFS_E_TOOBIG, "one of %u is too many",
	      IMAP_BS_MAX_PARTS);
	free(s);
	free(out);
	s = many_params(IMAP_BS_MAX_PARAMS);
	CHECK(run(s, &out) == 0, "%u parameters are read", IMAP_BS_MAX_PARAMS);
	free(s);
	free(out);
	s = many_params(IMAP_BS_MAX_PARAMS + 1);
	CHECK(run(s, &out) == MFS_E_TOOBIG, "%u are too many",
	      IMAP_BS_MAX_PARAMS + 1);
	free(s);
	free(out);
}

static void lookups(void)
{
	struct imap_bs_params ps;
	struct imap_bs_param p[] = { { "CHARSET", "utf-8" },
				     { "name", NULL } };

	ps.n = 2;
	ps.p = p;
	CHECK(imap_bs_param(&ps, "charset") &&
		      !strcmp(imap_bs_param(&ps, "charset"), "utf-8"),
	      "a parameter is found ignoring case");
	CHECK(!imap_bs_param(&ps, "NAME") && !imap_bs_param(&ps, "format"),
	      "NIL and a missing one are NULL");
}

/* Every structure of a real server: read, and the table a tree whose
 * sections match its shape. */
static void real(const char *path)
{
	FILE *f = fopen(path, "r");
	struct imap_parser *p = imap_parser_new(4096, 1 << 20);
	char line[8192];
	unsigned n = 0, bad = 0, parts = 0, messages = 0;

	CHECK(f && p, "open %s", path);
	while (f && p && fgets(line, sizeof(line) - 2, f)) {
		struct imap_resp *r = NULL;
		struct imap_bs *t = NULL;
		size_t len = strcspn(line, "\r\n");

		if (line[0] == '#' || len == 0)
			continue;
		memcpy(line + len, "\r\n", 3);
		n++;
		if (imap_parser_feed(p, line, len + 2, &r) < 0 || !r ||
		    imap_bs_parse(imap_fetch_item(imap_list_get(&r->data, 2),
						  "BODYSTRUCTURE"),
				  &t) < 0) {
			bad++;
			printf("# not read: %.*s\n", (int)len, line);
			imap_parser_reset(p);
		}
		for (size_t i = 0; t && i < t->n; i++) {
			const struct imap_bs_part *q = &t->parts[i];
			const struct imap_bs_part *up =
				q->parent >= 0 ? &t->parts[q->parent] : NULL;

			parts++;
			messages += q->message;
			/* A child's section extends its parent's, or is
			 * the same for a message part's multipart body. */
			if (up && strncmp(q->section, up->section,
					  strlen(up->section))) {
				bad++;
				printf("# section %s under %s\n", q->section,
				       up->section);
			}
		}
		imap_bs_free(t);
		imap_resp_free(r);
	}
	CHECK(n > 0 && bad == 0,
	      "%s: %u structures (%u parts, %u forwarded messages) read, "
	      "%u problems", path, n, parts, messages, bad);
	if (f)
		fclose(f);
	imap_parser_free(p);
}

int main(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL;
		int rc = run(cases[i].bs, &out);

		if (cases[i].want) {
			bool ok = rc == 0 && out && !strcmp(out, cases[i].want);

			if (!ok)
				printf("# got  %s\n# want %s\n",
				       out ? out : mfs_strerror(rc),
				       cases[i].want);
			CHECK(ok, "%s", cases[i].what);
		} else
			CHECK(rc == cases[i].rc, "%s: %s", cases[i].what,
			      mfs_strerror(rc));
		free(out);
	}
	bounds();
	lookups();
	real("tests/unit/data/bodystructure-dovecot.txt");
	return check_done();
}
