/* secret.h - a password or OAuth2 token asked for at every login.
 *
 * OAuth2 access tokens expire within about an hour and password managers
 * lock or rotate what they hold, so a secret read once at start-up goes
 * stale in a long-running mount.  The protocol leaves (imap/, smtp/) know
 * nothing of config files or commands: whoever composes them hands them a
 * source to ask just before each login, and they wipe what they got as
 * soon as libcurl has taken its copy.
 */
#ifndef SECRET_H
#define SECRET_H

#include "mfs_err.h"

enum secret_kind {
	SECRET_NETRC,		/* no source: libcurl reads the netrc file */
	SECRET_PASSWORD,	/* SASL PLAIN/LOGIN */
	SECRET_OAUTH2,		/* SASL XOAUTH2 bearer token */
};

struct secret_src {
	enum secret_kind kind;
	/* Put a fresh secret in *out (malloc'd, NUL-terminated; the caller
	 * releases it with secret_free).  0, or a negative mfs_err (usually
	 * MFS_E_SECRET) with a one-line detail that never holds the secret.
	 * May be called from several threads at once. */
	int (*get)(void *ctx, char **out, struct mfs_error *err);
	void *ctx;
};

/* Ask src for its secret: *out is NULL for SECRET_NETRC (or no get),
 * else owned by the caller.  Returns get's result. */
int secret_get(const struct secret_src *src, char **out,
	       struct mfs_error *err);

/* Wipe and free a secret.  NULL is a no-op. */
void secret_free(char *s);

#endif
