/* fsops.h - the FUSE low-level operations: the tree mailfs shows.
 *
 * Callbacks answer from the index and the body cache only; the network is
 * reached through cache (body fetch on open) and sync (first listing of a
 * folder).  Inode numbers are computed from index ids, not allocated
 * (include/inode.h), so lookups need no table and forget is free; a folder rebuilt after a
 * UIDVALIDITY change gets a new id and so new inode numbers.
 */
#ifndef FSOPS_H
#define FSOPS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdint.h>

#include "cache.h"
#include "index.h"
#include "subtree.h"
#include "sync.h"

struct fsops;

/* timeout_s bounds how long a callback waits for the first listing of a
 * folder. */
struct fsops *fsops_new(long timeout_s);
void fsops_free(struct fsops *o);

/* Wire up the parts (borrowed) once they exist. */
void fsops_attach(struct fsops *o, struct index *ix, struct cache *cache,
		  struct sync *sync);

struct changes;

/* Let file operations change the mailbox (borrowed; NULL: read-only). */
void fsops_attach_act(struct fsops *o, struct changes *act);

/* Serve another part of the tree (subtree.h): its inode kinds and, when
 * it has one, its directory at the root.  Before the session runs.
 * 0, MFS_E_EXISTS (a kind already served) or MFS_E_TOOBIG (too many). */
int fsops_add_subtree(struct fsops *o, struct subtree t);

struct import;
/* Let files be copied into folders (borrowed): the staged files' subtree,
 * and names a folder does not have asked of imp.  0 or as above. */
int fsops_attach_imp(struct fsops *o, struct import *imp);

/* Forget every part attached (after the session, before they go). */
void fsops_detach(struct fsops *o);

struct watch;
/* The IDLE watchers, told which folders are in use (borrowed; or NULL). */
void fsops_attach_watch(struct fsops *o, struct watch *watch);

/* outbox_opts.changed hook: a file in outbox/ came or went. */
void fsops_outbox_changed(void *ctx, const char *name);

/* Start telling the kernel about changes (a thread of its own, because
 * invalidation must never be sent from inside a FUSE callback). */
int fsops_start_notifier(struct fsops *o, struct fuse_session *se);
void fsops_stop_notifier(struct fsops *o);

const struct fuse_lowlevel_ops *fsops_ops(void);

/* Hooks for sync (struct sync_hooks) and cache (cache_size_fn); ctx is
 * the struct fsops. */
void fsops_folder_changed(void *ctx, int64_t folder);
void fsops_msg_gone(void *ctx, int64_t folder, uint32_t uid,
		    const char *name);
void fsops_size_changed(void *ctx, int64_t folder, uint32_t uid);
void fsops_entry_gone(void *ctx, int64_t parent, const char *name);

#endif
