/* fake_imap.h - a scripted IMAP server for unit tests, on threads over
 * plain TCP on 127.0.0.1 (imap_open allows it with allow_plaintext).
 *
 * It keeps which UIDs each mailbox holds with their flags, a MODSEQ per
 * change and the UIDs expunged at which MODSEQ, and answers what the
 * daemon's modules send: CAPABILITY, LOGIN, NOOP, LOGOUT, LIST, SELECT and
 * EXAMINE (with CONDSTORE: HIGHESTMODSEQ), ENABLE QRESYNC, UID FETCH of
 * metadata (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS],
 * MODSEQ), UID FETCH ... (CHANGEDSINCE n [VANISHED]), UID FETCH
 * BODY.PEEK[], UID MOVE, UID STORE, UID EXPUNGE and UID SEARCH UID; with
 * NAMESPACE among its capabilities, NAMESPACE: a personal namespace "INBOX/"
 * (as Courier's "INBOX.", with this server's '/').
 * Anything else gets BAD.  Every command is logged (without its tag).
 *
 * Message uid of any mailbox is fake_imap_body(uid): Subject "Message
 * <uid>", From Carol, Message-ID <uid@example.org>, Date and INTERNALDATE
 * 2026-06-01 10:00 UTC, a one-line body.
 */
#ifndef FAKE_IMAP_H
#define FAKE_IMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap.h"

#define FAKE_MAXUID 200
#define FAKE_NMBOX 8

struct fake_imap;

/* Start a server announcing caps (e.g. "IMAP4rev1 MOVE UIDPLUS") after
 * "* CAPABILITY ".  NULL when it could not. */
struct fake_imap *fake_imap_start(const char *caps);
/* Stop its threads (connections are closed) and free it.  NULL: no-op. */
void fake_imap_stop(struct fake_imap *f);
unsigned fake_imap_port(const struct fake_imap *f);

/* Add a mailbox (LISTed with delimiter '/'): its number. */
int fake_imap_mbox(struct fake_imap *f, const char *name,
		   uint32_t uidvalidity);
/* The mailbox a test changes: -1 when there is none. */
int fake_imap_mbox_by_name(struct fake_imap *f, const char *name);
/* A new UIDVALIDITY; its messages and UIDNEXT are left to the test. */
void fake_imap_set_uidvalidity(struct fake_imap *f, int mb,
			       uint32_t uidvalidity);

/* Put message uid in mailbox mb with flags (space separated); raises
 * UIDNEXT past it.  Another change of the mailbox's MODSEQ. */
void fake_imap_put(struct fake_imap *f, int mb, uint32_t uid,
		   const char *flags);
/* New flags for a message, as another client would store them. */
void fake_imap_set_flags(struct fake_imap *f, int mb, uint32_t uid,
			 const char *flags);
/* Expunge a message, as another client would. */
void fake_imap_expunge(struct fake_imap *f, int mb, uint32_t uid);
bool fake_imap_has(struct fake_imap *f, int mb, uint32_t uid);

/* UID MOVE of UIDs lo..hi is answered NO (or again OK). */
void fake_imap_refuse(struct fake_imap *f, uint32_t lo, uint32_t hi,
		      bool refuse);
/* Answer UID MOVE and UID FETCH BODY.PEEK[] ms late. */
void fake_imap_delay(struct fake_imap *f, unsigned ms);

/* Commands received so far. */
unsigned fake_imap_ncmds(struct fake_imap *f);
/* How many commands from number `from` on begin with prefix (case
 * sensitive) and contain `has` (NULL: anything). */
unsigned fake_imap_count(struct fake_imap *f, unsigned from,
			 const char *prefix, const char *has);

/* Commands from number `from` on that begin with prefix followed by a
 * UID set: how many, and how often each UID appears in their sets. */
struct fake_sets {
	unsigned cmds;
	unsigned multi;		/* of those, with more than one UID */
	unsigned times[FAKE_MAXUID + 1];
};
void fake_imap_sets(struct fake_imap *f, unsigned from, const char *prefix,
		    struct fake_sets *out);

/* The raw message the server holds as uid, written to buf: buf. */
const char *fake_imap_body(uint32_t uid, char *buf, size_t len);

/* ---- what every test of a module that logs in needs ---- */

struct mfs_error;

/* A secret source for imap_opts (the fake server takes any password). */
int fake_imap_password(void *ctx, char **out, struct mfs_error *err);

/* Options that log in to f as alice over plain TCP, 5 s timeout. */
struct imap_opts fake_imap_opts(const struct fake_imap *f);

/* Remove dir and everything below it (a test's temporary directory). */
void test_rm_rf(const char *dir);

#endif
