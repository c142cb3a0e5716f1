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
#include "subtree.h"

#define OBFS_NAME "outbox"
#define OBFS_DIR_INO ino_make(INO_OUTBOX_DIR, 1)

struct obfs;

/* dir: the spool (exists, 0700); q: its queue (borrowed). */
struct obfs *obfs_new(const char *dir, struct outbox *q, uid_t uid,
		      gid_t gid);
void obfs_free(struct obfs *ob);

/* The subtree to hand to fsops_add_subtree: outbox/ at the root, its
 * files, and every operation on them (borrows ob). */
struct subtree obfs_subtree(struct obfs *ob);

#endif
