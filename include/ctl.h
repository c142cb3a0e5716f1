/* ctl.h - the hidden control directory ".mailfs" at the mount root.
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
#ifndef CTL_H
#define CTL_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdbool.h>

#include "act.h"
#include "cache.h"
#include "index.h"
#include "inode.h"
#include "outbox.h"
#include "prefetch.h"
#include "sync.h"
#include "watch.h"

#define CTL_NAME ".mailfs"
#define CTL_DIR_INO ino_make(INO_CONTROL, 1)

struct ctl_opts {
	struct index *ix;
	struct sync *sync;
	struct watch *watch;		/* may be NULL */
	struct cache *cache;
	struct prefetch *prefetch;
	struct outbox *outbox;		/* may be NULL */
	struct act *act;		/* may be NULL (read-only) */
	const char *outbox_dir;		/* with outbox */
	long refresh_timeout_s;
	uid_t uid;
	gid_t gid;
};

struct ctl;

/* o is copied; what it points to is borrowed. */
struct ctl *ctl_new(const struct ctl_opts *o);
void ctl_free(struct ctl *c);

/* The control directory and its files. */
bool ctl_owns(fuse_ino_t ino);

/* Handlers with the fuse_lowlevel_ops signatures; each replies.
 * ctl_lookup takes the root or the control directory as parent. */
void ctl_lookup(struct ctl *c, fuse_req_t req, fuse_ino_t parent,
		const char *name);
void ctl_getattr(struct ctl *c, fuse_req_t req, fuse_ino_t ino);
void ctl_setattr(struct ctl *c, fuse_req_t req, fuse_ino_t ino,
		 struct stat *attr, int to_set);
void ctl_readdir(struct ctl *c, fuse_req_t req, size_t size, off_t off,
		 bool plus);
void ctl_open(struct ctl *c, fuse_req_t req, fuse_ino_t ino,
	      struct fuse_file_info *fi);
void ctl_read(struct ctl *c, fuse_req_t req, size_t size, off_t off,
	      struct fuse_file_info *fi);
void ctl_write(struct ctl *c, fuse_req_t req, fuse_ino_t ino,
	       const char *buf, size_t size, struct fuse_file_info *fi);
void ctl_release(struct ctl *c, fuse_req_t req, struct fuse_file_info *fi);

/* The status text (malloc'd into *out, caller frees). */
int ctl_status_text(struct ctl *c, char **out, size_t *len);

#endif
