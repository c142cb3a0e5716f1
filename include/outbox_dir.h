/* outbox_dir.h - the outbox/ directory at the mount root: a writable window on
 * the spool directory, whose files the outbox queue sends.
 *
 * Inodes: the directory is OUTBOX_DIR_DIR_INO; a file's inode is its spool
 * file's inode number as INO_OUTBOX (inode.h); the spool is small, so
 * mapping back is a directory scan.  Nothing is cached by the
 * kernel here: entries come and go as mail is sent.
 */
#ifndef OUTBOX_DIR_H
#define OUTBOX_DIR_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdbool.h>

#include "inode.h"

#include "outbox.h"
#include "subtree.h"

#define OUTBOX_DIR_NAME "outbox"
#define OUTBOX_DIR_DIR_INO ino_make(INO_OUTBOX_DIR, 1)

struct outbox_dir;

/* dir: the spool (exists, 0700); q: its queue (borrowed). */
struct outbox_dir *outbox_dir_new(const char *dir, struct outbox *q, uid_t uid,
		      gid_t gid);
void outbox_dir_free(struct outbox_dir *ob);

/* The subtree to hand to fsops_add_subtree: outbox/ at the root, its
 * files, and every operation on them (borrows ob). */
struct subtree outbox_dir_subtree(struct outbox_dir *ob);

#endif
