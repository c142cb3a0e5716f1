/* subtree.h - a part of the tree that a module of its own serves: outbox/,
 * .mailfs/, the files being copied into a folder.
 *
 * fsops.c (the message tree) finds the owner of a request once, by the kind
 * of its inode (inode.h) or, for lookup, create, unlink and rename, by the
 * kind of the parent directory or by the name at the root, and hands it the
 * whole request.  The owner replies to the request itself.  Adding a
 * subtree is a new file with a struct subtree_ops, a kind in inode.h, and
 * one fsops_add_subtree call.
 *
 * Every operation has the signature of its fuse_lowlevel_ops twin with the
 * subtree's own state first.  Any may be NULL; fsops.c then answers as for a
 * plain read-only file: create, unlink, rename and setxattr are refused
 * (EPERM, or EXDEV for a rename across subtrees), opendir and readdir of a
 * file give ENOTDIR, flush and releasedir succeed, fsync sends the queued
 * mailbox changes and succeeds, listxattr lists nothing, getxattr gives
 * ENODATA (ENOTSUP outside "user.").  getattr, open, read and release are
 * required for any subtree with files; lookup and getattr for any.
 */
#ifndef SUBTREE_H
#define SUBTREE_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdbool.h>

struct subtree_ops {
	/* The inode kinds this subtree answers for, as 1u << kind. */
	unsigned kinds;

	/* parent is the root (for the subtree's own directory) or one of
	 * the subtree's directories. */
	void (*lookup)(void *self, fuse_req_t req, fuse_ino_t parent,
		       const char *name);
	void (*getattr)(void *self, fuse_req_t req, fuse_ino_t ino);
	void (*setattr)(void *self, fuse_req_t req, fuse_ino_t ino,
			struct stat *attr, int to_set,
			struct fuse_file_info *fi);
	void (*opendir)(void *self, fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi);
	void (*readdir)(void *self, fuse_req_t req, fuse_ino_t ino,
			size_t size, off_t off, struct fuse_file_info *fi,
			bool plus);
	void (*releasedir)(void *self, fuse_req_t req, fuse_ino_t ino,
			   struct fuse_file_info *fi);
	void (*create)(void *self, fuse_req_t req, fuse_ino_t parent,
		       const char *name, mode_t mode,
		       struct fuse_file_info *fi);
	void (*open)(void *self, fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi);
	void (*read)(void *self, fuse_req_t req, fuse_ino_t ino, size_t size,
		     off_t off, struct fuse_file_info *fi);
	void (*write)(void *self, fuse_req_t req, fuse_ino_t ino,
		      const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi);
	void (*flush)(void *self, fuse_req_t req, fuse_ino_t ino,
		      struct fuse_file_info *fi);
	void (*fsync)(void *self, fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi);
	void (*release)(void *self, fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi);
	void (*unlink)(void *self, fuse_req_t req, fuse_ino_t parent,
		       const char *name);
	/* Both parents are this subtree's. */
	void (*rename)(void *self, fuse_req_t req, fuse_ino_t parent,
		       const char *name, fuse_ino_t newparent,
		       const char *newname, unsigned int flags);
	void (*listxattr)(void *self, fuse_req_t req, fuse_ino_t ino,
			  size_t size);
	void (*getxattr)(void *self, fuse_req_t req, fuse_ino_t ino,
			 const char *name, size_t size);
};

struct subtree {
	const struct subtree_ops *ops;
	void *self;		/* borrowed: outlives its use by fsops */
	/* Its directory at the mount root, or name NULL for a subtree that
	 * lives inside folders (import).  listed: shown by ls of the root
	 * (outbox/ is, .mailfs/ is not). */
	const char *name;
	fuse_ino_t dir;
	bool listed;
	/* The directory's attributes for the root's listing (when listed). */
	void (*dir_stat)(void *self, struct stat *st);
};

#endif
