/* cache.c - body cache: fetch once, keep on disk, evict least recently
 * used; decoded parts are made from the cached body when opened. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "log.h"
#include "mime.h"

#define MAX_PARTS 1000
/* A reader of a decoded directory (cp -r, grep -r, a file manager) opens
 * its parts one after another: a message is decoded once, all parts into
 * memfds kept for the next opens, when it is small enough to do so. */
#define VIEW_SLOTS 8
#define VIEW_MAX_PARTS 64
#define VIEW_BYTES (32ull << 20)
/* Descriptors the kept views may hold together (8 x 64 would pin 512 of
 * them, which open files need more). */
#define VIEW_FDS 64
_Static_assert(VIEW_MAX_PARTS <= VIEW_FDS, "a view must fit");
/* A part of a message too big for a view is decoded on its own into an
 * unlinked file beside the bodies (disk, not memory) and shared by the
 * opens of that part; the last BIG_SLOTS such parts are kept. */
#define BIG_SLOTS 2
#define VIEW_MSG_MAX (8ull << 20)
#define MAX_INFLIGHT 64
/* A body may be this much more than twice its RFC822.SIZE (see
 * batch_max). */
#define BODY_SLACK (1ull << 20)
#define TOUCH_BATCH 256

struct touch {
	int64_t folder;
	uint32_t uid;
};

struct cache {
	char *dir;
	struct index *ix;
	struct pool *pool;
	uint64_t max_bytes;
	long timeout_s;
	cache_size_fn on_size;
	void *ctx;
	pthread_mutex_t lock;	/* guards inflight */
	pthread_cond_t done;
	struct {
		int64_t folder;
		uint32_t uid;
	} inflight[MAX_INFLIGHT];
	unsigned ninflight;
	/* Bytes cached, kept here so a fetch needn't sum the table; re-read
	 * from the index now and then in case files were touched behind our
	 * back.  Guarded by lock. */
	uint64_t total;
	unsigned adds;
	uint64_t fetched, fetched_bytes;	/* since mount, for status */
	/* LRU touches of cached bodies, written to the index in batches:
	 * one transaction per open would cost more than the read. */
	struct touch touched[TOUCH_BATCH];
	unsigned ntouched;
	/* Readahead state (see ra_window), guarded by lock. */
	int64_t ra_folder;
	int64_t ra_last;
	unsigned ra_window;
	/* Streaming: bodies fetched ahead and not yet opened, the last UID
	 * fetched, and the background fetch that keeps the window full
	 * while the reader works through it. */
	unsigned ra_ahead;
	uint32_t ra_tail;
	char *ra_mailbox;
	uint32_t ra_uidvalidity;
	bool ra_wanted, ra_stop;
	/* Orphaned bodies to clear (see sweep); the first sweep also clears
	 * what a crash or an earlier version left. */
	bool sweep_wanted, swept_once;
	/* Messages decoded lately, every part in a memfd (see decode_view),
	 * least recently used out first; guarded by vlock. */
	pthread_mutex_t vlock;
	struct view {
		int64_t folder;
		uint32_t uidvalidity, uid;
		unsigned n;	/* parts; 0: a free slot */
		int fd[VIEW_MAX_PARTS];
		uint64_t size[VIEW_MAX_PARTS];
		uint64_t bytes;
		uint64_t used;
	} views[VIEW_SLOTS];
	uint64_t vbytes, vtick;
	unsigned vfds;
	struct big {
		int64_t folder;
		uint32_t uidvalidity, uid;
		unsigned n;	/* the part; 0: a free slot */
		int fd;
		uint64_t size, used;
	} bigs[BIG_SLOTS];
	pthread_t ra_thread;
	pthread_cond_t ra_cond;
};

static void flush_touches(struct cache *c);
static void *ra_main(void *arg);
static void view_drop(struct cache *c, struct view *v);

int cache_open(const char *dir, struct index *ix, struct pool *pool,
	       uint64_t max_bytes, long timeout_s, cache_size_fn on_size,
	       void *ctx, struct cache **out, struct mfs_error *err)
{
	struct cache *c = calloc(1, sizeof(*c));

	if (!c || !(c->dir = strdup(dir))) {
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
	pthread_mutex_init(&c->vlock, NULL);
	pthread_cond_init(&c->done, NULL);
	pthread_cond_init(&c->ra_cond, NULL);
	index_cache_total(ix, &c->total, NULL);
	c->sweep_wanted = true;
	if (pthread_create(&c->ra_thread, NULL, ra_main, c) != 0) {
		pthread_cond_destroy(&c->ra_cond);
		pthread_cond_destroy(&c->done);
		pthread_mutex_destroy(&c->vlock);
		pthread_mutex_destroy(&c->lock);
		free(c->dir);
		free(c);
		return mfs_fail(err, MFS_E_NOMEM, "cannot start a thread");
	}
	*out = c;
	return 0;
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->ra_stop = true;
	pthread_cond_signal(&c->ra_cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->ra_thread, NULL);
	flush_touches(c);
	free(c->ra_mailbox);
	for (unsigned i = 0; i < VIEW_SLOTS; i++)
		view_drop(c, &c->views[i]);
	for (unsigned i = 0; i < BIG_SLOTS; i++)
		if (c->bigs[i].n)
			close(c->bigs[i].fd);
	pthread_mutex_destroy(&c->vlock);
	pthread_cond_destroy(&c->ra_cond);
	pthread_cond_destroy(&c->done);
	pthread_mutex_destroy(&c->lock);
	free(c->dir);
	free(c);
}

static void key_path(const struct cache *c, const struct cache_key *k,
		     const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%lld.%u.%u%s", c->dir, (long long)k->folder,
		 k->uidvalidity, k->uid, suffix);
}

/* Serialise work on one message so two readers don't fetch it twice. */
static int inflight_enter(struct cache *c, const struct cache_key *k)
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
	return 0;
}

static void inflight_leave(struct cache *c, const struct cache_key *k)
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
	key_path(c, &k, ".eml", path, sizeof(path));
	unlink(path);
	/* Decoded views of earlier versions lived beside the body. */
	key_path(c, &k, ".d", path, sizeof(path));
	remove_tree(path);
}

/* Write touches taken from the batch, outside c->lock: the index may
 * make us wait for another writer, and no other reader should wait with
 * us.  They are only hints for eviction: when the transaction cannot be
 * had, they are dropped. */
static void write_touches(struct cache *c, const struct touch *t, unsigned n)
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
	struct touch t[TOUCH_BATCH];
	unsigned n;

	pthread_mutex_lock(&c->lock);
	n = c->ntouched;
	memcpy(t, c->touched, n * sizeof(t[0]));
	c->ntouched = 0;
	pthread_mutex_unlock(&c->lock);
	write_touches(c, t, n);
}

static void touch(struct cache *c, const struct cache_key *k)
{
	struct touch t[TOUCH_BATCH];
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

static void account(struct cache *c, uint64_t added)
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

static bool over_cap(struct cache *c)
{
	bool over;

	pthread_mutex_lock(&c->lock);
	over = c->total > c->max_bytes;
	pthread_mutex_unlock(&c->lock);
	return over;
}

static void evict(struct cache *c, const struct cache_key *keep)
{
	int64_t folder;
	uint32_t uid;
	uint64_t bytes;

	/* Evict by up-to-date recency. */
	flush_touches(c);
	while (over_cap(c)) {
		if (index_cache_oldest(c->ix, &folder, &uid, &bytes, NULL) < 0)
			return;
		if (folder == keep->folder && uid == keep->uid)
			return;
		remove_files(c, folder, uid);
		index_cache_remove(c->ix, folder, uid, NULL);
		pthread_mutex_lock(&c->lock);
		c->total = c->total > bytes ? c->total - bytes : 0;
		pthread_mutex_unlock(&c->lock);
		log_debug(LOG_CAT_CACHE, "evicted %lld/%u", (long long)folder,
			  uid);
	}
}

struct size_ctx {
	uint64_t size;
};

static int get_size(void *ctx, const struct ix_msg *m)
{
	((struct size_ctx *)ctx)->size = m->size;
	return 0;
}

/* Readahead: a reader that opens uncached messages of one folder in quick
 * succession (cat *.eml, cp -r, tar, rsync) gets the ones that follow in
 * name order fetched in the same pipelined batch, the window doubling up to
 * RA_MAX as in the kernel's readahead.  A lone open fetches one message. */
#define RA_MAX 32
#define RA_WINDOW_MS 2000

struct batch {
	struct cache *c;
	const struct cache_key *k;
	size_t n;
	uint32_t uid[RA_MAX];
	bool got[RA_MAX];
	char path[RA_MAX][PATH_MAX];
	/* Temporary files handed to the IMAP engine, by descriptor. */
	size_t ntmp;
	struct {
		int fd;
		char name[PATH_MAX];
	} tmp[RA_MAX + 1];
	int rc;
	struct mfs_error *err;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned ra_window(struct cache *c, int64_t folder)
{
	int64_t now = mono_ms();
	unsigned w;

	pthread_mutex_lock(&c->lock);
	if (c->ra_folder == folder && now - c->ra_last < RA_WINDOW_MS)
		w = c->ra_window * 2 > RA_MAX ? RA_MAX : c->ra_window * 2;
	else
		w = 1;
	c->ra_folder = folder;
	c->ra_last = now;
	c->ra_window = w;
	pthread_mutex_unlock(&c->lock);
	return w;
}

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

struct ra_ctx {
	struct cache *c;
	const struct cache_key *k;
	struct batch *b;
	unsigned want;
};

static int ra_add(void *ctx, const struct ix_msg *m)
{
	struct ra_ctx *ra = ctx;
	struct cache_key k = *ra->k;
	struct batch *b = ra->b;

	if (b->n >= ra->want)
		return 1;	/* enough: stop the query */
	k.uid = m->uid;
	key_path(ra->c, &k, ".eml", b->path[b->n], PATH_MAX);
	if (access(b->path[b->n], F_OK) == 0 ||
	    !inflight_try_enter(ra->c, k.folder, k.uid))
		return 0;
	b->uid[b->n++] = m->uid;
	return 0;
}

static void store(struct cache *c, const struct cache_key *k, uint64_t len)
{
	struct size_ctx old = { 0 };
	struct mfs_error err = { 0 };

	log_debug(LOG_CAT_CACHE, "fetched %s/%u: %llu bytes", k->mailbox,
		  k->uid, (unsigned long long)len);
	if (index_cache_add(c->ix, k->folder, k->uid, len, &err) < 0)
		log_msg(LOG_WARNING, "%s/%u: %s (the body is recorded at the "
			"next start)", k->mailbox, k->uid, err.msg);
	account(c, len);
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
static int run_batch(struct cache *c, struct batch *b, struct mfs_error *err)
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

static void leave_batch(struct cache *c, struct batch *b, size_t from)
{
	for (size_t i = from; i < b->n; i++) {
		struct cache_key ki = *b->k;

		ki.uid = b->uid[i];
		inflight_leave(c, &ki);
	}
}

/* A readahead batch arrived: the reader will now open its bodies. */
static void ra_started(struct cache *c, const struct cache_key *k,
		       const struct batch *b)
{
	char *mb = strdup(k->mailbox);

	pthread_mutex_lock(&c->lock);
	if (mb && c->ra_folder == k->folder) {
		free(c->ra_mailbox);
		c->ra_mailbox = mb;
		mb = NULL;
		c->ra_uidvalidity = k->uidvalidity;
		c->ra_tail = b->uid[b->n - 1];
		c->ra_ahead = (unsigned)b->n - 1;
	}
	pthread_mutex_unlock(&c->lock);
	free(mb);
}

/* The reader opened a body it did not have to fetch itself: when what is
 * left ahead of it falls to half the window, fetch the next window in the
 * background, so the server streams while the reader reads. */
static void ra_consumed(struct cache *c, const struct cache_key *k)
{
	pthread_mutex_lock(&c->lock);
	if (c->ra_folder == k->folder && c->ra_ahead > 0) {
		c->ra_ahead--;
		c->ra_last = mono_ms();
		if (c->ra_ahead <= c->ra_window / 2 && !c->ra_wanted &&
		    c->ra_mailbox) {
			c->ra_wanted = true;
			pthread_cond_signal(&c->ra_cond);
		}
	}
	pthread_mutex_unlock(&c->lock);
}

struct sweep_ctx {
	int64_t folder;
	uint32_t uidvalidity;
	bool found;
};

static int sweep_folder(void *ctx, const struct ix_folder *f)
{
	struct sweep_ctx *sc = ctx;

	sc->found = true;
	sc->uidvalidity = f->uidvalidity;
	return 0;
}

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
	account(c, (uint64_t)st.st_size);
	return true;
}

/* Remove bodies whose folder has left the index or was rebuilt under a
 * new UIDVALIDITY: the index forgets them with the folder, so neither
 * the cap nor eviction would ever reach their files.  At start also what
 * a crash left (temporary files) and the decoded views earlier versions
 * kept on disk, and record the bodies that lack their entry (adopt). */
static void sweep(struct cache *c, bool startup)
{
	struct sweep_ctx sc = { 0 };
	DIR *d = opendir(c->dir);
	struct dirent *de;
	unsigned long removed = 0, adopted = 0;

	if (!d)
		return;
	sc.folder = -1;
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
		if (folder != sc.folder) {
			int rc;

			sc = (struct sweep_ctx){ .folder = folder };
			rc = index_folder_get(c->ix, folder, sweep_folder, &sc,
					      NULL);
			if (rc < 0 && rc != MFS_E_NOTFOUND) {
				sc.folder = -1;	/* no answer: keep */
				continue;
			}
		}
		if (sc.found && sc.uidvalidity == uidvalidity) {
			if (startup && dot == 'e')
				adopted += adopt(c, dirfd(d), de->d_name,
						 folder, uid);
			continue;
		}
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			removed++;
		index_cache_remove(c->ix, folder, uid, NULL);
	}
	closedir(d);
	if (removed)
		log_debug(LOG_CAT_CACHE, "swept %lu orphaned files", removed);
	if (adopted)
		log_msg(LOG_INFO, "cache: %lu bodies had no entry in the index "
			"and got one", adopted);
}

void cache_sweep(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	c->sweep_wanted = true;
	pthread_cond_signal(&c->ra_cond);
	pthread_mutex_unlock(&c->lock);
}

static void *ra_main(void *arg)
{
	struct cache *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct mfs_error err = { 0 };
		struct cache_key k = { 0 };
		struct batch *b;
		struct ra_ctx ra;
		uint32_t after;

		while (!c->ra_stop && !c->ra_wanted && !c->sweep_wanted)
			pthread_cond_wait(&c->ra_cond, &c->lock);
		if (c->ra_stop)
			break;
		if (c->sweep_wanted) {
			bool first = !c->swept_once;

			c->sweep_wanted = false;
			c->swept_once = true;
			pthread_mutex_unlock(&c->lock);
			sweep(c, first);
			pthread_mutex_lock(&c->lock);
			continue;
		}
		k.folder = c->ra_folder;
		k.uidvalidity = c->ra_uidvalidity;
		k.mailbox = strdup(c->ra_mailbox);
		after = c->ra_tail;
		ra.want = c->ra_window;
		pthread_mutex_unlock(&c->lock);
		b = calloc(1, sizeof(*b));
		if (b && k.mailbox) {
			ra = (struct ra_ctx){ c, &k, b, ra.want };
			b->c = c;
			b->k = &k;
			b->err = &err;
			k.uid = after;
			index_msg_after(c->ix, k.folder, after, ra.want * 2,
					ra_add, &ra, NULL);
			if (b->n > 0 && run_batch(c, b, &err) == 0)
				evict(c, &k);
			leave_batch(c, b, 0);
		}
		pthread_mutex_lock(&c->lock);
		if (b && b->n > 0 && c->ra_folder == k.folder) {
			c->ra_tail = b->uid[b->n - 1];
			c->ra_ahead += (unsigned)b->n;
		}
		c->ra_wanted = false;
		free(b);
		free((char *)k.mailbox);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Fetch k (whose inflight slot the caller holds) into path, with any
 * readahead.  Only k's own failure is an error. */
static int fetch(struct cache *c, const struct cache_key *k,
		 const char *path, struct mfs_error *err)
{
	struct batch *b = calloc(1, sizeof(*b));
	struct ra_ctx ra = { c, k, b, 0 };
	unsigned w;
	int rc;

	if (!b)
		return mfs_fail(err, MFS_E_NOMEM, "out of memory");
	b->c = c;
	b->k = k;
	b->err = err;
	b->uid[0] = k->uid;
	snprintf(b->path[0], PATH_MAX, "%s", path);
	b->n = 1;
	w = ra_window(c, k->folder);
	if (w > 1) {
		ra.want = w;
		index_msg_after(c->ix, k->folder, k->uid, w * 2, ra_add, &ra,
				NULL);
	}
	rc = run_batch(c, b, err);
	if (b->got[0])
		rc = 0;	/* what went wrong after it was readahead's */
	if (rc == 0 && b->n > 1)
		ra_started(c, k, b);
	if (rc == 0 && !b->got[0])
		rc = mfs_fail(err, MFS_E_NOTFOUND, "UID %u no longer in %s",
			      k->uid, k->mailbox);
	if (rc == 0)
		evict(c, k);
	leave_batch(c, b, 1);
	free(b);
	return rc;
}

int cache_prefetch(struct cache *c, const struct cache_key *k,
		   const uint32_t *uids, size_t n, size_t *used,
		   struct mfs_error *err)
{
	struct batch *b = calloc(1, sizeof(*b));
	size_t i;
	int rc = 0;

	if (!b)
		return mfs_fail(err, MFS_E_NOMEM, "out of memory");
	b->c = c;
	b->k = k;
	b->err = err;
	for (i = 0; i < n && b->n < RA_MAX; i++) {
		struct cache_key ki = *k;

		ki.uid = uids[i];
		key_path(c, &ki, ".eml", b->path[b->n], PATH_MAX);
		if (access(b->path[b->n], F_OK) == 0 ||
		    !inflight_try_enter(c, k->folder, ki.uid))
			continue;	/* cached, or a reader has it */
		b->uid[b->n++] = ki.uid;
	}
	*used = i;
	if (b->n > 0) {
		rc = run_batch(c, b, err);
		if (rc == 0)
			evict(c, k);
		leave_batch(c, b, 0);
	}
	free(b);
	return rc;
}

void cache_stats(struct cache *c, struct cache_stats *st)
{
	uint64_t bytes = 0;

	memset(st, 0, sizeof(*st));
	index_cache_count(c->ix, 0, &st->bodies, &bytes, NULL);
	pthread_mutex_lock(&c->lock);
	st->bytes = c->total;
	st->cap = c->max_bytes;
	st->fetched = c->fetched;
	st->fetched_bytes = c->fetched_bytes;
	pthread_mutex_unlock(&c->lock);
}

/* held: the caller already owns k's inflight slot. */
static int open_body(struct cache *c, const struct cache_key *k, bool held,
		     int *fd, uint64_t *size, struct mfs_error *err)
{
	char path[PATH_MAX];
	struct stat st;
	int rc = 0;

	key_path(c, k, ".eml", path, sizeof(path));
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		if (!held)
			inflight_enter(c, k);
		*fd = open(path, O_RDONLY | O_CLOEXEC);
		if (*fd < 0) {
			rc = fetch(c, k, path, err);
			if (rc == 0)
				*fd = open(path, O_RDONLY | O_CLOEXEC);
		} else {
			ra_consumed(c, k);	/* readahead won the race */
		}
		if (!held)
			inflight_leave(c, k);
		if (rc < 0)
			return rc;
		if (*fd < 0)
			return mfs_fail(err, MFS_E_IO, "cache %s: %s", path,
					strerror(errno));
	} else {
		touch(c, k);
		ra_consumed(c, k);
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
	return open_body(c, k, false, fd, size, err);
}

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

struct known_ctx {
	bool known;
};

static int get_known(void *ctx, const struct ix_msg *m)
{
	((struct known_ctx *)ctx)->known = m->parts_known;
	return 0;
}

/* The slot's memfds go (open files keep their own duplicates); vlock held
 * or the cache being closed. */
static void view_drop(struct cache *c, struct view *v)
{
	for (unsigned i = 0; i < v->n; i++)
		close(v->fd[i]);
	c->vbytes -= v->bytes;
	c->vfds -= v->n;
	v->n = 0;
	v->bytes = 0;
}

/* A duplicate of part n's memfd when k's view is kept; false if not. */
static bool view_get(struct cache *c, const struct cache_key *k, unsigned n,
		     int *fd, uint64_t *size)
{
	bool hit = false;

	pthread_mutex_lock(&c->vlock);
	for (unsigned i = 0; i < VIEW_SLOTS && !hit; i++) {
		struct view *v = &c->views[i];

		if (v->n == 0 || v->folder != k->folder || v->uid != k->uid ||
		    v->uidvalidity != k->uidvalidity || n < 1 || n > v->n)
			continue;
		*fd = fcntl(v->fd[n - 1], F_DUPFD_CLOEXEC, 0);
		*size = v->size[n - 1];
		v->used = ++c->vtick;
		hit = *fd >= 0;
	}
	pthread_mutex_unlock(&c->vlock);
	return hit;
}

/* Keep a decoded view (its memfds are taken over), making room by
 * dropping the least recently used ones. */
static void view_put(struct cache *c, const struct cache_key *k,
		     const struct view *nv)
{
	struct view *slot = NULL;

	pthread_mutex_lock(&c->vlock);
	for (unsigned i = 0; i < VIEW_SLOTS; i++) {
		struct view *v = &c->views[i];

		if (v->n && v->folder == k->folder && v->uid == k->uid &&
		    v->uidvalidity == k->uidvalidity)
			view_drop(c, v);	/* a reader raced us to it */
	}
	for (;;) {
		struct view *lru = NULL;

		slot = NULL;
		for (unsigned i = 0; i < VIEW_SLOTS; i++) {
			struct view *v = &c->views[i];

			if (!v->n && !slot)
				slot = v;
			if (v->n && (!lru || v->used < lru->used))
				lru = v;
		}
		if (slot && c->vbytes + nv->bytes <= VIEW_BYTES &&
		    c->vfds + nv->n <= VIEW_FDS)
			break;
		if (!lru)
			break;
		view_drop(c, lru);
	}
	*slot = *nv;
	slot->folder = k->folder;
	slot->uid = k->uid;
	slot->uidvalidity = k->uidvalidity;
	slot->used = ++c->vtick;
	c->vbytes += nv->bytes;
	c->vfds += nv->n;
	pthread_mutex_unlock(&c->vlock);
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

	rc = open_body(c, k, held, &fd, &size, err);
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
	inflight_enter(c, k);
	rc = index_msg_get(c->ix, k->folder, k->uid, get_known, &kc, err);
	if (rc == 0 && !kc.known)
		rc = decode_view(c, k, true, true, err);
	inflight_leave(c, k);
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

static bool big_is(const struct big *b, const struct cache_key *k,
		   unsigned n)
{
	return b->n == n && b->folder == k->folder && b->uid == k->uid &&
	       b->uidvalidity == k->uidvalidity;
}

/* A duplicate of the kept copy of k's part n; false if there is none. */
static bool big_get(struct cache *c, const struct cache_key *k, unsigned n,
		    int *fd, uint64_t *size)
{
	bool hit = false;

	pthread_mutex_lock(&c->vlock);
	for (unsigned i = 0; i < BIG_SLOTS && !hit; i++) {
		struct big *b = &c->bigs[i];

		if (!big_is(b, k, n))
			continue;
		*fd = fcntl(b->fd, F_DUPFD_CLOEXEC, 0);
		*size = b->size;
		b->used = ++c->vtick;
		hit = *fd >= 0;
	}
	pthread_mutex_unlock(&c->vlock);
	return hit;
}

/* Keep a duplicate of fd as k's part n, in place of the least recently
 * used one (open files keep their own duplicates). */
static void big_put(struct cache *c, const struct cache_key *k, unsigned n,
		    int fd, uint64_t size)
{
	int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	struct big *slot = &c->bigs[0];

	if (dup < 0)
		return;
	pthread_mutex_lock(&c->vlock);
	for (unsigned i = 0; i < BIG_SLOTS; i++) {
		struct big *b = &c->bigs[i];

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
			      .used = ++c->vtick };
	pthread_mutex_unlock(&c->vlock);
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
	if (view_get(c, k, n, fd, size) || big_get(c, k, n, fd, size))
		return 0;
	rc = cache_parts(c, k, err);	/* may decode and keep the view */
	if (rc == 0 && view_get(c, k, n, fd, size))
		return 0;
	if (rc == 0)
		rc = open_body(c, k, false, &body, &body_size, err);
	if (rc < 0)
		return rc;
	if (body_size <= VIEW_MSG_MAX) {
		rc = decode_view(c, k, false, false, err);
		if (rc < 0)
			goto out;
		if (view_get(c, k, n, fd, size))
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
		inflight_enter(c, k);
		held = true;
		if (big_get(c, k, n, fd, size))
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
		inflight_leave(c, k);
	if (rc < 0 && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	close(body);
	return rc;
}
