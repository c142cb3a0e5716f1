/* client.c - IMAP commands with typed results, over conn.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"

/* Fields that name a message; fetched at sync time, their first 64 KB
 * only: any sender can make them megabytes long, more than a response may
 * hold (MAX_RESPONSE), and a name needs far less. */
#define META_FIELDS "DATE FROM SUBJECT MESSAGE-ID"
#define META_PARTIAL "<0.65536>"
/* Mailboxes one LIST may name; they are all held until it completes. */
#define MAX_MAILBOXES 100000
/* A STATUS of LIST-STATUS follows its mailbox's LIST (RFC 5819): look
 * back this far for it, not through every mailbox listed. */
#define STATUS_LOOKBACK 64

struct list_entry {
	char *name;
	struct imap_mailbox mb;
};

struct list_ctx {
	struct list_entry *v;
	size_t n, cap;
};

static const struct {
	const char *attr;
	unsigned flag;
} mb_attrs[] = {
	{ "\\Noselect", IMAP_MB_NOSELECT },
	{ "\\NonExistent", IMAP_MB_NOSELECT },
	{ "\\Noinferiors", IMAP_MB_NOINFERIORS },
	{ "\\Sent", IMAP_MB_SENT },
	{ "\\Trash", IMAP_MB_TRASH },
	{ "\\Drafts", IMAP_MB_DRAFTS },
	{ "\\Junk", IMAP_MB_JUNK },
	{ "\\Archive", IMAP_MB_ARCHIVE },
	{ "\\All", IMAP_MB_ALL },
};

static bool is_name(const struct imap_value *v)
{
	return v && (v->type == IMAP_V_ATOM || v->type == IMAP_V_STRING) &&
	       !memchr(v->str, '\0', v->len);
}

/* STATUS attributes (LIST-STATUS) go to the mailbox listed before. */
static int on_status(struct list_ctx *lc, const struct imap_resp *r)
{
	const struct imap_value *name = imap_list_get(&r->data, 1);
	const struct imap_value *att = imap_list_get(&r->data, 2);
	struct imap_mbstate *st;
	size_t i;

	if (!is_name(name) || !att || att->type != IMAP_V_LIST)
		return MFS_E_PROTO;
	for (i = lc->n; i > 0 && lc->n - i < STATUS_LOOKBACK; i--)
		if (strcmp(lc->v[i - 1].name, name->str) == 0)
			break;
	if (i == 0 || strcmp(lc->v[i - 1].name, name->str) != 0)
		return 0;
	st = &lc->v[i - 1].mb.status;
	for (size_t k = 0; k + 1 < att->n; k += 2) {
		uint64_t n;

		if (imap_value_u64(&att->items[k + 1], &n) < 0)
			continue;
		if (imap_atom_is(&att->items[k], "UIDVALIDITY"))
			st->uidvalidity = (uint32_t)n;
		else if (imap_atom_is(&att->items[k], "UIDNEXT"))
			st->uidnext = (uint32_t)n;
		else if (imap_atom_is(&att->items[k], "MESSAGES"))
			st->exists = (uint32_t)n;
		else if (imap_atom_is(&att->items[k], "HIGHESTMODSEQ"))
			st->highestmodseq = n;
	}
	lc->v[i - 1].mb.has_status = st->uidvalidity != 0;
	return 0;
}

static int on_list(void *ctx, const struct imap_resp *r)
{
	struct list_ctx *lc = ctx;
	const struct imap_value *attrs = imap_list_get(&r->data, 1);
	const struct imap_value *delim = imap_list_get(&r->data, 2);
	const struct imap_value *name = imap_list_get(&r->data, 3);
	struct list_entry *e;

	if (imap_atom_is(imap_list_get(&r->data, 0), "STATUS"))
		return on_status(lc, r);
	if (!imap_atom_is(imap_list_get(&r->data, 0), "LIST"))
		return 0;
	if (!attrs || attrs->type != IMAP_V_LIST || !delim || !is_name(name))
		return MFS_E_PROTO;
	if (lc->n >= MAX_MAILBOXES)
		return MFS_E_TOOBIG;
	if (lc->n == lc->cap) {
		size_t cap = lc->cap ? lc->cap * 2 : 32;

		e = realloc(lc->v, cap * sizeof(*e));
		if (!e)
			return MFS_E_NOMEM;
		lc->v = e;
		lc->cap = cap;
	}
	e = &lc->v[lc->n];
	memset(e, 0, sizeof(*e));
	e->name = strdup(name->str);
	if (!e->name)
		return MFS_E_NOMEM;
	lc->n++;
	for (size_t i = 0; i < attrs->n; i++)
		for (size_t k = 0; k < sizeof(mb_attrs) / sizeof(mb_attrs[0]); k++)
			if (imap_atom_is(&attrs->items[i], mb_attrs[k].attr))
				e->mb.flags |= mb_attrs[k].flag;
	if (delim->type == IMAP_V_STRING && delim->len == 1)
		e->mb.delim = delim->str[0];
	return 0;
}

int imap_list(struct imap_conn *c, imap_list_fn fn, void *ctx,
	      struct mfs_error *err)
{
	struct list_ctx lc = { 0 };
	char cmd[160];
	int rc;

	bool su = c->caps & IMAP_CAP_SPECIAL_USE;
	bool ls = c->caps & IMAP_CAP_LIST_STATUS;

	snprintf(cmd, sizeof(cmd), "LIST \"\" \"*\"%s%s%s%s%s",
		 su || ls ? " RETURN (" : "", su ? "SPECIAL-USE" : "",
		 su && ls ? " " : "",
		 !ls ? "" : (c->caps & IMAP_CAP_CONDSTORE) ?
			"STATUS (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)" :
			"STATUS (UIDVALIDITY UIDNEXT MESSAGES)",
		 su || ls ? ")" : "");
	rc = conn_cmd(c, cmd, on_list, &lc, err);
	if (rc == MFS_E_PROTO)
		mfs_fail(err, rc, "malformed LIST response");
	if (rc == MFS_E_TOOBIG && lc.n >= MAX_MAILBOXES)
		mfs_fail(err, rc, "more than %d mailboxes in one LIST: "
			 "given up", MAX_MAILBOXES);
	for (size_t i = 0; rc == 0 && i < lc.n; i++) {
		lc.v[i].mb.name = lc.v[i].name;
		rc = fn(ctx, &lc.v[i].mb);
	}
	for (size_t i = 0; i < lc.n; i++)
		free(lc.v[i].name);
	free(lc.v);
	return rc;
}

struct ns_ctx {
	char prefix[IMAP_NS_PREFIX_MAX];
	char delim;
	bool seen;
};

/* * NAMESPACE ((prefix delim ext...) ...) other shared: the first of
 * the personal namespaces (RFC 2342). */
static int on_namespace(void *ctx, const struct imap_resp *r)
{
	struct ns_ctx *nc = ctx;
	const struct imap_value *personal = imap_list_get(&r->data, 1);
	const struct imap_value *first, *prefix, *delim;

	if (!imap_atom_is(imap_list_get(&r->data, 0), "NAMESPACE") || nc->seen)
		return 0;
	nc->seen = true;
	if (!personal || personal->type == IMAP_V_NIL)
		return 0;
	first = imap_list_get(personal, 0);
	if (personal->type != IMAP_V_LIST || !first ||
	    first->type != IMAP_V_LIST)
		return MFS_E_PROTO;
	prefix = imap_list_get(first, 0);
	delim = imap_list_get(first, 1);
	if (!prefix || prefix->type != IMAP_V_STRING || !delim ||
	    (delim->type != IMAP_V_NIL &&
	     (delim->type != IMAP_V_STRING || delim->len != 1)))
		return MFS_E_PROTO;
	if (prefix->len >= sizeof(nc->prefix) || memchr(prefix->str, 0, prefix->len))
		return MFS_E_PROTO;
	memcpy(nc->prefix, prefix->str, prefix->len + 1);
	nc->delim = delim->type == IMAP_V_STRING ? delim->str[0] : '\0';
	return 0;
}

int imap_namespace(struct imap_conn *c, char *prefix, char *delim,
		   struct mfs_error *err)
{
	struct ns_ctx nc = { .prefix = "" };
	int rc;

	prefix[0] = '\0';
	*delim = '\0';
	if (!(c->caps & IMAP_CAP_NAMESPACE))
		return 0;
	rc = conn_cmd(c, "NAMESPACE", on_namespace, &nc, err);
	if (rc == MFS_E_PROTO)
		return mfs_fail(err, rc, "malformed NAMESPACE response");
	if (rc < 0)
		return rc;
	memcpy(prefix, nc.prefix, sizeof(nc.prefix));
	*delim = nc.delim;
	return 0;
}

static int on_examine(void *ctx, const struct imap_resp *r)
{
	struct imap_mbstate *st = ctx;
	const struct imap_value *k, *v;
	uint64_t n;

	if (r->status == IMAP_S_OK && r->code.n >= 2) {
		k = &r->code.items[0];
		v = &r->code.items[1];
		if (imap_value_u64(v, &n) < 0)
			return 0;
		if (imap_atom_is(k, "UIDVALIDITY"))
			st->uidvalidity = (uint32_t)n;
		else if (imap_atom_is(k, "UIDNEXT"))
			st->uidnext = (uint32_t)n;
		else if (imap_atom_is(k, "HIGHESTMODSEQ"))
			st->highestmodseq = n;
	} else if (r->status == IMAP_S_NONE &&
		   imap_atom_is(imap_list_get(&r->data, 1), "EXISTS") &&
		   imap_value_u64(imap_list_get(&r->data, 0), &n) == 0) {
		st->exists = (uint32_t)n;
	}
	return 0;
}

int conn_select(struct imap_conn *c, const char *mailbox, bool rw,
		bool reuse, struct imap_mbstate *st, struct mfs_error *err)
{
	char *cmd = NULL, *name = NULL;
	size_t len = 0;
	struct imap_mbstate fresh = { 0 };
	int rc;

	/* Fetching by UID needs only the mailbox and its UIDVALIDITY, which
	 * cannot change while it is selected: no need to ask again. */
	if (reuse && c->selected && strcmp(c->selected, mailbox) == 0 &&
	    (c->selected_rw || !rw)) {
		if (st)
			*st = c->st;
		return 0;
	}
	free(c->selected);
	c->selected = NULL;
	name = strdup(mailbox);
	if (!name) {
		rc = mfs_fail(err, MFS_E_NOMEM, "out of memory");
		goto out;
	}
	rc = conn_append(&cmd, &len, rw ? "SELECT " : "EXAMINE ");
	if (rc == 0)
		rc = conn_quote(&cmd, &len, mailbox);
	if (rc == 0 && (c->caps & IMAP_CAP_CONDSTORE))
		rc = conn_append(&cmd, &len, " (CONDSTORE)");
	if (rc < 0) {
		mfs_fail(err, rc, "cannot quote mailbox name");
		goto out;
	}
	rc = conn_cmd(c, cmd, on_examine, &fresh, err);
	if (rc < 0)
		goto out;
	c->st = fresh;
	c->selected = name;
	c->selected_rw = rw;
	name = NULL;
	if (st)
		*st = fresh;
out:
	free(name);
	free(cmd);
	return rc;
}

int imap_examine_keep(struct imap_conn *c, const char *mailbox,
		      struct imap_mbstate *st, struct mfs_error *err)
{
	return conn_select(c, mailbox, false, true, st, err);
}

int imap_examine(struct imap_conn *c, const char *mailbox,
		 struct imap_mbstate *st, struct mfs_error *err)
{
	return conn_select(c, mailbox, false, false, st, err);
}

static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May",
				       "Jun", "Jul", "Aug", "Sep", "Oct",
				       "Nov", "Dec" };

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), without timegm's
 * dependence on the process time zone. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* INTERNALDATE: "22-May-2024 10:23:00 +0200" (day may be space-padded). */
static int parse_internaldate(const char *s, int64_t *out)
{
	int d, y, hh, mm, ss, tz;
	char mon[4], sign;
	unsigned m;

	if (sscanf(s, " %d-%3s-%d %d:%d:%d %c%4d", &d, mon, &y, &hh, &mm, &ss,
		   &sign, &tz) != 8 || (sign != '+' && sign != '-'))
		return -1;
	for (m = 0; m < 12; m++)
		if (strcmp(mon, months[m]) == 0)
			break;
	if (m == 12 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60)
		return -1;
	*out = days_from_civil(y, m + 1, (unsigned)d) * 86400 + hh * 3600 +
	       mm * 60 + ss -
	       (sign == '-' ? -1 : 1) * ((tz / 100) * 3600 + (tz % 100) * 60);
	return 0;
}

static char *join_flags(const struct imap_value *l)
{
	size_t len = 0;
	char *s, *p;

	for (size_t i = 0; i < l->n; i++)
		len += l->items[i].len + 1;
	s = malloc(len + 1);
	if (!s)
		return NULL;
	p = s;
	for (size_t i = 0; i < l->n; i++) {
		/* \Recent belongs to one session; showing it would make
		 * the flags flicker between connections. */
		if (l->items[i].type != IMAP_V_ATOM ||
		    imap_atom_is(&l->items[i], "\\Recent"))
			continue;
		if (p != s)
			*p++ = ' ';
		memcpy(p, l->items[i].str, l->items[i].len);
		p += l->items[i].len;
	}
	*p = '\0';
	return s;
}

struct meta_ctx {
	imap_msg_fn fn;
	void *ctx;
};

static int on_fetch_meta(void *ctx, const struct imap_resp *r)
{
	struct meta_ctx *mc = ctx;
	const struct imap_value *att = imap_list_get(&r->data, 2);
	const struct imap_value *v;
	struct imap_msginfo mi = { 0 };
	uint64_t n;
	char *flags = NULL;
	int rc;

	if (!imap_atom_is(imap_list_get(&r->data, 1), "FETCH"))
		return 0;
	if (!att || att->type != IMAP_V_LIST)
		return MFS_E_PROTO;
	v = imap_fetch_item(att, "UID");
	if (!v || imap_value_u64(v, &n) < 0 || n == 0 || n > UINT32_MAX)
		return MFS_E_PROTO;
	mi.uid = (uint32_t)n;
	v = imap_fetch_item(att, "FLAGS");
	if (v && v->type == IMAP_V_LIST) {
		flags = join_flags(v);
		if (!flags)
			return MFS_E_NOMEM;
	}
	mi.flags = flags ? flags : "";
	v = imap_fetch_item(att, "RFC822.SIZE");
	if (v)
		imap_value_u64(v, &mi.size);
	v = imap_fetch_item(att, "INTERNALDATE");
	if (v && v->type == IMAP_V_STRING)
		parse_internaldate(v->str, &mi.internaldate);
	v = imap_fetch_item(att, "MODSEQ");
	if (v && v->type == IMAP_V_LIST && v->n == 1)
		imap_value_u64(&v->items[0], &mi.modseq);
	/* The server echoes the field list in its own spelling, so match
	 * the section by prefix rather than by exact key. */
	for (size_t i = 0; i + 1 < att->n; i += 2) {
		const struct imap_value *k = &att->items[i];

		if (k->type == IMAP_V_ATOM &&
		    strncasecmp(k->str, "BODY[HEADER.FIELDS", 18) == 0 &&
		    att->items[i + 1].type == IMAP_V_STRING) {
			mi.header = att->items[i + 1].str;
			mi.header_len = att->items[i + 1].len;
		}
	}
	rc = mc->fn(mc->ctx, &mi);
	free(flags);
	return rc;
}

int imap_fetch_meta(struct imap_conn *c, const char *uidset, bool full,
		    imap_msg_fn fn, void *ctx, struct mfs_error *err)
{
	struct meta_ctx mc = { fn, ctx };
	char *cmd = NULL;
	size_t len = 0;
	int rc;

	for (const char *p = uidset; *p; p++)
		if (!strchr("0123456789:,*", *p))
			return mfs_fail(err, MFS_E_INVAL, "bad UID set");
	rc = conn_append(&cmd, &len, "UID FETCH %s (UID FLAGS%s%s)", uidset,
			 full ? " RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (" META_FIELDS ")]" META_PARTIAL : "",
			 (c->caps & IMAP_CAP_CONDSTORE) ? " MODSEQ" : "");
	if (rc < 0) {
		rc = mfs_fail(err, rc, "out of memory");
		goto out;
	}
	rc = conn_cmd(c, cmd, on_fetch_meta, &mc, err);
	if (rc == MFS_E_PROTO)
		mfs_fail(err, rc, "malformed FETCH response");
out:
	free(cmd);
	return rc;
}

/* Bodies of a batch arrive in whatever order the server likes (Dovecot
 * runs pipelined commands in parallel), and a literal's bytes arrive before
 * the response says which UID it belongs to.  So each response's literal is
 * streamed into a fresh file from tmp_fn and handed over with its UID once
 * the response is complete. */
struct body_ctx {
	struct imap_conn *c;
	imap_tmp_fn tmp_fn;
	imap_body_fn body_fn;
	void *ctx;
	int spool;		/* file the current literal goes to, or -1 */
	uint64_t sunk;		/* bytes in spool */
	uint64_t max_len;	/* per body; 0: any */
	bool over;		/* a body went over it */
	size_t got;
	struct mfs_error *err;
};

struct changes_ctx {
	struct meta_ctx meta;
	imap_uids_fn vanished;
};

static int on_changes(void *ctx, const struct imap_resp *r)
{
	struct changes_ctx *cc = ctx;
	const struct imap_value *set;

	if (!imap_atom_is(imap_list_get(&r->data, 0), "VANISHED"))
		return on_fetch_meta(&cc->meta, r);
	/* Only a client that enabled QRESYNC gets these (RFC 7162); one
	 * that did not asked for no expunges here. */
	if (!cc->vanished)
		return 0;
	/* "* VANISHED (EARLIER) 1:3,7": the set is the last item. */
	set = imap_list_get(&r->data, r->data.n - 1);
	if (r->data.n < 2 || set->type != IMAP_V_ATOM)
		return MFS_E_PROTO;
	return imap_uidset_each(set->str, cc->vanished, cc->meta.ctx);
}

int imap_enable_qresync(struct imap_conn *c, struct mfs_error *err)
{
	int rc;

	if (!(c->caps & IMAP_CAP_QRESYNC) || !(c->caps & IMAP_CAP_ENABLE))
		return mfs_fail(err, MFS_E_UNSUPPORTED, "no QRESYNC");
	if (c->qresync)
		return 0;
	rc = conn_cmd(c, "ENABLE QRESYNC", NULL, NULL, err);
	if (rc == 0)
		c->qresync = true;
	return rc;
}

int imap_fetch_changes(struct imap_conn *c, const char *uidset,
		       uint64_t modseq, imap_msg_fn fn, imap_uids_fn vanished,
		       void *ctx, struct mfs_error *err)
{
	struct changes_ctx cc = { { fn, ctx }, vanished };
	char cmd[160];
	int rc;

	if (!(c->caps & IMAP_CAP_CONDSTORE))
		return mfs_fail(err, MFS_E_UNSUPPORTED, "no CONDSTORE");
	if (vanished && !c->qresync)
		return mfs_fail(err, MFS_E_UNSUPPORTED, "QRESYNC not enabled");
	if (strspn(uidset, "0123456789:,*") != strlen(uidset) ||
	    strlen(uidset) > 64)
		return mfs_fail(err, MFS_E_INVAL, "bad UID set");
	snprintf(cmd, sizeof(cmd),
		 "UID FETCH %s (UID FLAGS MODSEQ) (CHANGEDSINCE %llu%s)",
		 uidset, (unsigned long long)modseq,
		 vanished ? " VANISHED" : "");
	rc = conn_cmd(c, cmd, on_changes, &cc, err);
	if (rc == MFS_E_PROTO)
		mfs_fail(err, rc, "malformed FETCH or VANISHED response");
	return rc;
}

static int write_all(int fd, const char *buf, size_t len,
		     struct mfs_error *err)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0)
			return mfs_fail(err, MFS_E_IO, "cache write: %s",
					strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int body_sink(void *ctx, const char *buf, size_t len)
{
	struct body_ctx *bc = ctx;
	int rc;

	if (bc->max_len && len > bc->max_len - bc->sunk) {
		/* Not one byte past the limit reaches the file. */
		bc->over = true;
		return MFS_E_TOOBIG;
	}
	if (bc->spool < 0) {
		bc->spool = bc->tmp_fn(bc->ctx);
		if (bc->spool < 0)
			return mfs_fail(bc->err, bc->spool,
					"cannot create a cache file");
	}
	rc = write_all(bc->spool, buf, len, bc->err);
	if (rc == 0)
		bc->sunk += len;
	return rc;
}

static void spool_reset(struct body_ctx *bc)
{
	if (bc->spool >= 0)
		close(bc->spool);
	bc->spool = -1;
	bc->sunk = 0;
	/* Offsets of the next response's literal count from 0 again. */
	imap_parser_set_sink(bc->c->parser, body_sink, bc);
}

static int on_fetch_body(void *ctx, const struct imap_resp *r)
{
	struct body_ctx *bc = ctx;
	const struct imap_value *att = imap_list_get(&r->data, 2);
	const struct imap_value *v = NULL;
	uint64_t uid = 0;
	int fd = -1, rc = 0;

	if (imap_atom_is(imap_list_get(&r->data, 1), "FETCH") && att) {
		v = imap_fetch_item(att, "UID");
		if (!v || imap_value_u64(v, &uid) < 0 || uid > UINT32_MAX)
			uid = 0;
		v = imap_fetch_item(att, "BODY[]");
	}
	if (!uid || !v || (v->type != IMAP_V_SUNK && v->type != IMAP_V_STRING))
		goto out;	/* e.g. a flag update: nothing of ours */
	if (bc->max_len && v->len > bc->max_len) {
		bc->over = true;
		rc = MFS_E_TOOBIG;
		goto out;
	}
	if (v->type == IMAP_V_SUNK) {
		/* The spool holds exactly this response's literal. */
		if (v->off != 0 || bc->sunk != v->len || bc->spool < 0) {
			rc = MFS_E_PROTO;
			goto out;
		}
		fd = bc->spool;
		bc->spool = -1;
	} else {
		fd = bc->tmp_fn(bc->ctx);
		if (fd < 0) {
			rc = mfs_fail(bc->err, fd, "cannot create a cache file");
			goto out;
		}
		rc = write_all(fd, v->str, v->len, bc->err);
		if (rc < 0) {
			close(fd);
			goto out;
		}
	}
	if (bc->c->trace) {
		char line[64];
		int n = snprintf(line, sizeof(line), "body of UID %u: %llu bytes",
				 (unsigned)uid, (unsigned long long)v->len);
		bc->c->trace(bc->c->trace_ctx, "S", line, (size_t)n);
	}
	bc->got++;
	rc = bc->body_fn(bc->ctx, (uint32_t)uid, fd, v->len);
out:
	spool_reset(bc);
	return rc;
}

/* A session whose selected mailbox was deleted under it refuses what
 * follows ("Mailbox was deleted under us"): give it up, so the caller
 * retries on another connection. */
static int lost_mailbox(struct imap_conn *c, int rc, struct mfs_error *err)
{
	char why[sizeof(err->msg)];

	if (rc != MFS_E_NO)
		return rc;
	snprintf(why, sizeof(why), "%s", err ? err->msg : "");
	c->broken = true;
	return mfs_fail(err, MFS_E_CLOSED, "session gave up its mailbox: %s",
			why);
}

int imap_fetch_bodies(struct imap_conn *c, const char *mailbox,
		      uint32_t uidvalidity, const uint32_t *uids, size_t n,
		      uint64_t max_len, imap_tmp_fn tmp_fn,
		      imap_body_fn body_fn, void *ctx, struct mfs_error *err)
{
	struct body_ctx bc = { .c = c, .tmp_fn = tmp_fn, .body_fn = body_fn,
			       .ctx = ctx, .spool = -1, .max_len = max_len,
			       .err = err };
	struct imap_mbstate st;
	char *cmd = NULL;
	size_t len = 0;
	bool reused = c->selected && strcmp(c->selected, mailbox) == 0;
	int rc;

	rc = conn_select(c, mailbox, false, true, &st, err);
	if (rc < 0)
		return rc;
	/* A selection kept from before may be of a mailbox since deleted
	 * and recreated: look again before saying the UIDs are gone. */
	if (st.uidvalidity != uidvalidity && reused) {
		reused = false;
		rc = conn_select(c, mailbox, false, false, &st, err);
		if (rc < 0)
			return lost_mailbox(c, rc, err);
	}
	if (st.uidvalidity != uidvalidity)
		return 0;	/* none of them exists any more */
	rc = conn_append(&cmd, &len, "UID FETCH ");
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = conn_append(&cmd, &len, "%s%u", i ? "," : "", uids[i]);
	if (rc == 0)
		rc = conn_append(&cmd, &len, " (UID BODY.PEEK[])");
	if (rc < 0) {
		rc = mfs_fail(err, rc, "out of memory");
		goto out;
	}
	imap_parser_set_sink(c->parser, body_sink, &bc);
	rc = conn_cmd(c, cmd, on_fetch_body, &bc, err);
	if (rc == 0 && bc.got == 0 && reused) {
		/* Nothing at all: the kept selection may be a stale view of
		 * a mailbox deleted under it.  Once more, freshly selected. */
		rc = conn_select(c, mailbox, false, false, &st, err);
		if (rc < 0)
			rc = lost_mailbox(c, rc, err);
		else if (st.uidvalidity == uidvalidity)
			rc = conn_cmd(c, cmd, on_fetch_body, &bc, err);
	}
	imap_parser_set_sink(c->parser, NULL, NULL);
	if (bc.spool >= 0)
		close(bc.spool);
	if (rc == MFS_E_PROTO)
		mfs_fail(err, rc, "malformed body response from %s", mailbox);
	if (bc.over)
		rc = mfs_fail(err, MFS_E_TOOBIG, "a body from %s over %llu "
			      "bytes: refused", mailbox,
			      (unsigned long long)max_len);
out:
	free(cmd);
	return rc;
}

struct one_ctx {
	int fd;
	bool used, found;
	uint64_t len;
};

static int one_tmp(void *ctx)
{
	struct one_ctx *oc = ctx;
	int fd;

	/* Only one body is asked for; a second one is the server's error. */
	if (oc->used)
		return MFS_E_PROTO;
	fd = dup(oc->fd);
	if (fd < 0)
		return MFS_E_IO;
	oc->used = true;
	return fd;
}

static int one_body(void *ctx, uint32_t uid, int fd, uint64_t len)
{
	struct one_ctx *oc = ctx;

	(void)uid;
	close(fd);
	oc->found = true;
	oc->len = len;
	return 0;
}

int imap_fetch_body(struct imap_conn *c, const char *mailbox,
		    uint32_t uidvalidity, uint32_t uid, int fd, uint64_t *len,
		    struct mfs_error *err)
{
	struct one_ctx oc = { .fd = fd };
	int rc = imap_fetch_bodies(c, mailbox, uidvalidity, &uid, 1, 0,
				   one_tmp, one_body, &oc, err);

	if (rc < 0)
		return rc;
	if (!oc.found)
		return mfs_fail(err, MFS_E_NOTFOUND, "UID %u no longer in %s",
				uid, mailbox);
	*len = oc.len;
	return 0;
}

/* Courier refuses an APPEND to the mailbox the same connection has open
 * read-only ("Current box is selected READ-ONLY").  Leave it: UNSELECT,
 * or else CLOSE, which expunges nothing after EXAMINE (RFC 3501 6.4.2). */
static int leave_readonly(struct imap_conn *c, const char *mailbox,
			  struct mfs_error *err)
{
	int rc;

	if (!c->selected || c->selected_rw || strcmp(c->selected, mailbox) != 0)
		return 0;
	rc = conn_cmd(c, (c->caps & IMAP_CAP_UNSELECT) ? "UNSELECT" : "CLOSE",
		      NULL, NULL, err);
	if (rc < 0)
		return rc;
	free(c->selected);
	c->selected = NULL;
	return 0;
}

int imap_append(struct imap_conn *c, const char *mailbox, const char *flags,
		int64_t date, const char *data, size_t len,
		struct mfs_error *err)
{
	bool plus = c->caps & IMAP_CAP_LITERALPLUS;
	char *cmd = NULL;
	char when[40] = "";
	size_t clen = 0;
	char tag[16];
	int rc;

	if (date > 0) {
		time_t t = (time_t)date;
		struct tm tm;

		gmtime_r(&t, &tm);
		snprintf(when, sizeof(when), " \"%02d-%s-%04d %02d:%02d:%02d +0000\"",
			 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
			 tm.tm_hour, tm.tm_min, tm.tm_sec);
	}
	rc = leave_readonly(c, mailbox, err);
	if (rc < 0)
		goto out;
	rc = conn_append(&cmd, &clen, "APPEND ");
	if (rc == 0)
		rc = conn_quote(&cmd, &clen, mailbox);
	if (rc == 0)
		rc = conn_append(&cmd, &clen, " (%s)%s {%zu%s}",
				 flags ? flags : "", when, len, plus ? "+" : "");
	if (rc < 0) {
		rc = mfs_fail(err, rc, "cannot quote mailbox name");
		goto out;
	}
	rc = conn_start(c, cmd, tag, err);
	if (rc == 0 && !plus)
		rc = conn_wait_continuation(c, tag, err);
	if (rc == 0)
		rc = conn_send_raw(c, data, len, err);
	if (rc == 0)
		rc = conn_send_raw(c, "\r\n", 2, err);
	if (rc == 0)
		rc = conn_finish(c, tag, NULL, NULL, err);
out:
	free(cmd);
	return rc;
}

struct search_ctx {
	char set[256];
	size_t len;
};

static int on_search(void *ctx, const struct imap_resp *r)
{
	struct search_ctx *sc = ctx;

	if (!imap_atom_is(imap_list_get(&r->data, 0), "SEARCH"))
		return 0;
	for (size_t i = 1; i < r->data.n && i <= 16; i++) {
		uint64_t n;
		int w;

		if (imap_value_u64(&r->data.items[i], &n) < 0)
			continue;
		w = snprintf(sc->set + sc->len, sizeof(sc->set) - sc->len,
			     "%s%llu", sc->len ? "," : "",
			     (unsigned long long)n);
		if (w > 0 && (size_t)w < sizeof(sc->set) - sc->len)
			sc->len += (size_t)w;
	}
	return 0;
}

struct size_match {
	uint64_t size;
	bool found;
};

static int on_size_match(void *ctx, const struct imap_msginfo *mi)
{
	struct size_match *sm = ctx;

	if (mi->size == sm->size)
		sm->found = true;
	return 0;
}

int imap_has_message(struct imap_conn *c, const char *mailbox,
		     const char *message_id, uint64_t size, bool *found,
		     struct mfs_error *err)
{
	struct search_ctx sc = { "", 0 };
	struct size_match sm = { size, false };
	char *cmd = NULL, *id = NULL;
	size_t len = 0;
	int rc;

	*found = false;
	rc = conn_select(c, mailbox, false, true, NULL, err);
	if (rc < 0)
		return rc;
	if (asprintf(&id, "<%s>", message_id) < 0)
		return mfs_fail(err, MFS_E_NOMEM, "out of memory");
	rc = conn_append(&cmd, &len, "UID SEARCH HEADER Message-ID ");
	if (rc == 0)
		rc = conn_quote(&cmd, &len, id);
	free(id);
	if (rc < 0) {
		free(cmd);
		return mfs_fail(err, rc, "unusable Message-ID");
	}
	rc = conn_cmd(c, cmd, on_search, &sc, err);
	free(cmd);
	if (rc < 0 || sc.len == 0)
		return rc;
	rc = imap_fetch_meta(c, sc.set, true, on_size_match, &sm, err);
	*found = rc == 0 && sm.found;
	return rc;
}

struct uids_ctx {
	uint32_t *uids;
	size_t max, n;
};

static int on_search_uids(void *ctx, const struct imap_resp *r)
{
	struct uids_ctx *uc = ctx;

	if (!imap_atom_is(imap_list_get(&r->data, 0), "SEARCH"))
		return 0;
	for (size_t i = 1; i < r->data.n && uc->n < uc->max; i++) {
		uint64_t v;

		if (imap_value_u64(&r->data.items[i], &v) == 0 && v &&
		    v <= UINT32_MAX)
			uc->uids[uc->n++] = (uint32_t)v;
	}
	return 0;
}

int imap_search_size(struct imap_conn *c, const char *mailbox, uint64_t size,
		     uint32_t *uids, size_t max, size_t *n,
		     struct mfs_error *err)
{
	struct uids_ctx uc = { uids, max, 0 };
	char *cmd = NULL;
	size_t len = 0;
	int rc;

	*n = 0;
	if (size == 0)
		return 0;
	rc = conn_select(c, mailbox, false, true, NULL, err);
	if (rc < 0)
		return rc;
	/* SEARCH has no "size equals": strictly between size-1 and size+1. */
	rc = conn_append(&cmd, &len, "UID SEARCH LARGER %llu SMALLER %llu",
			 (unsigned long long)size - 1,
			 (unsigned long long)size + 1);
	if (rc < 0)
		return mfs_fail(err, rc, "out of memory");
	rc = conn_cmd(c, cmd, on_search_uids, &uc, err);
	free(cmd);
	*n = uc.n;
	return rc;
}

int imap_noop(struct imap_conn *c, struct mfs_error *err)
{
	return conn_cmd(c, "NOOP", NULL, NULL, err);
}
