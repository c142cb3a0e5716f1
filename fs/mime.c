/* mime.c - header summaries and the decoded view of a message (see mime.h).
 *
 * All GMime objects are created per call, so different messages can be
 * handled on different threads at once; only g_mime_init() is global.
 * Malformed mail is not an error: GMime's parser is lenient and whatever
 * it makes of the input is written out.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "maildate.h"
#include "mime.h"
#include "names.h"

/* Deeper multipart nesting is only seen in hostile mail; GMime itself stops
 * at 1024 levels, we stop earlier to bound our own recursion. */
#define MAX_DEPTH 64

#define TYPE_MAX 128

/* The walk's way of saying the wanted part is written: stop, no error. */
#define DONE 1

#define UTF8_BOM "\xef\xbb\xbf"

/* Make the class of every GObject type this process uses, and its parents,
 * and every class already registered below GObject.  GLib registers a type
 * and makes its class on first use, from whichever thread gets there first,
 * and publishes both through atomics and futexes; a second thread reading
 * the class (every GMIME_IS_* check does) is then ordered after it only by
 * means ThreadSanitizer cannot see.  Done here, on the main thread before
 * any other starts, the order is plain to everyone, at the cost of a few
 * hundred bytes made at start-up that would be made at the first message
 * anyway. */
static void make_class_tree(GType t)
{
	GType *kids;
	guint i, n = 0;

	/* The reference is kept: a static type's class lives as long as the
	 * process whatever its count. */
	if (G_TYPE_IS_CLASSED(t))
		g_type_class_ref(t);
	kids = g_type_children(t, &n);
	for (i = 0; i < n; i++)
		make_class_tree(kids[i]);
	g_free(kids);
}

static void make_classes(void)
{
	static GType (*const used[])(void) = {
		internet_address_mailbox_get_type,
		internet_address_group_get_type,
		internet_address_list_get_type,
		g_mime_message_get_type,
		g_mime_message_part_get_type,
		g_mime_message_partial_get_type,
		g_mime_multipart_get_type,
		g_mime_multipart_signed_get_type,
		g_mime_multipart_encrypted_get_type,
		g_mime_part_get_type,
		g_mime_text_part_get_type,
		g_mime_application_pkcs7_mime_get_type,
		g_mime_parser_get_type,
		g_mime_data_wrapper_get_type,
		g_mime_content_type_get_type,
		g_mime_content_disposition_get_type,
		g_mime_param_list_get_type,
		g_mime_stream_mem_get_type,
		g_mime_stream_fs_get_type,
		g_mime_stream_null_get_type,
		g_mime_stream_filter_get_type,
		g_mime_stream_cat_get_type,
		g_mime_filter_basic_get_type,
		g_mime_filter_best_get_type,
		g_mime_filter_charset_get_type,
		g_mime_filter_dos2unix_get_type,
		g_mime_filter_unix2dos_get_type,
		g_mime_filter_from_get_type,
		g_mime_filter_smtp_data_get_type,
		g_mime_filter_yenc_get_type,
	};
	size_t i;

	for (i = 0; i < sizeof(used) / sizeof(used[0]); i++)
		used[i]();
	make_class_tree(G_TYPE_OBJECT);
}

void mime_init(void)
{
	g_mime_init();
	make_classes();
}

void mime_shutdown(void)
{
	g_mime_shutdown();
}

/* ---- summary ---------------------------------------------------------- */

/* Copy s into a malloc'd string (NULL stays NULL), with folding whitespace
 * collapsed when fold is set, and repaired if GMime let invalid UTF-8
 * through (it does for some charset failures). */
static int dup_text(const char *s, bool fold, char **out)
{
	char *valid = NULL, *copy = NULL;
	const char *p;
	size_t len = 0;
	bool space = false;

	*out = NULL;
	if (!s)
		return 0;
	if (!g_utf8_validate(s, -1, NULL)) {
		valid = g_utf8_make_valid(s, -1);
		s = valid;
	}
	copy = malloc(strlen(s) + 1);
	if (!copy) {
		g_free(valid);
		return MFS_E_NOMEM;
	}
	for (p = s; *p; p++) {
		if (fold && strchr(" \t\r\n", *p)) {
			space = true;
			continue;
		}
		if (space && len > 0)
			copy[len++] = ' ';
		space = false;
		copy[len++] = *p;
	}
	copy[len] = '\0';
	g_free(valid);
	*out = copy;
	return 0;
}

/* The first mailbox of a list, looking into groups ("Team: a@x, b@y;"). */
static InternetAddressMailbox *first_mailbox(InternetAddressList *list,
					     int depth)
{
	InternetAddressList *members;
	InternetAddressMailbox *mb;
	InternetAddress *ia;
	int i, n;

	if (!list || depth > 2)
		return NULL;
	n = internet_address_list_length(list);
	for (i = 0; i < n; i++) {
		ia = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_MAILBOX(ia))
			return INTERNET_ADDRESS_MAILBOX(ia);
		if (!INTERNET_ADDRESS_IS_GROUP(ia))
			continue;
		members = internet_address_group_get_members(
		    INTERNET_ADDRESS_GROUP(ia));
		mb = first_mailbox(members, depth + 1);
		if (mb)
			return mb;
	}
	return NULL;
}

static const char *sender_of(GMimeMessage *msg)
{
	InternetAddressMailbox *mb;
	const char *s;

	mb = first_mailbox(g_mime_message_get_from(msg), 0);
	if (!mb)
		return NULL;
	s = internet_address_get_name(INTERNET_ADDRESS(mb));
	if (s && s[strspn(s, " \t\r\n")])
		return s;
	s = internet_address_mailbox_get_addr(mb);
	if (s && *s)
		return s;
	return NULL;
}

/* True when a header block already ends with its empty line. */
static bool ends_blank(const char *s, size_t len)
{
	if (len >= 2 && s[len - 1] == '\n' && s[len - 2] == '\n')
		return true;
	return len >= 3 && s[len - 1] == '\n' && s[len - 2] == '\r' &&
	       s[len - 3] == '\n';
}

int mime_summary_parse(const char *hdr, size_t len, struct mime_summary *out)
{
	GMimeStream *stream = NULL;
	GMimeParser *parser = NULL;
	GMimeMessage *msg = NULL;
	GMimeHeaderList *headers;
	GMimeHeader *date;
	const char *raw;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (!hdr || len == 0)
		return 0;

	stream = g_mime_stream_mem_new();
	g_mime_stream_write(stream, hdr, len);
	/* A fetched header block may stop short of the empty line (or even
	 * the last newline); the parser wants the whole head. */
	if (hdr[len - 1] != '\n')
		g_mime_stream_write(stream, "\r\n\r\n", 4);
	else if (!ends_blank(hdr, len))
		g_mime_stream_write(stream, "\r\n", 2);
	g_mime_stream_reset(stream);

	parser = g_mime_parser_new_with_stream(stream);
	msg = g_mime_parser_construct_message(parser, NULL);
	if (!msg)
		goto out;

	/* The first Date as written: GMime's own reading of it is not
	 * python's (maildate.h). */
	headers = g_mime_object_get_header_list(GMIME_OBJECT(msg));
	date = headers ? g_mime_header_list_get_header(headers, "Date") : NULL;
	raw = date ? g_mime_header_get_raw_value(date) : NULL;
	if (raw)
		out->date_valid = maildate_parse(raw, strlen(raw), &out->date);
	ret = dup_text(sender_of(msg), true, &out->from);
	if (ret == 0)
		ret = dup_text(g_mime_message_get_subject(msg), true,
			       &out->subject);
	if (ret == 0)
		ret = dup_text(g_mime_message_get_message_id(msg), false,
			       &out->message_id);
	if (ret)
		mime_summary_clear(out);
out:
	if (msg)
		g_object_unref(msg);
	if (parser)
		g_object_unref(parser);
	g_object_unref(stream);
	return ret;
}

void mime_summary_clear(struct mime_summary *s)
{
	free(s->from);
	free(s->subject);
	free(s->message_id);
	memset(s, 0, sizeof(*s));
}

/* ---- decoded view ----------------------------------------------------- */

struct decoder {
	unsigned want;	/* the part to write (0: none, measure all) */
	int fd_out;
	mime_open_fn open_fn;	/* with want 0: where each part goes */
	unsigned n;	/* parts numbered so far */
	unsigned max_parts;
	bool have_txt, have_html;
	GHashTable *names;	    /* names handed out, for names_unique */
	GMimeFormatOptions *format; /* for writing nested messages */
	mime_part_fn fn;
	void *ctx;
	struct mfs_error *err;
};

/* How a part's content reaches its file. */
enum conv {
	CONV_RAW,  /* transfer-decoded bytes, as sent */
	CONV_TEXT, /* also charset-converted to UTF-8, LF line ends */
};

static bool name_taken(void *ctx, const char *name)
{
	return g_hash_table_contains(ctx, name);
}

static int io_fail(struct decoder *d, const char *what, int e)
{
	char buf[128];

	return mfs_fail(d->err, MFS_E_IO, "%s: %s", what,
			strerror_r(e ? e : EIO, buf, sizeof(buf)));
}

/* An RFC 2045 token: what a media type or subtype may consist of. */
static bool is_token(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c >= 0x7f || strchr("()<>@,;:\\\"/[]?=", c))
			return false;
	}
	return true;
}

/* "type/subtype" in lower case, or application/octet-stream when GMime
 * kept something that is not a plain token (it is lenient about that). */
static void type_of(GMimeObject *obj, char *buf)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	const char *t = NULL, *s = NULL;
	int n, i;

	if (ct) {
		t = g_mime_content_type_get_media_type(ct);
		s = g_mime_content_type_get_media_subtype(ct);
	}
	if (!is_token(t) || !is_token(s)) {
		t = "application";
		s = "octet-stream";
	}
	n = snprintf(buf, TYPE_MAX, "%s/%s", t, s);
	if (n >= TYPE_MAX)
		n = snprintf(buf, TYPE_MAX, "application/octet-stream");
	for (i = 0; i < n; i++)
		buf[i] = g_ascii_tolower(buf[i]);
}

static const char *ext_of(const char *type)
{
	static const struct {
		const char *type, *ext;
	} map[] = {
	    {"text/plain", "txt"},	{"text/html", "html"},
	    {"text/calendar", "ics"},	{"image/png", "png"},
	    {"image/jpeg", "jpg"},	{"image/gif", "gif"},
	    {"application/pdf", "pdf"}, {"message/rfc822", "eml"},
	};
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(map); i++)
		if (strcmp(type, map[i].type) == 0)
			return map[i].ext;
	return "bin";
}

/* Where a part's bytes go: to fd, or only counted when fd is -1. */
struct sink {
	int fd;
	uint64_t bytes;
};

static int write_all(struct sink *out, const char *p, size_t len)
{
	int fd = out->fd;
	ssize_t w;

	out->bytes += len;
	while (fd >= 0 && len > 0) {
		w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Windows-1252 for the bytes 0x80-0x9f, which ISO-8859-1 leaves to control
 * characters; undeclared 8-bit mail is nearly always one of the two. */
static const gunichar cp1252[32] = {
    0x20ac, 0xfffd, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
    0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0xfffd, 0x017d, 0xfffd,
    0xfffd, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
    0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0xfffd, 0x017e, 0x0178,
};

/* Write text that should be UTF-8 as UTF-8 with LF line ends: bytes that
 * are not part of a valid sequence are read as Windows-1252, so text that
 * lied about (or omitted) its charset still reads right. */
static int write_text(struct sink *out, const guint8 *s, size_t len)
{
	char buf[8192];
	size_t i = 0, bl = 0, n;
	gunichar c;

	while (i < len) {
		if (bl > sizeof(buf) - 8) {
			if (write_all(out, buf, bl) < 0)
				return -1;
			bl = 0;
		}
		if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') {
			i++;
			continue;
		}
		if (s[i] < 0x80) {
			buf[bl++] = (char)s[i++];
			continue;
		}
		c = g_utf8_get_char_validated((const char *)s + i,
					      (gssize)MIN(len - i, 6));
		if (c == (gunichar)-1 || c == (gunichar)-2) {
			c = s[i] < 0xa0 ? cp1252[s[i] - 0x80] : s[i];
			bl += (size_t)g_unichar_to_utf8(c, buf + bl);
			i++;
			continue;
		}
		n = (size_t)g_unichar_to_utf8(c, buf + bl);
		bl += n;
		i += n;
	}
	if (bl > 0 && write_all(out, buf, bl) < 0)
		return -1;
	return 0;
}

static bool is_utf8_name(const char *cs)
{
	return !g_ascii_strcasecmp(cs, "utf-8") ||
	       !g_ascii_strcasecmp(cs, "utf8") ||
	       !g_ascii_strcasecmp(cs, "us-ascii") ||
	       !g_ascii_strcasecmp(cs, "ascii");
}

/* Body text goes through memory: the charset filter, then write_text.
 * HTML gets a byte order mark: the document's own <meta charset> still
 * names the charset it was sent in, and a browser opening the file would
 * believe it; a BOM outranks the meta tag. */
static int write_converted(struct decoder *d, GMimePart *part,
			   struct sink *out, const char *what, bool html)
{
	GMimeDataWrapper *content = g_mime_part_get_content(part);
	GMimeStream *mem = NULL, *filtered = NULL, *dst;
	GMimeFilter *filter = NULL;
	const char *cs;
	GByteArray *arr;
	int ret = 0;

	mem = g_mime_stream_mem_new();
	dst = mem;
	cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part),
						      "charset");
	/* For UTF-8 and ASCII no filter: iconv would drop stray 8-bit bytes
	 * that write_text can still make sense of. */
	if (cs && !is_utf8_name(cs))
		filter = g_mime_filter_charset_new(cs, "UTF-8");
	if (filter) {
		filtered = g_mime_stream_filter_new(mem);
		g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered), filter);
		dst = filtered;
	}
	if (content && g_mime_data_wrapper_write_to_stream(content, dst) < 0) {
		ret = io_fail(d, what, errno);
		goto out;
	}
	if (filtered)
		g_mime_stream_flush(filtered);
	arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	if (html && !(arr->len >= 3 && !memcmp(arr->data, UTF8_BOM, 3)) &&
	    write_all(out, UTF8_BOM, 3) < 0) {
		ret = io_fail(d, what, errno);
		goto out;
	}
	if (write_text(out, arr->data, arr->len) < 0)
		ret = io_fail(d, what, errno);
out:
	if (filtered)
		g_object_unref(filtered);
	if (filter)
		g_object_unref(filter);
	g_object_unref(mem);
	return ret;
}

/* Transfer-decoded content, or a nested message as it was sent, straight
 * to the sink.  The stream is never flushed: for GMimeStreamFs that would
 * be an fsync. */
static int write_raw(struct decoder *d, GMimeObject *obj, struct sink *sk,
		     const char *what)
{
	GMimeDataWrapper *content;
	GMimeMessage *msg;
	GMimeStream *out;
	gint64 start = 0;
	ssize_t w = 0;
	int e;

	if (sk->fd >= 0) {
		out = g_mime_stream_fs_new(sk->fd);
		g_mime_stream_fs_set_owner(GMIME_STREAM_FS(out), FALSE);
		start = g_mime_stream_tell(out);
	} else {
		out = g_mime_stream_null_new();
	}
	if (GMIME_IS_MESSAGE_PART(obj)) {
		msg = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (msg)
			w = g_mime_object_write_to_stream(GMIME_OBJECT(msg),
							  d->format, out);
	} else {
		content = g_mime_part_get_content(GMIME_PART(obj));
		if (content)
			w = g_mime_data_wrapper_write_to_stream(content, out);
	}
	e = errno;
	/* What the calls return counts bytes before decoding; the stream
	 * knows what came out. */
	if (sk->fd >= 0)
		sk->bytes = (uint64_t)(g_mime_stream_tell(out) - start);
	else
		sk->bytes = GMIME_STREAM_NULL(out)->written;
	g_object_unref(out);
	return w < 0 ? io_fail(d, what, e) : 0;
}

/* Number the next part and report it; write it out if it is the one
 * wanted, else only measure it.  obj is either a leaf GMimePart (written
 * per conv) or a GMimeMessagePart (written raw). */
static int emit(struct decoder *d, GMimeObject *obj, const char *name,
		const char *type, enum conv conv)
{
	unsigned n = d->n + 1;
	struct sink sk = { -1, 0 };
	char what[64];
	int ret;

	d->n = n;
	g_hash_table_add(d->names, g_strdup(name));
	if (d->want && n != d->want)
		return 0;
	snprintf(what, sizeof(what), "part %u", n);
	if (n == d->want)
		sk.fd = d->fd_out;
	else if (d->open_fn && (sk.fd = d->open_fn(d->ctx, n)) < -1)
		return io_fail(d, what, -sk.fd);
	if (conv == CONV_TEXT)
		ret = write_converted(d, GMIME_PART(obj), &sk, what,
				      strcmp(type, "text/html") == 0);
	else
		ret = write_raw(d, obj, &sk, what);
	if (ret)
		return ret;
	if (d->fn)
		ret = d->fn(d->ctx, n, name, type, sk.bytes);
	if (ret == 0 && n == d->want)
		ret = DONE;
	return ret;
}

static int unique(struct decoder *d, char *name)
{
	/* 10000 collisions means a hostile message; its remaining parts are
	 * left out rather than given an ambiguous name. */
	return names_unique(name, name_taken, d->names);
}

static int do_message_part(struct decoder *d, GMimeMessagePart *mp)
{
	char name[NAMES_MAX + 1], type[TYPE_MAX];
	GMimeMessage *msg = g_mime_message_part_get_message(mp);
	const char *subject = msg ? g_mime_message_get_subject(msg) : NULL;
	char *s = NULL;
	size_t len;

	/* names_component keeps only what follows the last slash, which
	 * suits file names; in a subject a slash is just a word separator. */
	if (subject)
		s = g_strdelimit(g_strdup(subject), "/\\", '_');
	len = names_component(s, s ? strlen(s) : 0, "message", NAMES_MAX - 4,
			      name);
	g_free(s);
	memcpy(name + len, ".eml", 5);
	if (unique(d, name) < 0)
		return 0;
	type_of(GMIME_OBJECT(mp), type);
	return emit(d, GMIME_OBJECT(mp), name, type, CONV_RAW);
}

static int do_leaf(struct decoder *d, GMimePart *part)
{
	char name[NAMES_MAX + 1], type[TYPE_MAX];
	const char *filename = g_mime_part_get_filename(part);
	bool plain, html, attached;
	enum conv conv = CONV_RAW;

	type_of(GMIME_OBJECT(part), type);
	plain = strcmp(type, "text/plain") == 0;
	html = strcmp(type, "text/html") == 0;
	if (filename && !*filename)
		filename = NULL;
	/* A named part is an attachment whatever its disposition says: an
	 * inline "notes.txt" is a file the sender attached, not the body. */
	attached = filename || g_mime_part_is_attachment(part);

	if (!attached && plain && !d->have_txt) {
		d->have_txt = true;
		return emit(d, GMIME_OBJECT(part), "body.txt", type, CONV_TEXT);
	}
	if (!attached && html && !d->have_html) {
		d->have_html = true;
		return emit(d, GMIME_OBJECT(part), "body.html", type,
			    CONV_TEXT);
	}
	if (filename) {
		names_component(filename, strlen(filename), "attachment",
				NAMES_MAX, name);
	} else {
		snprintf(name, sizeof(name), "part%u.%s", d->n + 1,
			 ext_of(type));
		if (!attached && (plain || html))
			conv = CONV_TEXT;
	}
	if (unique(d, name) < 0)
		return 0;
	return emit(d, GMIME_OBJECT(part), name, type, conv);
}

static int walk(struct decoder *d, GMimeObject *obj, int depth)
{
	GMimeMultipart *mp;
	int i, count, ret;

	if (!obj || d->n >= d->max_parts)
		return 0;
	if (GMIME_IS_MULTIPART(obj)) {
		if (depth >= MAX_DEPTH)
			return 0;
		mp = GMIME_MULTIPART(obj);
		count = g_mime_multipart_get_count(mp);
		for (i = 0; i < count; i++) {
			ret = walk(d, g_mime_multipart_get_part(mp, i),
				   depth + 1);
			if (ret)
				return ret;
		}
		return 0;
	}
	/* A forwarded message is one file, not more parts of this one. */
	if (GMIME_IS_MESSAGE_PART(obj))
		return do_message_part(d, GMIME_MESSAGE_PART(obj));
	if (GMIME_IS_PART(obj))
		return do_leaf(d, GMIME_PART(obj));
	return 0;
}

/* GMime rewrites the line ends of a message it serialises; asking for the
 * input's own convention makes a nested message come out as it went in.
 * IMAP gives CRLF, but a cache may hold either. */
static GMimeFormatOptions *format_like(int fd)
{
	GMimeFormatOptions *f = g_mime_format_options_new();
	GMimeNewLineFormat nlf = GMIME_NEWLINE_FORMAT_UNIX;
	char buf[4096];
	ssize_t n;
	char *nl;

	n = pread(fd, buf, sizeof(buf), 0);
	nl = n > 0 ? memchr(buf, '\n', (size_t)n) : NULL;
	if (nl && nl > buf && nl[-1] == '\r')
		nlf = GMIME_NEWLINE_FORMAT_DOS;
	g_mime_format_options_set_newline_format(f, nlf);
	return f;
}

static int decode(int fd_in, unsigned want, int fd_out, mime_open_fn open_fn,
		  unsigned max_parts, mime_part_fn fn, void *ctx,
		  struct mfs_error *err)
{
	struct decoder d = {
	    .want = want,
	    .fd_out = fd_out,
	    .open_fn = open_fn,
	    .max_parts = max_parts,
	    .fn = fn,
	    .ctx = ctx,
	    .err = err,
	};
	GMimeStream *in = NULL;
	GMimeParser *parser = NULL;
	GMimeMessage *msg = NULL;
	int fd = -1, ret = 0;

	/* The stream closes what it owns: give it a duplicate. */
	fd = fcntl(fd_in, F_DUPFD_CLOEXEC, 0);
	if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		ret = io_fail(&d, "message", errno);
		goto out;
	}
	/* Seekable, so GMime keeps part contents as ranges of the file
	 * instead of copies: a large attachment is never held in memory. */
	in = g_mime_stream_fs_new_with_bounds(fd, 0, -1);
	fd = -1;
	parser = g_mime_parser_new_with_stream(in);
	msg = g_mime_parser_construct_message(parser, NULL);
	if (!msg)
		goto out;

	d.format = format_like(fd_in);
	d.names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	/* Reserved, so an attachment called body.txt cannot pose as the
	 * body even in a message that has none. */
	g_hash_table_add(d.names, g_strdup("body.txt"));
	g_hash_table_add(d.names, g_strdup("body.html"));
	ret = walk(&d, g_mime_message_get_mime_part(msg), 0);
	if (ret == DONE)
		ret = 0;
out:
	if (d.names)
		g_hash_table_destroy(d.names);
	if (d.format)
		g_mime_format_options_free(d.format);
	if (msg)
		g_object_unref(msg);
	if (parser)
		g_object_unref(parser);
	if (in)
		g_object_unref(in);
	if (fd >= 0)
		close(fd);
	return ret;
}

int mime_decode(int fd_in, unsigned want, int fd_out, unsigned max_parts,
		mime_part_fn fn, void *ctx, struct mfs_error *err)
{
	return decode(fd_in, want, fd_out, NULL, max_parts, fn, ctx, err);
}

int mime_decode_all(int fd_in, unsigned max_parts, mime_open_fn open_fn,
		    mime_part_fn fn, void *ctx, struct mfs_error *err)
{
	return decode(fd_in, 0, -1, open_fn, max_parts, fn, ctx, err);
}

bool mime_is_message(const char *data, size_t len)
{
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *msg;
	GMimeHeaderList *h;
	size_t n = 0;
	bool ok;

	size_t start = 0;

	/* A message begins with a header field name and a colon, perhaps
	 * after an mbox "From " line (servers keep those when given one). */
	if (len > 5 && memcmp(data, "From ", 5) == 0) {
		const char *nl = memchr(data, '\n', len);

		if (!nl)
			return false;
		start = (size_t)(nl - data) + 1;
	}
	n = start;
	while (n < len && data[n] > ' ' && data[n] < 0x7f && data[n] != ':')
		n++;
	if (n == start || n >= len || data[n] != ':')
		return false;
	stream = g_mime_stream_mem_new_with_buffer(data + start, len - start);
	parser = g_mime_parser_new_with_stream(stream);
	msg = g_mime_parser_construct_message(parser, NULL);
	h = msg ? g_mime_object_get_header_list(GMIME_OBJECT(msg)) : NULL;
	ok = h && g_mime_header_list_get_count(h) > 0;
	if (msg)
		g_object_unref(msg);
	g_object_unref(parser);
	g_object_unref(stream);
	return ok;
}
