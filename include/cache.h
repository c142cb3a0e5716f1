/* cache.h - on-disk body cache beside the index, with the decoded views.
 *
 * A UID's message never changes, so a cached body is valid for as long as
 * the folder's UIDVALIDITY holds (both are in the file name).  Bodies are
 * fetched on first use through the pool, once however many readers want
 * them; opens of a folder's messages in quick succession fetch the ones
 * that follow in the same command (read-ahead, kept streaming by the
 * cache's thread).  A message's decoded parts are made from its cached
 * body once, the first time they are wanted, into one file beside it (the
 * parts one after another, where each lies recorded in the index); opens
 * of its parts read from that file.  Total size (bodies and parts files)
 * is capped and the least recently used messages are evicted, each body
 * with its parts file.  A message that has no parts file (bigger than
 * half the cap, or the disk full) gets each part decoded on its own at
 * each open, into a memfd or, over 8 MB, an unlinked file in dir.  Any
 * thread may call any function; those that may fetch wait on the server.
 * fs/core/cache.c has the bodies, cache_readahead.c the read-ahead and
 * the thread, cache_views.c the decoded parts.
 */
#ifndef CACHE_H
#define CACHE_H

#include <stdint.h>

#include "index.h"
#include "pool.h"

struct cache;

struct cache_key {
	int64_t folder;		/* index folder id */
	const char *mailbox;	/* wire name, for fetching */
	uint32_t uidvalidity;
	uint32_t uid;
};

/* Told when a fetched body's size differs from what the index said (the
 * index is already corrected): the kernel's cached attributes are stale.
 * Called on the fetching thread, mid-fetch, with no cache lock held. */
typedef void (*cache_size_fn)(void *ctx, int64_t folder, uint32_t uid);

/* dir must exist with mode 0700.  Files created are 0600.  Starts the
 * cache's thread, which first sweeps what the index does not know. */
int cache_open(const char *dir, struct index *ix, struct pool *pool,
	       uint64_t max_bytes, long timeout_s, cache_size_fn on_size,
	       void *ctx, struct cache **out, struct mfs_error *err);
void cache_close(struct cache *c);

/* A read-only fd on the raw message (caller closes), fetched if needed;
 * *size receives its exact size.  MFS_E_NOTFOUND if the server no longer
 * has it; network errors as imap.h. */
int cache_body(struct cache *c, const struct cache_key *k, int *fd,
	       uint64_t *size, struct mfs_error *err);

/* Make sure the decoded view's parts (names, types, sizes) are in the
 * index, decoding the body once (fetched if need be) if they are not,
 * which also writes the parts file. */
int cache_parts(struct cache *c, const struct cache_key *k,
		struct mfs_error *err);

/* Decoded part n to read (decoded from the body, fetched if need be, as
 * above): a read-only *fd (caller closes) on a file in which the part is
 * the *size bytes from *off (its exact size; the file may go on).
 * MFS_E_NOTFOUND if the message has no part n. */
int cache_part(struct cache *c, const struct cache_key *k, unsigned n,
	       int *fd, uint64_t *off, uint64_t *size, struct mfs_error *err);

/* Download up to a batch of the bodies of uids (in k's folder; k->uid is
 * ignored) that are not cached yet, in one command.  *used: how many of
 * uids were looked at (cached ones are skipped); go on from there.  For
 * prefetching a folder. */
int cache_prefetch(struct cache *c, const struct cache_key *k,
		   const uint32_t *uids, size_t n, size_t *used,
		   struct mfs_error *err);

/* A folder left the index or was rebuilt: remove its bodies soon, in the
 * background (they no longer count against the cap). */
void cache_sweep(struct cache *c);

struct cache_stats {
	uint64_t bodies, bytes, cap;	/* on disk now (bytes: bodies and
					   parts files), and the cap */
	uint64_t views, views_bytes;	/* parts files on disk now */
	uint64_t fetched, fetched_bytes;	/* downloaded since start */
	uint64_t decoded;	/* bodies decoded with GMime since start */
};
void cache_stats(struct cache *c, struct cache_stats *st);

#endif
