/* prep.c - turn a file a user dropped into outbox/ into something fit to
 * submit, or say clearly why not. */
#include <gmime/gmime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "smtp.h"

#define MAX_RCPT 1000

void smtp_msg_free(struct smtp_msg *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nrcpt; i++)
		free(m->rcpt[i]);
	free(m->rcpt);
	free(m->from);
	free(m->data);
	free(m);
}

/* The header block must be clean text: a bare CR or a NUL there is how a
 * header gets smuggled into another one. */
static int check_header_bytes(const char *raw, size_t len,
			      struct mfs_error *err)
{
	size_t line = 1;

	for (size_t i = 0; i < len; i++) {
		if (raw[i] == '\0')
			return mfs_fail(err, MFS_E_INVAL,
					"NUL byte in the header (line %zu)", line);
		if (raw[i] == '\r' && (i + 1 >= len || raw[i + 1] != '\n'))
			return mfs_fail(err, MFS_E_INVAL,
					"bare CR in the header (line %zu)", line);
		if (raw[i] == '\n') {
			/* A blank line ends the header. */
			if (i + 1 < len && raw[i + 1] == '\n')
				return 0;
			if (i + 2 < len && raw[i + 1] == '\r' &&
			    raw[i + 2] == '\n')
				return 0;
			line++;
		}
	}
	return 0;
}

static bool plausible_addr(const char *a)
{
	const char *at = a ? strrchr(a, '@') : NULL;

	if (!at || at == a || !at[1] || strchr(at + 1, '@'))
		return false;
	for (const char *p = a; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '<' ||
		    *p == '>' || *p == ',' || *p == ';')
			return false;
	return true;
}

/* Append the mailboxes of list (groups flattened) to m->rcpt. */
static int add_list(struct smtp_msg *m, InternetAddressList *list,
		    const char *hdr, struct mfs_error *err)
{
	int n = list ? internet_address_list_length(list) : 0;

	for (int i = 0; i < n; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);

		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			int rc = add_list(m, internet_address_group_get_members(
						     INTERNET_ADDRESS_GROUP(ia)),
					  hdr, err);
			if (rc < 0)
				return rc;
			continue;
		}
		const char *addr = internet_address_mailbox_get_addr(
			INTERNET_ADDRESS_MAILBOX(ia));

		if (!plausible_addr(addr))
			return mfs_fail(err, MFS_E_INVAL,
					"unparsable address in %s: '%s'", hdr,
					addr ? addr : "");
		if (m->nrcpt >= MAX_RCPT)
			return mfs_fail(err, MFS_E_INVAL, "too many recipients");
		m->rcpt[m->nrcpt] = strdup(addr);
		if (!m->rcpt[m->nrcpt])
			return MFS_E_NOMEM;
		m->nrcpt++;
	}
	return 0;
}

/* GMime accepts nearly anything in an address header; a header that held
 * text but yielded no mailbox, or fewer mailboxes than it has commas+1,
 * was not understood. */
/* Address pieces a header holds: text between ',' or ';' outside quotes,
 * comments and angle brackets, a group's "name:" not counted and empty
 * pieces skipped.  GMime drops what it cannot read without a word, so a
 * header whose pieces outnumber the mailboxes it yielded was not
 * understood ("a@x; b@y", "a@x, @"). */
static size_t count_pieces(const char *raw)
{
	size_t n = 0;
	bool content = false, quoted = false;
	int depth = 0, angle = 0;

	for (const char *p = raw;; p++) {
		char c = *p;

		if (quoted) {
			if (c == '\\' && p[1])
				p++;
			else if (c == '"')
				quoted = false;
			else if (!c)
				return SIZE_MAX;	/* unterminated quote */
			continue;
		}
		if (c == '"') {
			quoted = content = true;
		} else if (c == '(') {
			depth++;
		} else if (c == ')' && depth > 0) {
			depth--;
		} else if (depth > 0) {
			if (!c)
				return SIZE_MAX;	/* unterminated comment */
		} else if (c == '<') {
			angle++;
			content = true;
		} else if (c == '>' && angle > 0) {
			angle--;
		} else if (c == ':' && !angle) {
			content = false;	/* a group's name */
		} else if (!c || ((c == ',' || c == ';') && !angle)) {
			if (!c && angle)
				return SIZE_MAX;	/* "<bob@x" never closed */
			n += content;
			content = false;
			if (!c)
				break;
		} else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			content = true;
		}
	}
	return n;
}

static size_t count_mailboxes(InternetAddressList *list)
{
	int n = list ? internet_address_list_length(list) : 0;
	size_t total = 0;

	for (int i = 0; i < n; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);

		if (INTERNET_ADDRESS_IS_GROUP(ia))
			total += count_mailboxes(internet_address_group_get_members(
				INTERNET_ADDRESS_GROUP(ia)));
		else
			total++;
	}
	return total;
}

static int parse_rcpt_header(struct smtp_msg *m, GMimeMessage *msg,
			     GMimeAddressType type, const char *hdr,
			     struct mfs_error *err)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(msg));
	int nh = hl ? g_mime_header_list_get_count(hl) : 0;
	const char *first = NULL;
	InternetAddressList *list;
	size_t pieces = 0;

	/* The header may appear more than once; GMime merges them. */
	for (int i = 0; i < nh; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *v = g_mime_header_get_raw_value(h);

		if (g_ascii_strcasecmp(g_mime_header_get_name(h), hdr) != 0 ||
		    !v)
			continue;
		while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
			v++;
		if (!first || !*first)
			first = v;
		size_t n = count_pieces(v);

		pieces = n == SIZE_MAX || pieces == SIZE_MAX ? SIZE_MAX :
							       pieces + n;
	}
	if (!first)
		return 0;
	list = g_mime_message_get_addresses(msg, type);
	/* "To: ," is not an empty group ("undisclosed-recipients:;"). */
	if (pieces != count_mailboxes(list) ||
	    (pieces == 0 && *first && !strchr(first, ':')))
		return mfs_fail(err, MFS_E_INVAL,
				"unparsable address in %s: '%.80s'", hdr, first);
	return add_list(m, list, hdr, err);
}

static char *make_message_id(const char *from)
{
	const char *at = from ? strrchr(from, '@') : NULL;
	const char *domain = at && at[1] ? at + 1 : "mailfs.invalid";
	unsigned char rnd[12];
	char hex[25];
	char *id = NULL;
	FILE *u = fopen("/dev/urandom", "re");

	if (!u || fread(rnd, 1, sizeof(rnd), u) != sizeof(rnd)) {
		if (u)
			fclose(u);
		return NULL;
	}
	fclose(u);
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	if (asprintf(&id, "%lld.%s.mailfs@%s", (long long)time(NULL), hex,
		     domain) < 0)
		return NULL;
	return id;
}

static bool has_8bit(GMimeObject *part)
{
	GMimeDataWrapper *w;
	GMimeStream *s;
	char buf[4096];
	ssize_t n;
	bool found = false;

	if (!GMIME_IS_PART(part))
		return false;
	w = g_mime_part_get_content(GMIME_PART(part));
	if (!w)
		return false;
	s = g_mime_data_wrapper_get_stream(w);
	g_mime_stream_reset(s);
	while (!found && (n = g_mime_stream_read(s, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n && !found; i++)
			found = (unsigned char)buf[i] >= 0x80;
	g_mime_stream_reset(s);
	return found;
}

/* 8-bit text without a declared charset: say UTF-8, the only charset a
 * user's editor today is likely to have written.  Every text part, not
 * only a single-part body: an attachment-bearing message is multipart. */
static void declare_part(GMimeObject *parent, GMimeObject *part, gpointer data)
{
	GMimeContentType *ct;

	(void)parent;
	(void)data;
	if (!GMIME_IS_PART(part))
		return;
	ct = g_mime_object_get_content_type(part);
	if (!g_mime_content_type_is_type(ct, "text", "*") ||
	    g_mime_content_type_get_parameter(ct, "charset") ||
	    !has_8bit(part))
		return;
	g_mime_content_type_set_parameter(ct, "charset", "UTF-8");
	if (!g_mime_object_get_header(part, "Content-Transfer-Encoding"))
		g_mime_part_set_content_encoding(GMIME_PART(part),
						 GMIME_CONTENT_ENCODING_8BIT);
}

static void declare_charset(GMimeMessage *msg)
{
	g_mime_message_foreach(msg, declare_part, NULL);
}

static bool header_empty(GMimeMessage *msg)
{
	GMimeHeaderList *h = g_mime_object_get_header_list(GMIME_OBJECT(msg));

	return !h || g_mime_header_list_get_count(h) == 0;
}

int smtp_prepare(const char *raw, size_t len, const char *default_from,
		 struct smtp_msg **out, struct mfs_error *err)
{
	GMimeStream *stream = NULL, *mem = NULL;
	GMimeParser *parser = NULL;
	GMimeMessage *msg = NULL;
	GMimeFormatOptions *fmt = NULL;
	InternetAddressList *from;
	struct smtp_msg *m = NULL;
	GByteArray *bytes;
	const char *addr = NULL;
	int rc;

	*out = NULL;
	if (len == 0)
		return mfs_fail(err, MFS_E_INVAL, "empty file");
	rc = check_header_bytes(raw, len, err);
	if (rc < 0)
		return rc;
	/* A message starts with a header field: "Name:" at the very top. */
	size_t nlen = 0;

	while (nlen < len && !strchr(":\n\r \t", raw[nlen]))
		nlen++;
	if (nlen == 0 || nlen >= len || raw[nlen] != ':')
		return mfs_fail(err, MFS_E_INVAL,
				"not a message (no header at the top)");
	{
		char why[128];

		if (smtp_msg_cut(raw, len, why, sizeof(why)))
			return mfs_fail(err, MFS_E_INVAL, "cut short: %s", why);
	}
	m = calloc(1, sizeof(*m));
	if (m)
		m->rcpt = calloc(MAX_RCPT, sizeof(*m->rcpt));
	if (!m || !m->rcpt) {
		rc = mfs_fail(err, MFS_E_NOMEM, "out of memory");
		goto out;
	}
	/* GMime writes a header's last field without its newline when the
	 * input ended without one, gluing the next field onto it. */
	stream = g_mime_stream_mem_new_with_buffer(raw, len);
	if (raw[len - 1] != '\n') {
		g_mime_stream_seek(stream, 0, GMIME_STREAM_SEEK_END);
		g_mime_stream_write(stream, "\n", 1);
	}
	g_mime_stream_reset(stream);
	parser = g_mime_parser_new_with_stream(stream);
	msg = g_mime_parser_construct_message(parser, NULL);
	if (!msg || header_empty(msg)) {
		rc = mfs_fail(err, MFS_E_INVAL, "not a message");
		goto out;
	}
	from = g_mime_message_get_from(msg);
	if (g_mime_object_get_header(GMIME_OBJECT(msg), "From") &&
	    (!from || internet_address_list_length(from) == 0)) {
		rc = mfs_fail(err, MFS_E_INVAL, "unparsable address in From");
		goto out;
	}
	if (!from || internet_address_list_length(from) == 0) {
		if (!default_from || !plausible_addr(default_from)) {
			rc = mfs_fail(err, MFS_E_INVAL,
				      "no From and no default sender address");
			goto out;
		}
		InternetAddress *def =
		    internet_address_mailbox_new(NULL, default_from);

		/* the list takes its own reference */
		internet_address_list_add(from, def);
		g_object_unref(def);
	}
	{
		InternetAddress *ia = internet_address_list_get_address(from, 0);

		if (INTERNET_ADDRESS_IS_MAILBOX(ia))
			addr = internet_address_mailbox_get_addr(
				INTERNET_ADDRESS_MAILBOX(ia));
		if (!plausible_addr(addr)) {
			rc = mfs_fail(err, MFS_E_INVAL,
				      "unparsable address in From: '%s'",
				      addr ? addr : "");
			goto out;
		}
		m->from = strdup(addr);
	}
	rc = parse_rcpt_header(m, msg, GMIME_ADDRESS_TYPE_TO, "To", err);
	if (rc == 0)
		rc = parse_rcpt_header(m, msg, GMIME_ADDRESS_TYPE_CC, "Cc", err);
	if (rc == 0)
		rc = parse_rcpt_header(m, msg, GMIME_ADDRESS_TYPE_BCC, "Bcc",
				       err);
	if (rc < 0)
		goto out;
	if (m->nrcpt == 0) {
		rc = mfs_fail(err, MFS_E_INVAL, "no recipient (To, Cc, Bcc)");
		goto out;
	}
	if (!g_mime_object_get_header(GMIME_OBJECT(msg), "Date")) {
		GDateTime *now = g_date_time_new_now_local();

		g_mime_message_set_date(msg, now);
		g_date_time_unref(now);
	}
	if (!g_mime_message_get_message_id(msg)) {
		char *id = make_message_id(m->from);

		if (!id) {
			rc = mfs_fail(err, MFS_E_IO, "no randomness for a Message-ID");
			goto out;
		}
		g_mime_message_set_message_id(msg, id);
		free(id);
	}
	if (!g_mime_object_get_header(GMIME_OBJECT(msg), "MIME-Version"))
		g_mime_object_set_header(GMIME_OBJECT(msg), "MIME-Version",
					 "1.0", NULL);
	declare_charset(msg);
	while (g_mime_object_remove_header(GMIME_OBJECT(msg), "Bcc"))
		;
	fmt = g_mime_format_options_new();
	g_mime_format_options_set_newline_format(fmt, GMIME_NEWLINE_FORMAT_DOS);
	mem = g_mime_stream_mem_new();
	if (g_mime_object_write_to_stream(GMIME_OBJECT(msg), fmt, mem) < 0) {
		rc = mfs_fail(err, MFS_E_NOMEM, "cannot write the message");
		goto out;
	}
	bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	/* GMime converts line ends only inside leaf parts; a multipart's
	 * preamble and epilogue keep bare LF, which SMTP forbids (and
	 * "\n.\r\n" there would end the DATA early).  CRLF everywhere. */
	{
		size_t extra = 0, j = 0;
		const char *b = (const char *)bytes->data;

		for (size_t i = 0; i < bytes->len; i++)
			extra += b[i] == '\n' && (i == 0 || b[i - 1] != '\r');
		m->data = malloc(bytes->len + extra + 1);
		if (!m->data || !m->from) {
			rc = mfs_fail(err, MFS_E_NOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < bytes->len; i++) {
			if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r'))
				m->data[j++] = '\r';
			m->data[j++] = b[i];
		}
		m->data[j] = '\0';
		m->len = j;
	}
	*out = m;
	m = NULL;
	rc = 0;
out:
	if (fmt)
		g_mime_format_options_free(fmt);
	if (mem)
		g_object_unref(mem);
	if (msg)
		g_object_unref(msg);
	if (parser)
		g_object_unref(parser);
	if (stream)
		g_object_unref(stream);
	smtp_msg_free(m);
	return rc;
}

/* ---- messages cut short --------------------------------------------------
 *
 * A line scanner over the MIME structure, with no allocation: a stack of
 * the multiparts that are open, the header being read, and for a base64
 * body the count of its characters.  Only where the data ends matters: an
 * interrupted copy cuts at the end, so structure that is broken but
 * closed before the end (a nested multipart without its own closing
 * boundary, stray text in a base64 part) is somebody's odd mail, not a
 * cut, and is left alone. */

#define CUT_DEPTH 32
#define CUT_BOUNDARY 200	/* RFC 2046 says at most 70 */

struct cut_type {
	bool multipart;		/* with a usable boundary */
	bool message;		/* message/rfc822 or message/global */
	bool digest;		/* multipart/digest: parts default to message */
	bool base64;
	char subtype[32];
	char boundary[CUT_BOUNDARY];
	size_t blen;
};

struct cut_frame {
	char boundary[CUT_BOUNDARY];
	size_t blen;
	bool digest;
	char subtype[32];
};

struct cut_scan {
	struct cut_frame f[CUT_DEPTH];
	size_t depth;
	bool header;		/* reading a header, not a body */
	struct cut_type t;	/* what the header read so far declares */
	bool seen_ct;		/* the header had a Content-Type */
	const char *field;	/* the header field being gathered */
	size_t field_len;
	bool b64;		/* the body being read is base64 ... */
	bool b64_clean;		/* ... and nothing but base64 so far */
	size_t b64_n;		/* its characters, '=' included */
};

static bool cut_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Past white space and (nested) comments. */
static size_t cut_cfws(const char *v, size_t i, size_t n)
{
	int depth = 0;

	for (; i < n; i++) {
		if (depth > 0 && v[i] == '\\' && i + 1 < n)
			i++;
		else if (v[i] == '(')
			depth++;
		else if (v[i] == ')' && depth > 0)
			depth--;
		else if (depth == 0 && !cut_wsp(v[i]))
			break;
	}
	return i;
}

static size_t cut_token(const char *v, size_t i, size_t n)
{
	while (i < n && (unsigned char)v[i] > ' ' && v[i] != 0x7f &&
	       !strchr("()<>@,;:\\\"/[]?=", v[i]))
		i++;
	return i;
}

static bool cut_is(const char *v, size_t len, const char *word)
{
	return len == strlen(word) && strncasecmp(v, word, len) == 0;
}

/* Content-Type: type "/" subtype *(";" name "=" value), leniently: an
 * unquoted boundary runs to ';' or white space, as mailers write them. */
static void cut_content_type(const char *v, size_t n, struct cut_type *t)
{
	size_t i = cut_cfws(v, 0, n), t0 = i, t1, s0, s1;
	bool boundary = false;

	t1 = i = cut_token(v, i, n);
	i = cut_cfws(v, i, n);
	if (t1 == t0 || i >= n || v[i] != '/')
		return;		/* unusable: the default stays */
	s0 = i = cut_cfws(v, i + 1, n);
	s1 = i = cut_token(v, i, n);
	memset(t, 0, sizeof(*t));
	snprintf(t->subtype, sizeof(t->subtype), "%.*s",
		 (int)(s1 - s0 < 31 ? s1 - s0 : 31), v + s0);
	while (i < n) {
		size_t k0, k1;

		i = cut_cfws(v, i, n);
		if (i >= n)
			break;
		if (v[i] != ';') {
			i++;	/* junk: look for the next parameter */
			continue;
		}
		k0 = i = cut_cfws(v, i + 1, n);
		k1 = i = cut_token(v, i, n);
		i = cut_cfws(v, i, n);
		if (i >= n || v[i] != '=')
			continue;
		i = cut_cfws(v, i + 1, n);
		if (boundary || !cut_is(v + k0, k1 - k0, "boundary")) {
			/* skip the value */
			if (i < n && v[i] == '"')
				for (i++; i < n && v[i] != '"'; i++)
					i += v[i] == '\\';
			while (i < n && v[i] != ';')
				i++;
			continue;
		}
		boundary = true;
		t->blen = 0;
		if (i < n && v[i] == '"') {
			for (i++; i < n && v[i] != '"'; i++) {
				if (v[i] == '\\' && i + 1 < n)
					i++;
				else if (v[i] == '\r' || v[i] == '\n')
					continue;	/* folded */
				if (t->blen == sizeof(t->boundary))
					break;
				t->boundary[t->blen++] = v[i];
			}
		} else {
			for (; i < n && v[i] != ';' && !cut_wsp(v[i]); i++) {
				if (t->blen == sizeof(t->boundary))
					break;
				t->boundary[t->blen++] = v[i];
			}
		}
		/* Too long to be one we would match: not judged. */
		if (t->blen == sizeof(t->boundary))
			t->blen = 0;
	}
	if (cut_is(v + t0, t1 - t0, "multipart")) {
		t->multipart = t->blen > 0;
		t->digest = cut_is(v + s0, s1 - s0, "digest");
	} else if (cut_is(v + t0, t1 - t0, "message")) {
		t->message = cut_is(v + s0, s1 - s0, "rfc822") ||
			     cut_is(v + s0, s1 - s0, "global");
	}
}

/* One whole (unfolded) header field. */
static void cut_field(struct cut_scan *s, const char *f, size_t n)
{
	const char *colon = memchr(f, ':', n);
	size_t nl, i;

	if (!colon)
		return;
	nl = (size_t)(colon - f);
	while (nl > 0 && (f[nl - 1] == ' ' || f[nl - 1] == '\t'))
		nl--;
	i = (size_t)(colon - f) + 1;
	if (cut_is(f, nl, "Content-Type") && !s->seen_ct) {
		bool b64 = s->t.base64;

		s->seen_ct = true;
		cut_content_type(f + i, n - i, &s->t);
		s->t.base64 = b64;
	} else if (cut_is(f, nl, "Content-Transfer-Encoding")) {
		size_t v0 = cut_cfws(f, i, n), v1 = cut_token(f, v0, n);

		s->t.base64 = cut_is(f + v0, v1 - v0, "base64");
	}
}

/* A new header starts: a part's (whose type defaults to message/rfc822
 * in a digest, else to text/plain) or an enclosed message's. */
static void cut_header_start(struct cut_scan *s, bool message)
{
	memset(&s->t, 0, sizeof(s->t));
	s->t.message = message;
	s->header = true;
	s->seen_ct = false;
	s->field = NULL;
	s->b64 = false;
}

/* The header being read is over: what comes next is its body. */
static void cut_header_done(struct cut_scan *s)
{
	struct cut_type *t = &s->t;

	s->header = false;
	s->b64 = false;
	if (t->multipart && !t->base64 && s->depth < CUT_DEPTH) {
		struct cut_frame *f = &s->f[s->depth++];

		memcpy(f->boundary, t->boundary, t->blen);
		f->blen = t->blen;
		f->digest = t->digest;
		snprintf(f->subtype, sizeof(f->subtype), "%s", t->subtype);
	} else if (t->message && !t->base64) {
		cut_header_start(s, false);	/* a message inside */
	} else if (t->base64) {
		s->b64 = s->b64_clean = true;
		s->b64_n = 0;
	}
}

/* Which open multipart's delimiter is this line, innermost first: its
 * index, or -1.  "--" boundary ["--"] and nothing but white space. */
static int cut_delimiter(const struct cut_scan *s, const char *l, size_t n,
			 bool *close)
{
	if (n < 3 || l[0] != '-' || l[1] != '-')
		return -1;
	for (size_t k = s->depth; k-- > 0;) {
		const struct cut_frame *f = &s->f[k];
		size_t i = 2 + f->blen;

		if (n < i || memcmp(l + 2, f->boundary, f->blen) != 0)
			continue;
		*close = n >= i + 2 && l[i] == '-' && l[i + 1] == '-';
		if (*close)
			i += 2;
		while (i < n && (l[i] == ' ' || l[i] == '\t'))
			i++;
		if (i == n)
			return (int)k;
	}
	return -1;
}

/* Does the line start a header field ("Name:")? */
static bool cut_field_start(const char *l, size_t n)
{
	size_t i = 0;

	while (i < n && (unsigned char)l[i] > ' ' && l[i] != ':' &&
	       (unsigned char)l[i] < 0x7f)
		i++;
	if (i == 0)
		return false;
	while (i < n && (l[i] == ' ' || l[i] == '\t'))
		i++;
	return i < n && l[i] == ':';
}

static void cut_body_line(struct cut_scan *s, const char *l, size_t n)
{
	if (!s->b64 || !s->b64_clean)
		return;
	for (size_t i = 0; i < n; i++) {
		char c = l[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=')
			s->b64_n++;
		else if (c != ' ' && c != '\t')
			s->b64_clean = false;
	}
}

bool smtp_msg_cut(const char *raw, size_t len, char *why, size_t whylen)
{
	struct cut_scan s;
	size_t pos = 0;

	memset(&s, 0, sizeof(s));
	cut_header_start(&s, false);
	while (pos < len) {
		const char *l = raw + pos, *eol = memchr(l, '\n', len - pos);
		size_t n = eol ? (size_t)(eol - l) : len - pos, full = n;
		bool close = false;
		int k;

		pos += n + (eol != NULL);
		if (n > 0 && l[n - 1] == '\r')
			n--;
		k = cut_delimiter(&s, l, n, &close);
		if (k >= 0) {
			s.depth = (size_t)k + !close;
			if (close) {
				s.header = s.b64 = false;	/* an epilogue */
			} else {
				bool digest = s.f[k].digest;

				cut_header_start(&s, digest);
			}
			continue;
		}
		if (!s.header) {
			cut_body_line(&s, l, n);
			continue;
		}
		/* A header line: a continuation, a new field, or its end. */
		if (n > 0 && (l[0] == ' ' || l[0] == '\t')) {
			if (s.field)
				s.field_len = (size_t)(l + full - s.field);
			continue;
		}
		if (s.field)
			cut_field(&s, s.field, s.field_len);
		s.field = NULL;
		if (n > 0 && cut_field_start(l, n)) {
			s.field = l;
			s.field_len = full;
			continue;
		}
		/* A blank line, or a line that is no field: the body starts
		 * (and such a line is part of it). */
		cut_header_done(&s);
		if (n > 0 && !s.header)
			cut_body_line(&s, l, n);
	}
	if (s.header && s.field)
		cut_field(&s, s.field, s.field_len);
	/* A header that declared a multipart and was never ended by a blank
	 * line: its parts and closing boundary are all missing. */
	if (s.header && s.t.multipart && !s.t.base64) {
		snprintf(why, whylen, "multipart/%s ends without its closing "
				      "boundary", s.t.subtype);
		return true;
	}
	if (s.depth > 0) {
		snprintf(why, whylen, "multipart/%s ends without its closing "
				      "boundary", s.f[0].subtype);
		return true;
	}
	if (!s.header && s.b64 && s.b64_clean && s.b64_n % 4 != 0) {
		snprintf(why, whylen, "its base64 part ends in the middle of "
				      "a 4-character group");
		return true;
	}
	return false;
}
