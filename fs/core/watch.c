/* watch.c - IDLE watchers, one thread and one connection per slot. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "watch.h"

/* Servers drop idle connections after 30 minutes (RFC 2177): renew well
 * before, which also notices a connection that died silently. */
#define IDLE_RENEW_S (5 * 60)
#define MAX_SLOTS 16

struct slot {
	struct watch *w;
	unsigned n;
	pthread_t thread;
	int efd;		/* wakes the thread out of IDLE */
	int64_t folder;		/* 0: nothing to watch (yet) */
	uint64_t used;		/* watch_use tick, for LRU */
	bool up;		/* in IDLE on folder right now */
};

struct watch {
	struct pool *pool;
	struct index *ix;
	struct sync *sync;
	/* Guards stop, tick and each slot's folder, used and up. */
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* a slot's folder changed, or stop */
	atomic_bool stop;	/* also read without the lock, between commands */
	uint64_t tick;
	unsigned nslots;
	struct slot slots[MAX_SLOTS];
};

static void wake(struct slot *sl)
{
	uint64_t one = 1;

	if (write(sl->efd, &one, sizeof(one)) < 0) {
		/* The counter is full: the thread is awake anyway. */
	}
}

static void drain(struct slot *sl)
{
	uint64_t n;

	if (read(sl->efd, &n, sizeof(n)) < 0) {
		/* EAGAIN: nothing was pending. */
	}
}

struct inbox_ctx {
	int64_t id;
};

static int find_inbox(void *ctx, const struct ix_folder *f)
{
	if (f->wire && strcasecmp(f->wire, "INBOX") == 0)
		((struct inbox_ctx *)ctx)->id = f->id;
	return 0;
}

struct wire_ctx {
	char *wire;
	bool selectable;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
};

static int get_wire(void *ctx, const struct ix_folder *f)
{
	struct wire_ctx *wc = ctx;

	wc->selectable = f->wire && !(f->flags & IMAP_MB_NOSELECT);
	wc->wire = f->wire ? strdup(f->wire) : NULL;
	wc->uidvalidity = f->uidvalidity;
	wc->uidnext = f->uidnext;
	wc->highestmodseq = f->highestmodseq;
	return 0;
}

/* sl->folder is changed by watch_use on FUSE threads, under the lock. */
static int64_t slot_folder(struct slot *sl)
{
	int64_t f;

	pthread_mutex_lock(&sl->w->lock);
	f = sl->folder;
	pthread_mutex_unlock(&sl->w->lock);
	return f;
}

/* Sleep up to s seconds, or until told to stop or given a new folder,
 * or (after a failure) until the sync thread gets through again: the
 * server is back, no reason to wait out the backoff. */
static void nap(struct slot *sl, unsigned s, bool failed)
{
	struct watch *w = sl->w;
	int64_t folder = slot_folder(sl);

	for (unsigned i = 0; i < s; i++) {
		struct timespec until;
		struct sync_state ss;
		bool done;

		if (failed && sync_status(w->sync, &ss) == 0 && ss.online &&
		    i > 0)
			return;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_mutex_lock(&w->lock);
		while (!w->stop && sl->folder == folder &&
		       pthread_cond_timedwait(&w->cond, &w->lock, &until) !=
			       ETIMEDOUT)
			;
		done = w->stop || sl->folder != folder;
		pthread_mutex_unlock(&w->lock);
		if (done)
			return;
	}
}

static void set_up(struct slot *sl, bool up)
{
	pthread_mutex_lock(&sl->w->lock);
	sl->up = up;
	pthread_mutex_unlock(&sl->w->lock);
}

static void *slot_main(void *arg)
{
	struct slot *sl = arg;
	struct watch *w = sl->w;
	struct imap_conn *conn = NULL;
	unsigned backoff = 1;
	int64_t examined = 0;	/* the folder this connection last opened */

	while (!w->stop) {
		struct mfs_error err = { 0 };
		struct wire_ctx wc = { 0 };
		int64_t folder;
		int rc = 0;

		if (sl->n == 0 && slot_folder(sl) == 0) {
			struct inbox_ctx ic = { 0 };

			index_folder_all(w->ix, find_inbox, &ic, NULL);
			pthread_mutex_lock(&w->lock);
			sl->folder = ic.id;
			pthread_mutex_unlock(&w->lock);
		}
		folder = slot_folder(sl);
		if (folder == 0 ||
		    index_folder_get(w->ix, folder, get_wire, &wc, NULL) < 0 ||
		    !wc.selectable) {
			free(wc.wire);
			nap(sl, 2, false);	/* the folder list is not in yet */
			continue;
		}
		if (!imap_usable(conn)) {
			imap_close(conn);
			conn = NULL;
			rc = pool_open_extra(w->pool, &conn, &err);
			examined = 0;
		}
		if (rc == 0 && !(imap_caps(conn) & IMAP_CAP_IDLE)) {
			free(wc.wire);
			log_msg(LOG_INFO, "server has no IDLE: polling only");
			break;
		}
		if (rc == 0) {
			struct imap_mbstate st;

			/* Changes made while no IDLE was up: the EXAMINE that
			 * starts it says whether there are any.  (No resync
			 * for nothing: every SELECT races a deletion by
			 * another client, which on Dovecot's Maildir can leave
			 * the folder behind.) */
			rc = imap_examine_keep(conn, wc.wire, &st, &err);
			if (rc == 0 && examined != folder &&
			    (st.uidvalidity != wc.uidvalidity ||
			     st.uidnext != wc.uidnext ||
			     st.highestmodseq != wc.highestmodseq ||
			     !st.highestmodseq))
				sync_request(w->sync, folder);
			if (rc == 0)
				examined = folder;
		}
		if (rc == 0) {
			set_up(sl, true);
			rc = imap_idle(conn, wc.wire, sl->efd, IDLE_RENEW_S,
				       &err);
			set_up(sl, false);
			drain(sl);
		}
		free(wc.wire);
		if (rc == 1) {
			log_debug(LOG_CAT_SYNC, "IDLE: folder %lld changed",
				  (long long)folder);
			sync_request(w->sync, folder);
		}
		if (rc >= 0) {
			backoff = 1;
			continue;
		}
		if (w->stop)
			break;
		log_debug(LOG_CAT_SYNC, "IDLE on folder %lld: %s; again in %u s",
			  (long long)folder, err.msg, backoff);
		if (sl->n > 0) {
			/* Most often the folder was deleted or renamed (the
			 * server says BYE to sessions that have it open).
			 * Selecting it again by its old name could race the
			 * deletion and, on some servers, bring it back: forget
			 * it until it is used again, and have the folder list
			 * read anew. */
			pthread_mutex_lock(&w->lock);
			if (sl->folder == folder)
				sl->folder = 0;
			pthread_mutex_unlock(&w->lock);
			sync_relist(w->sync);
		}
		nap(sl, backoff, true);
		backoff = backoff < 60 ? backoff * 2 : 60;
	}
	imap_close(conn);
	return NULL;
}

int watch_start(struct pool *pool, struct index *ix, struct sync *sync,
		unsigned slots, struct watch **out)
{
	struct watch *w;

	*out = NULL;
	if (slots == 0)
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return MFS_E_NOMEM;
	w->pool = pool;
	w->ix = ix;
	w->sync = sync;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (slots > MAX_SLOTS)
		slots = MAX_SLOTS;
	for (unsigned i = 0; i < slots; i++) {
		struct slot *sl = &w->slots[i];

		sl->w = w;
		sl->n = i;
		sl->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (sl->efd < 0)
			break;
		if (pthread_create(&sl->thread, NULL, slot_main, sl) != 0) {
			close(sl->efd);
			break;
		}
		w->nslots++;
	}
	*out = w;
	return 0;
}

void watch_stop(struct watch *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->nslots; i++) {
		wake(&w->slots[i]);
		pthread_join(w->slots[i].thread, NULL);
		close(w->slots[i].efd);
	}
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

void watch_use(struct watch *w, int64_t folder)
{
	struct slot *lru = NULL;

	if (!w || w->nslots < 2)
		return;
	pthread_mutex_lock(&w->lock);
	w->tick++;
	for (unsigned i = 0; i < w->nslots; i++)
		if (w->slots[i].folder == folder) {
			w->slots[i].used = w->tick;
			goto out;
		}
	for (unsigned i = 1; i < w->nslots; i++)
		if (!lru || w->slots[i].used < lru->used)
			lru = &w->slots[i];
	lru->folder = folder;
	lru->used = w->tick;
	pthread_cond_broadcast(&w->cond);
	wake(lru);
out:
	pthread_mutex_unlock(&w->lock);
}

bool watch_has(struct watch *w, int64_t folder)
{
	bool has = false;

	if (!w)
		return false;
	pthread_mutex_lock(&w->lock);
	for (unsigned i = 0; i < w->nslots; i++)
		has |= w->slots[i].up && w->slots[i].folder == folder;
	pthread_mutex_unlock(&w->lock);
	return has;
}
