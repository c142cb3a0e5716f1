/* control.h - the hidden control directory ".mailfs" at the mount root.
 *
 *   .mailfs/status    what the daemon is doing: connection, folders and
 *                     when each was last in step, cache, prefetches, outbox
 *   .mailfs/refresh   write anything: resync everything now; the write
 *                     returns when the pass is over (EIO when offline)
 *   .mailfs/prefetch  write folder paths, one per line: download their
 *                     bodies in the background (progress in status)
 *
 * Not listed by the root's readdir, so cp -r, rsync and find of the mount
 * do not see it; reachable by name.  Contents are made at open and read
 * with direct I/O (their st_size is 0).  Inodes: INO_CONTROL (inode.h).
 */
#ifndef CONTROL_H
#define CONTROL_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdbool.h>

#include "changes.h"
#include "cache.h"
#include "index.h"
#include "inode.h"
#include "outbox.h"
#include "prefetch.h"
#include "subtree.h"
#include "sync.h"
#include "watch.h"

#define CONTROL_NAME ".mailfs"
#define CONTROL_DIR_INO ino_make(INO_CONTROL, 1)

struct control_opts {
	struct index *ix;
	struct sync *sync;
	struct watch *watch;		/* may be NULL */
	struct cache *cache;
	struct prefetch *prefetch;
	struct outbox *outbox;		/* may be NULL */
	struct changes *act;		/* may be NULL (read-only) */
	const char *outbox_dir;		/* with outbox */
	long refresh_timeout_s;
	uid_t uid;
	gid_t gid;
};

struct control;

/* o is copied; what it points to is borrowed. */
struct control *control_new(const struct control_opts *o);
void control_free(struct control *c);

/* The subtree to hand to fsops_add_subtree: .mailfs/ (reachable by name,
 * not listed) and its files (borrows c). */
struct subtree control_subtree(struct control *c);

/* The status text (malloc'd into *out, caller frees). */
int control_status_text(struct control *c, char **out, size_t *len);

#endif
