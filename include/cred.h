/* cred.h - the account's password or OAuth2 token, from its command, run
 * afresh for every login (secret.h says why).
 *
 * The command runs under /bin/sh -c with the caller's environment and
 * stdin (a terminal at start-up, for a password manager's prompt); the
 * first line it prints is the secret.  Nothing of the secret reaches
 * argv, logs or error messages.
 */
#ifndef CRED_H
#define CRED_H

#include "config.h"
#include "mfs_err.h"
#include "secret.h"

/* Run cmd and return the first line of its output (without CR/LF) in
 * *secret (release with secret_free).  what names the command in
 * messages ("password_command").  With limit_s > 0 a command still
 * running after that many seconds is killed.  MFS_E_SECRET when it
 * cannot be run, exits non-zero, is killed or prints nothing;
 * MFS_E_NOMEM. */
int cred_run(const char *what, const char *cmd, long limit_s, char **secret,
	     struct mfs_error *err);

struct cred;

/* Credentials of cfg (borrowed; must outlive the result): its
 * oauth2_token_command (XOAUTH2), else its password_command, else the
 * password for its user and host in its netrc file.  Commands run one at a time, so a prompt or a token refresh
 * is not started several times at once, and without a time limit until
 * cred_limit sets one.  NULL when out of memory. */
struct cred *cred_new(const struct config *cfg);
void cred_free(struct cred *cr);

/* From now on kill a command that runs longer than limit_s: once the
 * mount is up, a stuck command must fail a login, not hang it. */
void cred_limit(struct cred *cr, long limit_s);

/* A source for imap_opts/smtp_opts; valid while cr lives. */
struct secret_src cred_source(struct cred *cr);

#endif
