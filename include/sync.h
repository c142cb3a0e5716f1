/* sync.h - the background thread that keeps the index in step with the
 * server.  Besides it, only changes the server has just confirmed (a
 * delete, a move, a new folder) are written to the index, by fs/core/changes.c.  After each change it calls the hooks (outside any lock a
 * FUSE callback takes) so the kernel can be told. */
#ifndef SYNC_H
#define SYNC_H

#include <stdint.h>
#include <time.h>

#include "index.h"
#include "pool.h"

struct sync_hooks {
	/* A folder's listing changed (messages added or gone, subfolders). */
	void (*folder_changed)(void *ctx, int64_t folder);
	/* A folder's entry in its parent (0: the root) is gone or now
	 * names another folder (deleted, or rebuilt under a new id). */
	void (*entry_gone)(void *ctx, int64_t parent, const char *name);
	/* A message left the index (expunged, or its folder was rebuilt). */
	void (*msg_gone)(void *ctx, int64_t folder, uint32_t uid,
			 const char *name);
	void *ctx;
};

struct sync;

struct sync_opts {
	struct index *ix;
	struct pool *pool;	/* the thread opens its connection here */
	struct sync_hooks hooks;
	unsigned interval_s;	/* seconds between full passes (0: 60) */
	/* Show the folders under the server's personal namespace prefix
	 * ("INBOX." on Courier and Cyrus) without it (folders_put); the
	 * prefix in effect is kept in the index as meta SYNC_META_STRIP. */
	bool strip_prefix;
};

#define SYNC_META_STRIP "strip_prefix"

/* Start the thread. */
int sync_start(const struct sync_opts *o, struct sync **out);

/* Stop and join the thread, free everything.  NULL is a no-op. */
void sync_stop(struct sync *s);

/* Block until the folder list has been fetched once, at most timeout_s. */
void sync_wait_list(struct sync *s, long timeout_s);

/* Ask for a pass that syncs this folder soon; don't wait. */
void sync_request(struct sync *s, int64_t folder);

/* Ask for this folder to be synced next and block until it has been
 * listed completely once (or timeout_s passes, or the sync fails). */
void sync_wait_folder(struct sync *s, int64_t folder, long timeout_s);

/* Ask for a full pass (folder list and every folder) now.  With
 * timeout_s > 0, wait until a pass that started after the call has ended:
 * 0, its error (e.g. MFS_E_CONNECT when offline), or MFS_E_TIMEOUT. */
int sync_refresh(struct sync *s, long timeout_s);

/* A full pass soon, unless offline (then the backoff decides): for a
 * folder that may have been deleted or renamed. */
void sync_relist(struct sync *s);

struct sync_state {
	bool online;		/* the last attempt reached the server */
	bool ever_listed;	/* the folder list was fetched at least once */
	time_t since;		/* when online/offline last changed */
	char error[256];	/* why offline */
};
int sync_status(struct sync *s, struct sync_state *st);

/* When the folder was last found in step with the server; 0: not yet
 * this mount. */
time_t sync_folder_time(struct sync *s, int64_t folder);

#endif
