/* cache_int.h - what the body cache's three files share.  Callers use
 * include/cache.h; nothing outside fs/core/cache*.c includes this.
 *
 *   cache.c            the body store: a body fetched once (one UID FETCH
 *                      for a batch of them), kept on disk, least recently
 *                      used evicted; one fetch of a message at a time (the
 *                      inflight slots); bodies of deleted folders swept.
 *   cache_readahead.c  the read-ahead window of a reader going through a
 *                      folder, and the cache's thread, which fetches the
 *                      next window while the reader reads and runs the
 *                      sweeps.
 *   cache_views.c      decoded parts: every part of a message decoded
 *                      once into one file beside its body (the parts
 *                      file), which opens of its parts then read from.
 *
 * Two locks, each beside what it guards: cache.lock (below) and the
 * read-ahead lock (in its file).  Neither is held while the other is
 * taken, nor across the index or the network.  An inflight slot is not a
 * mutex but is held like one, across the fetch or decoding of its
 * message (see cache.c).
 */
#ifndef CACHE_INT_H
#define CACHE_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>

#include "cache.h"

/* The most bodies one UID FETCH asks for: a read-ahead window, or a
 * prefetch batch. */
#define RA_MAX 32
#define MAX_INFLIGHT 64
#define TOUCH_BATCH 256

struct cache_ra;

/* A message, as the inflight table and the LRU touches name it. */
struct folder_uid {
	int64_t folder;
	uint32_t uid;
};

struct cache {
	/* Set by cache_open and never changed: read without a lock. */
	char *dir;
	struct index *ix;
	struct pool *pool;
	uint64_t max_bytes;
	long timeout_s;
	cache_size_fn on_size;
	void *ctx;
	struct cache_ra *ra;		/* cache_readahead.c */

	/* Guards the rest of this struct: the inflight table, the byte
	 * count, the fetch and decode counters and the batch of LRU
	 * touches.  Held for those fields only. */
	pthread_mutex_t lock;
	pthread_cond_t done;	/* on lock: an inflight slot was freed */
	/* Messages being fetched or decoded (see cache_inflight_enter). */
	struct folder_uid inflight[MAX_INFLIGHT];
	unsigned ninflight;
	/* Bytes cached (bodies and parts files), kept here so a fetch
	 * needn't sum the table; re-read from the index every 256 files
	 * added, in case files were touched behind our back. */
	uint64_t total;
	unsigned adds;
	uint64_t fetched, fetched_bytes;	/* since mount, for status */
	uint64_t decoded;	/* messages decoded since mount, for status */
	/* LRU touches of cached bodies, written to the index in batches:
	 * one transaction per open would cost more than the read. */
	struct folder_uid touched[TOUCH_BATCH];
	unsigned ntouched;
};

/* ---- cache.c: the body store ---- */

/* dir/<folder>.<uidvalidity>.<uid><suffix>: k's file. */
void cache_key_path(const struct cache *c, const struct cache_key *k,
		    const char *suffix, char *buf, size_t len);

/* k's parts file is dir/<folder>.<uidvalidity>.<uid>.parts, its body
 * the same with .eml. */

/* Take k's inflight slot, waiting while another thread holds it (or all
 * slots are taken); cache_inflight_leave gives it back.  Whoever holds a
 * message's slot is the only one fetching or decoding it. */
void cache_inflight_enter(struct cache *c, const struct cache_key *k);
void cache_inflight_leave(struct cache *c, const struct cache_key *k);

/* A fd on k's body (fetched if need be, with read-ahead); see
 * cache_body.  held: the caller already owns k's inflight slot. */
int cache_open_body(struct cache *c, const struct cache_key *k, bool held,
		    int *fd, uint64_t *size, struct mfs_error *err);

/* Bodies for one UID FETCH, each with its inflight slot held. */
struct batch {
	struct cache *c;
	const struct cache_key *k;	/* the folder; k->uid is not used */
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

/* An empty batch for k's folder (free() it); NULL when out of memory. */
struct batch *cache_batch_new(struct cache *c, const struct cache_key *k,
			      struct mfs_error *err);
/* Add uid unless its body is cached or another thread has its slot
 * (then false); the batch must have room. */
bool cache_batch_want(struct batch *b, uint32_t uid);
/* Fetch the batch: bodies land in their files as they arrive.  0 when
 * the command completed (some bodies may not have come: b->got). */
int cache_batch_run(struct cache *c, struct batch *b, struct mfs_error *err);
/* Give back the slots of b's bodies from index from on. */
void cache_batch_leave(struct cache *c, struct batch *b, size_t from);

/* Evict least recently used bodies (each with its parts file), never
 * keep nor a message whose inflight slot is taken, until under the cap. */
void cache_evict(struct cache *c, const struct cache_key *keep);
/* Bytes put in the cache (a parts file), or taken out of it. */
void cache_account(struct cache *c, uint64_t added);
void cache_unaccount(struct cache *c, uint64_t removed);
/* k was used: for the LRU order (written to the index in batches). */
void cache_touch(struct cache *c, const struct cache_key *k);

/* Remove bodies whose folder left the index or was rebuilt; at startup
 * also what a crash or an earlier version left behind. */
void cache_sweep_run(struct cache *c, bool startup);

/* ---- cache_readahead.c: the window and the cache's thread ---- */

/* Start the thread, which sweeps once first; stop and join it. */
int cache_ra_start(struct cache *c, struct mfs_error *err);
void cache_ra_stop(struct cache *c);

/* How many bodies an open of an uncached message of folder should fetch:
 * 1 for a lone open, doubling up to RA_MAX while opens follow quickly. */
unsigned cache_ra_window(struct cache *c, int64_t folder);
/* Add to b the uncached messages after after (in name order) until b
 * holds want. */
void cache_ra_collect(struct cache *c, struct batch *b, uint32_t after,
		      unsigned want);
/* An open fetched b (k and the ones that follow) as its window. */
void cache_ra_started(struct cache *c, const struct cache_key *k,
		      const struct batch *b);
/* An open found k's body already fetched. */
void cache_ra_consumed(struct cache *c, const struct cache_key *k);

#endif
