/* folders.h - the folder tree of a LIST answer, written to the index.
 *
 * Every server folder gets a directory of its own.  Each level of a
 * server name (split at its delimiter) is a directory: decoded from
 * modified UTF-7 and cleaned by names_component, with '/' and '\' shown as
 * '_'; a level the server does not list is a plain directory.  Folders
 * whose names clean alike among their siblings (".Spam" and "Spam";
 * "a/b" and "a_b" on a '.' server), or a top-level folder named like the
 * mount's own outbox/ or .mailfs/, are told apart by names_siblings: the
 * one whose name needed no cleaning keeps it, the others get " (2)",
 * " (3)" ... in byte order of their server names.  The names follow from
 * the server's folders alone, so every mount shows the same ones; a row
 * is found again by its server name, so its id and messages never pass
 * to another folder when names shift.
 */
#ifndef FOLDERS_H
#define FOLDERS_H

#include <stddef.h>
#include <stdint.h>

#include "imap.h"
#include "index.h"

struct folders_hooks {
	/* Each row the answer shows, once: mb is its LIST entry, NULL for a
	 * level only implied by the hierarchy.  A negative return stops. */
	int (*seen)(void *ctx, int64_t id, const struct imap_mailbox *mb);
	/* A row is no longer shown as name under parent (0: the root): the
	 * kernel must forget that entry.  May be NULL. */
	int (*moved)(void *ctx, int64_t parent, const char *name);
	void *ctx;
};

/* A LIST answer kept beyond imap_list's calls: folders_keep is an
 * imap_list_fn filling one (zeroed first); folders_list_clear frees it. */
struct folders_list {
	struct imap_mailbox *v;	/* names owned */
	size_t n, cap;
};
int folders_keep(void *ctx, const struct imap_mailbox *mb);
void folders_list_clear(struct folders_list *l);

/* Write the n mailboxes of one LIST answer (names as on the wire) into
 * the index, parents first; call inside a transaction.  A name that
 * begins with strip (the personal namespace prefix, e.g. "INBOX."; NULL
 * or "": none) and is longer is shown without it, at the top level:
 * "INBOX.Archive" as Archive beside INBOX.  Rows the answer does not show
 * are left for the caller to drop.  Returns 0, MFS_E_NOMEM, an index
 * error, or what a hook returned. */
int folders_put(struct index *ix, const struct imap_mailbox *v, size_t n,
		const char *strip, const struct folders_hooks *h,
		struct mfs_error *err);

/* The special folders mailfs writes to. */
enum folders_role { FOLDERS_TRASH, FOLDERS_SENT };

/* The folder that serves role, as *id (0: none) and, when wire is not
 * NULL, its server name (the caller's; NULL when none).  With configured
 * (a folder name in UTF-8): the folder of that server name, or of that
 * name below INBOX; nothing else.  Else the one LIST marks \Trash or
 * \Sent (RFC 6154); else the first of the usual names, compared without
 * case, at the top level or directly below INBOX as Courier and Cyrus
 * keep them (INBOX.Trash): Trash, "Deleted Messages" (Apple), "Deleted
 * Items" (Outlook, Exchange), Deleted; Sent, "Sent Messages", "Sent
 * Items", "Sent Mail".  0, MFS_E_NOMEM or an index error. */
int folders_special(struct index *ix, enum folders_role role,
		    const char *configured, int64_t *id, char **wire,
		    struct mfs_error *err);

#endif
