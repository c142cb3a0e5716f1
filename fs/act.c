/* act.c - file operations that change the mailbox. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act.h"
#include "imap_parse.h"
#include "log.h"

struct act {
	struct act_opts o;
};

struct act *act_new(const struct act_opts *o)
{
	struct act *a = calloc(1, sizeof(*a));

	if (a)
		a->o = *o;
	return a;
}

void act_free(struct act *a)
{
	free(a);
}

struct folder_info {
	bool found;
	int64_t id, parent;
	char *wire;
	char name[NAMES_MAX + 1];
	char delim;
	unsigned flags;
	uint32_t uidvalidity;
};

static int get_folder(void *ctx, const struct ix_folder *f)
{
	struct folder_info *fi = ctx;

	fi->found = true;
	fi->id = f->id;
	fi->parent = f->parent;
	fi->wire = f->wire ? strdup(f->wire) : NULL;
	snprintf(fi->name, sizeof(fi->name), "%s", f->name);
	fi->delim = f->delim;
	fi->flags = f->flags;
	fi->uidvalidity = f->uidvalidity;
	return 0;
}

static int folder(struct act *a, int64_t id, struct folder_info *fi,
		  struct mfs_error *err)
{
	memset(fi, 0, sizeof(*fi));
	return index_folder_get(a->o.ix, id, get_folder, fi, err);
}

struct msg_info {
	char name[NAMES_MAX + 1];
};

static int get_msg(void *ctx, const struct ix_msg *m)
{
	snprintf(((struct msg_info *)ctx)->name, NAMES_MAX + 1, "%s", m->name);
	return 0;
}

static int with_conn(struct act *a, struct imap_conn **c,
		     struct mfs_error *err)
{
	return pool_get(a->o.pool, a->o.timeout_s, c, err);
}

static void changed(struct act *a, int64_t folder)
{
	if (a->o.hooks.folder_changed)
		a->o.hooks.folder_changed(a->o.hooks.ctx, folder);
}

/* The message is gone from folder on the server: from the index too. */
static void forget_msg(struct act *a, int64_t folder, uint32_t uid,
		       const char *name)
{
	index_msg_delete(a->o.ix, folder, uid, NULL);
	if (a->o.hooks.msg_gone)
		a->o.hooks.msg_gone(a->o.hooks.ctx, folder, uid, name);
	changed(a, folder);
}

int act_set_flags(struct act *a, int64_t id, uint32_t uid, const char *flags,
		  struct mfs_error *err)
{
	struct folder_info f;
	struct imap_conn *c = NULL;
	int rc;

	if (imap_flags_valid(flags) < 0)
		return mfs_fail(err, MFS_E_INVAL, "not a list of IMAP flags: '%s'",
				flags);
	rc = folder(a, id, &f, err);
	if (rc == 0 && !f.wire)
		rc = MFS_E_NOTFOUND;
	if (rc == 0)
		rc = with_conn(a, &c, err);
	if (rc == 0) {
		rc = imap_store_flags(c, f.wire, uid, flags, err);
		pool_put(a->o.pool, c);
	}
	if (rc == 0)
		rc = index_msg_set_flags(a->o.ix, id, uid, flags, err);
	free(f.wire);
	return rc;
}

struct find_ctx {
	unsigned flag;
	const char *name;	/* UTF-8 top-level or full name to match */
	int64_t id;
};

static int find_special(void *ctx, const struct ix_folder *f)
{
	struct find_ctx *fc = ctx;

	if (!fc->id && f->wire && (f->flags & fc->flag))
		fc->id = f->id;
	return 0;
}

static int find_named(void *ctx, const struct ix_folder *f)
{
	struct find_ctx *fc = ctx;
	char *utf8 = NULL;

	if (!fc->id && f->wire && imap_utf7_decode(f->wire, &utf8) == 0 &&
	    strcmp(utf8, fc->name) == 0)
		fc->id = f->id;
	free(utf8);
	return 0;
}

/* The Trash folder: as configured, else \Trash, else one named Trash. */
static int64_t trash_id(struct act *a)
{
	struct find_ctx fc = { IMAP_MB_TRASH, a->o.trash, 0 };

	if (a->o.trash) {
		index_folder_all(a->o.ix, find_named, &fc, NULL);
		return fc.id;
	}
	index_folder_all(a->o.ix, find_special, &fc, NULL);
	if (!fc.id) {
		fc.name = "Trash";
		index_folder_all(a->o.ix, find_named, &fc, NULL);
	}
	return fc.id;
}

static int move_or_expunge(struct act *a, int64_t id, uint32_t uid,
			   int64_t dest, struct mfs_error *err)
{
	struct folder_info f, d = { 0 };
	struct msg_info m = { "" };
	struct imap_conn *c = NULL;
	char set[16];
	uint32_t new_uid = 0;
	int rc;

	rc = folder(a, id, &f, err);
	if (rc == 0 && dest)
		rc = folder(a, dest, &d, err);
	if (rc == 0 && (!f.wire || (dest && !d.wire)))
		rc = mfs_fail(err, MFS_E_INVAL, "not a folder that holds mail");
	if (rc == 0)
		rc = index_msg_get(a->o.ix, id, uid, get_msg, &m, err);
	if (rc == 0)
		rc = with_conn(a, &c, err);
	if (rc < 0)
		goto out;
	snprintf(set, sizeof(set), "%u", uid);
	if (dest)
		rc = imap_move(c, f.wire, set, d.wire, &new_uid, err);
	else
		rc = imap_expunge(c, f.wire, set, err);
	pool_put(a->o.pool, c);
	if (rc < 0)
		goto out;
	log_debug(LOG_CAT_FS, "%s %s/%u%s%s", dest ? "moved" : "expunged",
		  f.wire, uid, dest ? " to " : "", dest ? d.wire : "");
	forget_msg(a, id, uid, m.name);
	if (dest) {
		/* The message shows in dest under its new UID once the
		 * sync has fetched its header. */
		changed(a, dest);
		if (a->o.sync)
			sync_request(a->o.sync, dest);
	}
out:
	free(f.wire);
	free(d.wire);
	return rc;
}

int act_delete(struct act *a, int64_t id, uint32_t uid, struct mfs_error *err)
{
	int64_t trash = a->o.expunge ? 0 : trash_id(a);

	if (!a->o.expunge && !trash)
		return mfs_fail(err, MFS_E_NOTFOUND,
				"no Trash folder (set trash_folder or "
				"delete=expunge)");
	return move_or_expunge(a, id, uid, trash == id ? 0 : trash, err);
}

int act_move(struct act *a, int64_t id, uint32_t uid, int64_t dest,
	     struct mfs_error *err)
{
	if (dest == id)
		return mfs_fail(err, MFS_E_INVAL,
				"names are derived: a message cannot be "
				"renamed within its folder");
	return move_or_expunge(a, id, uid, dest, err);
}

struct delim_ctx {
	char delim;
};

static int any_delim(void *ctx, const struct ix_folder *f)
{
	struct delim_ctx *dc = ctx;

	if (!dc->delim && f->wire && f->delim)
		dc->delim = f->delim;
	return 0;
}

/* Wire name for UTF-8 name under parent (0: top level). */
static int child_wire(struct act *a, int64_t parent, const char *name,
		      char **wire, char *delim, struct mfs_error *err)
{
	struct folder_info p = { 0 };
	struct delim_ctx dc = { 0 };
	char *enc = NULL;
	int rc;

	index_folder_all(a->o.ix, any_delim, &dc, NULL);
	if (parent) {
		rc = folder(a, parent, &p, err);
		if (rc < 0)
			return rc;
		if (p.delim)
			dc.delim = p.delim;
	}
	*delim = dc.delim ? dc.delim : '/';
	if (!name[0] || strchr(name, *delim) || name[0] == '.' ||
	    strlen(name) > NAMES_MAX) {
		free(p.wire);
		return mfs_fail(err, MFS_E_INVAL, "unusable folder name '%s'",
				name);
	}
	rc = imap_utf7_encode(name, &enc);
	if (rc == 0 && parent && !p.wire)
		rc = mfs_fail(err, MFS_E_INVAL, "parent has no server name");
	if (rc == 0) {
		if (parent) {
			if (asprintf(wire, "%s%c%s", p.wire, *delim, enc) < 0)
				rc = MFS_E_NOMEM;
		} else if (!(*wire = strdup(enc))) {
			rc = MFS_E_NOMEM;
		}
	}
	free(enc);
	free(p.wire);
	return rc;
}

int act_mkdir(struct act *a, int64_t parent, const char *name, int64_t *id,
	      struct mfs_error *err)
{
	struct imap_conn *c = NULL;
	char *wire = NULL;
	char delim;
	int rc;

	rc = child_wire(a, parent, name, &wire, &delim, err);
	if (rc == 0)
		rc = with_conn(a, &c, err);
	if (rc == 0) {
		rc = imap_create(c, wire, err);
		pool_put(a->o.pool, c);
	}
	if (rc == 0)
		rc = index_folder_put(a->o.ix, parent, name, wire, delim, 0, id,
				      err);
	if (rc == 0) {
		changed(a, parent);
		if (a->o.sync)
			sync_request(a->o.sync, *id);
	}
	free(wire);
	return rc;
}

int act_rmdir(struct act *a, int64_t id, struct mfs_error *err)
{
	struct folder_info f;
	struct imap_conn *c = NULL;
	struct imap_mbstate st = { 0 };
	unsigned msgs = 0, kids = 0;
	int rc;

	rc = folder(a, id, &f, err);
	if (rc == 0)
		rc = index_folder_counts(a->o.ix, id, &msgs, &kids, err);
	if (rc < 0)
		goto out;
	if (msgs || kids) {
		rc = mfs_fail(err, MFS_E_NOTEMPTY, "folder is not empty");
		goto out;
	}
	if (f.wire) {
		rc = with_conn(a, &c, err);
		if (rc < 0)
			goto out;
		/* DELETE takes a mailbox's messages with it: make sure the
		 * server agrees it is empty, not just our index. */
		if (!(f.flags & IMAP_MB_NOSELECT))
			rc = imap_examine(c, f.wire, &st, err);
		if (rc == 0 && st.exists)
			rc = mfs_fail(err, MFS_E_NOTEMPTY,
				      "folder is not empty on the server");
		if (rc == 0)
			rc = imap_delete(c, f.wire, err);
		pool_put(a->o.pool, c);
	}
	if (rc == 0)
		rc = index_folder_drop(a->o.ix, id, false, NULL, err);
	if (rc == 0)
		changed(a, f.parent);
out:
	free(f.wire);
	return rc;
}

int act_rename_folder(struct act *a, int64_t id, int64_t new_parent,
		      const char *new_name, struct mfs_error *err)
{
	struct folder_info f;
	struct imap_conn *c = NULL;
	char *wire = NULL;
	char delim;
	int rc;

	rc = folder(a, id, &f, err);
	if (rc == 0 && !f.wire)
		rc = mfs_fail(err, MFS_E_INVAL, "not a server folder");
	if (rc == 0)
		rc = child_wire(a, new_parent, new_name, &wire, &delim, err);
	if (rc == 0)
		rc = with_conn(a, &c, err);
	if (rc == 0) {
		rc = imap_rename(c, f.wire, wire, err);
		pool_put(a->o.pool, c);
	}
	if (rc == 0)
		rc = index_folder_rename(a->o.ix, id, new_parent, new_name,
					 f.wire, wire, delim, err);
	if (rc == 0) {
		changed(a, f.parent);
		changed(a, new_parent);
		if (a->o.sync)
			sync_request(a->o.sync, id);
	}
	free(wire);
	free(f.wire);
	return rc;
}
