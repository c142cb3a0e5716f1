/* idle.c - IDLE (RFC 2177): the server tells us when a mailbox changes,
 * so new mail shows in seconds without polling. */
#include <stdio.h>
#include <string.h>

#include "conn.h"

/* Untagged responses that mean the mailbox's messages changed; the rest
 * (RECENT, OK [ALERT], keep-alive OKs) do not. */
static bool is_change(const struct imap_resp *r)
{
	const struct imap_value *what = imap_list_get(&r->data, 1);

	if (r->kind != IMAP_R_UNTAGGED || r->status != IMAP_S_NONE)
		return false;
	return imap_atom_is(imap_list_get(&r->data, 0), "VANISHED") ||
	       imap_atom_is(what, "EXISTS") || imap_atom_is(what, "EXPUNGE") ||
	       imap_atom_is(what, "FETCH");
}

static int note_change(void *ctx, const struct imap_resp *r)
{
	if (is_change(r))
		*(bool *)ctx = true;
	return 0;
}

int imap_idle(struct imap_conn *c, const char *mailbox, int wake_fd,
	      long max_s, struct mfs_error *err)
{
	struct imap_resp *r = NULL;
	bool changed = false, idling = false;
	char tag[16];
	int rc;

	if (!(c->caps & IMAP_CAP_IDLE))
		return mfs_fail(err, MFS_E_UNSUPPORTED, "no IDLE");
	rc = conn_select(c, mailbox, false, true, NULL, err);
	if (rc < 0)
		return rc;
	rc = conn_start(c, "IDLE", tag, err);
	if (rc < 0)
		return rc;
	/* Until "+", and then until a change, a wake-up or max_s. */
	for (;;) {
		/* A wake-up before "+" must wait for it: DONE is only
		 * valid once the server is idling. */
		rc = conn_next(c, idling ? wake_fd : -1,
			       idling ? max_s * 1000 : c->timeout_ms, &r, err);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			if (!idling) {
				c->broken = true;
				return mfs_fail(err, MFS_E_TIMEOUT,
						"no answer to IDLE in %ld s",
						c->timeout_ms / 1000);
			}
			break;
		}
		if (r->kind == IMAP_R_TAGGED && strcmp(r->tag, tag) == 0) {
			/* Refused (BAD) or ended by the server. */
			rc = r->status == IMAP_S_OK ? 0 :
			     mfs_fail(err, MFS_E_BAD, "IDLE: %s",
				      r->text ? r->text : "");
			imap_resp_free(r);
			return rc < 0 ? rc : changed;
		}
		if (r->kind == IMAP_R_UNTAGGED && r->status == IMAP_S_BYE) {
			mfs_fail(err, MFS_E_CLOSED, "server said BYE: %s",
				 r->text ? r->text : "");
			c->broken = true;
			imap_resp_free(r);
			return MFS_E_CLOSED;
		}
		idling |= r->kind == IMAP_R_CONT;
		changed |= is_change(r);
		imap_resp_free(r);
		r = NULL;
		if (changed && idling)
			break;
	}
	rc = conn_send_raw(c, "DONE\r\n", 6, err);
	if (c->trace)
		c->trace(c->trace_ctx, "C", "DONE", 4);
	if (rc == 0)
		rc = conn_finish(c, tag, note_change, &changed, err);
	return rc < 0 ? rc : changed;
}
