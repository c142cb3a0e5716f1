/* acctcheck.h - `mailfs --check ACCOUNT`: log in over IMAP and SMTP as a
 * mount would, without mounting, and say what mailfs would use.
 */
#ifndef ACCTCHECK_H
#define ACCTCHECK_H

#include <stdbool.h>
#include <stdio.h>

#include "imap.h"
#include "smtp.h"

struct acctcheck_opts {
	const char *account;
	const struct imap_opts *imap;
	const struct smtp_opts *smtp;
	bool strip_prefix;
	const char *trash, *sent;	/* trash_folder, sent_folder; or NULL */
	bool save_sent, expunge;	/* save_sent = yes, delete = expunge */
	const char *cache_dir, *index_path, *outbox_dir;
	const char *log_to;		/* where a mount's log lines would go */
	const char *tmp_dir;		/* for a scratch index, removed again */
};

/* Log in to the IMAP server, read its capabilities, namespace and folder
 * list, find the folders mailfs would use for Sent and Trash (as a mount
 * does) and the ones marked Drafts and Junk, then log in for sending;
 * print one "label  value" line per finding to out as it goes.  0, or
 * the first failure as a negative mfs_err with its one line in err
 * ("imap: ...", "smtp: ..."): the caller's exit status by cause. */
int acctcheck_run(const struct acctcheck_opts *o, FILE *out,
		  struct mfs_error *err);

#endif
