/* bodystructure.c - BODYSTRUCTURE values into a table of parts (see
 * imap_bodystructure.h).  A recursive descent over the parser's values,
 * its depth bounded before each step down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_bodystructure.h"
#include "mfs_err.h"

struct build {
	struct imap_bs *bs;
	size_t cap;
};

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static bool same(const char *a, const char *b)
{
	if (!a || !b)
		return false;
	for (; *a && *b; a++, b++)
		if (lower(*a) != lower(*b))
			return false;
	return *a == *b;
}

/* A string, or NULL for NIL; MFS_E_PROTO for anything else.  Atoms pass
 * as strings: some servers send them unquoted. */
static int nstring(const struct imap_value *v, const char **out)
{
	*out = NULL;
	if (!v)
		return MFS_E_PROTO;
	if (v->type == IMAP_V_NIL)
		return 0;
	if ((v->type != IMAP_V_STRING && v->type != IMAP_V_ATOM) || !v->str)
		return MFS_E_PROTO;
	*out = v->str;
	return 0;
}

static int number(const struct imap_value *v, uint64_t *out)
{
	struct imap_value a;

	*out = 0;
	if (v && v->type == IMAP_V_STRING) {
		a = *v;
		a.type = IMAP_V_ATOM;
		return imap_value_u64(&a, out);
	}
	return imap_value_u64(v, out);
}

static bool is_list(const struct imap_value *v)
{
	return v && v->type == IMAP_V_LIST;
}

/* body-fld-param: NIL or (name value name value ...). */
static int params(const struct imap_value *v, struct imap_bs_params *out)
{
	size_t n;

	out->n = 0;
	out->p = NULL;
	if (!v || v->type == IMAP_V_NIL)
		return 0;
	if (!is_list(v))
		return MFS_E_PROTO;
	n = v->n / 2;	/* an odd one out is dropped */
	if (n > IMAP_BS_MAX_PARAMS)
		return MFS_E_TOOBIG;
	if (n == 0)
		return 0;
	out->p = calloc(n, sizeof(*out->p));
	if (!out->p)
		return MFS_E_NOMEM;
	for (size_t i = 0; i < n; i++) {
		int rc = nstring(&v->items[2 * i], &out->p[i].name);

		if (rc == 0)
			rc = nstring(&v->items[2 * i + 1], &out->p[i].value);
		if (rc == 0 && !out->p[i].name)
			rc = MFS_E_PROTO;
		out->n = i + 1;
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* body-fld-dsp: NIL, or (type params); a bare string is taken as the
 * type. */
static int disposition(const struct imap_value *v, struct imap_bs_part *p)
{
	if (!v || v->type == IMAP_V_NIL)
		return 0;
	if (v->type == IMAP_V_STRING || v->type == IMAP_V_ATOM)
		return nstring(v, &p->disposition);
	if (!is_list(v) || v->n < 1)
		return MFS_E_PROTO;
	if (nstring(&v->items[0], &p->disposition) < 0)
		return MFS_E_PROTO;
	return params(imap_list_get(v, 1), &p->dparams);
}

/* A new part at the end of the table, its fields zeroed. */
static int add_part(struct build *b, int parent, unsigned depth,
		    const char *section, struct imap_bs_part **out)
{
	struct imap_bs *bs = b->bs;

	if (bs->n >= IMAP_BS_MAX_PARTS)
		return MFS_E_TOOBIG;
	if (bs->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 8;
		struct imap_bs_part *np;

		if (cap > IMAP_BS_MAX_PARTS)
			cap = IMAP_BS_MAX_PARTS;
		np = realloc(bs->parts, cap * sizeof(*np));
		if (!np)
			return MFS_E_NOMEM;
		bs->parts = np;
		b->cap = cap;
	}
	*out = &bs->parts[bs->n++];
	memset(*out, 0, sizeof(**out));
	(*out)->parent = parent;
	(*out)->depth = depth;
	snprintf((*out)->section, sizeof((*out)->section), "%s", section);
	return 0;
}

/* prefix.i, or i at the top. */
static int child_section(const char *prefix, size_t i, char *buf,
			 size_t len)
{
	int n = *prefix ? snprintf(buf, len, "%s.%zu", prefix, i) :
			  snprintf(buf, len, "%zu", i);

	return n < 0 || (size_t)n >= len ? MFS_E_TOOBIG : 0;
}

static int body(struct build *b, const struct imap_value *v, int parent,
		unsigned depth, const char *section);

static int multipart(struct build *b, const struct imap_value *v,
		     int parent, unsigned depth, const char *section)
{
	char sub[IMAP_BS_SECTION_MAX];
	struct imap_bs_part *p;
	size_t i, nkids = 0;
	int self, rc;

	rc = add_part(b, parent, depth, section, &p);
	if (rc < 0)
		return rc;
	self = (int)(b->bs->n - 1);
	p->multipart = true;
	for (i = 0; i < v->n && is_list(&v->items[i]); i++) {
		rc = child_section(section, i + 1, sub, sizeof(sub));
		if (rc == 0)
			rc = body(b, &v->items[i], self, depth + 1, sub);
		if (rc < 0)
			return rc;
		nkids++;
	}
	if (nkids == 0)
		return MFS_E_PROTO;
	p = &b->bs->parts[self];	/* the table may have moved */
	p->type = "MULTIPART";
	if (nstring(imap_list_get(v, i), &p->subtype) < 0)
		return MFS_E_PROTO;
	/* body-ext-mpart: params, disposition, language, location... */
	rc = params(imap_list_get(v, i + 1), &p->params);
	if (rc == 0)
		rc = disposition(imap_list_get(v, i + 2), p);
	return rc;
}

static int single(struct build *b, const struct imap_value *v, int parent,
		  unsigned depth, const char *section)
{
	char sub[IMAP_BS_SECTION_MAX];
	const struct imap_value *env, *inner;
	struct imap_bs_part *p;
	size_t ext = 7;
	int self, rc;

	if (v->n < 7)
		return MFS_E_PROTO;
	rc = add_part(b, parent, depth, section, &p);
	if (rc < 0)
		return rc;
	self = (int)(b->bs->n - 1);
	if (nstring(&v->items[0], &p->type) < 0 || !p->type ||
	    nstring(&v->items[1], &p->subtype) < 0 || !p->subtype)
		return MFS_E_PROTO;
	rc = params(&v->items[2], &p->params);
	if (rc < 0)
		return rc;
	if (nstring(&v->items[3], &p->id) < 0 ||
	    nstring(&v->items[4], &p->description) < 0 ||
	    nstring(&v->items[5], &p->encoding) < 0 ||
	    number(&v->items[6], &p->size) < 0)
		return MFS_E_PROTO;
	env = imap_list_get(v, 7);
	inner = imap_list_get(v, 8);
	if (same(p->type, "message") &&
	    (same(p->subtype, "rfc822") || same(p->subtype, "global")) &&
	    is_list(env) && is_list(inner)) {
		p->message = true;
		/* envelope: (date subject from ...) */
		if (env->n >= 2 && nstring(&env->items[1], &p->subject) < 0)
			p->subject = NULL;
		number(imap_list_get(v, 9), &p->lines);
		ext = 10;
		/* Its body's parts are numbered below this part's number;
		 * a single part body is number 1 there. */
		if (is_list(inner) && inner->n > 0 && is_list(&inner->items[0]))
			rc = body(b, inner, self, depth + 1, section);
		else if ((rc = child_section(section, 1, sub, sizeof(sub))) == 0)
			rc = body(b, inner, self, depth + 1, sub);
		if (rc < 0)
			return rc;
		p = &b->bs->parts[self];
	} else if (same(p->type, "text")) {
		number(imap_list_get(v, 7), &p->lines);
		ext = 8;
	}
	/* body-ext-1part: md5, disposition, language, location... */
	if (ext < v->n && nstring(&v->items[ext], &p->md5) < 0)
		return MFS_E_PROTO;
	return disposition(imap_list_get(v, ext + 1), p);
}

static int body(struct build *b, const struct imap_value *v, int parent,
		unsigned depth, const char *section)
{
	if (depth >= IMAP_BS_MAX_DEPTH)
		return MFS_E_TOOBIG;
	if (!is_list(v) || v->n == 0)
		return MFS_E_PROTO;
	if (is_list(&v->items[0]))
		return multipart(b, v, parent, depth, section);
	return single(b, v, parent, depth, section);
}

void imap_bs_free(struct imap_bs *bs)
{
	if (!bs)
		return;
	for (size_t i = 0; i < bs->n; i++) {
		free(bs->parts[i].params.p);
		free(bs->parts[i].dparams.p);
	}
	free(bs->parts);
	free(bs);
}

int imap_bs_parse(const struct imap_value *v, struct imap_bs **out)
{
	struct build b = { 0 };
	int rc;

	*out = NULL;
	b.bs = calloc(1, sizeof(*b.bs));
	if (!b.bs)
		return MFS_E_NOMEM;
	/* The message itself: a multipart body is numbered "", a single
	 * part is part 1. */
	rc = body(&b, v, -1, 0,
		  is_list(v) && v->n > 0 && is_list(&v->items[0]) ? "" : "1");
	if (rc < 0) {
		imap_bs_free(b.bs);
		return rc;
	}
	*out = b.bs;
	return 0;
}

const char *imap_bs_param(const struct imap_bs_params *ps, const char *name)
{
	for (size_t i = 0; ps && i < ps->n; i++)
		if (same(ps->p[i].name, name))
			return ps->p[i].value;
	return NULL;
}
