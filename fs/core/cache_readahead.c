/* cache_readahead.c - read-ahead for a reader going through a folder,
 * and the cache's thread.
 *
 * A reader that opens uncached messages of one folder in quick
 * succession (cat *.eml, cp -r, tar, rsync) gets the ones that follow in
 * name order fetched in the same pipelined batch, the window doubling up
 * to RA_MAX as in the kernel's readahead; a lone open fetches one
 * message.  Once the reader is half way through what was fetched ahead,
 * the thread fetches the next window, so the server streams while the
 * reader reads.  The thread also runs the body store's sweeps (at start
 * and when a folder leaves the index): both are background work of the
 * cache that no caller should wait for. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache_int.h"

#define RA_WINDOW_MS 2000

struct cache_ra {
	pthread_t thread;
	/* Guards everything below.  Held for these fields only: the thread
	 * drops it to fetch and to sweep. */
	pthread_mutex_t lock;
	pthread_cond_t wake;	/* on lock: to the thread: work, or stop */
	/* The folder opened last, when (monotonic ms), and its window. */
	int64_t folder;
	int64_t last;
	unsigned window;
	/* Streaming: bodies fetched ahead and not yet opened, the last UID
	 * fetched, and the folder's wire name and UIDVALIDITY for the
	 * thread's fetch of the next window. */
	unsigned ahead;
	uint32_t tail;
	char *mailbox;
	uint32_t uidvalidity;
	/* The thread's work: the next window, a sweep (the first one also
	 * clears what a crash or an earlier version left), or stop. */
	bool wanted, sweep_wanted, swept_once, stop;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

unsigned cache_ra_window(struct cache *c, int64_t folder)
{
	struct cache_ra *ra = c->ra;
	int64_t now = mono_ms();
	unsigned w;

	pthread_mutex_lock(&ra->lock);
	if (ra->folder == folder && now - ra->last < RA_WINDOW_MS)
		w = ra->window * 2 > RA_MAX ? RA_MAX : ra->window * 2;
	else
		w = 1;
	ra->folder = folder;
	ra->last = now;
	ra->window = w;
	pthread_mutex_unlock(&ra->lock);
	return w;
}

struct collect_ctx {
	struct batch *b;
	unsigned want;
};

static int collect(void *ctx, const struct ix_msg *m)
{
	struct collect_ctx *cc = ctx;

	if (cc->b->n >= cc->want)
		return 1;	/* enough: stop the query */
	cache_batch_want(cc->b, m->uid);
	return 0;
}

void cache_ra_collect(struct cache *c, struct batch *b, uint32_t after,
		      unsigned want)
{
	struct collect_ctx cc = { b, want };

	/* Twice as many as wanted: some are cached or being fetched. */
	index_msg_after(c->ix, b->k->folder, after, want * 2, collect, &cc,
			NULL);
}

void cache_ra_started(struct cache *c, const struct cache_key *k,
		      const struct batch *b)
{
	struct cache_ra *ra = c->ra;
	char *mb = strdup(k->mailbox);

	pthread_mutex_lock(&ra->lock);
	if (mb && ra->folder == k->folder) {
		free(ra->mailbox);
		ra->mailbox = mb;
		mb = NULL;
		ra->uidvalidity = k->uidvalidity;
		ra->tail = b->uid[b->n - 1];
		ra->ahead = (unsigned)b->n - 1;
	}
	pthread_mutex_unlock(&ra->lock);
	free(mb);
}

/* When what is left ahead of the reader falls to half the window, fetch
 * the next window in the background. */
void cache_ra_consumed(struct cache *c, const struct cache_key *k)
{
	struct cache_ra *ra = c->ra;

	pthread_mutex_lock(&ra->lock);
	if (ra->folder == k->folder && ra->ahead > 0) {
		ra->ahead--;
		ra->last = mono_ms();
		if (ra->ahead <= ra->window / 2 && !ra->wanted &&
		    ra->mailbox) {
			ra->wanted = true;
			pthread_cond_signal(&ra->wake);
		}
	}
	pthread_mutex_unlock(&ra->lock);
}

/* Set one of the thread's flags and wake it. */
static void ask(struct cache_ra *ra, bool *flag)
{
	pthread_mutex_lock(&ra->lock);
	*flag = true;
	pthread_cond_signal(&ra->wake);
	pthread_mutex_unlock(&ra->lock);
}

void cache_sweep(struct cache *c)
{
	ask(c->ra, &c->ra->sweep_wanted);
}

static void *ra_main(void *arg)
{
	struct cache *c = arg;
	struct cache_ra *ra = c->ra;

	pthread_mutex_lock(&ra->lock);
	for (;;) {
		struct mfs_error err = { 0 };
		struct cache_key k = { 0 };
		struct batch *b;
		uint32_t after;
		unsigned want;

		while (!ra->stop && !ra->wanted && !ra->sweep_wanted)
			pthread_cond_wait(&ra->wake, &ra->lock);
		if (ra->stop)
			break;
		if (ra->sweep_wanted) {
			bool first = !ra->swept_once;

			ra->sweep_wanted = false;
			ra->swept_once = true;
			pthread_mutex_unlock(&ra->lock);
			cache_sweep_run(c, first);
			pthread_mutex_lock(&ra->lock);
			continue;
		}
		k.folder = ra->folder;
		k.uidvalidity = ra->uidvalidity;
		k.mailbox = strdup(ra->mailbox);
		after = ra->tail;
		want = ra->window;
		pthread_mutex_unlock(&ra->lock);
		b = cache_batch_new(c, &k, &err);
		if (b && k.mailbox) {
			k.uid = after;
			cache_ra_collect(c, b, after, want);
			if (b->n > 0 && cache_batch_run(c, b, &err) == 0)
				cache_evict(c, &k);
			cache_batch_leave(c, b, 0);
		}
		pthread_mutex_lock(&ra->lock);
		if (b && b->n > 0 && ra->folder == k.folder) {
			ra->tail = b->uid[b->n - 1];
			ra->ahead += (unsigned)b->n;
		}
		ra->wanted = false;
		free(b);
		free((char *)k.mailbox);
	}
	pthread_mutex_unlock(&ra->lock);
	return NULL;
}

int cache_ra_start(struct cache *c, struct mfs_error *err)
{
	struct cache_ra *ra = calloc(1, sizeof(*ra));

	if (!ra)
		return mfs_fail(err, MFS_E_NOMEM, "out of memory");
	pthread_mutex_init(&ra->lock, NULL);
	pthread_cond_init(&ra->wake, NULL);
	ra->sweep_wanted = true;
	c->ra = ra;
	if (pthread_create(&ra->thread, NULL, ra_main, c) != 0) {
		pthread_cond_destroy(&ra->wake);
		pthread_mutex_destroy(&ra->lock);
		free(ra);
		c->ra = NULL;
		return mfs_fail(err, MFS_E_NOMEM, "cannot start a thread");
	}
	return 0;
}

void cache_ra_stop(struct cache *c)
{
	struct cache_ra *ra = c->ra;

	ask(ra, &ra->stop);
	pthread_join(ra->thread, NULL);
	free(ra->mailbox);
	pthread_cond_destroy(&ra->wake);
	pthread_mutex_destroy(&ra->lock);
	free(ra);
	c->ra = NULL;
}
