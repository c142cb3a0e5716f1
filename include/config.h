/* config.h - account settings from options, the config file and URLs.
 *
 * Precedence: command line (-o) over the config file over defaults.
 * Secrets are never stored here: only the commands that produce them.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "imap.h"
#include "mfs_err.h"

struct config {
	char *account;		/* name given on the command line */
	char *host;
	unsigned port;
	char *user;
	char *tls;		/* implicit | starttls | none */
	int allow_plaintext;
	char *ca_file;
	char *password_command;
	char *oauth2_token_command;
	char *netrc_file;
	unsigned connections;
	char *cache_size;	/* e.g. "512M" */
	char *cache_dir;
	char *config_file;
	char *debug;
	char *log_file;
	unsigned timeout;	/* seconds; network operations */
	unsigned poll_interval;	/* seconds between full resyncs */
	char *idle_folders;	/* IDLE connections (number; default 2) */
	char *strip_prefix;	/* yes | no: folders without "INBOX." */
	/* Sending (outbox/). */
	char *smtp_host;	/* default: host */
	unsigned smtp_port;	/* default: 587, or 465 with implicit */
	char *smtp_tls;		/* starttls | implicit */
	char *from;		/* default sender; default: user if it has '@' */
	char *save_sent;	/* yes | no */
	char *sent_folder;	/* default: the \Sent folder, else "Sent" */
	char *outbox_dir;	/* default: $XDG_DATA_HOME/mailfs/USER@HOST/outbox */
	unsigned settle_time;
	unsigned retry_initial;
	unsigned retry_max_delay;
	unsigned give_up_after;
	/* Deleting (rm). */
	char *delete_mode;	/* trash | expunge */
	char *trash_folder;	/* default: the \Trash folder, else "Trash" */
};

/* Fill unset fields from ACCOUNT: an imaps:// or imap:// URL, or a section
 * of the config file.  MFS_E_CONFIG with a one-line reason. */
int config_resolve(struct config *cfg, struct mfs_error *err);

/* Parsed numeric and enum settings, after config_resolve. */
int config_tls(const struct config *cfg, enum imap_tls *tls,
	       struct mfs_error *err);
int config_cache_bytes(const struct config *cfg, uint64_t *bytes,
		       struct mfs_error *err);

/* The password for cfg's user at cfg's host in netrc_file (default
 * ~/.netrc), read here rather than by libcurl so that IMAP and SMTP get the
 * same one (libcurl's SMTP lookup would match the SMTP host).  *secret is
 * the caller's (release with secret_free); MFS_E_SECRET when the file or
 * the entry is missing. */
int config_netrc_password(const struct config *cfg, char **secret,
			  struct mfs_error *err);

/* The password in netrc text for the first entry for host (compared
 * without case) whose login is user or absent, else of the "default"
 * entry, as curl chooses.  Tokens may be "quoted" with backslash escapes;
 * macdef bodies are skipped.  *password is a copy (caller frees) or NULL
 * when there is none; MFS_E_NOMEM.  Pure. */
int config_netrc_lookup(const char *text, const char *host,
			const char *user, char **password);

/* Create dir and its parents with mode 0700. */
int config_mkdirs(const char *dir, struct mfs_error *err);

/* SMTP TLS mode from smtp_tls.  MFS_E_CONFIG on a bad word. */
int config_smtp_tls(const struct config *cfg, int *implicit,
		    struct mfs_error *err);

void config_clear(struct config *cfg);

#endif
