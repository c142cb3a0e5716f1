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
#include "sync.h"

struct fsops;

/* timeout_s bounds how long a callback waits for the first listing of a
 * folder. */
struct fsops *fsops_new(long timeout_s);
void fsops_free(struct fsops *o);

/* Wire up the parts (borrowed) once they exist. */
void fsops_attach(struct fsops *o, struct index *ix, struct cache *cache,
		  struct sync *sync);

struct obfs;
struct act;

/* Let file operations change the mailbox (borrowed; NULL: read-only). */
void fsops_attach_act(struct fsops *o, struct act *act);

struct imp;
/* Let files be copied into folders (borrowed; NULL: refused). */
void fsops_attach_imp(struct fsops *o, struct imp *imp);

/* Show outbox/ (borrowed; NULL: sending is off). */
void fsops_attach_outbox(struct fsops *o, struct obfs *ob);

struct ctl;
struct watch;
/* .mailfs/ and the IDLE watchers (borrowed; either may be NULL). */
void fsops_attach_ctl(struct fsops *o, struct ctl *ctl, struct watch *watch);

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
