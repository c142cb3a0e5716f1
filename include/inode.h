/* inode.h - every kind of inode in the tree, and how each number is made.
 *
 * The top four bits of an inode number name its kind, which is the
 * subtree that answers for it; the low 60 bits are the kind's own.  This
 * header is the only place a kind is numbered: a new subtree takes the
 * next free kind here.
 *
 *   kind           subtree   low 60 bits
 *   INO_ROOT       fsops.c     none: the root is FUSE_ROOT_ID (1)
 *   INO_FOLDER     fsops.c     folder id << 42
 *   INO_MESSAGE    fsops.c     folder id << 42 | UID << 10          X.eml
 *   INO_DECODED    fsops.c     folder id << 42 | UID << 10          X/
 *   INO_PART       fsops.c     folder id << 42 | UID << 10 | part   X/body.txt
 *   INO_OUTBOX_DIR outbox_dir.c    1                                    outbox/
 *   INO_OUTBOX     outbox_dir.c    the spool file's own inode number    outbox/F
 *   INO_IMPORT     import.c     folder id << 42 | the staged file's inode
 *   INO_CONTROL    control.c     1 for .mailfs/, 2 on for its files
 *
 * Folder ids fit 18 bits, parts 10 (see INO_MAX_*); the owners refuse more.
 * Host inode numbers (spool and staging files) are cut to the bits left;
 * the owners map back by looking the number up, never by trusting it.
 */
#ifndef INODE_H
#define INODE_H

#include <stdint.h>

/* fuse_ino_t without the FUSE headers: this header is pure arithmetic. */
typedef uint64_t mfs_ino;

enum ino_kind {
	INO_ROOT = 0,
	INO_FOLDER = 1,
	INO_MESSAGE = 2,
	INO_DECODED = 3,
	INO_PART = 4,
	INO_OUTBOX_DIR = 5,
	INO_OUTBOX = 6,
	INO_IMPORT = 7,
	INO_CONTROL = 8,
};

#define INO_ROOT_ID ((mfs_ino)1) /* FUSE_ROOT_ID */
#define INO_KIND_SHIFT 60
#define INO_LOW_MASK (((mfs_ino)1 << INO_KIND_SHIFT) - 1)

#define INO_FOLDER_SHIFT 42
#define INO_FOLDER_BITS 18
#define INO_UID_SHIFT 10
#define INO_PART_BITS 10
#define INO_MAX_FOLDER ((int64_t)((1LL << INO_FOLDER_BITS) - 1))
#define INO_MAX_PART ((1u << INO_PART_BITS) - 1)
#define INO_SUB_MASK (((mfs_ino)1 << INO_FOLDER_SHIFT) - 1)

static inline enum ino_kind ino_kind(mfs_ino ino)
{
	return ino == INO_ROOT_ID ? INO_ROOT :
				    (enum ino_kind)(ino >> INO_KIND_SHIFT);
}

/* An inode of kind k whose own bits are low (cut to 60 bits). */
static inline mfs_ino ino_make(enum ino_kind k, uint64_t low)
{
	return ((mfs_ino)k << INO_KIND_SHIFT) | (low & INO_LOW_MASK);
}

static inline uint64_t ino_low(mfs_ino ino)
{
	return ino & INO_LOW_MASK;
}

/* ---- the message tree: folders, messages, decoded directories, parts */

struct ino_tree {
	enum ino_kind kind;
	int64_t folder;
	uint32_t uid;
	unsigned part;
};

static inline mfs_ino ino_tree_make(enum ino_kind k, int64_t folder,
				    uint32_t uid, unsigned part)
{
	if (k == INO_ROOT)
		return INO_ROOT_ID;
	return ino_make(k, ((uint64_t)folder << INO_FOLDER_SHIFT) |
				   ((uint64_t)uid << INO_UID_SHIFT) | part);
}

static inline struct ino_tree ino_tree_parse(mfs_ino ino)
{
	struct ino_tree n = { INO_ROOT, 0, 0, 0 };

	if (ino == INO_ROOT_ID)
		return n;
	n.kind = ino_kind(ino);
	n.folder = (int64_t)((ino >> INO_FOLDER_SHIFT) &
			     (uint64_t)INO_MAX_FOLDER);
	n.uid = (uint32_t)(ino >> INO_UID_SHIFT);
	n.part = (unsigned)(ino & INO_MAX_PART);
	return n;
}

/* ---- files being copied into a folder: the folder and the staged file */

static inline mfs_ino ino_import_make(int64_t folder, uint64_t staged)
{
	return ino_make(INO_IMPORT, ((uint64_t)folder << INO_FOLDER_SHIFT) |
					    (staged & INO_SUB_MASK));
}

static inline int64_t ino_import_folder(mfs_ino ino)
{
	return (int64_t)((ino >> INO_FOLDER_SHIFT) & (uint64_t)INO_MAX_FOLDER);
}

#endif
