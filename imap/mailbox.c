/* mailbox.c - commands that change the mailbox: flags, move, expunge,
 * create, delete, rename.  UID commands only, and nothing ever expunges a
 * message it was not asked to. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"

int imap_flags_valid(const char *flags)
{
	const char *p = flags;

	while (*p) {
		const char *start;

		while (*p == ' ')
			p++;
		if (!*p)
			break;
		start = p;
		if (*p == '\\')
			p++;
		while (*p && *p != ' ') {
			/* atom-specials and list-wildcards may not appear */
			if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f ||
			    strchr("(){%*\"\\]", *p))
				return MFS_E_INVAL;
			p++;
		}
		if (p == start || (p - start == 1 && *start == '\\'))
			return MFS_E_INVAL;
		/* \Recent belongs to the server alone. */
		if ((size_t)(p - start) == 7 && strncasecmp(start, "\\Recent", 7) == 0)
			return MFS_E_INVAL;
	}
	return 0;
}

/* SELECT (rw) or EXAMINE mailbox afresh and make sure it is the one the
 * caller's UIDs belong to. */
static int select_checked(struct imap_conn *c, const char *mailbox, bool rw,
			  uint32_t uidvalidity, struct mfs_error *err)
{
	struct imap_mbstate st = { 0 };
	int rc = conn_select(c, mailbox, rw, false, &st, err);

	if (rc < 0)
		return rc;
	if (uidvalidity == 0 || st.uidvalidity != uidvalidity)
		return mfs_fail(err, MFS_E_STALE,
				"%s was recreated by another client "
				"(UIDVALIDITY %u, we knew %u): nothing done",
				mailbox, st.uidvalidity, uidvalidity);
	return 0;
}

int imap_check_validity(struct imap_conn *c, const char *mailbox,
			uint32_t uidvalidity, struct mfs_error *err)
{
	return select_checked(c, mailbox, false, uidvalidity, err);
}

int imap_store_flags(struct imap_conn *c, const char *mailbox,
		     uint32_t uidvalidity, uint32_t uid, const char *flags,
		     struct mfs_error *err)
{
	char *cmd = NULL;
	size_t len = 0;
	int rc;

	if (imap_flags_valid(flags) < 0)
		return mfs_fail(err, MFS_E_INVAL, "not a list of IMAP flags");
	rc = select_checked(c, mailbox, true, uidvalidity, err);
	if (rc < 0)
		return rc;
	rc = conn_append(&cmd, &len, "UID STORE %u FLAGS.SILENT (%s)", uid,
			 flags);
	if (rc == 0)
		rc = conn_cmd(c, cmd, NULL, NULL, err);
	free(cmd);
	return rc;
}

static bool valid_set(const char *set)
{
	if (!*set)
		return false;
	for (const char *p = set; *p; p++)
		if (!strchr("0123456789:,", *p))
			return false;
	return true;
}

struct copyuid {
	uint32_t uid;
};

/* [COPYUID validity src dst]: with one source UID, dst is its new UID. */
static int on_copyuid(void *ctx, const struct imap_resp *r)
{
	struct copyuid *cu = ctx;
	uint64_t n;

	if (r->status == IMAP_S_OK && r->code.n == 4 &&
	    imap_atom_is(&r->code.items[0], "COPYUID") &&
	    imap_value_u64(&r->code.items[3], &n) == 0 && n <= UINT32_MAX)
		cu->uid = (uint32_t)n;
	return 0;
}

static int uid_expunge(struct imap_conn *c, const char *uidset,
		       struct mfs_error *err)
{
	char *cmd = NULL;
	size_t len = 0;
	int rc;

	/* Plain EXPUNGE would also remove whatever else carries \Deleted. */
	if (!(c->caps & IMAP_CAP_UIDPLUS))
		return mfs_fail(err, MFS_E_UNSUPPORTED,
				"server lacks UIDPLUS: cannot expunge only "
				"these messages");
	rc = conn_append(&cmd, &len,
			 "UID STORE %s +FLAGS.SILENT (\\Deleted)", uidset);
	if (rc == 0)
		rc = conn_cmd(c, cmd, NULL, NULL, err);
	free(cmd);
	cmd = NULL;
	len = 0;
	if (rc == 0)
		rc = conn_append(&cmd, &len, "UID EXPUNGE %s", uidset);
	if (rc == 0)
		rc = conn_cmd(c, cmd, NULL, NULL, err);
	free(cmd);
	return rc;
}

int imap_move(struct imap_conn *c, const char *mailbox, uint32_t uidvalidity,
	      const char *uidset, const char *dest, uint32_t *new_uid,
	      struct mfs_error *err)
{
	struct copyuid cu = { 0 };
	char *cmd = NULL;
	size_t len = 0;
	bool move = c->caps & IMAP_CAP_MOVE;
	int rc;

	if (!valid_set(uidset))
		return mfs_fail(err, MFS_E_INVAL, "bad UID set");
	if (!move && !(c->caps & IMAP_CAP_UIDPLUS))
		return mfs_fail(err, MFS_E_UNSUPPORTED,
				"server has neither MOVE nor UIDPLUS");
	rc = select_checked(c, mailbox, true, uidvalidity, err);
	if (rc < 0)
		return rc;
	rc = conn_append(&cmd, &len, "UID %s %s ", move ? "MOVE" : "COPY",
			 uidset);
	if (rc == 0)
		rc = conn_quote(&cmd, &len, dest);
	if (rc < 0) {
		free(cmd);
		return mfs_fail(err, rc, "cannot quote mailbox name");
	}
	rc = conn_cmd(c, cmd, on_copyuid, &cu, err);
	free(cmd);
	if (rc == 0 && !move)
		rc = uid_expunge(c, uidset, err);
	if (new_uid)
		*new_uid = cu.uid;
	return rc;
}

struct left_ctx {
	char *set;
	size_t len, cap;
	int rc;
};

static int on_left(void *ctx, const struct imap_resp *r)
{
	struct left_ctx *lc = ctx;

	if (!imap_atom_is(imap_list_get(&r->data, 0), "SEARCH"))
		return 0;
	for (size_t i = 1; i < r->data.n && lc->rc == 0; i++) {
		uint64_t n;

		if (imap_value_u64(&r->data.items[i], &n) < 0 || n == 0 ||
		    n > UINT32_MAX)
			continue;
		if (lc->len + 12 > lc->cap) {
			size_t cap = lc->cap ? lc->cap * 2 : 256;
			char *p = realloc(lc->set, cap);

			if (!p) {
				lc->rc = MFS_E_NOMEM;
				break;
			}
			lc->set = p;
			lc->cap = cap;
		}
		lc->len += (size_t)snprintf(lc->set + lc->len, lc->cap - lc->len,
					    "%s%llu", lc->len ? "," : "",
					    (unsigned long long)n);
	}
	return 0;
}

int imap_uids_left(struct imap_conn *c, const char *mailbox,
		   uint32_t uidvalidity, const char *uidset, char **left,
		   struct mfs_error *err)
{
	struct left_ctx lc = { NULL, 0, 0, 0 };
	char *cmd = NULL;
	size_t len = 0;
	int rc;

	*left = NULL;
	if (!valid_set(uidset))
		return mfs_fail(err, MFS_E_INVAL, "bad UID set");
	rc = select_checked(c, mailbox, false, uidvalidity, err);
	if (rc == 0)
		rc = conn_append(&cmd, &len, "UID SEARCH UID %s", uidset);
	if (rc == 0)
		rc = conn_cmd(c, cmd, on_left, &lc, err);
	free(cmd);
	if (rc == 0 && lc.rc < 0)
		rc = mfs_fail(err, lc.rc, "out of memory");
	if (rc == 0 && !lc.set && !(lc.set = strdup("")))
		rc = mfs_fail(err, MFS_E_NOMEM, "out of memory");
	if (rc < 0) {
		free(lc.set);
		return rc;
	}
	*left = lc.set;
	return 0;
}

int imap_expunge(struct imap_conn *c, const char *mailbox,
		 uint32_t uidvalidity, const char *uidset,
		 struct mfs_error *err)
{
	int rc;

	if (!valid_set(uidset))
		return mfs_fail(err, MFS_E_INVAL, "bad UID set");
	rc = select_checked(c, mailbox, true, uidvalidity, err);
	return rc < 0 ? rc : uid_expunge(c, uidset, err);
}

static int simple(struct imap_conn *c, const char *verb, const char *a,
		  const char *b, struct mfs_error *err)
{
	char *cmd = NULL;
	size_t len = 0;
	int rc;

	/* A mailbox we are about to delete or rename must not stay
	 * selected under its old name.  Step aside with EXAMINE: CLOSE on a
	 * read-write selection would expunge every \Deleted message. */
	if (c->selected && strcmp(c->selected, a) == 0) {
		rc = conn_select(c, "INBOX", false, false, NULL, err);
		if (rc < 0 && !imap_usable(c))
			return rc;
	}
	rc = conn_append(&cmd, &len, "%s ", verb);
	if (rc == 0)
		rc = conn_quote(&cmd, &len, a);
	if (rc == 0 && b)
		rc = conn_append(&cmd, &len, " ");
	if (rc == 0 && b)
		rc = conn_quote(&cmd, &len, b);
	if (rc < 0) {
		free(cmd);
		return mfs_fail(err, rc, "cannot quote mailbox name");
	}
	rc = conn_cmd(c, cmd, NULL, NULL, err);
	free(cmd);
	return rc;
}

int imap_create(struct imap_conn *c, const char *mailbox,
		struct mfs_error *err)
{
	return simple(c, "CREATE", mailbox, NULL, err);
}

int imap_delete(struct imap_conn *c, const char *mailbox,
		struct mfs_error *err)
{
	return simple(c, "DELETE", mailbox, NULL, err);
}

int imap_rename(struct imap_conn *c, const char *from, const char *to,
		struct mfs_error *err)
{
	return simple(c, "RENAME", from, to, err);
}
