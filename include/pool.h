/* pool.h - a few logged-in IMAP connections shared by FUSE readers, so
 * concurrent reads never queue behind one connection.  Connections are
 * opened lazily and replaced when they break. */
#ifndef POOL_H
#define POOL_H

#include "imap.h"

struct pool;

/* n connections at most, opened with opts (copied; the strings it points
 * to must outlive the pool).  first, if not NULL, is taken over. */
int pool_new(const struct imap_opts *opts, unsigned n,
	     struct imap_conn *first, struct pool **out);
void pool_free(struct pool *p);

/* Borrow a connection, waiting up to timeout_s for a free one, connecting
 * if needed.  Errors: MFS_E_TIMEOUT, or imap_open's. */
int pool_get(struct pool *p, long timeout_s, struct imap_conn **c,
	     struct mfs_error *err);

/* How many connections it holds at most. */
unsigned pool_size(const struct pool *p);

/* Give it back; a broken connection is closed and its slot freed. */
void pool_put(struct pool *p, struct imap_conn *c);

/* Open a connection outside the pool (for the sync thread). */
int pool_open_extra(struct pool *p, struct imap_conn **c,
		    struct mfs_error *err);

#endif
