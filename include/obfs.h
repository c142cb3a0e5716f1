/* obfs.h - the outbox/ directory at the mount root: a writable window on
 * the spool directory, whose files the outbox queue sends.
 *
 * Inodes: the directory is OBFS_DIR_INO; a file's inode is its spool
 * file's inode number as INO_OUTBOX (inode.h); the spool is small, so
 * mapping back is a directory scan.  Nothing is cached by the
 * kernel here: entries come and go as mail is sent.
 */
#ifndef OBFS_H
#define OBFS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdbool.h>

#include "inode.h"

#include "outbox.h"

#define OBFS_NAME "outbox"
#define OBFS_DIR_INO ino_make(INO_OUTBOX_DIR, 1)

struct obfs;

/* dir: the spool (exists, 0700); q: its queue (borrowed). */
struct obfs *obfs_new(const char *dir, struct outbox *q, uid_t uid,
		      gid_t gid);
void obfs_free(struct obfs *ob);

/* True for the outbox directory and the files in it. */
bool obfs_owns(fuse_ino_t ino);

/* The directory's attributes, for the root's listing. */
void obfs_dir_stat(struct obfs *ob, struct stat *st);

/* Handlers with the fuse_lowlevel_ops signatures; each replies. */
void obfs_lookup(struct obfs *ob, fuse_req_t req, const char *name);
void obfs_getattr(struct obfs *ob, fuse_req_t req, fuse_ino_t ino);
void obfs_setattr(struct obfs *ob, fuse_req_t req, fuse_ino_t ino,
		  struct stat *attr, int to_set, struct fuse_file_info *fi);
void obfs_opendir(struct obfs *ob, fuse_req_t req, struct fuse_file_info *fi);
void obfs_readdir(struct obfs *ob, fuse_req_t req, size_t size, off_t off,
		  struct fuse_file_info *fi, bool plus);
void obfs_releasedir(struct obfs *ob, fuse_req_t req,
		     struct fuse_file_info *fi);
void obfs_create(struct obfs *ob, fuse_req_t req, const char *name,
		 mode_t mode, struct fuse_file_info *fi);
void obfs_open(struct obfs *ob, fuse_req_t req, fuse_ino_t ino,
	       struct fuse_file_info *fi);
void obfs_read(struct obfs *ob, fuse_req_t req, size_t size, off_t off,
	       struct fuse_file_info *fi);
void obfs_write(struct obfs *ob, fuse_req_t req, const char *buf,
		size_t size, off_t off, struct fuse_file_info *fi);
void obfs_flush(struct obfs *ob, fuse_req_t req, struct fuse_file_info *fi);
void obfs_fsync(struct obfs *ob, fuse_req_t req, struct fuse_file_info *fi);
void obfs_release(struct obfs *ob, fuse_req_t req, struct fuse_file_info *fi);
void obfs_unlink(struct obfs *ob, fuse_req_t req, const char *name);
void obfs_rename(struct obfs *ob, fuse_req_t req, const char *name,
		 const char *newname, unsigned int flags);
void obfs_getxattr(struct obfs *ob, fuse_req_t req, fuse_ino_t ino,
		   const char *name, size_t size);
void obfs_listxattr(struct obfs *ob, fuse_req_t req, fuse_ino_t ino,
		    size_t size);

#endif
