/* folders.c - the folder tree of a LIST answer (see folders.h).
 *
 * Three steps over all the mailboxes at once, because a name depends on
 * the siblings: every level of every server name becomes a node, known
 * by its server prefix ("Archive" and "Archive/2024"); siblings get
 * distinct names; nodes are written parents first. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "control.h"
#include "folders.h"
#include "imap_parse.h"
#include "names.h"
#include "outbox_dir.h"

/* The mount's own directories at the root; no folder is shown so. */
static const char *const reserved_top[] = { OUTBOX_DIR_NAME, CONTROL_NAME, NULL };

struct fnode {
	struct names_sibling s;	/* s.key: this level of the server name */
	char *key;		/* the server name up to this level */
	size_t comp;		/* offset of this level in key */
	size_t base;		/* length of the prefix stripped from key */
	size_t parent;		/* index of the parent node, or NONE */
	unsigned depth;
	char delim;
	const struct imap_mailbox *mb;	/* NULL: a level only implied */
	int64_t id;
};

#define NONE SIZE_MAX

struct tree {
	struct fnode *v;
	size_t n, cap;
};

static int add_node(struct tree *t, const char *name, size_t len,
		    size_t comp, size_t base, unsigned depth,
		    const struct imap_mailbox *mb)
{
	struct fnode *f;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct fnode *p = realloc(t->v, cap * sizeof(*p));

		if (!p)
			return MFS_E_NOMEM;
		t->v = p;
		t->cap = cap;
	}
	f = &t->v[t->n];
	memset(f, 0, sizeof(*f));
	f->key = strndup(name, len);
	if (!f->key)
		return MFS_E_NOMEM;
	f->comp = comp;
	f->base = base;
	f->depth = depth;
	f->delim = mb->delim;
	f->mb = len == strlen(name) ? mb : NULL;
	f->parent = NONE;
	t->n++;
	return 0;
}

static int by_key(const void *a, const void *b)
{
	return strcmp(((const struct fnode *)a)->key,
		      ((const struct fnode *)b)->key);
}

/* Every level of every name, each once; a name that begins with strip
 * starts its levels after it. */
static int build(struct tree *t, const struct imap_mailbox *v, size_t n,
		 const char *strip)
{
	size_t out = 0, sl = strip ? strlen(strip) : 0;
	int rc;

	for (size_t i = 0; i < n; i++) {
		const char *name = v[i].name;
		size_t len = strlen(name), start = 0, end, base;
		unsigned depth = 0;

		if (sl && len > sl && strncmp(name, strip, sl) == 0)
			start = sl;
		base = start;

		for (;;) {
			const char *d = v[i].delim ?
				memchr(name + start, v[i].delim, len - start) :
				NULL;

			end = d ? (size_t)(d - name) : len;
			rc = add_node(t, name, end, start, base, depth,
				      &v[i]);
			if (rc < 0)
				return rc;
			if (!d)
				break;
			start = end + 1;
			depth++;
		}
	}
	if (t->n == 0)
		return 0;
	qsort(t->v, t->n, sizeof(*t->v), by_key);
	/* A level listed for itself and implied by its children is one
	 * node; the LIST entry wins (the first, should a server repeat
	 * one). */
	for (size_t i = 0; i < t->n; i++) {
		struct fnode *k = out > 0 ? &t->v[out - 1] : NULL;

		if (!k || strcmp(k->key, t->v[i].key) != 0) {
			t->v[out++] = t->v[i];
		} else if (!k->mb && t->v[i].mb) {
			free(k->key);
			*k = t->v[i];
		} else {
			free(t->v[i].key);
		}
	}
	t->n = out;
	return 0;
}

/* The node whose key is the first len bytes of key. */
static size_t find(const struct tree *t, const char *key, size_t len)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strncmp(t->v[mid].key, key, len);

		if (c == 0 && t->v[mid].key[len] != '\0')
			c = 1;
		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NONE;
}

/* Parents, and each level's cleaned name. */
static int prepare(struct tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct fnode *f = &t->v[i];
		char *utf8 = NULL;

		if (f->comp > f->base)
			f->parent = find(t, f->key, f->comp - 1);
		f->s.key = f->key + f->comp;
		if (imap_utf7_decode(f->s.key, &utf8) < 0) {
			/* Not valid modified UTF-7: the raw name, cleaned. */
			free(utf8);
			utf8 = strdup(f->s.key);
		}
		if (!utf8)
			return MFS_E_NOMEM;
		/* A '/' inside a level (servers with '.' as delimiter) is
		 * part of the name, not a path: keep the rest of it. */
		f->s.exact = !strpbrk(utf8, "/\\");
		for (char *q = utf8; *q; q++)
			if (*q == '/' || *q == '\\')
				*q = '_';
		names_component(utf8, strlen(utf8), "_", NAMES_MAX, f->s.name);
		f->s.exact = f->s.exact && strcmp(f->s.name, utf8) == 0;
		free(utf8);
	}
	return 0;
}

static int by_parent(const void *a, const void *b)
{
	const struct fnode *x = *(struct fnode *const *)a;
	const struct fnode *y = *(struct fnode *const *)b;

	if (x->parent != y->parent)
		return x->parent < y->parent ? -1 : 1;
	return 0;
}

static int by_depth(const void *a, const void *b)
{
	const struct fnode *x = *(struct fnode *const *)a;
	const struct fnode *y = *(struct fnode *const *)b;

	if (x->depth != y->depth)
		return x->depth < y->depth ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* Distinct names among each node's siblings.  order is scratch space for
 * t->n pointers. */
static int name_siblings(struct tree *t, struct fnode **order)
{
	struct names_sibling **sib;
	size_t h;

	for (size_t i = 0; i < t->n; i++)
		order[i] = &t->v[i];
	qsort(order, t->n, sizeof(*order), by_parent);
	sib = malloc((t->n ? t->n : 1) * sizeof(*sib));
	if (!sib)
		return MFS_E_NOMEM;
	for (size_t g = 0; g < t->n; g = h) {
		size_t parent = order[g]->parent;

		for (h = g; h < t->n && order[h]->parent == parent; h++)
			sib[h - g] = &order[h]->s;
		/* Fails only when 10000 suffixes in a row are names of
		 * other siblings (a hostile server); names then repeat and
		 * the index shows one of them. */
		names_siblings(sib, h - g,
			       parent == NONE ? reserved_top : NULL);
	}
	free(sib);
	return 0;
}

struct moved_ctx {
	const struct folders_hooks *h;
};

static int on_moved(void *ctx, const struct ix_folder *f)
{
	const struct folders_hooks *h = ((struct moved_ctx *)ctx)->h;

	return h->moved ? h->moved(h->ctx, f->parent, f->name) : 0;
}

int folders_put(struct index *ix, const struct imap_mailbox *v, size_t n,
		const char *strip, const struct folders_hooks *h,
		struct mfs_error *err)
{
	struct tree t = { 0 };
	struct fnode **order = NULL;
	struct moved_ctx mc = { h };
	int rc;

	rc = build(&t, v, n, strip);
	if (rc == 0)
		rc = prepare(&t);
	if (rc == 0 && t.n > 0 && !(order = malloc(t.n * sizeof(*order))))
		rc = MFS_E_NOMEM;
	if (rc == 0 && t.n > 0)
		rc = name_siblings(&t, order);
	if (rc < 0) {
		mfs_fail(err, rc, "out of memory");
		goto out;
	}
	/* Parents first: a child's row names its parent's id. */
	for (size_t i = 0; i < t.n; i++)
		order[i] = &t.v[i];
	if (t.n > 0)
		qsort(order, t.n, sizeof(*order), by_depth);
	for (size_t i = 0; rc == 0 && i < t.n; i++) {
		struct fnode *f = order[i];
		const struct imap_mailbox *mb = f->mb;
		int64_t parent = f->parent == NONE ? 0 : t.v[f->parent].id;

		rc = index_folder_place(ix, parent, f->s.name,
					mb ? mb->name : NULL, f->delim,
					mb ? mb->flags : IMAP_MB_NOSELECT,
					&f->id, on_moved, &mc, err);
		if (rc == 0 && h && h->seen)
			rc = h->seen(h->ctx, f->id, mb);
	}
out:
	for (size_t i = 0; i < t.n; i++)
		free(t.v[i].key);
	free(t.v);
	free(order);
	return rc;
}

/* ---- special folders ---- */

static const char *const usual_trash[] = { "Trash", "Deleted Messages",
					   "Deleted Items", "Deleted", NULL };
static const char *const usual_sent[] = { "Sent", "Sent Messages",
					  "Sent Items", "Sent Mail", NULL };

struct special_ctx {
	unsigned flag;
	const char *const *usual;
	const char *configured;
	/* The best so far: 0 configured, 1 marked, 2 + k the k-th usual
	 * name; -1 none. */
	int rank;
	int64_t id;
	char *wire;
	int rc;
};

/* name's level below INBOX (INBOX.Trash on Courier and Cyrus), name
 * itself at the top level, NULL deeper down. */
static const char *short_name(const char *name, char delim)
{
	if (delim && strncasecmp(name, "INBOX", 5) == 0 && name[5] == delim &&
	    !strchr(name + 6, delim))
		return name + 6;
	return delim && strchr(name, delim) ? NULL : name;
}

static int on_special(void *ctx, const struct ix_folder *f)
{
	struct special_ctx *sc = ctx;
	char *utf8 = NULL;
	const char *sn;
	int rank = -1;

	if (!f->wire || (f->flags & IMAP_MB_NOSELECT))
		return 0;
	if (imap_utf7_decode(f->wire, &utf8) < 0) {
		free(utf8);
		return 0;
	}
	sn = short_name(utf8, f->delim);
	if (sc->configured) {
		if (strcmp(utf8, sc->configured) == 0 ||
		    (sn && strcmp(sn, sc->configured) == 0))
			rank = 0;
	} else if (f->flags & sc->flag) {
		rank = 1;
	} else if (sn) {
		for (int k = 0; sc->usual[k]; k++)
			if (strcasecmp(sn, sc->usual[k]) == 0) {
				rank = 2 + k;
				break;
			}
	}
	free(utf8);
	if (rank < 0 || (sc->rank >= 0 && rank >= sc->rank))
		return 0;
	free(sc->wire);
	sc->wire = strdup(f->wire);
	if (!sc->wire)
		return sc->rc = MFS_E_NOMEM;
	sc->rank = rank;
	sc->id = f->id;
	return 0;
}

int folders_special(struct index *ix, enum folders_role role,
		    const char *configured, int64_t *id, char **wire,
		    struct mfs_error *err)
{
	struct special_ctx sc = {
		.flag = role == FOLDERS_SENT ? IMAP_MB_SENT : IMAP_MB_TRASH,
		.usual = role == FOLDERS_SENT ? usual_sent : usual_trash,
		.configured = configured,
		.rank = -1,
	};
	int rc = index_folder_all(ix, on_special, &sc, err);

	if (rc == 0 && sc.rc < 0)
		rc = mfs_fail(err, sc.rc, "out of memory");
	if (rc < 0) {
		free(sc.wire);
		return rc;
	}
	*id = sc.id;
	if (wire)
		*wire = sc.wire;
	else
		free(sc.wire);
	return 0;
}

int folders_keep(void *ctx, const struct imap_mailbox *mb)
{
	struct folders_list *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct imap_mailbox *p = realloc(l->v, cap * sizeof(*p));

		if (!p)
			return MFS_E_NOMEM;
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n] = *mb;
	l->v[l->n].name = strdup(mb->name);
	if (!l->v[l->n].name)
		return MFS_E_NOMEM;
	l->n++;
	return 0;
}

void folders_list_clear(struct folders_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free((char *)l->v[i].name);
	free(l->v);
	memset(l, 0, sizeof(*l));
}
