/* staging.h - a local file standing behind a FUSE file: the pieces shared by
 * outbox/ (outbox_dir.c) and files copied into folders (import.c). */
#ifndef STAGING_H
#define STAGING_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

struct stage_file {
	int fd;
	bool writing;		/* opened for writing */
	bool written;		/* bytes written since opened */
	int werr;		/* errno of the first failed write, or 0 */
	int64_t folder;		/* the owner's use */
	char name[NAME_MAX + 1];
};

/* One path component a user may create: not empty, ".", ".." or with '/'. */
bool stage_valid_name(const char *name);

/* Open dir/name (O_CLOEXEC and O_NOFOLLOW added; created 0600).  *out is
 * freed by stage_close.  0 or -errno. */
int stage_open(const char *dir, const char *name, int flags,
	       struct stage_file **out);
void stage_close(struct stage_file *f);

/* Reply to a read or a write of the stage_file in fi->fh: the read and
 * write of a subtree_ops whose files are staged (self and ino unused). */
void stage_read(void *self, fuse_req_t req, fuse_ino_t ino, size_t size,
		off_t off, struct fuse_file_info *fi);
void stage_write(void *self, fuse_req_t req, fuse_ino_t ino, const char *buf,
		 size_t size, off_t off, struct fuse_file_info *fi);

/* Apply a FUSE setattr's size and times to path (through f when open);
 * mode and owner are accepted and ignored, so cp -p and rsync -a work.
 * *st receives the result.  0 or -errno. */
int stage_setattr(const char *path, struct stage_file *f,
		  const struct stat *attr, int to_set, struct stat *st);

/* The regular file in dir whose inode number matches ino under mask, as
 * a name.  0 or -ENOENT. */
int stage_find(const char *dir, uint64_t ino, uint64_t mask, char *name,
	       size_t len);

#endif
