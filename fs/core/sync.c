/* sync.c - LIST, then for each folder: new messages by UID range, flags
 * and expunges by a FLAGS pass over the known range. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "folders.h"
#include "imap_parse.h"
#include "log.h"
#include "mime.h"
#include "names.h"
#include "sync.h"

#define MAX_WANT 16
#define BATCH 500

struct sync {
	struct index *ix;
	struct pool *pool;
	struct imap_conn *conn;
	struct sync_hooks hooks;
	unsigned interval_s;
	bool strip_prefix;
	pthread_t thread;
	/* Guards the fields from stop to served: what is asked of the thread
	 * and what it reports.  The rest (lstatus, wb) is the thread's. */
	pthread_mutex_t lock;
	pthread_cond_t wake;	/* to the thread: work or stop */
	pthread_cond_t done;	/* from the thread: progress */
	atomic_bool stop;	/* also read without the lock, between commands */
	bool listed;
	bool down;		/* the last pass failed: don't make readers wait */
	bool full_wanted;	/* a refresh asked for a full pass */
	unsigned generation;	/* bumped after every folder pass */
	unsigned passes_started, passes_done;
	int last_rc;		/* of the last full pass */
	char last_err[256];
	time_t state_since;
	/* When each folder was last found in step with the server. */
	struct mark {
		int64_t id;
		time_t at;
	} *marks;
	size_t nmarks, capmarks;
	int64_t want[MAX_WANT];
	unsigned nwant;
	int64_t served;		/* the last wanted folder handled */
	/* Mailbox state from LIST-STATUS in the last LIST, by folder id;
	 * lets a pass skip unchanged folders without an EXAMINE. */
	struct lstatus {
		int64_t id;
		struct imap_mbstate st;
	} *lstatus;
	size_t nlisted, caplisted;
	struct wbuf *wb;	/* index writes not yet made (see wbuf_add) */
};

static void sync_mark(struct sync *s, int64_t id)
{
	time_t now = time(NULL);

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nmarks; i++)
		if (s->marks[i].id == id) {
			s->marks[i].at = now;
			goto out;
		}
	if (s->nmarks == s->capmarks) {
		size_t cap = s->capmarks ? s->capmarks * 2 : 32;
		struct mark *p = realloc(s->marks, cap * sizeof(*p));

		if (!p)
			goto out;	/* only the status file loses */
		s->marks = p;
		s->capmarks = cap;
	}
	s->marks[s->nmarks].id = id;
	s->marks[s->nmarks++].at = now;
out:
	pthread_mutex_unlock(&s->lock);
}

/* ---- index writes, batched ----
 *
 * No write transaction is ever open while the thread waits on the
 * network: FUSE-side writers (a fetched body's cache row, a message's
 * decoded parts) would wait behind a slow or stalled server and give up
 * after the index's busy timeout.  What a command's responses say is
 * gathered here and written in short transactions: when BATCH writes are
 * pending (from the response callback, between two reads) and when the
 * command has completed. */
enum wop { W_FLAGS, W_NEW, W_FILL };

struct wbuf {
	struct index *ix;
	unsigned n;
	struct wentry {
		enum wop op;
		struct ix_msg m;	/* its strings are owned here */
	} e[BATCH];
};

static void wentry_clear(struct wentry *w)
{
	free((char *)w->m.flags);
	free((char *)w->m.message_id);
	free((char *)w->m.name);
	free((char *)w->m.sender);
	free((char *)w->m.subject);
	memset(w, 0, sizeof(*w));
}

/* Forget pending writes (after a failed command). */
static void wbuf_discard(struct wbuf *wb)
{
	for (unsigned i = 0; i < wb->n; i++)
		wentry_clear(&wb->e[i]);
	wb->n = 0;
}

/* Write what is pending, in one transaction. */
static int wbuf_flush(struct wbuf *wb, struct mfs_error *err)
{
	int rc;

	if (wb->n == 0)
		return 0;
	rc = index_begin(wb->ix, err);
	if (rc < 0)
		goto out;
	for (unsigned i = 0; rc == 0 && i < wb->n; i++) {
		const struct ix_msg *m = &wb->e[i].m;

		switch (wb->e[i].op) {
		case W_FLAGS:
			rc = index_msg_set_flags(wb->ix, m->folder, m->uid,
						 m->flags, err);
			break;
		case W_NEW:
			rc = index_msg_put(wb->ix, m, err);
			break;
		case W_FILL:
			rc = index_msg_fill(wb->ix, m->folder, m->uid,
					    m->sender, m->subject,
					    m->internaldate, err);
			break;
		}
	}
	if (rc == 0)
		rc = index_commit(wb->ix, err);
	if (rc < 0)
		index_rollback(wb->ix);
out:
	wbuf_discard(wb);
	return rc;
}

static char *dup_opt(const char *s, bool *oom)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d)
		*oom = true;
	return d;
}

/* Queue one write (m's strings are copied); a full batch is written. */
static int wbuf_add(struct wbuf *wb, enum wop op, const struct ix_msg *m,
		    struct mfs_error *err)
{
	struct wentry *w = &wb->e[wb->n];
	bool oom = false;

	w->op = op;
	w->m = *m;
	w->m.flags = dup_opt(m->flags, &oom);
	w->m.message_id = dup_opt(m->message_id, &oom);
	w->m.name = dup_opt(m->name, &oom);
	w->m.sender = dup_opt(m->sender, &oom);
	w->m.subject = dup_opt(m->subject, &oom);
	if (oom) {
		wentry_clear(w);
		return mfs_fail(err, MFS_E_NOMEM, "out of memory");
	}
	if (++wb->n == BATCH)
		return wbuf_flush(wb, err);
	return 0;
}

/* ---- folder list ---- */

struct seen {
	int64_t *ids;
	size_t n, cap;
};

static int seen_add(struct seen *s, int64_t id)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		int64_t *p = realloc(s->ids, cap * sizeof(*p));

		if (!p)
			return MFS_E_NOMEM;
		s->ids = p;
		s->cap = cap;
	}
	s->ids[s->n++] = id;
	return 0;
}

static bool seen_has(const struct seen *s, int64_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->ids[i] == id)
			return true;
	return false;
}

struct drop_ctx;

struct list_ctx {
	struct sync *s;
	struct seen seen;
	struct drop_ctx *dc;	/* entries shown before, not now */
	bool moved;
	struct mfs_error *err;
};

/* The LIST response, kept until the index is written. */
static int remember_status(struct sync *s, int64_t id,
			   const struct imap_mbstate *st)
{
	if (s->nlisted == s->caplisted) {
		size_t cap = s->caplisted ? s->caplisted * 2 : 32;
		struct lstatus *p = realloc(s->lstatus, cap * sizeof(*p));

		if (!p)
			return MFS_E_NOMEM;
		s->lstatus = p;
		s->caplisted = cap;
	}
	s->lstatus[s->nlisted].id = id;
	s->lstatus[s->nlisted].st = *st;
	s->nlisted++;
	return 0;
}

static const struct imap_mbstate *listed_status(const struct sync *s,
						int64_t id)
{
	for (size_t i = 0; i < s->nlisted; i++)
		if (s->lstatus[i].id == id)
			return &s->lstatus[i].st;
	return NULL;
}

struct drop_ctx {
	struct seen *seen;
	struct seen gone, parents;
	char **names;
	size_t nnames, capnames;
};

/* The kernel is to forget the entry name in parent. */
static int forget_entry(struct drop_ctx *dc, int64_t parent, const char *name)
{
	if (dc->nnames == dc->capnames) {
		size_t cap = dc->capnames ? dc->capnames * 2 : 8;
		char **p = realloc(dc->names, cap * sizeof(*p));

		if (!p)
			return MFS_E_NOMEM;
		dc->names = p;
		dc->capnames = cap;
	}
	if (!(dc->names[dc->nnames] = strdup(name)))
		return MFS_E_NOMEM;
	dc->nnames++;
	return seen_add(&dc->parents, parent);
}

static int find_gone(void *ctx, const struct ix_folder *f)
{
	struct drop_ctx *dc = ctx;
	int rc;

	if (seen_has(dc->seen, f->id))
		return 0;
	rc = forget_entry(dc, f->parent, f->name);
	return rc < 0 ? rc : seen_add(&dc->gone, f->id);
}

static int on_folder(void *ctx, int64_t id, const struct imap_mailbox *mb)
{
	struct list_ctx *lc = ctx;
	int rc = seen_add(&lc->seen, id);

	if (rc == 0 && mb && mb->has_status)
		rc = remember_status(lc->s, id, &mb->status);
	return rc;
}

/* A folder shown under another name now (names follow the siblings). */
static int on_moved(void *ctx, int64_t parent, const char *name)
{
	struct list_ctx *lc = ctx;

	lc->moved = true;
	return forget_entry(lc->dc, parent, name);
}

static int collect_id(void *ctx, const struct ix_folder *f)
{
	return seen_add(ctx, f->id);
}

/* The prefix the folder names are shown without: the personal namespace
 * when it names a level of its own ("INBOX." with '.'), else none. */
static int strip_of(struct sync *s, char *strip, struct mfs_error *err)
{
	char delim;
	size_t n;
	int rc;

	strip[0] = '\0';
	if (!s->strip_prefix)
		return 0;
	rc = imap_namespace(s->conn, strip, &delim, err);
	if (rc == MFS_E_NO || rc == MFS_E_BAD || rc == MFS_E_PROTO) {
		/* A server that offers NAMESPACE and fails it: the tree
		 * stays as it was rather than move every folder. */
		log_debug(LOG_CAT_SYNC, "NAMESPACE: %s", err->msg);
		if (index_meta_get(s->ix, SYNC_META_STRIP, strip,
				   IMAP_NS_PREFIX_MAX, NULL) < 0)
			strip[0] = '\0';
		return 0;
	}
	n = strlen(strip);
	if (rc == 0 && (!delim || n < 2 || strip[n - 1] != delim))
		strip[0] = '\0';
	return rc;
}

static int sync_list(struct sync *s, struct mfs_error *err)
{
	struct drop_ctx dc = { 0 };
	struct list_ctx lc = { .s = s, .dc = &dc, .err = err };
	struct folders_hooks fh = { on_folder, on_moved, &lc };
	struct seen before = { 0 };
	struct folders_list listed = { 0 };
	char strip[IMAP_NS_PREFIX_MAX];
	bool changed;
	int rc;

	dc.seen = &lc.seen;
	rc = index_folder_all(s->ix, collect_id, &before, err);
	if (rc == 0)
		rc = strip_of(s, strip, err);
	if (rc == 0)
		rc = imap_list(s->conn, folders_keep, &listed, err);
	if (rc == MFS_E_NOMEM)
		mfs_fail(err, rc, "out of memory");
	if (rc < 0)
		goto out;
	/* Only now, with the whole answer here, the index: a folder's name
	 * depends on its siblings'. */
	rc = index_begin(s->ix, err);
	if (rc < 0)
		goto out;
	s->nlisted = 0;
	rc = folders_put(s->ix, listed.v, listed.n, strip, &fh, err);
	if (rc == 0)
		rc = index_meta_set(s->ix, SYNC_META_STRIP, strip, err);
	if (rc == 0)
		rc = index_folder_all(s->ix, find_gone, &dc, err);
	for (size_t i = 0; rc == 0 && i < dc.gone.n; i++) {
		log_debug(LOG_CAT_SYNC, "folder %lld gone from server",
			  (long long)dc.gone.ids[i]);
		rc = index_folder_drop(s->ix, dc.gone.ids[i], false, NULL, err);
	}
	if (rc == 0)
		rc = index_commit(s->ix, err);
	else
		index_rollback(s->ix);
	/* Directory listings are cached by the kernel until told: when the
	 * hierarchy changed anywhere, tell it about every directory (rare). */
	changed = dc.gone.n > 0 || lc.moved;
	for (size_t i = 0; !changed && i < lc.seen.n; i++)
		changed = !seen_has(&before, lc.seen.ids[i]);
	for (size_t i = 0; rc == 0 && s->hooks.entry_gone && i < dc.nnames &&
			   i < dc.parents.n; i++)
		s->hooks.entry_gone(s->hooks.ctx, dc.parents.ids[i],
				    dc.names[i]);
	if (rc == 0 && changed && s->hooks.folder_changed) {
		s->hooks.folder_changed(s->hooks.ctx, 0);
		for (size_t i = 0; i < lc.seen.n; i++)
			s->hooks.folder_changed(s->hooks.ctx, lc.seen.ids[i]);
	}
out:
	free(before.ids);
	free(lc.seen.ids);
	free(dc.gone.ids);
	free(dc.parents.ids);
	for (size_t i = 0; i < dc.nnames; i++)
		free(dc.names[i]);
	free(dc.names);
	folders_list_clear(&listed);
	return rc;
}

/* ---- one folder ---- */

struct uidset {
	uint32_t *uids;
	size_t n, cap;
};


static int uidset_add(struct uidset *u, uint32_t v)
{
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 64;
		uint32_t *p = realloc(u->uids, cap * sizeof(*p));

		if (!p)
			return MFS_E_NOMEM;
		u->uids = p;
		u->cap = cap;
	}
	u->uids[u->n++] = v;
	return 0;
}

struct fold_ctx {
	struct sync *s;
	int64_t folder;
	uint32_t above;		/* only UIDs above this are new */
	struct uidset present;
	unsigned added, flagged;
	struct vanished_ctx *vanished;
	struct mfs_error *err;
};

static int on_flags(void *ctx, const struct imap_msginfo *mi)
{
	struct fold_ctx *fc = ctx;
	struct ix_msg m = { .folder = fc->folder, .uid = mi->uid,
			    .flags = mi->flags };
	int rc = uidset_add(&fc->present, mi->uid);

	if (rc < 0)
		return mfs_fail(fc->err, rc, "out of memory");
	fc->flagged++;
	return wbuf_add(fc->s->wb, W_FLAGS, &m, fc->err);
}

static int on_new(void *ctx, const struct imap_msginfo *mi)
{
	struct fold_ctx *fc = ctx;
	struct mime_summary sum = { 0 };
	char name[NAMES_MAX + 1];
	struct ix_msg m = { 0 };
	int rc;

	/* "N:*" always includes the highest UID, even below N. */
	if (mi->uid <= fc->above)
		return 0;
	if (mi->header)
		mime_summary_parse(mi->header, mi->header_len, &sum);
	m.folder = fc->folder;
	m.uid = mi->uid;
	m.size = mi->size;
	m.date = sum.date_valid ? sum.date : mi->internaldate;
	m.flags = mi->flags;
	m.message_id = sum.message_id;
	names_message(m.date, sum.from, sum.subject, mi->uid, name);
	m.name = name;
	m.sender = sum.from;
	m.subject = sum.subject;
	m.internaldate = mi->internaldate;
	/* Written in batches: readers see progress on a big first sync. */
	rc = wbuf_add(fc->s->wb, W_NEW, &m, fc->err);
	mime_summary_clear(&sum);
	if (rc < 0)
		return rc;
	fc->added++;
	return 0;
}

/* Rows from an index made before sender, subject and internaldate were
 * kept get them from one more header fetch, once. */
static int on_fill(void *ctx, const struct imap_msginfo *mi)
{
	struct fold_ctx *fc = ctx;
	struct mime_summary sum = { 0 };
	struct ix_msg m = { .folder = fc->folder, .uid = mi->uid,
			    .internaldate = mi->internaldate };
	int rc;

	if (mi->header)
		mime_summary_parse(mi->header, mi->header_len, &sum);
	m.sender = sum.from;
	m.subject = sum.subject;
	rc = wbuf_add(fc->s->wb, W_FILL, &m, fc->err);
	mime_summary_clear(&sum);
	if (rc < 0)
		return rc;
	fc->added++;
	return 0;
}

/* A command whose callbacks queued index writes: the rest of them now
 * that it has completed, or none when it failed. */
static int cmd_done(struct sync *s, int rc, struct mfs_error *err)
{
	if (rc == 0)
		return wbuf_flush(s->wb, err);
	wbuf_discard(s->wb);
	return rc;
}

static int fill_old_rows(struct sync *s, int64_t folder, const char *wire,
			 struct mfs_error *err)
{
	struct fold_ctx fc = { .s = s, .folder = folder, .err = err };
	uint32_t lo = 0, hi = 0;
	char set[32];
	int rc;

	rc = index_msg_unfilled(s->ix, folder, &lo, &hi, err);
	if (rc == MFS_E_NOTFOUND)
		return 0;
	if (rc < 0)
		return rc;
	snprintf(set, sizeof(set), "%u:%u", lo, hi);
	rc = imap_fetch_meta(s->conn, set, true, on_fill, &fc, err);
	rc = cmd_done(s, rc, err);
	if (rc < 0)
		return rc;
	/* Rows between lo and hi the server no longer has stay unfilled
	 * until the flags pass drops them. */
	log_debug(LOG_CAT_SYNC, "%s: UIDs %s fetched again to fill in rows "
		  "of an older index (%u headers)", wire, set, fc.added);
	return 0;
}

static int cmp_uid(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

struct vanished_ctx {
	struct uidset lo, hi;	/* ranges, in server order */
};

static int on_vanished(void *ctx, uint32_t lo, uint32_t hi)
{
	struct fold_ctx *fc = ctx;
	struct vanished_ctx *vc = fc->vanished;
	int rc = uidset_add(&vc->lo, lo);

	return rc < 0 ? rc : uidset_add(&vc->hi, hi);
}

static bool in_ranges(const struct vanished_ctx *vc, uint32_t uid)
{
	for (size_t i = 0; i < vc->lo.n; i++)
		if (uid >= vc->lo.uids[i] && uid <= vc->hi.uids[i])
			return true;
	return false;
}

struct gone_ctx {
	const struct uidset *present;		/* or: */
	const struct vanished_ctx *vanished;
	uint32_t upto;		/* present covers UIDs 1:upto only */
	struct uidset gone;
	struct sync *s;
};

static int find_gone_msg(void *ctx, const struct ix_msg *m)
{
	struct gone_ctx *gc = ctx;

	if (gc->vanished) {
		if (!in_ranges(gc->vanished, m->uid))
			return 0;
	} else if (m->uid > gc->upto) {
		/* Fetched as new in this very pass, after the range was
		 * asked for (with CONDSTORE, expunges are looked for last):
		 * its absence from present means nothing. */
		return 0;
	} else if (gc->present->n > 0 &&
		   bsearch(&m->uid, gc->present->uids, gc->present->n,
			   sizeof(uint32_t), cmp_uid)) {
		return 0;
	}
	if (gc->s->hooks.msg_gone)
		gc->s->hooks.msg_gone(gc->s->hooks.ctx, m->folder, m->uid,
				      m->name);
	return uidset_add(&gc->gone, m->uid);
}

/* Delete the rows gc finds gone, in one short transaction. */
static int drop_gone(struct sync *s, struct gone_ctx *gc, int64_t folder,
		     struct mfs_error *err)
{
	int rc = index_begin(s->ix, err);

	if (rc < 0)
		return rc;
	rc = index_msg_list(s->ix, folder, find_gone_msg, gc, err);
	for (size_t i = 0; rc == 0 && i < gc->gone.n; i++)
		rc = index_msg_delete(s->ix, folder, gc->gone.uids[i], err);
	if (rc == 0)
		rc = index_commit(s->ix, err);
	if (rc < 0)
		index_rollback(s->ix);
	return rc;
}

/* Every UID up to max with its flags: what is missing was expunged. */
static int full_flags_pass(struct sync *s, struct fold_ctx *fc, uint32_t max,
			   struct gone_ctx *gc, struct mfs_error *err)
{
	char set[32];
	int rc;

	snprintf(set, sizeof(set), "1:%u", max);
	fc->present.n = 0;
	rc = imap_fetch_meta(s->conn, set, false, on_flags, fc, err);
	rc = cmd_done(s, rc, err);
	if (rc < 0)
		return rc;
	if (fc->present.n > 0)
		qsort(fc->present.uids, fc->present.n, sizeof(uint32_t),
		      cmp_uid);
	gc->vanished = NULL;
	gc->upto = max;
	return drop_gone(s, gc, fc->folder, err);
}

/* The folder's rows go, and it gets a new id (UIDVALIDITY changed). */
static int renew_folder(struct sync *s, int64_t id, int64_t *new_id,
			struct mfs_error *err)
{
	int rc = index_begin(s->ix, err);

	if (rc < 0)
		return rc;
	rc = index_folder_drop(s->ix, id, true, new_id, err);
	if (rc == 0)
		rc = index_commit(s->ix, err);
	if (rc < 0)
		index_rollback(s->ix);
	return rc;
}

/* Resync one folder.  With CONDSTORE and a previous pass, only what
 * changed since its HIGHESTMODSEQ is fetched; QRESYNC also names the
 * expunged UIDs (VANISHED).  Otherwise flags of the whole known UID range
 * are compared.  New messages are always "max+1:*".  The index is written
 * as the answers come (see wbuf_add); the folder's state last, so a pass
 * cut short is done again. */
static int sync_folder(struct sync *s, const struct ix_folder *f,
		       struct mfs_error *err)
{
	struct imap_mbstate st;
	struct vanished_ctx vc = { 0 };
	struct fold_ctx fc = { .s = s, .folder = f->id, .err = err,
			       .vanished = &vc };
	struct gone_ctx gc = { .present = &fc.present, .s = s };
	bool incremental, qresync;
	unsigned caps = imap_caps(s->conn);
	char set[32];
	uint32_t max = 0;
	int rc;

	rc = imap_examine(s->conn, f->wire, &st, err);
	if (rc < 0)
		return rc;
	incremental = f->synced && f->highestmodseq && st.highestmodseq &&
		      (caps & IMAP_CAP_CONDSTORE);
	if (f->uidvalidity && f->uidvalidity != st.uidvalidity) {
		log_msg(LOG_INFO, "%s: UIDVALIDITY changed, rebuilding",
			f->wire);
		rc = renew_folder(s, f->id, &fc.folder, err);
		if (rc < 0)
			return rc;
		incremental = false;
		/* The name now leads to a new inode: the kernel must look
		 * it up again, not keep the old folder's. */
		if (s->hooks.entry_gone && f->name)
			s->hooks.entry_gone(s->hooks.ctx, f->parent, f->name);
		if (s->hooks.folder_changed)
			s->hooks.folder_changed(s->hooks.ctx, f->parent);
	} else if (f->synced && st.highestmodseq &&
		   st.highestmodseq == f->highestmodseq &&
		   st.uidnext == f->uidnext) {
		/* CONDSTORE says nothing changed */
		rc = fill_old_rows(s, f->id, f->wire, err);
		if (rc == 0)
			sync_mark(s, f->id);
		return rc;
	}
	rc = fill_old_rows(s, fc.folder, f->wire, err);
	if (rc < 0)
		return rc;
	qresync = incremental && imap_enable_qresync(s->conn, NULL) == 0;
	rc = index_msg_max_uid(s->ix, fc.folder, &max, err);
	if (rc < 0)
		goto out;
	/* Everything below the UIDNEXT of the last complete pass has been
	 * seen: a message that left the index since (an rm on its way to the
	 * server) must not come back as "new". */
	if (incremental || (f->synced && f->uidvalidity == st.uidvalidity))
		max = max > f->uidnext - 1 || !f->uidnext ? max :
							    f->uidnext - 1;
	if (max > 0 && incremental) {
		snprintf(set, sizeof(set), "1:%u", max);
		rc = imap_fetch_changes(s->conn, set, f->highestmodseq,
					on_flags, qresync ? on_vanished : NULL,
					&fc, err);
		rc = cmd_done(s, rc, err);
		if (rc == 0 && vc.lo.n > 0) {
			gc.vanished = &vc;
			rc = drop_gone(s, &gc, fc.folder, err);
		}
	} else if (max > 0) {
		rc = full_flags_pass(s, &fc, max, &gc, err);
	}
	if (rc < 0)
		goto out;
	/* UIDs end at 2^32 - 1: above that nothing can be new (and
	 * "max+1:*" would wrap to the invalid "0:*"). */
	if (max < UINT32_MAX && st.exists > 0 &&
	    (st.uidnext == 0 || st.uidnext > max + 1)) {
		fc.above = max;
		snprintf(set, sizeof(set), "%u:*", max + 1);
		rc = imap_fetch_meta(s->conn, set, true, on_new, &fc, err);
		rc = cmd_done(s, rc, err);
		if (rc < 0)
			goto out;
	}
	if (max > 0 && incremental && !qresync) {
		/* CONDSTORE alone does not report expunges: when the count
		 * says some happened, find them the long way. */
		unsigned n = 0, sub = 0;

		rc = index_folder_counts(s->ix, fc.folder, &n, &sub, err);
		if (rc == 0 && n != st.exists)
			rc = full_flags_pass(s, &fc, max, &gc, err);
		if (rc < 0)
			goto out;
	}
	rc = index_folder_set_state(s->ix, fc.folder, st.uidvalidity,
				    st.uidnext, st.highestmodseq, err);
	if (rc < 0)
		goto out;
	sync_mark(s, fc.folder);
	log_debug(LOG_CAT_SYNC, "%s: %u new, %zu gone, %u flag updates%s",
		  f->wire, fc.added, gc.gone.n, fc.flagged,
		  incremental ? (qresync ? " (QRESYNC)" : " (CONDSTORE)") : "");
out:
	/* What was written stays: it is what the server said.  A pass cut
	 * short left the folder's state as it was, so the next one looks
	 * again. */
	if ((fc.added || gc.gone.n) && s->hooks.folder_changed)
		s->hooks.folder_changed(s->hooks.ctx, fc.folder);
	free(fc.present.uids);
	free(gc.gone.uids);
	free(vc.lo.uids);
	free(vc.hi.uids);
	return rc;
}

/* ---- the thread ---- */

struct folder_copy {
	struct ix_folder f;
	char *wire, *name;
};

static int copy_folder(void *ctx, const struct ix_folder *f)
{
	struct folder_copy *fc = ctx;

	fc->f = *f;
	fc->wire = f->wire ? strdup(f->wire) : NULL;
	fc->name = strdup(f->name);
	fc->f.wire = fc->wire;
	fc->f.name = fc->name;
	return 0;
}

struct ids {
	int64_t *v;
	size_t n, cap;
};

static int collect_selectable(void *ctx, const struct ix_folder *f)
{
	struct ids *ids = ctx;

	if (!f->wire || (f->flags & IMAP_MB_NOSELECT))
		return 0;
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? ids->cap * 2 : 32;
		int64_t *p = realloc(ids->v, cap * sizeof(*p));

		if (!p)
			return MFS_E_NOMEM;
		ids->v = p;
		ids->cap = cap;
	}
	ids->v[ids->n++] = f->id;
	return 0;
}

/* Rows of an upgraded index to fill in: the folder must be examined even
 * when LIST-STATUS says nothing changed.  On doubt, yes. */
static bool has_unfilled(struct sync *s, int64_t folder)
{
	uint32_t lo, hi;

	return index_msg_unfilled(s->ix, folder, &lo, &hi, NULL) !=
	       MFS_E_NOTFOUND;
}

/* wanted: someone asked for this folder, perhaps right after changing it,
 * so the LIST-STATUS snapshot of this pass may predate the change. */
static int sync_one(struct sync *s, int64_t id, bool wanted,
		    struct mfs_error *err)
{
	struct folder_copy fc = { 0 };
	int rc;

	const struct imap_mbstate *ls;

	rc = index_folder_get(s->ix, id, copy_folder, &fc, err);
	if (rc == MFS_E_NOTFOUND)
		return 0;	/* dropped since */
	ls = wanted ? NULL : listed_status(s, id);
	if (ls && fc.wire && imap_is_selected(s->conn, fc.wire))
		ls = NULL;	/* our own stale view of it: EXAMINE again */
	if (rc == 0 && ls && fc.f.synced && ls->highestmodseq &&
	    ls->uidvalidity == fc.f.uidvalidity &&
	    ls->uidnext == fc.f.uidnext &&
	    ls->highestmodseq == fc.f.highestmodseq && !has_unfilled(s, id)) {
		log_debug(LOG_CAT_SYNC, "%s: unchanged (LIST-STATUS)", fc.wire);
		sync_mark(s, id);
	} else if (rc == 0 && fc.wire && !(fc.f.flags & IMAP_MB_NOSELECT)) {
		rc = sync_folder(s, &fc.f, err);
	}
	free(fc.wire);
	free(fc.name);
	if (rc == MFS_E_NO || rc == MFS_E_NOTFOUND) {
		log_msg(LOG_WARNING, "cannot examine folder: %s", err->msg);
		rc = 0;
	}
	return rc;
}

static void progress(struct sync *s)
{
	pthread_mutex_lock(&s->lock);
	s->generation++;
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
}

static int64_t next_wanted(struct sync *s)
{
	int64_t id = 0;

	pthread_mutex_lock(&s->lock);
	if (s->nwant > 0) {
		id = s->want[0];
		memmove(s->want, s->want + 1, --s->nwant * sizeof(s->want[0]));
	}
	pthread_mutex_unlock(&s->lock);
	return id;
}

/* Sync the folders readers or the IDLE watchers asked for, only. */
static int serve_wanted(struct sync *s, struct mfs_error *err)
{
	int64_t want;
	int rc = 0;

	while (rc == 0 && !s->stop && (want = next_wanted(s)) != 0) {
		rc = sync_one(s, want, true, err);
		pthread_mutex_lock(&s->lock);
		s->served = want;
		pthread_mutex_unlock(&s->lock);
		progress(s);
	}
	return rc;
}

static int full_pass(struct sync *s, struct mfs_error *err)
{
	struct ids ids = { 0 };
	int rc;

	rc = sync_list(s, err);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&s->lock);
	s->listed = true;
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
	rc = index_folder_all(s->ix, collect_selectable, &ids, err);
	for (size_t i = 0; rc == 0 && i < ids.n && !s->stop; i++) {
		/* A reader waiting on a folder goes first. */
		rc = serve_wanted(s, err);
		if (rc == 0)
			rc = sync_one(s, ids.v[i], false, err);
		progress(s);
	}
	free(ids.v);
	return rc;
}

static void set_state(struct sync *s, int rc, const struct mfs_error *err)
{
	bool down = rc < 0;

	pthread_mutex_lock(&s->lock);
	if (down != s->down || !s->state_since)
		s->state_since = time(NULL);
	s->down = down;
	if (down)
		snprintf(s->last_err, sizeof(s->last_err), "%s",
			 err->msg[0] ? err->msg : mfs_strerror(rc));
	pthread_mutex_unlock(&s->lock);
}

static int64_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* A full pass (LIST, then every folder) every interval_s or on request;
 * in between only the folders someone asked for.  After a failure, wait
 * with exponential backoff (1 s doubling to 60 s) before trying again,
 * unless a refresh asks sooner. */
static void *sync_main(void *arg)
{
	struct sync *s = arg;
	unsigned backoff = 1;
	int64_t next_full = 0;

	while (!s->stop) {
		struct mfs_error err = { 0 };
		struct timespec until;
		bool full;
		int rc = 0;

		pthread_mutex_lock(&s->lock);
		full = s->full_wanted || !s->listed || now_s() >= next_full;
		if (full) {
			s->full_wanted = false;
			s->passes_started++;
		}
		pthread_mutex_unlock(&s->lock);
		if (!imap_usable(s->conn)) {
			imap_close(s->conn);
			s->conn = NULL;
			rc = pool_open_extra(s->pool, &s->conn, &err);
		}
		if (rc == 0)
			rc = full ? full_pass(s, &err) : serve_wanted(s, &err);
		if (rc < 0)
			log_msg(LOG_WARNING, "sync: %s; retrying in %u s",
				err.msg[0] ? err.msg : mfs_strerror(rc),
				backoff);
		set_state(s, rc, &err);
		pthread_mutex_lock(&s->lock);
		if (full) {
			s->passes_done++;
			s->last_rc = rc;
			next_full = now_s() + (rc < 0 ? 0 : s->interval_s);
		}
		/* Wake waiters, with news or to give up on the index. */
		s->generation++;
		pthread_cond_broadcast(&s->done);
		clock_gettime(CLOCK_REALTIME, &until);
		if (rc < 0) {
			until.tv_sec += backoff;
			backoff = backoff < 60 ? backoff * 2 : 60;
		} else {
			until.tv_sec += next_full - now_s();
			backoff = 1;
		}
		while (!s->stop && !s->full_wanted && (rc < 0 || s->nwant == 0) &&
		       pthread_cond_timedwait(&s->wake, &s->lock, &until) !=
			       ETIMEDOUT)
			;
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

int sync_refresh(struct sync *s, long timeout_s)
{
	struct timespec until;
	unsigned target;
	int rc;

	pthread_mutex_lock(&s->lock);
	s->full_wanted = true;
	/* A pass already under way may have listed before the caller's
	 * change: wait for one that starts from now. */
	target = s->passes_started + 1;
	pthread_cond_signal(&s->wake);
	if (timeout_s <= 0) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_s;
	rc = MFS_E_TIMEOUT;
	while (!s->stop) {
		if ((int)(s->passes_done - target) >= 0) {
			rc = s->last_rc;
			break;
		}
		if (pthread_cond_timedwait(&s->done, &s->lock, &until) ==
		    ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void sync_relist(struct sync *s)
{
	pthread_mutex_lock(&s->lock);
	if (!s->down) {
		s->full_wanted = true;
		pthread_cond_signal(&s->wake);
	}
	pthread_mutex_unlock(&s->lock);
}

int sync_status(struct sync *s, struct sync_state *st)
{
	pthread_mutex_lock(&s->lock);
	st->online = s->listed && !s->down;
	st->ever_listed = s->listed;
	st->since = s->state_since;
	snprintf(st->error, sizeof(st->error), "%s", s->down ? s->last_err : "");
	pthread_mutex_unlock(&s->lock);
	return 0;
}

time_t sync_folder_time(struct sync *s, int64_t folder)
{
	time_t at = 0;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nmarks; i++)
		if (s->marks[i].id == folder)
			at = s->marks[i].at;
	pthread_mutex_unlock(&s->lock);
	return at;
}

int sync_start(const struct sync_opts *o, struct sync **out)
{
	struct sync *s = calloc(1, sizeof(*s));

	if (!s || !(s->wb = calloc(1, sizeof(*s->wb)))) {
		free(s);
		return MFS_E_NOMEM;
	}
	s->wb->ix = o->ix;
	s->ix = o->ix;
	s->pool = o->pool;
	s->hooks = o->hooks;
	s->interval_s = o->interval_s ? o->interval_s : 60;
	s->strip_prefix = o->strip_prefix;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->done, NULL);
	if (pthread_create(&s->thread, NULL, sync_main, s) != 0) {
		free(s->wb);
		free(s);
		return MFS_E_NOMEM;
	}
	*out = s;
	return 0;
}

void sync_stop(struct sync *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	imap_close(s->conn);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->done);
	pthread_mutex_destroy(&s->lock);
	free(s->lstatus);
	free(s->marks);
	free(s->wb);
	free(s);
}

static void deadline(struct timespec *ts, long timeout_s)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += timeout_s;
}

void sync_wait_list(struct sync *s, long timeout_s)
{
	struct timespec until;

	deadline(&until, timeout_s);
	pthread_mutex_lock(&s->lock);
	while (!s->listed && !s->stop && !s->down &&
	       pthread_cond_timedwait(&s->done, &s->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&s->lock);
}

struct synced_ctx {
	bool synced;
};

static int get_synced(void *ctx, const struct ix_folder *f)
{
	((struct synced_ctx *)ctx)->synced = f->synced;
	return 0;
}

void sync_request(struct sync *s, int64_t folder)
{
	bool dup = false;

	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->nwant; i++)
		dup |= s->want[i] == folder;
	if (!dup && s->nwant < MAX_WANT)
		s->want[s->nwant++] = folder;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

void sync_wait_folder(struct sync *s, int64_t folder, long timeout_s)
{
	struct timespec until;
	struct synced_ctx sc = { false };
	bool queued = false;

	deadline(&until, timeout_s);
	for (;;) {
		unsigned gen;
		bool give_up;

		if (index_folder_get(s->ix, folder, get_synced, &sc, NULL) < 0 ||
		    sc.synced)
			return;
		pthread_mutex_lock(&s->lock);
		if (!queued) {
			if (s->served == folder)
				s->served = 0;
			bool dup = false;

			for (unsigned i = 0; i < s->nwant; i++)
				dup |= s->want[i] == folder;
			if (!dup && s->nwant < MAX_WANT)
				s->want[s->nwant++] = folder;
			queued = true;
			pthread_cond_signal(&s->wake);
		}
		gen = s->generation;
		while (gen == s->generation && !s->stop)
			if (pthread_cond_timedwait(&s->done, &s->lock,
						   &until) == ETIMEDOUT)
				break;
		/* Timed out, stopping or offline: answer from the index. */
		give_up = gen == s->generation || s->stop || s->down ||
			  s->served == folder;
		pthread_mutex_unlock(&s->lock);
		if (give_up)
			return;
	}
}
