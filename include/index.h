/* index.h - the local SQLite index: folders, messages, decoded parts and
 * the body cache's bookkeeping.
 *
 * Thread safe: each thread gets its own SQLite connection to one WAL
 * database, so readers (FUSE callbacks) never wait for the writer (sync).
 * Strings in records handed to callbacks are borrowed for the call only.
 * Errors: MFS_E_IO (SQLite failure, detail in err), MFS_E_NOTFOUND, ...
 */
#ifndef INDEX_H
#define INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "mfs_err.h"
#include "names.h"

struct index;

struct ix_folder {
	int64_t id;		/* > 0; a new id after a UIDVALIDITY change */
	int64_t parent;		/* 0 for top level */
	const char *wire;	/* server name (modified UTF-7); NULL for a
				   directory implied by the hierarchy only */
	const char *name;	/* clean path component (UTF-8) */
	char delim;
	unsigned flags;		/* IMAP_MB_* as reported by LIST */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	bool synced;		/* listed completely at least once */
};

struct ix_msg {
	int64_t folder;
	uint32_t uid;
	uint64_t size;		/* bytes of the raw message */
	int64_t date;		/* Date header, else INTERNALDATE */
	const char *flags;	/* space separated */
	const char *message_id;
	const char *name;	/* derived base name, no extension */
	bool parts_known;	/* decoded view is in the parts table */
	/* What the name was derived from, for other readers of the index
	 * (mime_summary's from and subject); NULL when the header has none. */
	const char *sender;	/* display name of the first From, else address */
	const char *subject;	/* decoded, UTF-8 */
	int64_t internaldate;	/* seconds; 0 when the server gave none */
	/* A row from an index made before sender, subject and internaldate
	 * were kept: those three are unknown (internaldate is NULL in the
	 * table) until index_msg_fill, and a put keeps them unknown. */
	bool unfilled;
};

struct ix_part {
	unsigned n;		/* 1.. */
	const char *name;
	const char *type;
	uint64_t size;
};

typedef int (*ix_folder_fn)(void *ctx, const struct ix_folder *f);
typedef int (*ix_msg_fn)(void *ctx, const struct ix_msg *m);
typedef int (*ix_part_fn)(void *ctx, const struct ix_part *p);

/* Open or create the index at path (file mode 0600). */
int index_open(const char *path, struct index **out, struct mfs_error *err);
void index_close(struct index *ix);

/* Transactions on the calling thread's connection (for the sync writer). */
int index_begin(struct index *ix, struct mfs_error *err);
int index_commit(struct index *ix, struct mfs_error *err);
void index_rollback(struct index *ix);

/* Folders. */
int index_folder_get(struct index *ix, int64_t id, ix_folder_fn fn, void *ctx,
		     struct mfs_error *err);
int index_folder_by_name(struct index *ix, int64_t parent, const char *name,
			 ix_folder_fn fn, void *ctx, struct mfs_error *err);
int index_folder_children(struct index *ix, int64_t parent, ix_folder_fn fn,
			  void *ctx, struct mfs_error *err);
int index_folder_all(struct index *ix, ix_folder_fn fn, void *ctx,
		     struct mfs_error *err);
/* Insert or update the folder (parent, name); wire NULL for an implied
 * directory (never downgrades a real folder).  *id receives its id. */
int index_folder_put(struct index *ix, int64_t parent, const char *name,
		     const char *wire, char delim, unsigned flags, int64_t *id,
		     struct mfs_error *err);
/* Place a folder where a LIST answer shows it: the row of the server
 * folder wire (wire NULL: of the directory only implied by the hierarchy
 * at (parent, name)) is moved to (parent, name) with delim and flags,
 * keeping its id and so its messages; without one, a directory row found
 * there becomes it, else a row is made.  A server folder is thus known by
 * its server name, never by the name it is shown under.  A row that held
 * (parent, name) for another folder is set aside under a name no LIST
 * gives (for its own place call later, or to be dropped as gone).  moved()
 * (may be NULL) gets, as it was, each row that stops being shown under
 * its (parent, name); an error it returns is returned.  *id receives the
 * id.  Call inside a transaction, for parents before their children. */
int index_folder_place(struct index *ix, int64_t parent, const char *name,
		       const char *wire, char delim, unsigned flags,
		       int64_t *id, ix_folder_fn moved, void *ctx,
		       struct mfs_error *err);
/* Record the mailbox state after a sync pass (synced = true). */
int index_folder_set_state(struct index *ix, int64_t id, uint32_t uidvalidity,
			   uint32_t uidnext, uint64_t highestmodseq,
			   struct mfs_error *err);
/* Drop a folder with its messages and parts (and, with renew, re-create it
 * under a new id, returned in *new_id: used when UIDVALIDITY changes). */
int index_folder_drop(struct index *ix, int64_t id, bool renew,
		      int64_t *new_id, struct mfs_error *err);

/* A folder was renamed on the server from old_wire to new_wire: move
 * its row under new_parent as new_name and rewrite the wire names of it
 * and everything below it. */
int index_folder_rename(struct index *ix, int64_t id, int64_t new_parent,
			const char *new_name, const char *old_wire,
			const char *new_wire, char delim,
			struct mfs_error *err);
/* Number of messages and subfolders of a folder. */
int index_folder_counts(struct index *ix, int64_t id, unsigned *messages,
			unsigned *children, struct mfs_error *err);

/* Messages. */
int index_msg_get(struct index *ix, int64_t folder, uint32_t uid,
		  ix_msg_fn fn, void *ctx, struct mfs_error *err);
int index_msg_by_name(struct index *ix, int64_t folder, const char *name,
		      ix_msg_fn fn, void *ctx, struct mfs_error *err);
/* All messages of a folder in name order. */
int index_msg_list(struct index *ix, int64_t folder, ix_msg_fn fn, void *ctx,
		   struct mfs_error *err);
/* Up to limit messages that follow uid in the folder's name order (the
 * order ls, cp -r and tar read them in). */
int index_msg_after(struct index *ix, int64_t folder, uint32_t uid,
		    unsigned limit, ix_msg_fn fn, void *ctx,
		    struct mfs_error *err);
/* Insert or replace a message row. */
int index_msg_put(struct index *ix, const struct ix_msg *m,
		  struct mfs_error *err);
/* The lowest and highest UID among a folder's unfilled rows (see struct
 * ix_msg): 0, or MFS_E_NOTFOUND when there are none.  Cheap when there
 * are none, so the sync asks on every pass. */
int index_msg_unfilled(struct index *ix, int64_t folder, uint32_t *lo,
		       uint32_t *hi, struct mfs_error *err);
/* Fill in an unfilled row's sender, subject and internaldate; a row that
 * has them, or none at all, is left alone.  Its name and date stay as
 * they are: names must not change under a mounted tree. */
int index_msg_fill(struct index *ix, int64_t folder, uint32_t uid,
		   const char *sender, const char *subject,
		   int64_t internaldate, struct mfs_error *err);
int index_msg_set_flags(struct index *ix, int64_t folder, uint32_t uid,
			const char *flags, struct mfs_error *err);
int index_msg_set_size(struct index *ix, int64_t folder, uint32_t uid,
		       uint64_t size, struct mfs_error *err);
int index_msg_delete(struct index *ix, int64_t folder, uint32_t uid,
		     struct mfs_error *err);
/* Highest UID stored for a folder (0 when empty). */
int index_msg_max_uid(struct index *ix, int64_t folder, uint32_t *uid,
		      struct mfs_error *err);

/* Decoded parts of a message: replaces them all and sets parts_known
 * (and forgets a parts file recorded for the message before). */
int index_parts_set(struct index *ix, int64_t folder, uint32_t uid,
		    const struct ix_part *parts, unsigned n,
		    struct mfs_error *err);
int index_parts_list(struct index *ix, int64_t folder, uint32_t uid,
		     ix_part_fn fn, void *ctx, struct mfs_error *err);
int index_part_by_name(struct index *ix, int64_t folder, uint32_t uid,
		       const char *name, ix_part_fn fn, void *ctx,
		       struct mfs_error *err);
int index_part_get(struct index *ix, int64_t folder, uint32_t uid, unsigned n,
		   ix_part_fn fn, void *ctx, struct mfs_error *err);

/* The message's decoded parts are stored one after another in one file
 * of total bytes beside its body (the cache's parts file), parts[i] at
 * off[i].  Recorded only when the index holds exactly these parts (the
 * same n, names and sizes, no others) and the body has its cache entry:
 * then the entry counts total beside the body's bytes (the cap and
 * eviction take both) and index_part_view finds each part.  0, or
 * MFS_E_NOTFOUND when they do not match (nothing is changed), or an index
 * error. */
int index_views_set(struct index *ix, int64_t folder, uint32_t uid,
		    const struct ix_part *parts, const uint64_t *off,
		    unsigned n, uint64_t total, struct mfs_error *err);
/* The message's parts file is gone, or not to be trusted: no longer
 * recorded. */
int index_views_clear(struct index *ix, int64_t folder, uint32_t uid,
		      struct mfs_error *err);
/* The parts file's bytes the cache entry records; MFS_E_NOTFOUND when
 * it records none (or the body has no entry). */
int index_views_get(struct index *ix, int64_t folder, uint32_t uid,
		    uint64_t *total, struct mfs_error *err);
/* Where part n lies in the message's parts file (*off, *size) and the
 * file's bytes as recorded (*total, to check the file against).
 * MFS_E_NOTFOUND when there is no such part or no parts file. */
int index_part_view(struct index *ix, int64_t folder, uint32_t uid,
		    unsigned n, uint64_t *off, uint64_t *size,
		    uint64_t *total, struct mfs_error *err);
/* Messages with a parts file, and the files' bytes. */
int index_views_count(struct index *ix, uint64_t *count, uint64_t *bytes,
		      struct mfs_error *err);

/* Body cache bookkeeping (LRU by last use).  A body's entry also counts
 * its parts file (index_views_set): the total and the least recently
 * used entry's bytes are both together.  index_cache_add keeps the parts
 * file an entry already had. */
int index_cache_add(struct index *ix, int64_t folder, uint32_t uid,
		    uint64_t bytes, struct mfs_error *err);
int index_cache_touch(struct index *ix, int64_t folder, uint32_t uid,
		      struct mfs_error *err);
/* A body found on disk without its entry (its index_cache_add failed):
 * recorded as the least recently used.  1 when it was added, 0 when an
 * entry was there, or an error. */
int index_cache_adopt(struct index *ix, int64_t folder, uint32_t uid,
		      uint64_t bytes, struct mfs_error *err);
/* 1 when the entry was there and is gone, with *bytes (may be NULL) the
 * bytes it counted (body and parts file); 0 when there was none (another
 * thread removed it first); or an error. */
int index_cache_remove(struct index *ix, int64_t folder, uint32_t uid,
		       uint64_t *bytes, struct mfs_error *err);
int index_cache_total(struct index *ix, uint64_t *bytes,
		      struct mfs_error *err);
/* Bodies cached and their bytes, of one folder (or all: folder 0). */
int index_cache_count(struct index *ix, int64_t folder, uint64_t *count,
		      uint64_t *bytes, struct mfs_error *err);
/* The least recently used entry after skip others: 0 with *folder, *uid
 * and *bytes set, or MFS_E_NOTFOUND. */
int index_cache_oldest(struct index *ix, unsigned skip, int64_t *folder,
		       uint32_t *uid, uint64_t *bytes, struct mfs_error *err);

/* Small facts about the account, by key: the value into buf (cap bytes).
 * MFS_E_NOTFOUND when none is kept, MFS_E_TOOBIG when it does not fit. */
int index_meta_get(struct index *ix, const char *key, char *buf, size_t cap,
		   struct mfs_error *err);
int index_meta_set(struct index *ix, const char *key, const char *value,
		   struct mfs_error *err);

#endif
