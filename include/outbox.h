/* outbox.h - the outbox spool and its state machine.
 *
 * A message file in the spool directory is sent once it has stopped
 * changing for settle_s seconds and nobody has it open for writing:
 *
 *   queued -> sending -> saving -> (file removed)
 *                     |          -> saving again at a time ...
 *                     |          -> unsaved (sent, no Sent copy; stays)
 *                     -> retrying (next attempt at a time) -> sending ...
 *                     -> failed   (stays, with "<name>.error" beside it)
 *
 * State lives in "<dir>/.state/<name>", written with fsync and rename, so
 * a crash or SIGKILL loses nothing: a message caught in "sending" is sent
 * again after restart (at least once, never zero times).  Temporary
 * failures (network, TLS handshake, 4xx) are retried with doubling delays
 * until give_up_s after the first attempt; permanent ones (5xx, bad input,
 * a message cut short) are not.  The Sent copy is retried the same way,
 * counted from when the server accepted the message, and never by sending
 * again.  A spool that will not take the state (full, read-only) is a
 * temporary failure too: nothing is sent without its record on disk, the
 * status says why ("retrying: outbox spool: ..."), and records the disk
 * refused are kept in memory meanwhile, so nothing goes out twice.
 *
 * The queue never holds its lock across network I/O: the calls below
 * answer at once while a message is being submitted.  A message deleted
 * meanwhile is cancelled if the server has not accepted it yet (else it
 * still gets its Sent copy); one rewritten meanwhile is kept and sent
 * again afterwards, as a new message.
 */
#ifndef OUTBOX_H
#define OUTBOX_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "mfs_err.h"
#include "smtp.h"

struct outbox_opts {
	const char *dir;		/* spool, mode 0700, must exist */
	const char *default_from;
	struct smtp_opts smtp;		/* strings borrowed for the queue's life */
	unsigned settle_s;
	unsigned retry_initial_s;
	unsigned retry_max_s;
	unsigned give_up_s;
	/* Store the message as sent (CRLF bytes) in the Sent folder; NULL
	 * when sent mail is not to be saved.  0 or a negative mfs_err. */
	int (*save_sent)(void *ctx, const char *data, size_t len,
			 struct mfs_error *err);
	/* The outbox's visible contents changed (a file left, an .error
	 * file appeared): a directory listing is stale. */
	void (*changed)(void *ctx, const char *name);
	/* A line for the log. */
	void (*log)(void *ctx, bool error, const char *msg);
	void *ctx;
};

struct outbox;

int outbox_start(const struct outbox_opts *o, struct outbox **out,
		 struct mfs_error *err);
void outbox_stop(struct outbox *q);

/* Names the queue never sends: dot files, editor temporaries (*~, *.swp,
 * *.tmp, #*#, .#*) and our own "<name>.error" companions. */
bool outbox_ignored(const char *name);

/* The longest name of a message the queue sends: "<name>.error" must fit
 * in NAME_MAX (its state files' names are shorter). */
#define OUTBOX_NAME_MAX (NAME_MAX - 6)

/* May a file of this name be made in the spool?  Ignored names always;
 * others up to OUTBOX_NAME_MAX bytes.  A longer one that is there anyway
 * is never sent (its status says so). */
bool outbox_name_ok(const char *name);

/* A writer opened (open = true) or closed the file: an open file is never
 * picked up, and closing it wakes the queue.  Any number of writers; 0,
 * or MFS_E_NOMEM when an open could not be registered (then the caller
 * must not open the file). */
int outbox_writing(struct outbox *q, const char *name, bool open);

/* A write to the file failed with errnum (ENOSPC, EIO...) and what it
 * holds now is incomplete: this version is never sent; status
 * "failed: not sent: writing it failed: <error>" and a .error until it is
 * written again.  Call while the writer is still registered. */
void outbox_write_failed(struct outbox *q, const char *name, int errnum);

/* Look at the spool now (a file was renamed in or deleted). */
void outbox_kick(struct outbox *q);

/* The file is gone (deleted or renamed away): drop its state and its
 * .error companion.  Deleting a message cancels it. */
void outbox_forget(struct outbox *q, const char *name);

/* The status line for user.mail.status: "queued", "sending", "saving"
 * (to Sent), "retrying: <reply>; next <time>", "failed: <reason>" (also
 * "failed: sent, but not saved to Sent: <reason>"). */
void outbox_status(struct outbox *q, const char *name, char *buf,
		   size_t len);

#endif
