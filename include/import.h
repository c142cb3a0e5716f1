/* import.h - copying a message file into a folder appends it (cp x.eml
 * INBOX/, mv from a local disk, rsync's temp file renamed to its final
 * name).  The bytes are staged in a local file until close() (or the final
 * rename), then APPENDed with INTERNALDATE from their Date header; the
 * file then shows under its derived name.  Not a message: nothing is
 * appended and close() fails with EINVAL.  A message whose Message-ID and
 * size the server already holds in that folder is skipped (asked with
 * UID SEARCH, not the index, which may lag), and so is one without a
 * Message-ID whose bytes equal a message of the folder (those of the same
 * size are fetched and compared), so restoring a backup twice adds
 * nothing.  Temporary names (dot files, *~, *.swp, *.tmp, #*#) are
 * only staged until renamed.
 *
 * Inodes: INO_IMPORT (include/inode.h), the folder and the staged file.
 */
#ifndef IMPORT_H
#define IMPORT_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>

#include "index.h"
#include "changes.h"
#include "subtree.h"

struct import;

/* dir: the staging area (created 0700 here). */
struct import *import_new(const char *dir, struct index *ix,
			  struct changes *changes, uid_t uid, gid_t gid);
void import_free(struct import *im);

/* The subtree to hand to fsops_add_subtree: the staged files' own
 * operations (borrows im).  It has no directory of its own: names in a
 * folder that the folder does not have are asked of it by the message
 * tree, with the calls below.  A close() (flush) of a written file with a
 * final name appends it, so the writer hears about a refusal. */
struct subtree import_subtree(struct import *im);

/* Entry for a staged file in folder, 0 or -errno (-ENOENT). */
int import_lookup(struct import *im, int64_t folder, const char *name,
	       struct fuse_entry_param *e);
void import_create(struct import *im, fuse_req_t req, int64_t folder,
		const char *name, struct fuse_file_info *fi);
/* 0 or -errno; -ENOENT when name is not staged. */
int import_unlink(struct import *im, int64_t folder, const char *name);
int import_rename(struct import *im, int64_t folder, const char *name,
	       const char *newname);

/* The folder's listing changed (set by the caller). */
void import_set_changed(struct import *im, void (*fn)(void *ctx, int64_t folder),
		     void *ctx);

#endif
