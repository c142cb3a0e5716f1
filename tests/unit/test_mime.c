/* test_mime.c - header summaries and the decoded view (mime.h).
 *
 *   test_mime                 hand-written fixtures in tests/unit/data/mime
 *   test_mime corpus [DIR]    also decode every file under DIR (default
 *                             ../shared/corpus/notmuch) checking only that
 *                             nothing fails and sizes match; skipped when
 *                             DIR does not exist
 *
 * Fixtures are found under $MFS_TEST_DATA, else tests/unit/data/mime
 * relative to the working directory (the repository root under make).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "mime.h"
#include "names.h"

#define MAX_SEEN 64

/* What the callback saw. */
struct seen {
	unsigned count;
	unsigned stop_at; /* return stop_code at this n, 0 = never */
	int stop_code;
	struct {
		unsigned n;
		char name[NAMES_MAX + 1];
		char type[128];
		uint64_t size;
	} part[MAX_SEEN];
	bool in_order;
};

static int record(void *ctx, unsigned n, const char *name, const char *type,
		  uint64_t size)
{
	struct seen *s = ctx;

	if (n != s->count + 1)
		s->in_order = false;
	if (s->count < MAX_SEEN) {
		s->part[s->count].n = n;
		snprintf(s->part[s->count].name, NAMES_MAX + 1, "%s", name);
		snprintf(s->part[s->count].type, 128, "%s", type);
		s->part[s->count].size = size;
	}
	s->count++;
	if (s->stop_at && n == s->stop_at)
		return s->stop_code;
	return 0;
}

static const char *data_dir(void)
{
	const char *d = getenv("MFS_TEST_DATA");

	return d && *d ? d : "tests/unit/data/mime";
}

/* Whole file into malloc'd memory; *len set.  NULL on failure. */
static char *slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	ssize_t r;
	size_t got = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0)
		goto out;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		goto out;
	while (got < (size_t)st.st_size) {
		r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	*len = got;
out:
	close(fd);
	return buf;
}

static char *fixture(const char *name, size_t *len)
{
	char path[4096];
	char *buf;

	snprintf(path, sizeof(path), "%s/%s", data_dir(), name);
	buf = slurp(path, len);
	if (!buf)
		printf("FAIL: cannot read fixture %s\n", path);
	return buf;
}

/* LF line ends to CRLF, as IMAP delivers them. */
static char *to_crlf(const char *s, size_t len, size_t *outlen)
{
	char *out = malloc(len * 2 + 1);
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			out[n++] = '\r';
		out[n++] = s[i];
	}
	out[n] = '\0';
	*outlen = n;
	return out;
}

static void rm_tree(const char *dir)
{
	char path[4096];
	struct dirent *e;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static void make_tmpdir(char *dir, size_t size)
{
	const char *t = getenv("TMPDIR");

	snprintf(dir, size, "%s/mfs-mime-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(2);
	}
}

/* A message in a file, decoded into a fresh directory. */
struct run {
	char tmp[256]; /* holds the input file and out/ */
	char out[300];
	int ret;
	struct mfs_error err;
	struct seen seen;
	unsigned files; /* entries found in out/ afterwards */
	bool sizes_ok;	/* every reported size matches the file */
	bool names_ok;	/* every name clean and distinct */
};

static bool clean_name(const char *s)
{
	size_t len = strlen(s);
	size_t i;

	if (len == 0 || len > NAMES_MAX || s[0] == '.' || !strcmp(s, ".") ||
	    !strcmp(s, ".."))
		return false;
	for (i = 0; i < len; i++)
		if (s[i] == '/' || (unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	/* Re-cleaning a clean name must not change it. */
	{
		char again[NAMES_MAX + 1];

		names_component(s, len, "?", NAMES_MAX, again);
		if (strcmp(again, s) != 0)
			return false;
	}
	return true;
}

static void check_outdir(struct run *r)
{
	char path[512];
	struct dirent *e;
	struct stat st;
	unsigned i, j;
	DIR *d;

	r->files = 0;
	d = opendir(r->out);
	if (d) {
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				r->files++;
		closedir(d);
	}
	r->sizes_ok = true;
	r->names_ok = r->seen.in_order;
	for (i = 0; i < r->seen.count && i < MAX_SEEN; i++) {
		snprintf(path, sizeof(path), "%s/%u", r->out,
			 r->seen.part[i].n);
		if (stat(path, &st) < 0 ||
		    (uint64_t)st.st_size != r->seen.part[i].size ||
		    (st.st_mode & 0777) != 0600)
			r->sizes_ok = false;
		if (!clean_name(r->seen.part[i].name))
			r->names_ok = false;
		for (j = 0; j < i; j++)
			if (!strcmp(r->seen.part[j].name, r->seen.part[i].name))
				r->names_ok = false;
	}
}

struct written {
	unsigned calls, n;
	uint64_t size;
};

static int note_written(void *ctx, unsigned n, const char *name,
			const char *type, uint64_t size)
{
	struct written *w = ctx;

	(void)name;
	(void)type;
	w->calls++;
	w->n = n;
	w->size = size;
	return 0;
}

/* Write each part the measuring pass saw into "<out>/<n>", one call per
 * part as mailfs does on open: each must be told once, with the size the
 * measuring pass gave. */
static bool write_parts(struct run *r, int fd, unsigned max_parts)
{
	struct mfs_error err = {0};
	char path[512];
	bool ok = true;
	unsigned i;

	for (i = 0; i < r->seen.count && i < MAX_SEEN; i++) {
		struct written w = {0};
		unsigned n = r->seen.part[i].n;
		int out, ret;

		snprintf(path, sizeof(path), "%s/%u", r->out, n);
		out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (out < 0) {
			perror(path);
			exit(2);
		}
		ret = mime_decode(fd, n, out, max_parts, note_written, &w,
				  &err);
		close(out);
		if (ret != 0 || w.calls != 1 || w.n != n ||
		    w.size != r->seen.part[i].size)
			ok = false;
	}
	return ok;
}

/* Decode msg; the callback returns stop_code at part stop_at (0: never). */
static void decode_stop(struct run *r, const char *msg, size_t len,
			unsigned max_parts, unsigned stop_at, int stop_code)
{
	char in[300];
	bool writes_ok;
	int fd;

	memset(r, 0, sizeof(*r));
	r->seen.in_order = true;
	r->seen.stop_at = stop_at;
	r->seen.stop_code = stop_code;
	make_tmpdir(r->tmp, sizeof(r->tmp));
	snprintf(in, sizeof(in), "%s/in", r->tmp);
	snprintf(r->out, sizeof(r->out), "%s/out", r->tmp);
	mkdir(r->out, 0700);
	fd = open(in, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, msg, len) != (ssize_t)len) {
		perror("write input");
		exit(2);
	}
	/* The decoder must read from offset 0 whatever the fd's offset. */
	r->ret = mime_decode(fd, 0, -1, max_parts, record, &r->seen, &r->err);
	writes_ok = write_parts(r, fd, max_parts);
	close(fd);
	check_outdir(r);
	r->sizes_ok = r->sizes_ok && writes_ok;
}

static void decode_mem(struct run *r, const char *msg, size_t len,
		       unsigned max_parts)
{
	decode_stop(r, msg, len, max_parts, 0, 0);
}

static void run_done(struct run *r)
{
	char in[300];

	rm_tree(r->out);
	snprintf(in, sizeof(in), "%s/in", r->tmp);
	unlink(in);
	rmdir(r->tmp);
}

/* Index of the part called name, or -1. */
static int find(const struct run *r, const char *name)
{
	unsigned i;

	for (i = 0; i < r->seen.count && i < MAX_SEEN; i++)
		if (!strcmp(r->seen.part[i].name, name))
			return (int)i;
	return -1;
}

/* Does part name hold exactly want[0..len)? */
static bool part_is(const struct run *r, const char *name, const void *want,
		    size_t len)
{
	char path[512];
	size_t got = 0;
	char *buf;
	bool ok;
	int i = find(r, name);

	if (i < 0)
		return false;
	snprintf(path, sizeof(path), "%s/%u", r->out, r->seen.part[i].n);
	buf = slurp(path, &got);
	ok = buf && got == len && memcmp(buf, want, len) == 0;
	if (buf && !ok)
		printf("    %s: got %zu bytes [%.*s]\n", name, got,
		       (int)(got > 200 ? 200 : got), buf);
	free(buf);
	return ok;
}

static bool part_str(const struct run *r, const char *name, const char *want)
{
	return part_is(r, name, want, strlen(want));
}

static bool type_is(const struct run *r, const char *name, const char *type)
{
	int i = find(r, name);

	return i >= 0 && !strcmp(r->seen.part[i].type, type);
}

static void show(const struct run *r)
{
	unsigned i;

	for (i = 0; i < r->seen.count && i < MAX_SEEN; i++)
		printf("    %u [%s] %s %llu\n", r->seen.part[i].n,
		       r->seen.part[i].name, r->seen.part[i].type,
		       (unsigned long long)r->seen.part[i].size);
}

/* ---- summaries -------------------------------------------------------- */

static const struct {
	const char *what, *hdr;
	bool date_valid;
	int64_t date;
	const char *from, *subject, *message_id;
} sums[] = {
    {"plain, CRLF, blank line",
     "From: Alice Smith <alice@example.org>\r\n"
     "Subject: Quarterly report\r\n"
     "Date: Wed, 22 May 2024 10:23:00 +0000\r\n"
     "Message-ID: <q1@example.org>\r\n\r\n",
     true, 1716373380, "Alice Smith", "Quarterly report", "q1@example.org"},
    {"no trailing blank line",
     "Subject: x\r\nDate: Wed, 22 May 2024 "
     "12:23:00 +0200\r\n",
     true, 1716373380, NULL, "x", NULL},
    {"no trailing newline at all", "Subject: last line", false, 0, NULL,
     "last line", NULL},
    {"LF only", "From: bob@example.org\nSubject: lf\n\n", false, 0,
     "bob@example.org", "lf", NULL},
    {"RFC 2047 UTF-8 B", "Subject: =?UTF-8?B?w5xiZXJzaWNodA==?=\r\n", false, 0,
     NULL,
     "\xc3\x9c"
     "bersicht",
     NULL},
    {"RFC 2047 ISO-8859-1 Q", "Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?=\r\n",
     false, 0, NULL, "Caf\xc3\xa9 cr\xc3\xa8me", NULL},
    {"RFC 2047 mixed with text",
     "Subject: Re: =?UTF-8?Q?na=C3=AFve?= "
     "plan\r\n",
     false, 0, NULL, "Re: na\xc3\xafve plan", NULL},
    {"folded subject", "Subject: a very\r\n long\r\n\tfolded   subject\r\n",
     false, 0, NULL, "a very long folded subject", NULL},
    {"missing Date", "From: a@b\r\nSubject: s\r\n", false, 0, "a@b", "s", NULL},
    {"bad Date", "Date: not a date at all\r\nSubject: s\r\n", false, 0, NULL,
     "s", NULL},
    {"impossible Date", "Date: 32 Foo 2024 99:99:99\r\n", false, 0, NULL, NULL,
     NULL},
    {"epoch Date", "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n", true, 0, NULL,
     NULL, NULL},
    {"From without display name", "From: carol@example.org\r\n", false, 0,
     "carol@example.org", NULL, NULL},
    {"From angle-addr only", "From: <carol@example.org>\r\n", false, 0,
     "carol@example.org", NULL, NULL},
    {"From empty display name", "From: \"\" <carol@example.org>\r\n", false, 0,
     "carol@example.org", NULL, NULL},
    {"From quoted name with comma", "From: \"Smith, Alice\" <a@x>\r\n", false,
     0, "Smith, Alice", NULL, NULL},
    {"From encoded name", "From: =?ISO-8859-1?Q?Ren=E9?= <r@x>\r\n", false, 0,
     "Ren\xc3\xa9", NULL, NULL},
    {"From first of several", "From: A <a@x>, B <b@x>\r\n", false, 0, "A", NULL,
     NULL},
    {"From group", "From: Team: Dan <d@x>, e@x;\r\n", false, 0, "Dan", NULL,
     NULL},
    {"From empty", "From: <>\r\nSubject: s\r\n", false, 0, NULL, "s", NULL},
    {"raw 8-bit subject", "Subject: caf\xe9\r\n", false, 0, NULL, "caf\xc3\xa9",
     NULL},
    {"nothing useful", "X-Junk: 1\r\n", false, 0, NULL, NULL, NULL},
};

static void test_summary(void)
{
	struct mime_summary s;
	size_t i;
	int ret;

	for (i = 0; i < sizeof(sums) / sizeof(sums[0]); i++) {
		ret = mime_summary_parse(sums[i].hdr, strlen(sums[i].hdr), &s);
		CHECK(ret == 0, "summary %s: parsed", sums[i].what);
		CHECK(s.date_valid == sums[i].date_valid &&
			  (!s.date_valid || s.date == sums[i].date),
		      "summary %s: date (%d, %lld)", sums[i].what, s.date_valid,
		      (long long)s.date);
		CHECK_STR(s.from, sums[i].from, "summary %s: from",
			  sums[i].what);
		CHECK_STR(s.subject, sums[i].subject, "summary %s: subject",
			  sums[i].what);
		CHECK_STR(s.message_id, sums[i].message_id,
			  "summary %s: message-id", sums[i].what);
		mime_summary_clear(&s);
		CHECK(!s.from && !s.subject && !s.message_id,
		      "summary %s: cleared", sums[i].what);
	}

	ret = mime_summary_parse("", 0, &s);
	CHECK(ret == 0 && !s.date_valid && !s.from && !s.subject,
	      "summary: empty input");
	mime_summary_clear(&s);
	ret = mime_summary_parse("\0\0\xff\r\n: :\n\n", 9, &s);
	CHECK(ret == 0, "summary: binary garbage");
	mime_summary_clear(&s);
}

/* Different inputs on different threads at once, as the sync code will. */
#define THREADS 4
#define ROUNDS	300

static void *summary_thread(void *arg)
{
	size_t k = (size_t)(uintptr_t)arg, i, j;
	struct mime_summary s;
	uintptr_t bad = 0;

	for (j = 0; j < ROUNDS; j++) {
		i = (k + j) % (sizeof(sums) / sizeof(sums[0]));
		if (mime_summary_parse(sums[i].hdr, strlen(sums[i].hdr), &s)) {
			bad++;
			continue;
		}
		if (s.date_valid != sums[i].date_valid)
			bad++;
		if ((s.subject == NULL) != (sums[i].subject == NULL) ||
		    (s.subject && strcmp(s.subject, sums[i].subject)))
			bad++;
		mime_summary_clear(&s);
	}
	return (void *)bad;
}

static void test_summary_threads(void)
{
	pthread_t t[THREADS];
	void *bad;
	uintptr_t total = 0;
	size_t i;

	for (i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, summary_thread,
			       (void *)(uintptr_t)i);
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], &bad);
		total += (uintptr_t)bad;
	}
	CHECK(total == 0, "summary: %d threads agree with the table (%lu bad)",
	      THREADS, (unsigned long)total);
}

/* ---- decoding the fixtures -------------------------------------------- */

/* Each fixture is decoded as stored (LF) and as IMAP sends it (CRLF); the
 * decoded view must be the same. */
static void test_simple(bool crlf)
{
	const char *v = crlf ? "crlf" : "lf";
	size_t len, len2;
	char *msg = fixture("simple.eml", &len), *m2;
	struct run r;

	if (!msg)
		return;
	m2 = crlf ? to_crlf(msg, len, &len2) : msg;
	decode_mem(&r, m2, crlf ? len2 : len, 100);
	CHECK(r.ret == 0 && r.seen.count == 1 && r.files == 1,
	      "simple/%s: one part", v);
	CHECK(r.sizes_ok && r.names_ok, "simple/%s: sizes and names", v);
	CHECK(part_str(&r, "body.txt",
		       "Shall we have lunch at noon?\n-- \nAlice\n") &&
		  type_is(&r, "body.txt", "text/plain"),
	      "simple/%s: body.txt, LF line ends", v);
	run_done(&r);
	if (crlf)
		free(m2);
	free(msg);
}

static void test_alternative(bool crlf)
{
	const char *v = crlf ? "crlf" : "lf";
	size_t len, len2;
	char *msg = fixture("alternative.eml", &len), *m2;
	struct run r;

	if (!msg)
		return;
	m2 = crlf ? to_crlf(msg, len, &len2) : msg;
	decode_mem(&r, m2, crlf ? len2 : len, 100);
	CHECK(r.ret == 0 && r.seen.count == 2 && r.files == 2,
	      "alternative/%s: two parts", v);
	CHECK(r.sizes_ok && r.names_ok, "alternative/%s: sizes and names", v);
	CHECK(part_str(&r, "body.txt",
		       "Caf\xc3\xa9 au lait, cr\xc3\xa8me br\xc3\xbbl\xc3\xa9"
		       "e, and a very long line that continues here."),
	      "alternative/%s: quoted-printable text decoded", v);
	CHECK(part_str(&r, "body.html",
		       "\xef\xbb\xbf<p>Caf\xc3\xa9 au lait</p>\n") &&
		  type_is(&r, "body.html", "text/html"),
	      "alternative/%s: base64 html decoded", v);
	CHECK(r.seen.part[0].n == 1 && !strcmp(r.seen.part[0].name, "body.txt"),
	      "alternative/%s: text first, in message order", v);
	run_done(&r);
	if (crlf)
		free(m2);
	free(msg);
}

static void test_attachments(bool crlf)
{
	static const char qp[] = "caf\xc3\xa9 = softbreak\0end";
	const char *v = crlf ? "crlf" : "lf";
	unsigned char blob[600];
	size_t len, len2, i;
	char *msg = fixture("attachments.eml", &len), *m2;
	struct run r;

	if (!msg)
		return;
	for (i = 0; i < sizeof(blob); i++)
		blob[i] = (unsigned char)i;
	m2 = crlf ? to_crlf(msg, len, &len2) : msg;
	decode_mem(&r, m2, crlf ? len2 : len, 100);
	CHECK(r.ret == 0 && r.seen.count == 12 && r.files == 12,
	      "attachments/%s: twelve parts (%u)", v, r.seen.count);
	if (r.seen.count != 12)
		show(&r);
	CHECK(r.sizes_ok && r.names_ok, "attachments/%s: sizes and names", v);
	CHECK(part_str(&r, "body.txt", "See attached."), "attachments/%s: body",
	      v);
	CHECK(part_is(&r, "na\xc3\xafve file.pdf", blob, sizeof(blob)) &&
		  type_is(&r, "na\xc3\xafve file.pdf", "application/pdf"),
	      "attachments/%s: RFC 2231 filename, base64 byte-exact", v);
	CHECK(part_is(&r,
		      "\xc3\x9c"
		      "bersicht.bin",
		      blob, sizeof(blob)),
	      "attachments/%s: RFC 2047 filename", v);
	CHECK(part_is(&r, "qp.txt", qp, sizeof(qp) - 1),
	      "attachments/%s: quoted-printable byte-exact, NUL kept", v);
	CHECK(part_str(&r, "report.txt", "first report") &&
		  part_str(&r, "report (2).txt", "second report"),
	      "attachments/%s: duplicate filename made unique", v);
	CHECK(part_str(&r, "passwd", "root:x:0:0"),
	      "attachments/%s: ../../etc/passwd stays inside as passwd", v);
	CHECK(part_str(&r, "bashrc", "alias ll='ls -l'"),
	      "attachments/%s: .bashrc loses its dot", v);
	CHECK(part_str(&r, "body (2).txt", "not the body"),
	      "attachments/%s: an attachment cannot take body.txt", v);
	CHECK(part_is(&r, "part10.png", "\x89PNG\r\n\x1a\n", 8) &&
		  type_is(&r, "part10.png", "image/png"),
	      "attachments/%s: unnamed image is part<N>.png", v);
	CHECK(part_str(&r, "part11.txt", "unnamed attachment"),
	      "attachments/%s: unnamed attachment is part<N>.txt", v);
	CHECK(part_str(&r, "part12.txt", "footer"),
	      "attachments/%s: second text body is part<N>.txt", v);
	run_done(&r);

	/* max_parts stops early and is not an error. */
	decode_mem(&r, m2, crlf ? len2 : len, 3);
	CHECK(r.ret == 0 && r.seen.count == 3 && r.files == 3 && r.sizes_ok,
	      "attachments/%s: max_parts 3", v);
	run_done(&r);

	/* The callback's error stops decoding and is returned. */
	decode_stop(&r, m2, crlf ? len2 : len, 100, 2, MFS_E_INVAL);
	CHECK(r.ret == MFS_E_INVAL && r.seen.count == 2 && r.files == 2,
	      "attachments/%s: callback error stops and is returned", v);
	run_done(&r);
	if (crlf)
		free(m2);
	free(msg);
}

static void test_latin1(bool crlf)
{
	const char *v = crlf ? "crlf" : "lf";
	size_t len, len2;
	char *msg = fixture("latin1.eml", &len), *m2;
	struct run r;

	if (!msg)
		return;
	m2 = crlf ? to_crlf(msg, len, &len2) : msg;
	decode_mem(&r, m2, crlf ? len2 : len, 100);
	CHECK(r.ret == 0 && r.seen.count == 2 && r.sizes_ok && r.names_ok,
	      "latin1/%s: two parts", v);
	CHECK(part_str(&r, "body.txt", "Caf\xc3\xa9 cr\xc3\xa8me"),
	      "latin1/%s: ISO-8859-1 body converted to UTF-8", v);
	/* No charset, 8-bit bytes in both Windows-1252 and UTF-8. */
	CHECK(part_str(&r, "body.html",
		       "\xef\xbb\xbf<p>na\xc3\xafve \xe2\x80\x9cquoted"
		       "\xe2\x80\x9d caf\xc3\xa9</p>"),
	      "latin1/%s: undeclared 8-bit html repaired to UTF-8, BOM", v);
	run_done(&r);
	if (crlf)
		free(m2);
	free(msg);
}

/* HTML converted from another charset keeps its <meta charset>; the BOM
 * is what makes a browser read the file as UTF-8 anyway.  One already
 * there is not doubled. */
static void test_html_charset(void)
{
	static const char msg[] =
	    "Content-Type: multipart/alternative; boundary=b\r\n\r\n"
	    "--b\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n"
	    "<meta charset=\"iso-8859-1\"><p>\xe9t\xe9</p>\r\n"
	    "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
	    "\xef\xbb\xbf<p>\xc3\xa9</p>\r\n--b--\r\n";
	struct run r;

	decode_mem(&r, msg, sizeof(msg) - 1, 10);
	CHECK(r.ret == 0 && r.seen.count == 2 && r.sizes_ok && r.names_ok,
	      "html charset: two parts");
	CHECK(part_str(&r, "body.html",
		       "\xef\xbb\xbf<meta charset=\"iso-8859-1\">"
		       "<p>\xc3\xa9t\xc3\xa9</p>"),
	      "html charset: converted, BOM first");
	CHECK(part_str(&r, "part2.html", "\xef\xbb\xbf<p>\xc3\xa9</p>"),
	      "html charset: second html part, BOM not doubled");
	run_done(&r);
}

static void test_nested(bool crlf)
{
	const char *v = crlf ? "crlf" : "lf";
	size_t len, len2, ilen, ilen2;
	char *msg = fixture("nested.eml", &len), *m2;
	char *inner = fixture("nested-inner.eml", &ilen), *i2;
	const char *want = "Inner news _ update.eml";
	struct run r;

	if (!msg || !inner) {
		free(msg);
		free(inner);
		return;
	}
	m2 = crlf ? to_crlf(msg, len, &len2) : msg;
	i2 = crlf ? to_crlf(inner, ilen, &ilen2) : inner;
	decode_mem(&r, m2, crlf ? len2 : len, 100);
	CHECK(r.ret == 0 && r.seen.count == 3 && r.files == 3 && r.sizes_ok &&
		  r.names_ok,
	      "nested/%s: three parts, not descending (%u)", v, r.seen.count);
	if (r.seen.count != 3)
		show(&r);
	CHECK(part_str(&r, "body.txt", "see below"), "nested/%s: body", v);
	CHECK(part_is(&r, want, i2, crlf ? ilen2 : ilen) &&
		  type_is(&r, want, "message/rfc822"),
	      "nested/%s: message/rfc822 as <subject>.eml, raw bytes", v);
	CHECK(find(&r, "Inner news _ update (2).eml") >= 0,
	      "nested/%s: second nested message with the same subject", v);
	CHECK(find(&r, "inner.bin") < 0,
	      "nested/%s: nested attachment not listed", v);
	run_done(&r);
	if (crlf) {
		free(m2);
		free(i2);
	}
	free(msg);
	free(inner);
}

/* ---- malformed input ---------------------------------------------------- */

static void garbage(const char *what, const char *msg, size_t len)
{
	struct run r;

	decode_mem(&r, msg, len, 100);
	CHECK(r.ret == 0 && r.sizes_ok && r.names_ok && r.files == r.seen.count,
	      "garbage %s: no error, %u parts, sizes match", what,
	      r.seen.count);
	run_done(&r);
}

static void test_garbage(void)
{
	static const char *const msgs[][2] = {
	    {"empty", ""},
	    {"headers only", "Subject: x\r\n"},
	    {"no headers", "just some text\r\nand more\r\n"},
	    {"missing boundary param",
	     "Content-Type: multipart/mixed\r\n\r\n--x\r\nhello\r\n"},
	    {"boundary never closed",
	     "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
	     "Content-Type: text/plain\r\n\r\nunterminated"},
	    {"boundary never opened",
	     "Content-Type: multipart/mixed; boundary=b\r\n\r\nno parts\r\n"},
	    {"empty boundary",
	     "Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n"
	     "x\r\n----\r\n"},
	    {"bad base64",
	     "Content-Type: application/pdf; name=a.pdf\r\n"
	     "Content-Transfer-Encoding: base64\r\n\r\n!!!@@@###$$$%%%\r\n"
	     "QUJD====QUJD\r\n=\r\n"},
	    {"bad quoted-printable",
	     "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	     "=ZZ=\r\n=4=\r\n="},
	    {"unknown charset",
	     "Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n"
	     "caf\xe9\r\n"},
	    {"charset lies", "Content-Type: text/plain; charset=utf-8\r\n\r\n"
			     "\xff\xfe\xc3\x28\xe2\x82\xf0\x9f\x98\r\n"},
	    {"stateful charset cut",
	     "Content-Type: text/plain; charset=iso-2022-jp\r\n\r\n"
	     "\x1b$B$3$s\r\n"},
	    {"utf-16 charset",
	     "Content-Type: text/plain; charset=utf-16\r\n\r\n\xff\xfe"
	     "a\0\r\0\n\0\0\xd8"},
	    {"bad content type", "Content-Type: /\r\n\r\nx\r\n"},
	    {"8-bit content type",
	     "Content-Type: t\xffxt/pl\x01in; name=\"\xff/..\"\r\n\r\nx"},
	    {"encoded message/rfc822",
	     "Content-Type: message/rfc822\r\n"
	     "Content-Transfer-Encoding: base64\r\n\r\n"
	     "U3ViamVjdDogaGkNCg0KYm9keQ0K\r\n"},
	    {"empty message/rfc822", "Content-Type: message/rfc822\r\n\r\n"},
	    {"filename only dots",
	     "Content-Disposition: attachment; filename=\"...\"\r\n\r\nx"},
	    {"filename with controls",
	     "Content-Disposition: attachment; filename=\"a\\\x01\tb\"\r\n"
	     "\r\nx"},
	};
	char *big;
	size_t i, n;
	unsigned seed = 12345;

	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
		garbage(msgs[i][0], msgs[i][1], strlen(msgs[i][1]));
	garbage("NUL bytes", "Subject: a\0b\r\n\r\nbo\0dy", 20);

	/* Binary noise. */
	big = malloc(1 << 16);
	for (i = 0; i < (1 << 16); i++) {
		seed = seed * 1103515245 + 12345;
		big[i] = (char)(seed >> 16);
	}
	garbage("random bytes", big, 1 << 16);

	/* A 60 KB header line. */
	memcpy(big, "Subject: ", 9);
	memset(big + 9, 'x', 60000);
	memcpy(big + 60009, "\r\n\r\nbody", 8);
	garbage("huge header line", big, 60017);
	free(big);

	/* Multiparts nested far deeper than anything real. */
	n = 0;
	big = malloc(4000 * 60 + 100);
	for (i = 0; i < 4000; i++)
		n += (size_t)snprintf(big + n, 64,
				      "Content-Type: multipart/mixed; "
				      "boundary=b%zu\r\n\r\n--b%zu\r\n",
				      i, i);
	n += (size_t)snprintf(big + n, 64, "\r\ndeep\r\n");
	garbage("4000 nested multiparts", big, n);

	/* Thousands of empty parts with one name: max_parts and uniqueness. */
	n = (size_t)snprintf(
	    big, 64, "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
	for (i = 0; i < 3000; i++)
		n += (size_t)snprintf(big + n, 80,
				      "--b\r\nContent-Disposition: attachment; "
				      "filename=same\r\n\r\n\r\n");
	{
		struct run r;

		decode_mem(&r, big, n, 40);
		CHECK(r.ret == 0 && r.seen.count == 40 && r.files == 40 &&
			  r.sizes_ok && r.names_ok &&
			  !strcmp(r.seen.part[39].name, "same (40)"),
		      "garbage many same names: 40 unique names, then stop");
		run_done(&r);
	}
	free(big);
}

static void test_errors(void)
{
	struct mfs_error err = {0};
	struct seen seen = {.in_order = true};
	char dir[256], path[300];
	int fd, out, ret;

	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/in", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (write(fd, "Subject: x\r\n\r\nbody\r\n", 20) != 20)
		perror("write");

	/* A part that cannot be written is an error, not a short file. */
	out = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ret = mime_decode(fd, 1, out, 10, record, &seen, &err);
	CHECK(ret == MFS_E_IO && err.code == MFS_E_IO && err.msg[0] &&
		  seen.count == 0,
	      "error: unwritable output is MFS_E_IO (%s)", err.msg);
	close(out);

	memset(&err, 0, sizeof(err));
	ret = mime_decode(-1, 0, -1, 10, record, &seen, &err);
	CHECK(ret == MFS_E_IO, "error: bad fd is MFS_E_IO (%s)", err.msg);

	/* A NULL callback and NULL err are allowed; asking for a part the
	 * message does not have writes nothing (body.txt is "body\n"). */
	snprintf(path, sizeof(path), "%s/1", dir);
	out = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ret = mime_decode(fd, 1, out, 10, NULL, NULL, NULL);
	CHECK(ret == 0 && lseek(out, 0, SEEK_END) == 5,
	      "decode without callback or err writes body.txt");
	ret = mime_decode(fd, 2, out, 10, NULL, NULL, NULL);
	CHECK(ret == 0 && lseek(out, 0, SEEK_END) == 5,
	      "no part 2: nothing written");
	close(out);
	unlink(path);
	close(fd);
	snprintf(path, sizeof(path), "%s/in", dir);
	unlink(path);
	rmdir(dir);
}

/* ---- optional corpus ---------------------------------------------------- */

struct corpus {
	unsigned messages, failed;
};

static void corpus_file(struct corpus *c, const char *path)
{
	struct run r;
	size_t len;
	char *msg = slurp(path, &len);

	if (!msg)
		return;
	decode_mem(&r, msg, len, 1000);
	c->messages++;
	if (r.ret != 0 || !r.sizes_ok || !r.names_ok ||
	    r.files != r.seen.count || r.seen.count > MAX_SEEN) {
		c->failed++;
		printf("    %s: ret %d (%s) parts %u files %u sizes %d names "
		       "%d\n",
		       path, r.ret, r.err.msg, r.seen.count, r.files,
		       r.sizes_ok, r.names_ok);
	}
	run_done(&r);
	free(msg);
}

static void corpus_dir(struct corpus *c, const char *dir, int depth)
{
	char path[4096];
	struct dirent *e;
	struct stat st;
	DIR *d;

	d = opendir(dir);
	if (!d || depth > 16) {
		if (d)
			closedir(d);
		return;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode))
			corpus_dir(c, path, depth + 1);
		else if (S_ISREG(st.st_mode))
			corpus_file(c, path);
	}
	closedir(d);
}

static void test_corpus(const char *dir)
{
	struct corpus c = {0};
	struct stat st;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return;
	corpus_dir(&c, dir, 0);
	CHECK(c.messages > 0 && c.failed == 0,
	      "corpus %s: %u messages decoded, %u failed", dir, c.messages,
	      c.failed);
}

int main(int argc, char **argv)
{
	int crlf;

	mime_init();
	if (argc >= 2 && !strcmp(argv[1], "corpus")) {
		test_corpus(argc >= 3 ? argv[2] : "../shared/corpus/notmuch");
		goto out;
	}
	test_summary();
	test_summary_threads();
	for (crlf = 0; crlf <= 1; crlf++) {
		test_simple(crlf);
		test_alternative(crlf);
		test_attachments(crlf);
		test_latin1(crlf);
		test_nested(crlf);
	}
	test_html_charset();
	test_garbage();
	test_errors();
out:
	mime_shutdown();
	return check_done();
}
