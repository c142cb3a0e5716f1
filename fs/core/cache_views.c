/* cache_views.c - decoded parts, made from the cached body when opened.
 *
 * A reader of a decoded directory (cp -r, grep -r, a file manager) opens
 * its parts one after another.  A message of up to VIEW_MSG_MAX bytes is
 * decoded once, every part into a memfd (in memory, not in the process)
 * kept for the opens that follow: the views of the last VIEW_SLOTS such
 * messages, VIEW_BYTES and VIEW_FDS at most together.  A part of a
 * bigger message is decoded on its own into an unlinked file beside the
 * bodies (disk, not memory), shared by the opens of that part; the last
 * BIG_SLOTS such parts are kept.  A message with too many parts to keep
 * gets each part decoded alone, per open.  Every open gets a duplicate
 * descriptor, so dropping a kept copy never pulls a file from a reader.
 * The parts' names, types and sizes go to the index the first time, so
 * that listing a decoded directory needs no body afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cache_int.h"
#include "mime.h"

#define MAX_PARTS 1000
#define VIEW_SLOTS 8
#define VIEW_MAX_PARTS 64
#define VIEW_BYTES (32ull << 20)
/* Descriptors the kept views may hold together (8 x 64 would pin 512 of
 * them, which open files need more). */
#define VIEW_FDS 64
_Static_assert(VIEW_MAX_PARTS <= VIEW_FDS, "a view must fit");
#define BIG_SLOTS 2
#define VIEW_MSG_MAX (8ull << 20)

/* A message decoded lately, every part in a memfd. */
struct view {
	int64_t folder;
	uint32_t uidvalidity, uid;
	unsigned n;	/* parts; 0: a free slot */
	int fd[VIEW_MAX_PARTS];
	uint64_t size[VIEW_MAX_PARTS];
	uint64_t bytes;
	uint64_t used;
};

/* A part of a big message, in an unlinked file. */
struct big {
	int64_t folder;
	uint32_t uidvalidity, uid;
	unsigned n;	/* the part; 0: a free slot */
	int fd;
	uint64_t size, used;
};

struct cache_views {
	/* Guards everything below.  Held to look up, keep or drop a copy
	 * (a dup or a close of its descriptors), never while decoding. */
	pthread_mutex_t lock;
	struct view v[VIEW_SLOTS];
	uint64_t bytes;		/* in all views' memfds */
	unsigned fds;		/* held by all views */
	struct big big[BIG_SLOTS];
	uint64_t tick;		/* use of views and bigs, least recent out */
};

struct cache_views *cache_views_new(void)
{
	struct cache_views *vs = calloc(1, sizeof(*vs));

	if (vs)
		pthread_mutex_init(&vs->lock, NULL);
	return vs;
}

/* The slot's memfds go (open files keep their own duplicates); lock held
 * or the cache being closed. */
static void view_drop(struct cache_views *vs, struct view *v)
{
	for (unsigned i = 0; i < v->n; i++)
		close(v->fd[i]);
	vs->bytes -= v->bytes;
	vs->fds -= v->n;
	v->n = 0;
	v->bytes = 0;
}

void cache_views_free(struct cache_views *vs)
{
	if (!vs)
		return;
	for (unsigned i = 0; i < VIEW_SLOTS; i++)
		view_drop(vs, &vs->v[i]);
	for (unsigned i = 0; i < BIG_SLOTS; i++)
		if (vs->big[i].n)
			close(vs->big[i].fd);
	pthread_mutex_destroy(&vs->lock);
	free(vs);
}

static bool view_is(const struct view *v, const struct cache_key *k)
{
	return v->n && v->folder == k->folder && v->uid == k->uid &&
	       v->uidvalidity == k->uidvalidity;
}

static bool big_is(const struct big *b, const struct cache_key *k,
		   unsigned n)
{
	return b->n == n && b->folder == k->folder && b->uid == k->uid &&
	       b->uidvalidity == k->uidvalidity;
}

/* A duplicate of the kept copy of k's part n, from its view or as a big
 * part (a message has one or the other, by its size); false if there is
 * none. */
static bool kept_get(struct cache *c, const struct cache_key *k, unsigned n,
		     int *fd, uint64_t *size)
{
	struct cache_views *vs = c->views;
	uint64_t *used = NULL;
	int kept = -1;

	pthread_mutex_lock(&vs->lock);
	for (unsigned i = 0; i < VIEW_SLOTS && kept < 0; i++) {
		struct view *v = &vs->v[i];

		if (view_is(v, k) && n >= 1 && n <= v->n) {
			kept = v->fd[n - 1];
			*size = v->size[n - 1];
			used = &v->used;
		}
	}
	for (unsigned i = 0; i < BIG_SLOTS && kept < 0; i++) {
		struct big *b = &vs->big[i];

		if (big_is(b, k, n)) {
			kept = b->fd;
			*size = b->size;
			used = &b->used;
		}
	}
	if (kept >= 0) {
		*fd = fcntl(kept, F_DUPFD_CLOEXEC, 0);
		*used = ++vs->tick;
	}
	pthread_mutex_unlock(&vs->lock);
	return kept >= 0 && *fd >= 0;
}

/* Keep a decoded view (its memfds are taken over), making room by
 * dropping the least recently used ones. */
static void view_put(struct cache *c, const struct cache_key *k,
		     const struct view *nv)
{
	struct cache_views *vs = c->views;
	struct view *slot = NULL;

	pthread_mutex_lock(&vs->lock);
	/* A reader may have raced us to it. */
	for (unsigned i = 0; i < VIEW_SLOTS; i++)
		if (view_is(&vs->v[i], k))
			view_drop(vs, &vs->v[i]);
	for (;;) {
		struct view *lru = NULL;

		slot = NULL;
		for (unsigned i = 0; i < VIEW_SLOTS; i++) {
			struct view *v = &vs->v[i];

			if (!v->n && !slot)
				slot = v;
			if (v->n && (!lru || v->used < lru->used))
				lru = v;
		}
		if (slot && vs->bytes + nv->bytes <= VIEW_BYTES &&
		    vs->fds + nv->n <= VIEW_FDS)
			break;
		if (!lru)
			break;
		view_drop(vs, lru);
	}
	*slot = *nv;
	slot->folder = k->folder;
	slot->uid = k->uid;
	slot->uidvalidity = k->uidvalidity;
	slot->used = ++vs->tick;
	vs->bytes += nv->bytes;
	vs->fds += nv->n;
	pthread_mutex_unlock(&vs->lock);
}

/* Keep a duplicate of fd as k's part n, in place of the least recently
 * used one (open files keep their own duplicates). */
static void big_put(struct cache *c, const struct cache_key *k, unsigned n,
		    int fd, uint64_t size)
{
	struct cache_views *vs = c->views;
	int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	struct big *slot = &vs->big[0];

	if (dup < 0)
		return;
	pthread_mutex_lock(&vs->lock);
	for (unsigned i = 0; i < BIG_SLOTS; i++) {
		struct big *b = &vs->big[i];

		if (big_is(b, k, n) || !b->n) {
			slot = b;
			break;
		}
		if (b->used < slot->used)
			slot = b;
	}
	if (slot->n)
		close(slot->fd);
	*slot = (struct big){ .folder = k->folder,
			      .uidvalidity = k->uidvalidity, .uid = k->uid,
			      .n = n, .fd = dup, .size = size,
			      .used = ++vs->tick };
	pthread_mutex_unlock(&vs->lock);
}

/* ---- decoding ---- */

struct parts_acc {
	struct ix_part parts[MAX_PARTS];
	char *names[MAX_PARTS];
	char *types[MAX_PARTS];
	unsigned n;
};

static int collect_part(void *ctx, unsigned n, const char *name,
			const char *type, uint64_t size)
{
	struct parts_acc *a = ctx;
	unsigned i = a->n;

	if (i >= MAX_PARTS)
		return 0;
	a->names[i] = strdup(name);
	a->types[i] = strdup(type);
	if (!a->names[i] || !a->types[i]) {
		free(a->names[i]);
		free(a->types[i]);
		return MFS_E_NOMEM;
	}
	a->parts[i] = (struct ix_part){ .n = n, .name = a->names[i],
					.type = a->types[i], .size = size };
	a->n++;
	return 0;
}

struct view_build {
	struct parts_acc *acc;
	struct view v;
	bool keep;		/* every part so far has its memfd */
};

static int view_open(void *ctx, unsigned n)
{
	struct view_build *vb = ctx;
	int fd;

	if (!vb->keep || n > VIEW_MAX_PARTS) {
		vb->keep = false;
		return -1;	/* measured only */
	}
	/* In memory (tmpfs), not in the process: the reader's pages.  Out
	 * of descriptors, the listing must still work: measure instead. */
	fd = memfd_create("mailfs-part", MFD_CLOEXEC);
	if (fd < 0) {
		vb->keep = false;
		return -1;
	}
	vb->v.fd[n - 1] = fd;
	vb->v.n = n;
	return fd;
}

static int view_part(void *ctx, unsigned n, const char *name,
		     const char *type, uint64_t size)
{
	struct view_build *vb = ctx;

	if (vb->keep && n <= vb->v.n) {
		vb->v.size[n - 1] = size;
		vb->v.bytes += size;
	}
	return collect_part(vb->acc, n, name, type, size);
}

/* Decode k's body once: every part's name, type and size, recorded in the
 * index when record is set, and for a body small enough every part kept
 * in a memfd for the opens that follow.  held: the caller owns k's
 * inflight slot. */
static int decode_view(struct cache *c, const struct cache_key *k, bool held,
		       bool record, struct mfs_error *err)
{
	struct view_build vb = { 0 };
	uint64_t size;
	int fd = -1, rc;

	rc = cache_open_body(c, k, held, &fd, &size, err);
	if (rc < 0)
		return rc;
	vb.acc = calloc(1, sizeof(*vb.acc));
	if (!vb.acc) {
		rc = mfs_fail(err, MFS_E_NOMEM, "out of memory");
		goto out;
	}
	vb.keep = size <= VIEW_MSG_MAX;
	rc = mime_decode_all(fd, MAX_PARTS, view_open, view_part, &vb, err);
	if (rc == 0 && record)
		rc = index_parts_set(c->ix, k->folder, k->uid, vb.acc->parts,
				     vb.acc->n, err);
	if (rc == 0 && vb.keep && vb.v.n == vb.acc->n && vb.v.n > 0) {
		view_put(c, k, &vb.v);
		vb.v.n = 0;	/* the fds are the cache's now */
	}
out:
	for (unsigned i = 0; i < vb.v.n; i++)
		close(vb.v.fd[i]);
	if (vb.acc)
		for (unsigned i = 0; i < vb.acc->n; i++) {
			free(vb.acc->names[i]);
			free(vb.acc->types[i]);
		}
	free(vb.acc);
	close(fd);
	return rc;
}

struct known_ctx {
	bool known;
};

static int get_known(void *ctx, const struct ix_msg *m)
{
	((struct known_ctx *)ctx)->known = m->parts_known;
	return 0;
}

int cache_parts(struct cache *c, const struct cache_key *k,
		struct mfs_error *err)
{
	struct known_ctx kc = { false };
	int rc;

	/* Listing needs no body once the parts are known: ls and rsync of
	 * decoded directories work offline and after eviction. */
	rc = index_msg_get(c->ix, k->folder, k->uid, get_known, &kc, err);
	if (rc < 0 || kc.known)
		return rc;
	cache_inflight_enter(c, k);
	rc = index_msg_get(c->ix, k->folder, k->uid, get_known, &kc, err);
	if (rc == 0 && !kc.known)
		rc = decode_view(c, k, true, true, err);
	cache_inflight_leave(c, k);
	return rc;
}

struct one_part {
	unsigned n;
	bool seen;
	uint64_t size;
};

static int note_part(void *ctx, unsigned n, const char *name,
		     const char *type, uint64_t size)
{
	struct one_part *p = ctx;

	(void)name;
	(void)type;
	if (n == p->n) {
		p->seen = true;
		p->size = size;
	}
	return 0;
}

/* An unlinked file beside the bodies, open for reading and writing. */
static int big_file(struct cache *c, struct mfs_error *err)
{
	char name[PATH_MAX];
	int fd;

	snprintf(name, sizeof(name), "%s/tmp.XXXXXX", c->dir);
	fd = mkostemp(name, O_CLOEXEC);
	if (fd < 0)
		return mfs_fail(err, MFS_E_IO, "decoded part: %s",
				strerror(errno));
	unlink(name);
	return fd;
}

int cache_part(struct cache *c, const struct cache_key *k, unsigned n,
	       int *fd, uint64_t *size, struct mfs_error *err)
{
	struct one_part p = { n, false, 0 };
	uint64_t body_size;
	bool held = false;
	int body = -1, rc;

	*fd = -1;
	if (kept_get(c, k, n, fd, size))
		return 0;
	rc = cache_parts(c, k, err);	/* may decode and keep the view */
	if (rc == 0 && kept_get(c, k, n, fd, size))
		return 0;
	if (rc == 0)
		rc = cache_open_body(c, k, false, &body, &body_size, err);
	if (rc < 0)
		return rc;
	if (body_size <= VIEW_MSG_MAX) {
		rc = decode_view(c, k, false, false, err);
		if (rc < 0)
			goto out;
		if (kept_get(c, k, n, fd, size))
			goto out;
		/* Too many parts to keep: this part alone, into memory
		 * (tmpfs) as well; at most VIEW_MSG_MAX bytes. */
		*fd = memfd_create("mailfs-part", MFD_CLOEXEC);
		if (*fd < 0) {
			rc = mfs_fail(err, MFS_E_IO, "memfd: %s",
				      strerror(errno));
			goto out;
		}
	} else {
		/* Too big for memory: one copy on disk for all its opens.
		 * Holding the message's slot, a second reader waits for the
		 * first one's copy instead of decoding its own. */
		cache_inflight_enter(c, k);
		held = true;
		if (kept_get(c, k, n, fd, size))
			goto out;
		*fd = big_file(c, err);
		if (*fd < 0) {
			rc = *fd;
			goto out;
		}
	}
	rc = mime_decode(body, n, *fd, MAX_PARTS, note_part, &p, err);
	if (rc == 0 && !p.seen)
		rc = mfs_fail(err, MFS_E_NOTFOUND, "no part %u", n);
	if (rc < 0)
		goto out;
	*size = p.size;
	if (held)
		big_put(c, k, n, *fd, p.size);
out:
	if (held)
		cache_inflight_leave(c, k);
	if (rc < 0 && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	close(body);
	return rc;
}
