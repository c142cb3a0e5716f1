/* fuzz_imap_client.c - libFuzzer target for the IMAP command layer: the
 * real response handlers of imap/client.c (and mailbox.c's COPYUID) fed
 * arbitrary server bytes through a scripted stream (conn_new_fake).
 *
 * Input: one byte choosing the server's capabilities, then the server's
 * answers, one chunk per command the client sends, chunks separated by
 * "@@\n".  "$T" in a chunk becomes the command's tag; a chunk without
 * one gets "<tag> OK done" appended, so the untagged responses reach the
 * handlers and the command completes.  When the input runs out the
 * stream ends (the connection is lost).  The commands, in order: LIST,
 * EXAMINE, UID FETCH of metadata (FLAGS, RFC822.SIZE, INTERNALDATE,
 * header fields), ENABLE QRESYNC, UID FETCH CHANGEDSINCE (VANISHED), UID
 * SEARCH (and a metadata FETCH of what it found), SELECT and UID MOVE or
 * COPY (COPYUID), UID FETCH of bodies, NOOP.  Besides crashes and leaks,
 * a result that breaks the API's promises (a UID 0, a range with lo >
 * hi, a body longer than the limit asked for) is a finding (abort()).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../imap/conn.h"
#include "imap.h"

#define SEP "@@\n"
#define MAX_BODY 100

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fake {
	const char *in;
	size_t left;
	char *out;
	size_t out_len, out_pos, out_cap;
	int devnull;
};

static void out_add(struct fake *f, const char *s, size_t n)
{
	if (n == 0)
		return;
	if (f->out_len + n > f->out_cap) {
		size_t cap = (f->out_len + n) * 2 + 64;
		char *p = realloc(f->out, cap);

		if (!p)
			abort();
		f->out = p;
		f->out_cap = cap;
	}
	memcpy(f->out + f->out_len, s, n);
	f->out_len += n;
}

/* The next chunk of the input answers the command in buf. */
static int fake_send(void *ctx, const char *buf, size_t len)
{
	struct fake *f = ctx;
	const char *sp = memchr(buf, ' ', len), *end, *p;
	size_t n, taglen = sp ? (size_t)(sp - buf) : 0;
	bool tagged = false;

	if (!sp || !f->in)
		return 0;
	end = f->in ? memmem(f->in, f->left, SEP, strlen(SEP)) : NULL;
	n = end ? (size_t)(end - f->in) : f->left;
	for (p = f->in; p < f->in + n;) {
		const char *t = memmem(p, (size_t)(f->in + n - p), "$T", 2);

		if (!t) {
			out_add(f, p, (size_t)(f->in + n - p));
			break;
		}
		out_add(f, p, (size_t)(t - p));
		out_add(f, buf, taglen);
		tagged = true;
		p = t + 2;
	}
	if (!tagged) {
		out_add(f, buf, taglen);
		out_add(f, " OK done\r\n", 10);
	}
	if (end) {
		f->in = end + strlen(SEP);
		f->left -= n + strlen(SEP);
	} else {
		f->in = NULL;	/* the last chunk: the stream ends after it */
		f->left = 0;
	}
	return 0;
}

static int fake_recv(void *ctx, char *buf, size_t len, size_t *n)
{
	struct fake *f = ctx;
	size_t k = f->out_len - f->out_pos;

	/* Small reads, so responses cross read boundaries too. */
	if (k > len)
		k = len;
	if (k > 977)
		k = 977;
	if (k)
		memcpy(buf, f->out + f->out_pos, k);
	f->out_pos += k;
	*n = k;
	return 0;
}

static int on_mailbox(void *ctx, const struct imap_mailbox *mb)
{
	(void)ctx;
	if (!mb->name || strlen(mb->name) > (1u << 20))
		abort();
	return 0;
}

static int on_msg(void *ctx, const struct imap_msginfo *mi)
{
	unsigned sum = 0;

	if (mi->uid == 0 || !mi->flags)
		abort();
	sum += (unsigned)strlen(mi->flags);
	for (size_t i = 0; mi->header && i < mi->header_len; i++)
		sum += (unsigned char)mi->header[i];
	*(unsigned *)ctx += sum;
	return 0;
}

static int on_vanished(void *ctx, uint32_t lo, uint32_t hi)
{
	(void)ctx;
	if (lo == 0 || lo > hi)
		abort();
	return 0;
}

static int tmp_fn(void *ctx)
{
	struct fake *f = ctx;

	return fcntl(f->devnull, F_DUPFD_CLOEXEC, 0);
}

static int body_fn(void *ctx, uint32_t uid, int fd, uint64_t len)
{
	(void)ctx;
	close(fd);
	if (uid == 0 || len > MAX_BODY)
		abort();
	return 0;
}

static const unsigned cap_choices[] = {
	IMAP_CAP_LIST_STATUS, IMAP_CAP_SPECIAL_USE, IMAP_CAP_CONDSTORE,
	IMAP_CAP_QRESYNC | IMAP_CAP_ENABLE, IMAP_CAP_MOVE, IMAP_CAP_UIDPLUS,
	IMAP_CAP_LITERALPLUS, IMAP_CAP_NAMESPACE | IMAP_CAP_UNSELECT,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fake f = { 0 };
	struct conn_io io = { fake_recv, fake_send, &f };
	struct mfs_error err = { 0 };
	struct imap_mbstate st = { 0 };
	struct imap_conn *c;
	uint32_t uids[3] = { 1, 2, 3 }, new_uid = 0;
	unsigned caps = 0, sum = 0;
	bool found = false;

	if (size < 1)
		return 0;
	for (size_t i = 0; i < sizeof(cap_choices) / sizeof(*cap_choices); i++)
		if (data[0] & (1u << i))
			caps |= cap_choices[i];
	f.in = (const char *)data + 1;
	f.left = size - 1;
	f.devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	c = conn_new_fake(&io, caps);
	if (!c || f.devnull < 0)
		abort();

	{
		char prefix[IMAP_NS_PREFIX_MAX], delim;

		if (imap_namespace(c, prefix, &delim, &err) == 0 &&
		    strnlen(prefix, sizeof(prefix)) == sizeof(prefix))
			abort();
	}
	imap_list(c, on_mailbox, NULL, &err);
	imap_examine(c, "INBOX", &st, &err);
	imap_append(c, "INBOX", NULL, 0, "a: b\r\n\r\nc\r\n", 11, &err);
	imap_fetch_meta(c, "1:*", true, on_msg, &sum, &err);
	if (imap_enable_qresync(c, &err) == 0)
		imap_fetch_changes(c, "1:100", 5, on_msg, on_vanished, &sum,
				   &err);
	else
		imap_fetch_changes(c, "1:100", 5, on_msg, NULL, &sum, &err);
	imap_has_message(c, "INBOX", "id@example.org", 100, &found, &err);
	imap_move(c, "INBOX", c->st.uidvalidity, "1", "Trash", &new_uid,
		  &err);
	{
		uint32_t found_uids[4];
		size_t nfound;

		imap_search_size(c, "INBOX", 100, found_uids, 4, &nfound,
				 &err);
	}
	imap_fetch_bodies(c, "INBOX", c->st.uidvalidity, uids, 3, MAX_BODY,
			  tmp_fn, body_fn, &f, &err);
	imap_noop(c, &err);

	imap_close(c);
	close(f.devnull);
	free(f.out);
	return 0;
}
