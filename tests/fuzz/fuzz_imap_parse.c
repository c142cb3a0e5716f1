/* fuzz_imap_parse.c - libFuzzer target for the IMAP parser and UTF-7 codec.
 *
 * The input is a server byte stream.  It is parsed twice, once fed whole
 * and once in chunks of varying size, and the two runs must agree on
 * every response, the error and the bytes given to the sink: the parser
 * promises that chunking makes no difference.  A small max_inline pushes
 * most literals through the sink, a small max_total reaches the caps.
 * The same bytes, as a C string, go through the UTF-7 codec, which must
 * round-trip whatever it accepts, and through the UID-set walker.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"
#include "mfs_err.h"

#define MAX_INLINE 8
#define MAX_TOTAL  4096

struct sink {
	char *buf;
	size_t len, cap;
};

static int sink_fn(void *ctx, const char *buf, size_t len)
{
	struct sink *s = ctx;

	/* the sink never sees more than the input holds */
	if (len > s->cap - s->len)
		__builtin_trap();
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
	return 0;
}

struct run {
	struct imap_resp **r;
	size_t n;
	int err;
	size_t used;
	struct sink sink;
};

static bool value_eq(const struct imap_value *a, const struct imap_value *b)
{
	size_t i;

	if (a->type != b->type || a->len != b->len || a->n != b->n)
		return false;
	switch (a->type) {
	case IMAP_V_ATOM:
	case IMAP_V_STRING:
		if (!a->str || !b->str || a->str[a->len] || b->str[b->len])
			return false;
		return !memcmp(a->str, b->str, a->len);
	case IMAP_V_SUNK:
		return a->off == b->off;
	case IMAP_V_LIST:
		for (i = 0; i < a->n; i++)
			if (!value_eq(&a->items[i], &b->items[i]))
				return false;
		return true;
	case IMAP_V_NIL:
		return true;
	}
	return false;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool resp_eq(const struct imap_resp *a, const struct imap_resp *b)
{
	return a->kind == b->kind && a->status == b->status &&
	       str_eq(a->tag, b->tag) && str_eq(a->text, b->text) &&
	       value_eq(&a->code, &b->code) && value_eq(&a->data, &b->data);
}

/* Touch what a client would look at, so ASan sees any bad pointer. */
static void poke(const struct imap_resp *r)
{
	const struct imap_value *att;
	uint64_t n;
	size_t i;

	imap_value_u64(imap_list_get(&r->data, 0), &n);
	imap_atom_is(imap_list_get(&r->data, 1), "FETCH");
	att = imap_list_get(&r->data, 2);
	imap_value_u64(imap_fetch_item(att, "UID"), &n);
	imap_fetch_item(att, "BODY[]");
	for (i = 0; i < r->code.n; i++)
		imap_value_u64(imap_list_get(&r->code, i), &n);
}

/* Next chunk size: a cheap generator seeded from the input so every
 * input always gets the same split, mixing single bytes and big runs. */
static size_t next_chunk(uint32_t *state)
{
	static const size_t sizes[] = {1, 1, 2, 3, 5, 8, 13, 64, 4096};

	*state = *state * 1103515245u + 12345u;
	return sizes[(*state >> 16) % (sizeof(sizes) / sizeof(sizes[0]))];
}

static void run(const uint8_t *data, size_t size, bool chunked, struct run *out)
{
	struct imap_parser *p = imap_parser_new(MAX_INLINE, MAX_TOTAL);
	struct imap_resp *r;
	uint32_t state = 0;
	size_t pos = 0, want, n, i;
	ssize_t got;

	memset(out, 0, sizeof(*out));
	out->r = calloc(size + 1, sizeof(*out->r));
	out->sink.buf = malloc(size + 1);
	out->sink.cap = size;
	if (!p || !out->r || !out->sink.buf)
		__builtin_trap();
	imap_parser_set_sink(p, sink_fn, &out->sink);
	for (i = 0; i < size && i < 16; i++)
		state = state * 31 + data[i];

	while (pos < size) {
		want = size - pos;
		n = next_chunk(&state);
		if (chunked && n < want)
			want = n;
		got = imap_parser_feed(p, (const char *)data + pos, want, &r);
		if (got < 0) {
			out->err = (int)got;
			if (r || imap_parser_feed(p, "*", 1, &r) != got || r)
				__builtin_trap();
			break;
		}
		if ((size_t)got > want || (!r && (size_t)got != want))
			__builtin_trap();
		pos += got;
		if (r) {
			poke(r);
			out->r[out->n++] = r;
		}
	}
	/* an error's offset is not reported, so compare only clean runs */
	out->used = out->err ? 0 : pos;
	imap_parser_free(p);
}

static void run_free(struct run *x)
{
	size_t i;

	for (i = 0; i < x->n; i++)
		imap_resp_free(x->r[i]);
	free(x->r);
	free(x->sink.buf);
}

static void fuzz_utf7(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1), *a = NULL, *b = NULL, *c = NULL;

	if (!in)
		__builtin_trap();
	memcpy(in, data, size);
	in[size] = '\0';

	/* accepted modified UTF-7 is canonical: it re-encodes to itself */
	if (imap_utf7_decode(in, &a) == 0) {
		if (imap_utf7_encode(a, &b) != 0 || strcmp(b, in) != 0)
			__builtin_trap();
	} else if (a) {
		__builtin_trap();
	}
	free(b);
	b = NULL;

	/* accepted UTF-8 comes back unchanged */
	if (imap_utf7_encode(in, &b) == 0) {
		if (imap_utf7_decode(b, &c) != 0 || strcmp(c, in) != 0)
			__builtin_trap();
	} else if (b) {
		__builtin_trap();
	}
	free(a);
	free(b);
	free(c);
	free(in);
}

static int check_range(void *ctx, uint32_t lo, uint32_t hi)
{
	unsigned *n = ctx;

	if (lo == 0 || lo > hi)
		__builtin_trap();
	return ++*n < 1000 ? 0 : MFS_E_TOOBIG;
}

/* The same bytes as a VANISHED / COPYUID UID set: ranges come out
 * ordered and non-zero, or the set is refused. */
static void fuzz_uidset(const uint8_t *data, size_t size)
{
	char *in = strndup((const char *)data, size);
	unsigned n = 0;
	int rc;

	if (!in)
		__builtin_trap();
	rc = imap_uidset_each(in, check_range, &n);
	if (rc != 0 && rc != MFS_E_PROTO && rc != MFS_E_TOOBIG)
		__builtin_trap();
	free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, parts;
	size_t i;

	run(data, size, false, &whole);
	run(data, size, true, &parts);
	if (whole.n != parts.n || whole.err != parts.err ||
	    whole.used != parts.used || whole.sink.len != parts.sink.len ||
	    memcmp(whole.sink.buf, parts.sink.buf, whole.sink.len) != 0)
		__builtin_trap();
	for (i = 0; i < whole.n; i++)
		if (!resp_eq(whole.r[i], parts.r[i]))
			__builtin_trap();
	run_free(&whole);
	run_free(&parts);

	fuzz_utf7(data, size);
	fuzz_uidset(data, size);
	return 0;
}
