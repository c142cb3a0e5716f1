/* prefetch.c - the prefetch thread: a folder's UIDs in name order, fetched
 * batch by batch through the body cache (what is cached is skipped). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "prefetch.h"

#define MAX_JOBS 16

enum job_state { J_QUEUED, J_RUNNING, J_DONE, J_FAILED };

struct job {
	int64_t folder;
	char *path;
	enum job_state state;
	size_t total, done;
	uint64_t bytes;		/* downloaded by this job */
	struct timespec start, end;
	char why[256];
};

struct prefetch {
	struct index *ix;
	struct cache *cache;
	pthread_t thread;
	/* Guards stop and the jobs (their state and progress). */
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* to the thread: a job, or stop */
	atomic_bool stop;	/* also read without the lock, between fetches */
	struct job jobs[MAX_JOBS];
	unsigned njobs;
};

struct uids {
	uint32_t *v;
	size_t n, cap;
};

static int add_uid(void *ctx, const struct ix_msg *m)
{
	struct uids *u = ctx;

	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 256;
		uint32_t *p = realloc(u->v, cap * sizeof(*p));

		if (!p)
			return MFS_E_NOMEM;
		u->v = p;
		u->cap = cap;
	}
	u->v[u->n++] = m->uid;
	return 0;
}

struct key_copy {
	char *wire;
	uint32_t uidvalidity;
};

static int copy_key(void *ctx, const struct ix_folder *f)
{
	struct key_copy *kc = ctx;

	kc->wire = f->wire ? strdup(f->wire) : NULL;
	kc->uidvalidity = f->uidvalidity;
	return 0;
}

static double secs(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	       (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Runs without the lock except to publish progress. */
static void run(struct prefetch *p, struct job *j)
{
	struct mfs_error err = { 0 };
	struct key_copy kc = { 0 };
	struct uids u = { 0 };
	struct cache_key k;
	struct cache_stats cs;
	char *path = NULL;
	int rc;

	rc = index_folder_get(p->ix, j->folder, copy_key, &kc, &err);
	if (rc == 0 && !kc.wire)
		rc = mfs_fail(&err, MFS_E_NOTFOUND, "not a mail folder");
	if (rc == 0)
		rc = index_msg_list(p->ix, j->folder, add_uid, &u, &err);
	pthread_mutex_lock(&p->lock);
	j->total = u.n;
	pthread_mutex_unlock(&p->lock);
	k = (struct cache_key){ .folder = j->folder, .mailbox = kc.wire,
				.uidvalidity = kc.uidvalidity };
	for (size_t i = 0; rc == 0 && i < u.n && !p->stop;) {
		size_t used = 0;
		uint64_t before;

		cache_stats(p->cache, &cs);
		if (cs.bytes >= cs.cap - cs.cap / 10) {
			rc = mfs_fail(&err, MFS_E_TOOBIG,
				      "cache full (cache_size)");
			break;
		}
		before = cs.fetched_bytes;
		rc = cache_prefetch(p->cache, &k, u.v + i, u.n - i, &used,
				    &err);
		cache_stats(p->cache, &cs);
		i += used;
		pthread_mutex_lock(&p->lock);
		j->done = i;
		j->bytes += cs.fetched_bytes - before;
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_lock(&p->lock);
	clock_gettime(CLOCK_MONOTONIC, &j->end);
	j->state = rc < 0 ? J_FAILED : J_DONE;
	if (rc < 0) {
		snprintf(j->why, sizeof(j->why), "%s",
			 err.msg[0] ? err.msg : mfs_strerror(rc));
		/* Copied under the lock: once it is dropped, a new job may
		 * take this finished slot and free its path. */
		path = strdup(j->path);
	}
	pthread_mutex_unlock(&p->lock);
	if (rc < 0)
		log_msg(LOG_WARNING, "prefetch %s: %s", path ? path : "?",
			err.msg[0] ? err.msg : mfs_strerror(rc));
	free(path);
	free(kc.wire);
	free(u.v);
}

static void *prefetch_main(void *arg)
{
	struct prefetch *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct job *j = NULL;

		for (unsigned i = 0; !j && i < p->njobs; i++)
			if (p->jobs[i].state == J_QUEUED)
				j = &p->jobs[i];
		if (!j) {
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		j->state = J_RUNNING;
		clock_gettime(CLOCK_MONOTONIC, &j->start);
		pthread_mutex_unlock(&p->lock);
		run(p, j);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int prefetch_start(struct index *ix, struct cache *cache,
		   struct prefetch **out)
{
	struct prefetch *p = calloc(1, sizeof(*p));

	if (!p)
		return MFS_E_NOMEM;
	p->ix = ix;
	p->cache = cache;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (pthread_create(&p->thread, NULL, prefetch_main, p) != 0) {
		free(p);
		return MFS_E_NOMEM;
	}
	*out = p;
	return 0;
}

void prefetch_stop(struct prefetch *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	for (unsigned i = 0; i < p->njobs; i++)
		free(p->jobs[i].path);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int prefetch_add(struct prefetch *p, int64_t folder, const char *path)
{
	struct job *j = NULL;
	char *copy = strdup(path);
	int rc = 0;

	if (!copy)
		return MFS_E_NOMEM;
	pthread_mutex_lock(&p->lock);
	/* Asked again while queued or running: nothing to add. */
	for (unsigned i = 0; i < p->njobs; i++)
		if (p->jobs[i].folder == folder &&
		    (p->jobs[i].state == J_QUEUED ||
		     p->jobs[i].state == J_RUNNING))
			goto out;
	/* Reuse the slot of the same folder's old job, or of the oldest
	 * finished one. */
	for (unsigned i = 0; !j && i < p->njobs; i++)
		if (p->jobs[i].folder == folder)
			j = &p->jobs[i];
	if (!j && p->njobs < MAX_JOBS)
		j = &p->jobs[p->njobs++];
	for (unsigned i = 0; !j && i < p->njobs; i++)
		if (p->jobs[i].state >= J_DONE)
			j = &p->jobs[i];
	if (!j) {
		rc = MFS_E_TEMPFAIL;	/* every slot holds a live job */
		goto out;
	}
	free(j->path);
	*j = (struct job){ .folder = folder, .path = copy, .state = J_QUEUED };
	copy = NULL;
	pthread_cond_signal(&p->cond);
out:
	pthread_mutex_unlock(&p->lock);
	free(copy);
	return rc;
}

void prefetch_report(struct prefetch *p, prefetch_line_fn fn, void *ctx)
{
	struct timespec now;
	char line[512];

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->njobs; i++) {
		const struct job *j = &p->jobs[i];
		double t = secs(&j->start, j->state >= J_DONE ? &j->end : &now);
		double rate = t > 0 ? (double)j->bytes / t : 0;

		switch (j->state) {
		case J_QUEUED:
			snprintf(line, sizeof(line), "prefetch %s: queued",
				 j->path);
			break;
		case J_RUNNING:
			/* ETA from the message rate: sizes vary less over a
			 * folder than a byte count of unknown total. */
			snprintf(line, sizeof(line),
				 "prefetch %s: %zu/%zu messages, %llu bytes, "
				 "%.1f MB/s, ETA %.0f s",
				 j->path, j->done, j->total,
				 (unsigned long long)j->bytes, rate / 1e6,
				 j->done > 0 ? t * (double)(j->total - j->done) /
						       (double)j->done : 0.0);
			break;
		case J_DONE:
			snprintf(line, sizeof(line),
				 "prefetch %s: done, %zu messages, %llu bytes "
				 "in %.1f s",
				 j->path, j->total,
				 (unsigned long long)j->bytes, t);
			break;
		case J_FAILED:
			snprintf(line, sizeof(line),
				 "prefetch %s: failed after %zu/%zu messages: %s",
				 j->path, j->done, j->total, j->why);
			break;
		}
		fn(ctx, line);
	}
	pthread_mutex_unlock(&p->lock);
}
