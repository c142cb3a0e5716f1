/* changes.h - the mailbox changes: every write mailfs makes to the server
 * (flags, delete, move, folders, appends of copied-in files and of sent
 * mail) goes through here, carried out on the server first and shown only
 * once it has confirmed it.  Runs of rm/mv of messages are the exception:
 * batched into UID sets, shown at once, put back if the server refuses
 * (changes.c).  Errors are mfs_err codes with the server's words in err;
 * the caller maps them to errno.  Never called with a lock a FUSE callback
 * holds; kernel notifications go through the hooks. */
#ifndef CHANGES_H
#define CHANGES_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "index.h"
#include "pool.h"
#include "sync.h"

struct changes_hooks {
	/* A folder's listing changed (drop the kernel's cached listing). */
	void (*folder_changed)(void *ctx, int64_t folder);
	/* A message left a folder: forget its two directory entries. */
	void (*msg_gone)(void *ctx, int64_t folder, uint32_t uid,
			 const char *name);
	void *ctx;
};

struct changes_opts {
	struct index *ix;
	struct pool *pool;
	struct sync *sync;
	long timeout_s;
	bool expunge;		/* delete=expunge: no Trash */
	const char *trash;	/* folder name (UTF-8) or NULL: \Trash, "Trash" */
	const char *sent;	/* folder name (UTF-8) or NULL: \Sent, "Sent" */
	struct changes_hooks hooks;
};

struct changes;

struct changes *changes_new(const struct changes_opts *o);
void changes_free(struct changes *a);

/* Replace a message's flags (space separated IMAP flags and keywords). */
int changes_set_flags(struct changes *a, int64_t folder, uint32_t uid,
		  const char *flags, struct mfs_error *err);

/* rm: to Trash, or expunged when already in Trash or delete=expunge. */
int changes_delete(struct changes *a, int64_t folder, uint32_t uid,
	       struct mfs_error *err);

/* mv to another folder (MFS_E_INVAL for the same folder). */
int changes_move(struct changes *a, int64_t folder, uint32_t uid, int64_t dest,
	     struct mfs_error *err);

/* A message moved away in the last seconds, by its old place (src, uid;
 * name NULL) or by the name it had, now in dest: its old folder and UID,
 * size and date.  mv stats the target name after renaming, and a derived
 * name never is the target name; this lets that stat succeed. */
struct changes_moved {
	int64_t src;
	uint32_t uid;
	uint64_t size;
	int64_t date;
};
bool changes_moved(struct changes *a, int64_t src, uint32_t uid, const char *name,
	       int64_t dest, struct changes_moved *out);

/* Send queued rm/mv of messages now and wait until the server has
 * answered (see changes.c).  NULL is a no-op. */
void changes_flush(struct changes *a);

/* mkdir: a new folder name under parent (0: top level); *id its id. */
int changes_mkdir(struct changes *a, int64_t parent, const char *name, int64_t *id,
	      struct mfs_error *err);

/* rmdir: an empty folder (MFS_E_NOTEMPTY otherwise). */
int changes_rmdir(struct changes *a, int64_t folder, struct mfs_error *err);

/* mv of a folder (with its subfolders) to new_parent/new_name. */
int changes_rename_folder(struct changes *a, int64_t folder, int64_t new_parent,
		      const char *new_name, struct mfs_error *err);

/* cp into a folder: append data (CRLF lines; date the INTERNALDATE, 0
 * for now) unless the folder already holds it, by message_id and size or,
 * without a Message-ID, byte for byte (*dup then true, nothing sent).
 * Asks the server, not the index; the folder is resynced after. */
int changes_append(struct changes *a, int64_t folder, const char *data,
		   size_t len, const char *message_id, time_t date, bool *dup,
		   struct mfs_error *err);

/* The outbox's copy of a sent message, \Seen, in the Sent folder (o.sent,
 * else the one the server marks \Sent, else "Sent"). */
int changes_save_sent(struct changes *a, const char *data, size_t len,
		      struct mfs_error *err);

#endif
