/* fsops.c - FUSE low-level callbacks over the index and the body cache. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "changes.h"
#include "fsops.h"
#include "import.h"
#include "inode.h"
#include "imap_parse.h"
#include "log.h"
#include "outbox_dir.h"
#include "overwrite.h"
#include "watch.h"

/* A message's bytes never change for its UID: let the kernel keep them. */
#define MSG_TIMEOUT 86400.0
/* Folder listings change; issue-4 style invalidation narrows this. */
#define DIR_TIMEOUT 1.0

struct note {
	fuse_ino_t parent;	/* with name: an entry; else ino: an inode */
	fuse_ino_t ino;
	char *name;
	struct note *next;
};

#define MAX_SUBTREES 8

struct fsops {
	/* The other subtrees (outbox/, .mailfs/, import), set up before the
	 * session runs and cleared after it: read without a lock. */
	struct subtree trees[MAX_SUBTREES];
	unsigned ntrees;
	const struct subtree *by_kind[16];	/* 4 bits of kind */
	struct changes *act;	/* changes to the mailbox */
	struct import *imp;	/* files being copied into folders */
	struct watch *watch;	/* IDLE on recently used folders */
	struct index *ix;
	struct cache *cache;
	struct sync *sync;
	long timeout_s;
	uid_t uid;
	gid_t gid;
	time_t started;
	struct fuse_session *se;
	pthread_t notifier;
	/* Guards the rest of this struct: notifier_running, stop, the notes
	 * queue (head, tail), resized and snaps.  A leaf: held for those
	 * fields only, never across a call out. */
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* to the notifier: a note, or stop */
	bool notifier_running;
	bool stop;
	struct note *head, **tail;
	/* Messages whose size the server misreported, lately: the kernel
	 * may still hold the wrong size (the notifier runs on its own time),
	 * so their opens bypass it.  A small ring; guarded by lock. */
	fuse_ino_t resized[64];
	unsigned nresized;
	struct dirsnap *snaps;	/* open directory snapshots */
};

static void notify(struct fsops *o, fuse_ino_t parent, fuse_ino_t ino,
		   const char *name);

static struct fsops *ctx_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* ---- dispatch: the subtree that answers, or NULL for the message tree */

static const struct subtree *owner(const struct fsops *o, fuse_ino_t ino)
{
	return o->by_kind[ino_kind(ino) & 15];
}

/* The subtree whose directory is name at the root. */
static const struct subtree *rooted(const struct fsops *o, const char *name)
{
	for (unsigned i = 0; i < o->ntrees; i++)
		if (o->trees[i].name && strcmp(o->trees[i].name, name) == 0)
			return &o->trees[i];
	return NULL;
}

/* What fsops.c answers for an operation a subtree leaves NULL. */
#define SUBTREE_CALL(t, op, refuse, ...)                                     \
	do {                                                                 \
		if ((t)->ops->op)                                            \
			(t)->ops->op((t)->self, __VA_ARGS__);                \
		else                                                         \
			refuse;                                              \
	} while (0)

/* ---- attributes ---- */

/* What a write to a message, a part or a directory's attributes gets: a
 * message never changes (new bytes would be a new message), which on a
 * writable mount is a refusal, not a read-only file system. */
static int immutable(const struct fsops *o)
{
	return o->act ? EPERM : EROFS;
}

/* A message opened for writing has a struct overwrite as its handle,
 * told from a plain descriptor by the top bit (never set in a pointer
 * user space can hold, nor in a descriptor). */
#define OW_BIT ((uint64_t)1 << 63)

static struct overwrite *ow_of(const struct fuse_file_info *fi)
{
	return fi && (fi->fh & OW_BIT) ?
		       (struct overwrite *)(uintptr_t)(fi->fh & ~OW_BIT) :
		       NULL;
}

/* A decoded part open for reading: its range of the message's parts
 * file.  Told from the others by the next bit down. */
#define PART_BIT ((uint64_t)1 << 62)

struct part_fh {
	int fd;
	uint64_t off, size;
	/* Reads answered.  The kernel sends RELEASE only after every READ
	 * of the file has its answer, but orders them through /dev/fuse,
	 * where ThreadSanitizer cannot see it; each read's release and the
	 * RELEASE's acquire of this count are that order, made visible. */
	atomic_uint answered;
};

static struct part_fh *part_of(const struct fuse_file_info *fi)
{
	return fi && !(fi->fh & OW_BIT) && (fi->fh & PART_BIT) ?
		       (struct part_fh *)(uintptr_t)(fi->fh & ~PART_BIT) :
		       NULL;
}

static int fd_of(const struct fuse_file_info *fi)
{
	struct overwrite *w = ow_of(fi);

	return w ? overwrite_fd(w) : (int)fi->fh;
}

/* The mount runs with default_permissions, so the kernel checks these
 * modes before a change reaches us: on a writable mount the owner must
 * have write permission on folders (rm, mv, mkdir, cp in) and messages
 * (setfattr user.mail.flags), or only root could change anything. */
static void dir_attr(struct fsops *o, fuse_ino_t ino, time_t mtime,
		     struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | (o->act ? 0755 : 0555);
	st->st_nlink = 2;
	st->st_uid = o->uid;
	st->st_gid = o->gid;
	st->st_mtime = st->st_ctime = st->st_atime = mtime;
}

static void file_attr(struct fsops *o, fuse_ino_t ino, uint64_t size,
		      time_t mtime, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | (o->act ? 0644 : 0444);
	st->st_nlink = 1;
	st->st_uid = o->uid;
	st->st_gid = o->gid;
	st->st_size = (off_t)size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_mtime = st->st_ctime = st->st_atime = mtime;
}

struct msg_copy {
	bool found;
	uint64_t size;
	int64_t date;
	bool parts_known;
	char name[NAMES_MAX + 1];
	char *flags;
	char *message_id;
};

static int copy_msg(void *ctx, const struct ix_msg *m)
{
	struct msg_copy *c = ctx;

	c->found = true;
	c->size = m->size;
	c->date = m->date;
	c->parts_known = m->parts_known;
	snprintf(c->name, sizeof(c->name), "%s", m->name);
	return 0;
}

static int copy_msg_all(void *ctx, const struct ix_msg *m)
{
	struct msg_copy *c = ctx;

	copy_msg(ctx, m);
	c->flags = strdup(m->flags ? m->flags : "");
	c->message_id = m->message_id ? strdup(m->message_id) : NULL;
	return c->flags ? 0 : MFS_E_NOMEM;
}

struct folder_copy {
	bool found;
	bool synced;
	unsigned flags;
	uint32_t uidvalidity;
	char *wire;
};

static int copy_folder(void *ctx, const struct ix_folder *f)
{
	struct folder_copy *c = ctx;

	c->found = true;
	c->synced = f->synced;
	c->flags = f->flags;
	c->uidvalidity = f->uidvalidity;
	c->wire = f->wire ? strdup(f->wire) : NULL;
	return 0;
}

struct part_copy {
	unsigned n;
	uint64_t size;
};

static int copy_part(void *ctx, const struct ix_part *p)
{
	struct part_copy *c = ctx;

	c->n = p->n;
	c->size = p->size;
	return 0;
}

/* Attributes of ino from the index; 0 or a negative mfs_err. */
static int node_attr(struct fsops *o, fuse_ino_t ino, struct stat *st,
		     double *timeout)
{
	struct ino_tree n = ino_tree_parse(ino);
	struct folder_copy fc = { 0 };
	struct msg_copy mc = { 0 };
	struct part_copy pc = { 0 };
	int rc;

	switch (n.kind) {
	case INO_ROOT:
		dir_attr(o, ino, o->started, st);
		*timeout = DIR_TIMEOUT;
		return 0;
	case INO_FOLDER:
		rc = index_folder_get(o->ix, n.folder, copy_folder, &fc, NULL);
		free(fc.wire);
		if (rc < 0)
			return rc;
		dir_attr(o, ino, o->started, st);
		*timeout = DIR_TIMEOUT;
		return 0;
	case INO_MESSAGE:
	case INO_DECODED:
		rc = index_msg_get(o->ix, n.folder, n.uid, copy_msg, &mc, NULL);
		if (rc == MFS_E_NOTFOUND) {
			struct changes_moved mv;

			if (!changes_moved(o->act, n.folder, n.uid, NULL, 0, &mv))
				return rc;
			if (n.kind == INO_MESSAGE)
				file_attr(o, ino, mv.size, (time_t)mv.date, st);
			else
				dir_attr(o, ino, (time_t)mv.date, st);
			*timeout = 0;
			return 0;
		}
		if (rc < 0)
			return rc;
		if (n.kind == INO_MESSAGE)
			file_attr(o, ino, mc.size, (time_t)mc.date, st);
		else
			dir_attr(o, ino, (time_t)mc.date, st);
		*timeout = MSG_TIMEOUT;
		return 0;
	case INO_PART:
		rc = index_msg_get(o->ix, n.folder, n.uid, copy_msg, &mc, NULL);
		if (rc == 0)
			rc = index_part_get(o->ix, n.folder, n.uid, n.part,
					    copy_part, &pc, NULL);
		if (rc < 0)
			return rc;
		file_attr(o, ino, pc.size, (time_t)mc.date, st);
		*timeout = MSG_TIMEOUT;
		return 0;
	default:	/* another subtree's: not reached through here */
		break;
	}
	return MFS_E_NOTFOUND;
}

static int fetch_key(struct fsops *o, int64_t folder, uint32_t uid,
		     struct cache_key *k, char **wire)
{
	struct folder_copy fc = { 0 };
	int rc = index_folder_get(o->ix, folder, copy_folder, &fc, NULL);

	if (rc < 0)
		return rc;
	if (!fc.wire)
		return MFS_E_NOTFOUND;
	*wire = fc.wire;
	*k = (struct cache_key){ .folder = folder, .mailbox = fc.wire,
				 .uidvalidity = fc.uidvalidity, .uid = uid };
	return 0;
}

static void ensure_folder_listed(struct fsops *o, int64_t folder)
{
	struct folder_copy fc = { 0 };

	if (index_folder_get(o->ix, folder, copy_folder, &fc, NULL) == 0 &&
	    !fc.synced && fc.wire && !(fc.flags & IMAP_MB_NOSELECT) &&
	    o->sync)
		sync_wait_folder(o->sync, folder, o->timeout_s);
	free(fc.wire);
}

struct count_ctx {
	unsigned n;
};

static int count_folder(void *ctx, const struct ix_folder *f)
{
	(void)f;
	((struct count_ctx *)ctx)->n++;
	return 0;
}

static void ensure_root_listed(struct fsops *o)
{
	struct count_ctx cc = { 0 };

	index_folder_children(o->ix, 0, count_folder, &cc, NULL);
	if (cc.n == 0 && o->sync)
		sync_wait_list(o->sync, o->timeout_s);
}

/* ---- lookup ---- */

struct id_ctx {
	int64_t id;
	uint32_t uid;
};

static int get_folder_id(void *ctx, const struct ix_folder *f)
{
	((struct id_ctx *)ctx)->id = f->id;
	return 0;
}

static int get_msg_uid(void *ctx, const struct ix_msg *m)
{
	((struct id_ctx *)ctx)->uid = m->uid;
	return 0;
}

static int get_part_n(void *ctx, const struct ix_part *p)
{
	((struct id_ctx *)ctx)->uid = p->n;
	return 0;
}

static bool has_suffix(const char *s, const char *suf, size_t *stem)
{
	size_t n = strlen(s), m = strlen(suf);

	*stem = n >= m ? n - m : 0;
	return n > m && strcmp(s + n - m, suf) == 0;
}

/* The name a message just moved here had: its old inode, whose
 * attributes node_attr still knows for a few seconds (see changes_moved). */
static int moved_here(struct fsops *o, int64_t folder, const char *name,
		      enum ino_kind k, fuse_ino_t *ino)
{
	struct changes_moved mv;

	if (!changes_moved(o->act, 0, 0, name, folder, &mv) ||
	    mv.src > INO_MAX_FOLDER)
		return MFS_E_NOTFOUND;
	*ino = ino_tree_make(k, mv.src, mv.uid, 0);
	return 0;
}

static int resolve(struct fsops *o, fuse_ino_t parent, const char *name,
		   fuse_ino_t *ino)
{
	struct ino_tree p = ino_tree_parse(parent);
	struct id_ctx ic = { 0 };
	char stem[NAMES_MAX + 1];
	size_t len;
	int rc;

	switch (p.kind) {
	case INO_ROOT:
		ensure_root_listed(o);
		rc = index_folder_by_name(o->ix, 0, name, get_folder_id, &ic,
					  NULL);
		if (rc == 0 && ic.id > INO_MAX_FOLDER)
			rc = MFS_E_NOTFOUND;
		if (rc == 0)
			*ino = ino_tree_make(INO_FOLDER, ic.id, 0, 0);
		return rc;
	case INO_FOLDER:
		rc = index_folder_by_name(o->ix, p.folder, name, get_folder_id,
					  &ic, NULL);
		if (rc == 0 && ic.id <= INO_MAX_FOLDER) {
			*ino = ino_tree_make(INO_FOLDER, ic.id, 0, 0);
			return 0;
		}
		ensure_folder_listed(o, p.folder);
		if (has_suffix(name, ".eml", &len) && len < sizeof(stem)) {
			memcpy(stem, name, len);
			stem[len] = '\0';
			rc = index_msg_by_name(o->ix, p.folder, stem,
					       get_msg_uid, &ic, NULL);
			if (rc == 0)
				*ino = ino_tree_make(INO_MESSAGE, p.folder, ic.uid, 0);
			else if (rc == MFS_E_NOTFOUND)
				rc = moved_here(o, p.folder, stem, INO_MESSAGE, ino);
			return rc;
		}
		rc = index_msg_by_name(o->ix, p.folder, name, get_msg_uid, &ic,
				       NULL);
		if (rc == 0)
			*ino = ino_tree_make(INO_DECODED, p.folder, ic.uid, 0);
		else if (rc == MFS_E_NOTFOUND)
			rc = moved_here(o, p.folder, name, INO_DECODED, ino);
		return rc;
	case INO_DECODED: {
		struct cache_key k;
		char *wire = NULL;

		rc = fetch_key(o, p.folder, p.uid, &k, &wire);
		if (rc == 0)
			rc = cache_parts(o->cache, &k, NULL);
		free(wire);
		if (rc < 0)
			return rc;
		rc = index_part_by_name(o->ix, p.folder, p.uid, name,
					get_part_n, &ic, NULL);
		if (rc == 0 && ic.uid >= (INO_MAX_PART + 1))
			rc = MFS_E_NOTFOUND;
		if (rc == 0)
			*ino = ino_tree_make(INO_PART, p.folder, p.uid, ic.uid);
		return rc;
	}
	default:
		return MFS_E_NOTFOUND;
	}
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fsops *o = ctx_of(req);
	const struct subtree *t;
	struct fuse_entry_param e = { 0 };
	fuse_ino_t ino = 0;
	double timeout = 0;
	int rc;

	t = parent == FUSE_ROOT_ID ? rooted(o, name) : owner(o, parent);
	if (t) {
		SUBTREE_CALL(t, lookup, fuse_reply_err(req, ENOTDIR), req,
			     parent, name);
		return;
	}

	rc = resolve(o, parent, name, &ino);
	if (rc == MFS_E_NOTFOUND && o->imp && ino_tree_parse(parent).kind == INO_FOLDER &&
	    import_lookup(o->imp, ino_tree_parse(parent).folder, name, &e) == 0) {
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc == 0)
		rc = node_attr(o, ino, &e.attr, &timeout);
	if (rc < 0) {
		fuse_reply_err(req, mfs_errno(rc));
		return;
	}
	e.ino = ino;
	e.attr_timeout = e.entry_timeout = timeout;
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fsops *o = ctx_of(req);
	const struct subtree *t = owner(o, ino);
	struct stat st;
	double timeout = 0;
	int rc;

	(void)fi;
	if (t) {
		t->ops->getattr(t->self, req, ino);
		return;
	}
	rc = node_attr(o, ino, &st, &timeout);
	if (rc < 0)
		fuse_reply_err(req, mfs_errno(rc));
	else
		fuse_reply_attr(req, &st, timeout);
}

/* ---- directories: a snapshot taken at opendir, served by offset ---- */

/* Compact: a 100,000-message folder lists 200,000 entries, and a struct
 * stat and a malloc'd name each would cost ~50 MB.  Names live in one
 * arena; the stat is rebuilt from these fields when replying. */
struct dent {
	size_t name;		/* offset in dirsnap.names */
	uint64_t off;		/* see dent_off */
	fuse_ino_t ino;
	uint64_t size;
	int64_t mtime;
	mode_t mode;
	nlink_t nlink;
	float timeout;
};

struct dirsnap {
	struct fsops *o;
	fuse_ino_t ino;
	bool filled;
	struct dent *e;
	size_t n, cap;
	char *names;
	size_t nlen, ncap;
	/* Open snapshots are linked in fsops: a session that ends with a
	 * directory still open gets no releasedir for it. */
	struct dirsnap *next, *prev;
};

/* An entry's offset.  With cache_readdir the kernel builds one listing
 * of a directory from the replies to every open of it: when one reader's
 * stream reaches the end of what is cached, the entries it reads next are
 * added, although its snapshot may have been taken after the folder
 * changed.  So an offset must name the same place in every snapshot, not
 * an index into one (a message listed before the place in one snapshot
 * shifts the other's entries by one: listed twice, or not at all).  From
 * the entry's inode, which is its identity: subfolders by id, then each
 * message's .eml and its directory side by side, by UID.  "." and ".."
 * are 1 and 2; every other value is larger and below 2^63. */
static uint64_t dent_off(fuse_ino_t ino)
{
	struct ino_tree n = ino_tree_parse(ino);

	if (n.kind == INO_MESSAGE || n.kind == INO_DECODED)
		return ino_make(INO_MESSAGE, ((uint64_t)n.uid << 1) |
						     (n.kind == INO_DECODED));
	return ino;
}

static int cmp_dent(const void *a, const void *b)
{
	const struct dent *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

static int snap_add(struct dirsnap *d, const char *name, size_t len,
		    const char *suffix, const struct stat *st, double timeout)
{
	struct dent *e;
	size_t slen = suffix ? strlen(suffix) : 0;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;

		e = realloc(d->e, cap * sizeof(*e));
		if (!e)
			return MFS_E_NOMEM;
		d->e = e;
		d->cap = cap;
	}
	if (d->nlen + len + slen + 1 > d->ncap) {
		size_t cap = (d->nlen + len + slen + 1) * 2;
		char *p = realloc(d->names, cap);

		if (!p)
			return MFS_E_NOMEM;
		d->names = p;
		d->ncap = cap;
	}
	e = &d->e[d->n];
	e->name = d->nlen;
	memcpy(d->names + d->nlen, name, len);
	memcpy(d->names + d->nlen + len, suffix ? suffix : "", slen + 1);
	d->nlen += len + slen + 1;
	e->ino = st->st_ino;
	e->off = d->n < 2 ? (uint64_t)d->n + 1 : dent_off(st->st_ino);
	e->size = (uint64_t)st->st_size;
	e->mtime = st->st_mtime;
	e->mode = st->st_mode;
	e->nlink = st->st_nlink;
	e->timeout = (float)timeout;
	d->n++;
	return 0;
}

static void dent_stat(const struct dirsnap *d, const struct dent *e,
		      struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = e->ino;
	st->st_mode = e->mode;
	st->st_nlink = e->nlink;
	st->st_uid = d->o->uid;
	st->st_gid = d->o->gid;
	st->st_size = (off_t)e->size;
	st->st_mtime = st->st_ctime = st->st_atime = (time_t)e->mtime;
	if (S_ISREG(e->mode)) {	/* as file_attr */
		st->st_blksize = 4096;
		st->st_blocks = (blkcnt_t)((e->size + 511) / 512);
	}
}

static void snap_link(struct fsops *o, struct dirsnap *d)
{
	pthread_mutex_lock(&o->lock);
	d->next = o->snaps;
	if (d->next)
		d->next->prev = d;
	o->snaps = d;
	pthread_mutex_unlock(&o->lock);
}

static void snap_free(struct dirsnap *d)
{
	if (!d)
		return;
	if (d->o) {
		pthread_mutex_lock(&d->o->lock);
		if (d->prev)
			d->prev->next = d->next;
		else
			d->o->snaps = d->next;
		if (d->next)
			d->next->prev = d->prev;
		pthread_mutex_unlock(&d->o->lock);
	}
	free(d->names);
	free(d->e);
	free(d);
}

static int snap_folder(void *ctx, const struct ix_folder *f)
{
	struct dirsnap *d = ctx;
	struct stat st;

	if (f->id > INO_MAX_FOLDER)
		return 0;
	dir_attr(d->o, ino_tree_make(INO_FOLDER, f->id, 0, 0), d->o->started, &st);
	return snap_add(d, f->name, strlen(f->name), NULL, &st, DIR_TIMEOUT);
}

static int snap_msg(void *ctx, const struct ix_msg *m)
{
	struct dirsnap *d = ctx;
	struct stat st;
	size_t len = strlen(m->name);
	int rc;

	file_attr(d->o, ino_tree_make(INO_MESSAGE, m->folder, m->uid, 0), m->size,
		  (time_t)m->date, &st);
	rc = snap_add(d, m->name, len, ".eml", &st, MSG_TIMEOUT);
	if (rc < 0)
		return rc;
	dir_attr(d->o, ino_tree_make(INO_DECODED, m->folder, m->uid, 0), (time_t)m->date,
		 &st);
	return snap_add(d, m->name, len, NULL, &st, MSG_TIMEOUT);
}

struct part_snap {
	struct dirsnap *d;
	int64_t folder;
	uint32_t uid;
	int64_t date;
};

static int snap_part(void *ctx, const struct ix_part *p)
{
	struct part_snap *ps = ctx;
	struct stat st;

	if (p->n >= (INO_MAX_PART + 1))
		return 0;
	file_attr(ps->d->o, ino_tree_make(INO_PART, ps->folder, ps->uid, p->n),
		  p->size, (time_t)ps->date, &st);
	return snap_add(ps->d, p->name, strlen(p->name), NULL, &st,
			MSG_TIMEOUT);
}

/* Fill the snapshot of directory ino; 0 or a negative mfs_err. */
static int snap_fill(struct fsops *o, fuse_ino_t ino, struct dirsnap *d)
{
	struct ino_tree n = ino_tree_parse(ino);
	struct stat st;
	double t;
	int rc;

	rc = node_attr(o, ino, &st, &t);
	if (rc < 0)
		return rc;
	rc = snap_add(d, ".", 1, NULL, &st, 0);
	if (rc == 0)
		rc = snap_add(d, "..", 2, NULL, &st, 0);
	if (rc < 0)
		return rc;
	switch (n.kind) {
	case INO_ROOT:
		for (unsigned i = 0; i < o->ntrees; i++) {
			const struct subtree *t = &o->trees[i];

			if (!t->listed)
				continue;
			t->dir_stat(t->self, &st);
			rc = snap_add(d, t->name, strlen(t->name), NULL, &st, 0);
			if (rc < 0)
				return rc;
		}
		return index_folder_children(o->ix, 0, snap_folder, d, NULL);
	case INO_FOLDER:
		rc = index_folder_children(o->ix, n.folder, snap_folder, d,
					   NULL);
		if (rc == 0)
			rc = index_msg_list(o->ix, n.folder, snap_msg, d, NULL);
		return rc;
	case INO_DECODED: {
		struct msg_copy mc = { 0 };
		struct part_snap ps = { d, n.folder, n.uid, 0 };

		rc = index_msg_get(o->ix, n.folder, n.uid, copy_msg, &mc, NULL);
		ps.date = mc.date;
		if (rc == 0)
			rc = index_parts_list(o->ix, n.folder, n.uid, snap_part,
					      &ps, NULL);
		return rc;
	}
	default:
		return MFS_E_INVAL;
	}
}

/* opendir makes sure there is something to list (waiting for a first
 * sync, decoding a message) but takes no snapshot: the kernel keeps
 * listings (cache_readdir) and is told when they change, so a warm ls
 * never reaches readdir at all. */
static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fsops *o = ctx_of(req);
	struct ino_tree n = ino_tree_parse(ino);
	struct dirsnap *d;
	struct stat st;
	double t;
	bool known = false;
	int rc;

	if (owner(o, ino)) {
		const struct subtree *t = owner(o, ino);

		SUBTREE_CALL(t, opendir, fuse_reply_err(req, ENOTDIR), req,
			     ino, fi);
		return;
	}
	if (n.kind == INO_DECODED) {
		/* rsync opens every decoded directory: one query when its
		 * parts are known, as they are after the first visit. */
		struct msg_copy mc = { 0 };

		rc = index_msg_get(o->ix, n.folder, n.uid, copy_msg, &mc, NULL);
		known = rc == 0 && mc.parts_known;
	} else {
		rc = node_attr(o, ino, &st, &t);
	}
	/* A folder rebuilt under its name (UIDVALIDITY) has a new inode; the
	 * kernel may not have heard yet.  ESTALE makes it look the name up
	 * again and open the rebuilt folder.  Only here: a read.  A write
	 * given ESTALE would be retried on whatever the name means now,
	 * which is why writes on stale folders get ENOENT. */
	if (rc == MFS_E_NOTFOUND && n.kind == INO_FOLDER) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (rc == 0 && n.kind != INO_ROOT && n.kind != INO_FOLDER && n.kind != INO_DECODED)
		rc = MFS_E_INVAL;
	if (rc == 0 && n.kind == INO_ROOT)
		ensure_root_listed(o);
	if (rc == 0 && n.kind == INO_FOLDER) {
		/* Queued rm/mv may involve this folder: list the truth. */
		changes_flush(o->act);
		ensure_folder_listed(o, n.folder);
		watch_use(o->watch, n.folder);
	}
	if (rc == 0 && n.kind == INO_DECODED && !known) {
		struct cache_key k;
		char *wire = NULL;

		rc = fetch_key(o, n.folder, n.uid, &k, &wire);
		if (rc == 0)
			rc = cache_parts(o->cache, &k, NULL);
		free(wire);
	}
	d = rc == 0 ? calloc(1, sizeof(*d)) : NULL;
	if (rc == 0 && !d)
		rc = MFS_E_NOMEM;
	if (rc < 0) {
		fuse_reply_err(req, rc == MFS_E_INVAL ? ENOTDIR : mfs_errno(rc));
		return;
	}
	d->o = o;
	d->ino = ino;
	snap_link(o, d);
	fi->fh = (uintptr_t)d;
	/* The root lists outbox/ too, which has no invalidation story of
	 * its own; it is cheap to list anyway. */
	fi->cache_readdir = n.kind != INO_ROOT;
	fi->keep_cache = n.kind != INO_ROOT;
	fuse_reply_open(req, fi);
}

static void readdir_common(fuse_req_t req, size_t size, off_t off,
			   struct fuse_file_info *fi, bool plus)
{
	struct dirsnap *d = (struct dirsnap *)(uintptr_t)fi->fh;
	char *buf;
	size_t pos = 0, lo, hi;
	int rc;

	if (!d->filled) {
		rc = snap_fill(d->o, d->ino, d);
		if (rc < 0) {
			d->n = 0;
			d->nlen = 0;
			fuse_reply_err(req, mfs_errno(rc));
			return;
		}
		qsort(d->e, d->n, sizeof(*d->e), cmp_dent);
		d->filled = true;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* Go on after the entry that returned off, in this snapshot: the
	 * first one with a larger offset (off itself may be gone). */
	for (lo = 0, hi = d->n; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->e[mid].off <= (uint64_t)off)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < d->n; i++) {
		struct dent *e = &d->e[i];
		const char *name = d->names + e->name;
		struct stat st;
		size_t len;

		dent_stat(d, e, &st);
		if (plus) {
			struct fuse_entry_param ep = { 0 };

			/* "." and ".." must not take a lookup reference. */
			if (e->off > 2)
				ep.ino = e->ino;
			ep.attr = st;
			ep.attr_timeout = ep.entry_timeout = e->timeout;
			len = fuse_add_direntry_plus(req, buf + pos, size - pos,
						     name, &ep, (off_t)e->off);
		} else {
			len = fuse_add_direntry(req, buf + pos, size - pos,
						name, &st, (off_t)e->off);
		}
		if (len > size - pos)
			break;
		pos += len;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	const struct subtree *t = owner(ctx_of(req), ino);

	if (t)
		SUBTREE_CALL(t, readdir, fuse_reply_err(req, ENOTDIR), req, ino,
			     size, off, fi, false);
	else
		readdir_common(req, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	const struct subtree *t = owner(ctx_of(req), ino);

	if (t)
		SUBTREE_CALL(t, readdir, fuse_reply_err(req, ENOTDIR), req, ino,
			     size, off, fi, true);
	else
		readdir_common(req, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	const struct subtree *t = owner(ctx_of(req), ino);

	if (t) {
		SUBTREE_CALL(t, releasedir, fuse_reply_err(req, 0), req, ino,
			     fi);
		return;
	}
	snap_free((struct dirsnap *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- files ---- */

static bool was_resized(struct fsops *o, fuse_ino_t ino)
{
	bool found = false;

	pthread_mutex_lock(&o->lock);
	for (unsigned i = 0; i < 64 && !found; i++)
		found = o->resized[i] == ino;
	pthread_mutex_unlock(&o->lock);
	return found;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fsops *o = ctx_of(req);
	struct ino_tree n = ino_tree_parse(ino);
	struct mfs_error err = { 0 };
	struct cache_key k;
	struct part_fh *ph = NULL;
	char *wire = NULL;
	uint64_t size, off = 0;
	int fd = -1, rc;

	if (owner(o, ino)) {
		const struct subtree *t = owner(o, ino);

		SUBTREE_CALL(t, open, fuse_reply_err(req, EISDIR), req, ino,
			     fi);
		return;
	}
	/* A message may be written over with its own bytes (a backup
	 * restored onto the tree); a part never. */
	if ((fi->flags & O_ACCMODE) != O_RDONLY &&
	    (!o->act || n.kind != INO_MESSAGE)) {
		fuse_reply_err(req, immutable(o));
		return;
	}
	if (n.kind != INO_MESSAGE && n.kind != INO_PART) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	rc = fetch_key(o, n.folder, n.uid, &k, &wire);
	if (rc == 0 && n.kind == INO_MESSAGE) {
		struct msg_copy mc = { 0 };

		rc = index_msg_get(o->ix, n.folder, n.uid, copy_msg, &mc, NULL);
		if (rc == 0)
			rc = cache_body(o->cache, &k, &fd, &size, &err);
		/* The kernel still holds the size the server claimed and
		 * would cut reads short at it; bypass the page cache for
		 * this open while the notifier corrects the attributes.
		 * (Readahead may have fetched it, and fixed the index,
		 * moments before this open.) */
		if (rc == 0 && (size != mc.size || was_resized(o, ino)))
			fi->direct_io = 1;
	}
	else if (rc == 0) {
		struct part_copy pc = { 0 };

		rc = index_part_get(o->ix, n.folder, n.uid, n.part, copy_part,
				    &pc, NULL);
		if (rc == 0)
			rc = cache_part(o->cache, &k, n.part, &fd, &off, &size,
					&err);
		/* Only a decoder that changed since the index was made can
		 * disagree with it; the reader still gets every byte. */
		if (rc == 0 && size != pc.size)
			fi->direct_io = 1;
		if (rc == 0 && !(ph = malloc(sizeof(*ph)))) {
			close(fd);
			rc = MFS_E_NOMEM;
		}
	}
	if (rc < 0) {
		if (err.msg[0])
			log_msg(LOG_WARNING, "open %s/%u: %s", wire ? wire : "?",
				n.uid, err.msg);
		free(wire);
		/* Whatever went wrong on the way to the server, a reader
		 * (and the promise) wants EIO: the message exists,
		 * its bytes could not be had. */
		fuse_reply_err(req, rc == MFS_E_NOTFOUND ? ENOENT :
				    rc == MFS_E_NOMEM ? ENOMEM : EIO);
		return;
	}
	free(wire);
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		struct overwrite *w = NULL;

		rc = overwrite_open(fd, size, &w);
		if (rc < 0) {
			fuse_reply_err(req, -rc);
			return;
		}
		fi->fh = (uint64_t)(uintptr_t)w | OW_BIT;
		fi->direct_io = 1;	/* every write must reach us */
		if (fuse_reply_open(req, fi) != 0)
			overwrite_close(w);
		return;
	}
	fi->fh = (uint64_t)fd;
	if (ph) {
		ph->fd = fd;
		ph->off = off;
		ph->size = size;
		atomic_init(&ph->answered, 0);
		fi->fh = (uint64_t)(uintptr_t)ph | PART_BIT;
	}
	fi->keep_cache = !fi->direct_io;
	/* Nothing to write back: spare the kernel a FLUSH round trip on
	 * every close (cp -r closes tens of thousands). */
	fi->noflush = 1;
	if (fuse_reply_open(req, fi) != 0) {
		close(fd);
		free(ph);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	const struct subtree *t = owner(ctx_of(req), ino);
	struct part_fh *ph = part_of(fi);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	if (t) {
		SUBTREE_CALL(t, read, fuse_reply_err(req, EBADF), req, ino,
			     size, off, fi);
		return;
	}
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fd_of(fi);
	buf.buf[0].pos = off;
	if (ph) {
		/* The part ends where its file may go on. */
		uint64_t left = (uint64_t)off < ph->size ?
					ph->size - (uint64_t)off : 0;

		buf.buf[0].fd = ph->fd;
		buf.buf[0].pos = (off_t)(ph->off + (uint64_t)off);
		buf.buf[0].size = size < left ? size : (size_t)left;
		atomic_fetch_add_explicit(&ph->answered, 1,
					  memory_order_release);
	}
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	const struct subtree *t = owner(ctx_of(req), ino);

	if (t) {
		SUBTREE_CALL(t, release, fuse_reply_err(req, 0), req, ino, fi);
		return;
	}
	if (ow_of(fi)) {
		overwrite_close(ow_of(fi));
	} else if (part_of(fi)) {
		struct part_fh *ph = part_of(fi);

		(void)atomic_load_explicit(&ph->answered, memory_order_acquire);
		close(ph->fd);
		free(ph);
	} else {
		close((int)fi->fh);
	}
	fuse_reply_err(req, 0);
}

/* ---- writes: only outbox/ takes them in this version ---- */

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fsops *o = ctx_of(req);
	const struct subtree *t = owner(o, ino);

	if (t)
		SUBTREE_CALL(t, write, fuse_reply_err(req, immutable(o)), req,
			     ino, buf, size, off, fi);
	else if (ow_of(fi)) {
		int rc = overwrite_write(ow_of(fi), buf, size, off);

		if (rc < 0)
			fuse_reply_err(req, -rc);
		else
			fuse_reply_write(req, size);
	} else
		fuse_reply_err(req, immutable(o));
}

static void op_flush(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi)
{
	const struct subtree *t = owner(ctx_of(req), ino);

	if (t)
		SUBTREE_CALL(t, flush, fuse_reply_err(req, 0), req, ino, fi);
	else if (ow_of(fi))
		fuse_reply_err(req, -overwrite_check(ow_of(fi)));
	else
		fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct fsops *o = ctx_of(req);
	const struct subtree *t = owner(o, ino);

	if (t && t->ops->fsync) {
		t->ops->fsync(t->self, req, ino, datasync, fi);
		return;
	}
	/* Like fsync of a directory: queued rm/mv are sent and answered. */
	changes_flush(o->act);
	fuse_reply_err(req, 0);
}

/* fsync of a directory: a script's way to know queued rm/mv are done. */
static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	struct fsops *o = ctx_of(req);

	(void)ino;
	(void)datasync;
	(void)fi;
	changes_flush(o->act);
	fuse_reply_err(req, 0);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct fsops *o = ctx_of(req);
	const struct subtree *t = owner(o, parent);
	struct ino_tree p = ino_tree_parse(parent);
	fuse_ino_t ino;

	if (t)
		SUBTREE_CALL(t, create, fuse_reply_err(req, immutable(o)), req,
			     parent, name, mode, fi);
	else if (o->imp && p.kind == INO_FOLDER &&
		 resolve(o, parent, name, &ino) == MFS_E_NOTFOUND)
		import_create(o->imp, req, p.folder, name, fi);
	else if (o->imp && p.kind == INO_FOLDER)
		fuse_reply_err(req, EEXIST);
	else
		fuse_reply_err(req, immutable(o));
}

/* Reply to a change: errno from the code, the server's words to the log. */
static void reply_change(fuse_req_t req, const char *what, const char *name,
			 int rc, const struct mfs_error *err)
{
	if (rc < 0)
		log_msg(LOG_WARNING, "%s %s: %s", what, name,
			err->msg[0] ? err->msg : mfs_strerror(rc));
	fuse_reply_err(req, rc < 0 ? mfs_errno(rc) : 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fsops *o = ctx_of(req);
	struct mfs_error err = { 0 };
	fuse_ino_t ino = 0;
	struct ino_tree n;
	int rc;

	if (owner(o, parent)) {
		const struct subtree *t = owner(o, parent);

		SUBTREE_CALL(t, unlink, fuse_reply_err(req, immutable(o)), req,
			     parent, name);
		return;
	}
	rc = resolve(o, parent, name, &ino);
	n = ino_tree_parse(ino);
	if (rc == MFS_E_NOTFOUND && o->imp && ino_tree_parse(parent).kind == INO_FOLDER) {
		fuse_reply_err(req, -import_unlink(o->imp, ino_tree_parse(parent).folder,
						name));
		return;
	}
	if (rc == 0 && n.kind == INO_PART) {
		/* A decoded part cannot go on its own; succeeding lets rm -r
		 * reach the rmdir of its directory, which deletes the
		 * message. */
		fuse_reply_err(req, 0);
		return;
	}
	if (rc == 0 && n.kind != INO_MESSAGE)
		rc = MFS_E_INVAL;
	if (rc == 0 && !o->act)
		rc = MFS_E_UNSUPPORTED;
	if (rc == 0)
		rc = changes_delete(o->act, n.folder, n.uid, &err);
	reply_change(req, "rm", name, rc, &err);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fsops *o = ctx_of(req);
	struct mfs_error err = { 0 };
	fuse_ino_t ino = 0;
	struct ino_tree n;
	int rc;

	rc = resolve(o, parent, name, &ino);
	n = ino_tree_parse(ino);
	if (rc == 0 && !o->act)
		rc = MFS_E_UNSUPPORTED;
	if (rc == 0 && n.kind == INO_DECODED)
		rc = changes_delete(o->act, n.folder, n.uid, &err);
	else if (rc == 0 && n.kind == INO_FOLDER) {
		rc = changes_rmdir(o->act, n.folder, &err);
		if (rc == 0 && o->cache)
			cache_sweep(o->cache);	/* bodies moved out earlier */
	} else if (rc == 0)
		rc = MFS_E_INVAL;
	reply_change(req, "rmdir", name, rc, &err);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct fsops *o = ctx_of(req);
	struct mfs_error err = { 0 };
	struct fuse_entry_param e = { 0 };
	struct ino_tree p = ino_tree_parse(parent);
	fuse_ino_t ino = 0;
	double t;
	int64_t id = 0;
	int rc = 0;

	(void)mode;
	if ((p.kind != INO_ROOT && p.kind != INO_FOLDER) || !o->act ||
	    (parent == FUSE_ROOT_ID && rooted(o, name)))
		rc = MFS_E_INVAL;
	if (rc == 0 && resolve(o, parent, name, &ino) == 0)
		rc = MFS_E_EXISTS;
	if (rc == 0)
		rc = changes_mkdir(o->act, p.kind == INO_ROOT ? 0 : p.folder, name,
			       &id, &err);
	if (rc == 0 && id > INO_MAX_FOLDER)
		rc = MFS_E_TOOBIG;
	if (rc == 0) {
		e.ino = ino_tree_make(INO_FOLDER, id, 0, 0);
		rc = node_attr(o, e.ino, &e.attr, &t);
		e.attr_timeout = e.entry_timeout = t;
	}
	if (rc < 0) {
		reply_change(req, "mkdir", name, rc, &err);
		return;
	}
	fuse_reply_entry(req, &e);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct fsops *o = ctx_of(req);

	struct mfs_error err = { 0 };
	struct ino_tree np = ino_tree_parse(newparent);
	fuse_ino_t ino = 0;
	struct ino_tree n;
	int rc;

	if (owner(o, parent) || owner(o, newparent)) {
		const struct subtree *t = owner(o, parent);

		if (t != owner(o, newparent))
			fuse_reply_err(req, EXDEV);	/* mv copies instead */
		else
			SUBTREE_CALL(t, rename,
				     fuse_reply_err(req, immutable(o)), req,
				     parent, name, newparent, newname, flags);
		return;
	}
	rc = resolve(o, parent, name, &ino);
	n = ino_tree_parse(ino);
	if (rc == MFS_E_NOTFOUND && o->imp && parent == newparent &&
	    np.kind == INO_FOLDER) {
		/* rsync's temporary file becoming its final name. */
		fuse_reply_err(req, -import_rename(o->imp, np.folder, name,
						newname));
		return;
	}
	if (rc == 0 && !o->act)
		rc = MFS_E_UNSUPPORTED;
	if (rc == 0 && (n.kind == INO_MESSAGE || n.kind == INO_DECODED)) {
		/* mv INBOX/x.eml Archive/: the target name is derived
		 * there; a rename inside one folder is refused. */
		if (np.kind != INO_FOLDER)
			rc = MFS_E_INVAL;
		else if (np.folder == n.folder)
			rc = mfs_fail(&err, MFS_E_INVAL,
				      "names are derived from the message");
		else
			rc = changes_move(o->act, n.folder, n.uid, np.folder, &err);
		if (rc == MFS_E_INVAL) {
			fuse_reply_err(req, EPERM);
			return;
		}
	} else if (rc == 0 && n.kind == INO_FOLDER) {
		if (np.kind != INO_FOLDER && np.kind != INO_ROOT)
			rc = MFS_E_INVAL;
		else if (flags & RENAME_EXCHANGE)
			rc = MFS_E_UNSUPPORTED;
		else
			rc = changes_rename_folder(o->act, n.folder,
					       np.kind == INO_ROOT ? 0 : np.folder,
					       newname, &err);
	} else if (rc == 0) {
		rc = MFS_E_INVAL;
	}
	reply_change(req, "mv", name, rc, &err);
}

/* O_TRUNC of a message opened for writing: the message itself stays as
 * it is, so do its attributes; the close will tell. */
static void setattr_overwrite(struct fsops *o, fuse_req_t req, fuse_ino_t ino,
			      off_t size, struct overwrite *w)
{
	struct stat st;
	double timeout = 0;
	int rc = size < 0 ? -EINVAL : overwrite_truncate(w, (uint64_t)size);

	if (rc == 0)
		rc = -mfs_errno(node_attr(o, ino, &st, &timeout));
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct fsops *o = ctx_of(req);
	const struct subtree *t = owner(o, ino);

	if (t)
		SUBTREE_CALL(t, setattr, fuse_reply_err(req, immutable(o)), req,
			     ino, attr, to_set, fi);
	else if (ow_of(fi) && to_set == FUSE_SET_ATTR_SIZE)
		setattr_overwrite(o, req, ino, attr->st_size, ow_of(fi));
	else
		fuse_reply_err(req, immutable(o));
}

/* ---- extended attributes ---- */

static const char xattr_names[] = "user.mail.uid\0user.mail.flags\0"
				  "user.mail.message-id\0user.mail.folder";

static void reply_xattr_value(fuse_req_t req, size_t size, const char *v,
			      size_t len)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, v, len);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	const struct subtree *t = owner(ctx_of(req), ino);

	if (t && t->ops->listxattr) {
		t->ops->listxattr(t->self, req, ino, size);
		return;
	}
	if (ino_tree_parse(ino).kind != INO_MESSAGE) {
		reply_xattr_value(req, size, "", 0);
		return;
	}
	reply_xattr_value(req, size, xattr_names, sizeof(xattr_names));
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct fsops *o = ctx_of(req);
	struct ino_tree n = ino_tree_parse(ino);
	struct msg_copy mc = { 0 };
	struct folder_copy fc = { 0 };
	char *utf8 = NULL;
	char num[16];
	const char *v = NULL;
	int rc;

	if (owner(o, ino) && owner(o, ino)->ops->getxattr) {
		owner(o, ino)->ops->getxattr(owner(o, ino)->self, req, ino,
					     name, size);
		return;
	}
	/* ls -l asks every file for its SELinux label and POSIX ACL;
	 * ENOTSUP (unlike ENODATA) makes it stop asking this file system,
	 * which saves two round trips per entry. */
	if (strncmp(name, "user.", 5) != 0) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (n.kind != INO_MESSAGE || !memmem(xattr_names, sizeof(xattr_names),
				       name, strlen(name) + 1)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	rc = index_msg_get(o->ix, n.folder, n.uid, copy_msg_all, &mc, NULL);
	if (rc < 0) {
		fuse_reply_err(req, mfs_errno(rc));
		goto out;
	}
	if (strcmp(name, "user.mail.uid") == 0) {
		snprintf(num, sizeof(num), "%u", n.uid);
		v = num;
	} else if (strcmp(name, "user.mail.flags") == 0) {
		v = mc.flags;
	} else if (strcmp(name, "user.mail.message-id") == 0) {
		v = mc.message_id;
	} else if (strcmp(name, "user.mail.folder") == 0) {
		if (index_folder_get(o->ix, n.folder, copy_folder, &fc, NULL) == 0
		    && fc.wire)
			v = imap_utf7_decode(fc.wire, &utf8) == 0 ? utf8 : fc.wire;
	}
	if (!v)
		fuse_reply_err(req, ENODATA);
	else
		reply_xattr_value(req, size, v, strlen(v));
out:
	free(utf8);
	free(fc.wire);
	free(mc.flags);
	free(mc.message_id);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct fsops *o = ctx_of(req);
	struct ino_tree n = ino_tree_parse(ino);
	struct mfs_error err = { 0 };
	char *flagstr;
	int rc;

	(void)flags;
	if (strcmp(name, "user.mail.flags") != 0 || n.kind != INO_MESSAGE) {
		fuse_reply_err(req, strncmp(name, "user.", 5) ? ENOTSUP : EPERM);
		return;
	}
	if (!o->act) {
		fuse_reply_err(req, EROFS);
		return;
	}
	/* The value is not NUL-terminated; setfattr may add a newline. */
	flagstr = strndup(value, size);
	if (!flagstr) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	flagstr[strcspn(flagstr, "\r\n")] = '\0';
	rc = changes_set_flags(o->act, n.folder, n.uid, flagstr, &err);
	free(flagstr);
	reply_change(req, "setfattr", "user.mail.flags", rc, &err);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = { 0 };

	(void)ino;
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_namemax = NAMES_MAX;
	fuse_reply_statfs(req, &sv);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* ls -l wants attributes with every entry, always. */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.fsyncdir = op_fsyncdir,
	.create = op_create,
	.unlink = op_unlink,
	.rename = op_rename,
	.setattr = op_setattr,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.setxattr = op_setxattr,
	.listxattr = op_listxattr,
	.getxattr = op_getxattr,
	.statfs = op_statfs,
};

const struct fuse_lowlevel_ops *fsops_ops(void)
{
	return &ops;
}

/* ---- setup and the notifier ---- */

struct fsops *fsops_new(long timeout_s)
{
	struct fsops *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->timeout_s = timeout_s;
	o->uid = getuid();
	o->gid = getgid();
	o->started = time(NULL);
	o->tail = &o->head;
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->cond, NULL);
	return o;
}

void fsops_attach_act(struct fsops *o, struct changes *act)
{
	o->act = act;
}

int fsops_add_subtree(struct fsops *o, struct subtree t)
{
	const struct subtree *added;

	if (o->ntrees == MAX_SUBTREES)
		return MFS_E_TOOBIG;
	for (unsigned k = 0; k < 16; k++)
		if ((t.ops->kinds & (1u << k)) && o->by_kind[k])
			return MFS_E_EXISTS;
	o->trees[o->ntrees] = t;
	added = &o->trees[o->ntrees++];
	for (unsigned k = 0; k < 16; k++)
		if (t.ops->kinds & (1u << k))
			o->by_kind[k] = added;
	return 0;
}

void fsops_detach(struct fsops *o)
{
	memset(o->by_kind, 0, sizeof(o->by_kind));
	o->ntrees = 0;
	o->imp = NULL;
	o->act = NULL;
	o->watch = NULL;
	o->ix = NULL;
	o->cache = NULL;
	o->sync = NULL;
}

int fsops_attach_imp(struct fsops *o, struct import *imp)
{
	o->imp = imp;
	return fsops_add_subtree(o, import_subtree(imp));
}

void fsops_attach_watch(struct fsops *o, struct watch *watch)
{
	o->watch = watch;
}

void fsops_outbox_changed(void *ctx, const char *name)
{
	struct fsops *o = ctx;

	notify(o, OUTBOX_DIR_DIR_INO, 0, name);
}

void fsops_attach(struct fsops *o, struct index *ix, struct cache *cache,
		  struct sync *sync)
{
	o->ix = ix;
	o->cache = cache;
	o->sync = sync;
}

static void notify(struct fsops *o, fuse_ino_t parent, fuse_ino_t ino,
		   const char *name)
{
	struct note *n = calloc(1, sizeof(*n));

	if (!n)
		return;		/* the timeouts bound the staleness anyway */
	n->parent = parent;
	n->ino = ino;
	if (name && !(n->name = strdup(name))) {
		free(n);
		return;
	}
	pthread_mutex_lock(&o->lock);
	if (!o->notifier_running) {
		pthread_mutex_unlock(&o->lock);
		free(n->name);
		free(n);
		return;
	}
	*o->tail = n;
	o->tail = &n->next;
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->lock);
}

static void *notifier_main(void *arg)
{
	struct fsops *o = arg;

	pthread_mutex_lock(&o->lock);
	while (!o->stop) {
		struct note *n = o->head;

		if (!n) {
			pthread_cond_wait(&o->cond, &o->lock);
			continue;
		}
		o->head = n->next;
		if (!o->head)
			o->tail = &o->head;
		pthread_mutex_unlock(&o->lock);
		/* ENOENT just means the kernel had nothing cached. */
		if (n->name)
			fuse_lowlevel_notify_inval_entry(o->se, n->parent,
							 n->name,
							 strlen(n->name));
		else
			fuse_lowlevel_notify_inval_inode(o->se, n->ino, 0, 0);
		free(n->name);
		free(n);
		pthread_mutex_lock(&o->lock);
	}
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

int fsops_start_notifier(struct fsops *o, struct fuse_session *se)
{
	o->se = se;
	if (pthread_create(&o->notifier, NULL, notifier_main, o) != 0)
		return MFS_E_NOMEM;
	pthread_mutex_lock(&o->lock);
	o->notifier_running = true;
	pthread_mutex_unlock(&o->lock);
	return 0;
}

void fsops_stop_notifier(struct fsops *o)
{
	bool running;

	pthread_mutex_lock(&o->lock);
	running = o->notifier_running;
	o->notifier_running = false;
	o->stop = true;
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->lock);
	if (running)
		pthread_join(o->notifier, NULL);
}

void fsops_free(struct fsops *o)
{
	if (!o)
		return;
	while (o->snaps)
		snap_free(o->snaps);
	while (o->head) {
		struct note *n = o->head;

		o->head = n->next;
		free(n->name);
		free(n);
	}
	pthread_cond_destroy(&o->cond);
	pthread_mutex_destroy(&o->lock);
	free(o);
}

void fsops_folder_changed(void *ctx, int64_t folder)
{
	struct fsops *o = ctx;

	if (folder == 0 || folder > INO_MAX_FOLDER)
		notify(o, 0, FUSE_ROOT_ID, NULL);
	else
		notify(o, 0, ino_tree_make(INO_FOLDER, folder, 0, 0), NULL);
}

void fsops_msg_gone(void *ctx, int64_t folder, uint32_t uid, const char *name)
{
	struct fsops *o = ctx;
	fuse_ino_t dir = ino_tree_make(INO_FOLDER, folder, 0, 0);
	char eml[NAMES_MAX + 8];

	(void)uid;
	if (folder > INO_MAX_FOLDER)
		return;
	snprintf(eml, sizeof(eml), "%s.eml", name);
	notify(o, dir, 0, eml);
	notify(o, dir, 0, name);
}

void fsops_entry_gone(void *ctx, int64_t parent, const char *name)
{
	struct fsops *o = ctx;

	/* The folder's bodies are no longer the index's. */
	if (o->cache)
		cache_sweep(o->cache);
	if (parent > INO_MAX_FOLDER)
		return;
	notify(o, parent ? ino_tree_make(INO_FOLDER, parent, 0, 0) : FUSE_ROOT_ID, 0,
	       name);
}

void fsops_size_changed(void *ctx, int64_t folder, uint32_t uid)
{
	struct fsops *o = ctx;

	if (folder > INO_MAX_FOLDER)
		return;
	pthread_mutex_lock(&o->lock);
	o->resized[o->nresized++ % 64] = ino_tree_make(INO_MESSAGE, folder, uid, 0);
	pthread_mutex_unlock(&o->lock);
	notify(o, 0, ino_tree_make(INO_MESSAGE, folder, uid, 0), NULL);
}

