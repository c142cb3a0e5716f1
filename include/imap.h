/* imap.h - IMAP client engine: one logged-in connection, typed results.
 *
 * libcurl opens the connection (TLS or STARTTLS, certificate checks, SASL
 * login) with CURLOPT_CONNECT_ONLY; everything after login is spoken here
 * over curl_easy_send/recv and parsed by imap_parse.h.  No FUSE, no paths,
 * no SQLite, no printing: errors come back as mfs_err codes with detail.
 *
 * A connection is not thread safe; the caller serialises use of each one.
 */
#ifndef IMAP_H
#define IMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "mfs_err.h"
#include "secret.h"

enum imap_tls {
	IMAP_TLS_IMPLICIT,	/* imaps, port 993 */
	IMAP_TLS_STARTTLS,	/* imap + STARTTLS, required */
	IMAP_TLS_NONE,		/* plaintext; refused unless allow_plaintext */
};

/* Protocol trace hook: dir is "C" or "S"; login payloads never reach it
 * (curl performs the login), bodies are shown as byte counts. */
typedef void (*imap_trace_fn)(void *ctx, const char *dir, const char *line,
			      size_t len);

struct imap_opts {
	const char *host;
	unsigned port;			/* 0: 993 or 143 by tls */
	const char *user;
	struct secret_src secret;	/* asked at every login */
	const char *netrc_file;		/* SECRET_NETRC; NULL: ~/.netrc */
	enum imap_tls tls;
	bool allow_plaintext;
	const char *ca_file;		/* NULL: system store */
	long timeout_s;			/* connect and per-response; 0: 30 */
	imap_trace_fn trace;
	void *trace_ctx;
};

enum {
	IMAP_CAP_CONDSTORE = 1u << 0,
	IMAP_CAP_QRESYNC = 1u << 1,
	IMAP_CAP_BINARY = 1u << 2,
	IMAP_CAP_LIST_STATUS = 1u << 3,
	IMAP_CAP_SPECIAL_USE = 1u << 4,
	IMAP_CAP_UIDPLUS = 1u << 5,
	IMAP_CAP_ESEARCH = 1u << 6,
	IMAP_CAP_LITERALPLUS = 1u << 7,
	IMAP_CAP_MOVE = 1u << 8,
	IMAP_CAP_IDLE = 1u << 9,
	IMAP_CAP_ENABLE = 1u << 10,
	IMAP_CAP_UNSELECT = 1u << 11,
	IMAP_CAP_NAMESPACE = 1u << 12,
};

struct imap_conn;

/* Connect, secure and log in, with a secret asked of o->secret just
 * before (and wiped right after).  On success *out owns the connection.
 * Errors: MFS_E_CONNECT, MFS_E_TLS, MFS_E_AUTH, MFS_E_CONFIG (plaintext
 * not allowed), MFS_E_TIMEOUT, MFS_E_PROTO, MFS_E_NOMEM, or the secret
 * source's (MFS_E_SECRET) before anything is sent; detail in err. */
int imap_open(const struct imap_opts *o, struct imap_conn **out,
	      struct mfs_error *err);

/* LOGOUT (best effort) and free.  NULL is a no-op. */
void imap_close(struct imap_conn *c);

/* Is mailbox the one this connection has selected (or examined)?  Its
 * STATUS (and LIST-STATUS) then comes from this session's possibly stale
 * view on some servers (Dovecot), not from the mailbox. */
bool imap_is_selected(const struct imap_conn *c, const char *mailbox);

/* IMAP_CAP_* bits the server announced after login. */
unsigned imap_caps(const struct imap_conn *c);

/* The capabilities announced after login, space-separated as sent (at
 * most IMAP_CAP_TEXT_MAX - 1 bytes: later ones that do not fit are left
 * out), for people to read; "" before any. */
#define IMAP_CAP_TEXT_MAX 1024
const char *imap_cap_text(const struct imap_conn *c);

/* The name of one IMAP_CAP_* bit ("CONDSTORE"), NULL for another value. */
const char *imap_cap_name(unsigned bit);

/* False once the connection has failed; it must then be closed. */
bool imap_usable(const struct imap_conn *c);

enum {
	IMAP_MB_NOSELECT = 1u << 0,	/* \Noselect or \NonExistent */
	IMAP_MB_NOINFERIORS = 1u << 1,
	IMAP_MB_SENT = 1u << 2,
	IMAP_MB_TRASH = 1u << 3,
	IMAP_MB_DRAFTS = 1u << 4,
	IMAP_MB_JUNK = 1u << 5,
	IMAP_MB_ARCHIVE = 1u << 6,
	IMAP_MB_ALL = 1u << 7,
};

struct imap_mbstate {
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint32_t exists;
	uint64_t highestmodseq;	/* 0 without CONDSTORE */
};

struct imap_mailbox {
	const char *name;	/* as on the wire (modified UTF-7), unquoted */
	char delim;		/* hierarchy delimiter, 0 if NIL */
	unsigned flags;		/* IMAP_MB_* */
	bool has_status;	/* LIST-STATUS filled in status */
	struct imap_mbstate status;
};

/* Called once per mailbox; return 0 to go on, negative mfs_err to stop. */
typedef int (*imap_list_fn)(void *ctx, const struct imap_mailbox *mb);

/* LIST "" "*", with RETURN (SPECIAL-USE) and, where LIST-STATUS is
 * offered, the STATUS of every selectable mailbox in the same round trip.
 * fn is called once per mailbox after the command has completed. */
int imap_list(struct imap_conn *c, imap_list_fn fn, void *ctx,
	      struct mfs_error *err);

/* The server's first personal namespace (RFC 2342): its prefix into
 * prefix (IMAP_NS_PREFIX_MAX bytes, e.g. "INBOX." on Courier and Cyrus,
 * "" on Dovecot) and its hierarchy delimiter into delim ('\0': none).
 * Both empty when the server does not offer NAMESPACE or has no personal
 * namespace.  MFS_E_PROTO for a malformed answer. */
#define IMAP_NS_PREFIX_MAX 256
int imap_namespace(struct imap_conn *c, char *prefix, char *delim,
		   struct mfs_error *err);

/* EXAMINE a mailbox (read-only: nothing we do sets flags) and report its
 * current state.  Errors: MFS_E_NO (no such mailbox), ... */
int imap_examine(struct imap_conn *c, const char *mailbox,
		 struct imap_mbstate *st, struct mfs_error *err);

struct imap_msginfo {
	uint32_t uid;
	uint64_t size;		/* RFC822.SIZE */
	int64_t internaldate;	/* seconds since the epoch; 0 if absent */
	const char *flags;	/* space separated, e.g. "\\Seen $Label1" */
	const char *header;	/* selected header fields, raw; may be NULL */
	size_t header_len;
	uint64_t modseq;	/* 0 without CONDSTORE */
};

typedef int (*imap_msg_fn)(void *ctx, const struct imap_msginfo *mi);

/* UID FETCH uidset in the examined mailbox: UID FLAGS, and with full also
 * RFC822.SIZE INTERNALDATE and the Date/From/Subject/Message-ID header
 * fields (their first 64 KB).  uidset is an IMAP sequence set like "1:*"
 * or "4711:*". */
int imap_fetch_meta(struct imap_conn *c, const char *uidset, bool full,
		    imap_msg_fn fn, void *ctx, struct mfs_error *err);

/* ENABLE QRESYNC (RFC 7162) on this connection: from then on expunges
 * are reported as VANISHED.  MFS_E_UNSUPPORTED if not offered. */
int imap_enable_qresync(struct imap_conn *c, struct mfs_error *err);

/* What changed in the examined mailbox since modseq (CONDSTORE): fn for
 * each message of uidset whose flags changed, and, with vanished (needs
 * imap_enable_qresync), vanished(ctx, lo, hi) for each range of UIDs
 * expunged since (ranges may include UIDs that never existed). */
typedef int (*imap_uids_fn)(void *ctx, uint32_t lo, uint32_t hi);
int imap_fetch_changes(struct imap_conn *c, const char *uidset,
		       uint64_t modseq, imap_msg_fn fn, imap_uids_fn vanished,
		       void *ctx, struct mfs_error *err);

/* EXAMINE mailbox unless this connection has it examined already; *st is
 * its state as of that EXAMINE.  imap_idle on it then needs no other. */
int imap_examine_keep(struct imap_conn *c, const char *mailbox,
		      struct imap_mbstate *st, struct mfs_error *err);

/* Wait for changes to mailbox with IDLE (EXAMINEd first if need be):
 * returns 1 as soon as the server reports new, expunged or re-flagged
 * messages, 0 when wake_fd (may be -1; not read) becomes readable or
 * max_s passes.  Either way IDLE has ended and the connection is ready
 * for the next command.  MFS_E_UNSUPPORTED without IDLE. */
int imap_idle(struct imap_conn *c, const char *mailbox, int wake_fd,
	      long max_s, struct mfs_error *err);

/* UID FETCH uid BODY.PEEK[] from mailbox (examined here if needed; the
 * fetch fails with MFS_E_NOTFOUND if its UIDVALIDITY is not uidvalidity
 * or the message is gone).  The raw bytes are written to fd from its
 * current position and *len receives their count. */
int imap_fetch_body(struct imap_conn *c, const char *mailbox,
		    uint32_t uidvalidity, uint32_t uid, int fd, uint64_t *len,
		    struct mfs_error *err);

/* Bodies of several UIDs in one command, streamed: for each message the
 * server returns, tmp_fn gives a new writable file descriptor (or a
 * negative mfs_err) that receives its bytes, and body_fn gets the UID, that
 * descriptor (which body_fn now owns and must close) and the length.  UIDs
 * the server no longer has simply get no body_fn call.  Returns 0 or an
 * error (a body_fn error stops the batch).  A body longer than max_len
 * (0: no limit) fails the batch with MFS_E_TOOBIG when the limit is
 * reached (not one byte more is written) and breaks the connection: the
 * rest of it is never read. */
typedef int (*imap_tmp_fn)(void *ctx);
typedef int (*imap_body_fn)(void *ctx, uint32_t uid, int fd, uint64_t len);
int imap_fetch_bodies(struct imap_conn *c, const char *mailbox,
		      uint32_t uidvalidity, const uint32_t *uids, size_t n,
		      uint64_t max_len, imap_tmp_fn tmp_fn,
		      imap_body_fn body_fn, void *ctx, struct mfs_error *err);

/* APPEND data to mailbox with flags (e.g. "\\Seen"; may be NULL) and, when
 * date > 0, that INTERNALDATE; LITERAL+ when offered.  When this
 * connection has mailbox open read-only it leaves it first (UNSELECT or
 * CLOSE): Courier refuses an APPEND to it otherwise.  Errors: MFS_E_NO
 * (e.g. no such mailbox), the connection's errors. */
int imap_append(struct imap_conn *c, const char *mailbox, const char *flags,
		int64_t date, const char *data, size_t len,
		struct mfs_error *err);

/* 0 if flags ("\\Seen $Label1 ...", may be empty) are IMAP flag atoms a
 * client may set (not \\Recent), else MFS_E_INVAL. */
int imap_flags_valid(const char *flags);

/* The commands below that change messages name them by UID, and a UID
 * means something only under the UIDVALIDITY it was learnt with: another
 * client may have deleted the mailbox and created one of the same name,
 * whose UID 1 is another message.  So each first SELECTs mailbox afresh
 * (never a kept selection, which may be a stale view) and compares its
 * UIDVALIDITY with uidvalidity; on a mismatch (or uidvalidity 0) nothing
 * is sent and the result is MFS_E_STALE.  A mailbox that no longer exists
 * gives MFS_E_NO from the SELECT. */

/* Replace the flags of uid in mailbox (SELECTed read-write for this). */
int imap_store_flags(struct imap_conn *c, const char *mailbox,
		     uint32_t uidvalidity, uint32_t uid, const char *flags,
		     struct mfs_error *err);

/* Move the messages of uidset (e.g. "4711" or "1:3,7") from mailbox to
 * dest: UID MOVE, else UID COPY + \\Deleted + UID EXPUNGE (needs UIDPLUS,
 * so no other message is ever expunged; MFS_E_UNSUPPORTED without).  With
 * a single UID, *new_uid (may be NULL) gets its UID in dest from COPYUID,
 * or 0 if the server did not say. */
int imap_move(struct imap_conn *c, const char *mailbox, uint32_t uidvalidity,
	      const char *uidset, const char *dest, uint32_t *new_uid,
	      struct mfs_error *err);

/* Remove exactly the messages of uidset for good (\\Deleted + UID
 * EXPUNGE; MFS_E_UNSUPPORTED without UIDPLUS). */
int imap_expunge(struct imap_conn *c, const char *mailbox,
		 uint32_t uidvalidity, const char *uidset,
		 struct mfs_error *err);

/* Which UIDs of uidset are still in mailbox (EXAMINEd afresh, UIDVALIDITY
 * checked as above): *left gets them as a UID set, "" when none (the
 * caller frees it).  For finding out what a move whose answer was lost
 * has done before sending it again. */
int imap_uids_left(struct imap_conn *c, const char *mailbox,
		   uint32_t uidvalidity, const char *uidset, char **left,
		   struct mfs_error *err);

/* Is mailbox still the one known with uidvalidity?  0, MFS_E_STALE, or
 * MFS_E_NO when it is gone.  For folder-level changes (RENAME, DELETE)
 * that name a mailbox the caller learnt about earlier; EXAMINEs it. */
int imap_check_validity(struct imap_conn *c, const char *mailbox,
			uint32_t uidvalidity, struct mfs_error *err);

/* CREATE, DELETE, RENAME (wire names).  MFS_E_NO with the server's words
 * when it refuses. */
int imap_create(struct imap_conn *c, const char *mailbox,
		struct mfs_error *err);
int imap_delete(struct imap_conn *c, const char *mailbox,
		struct mfs_error *err);
int imap_rename(struct imap_conn *c, const char *from, const char *to,
		struct mfs_error *err);

/* Does mailbox already hold a message with this Message-ID (without <>)
 * and this RFC822.SIZE?  For skipping duplicates on import. */
int imap_has_message(struct imap_conn *c, const char *mailbox,
		     const char *message_id, uint64_t size, bool *found,
		     struct mfs_error *err);

/* UIDs (at most max, into uids; *n their count) of the messages in
 * mailbox whose RFC822.SIZE is exactly size: the candidates, for a
 * message without a Message-ID, of being the same message. */
int imap_search_size(struct imap_conn *c, const char *mailbox, uint64_t size,
		     uint32_t *uids, size_t max, size_t *n,
		     struct mfs_error *err);

/* NOOP: keep-alive and liveness check. */
int imap_noop(struct imap_conn *c, struct mfs_error *err);

#endif
