/* fuzz_bodystructure.c - libFuzzer target for imap_bs_parse.
 *
 * The input is what a server sends after "* 1 FETCH (BODYSTRUCTURE ", the
 * rest of the response included; it goes through the real parser, and
 * every list in the response (the BODYSTRUCTURE value first) is read as a
 * body structure.  What is read must keep the promises of
 * imap_bodystructure.h: at most IMAP_BS_MAX_PARTS parts, a tree in
 * pre-order (each parent before its children, one level up), depths and
 * parameter counts within their bounds, sections NUL-terminated within
 * their buffer and extending their parent's, every string readable.
 * A broken promise is an abort(), so libFuzzer reports it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_bodystructure.h"
#include "imap_parse.h"
#include "mfs_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char PREFIX[] = "* 1 FETCH (BODYSTRUCTURE ";

static size_t sum;	/* keeps the string reads from being optimised out */

static void touch(const char *s)
{
	if (s)
		sum += strlen(s);
}

static void touch_params(const struct imap_bs_params *ps)
{
	if (ps->n > IMAP_BS_MAX_PARAMS || (ps->n && !ps->p))
		abort();
	for (size_t i = 0; i < ps->n; i++) {
		if (!ps->p[i].name)
			abort();
		touch(ps->p[i].name);
		touch(ps->p[i].value);
	}
}

static void check(const struct imap_value *v)
{
	struct imap_bs *bs = NULL;
	int rc = imap_bs_parse(v, &bs);

	if (rc != 0) {
		if (bs || (rc != MFS_E_PROTO && rc != MFS_E_TOOBIG &&
			   rc != MFS_E_NOMEM))
			abort();
		return;
	}
	if (!bs || bs->n == 0 || bs->n > IMAP_BS_MAX_PARTS)
		abort();
	for (size_t i = 0; i < bs->n; i++) {
		const struct imap_bs_part *p = &bs->parts[i];
		size_t len = strnlen(p->section, sizeof(p->section));

		if (len == sizeof(p->section) || p->depth >= IMAP_BS_MAX_DEPTH)
			abort();
		if (i == 0 ? p->parent != -1 || p->depth != 0 :
			     p->parent < 0 || (size_t)p->parent >= i ||
				     p->depth != bs->parts[p->parent].depth + 1)
			abort();
		if (i > 0) {
			const char *up = bs->parts[p->parent].section;

			if (strncmp(p->section, up, strlen(up)))
				abort();
		}
		if (!p->type || (!p->multipart && !p->subtype))
			abort();
		touch(p->type);
		touch(p->subtype);
		touch(p->id);
		touch(p->description);
		touch(p->encoding);
		touch(p->subject);
		touch(p->md5);
		touch(p->disposition);
		touch_params(&p->params);
		touch_params(&p->dparams);
		if (imap_bs_param(&p->params, "charset"))
			sum++;
	}
	imap_bs_free(bs);
}

/* Every list in v, depth first (the parser bounds the depth). */
static void each_list(const struct imap_value *v, unsigned *budget)
{
	if (!v || v->type != IMAP_V_LIST || *budget == 0)
		return;
	--*budget;
	check(v);
	for (size_t i = 0; i < v->n; i++)
		each_list(&v->items[i], budget);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_parser *p = imap_parser_new(64, 1 << 20);
	struct imap_resp *r = NULL;
	unsigned budget = 64;
	ssize_t got;

	if (!p)
		abort();
	got = imap_parser_feed(p, PREFIX, sizeof(PREFIX) - 1, &r);
	if (got >= 0 && !r)
		got = imap_parser_feed(p, (const char *)data, size, &r);
	if (got >= 0 && r) {
		check(imap_fetch_item(imap_list_get(&r->data, 2),
				      "BODYSTRUCTURE"));
		each_list(&r->data, &budget);
	}
	imap_resp_free(r);
	imap_parser_free(p);
	return 0;
}
