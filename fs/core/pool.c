#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "pool.h"

struct pool {
	struct imap_opts opts;
	/* Guards open, the idle connections and the quiet period; never held
	 * while connecting or closing. */
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* a connection came back or a slot freed */
	unsigned max;
	unsigned open;		/* connections in existence */
	unsigned nidle;
	struct imap_conn **idle;
	/* After a failed connect, readers fail at once for a moment rather
	 * than each waiting out its own connect timeout (a file manager
	 * opening a hundred uncached files offline). */
	int64_t quiet_until;	/* monotonic ms */
	struct mfs_error last;
};

#define QUIET_MS 3000

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pool_new(const struct imap_opts *opts, unsigned n,
	     struct imap_conn *first, struct pool **out)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (n == 0)
		n = 1;
	if (!p || !(p->idle = calloc(n, sizeof(*p->idle)))) {
		free(p);
		return MFS_E_NOMEM;
	}
	p->opts = *opts;
	p->max = n;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (first) {
		p->idle[p->nidle++] = first;
		p->open = 1;
	}
	*out = p;
	return 0;
}

unsigned pool_size(const struct pool *p)
{
	return p->max;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->nidle; i++)
		imap_close(p->idle[i]);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->idle);
	free(p);
}

int pool_get(struct pool *p, long timeout_s, struct imap_conn **c,
	     struct mfs_error *err)
{
	struct timespec until;
	int rc;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_s;
	pthread_mutex_lock(&p->lock);
	while (p->nidle == 0 && p->open >= p->max) {
		if (pthread_cond_timedwait(&p->cond, &p->lock, &until) ==
		    ETIMEDOUT) {
			pthread_mutex_unlock(&p->lock);
			return mfs_fail(err, MFS_E_TIMEOUT,
					"all %u connections busy", p->max);
		}
	}
	if (p->nidle > 0) {
		*c = p->idle[--p->nidle];
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	if (mono_ms() < p->quiet_until) {
		rc = mfs_fail(err, p->last.code, "%s", p->last.msg);
		pthread_mutex_unlock(&p->lock);
		return rc;
	}
	/* Reserve the slot, then connect without holding the lock. */
	p->open++;
	pthread_mutex_unlock(&p->lock);
	rc = imap_open(&p->opts, c, err);
	if (rc < 0) {
		pthread_mutex_lock(&p->lock);
		if (mfs_is_transient(rc)) {
			p->quiet_until = mono_ms() + QUIET_MS;
			mfs_fail(&p->last, rc, "%s", err && err->msg[0] ?
					err->msg : mfs_strerror(rc));
		}
		p->open--;
		pthread_cond_signal(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	return rc;
}

void pool_put(struct pool *p, struct imap_conn *c)
{
	pthread_mutex_lock(&p->lock);
	if (imap_usable(c) && p->nidle < p->max) {
		p->idle[p->nidle++] = c;
		c = NULL;
	} else {
		p->open--;
	}
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	imap_close(c);
}

int pool_open_extra(struct pool *p, struct imap_conn **c,
		    struct mfs_error *err)
{
	int rc = imap_open(&p->opts, c, err);

	/* The sync thread got through: the server is back for readers too. */
	pthread_mutex_lock(&p->lock);
	if (rc == 0)
		p->quiet_until = 0;
	pthread_mutex_unlock(&p->lock);
	return rc;
}
