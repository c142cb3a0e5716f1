/* cache.c - the body store: each body fetched once and kept on disk as
 * dir/<folder>.<uidvalidity>.<uid>.eml, the least recently used evicted
 * when the total passes the cap.
 *
 * A message's bytes never change for its UID, so a file, once renamed
 * into place, is never written again.  Two readers of an uncached
 * message must not fetch it twice: whoever holds its inflight slot
 * fetches, the others wait for the slot and then find the file.  Bodies
 * are fetched in batches (one UID FETCH, pipelined) so that read-ahead
 * (cache_readahead.c) and prefetch cost one round trip per window.  The
 * index keeps each body's size and last use (the cache table), which
 * the cap and eviction go by; the sweep removes what the index no longer
 * knows (a deleted or rebuilt folder, a crash).  Decoded parts are made
 * from these files by cache_views.c, into a parts file beside each body
 * that the body's entry counts and that goes with it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_int.h"
#include "log.h"

/* A body may be this much more than twice its RFC822.SIZE (see
 * batch_max). */
#define BODY_SLACK (1ull << 20)

int cache_open(const char *dir, struct index *ix, struct pool *pool,
	       uint64_t max_bytes, long timeout_s, cache_size_fn on_size,
	       void *ctx, struct cache **out, struct mfs_error *err)
{
	struct cache *c = calloc(1, sizeof(*c));
	int rc;

	if (!c || !(c->dir = strdup(dir))) {
		if (c)
			free(c->dir);
		free(c);
		return mfs_fail(err, MFS_E_NOMEM, "out of memory");
	}
	c->ix = ix;
	c->pool = pool;
	c->max_bytes = max_bytes;
	c->timeout_s = timeout_s;
	c->on_size = on_size;
	c->ctx = ctx;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->done, NULL);
	index_cache_total(ix, &c->total, NULL);
	rc = cache_ra_start(c, err);
	if (rc < 0) {
		pthread_cond_destroy(&c->done);
		pthread_mutex_destroy(&c->lock);
		free(c->dir);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

static void flush_touches(struct cache *c);

void cache_close(struct cache *c)
{
	if (!c)
		return;
	cache_ra_stop(c);
	flush_touches(c);
	pthread_cond_destroy(&c->done);
	pthread_mutex_destroy(&c->lock);
	free(c->dir);
	free(c);
}

void cache_key_path(const struct cache *c, const struct cache_key *k,
		    const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%lld.%u.%u%s", c->dir, (long long)k->folder,
		 k->uidvalidity, k->uid, suffix);
}

/* ---- inflight slots: one fetch or decode of a message at a time ---- */

void cache_inflight_enter(struct cache *c, const struct cache_key *k)
{
	pthread_mutex_lock(&c->lock);
	for (;;) {
		unsigned i;
		bool busy = false;

		for (i = 0; i < c->ninflight; i++)
			if (c->inflight[i].folder == k->folder &&
			    c->inflight[i].uid == k->uid)
				busy = true;
		if (!busy && c->ninflight < MAX_INFLIGHT)
			break;
		pthread_cond_wait(&c->done, &c->lock);
	}
	c->inflight[c->ninflight].folder = k->folder;
	c->inflight[c->ninflight].uid = k->uid;
	c->ninflight++;
	pthread_mutex_unlock(&c->lock);
}

void cache_inflight_leave(struct cache *c, const struct cache_key *k)
{
	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < c->ninflight; i++) {
		if (c->inflight[i].folder == k->folder &&
		    c->inflight[i].uid == k->uid) {
			c->inflight[i] = c->inflight[--c->ninflight];
			break;
		}
	}
	pthread_cond_broadcast(&c->done);
	pthread_mutex_unlock(&c->lock);
}

/* The slot if it is free, without waiting: a batch takes only messages
 * nobody else is working on. */
static bool inflight_try_enter(struct cache *c, int64_t folder, uint32_t uid)
{
	bool ok = true;

	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; ok && i < c->ninflight; i++)
		if (c->inflight[i].folder == folder && c->inflight[i].uid == uid)
			ok = false;
	if (ok && c->ninflight < MAX_INFLIGHT) {
		c->inflight[c->ninflight].folder = folder;
		c->inflight[c->ninflight].uid = uid;
		c->ninflight++;
	} else {
		ok = false;
	}
	pthread_mutex_unlock(&c->lock);
	return ok;
}

static void inflight_leave_id(struct cache *c, int64_t folder, uint32_t uid)
{
	struct cache_key k = { .folder = folder, .uid = uid };

	cache_inflight_leave(c, &k);
}

/* ---- files, the cap and eviction ---- */

static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (d) {
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
	}
	rmdir(path);
}

static int get_uidvalidity(void *ctx, const struct ix_folder *f)
{
	*(uint32_t *)ctx = f->uidvalidity;
	return 0;
}

static void remove_files(struct cache *c, int64_t folder, uint32_t uid)
{
	struct cache_key k = { .folder = folder, .uid = uid };
	char path[PATH_MAX];

	if (index_folder_get(c->ix, folder, get_uidvalidity, &k.uidvalidity,
			     NULL) < 0)
		return;
	cache_key_path(c, &k, ".eml", path, sizeof(path));
	unlink(path);
	cache_key_path(c, &k, ".parts", path, sizeof(path));
	unlink(path);
	/* Decoded views of earlier versions lived beside the body. */
	cache_key_path(c, &k, ".d", path, sizeof(path));
	remove_tree(path);
}

/* Write touches taken from the batch, outside c->lock: the index may
 * make us wait for another writer, and no other reader should wait with
 * us.  They are only hints for eviction: when the transaction cannot be
 * had, they are dropped. */
static void write_touches(struct cache *c, const struct folder_uid *t,
			  unsigned n)
{
	if (n == 0 || index_begin(c->ix, NULL) < 0)
		return;
	for (unsigned i = 0; i < n; i++)
		index_cache_touch(c->ix, t[i].folder, t[i].uid, NULL);
	if (index_commit(c->ix, NULL) < 0)
		index_rollback(c->ix);
}

/* Write pending touches now. */
static void flush_touches(struct cache *c)
{
	struct folder_uid t[TOUCH_BATCH];
	unsigned n;

	pthread_mutex_lock(&c->lock);
	n = c->ntouched;
	memcpy(t, c->touched, n * sizeof(t[0]));
	c->ntouched = 0;
	pthread_mutex_unlock(&c->lock);
	write_touches(c, t, n);
}

void cache_touch(struct cache *c, const struct cache_key *k)
{
	struct folder_uid t[TOUCH_BATCH];
	unsigned n = 0;

	pthread_mutex_lock(&c->lock);
	c->touched[c->ntouched].folder = k->folder;
	c->touched[c->ntouched].uid = k->uid;
	if (++c->ntouched == TOUCH_BATCH) {
		n = c->ntouched;
		memcpy(t, c->touched, sizeof(t));
		c->ntouched = 0;
	}
	pthread_mutex_unlock(&c->lock);
	write_touches(c, t, n);
}

void cache_account(struct cache *c, uint64_t added)
{
	uint64_t total;
	bool reread;

	pthread_mutex_lock(&c->lock);
	c->total += added;
	reread = ++c->adds % 256 == 0;
	pthread_mutex_unlock(&c->lock);
	/* Not under the lock, which every open of a body takes: summing the
	 * table takes a while, and the index may make us wait. */
	if (reread && index_cache_total(c->ix, &total, NULL) == 0) {
		pthread_mutex_lock(&c->lock);
		c->total = total;
		pthread_mutex_unlock(&c->lock);
	}
}

void cache_unaccount(struct cache *c, uint64_t removed)
{
	pthread_mutex_lock(&c->lock);
	c->total = c->total > removed ? c->total - removed : 0;
	pthread_mutex_unlock(&c->lock);
}

static bool over_cap(struct cache *c)
{
	bool over;

	pthread_mutex_lock(&c->lock);
	over = c->total > c->max_bytes;
	pthread_mutex_unlock(&c->lock);
	return over;
}

void cache_evict(struct cache *c, const struct cache_key *keep)
{
	unsigned skip = 0;
	int64_t folder;
	uint32_t uid;
	uint64_t bytes;

	/* Evict by up-to-date recency. */
	flush_touches(c);
	while (over_cap(c) && skip <= MAX_INFLIGHT) {
		if (index_cache_oldest(c->ix, skip, &folder, &uid, &bytes,
				       NULL) < 0)
			return;
		/* A message being fetched or decoded is passed over: its
		 * parts file may be going into place, or its entry getting
		 * the file's bytes.  Holding its slot, nobody else removes
		 * it meanwhile, and the bytes taken off the total are the
		 * ones its entry counted. */
		if ((folder == keep->folder && uid == keep->uid) ||
		    !inflight_try_enter(c, folder, uid)) {
			skip++;
			continue;
		}
		remove_files(c, folder, uid);
		if (index_cache_remove(c->ix, folder, uid, &bytes, NULL) == 1)
			cache_unaccount(c, bytes);
		inflight_leave_id(c, folder, uid);
		log_debug(LOG_CAT_CACHE, "evicted %lld/%u", (long long)folder,
			  uid);
	}
}

/* ---- fetching: a batch of bodies in one UID FETCH ---- */

struct size_ctx {
	uint64_t size;
};

static int get_size(void *ctx, const struct ix_msg *m)
{
	((struct size_ctx *)ctx)->size = m->size;
	return 0;
}

struct batch *cache_batch_new(struct cache *c, const struct cache_key *k,
			      struct mfs_error *err)
{
	struct batch *b = calloc(1, sizeof(*b));

	if (!b) {
		mfs_fail(err, MFS_E_NOMEM, "out of memory");
		return NULL;
	}
	b->c = c;
	b->k = k;
	b->err = err;
	return b;
}

bool cache_batch_want(struct batch *b, uint32_t uid)
{
	struct cache_key k = *b->k;

	k.uid = uid;
	cache_key_path(b->c, &k, ".eml", b->path[b->n], PATH_MAX);
	if (access(b->path[b->n], F_OK) == 0 ||
	    !inflight_try_enter(b->c, k.folder, uid))
		return false;
	b->uid[b->n++] = uid;
	return true;
}

/* A body has come: record it, and correct the size the index had. */
static void store(struct cache *c, const struct cache_key *k, uint64_t len)
{
	struct size_ctx old = { 0 };
	struct mfs_error err = { 0 };

	log_debug(LOG_CAT_CACHE, "fetched %s/%u: %llu bytes", k->mailbox,
		  k->uid, (unsigned long long)len);
	if (index_cache_add(c->ix, k->folder, k->uid, len, &err) < 0)
		log_msg(LOG_WARNING, "%s/%u: %s (the body is recorded at the "
			"next start)", k->mailbox, k->uid, err.msg);
	cache_account(c, len);
	pthread_mutex_lock(&c->lock);
	c->fetched++;
	c->fetched_bytes += len;
	pthread_mutex_unlock(&c->lock);
	/* Servers can report RFC822.SIZE wrongly; the bytes are the truth. */
	if (index_msg_get(c->ix, k->folder, k->uid, get_size, &old, NULL) == 0 &&
	    old.size != len) {
		log_msg(LOG_INFO, "%s/%u: server said %llu bytes, sent %llu",
			k->mailbox, k->uid, (unsigned long long)old.size,
			(unsigned long long)len);
		index_msg_set_size(c->ix, k->folder, k->uid, len, NULL);
		if (c->on_size)
			c->on_size(c->ctx, k->folder, k->uid);
	}
}

static int batch_tmp(void *ctx)
{
	struct batch *b = ctx;
	size_t i;
	int fd;

	/* A slot whose file was handed back (renamed or removed) is free
	 * again: a batch fetched in several tries needs no more slots. */
	for (i = 0; i < b->ntmp && b->tmp[i].fd != -1; i++)
		;
	if (i >= RA_MAX + 1)
		return MFS_E_PROTO;	/* more bodies than we asked for */
	snprintf(b->tmp[i].name, PATH_MAX, "%s/tmp.XXXXXX", b->c->dir);
	fd = mkostemp(b->tmp[i].name, O_CLOEXEC);
	if (fd < 0)
		return MFS_E_IO;
	b->tmp[i].fd = fd;
	if (i == b->ntmp)
		b->ntmp++;
	return fd;
}

static int batch_body(void *ctx, uint32_t uid, int fd, uint64_t len)
{
	struct batch *b = ctx;
	const char *tmp = NULL;
	size_t i;

	for (i = 0; i < b->ntmp; i++)
		if (b->tmp[i].fd == fd) {
			tmp = b->tmp[i].name;
			b->tmp[i].fd = -1;
		}
	close(fd);
	for (i = 0; tmp && i < b->n; i++) {
		struct cache_key ki = *b->k;

		if (b->uid[i] != uid || b->got[i])
			continue;
		if (rename(tmp, b->path[i]) < 0)
			return mfs_fail(b->err, MFS_E_IO, "cache rename: %s",
					strerror(errno));
		b->got[i] = true;
		ki.uid = uid;
		store(b->c, &ki, len);
		return 0;
	}
	if (tmp)
		unlink(tmp);	/* a UID we did not ask for */
	return 0;
}

/* The longest body the batch's messages may come as.  Servers misreport
 * RFC822.SIZE a little (the bytes are the truth, see store), not by
 * megabytes; and nothing bigger than the cache fits in it. */
static uint64_t batch_max(struct cache *c, const struct batch *b)
{
	uint64_t max = 0;

	for (size_t i = 0; i < b->n; i++) {
		struct size_ctx sc = { 0 };
		uint64_t m = c->max_bytes;

		if (index_msg_get(c->ix, b->k->folder, b->uid[i], get_size, &sc,
				  NULL) == 0 && sc.size > 0 &&
		    sc.size < c->max_bytes / 2)
			m = 2 * sc.size + BODY_SLACK;
		if (m > max)
			max = m;
	}
	return max < c->max_bytes ? max : c->max_bytes;
}

/* One UID FETCH for the batch's messages, whose inflight slots are held;
 * bodies land in their cache files as they arrive. */
int cache_batch_run(struct cache *c, struct batch *b, struct mfs_error *err)
{
	struct imap_conn *conn = NULL;
	uint64_t max = batch_max(c, b);
	int rc = 0;

	for (int attempt = 0;; attempt++) {
		uint32_t want[RA_MAX];
		size_t nwant = 0;

		for (size_t i = 0; i < b->n; i++)
			if (!b->got[i])
				want[nwant++] = b->uid[i];
		if (nwant == 0) {
			rc = 0;	/* all came, whatever closed after */
			break;
		}
		rc = pool_get(c->pool, c->timeout_s, &conn, err);
		if (rc < 0)
			break;
		rc = imap_fetch_bodies(conn, b->k->mailbox, b->k->uidvalidity,
				       want, nwant, max, batch_tmp, batch_body,
				       b, err);
		pool_put(c->pool, conn);
		/* Files never handed back were closed by the IMAP engine,
		 * which owns them until then; only their names are left to
		 * remove, and their slots are free for the next try. */
		for (size_t i = 0; i < b->ntmp; i++)
			if (b->tmp[i].fd >= 0) {
				unlink(b->tmp[i].name);
				b->tmp[i].fd = -1;
			}
		/* A connection that sat in the pool may have been closed by
		 * the server meanwhile (idle timeout, BYE for a mailbox
		 * deleted under it), also after some bodies came: the rest
		 * again, until every pooled connection has had its turn
		 * (each may have kept the same stale view; a broken one is
		 * dropped, so the last try is a new one). */
		if (rc != MFS_E_CLOSED || attempt >= (int)pool_size(c->pool))
			break;
	}
	return rc;
}

void cache_batch_leave(struct cache *c, struct batch *b, size_t from)
{
	for (size_t i = from; i < b->n; i++) {
		struct cache_key ki = *b->k;

		ki.uid = b->uid[i];
		cache_inflight_leave(c, &ki);
	}
}

/* Fetch k (whose inflight slot the caller holds) into path, with any
 * readahead.  Only k's own failure is an error. */
static int fetch(struct cache *c, const struct cache_key *k,
		 const char *path, struct mfs_error *err)
{
	struct batch *b = cache_batch_new(c, k, err);
	unsigned w;
	int rc;

	if (!b)
		return MFS_E_NOMEM;
	b->uid[0] = k->uid;
	snprintf(b->path[0], PATH_MAX, "%s", path);
	b->n = 1;
	w = cache_ra_window(c, k->folder);
	if (w > 1)
		cache_ra_collect(c, b, k->uid, w);
	rc = cache_batch_run(c, b, err);
	if (b->got[0])
		rc = 0;	/* what went wrong after it was readahead's */
	if (rc == 0 && b->n > 1)
		cache_ra_started(c, k, b);
	if (rc == 0 && !b->got[0])
		rc = mfs_fail(err, MFS_E_NOTFOUND, "UID %u no longer in %s",
			      k->uid, k->mailbox);
	if (rc == 0)
		cache_evict(c, k);
	cache_batch_leave(c, b, 1);
	free(b);
	return rc;
}

int cache_prefetch(struct cache *c, const struct cache_key *k,
		   const uint32_t *uids, size_t n, size_t *used,
		   struct mfs_error *err)
{
	struct batch *b = cache_batch_new(c, k, err);
	size_t i;
	int rc = 0;

	if (!b)
		return MFS_E_NOMEM;
	/* Skipped: what is cached, and what a reader has in hand. */
	for (i = 0; i < n && b->n < RA_MAX; i++)
		cache_batch_want(b, uids[i]);
	*used = i;
	if (b->n > 0) {
		rc = cache_batch_run(c, b, err);
		if (rc == 0)
			cache_evict(c, k);
		cache_batch_leave(c, b, 0);
	}
	free(b);
	return rc;
}

void cache_stats(struct cache *c, struct cache_stats *st)
{
	uint64_t bytes = 0;

	memset(st, 0, sizeof(*st));
	index_cache_count(c->ix, 0, &st->bodies, &bytes, NULL);
	index_views_count(c->ix, &st->views, &st->views_bytes, NULL);
	pthread_mutex_lock(&c->lock);
	st->bytes = c->total;
	st->cap = c->max_bytes;
	st->fetched = c->fetched;
	st->fetched_bytes = c->fetched_bytes;
	st->decoded = c->decoded;
	pthread_mutex_unlock(&c->lock);
}

/* ---- opening a body ---- */

int cache_open_body(struct cache *c, const struct cache_key *k, bool held,
		    int *fd, uint64_t *size, struct mfs_error *err)
{
	char path[PATH_MAX];
	struct stat st;
	int rc = 0;

	cache_key_path(c, k, ".eml", path, sizeof(path));
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		if (!held)
			cache_inflight_enter(c, k);
		*fd = open(path, O_RDONLY | O_CLOEXEC);
		if (*fd < 0) {
			rc = fetch(c, k, path, err);
			if (rc == 0)
				*fd = open(path, O_RDONLY | O_CLOEXEC);
		} else {
			/* Read-ahead won the race. */
			cache_ra_consumed(c, k);
		}
		if (!held)
			cache_inflight_leave(c, k);
		if (rc < 0)
			return rc;
		if (*fd < 0)
			return mfs_fail(err, MFS_E_IO, "cache %s: %s", path,
					strerror(errno));
	} else {
		cache_touch(c, k);
		cache_ra_consumed(c, k);
	}
	if (fstat(*fd, &st) < 0) {
		close(*fd);
		*fd = -1;
		return mfs_fail(err, MFS_E_IO, "cache stat: %s",
				strerror(errno));
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

int cache_body(struct cache *c, const struct cache_key *k, int *fd,
	       uint64_t *size, struct mfs_error *err)
{
	return cache_open_body(c, k, false, fd, size, err);
}

/* ---- the sweep: bodies the index no longer knows ---- */

/* A body kept on disk must have its cache entry, or neither the cap nor
 * eviction would ever reach it: one whose entry could not be written
 * (the index busy beyond its timeout) gets one now. */
static bool adopt(struct cache *c, int dirfd, const char *name,
		  int64_t folder, uint32_t uid)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, 0) < 0 ||
	    index_cache_adopt(c->ix, folder, uid, (uint64_t)st.st_size,
			      NULL) != 1)
		return false;
	cache_account(c, (uint64_t)st.st_size);
	return true;
}

/* A parts file counts only as its body's entry records it (see
 * cache_views.c): one the index does not know of (a crash between its
 * rename and its record) or knows with another size is removed.  With
 * the message's slot held, so that no decoder is putting it in place
 * meanwhile.  True when it went. */
static bool parts_stray(struct cache *c, int dirfd, const char *name,
			int64_t folder, uint32_t uid)
{
	struct cache_key k = { .folder = folder, .uid = uid };
	uint64_t total = 0;
	bool gone = false;
	struct stat st;
	int rc;

	cache_inflight_enter(c, &k);
	if (fstatat(dirfd, name, &st, 0) == 0) {
		rc = index_views_get(c->ix, folder, uid, &total, NULL);
		if (rc == 0 && total != (uint64_t)st.st_size &&
		    index_views_clear(c->ix, folder, uid, NULL) == 0)
			cache_unaccount(c, total);
		if (rc == MFS_E_NOTFOUND ||
		    (rc == 0 && total != (uint64_t)st.st_size))
			gone = unlinkat(dirfd, name, 0) == 0;
	}
	cache_inflight_leave(c, &k);
	return gone;
}

/* Remove bodies whose folder has left the index or was rebuilt under a
 * new UIDVALIDITY: the index forgets them with the folder, so neither
 * the cap nor eviction would ever reach their files.  At start also what
 * a crash left (temporary files, parts files the index does not record)
 * and the decoded views earlier versions kept on disk, and record the
 * bodies that lack their entry (adopt). */
void cache_sweep_run(struct cache *c, bool startup)
{
	DIR *d = opendir(c->dir);
	struct dirent *de;
	unsigned long removed = 0, adopted = 0;
	/* The folder of the files seen last, in the index or not, and its
	 * UIDVALIDITY there. */
	int64_t looked = -1;
	bool found = false;
	uint32_t current = 0;

	if (!d)
		return;
	while ((de = readdir(d))) {
		long long folder;
		unsigned uidvalidity, uid;
		char dot;
		int n;

		if (startup && !strncmp(de->d_name, "tmp.", 4)) {
			removed += unlinkat(dirfd(d), de->d_name, 0) == 0;
			continue;
		}
		n = sscanf(de->d_name, "%lld.%u.%u.%c", &folder, &uidvalidity,
			   &uid, &dot);
		if (n != 4)
			continue;
		if (dot == 'd') {
			if (startup) {
				char path[PATH_MAX];

				snprintf(path, sizeof(path), "%s/%s", c->dir,
					 de->d_name);
				remove_tree(path);
			}
			continue;
		}
		if (folder != looked) {
			int rc = index_folder_get(c->ix, folder,
						  get_uidvalidity, &current,
						  NULL);

			looked = folder;
			if (rc < 0 && rc != MFS_E_NOTFOUND) {
				looked = -1;	/* no answer: keep */
				continue;
			}
			found = rc == 0;
		}
		if (found && current == uidvalidity) {
			if (startup && dot == 'e')
				adopted += adopt(c, dirfd(d), de->d_name,
						 folder, uid);
			if (startup && dot == 'p')
				removed += parts_stray(c, dirfd(d), de->d_name,
						       folder, uid);
			continue;
		}
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			removed++;
		index_cache_remove(c->ix, folder, uid, NULL, NULL);
	}
	closedir(d);
	if (removed)
		log_debug(LOG_CAT_CACHE, "swept %lu orphaned files", removed);
	if (adopted)
		log_msg(LOG_INFO, "cache: %lu bodies had no entry in the index "
			"and got one", adopted);
}
