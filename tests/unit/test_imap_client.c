/* test_imap_client.c - the command layer (imap/client.c) against scripted
 * server bytes, through conn_new_fake: the responses a server should not
 * send, and the ones it should not send for ever.
 *
 * A script answers each command the client sends with its next string
 * ("$T" becomes the command's tag); when the script is out of answers the
 * stream ends.  An endless answer is a generator instead: it repeats one
 * line until the client stops reading (and counts what it gave).
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../imap/conn.h"
#include "check.h"
#include "imap.h"

struct script {
	const char *const *answers;
	size_t next;
	char out[1 << 16];
	size_t len, pos;
	/* Endless mode: after the answers, line repeated for ever. */
	const char *endless;
	uint64_t endless_bytes;
	char sent[4096];	/* the last command line */
};

static int s_send(void *ctx, const char *buf, size_t len)
{
	struct script *s = ctx;
	const char *sp = memchr(buf, ' ', len);
	const char *a, *t;
	size_t taglen = sp ? (size_t)(sp - buf) : 0;

	snprintf(s->sent, sizeof(s->sent), "%.*s", (int)len, buf);
	if (!sp || !s->answers || !(a = s->answers[s->next]))
		return 0;
	s->next++;
	/* Compact what was read, then append the answer. */
	memmove(s->out, s->out + s->pos, s->len - s->pos);
	s->len -= s->pos;
	s->pos = 0;
	while ((t = strstr(a, "$T"))) {
		memcpy(s->out + s->len, a, (size_t)(t - a));
		s->len += (size_t)(t - a);
		memcpy(s->out + s->len, buf, taglen);
		s->len += taglen;
		a = t + 2;
	}
	memcpy(s->out + s->len, a, strlen(a));
	s->len += strlen(a);
	return 0;
}

static int s_recv(void *ctx, char *buf, size_t len, size_t *n)
{
	struct script *s = ctx;

	if (s->pos == s->len && s->endless) {
		size_t l = strlen(s->endless);

		*n = 0;
		while (*n + l <= len) {
			memcpy(buf + *n, s->endless, l);
			*n += l;
		}
		s->endless_bytes += *n;
		return 0;
	}
	*n = s->len - s->pos < len ? s->len - s->pos : len;
	memcpy(buf, s->out + s->pos, *n);
	s->pos += *n;
	return 0;
}

static struct imap_conn *conn_for(struct script *s, struct conn_io *io,
				  unsigned caps)
{
	io->recv = s_recv;
	io->send = s_send;
	io->ctx = s;
	return conn_new_fake(io, caps);
}

struct changes {
	unsigned msgs, ranges;
};

static int count_msg(void *ctx, const struct imap_msginfo *mi)
{
	(void)mi;
	((struct changes *)ctx)->msgs++;
	return 0;
}

static int count_range(void *ctx, uint32_t lo, uint32_t hi)
{
	(void)lo;
	(void)hi;
	((struct changes *)ctx)->ranges++;
	return 0;
}

/* A VANISHED response the client did not ask for (no QRESYNC): ignored,
 * as RFC 7162 says only a client that enabled QRESYNC gets them. */
static void test_vanished_unasked(void)
{
	static const char *const answers[] = {
		"* VANISHED (EARLIER) 1:3\r\n"
		"* 4 FETCH (UID 4 FLAGS (\\Seen) MODSEQ (10))\r\n"
		"$T OK done\r\n",
		"$T OK done\r\n",
		NULL,
	};
	struct script s = { .answers = answers };
	struct conn_io io;
	struct mfs_error err = { 0 };
	struct changes ch = { 0 };
	struct imap_conn *c = conn_for(&s, &io, IMAP_CAP_CONDSTORE);
	int rc;

	rc = imap_fetch_changes(c, "1:10", 5, count_msg, NULL, &ch, &err);
	CHECK(rc == 0 && ch.msgs == 1,
	      "fetch_changes without QRESYNC: an unasked VANISHED is ignored "
	      "(rc %d, %u flag changes)", rc, ch.msgs);
	CHECK(imap_noop(c, &err) == 0,
	      "... and the connection stays in step for the next command");
	imap_close(c);
	(void)count_range;
}

static int count_mailbox(void *ctx, const struct imap_mailbox *mb)
{
	(void)mb;
	++*(unsigned *)ctx;
	return 0;
}

/* LIST that never completes: given up after a bounded number of
 * mailboxes, none of them handed on, the connection dropped. */
static void test_endless_list(void)
{
	static const char *const answers[] = { "", NULL };
	struct script s = { .answers = answers,
			    .endless = "* LIST () \"/\" \"junk\"\r\n" };
	struct conn_io io;
	struct mfs_error err = { 0 };
	struct imap_conn *c = conn_for(&s, &io, 0);
	unsigned n = 0;
	int rc;

	rc = imap_list(c, count_mailbox, &n, &err);
	CHECK(rc == MFS_E_TOOBIG && n == 0,
	      "endless LIST: MFS_E_TOOBIG, no mailbox handed on (rc %d, %u; %s)",
	      rc, n, err.msg);
	CHECK(s.endless_bytes < (16u << 20),
	      "endless LIST: given up after %llu bytes (< 16 MB)",
	      (unsigned long long)s.endless_bytes);
	CHECK(!imap_usable(c), "endless LIST: the connection is dropped");
	imap_close(c);
}

/* Any command: untagged responses for ever. */
static void test_endless_untagged(void)
{
	static const char *const answers[] = { "", NULL };
	struct script s = { .answers = answers, .endless = "* 1 EXISTS\r\n" };
	struct conn_io io;
	struct mfs_error err = { 0 };
	struct imap_conn *c = conn_for(&s, &io, 0);
	int rc;

	c->max_untagged = 1000;
	rc = imap_noop(c, &err);
	CHECK(rc == MFS_E_TOOBIG && !imap_usable(c),
	      "endless untagged responses: MFS_E_TOOBIG after the cap, "
	      "connection dropped (rc %d; %s)", rc, err.msg);
	CHECK(s.endless_bytes < 1000 * 12 + (1u << 16) * 2,
	      "endless untagged responses: read no further than the cap "
	      "(%llu bytes)", (unsigned long long)s.endless_bytes);
	imap_close(c);
}

struct bodies {
	unsigned calls;
	int fds[4];
	unsigned nfds;
};

static int body_tmp(void *ctx)
{
	struct bodies *b = ctx;
	int fd = memfd_create("test-body", MFD_CLOEXEC);

	if (fd >= 0 && b->nfds < 4)
		b->fds[b->nfds++] = dup(fd);
	return fd;
}

static int body_got(void *ctx, uint32_t uid, int fd, uint64_t len)
{
	(void)uid;
	(void)len;
	close(fd);
	((struct bodies *)ctx)->calls++;
	return 0;
}

/* A body literal longer than the caller allows: refused when the limit
 * is reached, nothing past it written. */
static void test_body_over(void)
{
	static const char *const answers[] = {
		"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n$T OK done\r\n",
		"* 1 FETCH (UID 5 BODY[] {5000000}\r\n",
		NULL,
	};
	struct script s = { .answers = answers, .endless = "xxxxxxxxxx" };
	struct conn_io io;
	struct mfs_error err = { 0 };
	struct bodies b = { 0 };
	struct imap_conn *c = conn_for(&s, &io, 0);
	uint32_t uid = 5;
	off_t written = -1;
	int rc;

	rc = imap_fetch_bodies(c, "INBOX", 7, &uid, 1, 100000, body_tmp,
			       body_got, &b, &err);
	if (b.nfds > 0)
		written = lseek(b.fds[0], 0, SEEK_END);
	CHECK(rc == MFS_E_TOOBIG && b.calls == 0 && !imap_usable(c),
	      "body over max_len: MFS_E_TOOBIG, no body handed on, "
	      "connection dropped (rc %d, %u; %s)", rc, b.calls, err.msg);
	CHECK(written <= 100000, "body over max_len: at most max_len bytes "
	      "written (%lld)", (long long)written);
	CHECK(s.endless_bytes < (1u << 20), "body over max_len: read no "
	      "further (%llu bytes)", (unsigned long long)s.endless_bytes);
	for (unsigned i = 0; i < b.nfds; i++)
		close(b.fds[i]);
	imap_close(c);
}

/* A server that, as Courier does, refuses an APPEND to the mailbox the
 * same connection has open read-only (EXAMINE): "NO Current box is
 * selected READ-ONLY".  It follows the selection from the commands and
 * skips the literal of an APPEND (LITERAL+: no continuation). */
struct ro_server {
	char out[4096];
	size_t len, pos;
	char sel[64];
	bool ro;
	uint64_t literal;	/* literal bytes still to come */
	char tag[16];
	bool refuse;		/* the APPEND waiting for its literal */
	unsigned appends, refused;
};

static void ro_say(struct ro_server *r, const char *fmt, const char *tag)
{
	int n = snprintf(r->out + r->len, sizeof(r->out) - r->len, fmt, tag);

	if (n > 0 && (size_t)n < sizeof(r->out) - r->len)
		r->len += (size_t)n;
}

/* The quoted mailbox name after the verb, into out. */
static void ro_name(const char *p, char *out, size_t cap)
{
	size_t n = 0;

	p = strchr(p, '"');
	if (p)
		for (p++; *p && *p != '"' && n + 1 < cap; p++)
			out[n++] = *p;
	out[n] = '\0';
}

static int ro_send(void *ctx, const char *buf, size_t len)
{
	struct ro_server *r = ctx;
	char line[512], verb[16] = "", *sp;

	if (r->literal) {
		r->literal -= len < r->literal ? len : r->literal;
		if (!r->literal) {
			r->appends++;
			r->refused += r->refuse;
			ro_say(r, r->refuse ? "%s NO Current box is selected "
			       "READ-ONLY.\r\n" : "%s OK APPEND completed\r\n",
			       r->tag);
		}
		return 0;
	}
	if (len < 2 || buf[len - 1] != '\n')
		return 0;	/* the CRLF after a literal */
	snprintf(line, sizeof(line), "%.*s", (int)len, buf);
	sp = strchr(line, ' ');
	if (!sp)
		return 0;
	*sp = '\0';
	snprintf(r->tag, sizeof(r->tag), "%.15s", line);
	sscanf(sp + 1, "%15s", verb);
	if (strcmp(verb, "EXAMINE") == 0 || strcmp(verb, "SELECT") == 0) {
		ro_name(sp + 1, r->sel, sizeof(r->sel));
		r->ro = verb[0] == 'E';
		ro_say(r, "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n"
		       "%s OK done\r\n", r->tag);
	} else if (strcmp(verb, "CLOSE") == 0 ||
		   strcmp(verb, "UNSELECT") == 0) {
		r->sel[0] = '\0';
		ro_say(r, "%s OK done\r\n", r->tag);
	} else if (strcmp(verb, "APPEND") == 0) {
		char box[64];
		const char *lit = strrchr(line + strlen(line) + 1, '{');

		ro_name(sp + 1, box, sizeof(box));
		r->refuse = r->ro && strcmp(box, r->sel) == 0;
		r->literal = lit ? strtoull(lit + 1, NULL, 10) : 0;
	} else {
		ro_say(r, "%s OK done\r\n", r->tag);
	}
	return 0;
}

static int ro_recv(void *ctx, char *buf, size_t len, size_t *n)
{
	struct ro_server *r = ctx;

	*n = r->len - r->pos < len ? r->len - r->pos : len;
	memcpy(buf, r->out + r->pos, *n);
	r->pos += *n;
	if (r->pos == r->len)
		r->pos = r->len = 0;
	return 0;
}

/* APPEND to the mailbox this connection has EXAMINEd: the connection
 * leaves the read-only selection first, so Courier takes it; another
 * mailbox's selection stays as it was. */
static void test_append_examined(void)
{
	static const char msg[] = "Subject: x\r\n\r\nbody\r\n";
	struct ro_server r = { 0 };
	struct conn_io io = { ro_recv, ro_send, &r };
	struct mfs_error err = { 0 };
	struct imap_conn *c = conn_new_fake(&io, IMAP_CAP_LITERALPLUS);
	int rc;

	rc = imap_examine(c, "INBOX.Archive", NULL, &err);
	if (rc == 0)
		rc = imap_append(c, "INBOX.Archive", "\\Seen", 0, msg,
				 sizeof(msg) - 1, &err);
	CHECK(rc == 0 && r.appends == 1 && r.refused == 0,
	      "APPEND to the EXAMINEd mailbox: not refused as READ-ONLY "
	      "(rc %d, %u appends, %u refused; %s)", rc, r.appends,
	      r.refused, err.msg);
	rc = imap_examine(c, "INBOX", NULL, &err);
	if (rc == 0)
		rc = imap_append(c, "INBOX.Archive", NULL, 0, msg,
				 sizeof(msg) - 1, &err);
	CHECK(rc == 0 && r.refused == 0 && strcmp(r.sel, "INBOX") == 0 &&
	      imap_is_selected(c, "INBOX"),
	      "APPEND to another mailbox keeps the selection (rc %d, "
	      "selected \"%s\")", rc, r.sel);
	imap_close(c);
}

/* NAMESPACE answers as servers give them, and ones they should not. */
static void test_namespace(void)
{
	static const struct {
		const char *answer;
		int rc;
		const char *prefix;
		char delim;
	} cases[] = {
		{ "* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL\r\n$T OK\r\n", 0,
		  "INBOX.", '.' },
		{ "* NAMESPACE ((\"\" \"/\")) ((\"shared/\" \"/\")) NIL\r\n"
		  "$T OK\r\n", 0, "", '/' },
		{ "* NAMESPACE ((\"\" \"/\" \"X-PARAM\" (\"A\" \"B\"))"
		  "(\"#mh/\" \"/\")) NIL NIL\r\n$T OK\r\n", 0, "", '/' },
		{ "* NAMESPACE ((\"INBOX\" NIL)) NIL NIL\r\n$T OK\r\n", 0,
		  "INBOX", '\0' },
		{ "* NAMESPACE NIL NIL ((\"\" \".\"))\r\n$T OK\r\n", 0, "", 0 },
		{ "* NAMESPACE ((\"INBOX.\" \"..\")) NIL NIL\r\n$T OK\r\n",
		  MFS_E_PROTO, "", 0 },
		{ "* NAMESPACE (\"INBOX.\" \".\") NIL NIL\r\n$T OK\r\n",
		  MFS_E_PROTO, "", 0 },
		{ "* NAMESPACE ((INBOX \".\")) NIL NIL\r\n$T OK\r\n",
		  MFS_E_PROTO, "", 0 },
		{ "$T BAD unknown command\r\n", MFS_E_BAD, "", 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *answers[] = { cases[i].answer, NULL };
		struct script s = { .answers = answers };
		struct conn_io io;
		struct mfs_error err = { 0 };
		struct imap_conn *c = conn_for(&s, &io, IMAP_CAP_NAMESPACE);
		char prefix[IMAP_NS_PREFIX_MAX] = "junk", delim = 'x';
		int rc = imap_namespace(c, prefix, &delim, &err);

		CHECK(rc == cases[i].rc && (rc < 0 ||
		      (strcmp(prefix, cases[i].prefix) == 0 &&
		       delim == cases[i].delim)),
		      "NAMESPACE answer %zu: rc %d (want %d), prefix \"%s\" "
		      "delim %d", i, rc, cases[i].rc, prefix, delim);
		imap_close(c);
	}
	{
		struct script s = { 0 };
		struct conn_io io;
		struct imap_conn *c = conn_for(&s, &io, 0);
		char prefix[IMAP_NS_PREFIX_MAX] = "junk", delim = 'x';

		CHECK(imap_namespace(c, prefix, &delim, NULL) == 0 &&
		      !prefix[0] && !delim && !s.sent[0],
		      "no NAMESPACE capability: no command, empty answer");
		imap_close(c);
	}
}

int main(void)
{
	test_vanished_unasked();
	test_endless_list();
	test_endless_untagged();
	test_body_over();
	test_append_examined();
	test_namespace();
	return check_done();
}
