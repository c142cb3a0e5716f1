/* parse.c - IMAP response parser (RFC 3501 / 9051 response syntax).
 *
 * A byte-at-a-time state machine builds one struct imap_resp in place.
 * Feeding one byte per call therefore gives exactly the same result as
 * feeding the whole response at once; only literal bodies are copied in
 * bulk, because they can be large and carry no syntax.
 *
 * Open lists live on a small stack of pointers into their parent's item
 * array.  That is safe because only the innermost open list ever grows:
 * a parent is not appended to (and so not reallocated) while a child of
 * it is still open.
 *
 * Tolerated deviations from the grammar, each with an example:
 *   A1 OK done<LF>           bare LF ends a line like CRLF
 *   * OK [ALERT]text         no SP between a resp-text-code and the text
 *   +<CRLF>  +idling         continuation without SP
 *   * X (a)(b)"c"d           no SP between tokens
 *   * SEARCH  1   2          runs of SP between tokens
 *   * X "\q"                 backslash before any other char quotes it
 *   * X ~{3}<CRLF>abc        literal8 accepted wherever a literal is
 * Literals in braces inside "[...]" of an atom are not literals, just
 * atom text, as "BODY[HEADER.FIELDS ({3})]" is not valid anyway.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"
#include "mfs_err.h"

#define MAX_DEPTH 64   /* nested lists inside data or a code */
#define TOK_KEEP  4096 /* token buffer kept between responses */

enum pstate {
	ST_BEGIN, /* first byte of a response */
	ST_TAG,	  /* inside the tag of a tagged response */
	ST_STAR,  /* after '*', want SP */
	ST_CONT,  /* after '+' */
	ST_SEP,	  /* between tokens of data or of a resp-text-code */
	ST_ATOM,
	ST_QUOTED,
	ST_QUOTED_ESC, /* after a backslash in a quoted string */
	ST_LIT_LEN,    /* digits of {N} */
	ST_LIT_PLUS,   /* after "{N+", want '}' */
	ST_LIT_CR,     /* after '}', want CRLF */
	ST_LIT_LF,
	ST_LIT_DATA,  /* the N bytes themselves */
	ST_STATUS,    /* after OK/NO/BAD/BYE/PREAUTH */
	ST_STATUS_SP, /* after "OK ", where '[' opens a resp-text-code */
	ST_CODE_END,  /* after the code's closing ']' */
	ST_TEXT,      /* human-readable rest of the line */
	ST_LF,	      /* after CR at the end of the line, want LF */
};

struct frame {
	struct imap_value *v;
	size_t cap; /* allocated slots in v->items */
};

struct imap_parser {
	size_t max_inline, max_total;
	imap_sink_fn sink;
	void *sink_ctx;
	uint64_t sink_off;

	int err; /* sticky: once failed, the stream is lost */
	enum pstate st;
	struct imap_resp *r; /* response under construction */
	size_t total;	     /* in-memory bytes charged to r */
	bool decided;	     /* first token after the tag was seen */
	bool in_code;	     /* tokens go to r->code, ']' closes it */
	bool in_text;	     /* tok collects r->text */
	bool done;

	struct frame stack[MAX_DEPTH + 1];
	int depth; /* stack[depth] receives new items */

	char *tok; /* current atom, quoted string, tag or text */
	size_t tok_len, tok_cap;
	size_t brk; /* unclosed '[' in the current atom */

	size_t lit_len; /* literal being announced or read */
	size_t lit_digits;
	size_t lit_left;
	struct imap_value *lit; /* in-memory target, NULL when sunk */
};

static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Tags are ours, so be strict: ASTRING-CHAR except '+', ASCII only. */
static bool is_tag_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	switch (c) {
	case '(':
	case ')':
	case '{':
	case '%':
	case '*':
	case '"':
	case '\\':
	case '+':
		return false;
	}
	return true;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int charge(struct imap_parser *p, size_t n)
{
	if (n > p->max_total - p->total)
		return MFS_E_TOOBIG;
	p->total += n;
	return 0;
}

static int tok_put(struct imap_parser *p, char c)
{
	char *t;
	size_t cap;
	int rc;

	rc = charge(p, 1);
	if (rc < 0)
		return rc;
	if (p->tok_len == p->tok_cap) {
		cap = p->tok_cap ? p->tok_cap * 2 : 64;
		t = realloc(p->tok, cap);
		if (!t)
			return MFS_E_NOMEM;
		p->tok = t;
		p->tok_cap = cap;
	}
	p->tok[p->tok_len++] = c;
	return 1;
}

/* A NUL-terminated copy of the token; the token buffer is emptied. */
static char *tok_take(struct imap_parser *p)
{
	char *s = malloc(p->tok_len + 1);

	if (s) {
		if (p->tok_len)
			memcpy(s, p->tok, p->tok_len);
		s[p->tok_len] = '\0';
	}
	p->tok_len = 0;
	return s;
}

static void value_clear(struct imap_value *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		value_clear(&v->items[i]);
	free(v->items);
	free(v->str);
	v->items = NULL;
	v->str = NULL;
	v->n = 0;
}

void imap_resp_free(struct imap_resp *r)
{
	if (!r)
		return;
	free(r->tag);
	free(r->text);
	value_clear(&r->code);
	value_clear(&r->data);
	free(r);
}

/* A zeroed slot at the end of the innermost open list. */
static int new_item(struct imap_parser *p, struct imap_value **out)
{
	struct frame *f = &p->stack[p->depth];
	struct imap_value *items;
	size_t cap;
	int rc;

	rc = charge(p, sizeof(*items));
	if (rc < 0)
		return rc;
	if (f->v->n == f->cap) {
		cap = f->cap ? f->cap * 2 : 4;
		items = realloc(f->v->items, cap * sizeof(*items));
		if (!items)
			return MFS_E_NOMEM;
		f->v->items = items;
		f->cap = cap;
	}
	*out = &f->v->items[f->v->n++];
	memset(*out, 0, sizeof(**out));
	return 0;
}

static enum imap_status status_word(const struct imap_value *v)
{
	if (imap_atom_is(v, "OK"))
		return IMAP_S_OK;
	if (imap_atom_is(v, "NO"))
		return IMAP_S_NO;
	if (imap_atom_is(v, "BAD"))
		return IMAP_S_BAD;
	if (imap_atom_is(v, "BYE"))
		return IMAP_S_BYE;
	if (imap_atom_is(v, "PREAUTH"))
		return IMAP_S_PREAUTH;
	return IMAP_S_NONE;
}

/* The first top-level token after "* " or the tag tells a status
 * response from a data response.  Only now, when the status word is
 * complete, do we know whether '[' starts a code or the rest is text. */
static int after_item(struct imap_parser *p)
{
	struct imap_resp *r = p->r;
	enum imap_status s;

	if (p->decided || p->in_code || p->depth)
		return 0;
	p->decided = true;
	s = status_word(&r->data.items[0]);
	if (r->kind == IMAP_R_TAGGED && s != IMAP_S_OK && s != IMAP_S_NO &&
	    s != IMAP_S_BAD)
		return MFS_E_PROTO;
	if (s == IMAP_S_NONE)
		return 0;
	r->status = s;
	value_clear(&r->data);
	p->stack[0].cap = 0;
	p->st = ST_STATUS;
	return 0;
}

static int add_token(struct imap_parser *p, enum imap_vtype type)
{
	struct imap_value *v;
	int rc;

	rc = new_item(p, &v);
	if (rc < 0)
		return rc;
	if (type == IMAP_V_ATOM && p->tok_len == 3 && lower(p->tok[0]) == 'n' &&
	    lower(p->tok[1]) == 'i' && lower(p->tok[2]) == 'l') {
		v->type = IMAP_V_NIL;
		p->tok_len = 0;
	} else {
		v->type = type;
		v->len = p->tok_len;
		v->str = tok_take(p);
		if (!v->str)
			return MFS_E_NOMEM;
	}
	return after_item(p);
}

static int push_list(struct imap_parser *p)
{
	struct imap_value *v;
	int rc;

	if (p->depth == MAX_DEPTH)
		return MFS_E_PROTO;
	rc = new_item(p, &v);
	if (rc < 0)
		return rc;
	v->type = IMAP_V_LIST;
	rc = after_item(p);
	if (rc < 0)
		return rc;
	p->depth++;
	p->stack[p->depth].v = v;
	p->stack[p->depth].cap = 0;
	return 1;
}

/* After the CRLF of "{N}": the literal's value exists from now on, so a
 * response cut short mid-literal is still a well-formed tree to free. */
static int lit_start(struct imap_parser *p)
{
	struct imap_value *v;
	int rc;

	rc = new_item(p, &v);
	if (rc < 0)
		return rc;
	if (p->sink && p->lit_len > p->max_inline) {
		v->type = IMAP_V_SUNK;
		v->off = p->sink_off;
		v->len = p->lit_len;
		p->lit = NULL;
	} else {
		v->type = IMAP_V_STRING;
		if (p->lit_len == SIZE_MAX)
			return MFS_E_TOOBIG;
		rc = charge(p, p->lit_len + 1);
		if (rc < 0)
			return rc;
		v->str = malloc(p->lit_len + 1);
		if (!v->str)
			return MFS_E_NOMEM;
		v->str[p->lit_len] = '\0';
		v->len = p->lit_len;
		p->lit = v;
	}
	p->lit_left = p->lit_len;
	p->st = p->lit_left ? ST_LIT_DATA : ST_SEP;
	rc = after_item(p);
	return rc < 0 ? rc : 1;
}

/* Copy or sink as much of the literal as this chunk holds. */
static int lit_data(struct imap_parser *p, const char *buf, size_t len,
		    size_t *used)
{
	size_t n = len < p->lit_left ? len : p->lit_left;
	int rc;

	if (p->lit) {
		memcpy(p->lit->str + (p->lit->len - p->lit_left), buf, n);
	} else if (p->sink) {
		rc = p->sink(p->sink_ctx, buf, n);
		if (rc < 0)
			return rc;
		p->sink_off += n;
	}
	/* else the caller cleared the sink mid-literal: it wants no bytes */
	p->lit_left -= n;
	if (!p->lit_left)
		p->st = ST_SEP;
	*used = n;
	return 0;
}

static int text_begin(struct imap_parser *p)
{
	p->in_text = true;
	p->tok_len = 0;
	p->st = ST_TEXT;
	return 0;
}

static int finish(struct imap_parser *p)
{
	struct imap_resp *r = p->r;

	if (p->in_text) {
		r->text = tok_take(p);
		if (!r->text)
			return MFS_E_NOMEM;
	}
	if (r->kind == IMAP_R_TAGGED && r->status == IMAP_S_NONE)
		return MFS_E_PROTO;
	if (r->kind == IMAP_R_UNTAGGED && r->status == IMAP_S_NONE &&
	    r->data.n == 0)
		return MFS_E_PROTO;
	p->done = true;
	return 1;
}

/* End of line between tokens: only legal outside any list or code. */
static int sep_eol(struct imap_parser *p, unsigned char c)
{
	if (p->depth || p->in_code)
		return MFS_E_PROTO;
	if (c == '\r') {
		p->st = ST_LF;
		return 1;
	}
	return finish(p);
}

static int st_sep(struct imap_parser *p, unsigned char c)
{
	switch (c) {
	case ' ':
		return 1;
	case '(':
		return push_list(p);
	case ')':
		if (!p->depth)
			return MFS_E_PROTO;
		p->depth--;
		return 1;
	case '"':
		p->st = ST_QUOTED;
		return 1;
	case '{':
		p->lit_len = 0;
		p->lit_digits = 0;
		p->st = ST_LIT_LEN;
		return 1;
	case '\r':
	case '\n':
		return sep_eol(p, c);
	case ']':
		if (p->in_code) {
			if (p->depth)
				return MFS_E_PROTO;
			p->in_code = false;
			p->st = ST_CODE_END;
			return 1;
		}
		break;
	}
	if (is_ctl(c))
		return MFS_E_PROTO;
	p->brk = 0;
	p->st = ST_ATOM;
	return 0;
}

/* An atom ends at SP, a paren, a quote, a brace or the end of line,
 * except inside "[...]", where everything up to the matching ']' belongs
 * to it: "BODY[HEADER.FIELDS (DATE FROM)]<0>" is one atom. */
static int st_atom(struct imap_parser *p, unsigned char c)
{
	int rc;

	if (p->brk) {
		if (is_ctl(c))
			return MFS_E_PROTO;
		if (c == '[')
			p->brk++;
		else if (c == ']')
			p->brk--;
		return tok_put(p, c);
	}
	switch (c) {
	case '{':
		/* "~{N}" is a binary literal (RFC 3516), not an atom */
		if (p->tok_len == 1 && p->tok[0] == '~') {
			p->tok_len = 0;
			return st_sep(p, c);
		}
		/* fall through */
	case ' ':
	case '(':
	case ')':
	case '"':
	case '\r':
	case '\n':
		p->st = ST_SEP;
		rc = add_token(p, IMAP_V_ATOM);
		return rc < 0 ? rc : 0;
	case ']':
		if (p->in_code) {
			p->st = ST_SEP;
			rc = add_token(p, IMAP_V_ATOM);
			return rc < 0 ? rc : 0;
		}
		break;
	case '[':
		p->brk++;
		break;
	}
	if (is_ctl(c))
		return MFS_E_PROTO;
	return tok_put(p, c);
}

/* One byte.  Returns 1 when c was consumed, 0 when the state changed and
 * c must be looked at again, or a negative mfs_err. */
static int step(struct imap_parser *p, unsigned char c)
{
	struct imap_resp *r = p->r;
	int rc;

	switch (p->st) {
	case ST_BEGIN:
		if (c == '*') {
			r->kind = IMAP_R_UNTAGGED;
			p->st = ST_STAR;
			return 1;
		}
		if (c == '+') {
			r->kind = IMAP_R_CONT;
			p->st = ST_CONT;
			return 1;
		}
		r->kind = IMAP_R_TAGGED;
		p->st = ST_TAG;
		return 0;
	case ST_TAG:
		if (c == ' ' && p->tok_len) {
			r->tag = tok_take(p);
			if (!r->tag)
				return MFS_E_NOMEM;
			p->st = ST_SEP;
			return 1;
		}
		if (!is_tag_char(c))
			return MFS_E_PROTO;
		return tok_put(p, c);
	case ST_STAR:
		if (c != ' ')
			return MFS_E_PROTO;
		p->st = ST_SEP;
		return 1;
	case ST_CONT:
	case ST_CODE_END:
		text_begin(p);
		return c == ' ' ? 1 : 0;
	case ST_SEP:
		return st_sep(p, c);
	case ST_ATOM:
		return st_atom(p, c);
	case ST_QUOTED:
		if (c == '"') {
			p->st = ST_SEP;
			rc = add_token(p, IMAP_V_STRING);
			return rc < 0 ? rc : 1;
		}
		if (c == '\\') {
			p->st = ST_QUOTED_ESC;
			return 1;
		}
		if (c == '\r' || c == '\n' || c == '\0')
			return MFS_E_PROTO;
		return tok_put(p, c);
	case ST_QUOTED_ESC:
		if (c == '\r' || c == '\n' || c == '\0')
			return MFS_E_PROTO;
		p->st = ST_QUOTED;
		return tok_put(p, c);
	case ST_LIT_LEN:
		if (c >= '0' && c <= '9') {
			if (p->lit_len > (SIZE_MAX - (c - '0')) / 10)
				return MFS_E_PROTO;
			p->lit_len = p->lit_len * 10 + (c - '0');
			p->lit_digits++;
			return 1;
		}
		if (!p->lit_digits)
			return MFS_E_PROTO;
		if (c == '+') {
			p->st = ST_LIT_PLUS;
			return 1;
		}
		if (c == '}') {
			p->st = ST_LIT_CR;
			return 1;
		}
		return MFS_E_PROTO;
	case ST_LIT_PLUS:
		if (c != '}')
			return MFS_E_PROTO;
		p->st = ST_LIT_CR;
		return 1;
	case ST_LIT_CR:
		if (c == '\r') {
			p->st = ST_LIT_LF;
			return 1;
		}
		/* a bare LF is tolerated here too */
		/* fall through */
	case ST_LIT_LF:
		if (c != '\n')
			return MFS_E_PROTO;
		return lit_start(p);
	case ST_LIT_DATA:
		break; /* handled in bulk by the caller */
	case ST_STATUS:
		if (c == ' ') {
			p->st = ST_STATUS_SP;
			return 1;
		}
		if (c == '\r' || c == '\n') {
			text_begin(p);
			return 0;
		}
		return MFS_E_PROTO;
	case ST_STATUS_SP:
		if (c == '[') {
			p->in_code = true;
			p->depth = 0;
			p->stack[0].v = &r->code;
			p->stack[0].cap = 0;
			p->st = ST_SEP;
			return 1;
		}
		text_begin(p);
		return 0;
	case ST_TEXT:
		if (c == '\r') {
			p->st = ST_LF;
			return 1;
		}
		if (c == '\n')
			return finish(p);
		if (c == '\0')
			return MFS_E_PROTO;
		return tok_put(p, c);
	case ST_LF:
		if (c != '\n')
			return MFS_E_PROTO;
		return finish(p);
	}
	return MFS_E_PROTO;
}

/* Per-response state back to "nothing seen"; r must already be gone. */
static void clear_state(struct imap_parser *p)
{
	p->st = ST_BEGIN;
	p->total = 0;
	p->decided = false;
	p->in_code = false;
	p->in_text = false;
	p->done = false;
	p->depth = 0;
	p->tok_len = 0;
	p->brk = 0;
	p->lit = NULL;
	p->lit_left = 0;
	/* one huge text line should not pin its buffer for the session */
	if (p->tok_cap > TOK_KEEP) {
		free(p->tok);
		p->tok = NULL;
		p->tok_cap = 0;
	}
}

static int resp_start(struct imap_parser *p)
{
	struct imap_resp *r = calloc(1, sizeof(*r));

	if (!r)
		return MFS_E_NOMEM;
	r->code.type = IMAP_V_LIST;
	r->data.type = IMAP_V_LIST;
	p->r = r;
	p->stack[0].v = &r->data;
	p->stack[0].cap = 0;
	return 0;
}

struct imap_parser *imap_parser_new(size_t max_inline, size_t max_total)
{
	struct imap_parser *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->max_inline = max_inline;
	p->max_total = max_total;
	p->st = ST_BEGIN;
	return p;
}

void imap_parser_free(struct imap_parser *p)
{
	if (!p)
		return;
	imap_resp_free(p->r);
	free(p->tok);
	free(p);
}

void imap_parser_set_sink(struct imap_parser *p, imap_sink_fn fn, void *ctx)
{
	p->sink = fn;
	p->sink_ctx = fn ? ctx : NULL;
	p->sink_off = 0;
}

void imap_parser_reset(struct imap_parser *p)
{
	imap_resp_free(p->r);
	p->r = NULL;
	p->err = 0;
	clear_state(p);
}

ssize_t imap_parser_feed(struct imap_parser *p, const char *buf, size_t len,
			 struct imap_resp **out)
{
	size_t i = 0, n;
	int rc = 0;

	*out = NULL;
	if (p->err)
		return p->err;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	while (i < len) {
		if (!p->r) {
			rc = resp_start(p);
			if (rc < 0)
				goto fail;
		}
		if (p->st == ST_LIT_DATA) {
			rc = lit_data(p, buf + i, len - i, &n);
			if (rc < 0)
				goto fail;
			i += n;
			continue;
		}
		rc = step(p, (unsigned char)buf[i]);
		if (rc < 0)
			goto fail;
		i += rc;
		if (p->done) {
			*out = p->r;
			p->r = NULL;
			clear_state(p);
			break;
		}
	}
	return i;
fail:
	p->err = rc;
	return rc;
}

const struct imap_value *imap_list_get(const struct imap_value *v, size_t i)
{
	if (!v || v->type != IMAP_V_LIST || i >= v->n)
		return NULL;
	return &v->items[i];
}

bool imap_atom_is(const struct imap_value *v, const char *s)
{
	size_t i;

	if (!v || v->type != IMAP_V_ATOM || !v->str || v->len != strlen(s))
		return false;
	for (i = 0; i < v->len; i++)
		if (lower(v->str[i]) != lower(s[i]))
			return false;
	return true;
}

int imap_value_u64(const struct imap_value *v, uint64_t *out)
{
	uint64_t n = 0;
	size_t i;
	unsigned d;

	if (!v || v->type != IMAP_V_ATOM || !v->len)
		return MFS_E_PROTO;
	for (i = 0; i < v->len; i++) {
		if (v->str[i] < '0' || v->str[i] > '9')
			return MFS_E_PROTO;
		d = v->str[i] - '0';
		if (n > (UINT64_MAX - d) / 10)
			return MFS_E_PROTO;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

const struct imap_value *imap_fetch_item(const struct imap_value *list,
					 const char *key)
{
	size_t i;

	if (!list || list->type != IMAP_V_LIST)
		return NULL;
	for (i = 0; i + 1 < list->n; i += 2)
		if (imap_atom_is(&list->items[i], key))
			return &list->items[i + 1];
	return NULL;
}

/* A number of a sequence set: 1..2^32-1, no sign, no leading junk. */
static int set_number(const char **p, uint32_t *out)
{
	uint64_t n = 0;
	const char *s = *p;

	if (*s < '1' || *s > '9')
		return MFS_E_PROTO;
	for (; *s >= '0' && *s <= '9'; s++) {
		n = n * 10 + (uint64_t)(*s - '0');
		if (n > UINT32_MAX)
			return MFS_E_PROTO;
	}
	*p = s;
	*out = (uint32_t)n;
	return 0;
}

int imap_uidset_each(const char *set, imap_range_fn fn, void *ctx)
{
	const char *p = set;
	int rc;

	if (!p || !*p)
		return MFS_E_PROTO;
	for (;;) {
		uint32_t lo, hi;

		rc = set_number(&p, &lo);
		if (rc < 0)
			return rc;
		hi = lo;
		if (*p == ':') {
			p++;
			rc = set_number(&p, &hi);
			if (rc < 0)
				return rc;
			/* RFC 3501: "2:4" and "4:2" are the same range. */
			if (hi < lo) {
				uint32_t t = lo;

				lo = hi;
				hi = t;
			}
		}
		rc = fn(ctx, lo, hi);
		if (rc < 0)
			return rc;
		if (*p == '\0')
			return 0;
		if (*p++ != ',')
			return MFS_E_PROTO;
	}
}
