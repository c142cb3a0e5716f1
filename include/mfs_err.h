/* mfs_err.h - the project's one error vocabulary.
 *
 * Library code (imap/, smtp/, util/) and fs/ (its leaves and fs/core/)
 * return a negative enum value and fill a struct mfs_error with a one-line
 * detail; library code never prints.  The FUSE edge (fs/fuse/) turns a
 * code into an errno once, with mfs_errno(), where it replies; main turns
 * it into an exit status.  The one exception is the local files behind
 * outbox/ and imports (staging.c and its callers in fs/fuse/): their
 * failures are system calls whose errno the user must see as it was
 * (ENAMETOOLONG, EXDEV, ENOSPC), so they return -errno, said in their
 * headers.
 */
#ifndef MFS_ERR_H
#define MFS_ERR_H

#include <stdbool.h>

enum mfs_err {
	MFS_OK = 0,
	MFS_E_NOMEM = -1,	/* allocation failed */
	MFS_E_IO = -2,		/* local I/O (cache, index, spool) */
	MFS_E_CONNECT = -3,	/* cannot reach the server (DNS, refused, route) */
	MFS_E_TLS = -4,		/* handshake or certificate verification failed */
	MFS_E_AUTH = -5,	/* server rejected our credentials */
	MFS_E_PROTO = -6,	/* server sent something we cannot parse */
	MFS_E_NO = -7,		/* server answered NO to a command */
	MFS_E_BAD = -8,		/* server answered BAD (our bug or its) */
	MFS_E_TIMEOUT = -9,	/* no answer in time */
	MFS_E_CLOSED = -10,	/* connection dropped or BYE */
	MFS_E_CONFIG = -11,	/* bad option, config file or password command */
	MFS_E_TOOBIG = -12,	/* input over a hard size cap */
	MFS_E_NOTFOUND = -13,	/* no such folder/message/part */
	MFS_E_INVAL = -14,	/* malformed input (message, name, argument) */
	MFS_E_UNSUPPORTED = -15, /* server lacks a needed capability */
	MFS_E_TEMPFAIL = -16,	/* server refused for now (SMTP 4xx) */
	MFS_E_REJECTED = -17,	/* server refused for good (SMTP 5xx) */
	MFS_E_EXISTS = -18,	/* already exists (IMAP [ALREADYEXISTS]) */
	MFS_E_NOTEMPTY = -19,	/* folder still holds mail or folders */
	MFS_E_SECRET = -20,	/* password or token command failed */
	MFS_E_CANCELLED = -21,	/* abandoned at the caller's request */
	MFS_E_STALE = -22,	/* folder recreated since we knew it (UIDVALIDITY) */
};

/* Detail for the last failure: a one-line human message, never containing
 * secrets.  Callers own it; zero-initialise before use. */
struct mfs_error {
	int code;
	char msg[256];
};

/* Record code and a printf-style detail in err (err may be NULL).
 * Returns code so callers can write `return mfs_fail(err, ...)`. */
int mfs_fail(struct mfs_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Static name of a code, e.g. "TLS failure". */
const char *mfs_strerror(int code);

/* Positive errno for a code, for the FUSE edge. */
int mfs_errno(int code);

/* True when retrying later may succeed (network, timeout, server busy). */
bool mfs_is_transient(int code);

#endif
