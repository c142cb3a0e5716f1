/* acctcheck.c - `mailfs --check` (see acctcheck.h).
 *
 * The special folders are found by the same code a mount uses
 * (folders_put, folders_special) over a scratch index that is removed
 * afterwards, so what --check says is what a mount would do.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acctcheck.h"
#include "folders.h"
#include "imap_parse.h"
#include "index.h"
#include "mfs_err.h"

/* What each extension is for, when the server has it. */
static const struct {
	unsigned bit;
	const char *use;
} uses[] = {
	{ IMAP_CAP_CONDSTORE, "resyncs only what changed" },
	{ IMAP_CAP_QRESYNC, "learns expunges without a UID list" },
	{ IMAP_CAP_LIST_STATUS, "one round trip for every folder's state" },
	{ IMAP_CAP_SPECIAL_USE, "Sent and Trash marked by the server" },
	{ IMAP_CAP_UIDPLUS, "copied-in messages named at once" },
	{ IMAP_CAP_MOVE, "mv and rm without copy and expunge" },
	{ IMAP_CAP_IDLE, "new mail shown at once" },
	{ IMAP_CAP_ENABLE, "needed for QRESYNC" },
	{ IMAP_CAP_UNSELECT, "leaves a folder without CLOSE" },
	{ IMAP_CAP_NAMESPACE, "the INBOX. prefix found, not guessed" },
	{ IMAP_CAP_LITERALPLUS, "one round trip less per APPEND" },
	{ IMAP_CAP_BINARY, NULL },	/* not used yet */
	{ IMAP_CAP_ESEARCH, NULL },
};

static void line(FILE *out, const char *label, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void line(FILE *out, const char *label, const char *fmt, ...)
{
	va_list ap;

	fprintf(out, "%-11s ", label);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
	fflush(out);
}

static void extensions(FILE *out, unsigned caps)
{
	char lacks[256] = "", unused[256] = "";

	for (size_t i = 0; i < sizeof(uses) / sizeof(uses[0]); i++) {
		const char *name = imap_cap_name(uses[i].bit);
		char *to = !(caps & uses[i].bit) ? lacks :
			   !uses[i].use ? unused : NULL;
		size_t n;

		if (!to) {
			line(out, "uses", "%s: %s", name, uses[i].use);
			continue;
		}
		n = strlen(to);
		snprintf(to + n, sizeof(lacks) - n, "%s%s", n ? " " : "",
			 name);
	}
	if (lacks[0])
		line(out, "lacks", "%s", lacks);
	if (unused[0])
		line(out, "unused", "%s (offered, not used yet)", unused);
}

/* A folder's server name in UTF-8 (the wire's modified UTF-7 decoded),
 * malloc'd; the wire name itself when it does not decode. */
static char *shown(const char *wire)
{
	char *s = NULL;

	if (imap_utf7_decode(wire, &s) < 0 || !s)
		return strdup(wire);
	return s;
}

static unsigned flags_of(const struct folders_list *l, const char *wire)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, wire) == 0)
			return l->v[i].flags;
	return 0;
}

/* Sent or Trash as a mount would choose it. */
static int special(struct index *ix, const struct folders_list *l,
		   enum folders_role role, const char *configured,
		   unsigned flag, const char *none, FILE *out,
		   struct mfs_error *err)
{
	const char *label = role == FOLDERS_SENT ? "sent" : "trash";
	char *wire = NULL, *name;
	int64_t id = 0;
	int rc;

	rc = folders_special(ix, role, configured, &id, &wire, err);
	if (rc < 0)
		return rc;
	if (!id || !wire) {
		line(out, label, "none: %s", none);
		free(wire);
		return 0;
	}
	name = shown(wire);
	line(out, label, "%s (%s)", name ? name : wire,
	     configured ? "as configured" :
	     flags_of(l, wire) & flag ? "marked by the server" :
	     "found by its name");
	free(name);
	free(wire);
	return 0;
}

static int folders(struct imap_conn *c, const struct acctcheck_opts *o,
		   FILE *out, struct mfs_error *err)
{
	struct folders_list l = { 0 };
	struct folders_hooks none = { 0 };
	char prefix[IMAP_NS_PREFIX_MAX] = "", delim = 0, path[4096];
	const char *strip = NULL;
	struct index *ix = NULL;
	int fd = -1, rc;

	path[0] = '\0';
	if (imap_caps(c) & IMAP_CAP_NAMESPACE) {
		rc = imap_namespace(c, prefix, &delim, err);
		if (rc < 0)
			goto out;
		line(out, "namespace", "\"%s\", delimiter '%c'%s", prefix,
		     delim ? delim : ' ',
		     prefix[0] && o->strip_prefix ? ": folders shown without it"
						  : "");
		if (o->strip_prefix && prefix[0] && delim &&
		    prefix[strlen(prefix) - 1] == delim)
			strip = prefix;
	}
	rc = imap_list(c, folders_keep, &l, err);
	if (rc < 0)
		goto out;
	line(out, "folders", "%zu", l.n);

	snprintf(path, sizeof(path), "%s/mailfs-check-XXXXXX", o->tmp_dir);
	fd = mkstemp(path);
	if (fd < 0) {
		rc = mfs_fail(err, MFS_E_IO, "scratch index %s: %s", path,
			      strerror(errno));
		path[0] = '\0';
		goto out;
	}
	rc = index_open(path, &ix, err);
	if (rc == 0)
		rc = index_begin(ix, err);
	if (rc == 0) {
		rc = folders_put(ix, l.v, l.n, strip, &none, err);
		if (rc == 0)
			rc = index_commit(ix, err);
		else
			index_rollback(ix);
	}
	if (rc == 0)
		rc = special(ix, &l, FOLDERS_SENT, o->sent, IMAP_MB_SENT,
			     o->save_sent ? "sent mail is not saved (set "
					    "sent_folder or save_sent = no)"
					  : "not needed (save_sent = no)",
			     out, err);
	if (rc == 0)
		rc = special(ix, &l, FOLDERS_TRASH, o->trash, IMAP_MB_TRASH,
			     o->expunge ? "not needed (delete = expunge)"
					: "rm fails with ENOTSUP (set "
					  "trash_folder or delete = expunge)",
			     out, err);
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		char *name;

		if (!(l.v[i].flags & (IMAP_MB_DRAFTS | IMAP_MB_JUNK)))
			continue;
		name = shown(l.v[i].name);
		line(out, l.v[i].flags & IMAP_MB_DRAFTS ? "drafts" : "junk",
		     "%s (marked by the server)", name ? name : l.v[i].name);
		free(name);
	}
out:
	index_close(ix);
	if (fd >= 0)
		close(fd);
	if (path[0]) {
		char side[4200];

		unlink(path);
		snprintf(side, sizeof(side), "%s-wal", path);
		unlink(side);
		snprintf(side, sizeof(side), "%s-shm", path);
		unlink(side);
	}
	folders_list_clear(&l);
	return rc;
}

int acctcheck_run(const struct acctcheck_opts *o, FILE *out,
		  struct mfs_error *err)
{
	const struct imap_opts *io = o->imap;
	const struct smtp_opts *so = o->smtp;
	struct imap_conn *c = NULL;
	struct smtp_result res;
	struct mfs_error e = { 0 };
	int rc;

	line(out, "account", "%s", o->account);
	line(out, "imap", "%s:%u, TLS %s, certificate and host name verified%s",
	     io->host, io->port ? io->port :
	     io->tls == IMAP_TLS_IMPLICIT ? 993 : 143,
	     io->tls == IMAP_TLS_IMPLICIT ? "from the start" :
	     io->tls == IMAP_TLS_STARTTLS ? "by STARTTLS" : "none",
	     io->ca_file ? " (ca_file)" : "");
	rc = imap_open(io, &c, &e);
	if (rc < 0) {
		mfs_fail(err, rc, "imap: %s", e.msg[0] ? e.msg : mfs_strerror(rc));
		goto out;
	}
	line(out, "login", "%s: logged in", io->user ? io->user : "(netrc)");
	line(out, "capability", "%s", imap_cap_text(c));
	extensions(out, imap_caps(c));
	rc = folders(c, o, out, &e);
	if (rc < 0) {
		mfs_fail(err, rc, "imap: %s", e.msg[0] ? e.msg : mfs_strerror(rc));
		goto out;
	}
	imap_close(c);
	c = NULL;

	line(out, "smtp", "%s:%u, TLS %s", so->host, so->port ? so->port :
	     so->tls == SMTP_TLS_IMPLICIT ? 465 : 587,
	     so->tls == SMTP_TLS_IMPLICIT ? "from the start" : "by STARTTLS");
	rc = smtp_login(so, &res, &e);
	if (rc < 0) {
		mfs_fail(err, rc, "smtp: %s:%u: %s", so->host, so->port ?
			 so->port : so->tls == SMTP_TLS_IMPLICIT ? 465 : 587,
			 res.reply[0] ? res.reply : e.msg);
		goto out;
	}
	line(out, "login", "%s: logged in for sending",
	     so->user ? so->user : "(netrc)");
	line(out, "cache", "%s (index %s)", o->cache_dir, o->index_path);
	line(out, "outbox", "%s", o->outbox_dir);
	line(out, "log", "%s", o->log_to);
out:
	imap_close(c);
	return rc;
}
