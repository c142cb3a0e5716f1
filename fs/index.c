/* index.c - SQLite index.  One connection per thread on a WAL database:
 * FUSE readers never block behind the sync writer. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "index.h"

#define STMT_CACHE 80

struct handle {
	sqlite3 *db;
	struct index *ix;
	struct handle *next, *prev;
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} stmts[STMT_CACHE];
};

struct index {
	char *path;
	pthread_key_t key;
	pthread_mutex_t lock;	/* guards the handle list */
	struct handle *handles;
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"CREATE TABLE IF NOT EXISTS folders("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" parent INTEGER NOT NULL, name TEXT NOT NULL, wire TEXT,"
	" delim INTEGER NOT NULL DEFAULT 0, flags INTEGER NOT NULL DEFAULT 0,"
	" uidvalidity INTEGER NOT NULL DEFAULT 0,"
	" uidnext INTEGER NOT NULL DEFAULT 0,"
	" highestmodseq INTEGER NOT NULL DEFAULT 0,"
	" synced INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE(parent, name));"
	"CREATE TABLE IF NOT EXISTS messages("
	" folder INTEGER NOT NULL, uid INTEGER NOT NULL,"
	" size INTEGER NOT NULL, date INTEGER NOT NULL,"
	" flags TEXT NOT NULL, message_id TEXT, name TEXT NOT NULL,"
	" parts_known INTEGER NOT NULL DEFAULT 0,"
	" sender TEXT, subject TEXT, internaldate INTEGER,"
	" PRIMARY KEY(folder, uid)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS messages_name ON messages(folder, name);"
	"CREATE TABLE IF NOT EXISTS parts("
	" folder INTEGER NOT NULL, uid INTEGER NOT NULL, n INTEGER NOT NULL,"
	" name TEXT NOT NULL, type TEXT NOT NULL, size INTEGER NOT NULL,"
	" off INTEGER,"
	" PRIMARY KEY(folder, uid, n)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS parts_name ON parts(folder, uid, name);"
	"CREATE TABLE IF NOT EXISTS cache("
	" folder INTEGER NOT NULL, uid INTEGER NOT NULL,"
	" bytes INTEGER NOT NULL, used INTEGER NOT NULL,"
	" views INTEGER,"
	" PRIMARY KEY(folder, uid)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS cache_used ON cache(used);"
	"CREATE INDEX IF NOT EXISTS folders_wire ON folders(wire);"
	"CREATE TABLE IF NOT EXISTS meta("
	" key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;";

/* Columns added since the first release, in the order they came: an index
 * made before gets them by ALTER TABLE on open, its rows with NULL there
 * (internaldate NULL is what marks a row unfilled). */
static const struct {
	const char *table, *column, *add;
} upgrades[] = {
	{ "messages", "sender", "ALTER TABLE messages ADD COLUMN sender TEXT" },
	{ "messages", "subject",
	  "ALTER TABLE messages ADD COLUMN subject TEXT" },
	{ "messages", "internaldate",
	  "ALTER TABLE messages ADD COLUMN internaldate INTEGER" },
	/* Where each decoded part lies in its message's parts file, and
	 * that file's bytes beside the body's (NULL: it has none). */
	{ "parts", "off", "ALTER TABLE parts ADD COLUMN off INTEGER" },
	{ "cache", "views", "ALTER TABLE cache ADD COLUMN views INTEGER" },
};

/* After the upgrades: finds the unfilled rows without a scan, and is
 * empty once the sync has filled them. */
static const char schema_late[] =
	"CREATE INDEX IF NOT EXISTS messages_unfilled ON messages(folder, uid)"
	" WHERE internaldate IS NULL;";

static int db_fail(struct mfs_error *err, sqlite3 *db, const char *what)
{
	return mfs_fail(err, MFS_E_IO, "index: %s: %s", what,
			db ? sqlite3_errmsg(db) : "cannot open");
}

static void handle_free(struct handle *h)
{
	for (int i = 0; i < STMT_CACHE; i++)
		sqlite3_finalize(h->stmts[i].st);
	sqlite3_close(h->db);
	free(h);
}

static void handle_unlink(struct handle *h)
{
	struct index *ix = h->ix;

	pthread_mutex_lock(&ix->lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		ix->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&ix->lock);
}

static void handle_destroy(void *p)
{
	struct handle *h = p;

	handle_unlink(h);
	handle_free(h);
}

static struct handle *handle_get(struct index *ix, struct mfs_error *err)
{
	struct handle *h = pthread_getspecific(ix->key);

	if (h)
		return h;
	h = calloc(1, sizeof(*h));
	if (!h) {
		mfs_fail(err, MFS_E_NOMEM, "out of memory");
		return NULL;
	}
	h->ix = ix;
	if (sqlite3_open_v2(ix->path, &h->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		db_fail(err, h->db, ix->path);
		handle_free(h);
		return NULL;
	}
	sqlite3_busy_timeout(h->db, 10000);
	sqlite3_exec(h->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	pthread_mutex_lock(&ix->lock);
	h->next = ix->handles;
	if (h->next)
		h->next->prev = h;
	ix->handles = h;
	pthread_mutex_unlock(&ix->lock);
	pthread_setspecific(ix->key, h);
	return h;
}

/* A prepared, reset statement for sql (a string literal: cached by its
 * address for the life of the thread's connection). */
static sqlite3_stmt *stmt(struct index *ix, const char *sql,
			  struct mfs_error *err)
{
	struct handle *h = handle_get(ix, err);
	int i, free_slot = -1;
	sqlite3_stmt *st = NULL;

	if (!h)
		return NULL;
	for (i = 0; i < STMT_CACHE; i++) {
		if (h->stmts[i].sql == sql) {
			sqlite3_reset(h->stmts[i].st);
			sqlite3_clear_bindings(h->stmts[i].st);
			return h->stmts[i].st;
		}
		if (!h->stmts[i].sql && free_slot < 0)
			free_slot = i;
	}
	if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) != SQLITE_OK) {
		db_fail(err, h->db, "prepare");
		return NULL;
	}
	if (free_slot >= 0) {
		h->stmts[free_slot].sql = sql;
		h->stmts[free_slot].st = st;
	}
	/* With no free slot the statement leaks into no one's care; the
	 * cache is sized above the number of statements in this file. */
	return st;
}

static int step_done(struct index *ix, sqlite3_stmt *st, struct mfs_error *err)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return db_fail(err, sqlite3_db_handle(st), "step");
	sqlite3_reset(st);
	(void)ix;
	return 0;
}

/* Step st to its one row: 0 with the row ready (the caller reads it, then
 * resets), MFS_E_NOTFOUND when there is none, or an index error. */
static int step_row(sqlite3_stmt *st, const char *what, struct mfs_error *err)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 0;
	rc = rc == SQLITE_DONE ? MFS_E_NOTFOUND :
				 db_fail(err, sqlite3_db_handle(st), what);
	sqlite3_reset(st);
	return rc;
}

static int has_column(sqlite3 *db, const char *table, const char *column,
		      bool *has, struct mfs_error *err)
{
	static const char sql[] =
		"SELECT count(*) FROM pragma_table_info(?) WHERE name = ?";
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_fail(err, db, "table_info");
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, column, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*has = rc == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_fail(err, db, "table_info");
	return 0;
}

/* Bring an index made by an earlier version up to this schema, in one
 * transaction so that two mounts opening it at once add each column once. */
static int upgrade(sqlite3 *db, struct mfs_error *err)
{
	bool has = false;
	int rc = 0;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(err, db, "upgrade");
	for (size_t i = 0; rc == 0 && i < sizeof(upgrades) / sizeof(*upgrades);
	     i++) {
		rc = has_column(db, upgrades[i].table, upgrades[i].column, &has,
				err);
		if (rc == 0 && !has &&
		    sqlite3_exec(db, upgrades[i].add, NULL, NULL, NULL) !=
			    SQLITE_OK)
			rc = db_fail(err, db, upgrades[i].add);
	}
	if (rc == 0 &&
	    sqlite3_exec(db, schema_late, NULL, NULL, NULL) != SQLITE_OK)
		rc = db_fail(err, db, "upgrade");
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = db_fail(err, db, "upgrade");
	if (rc < 0)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int index_open(const char *path, struct index **out, struct mfs_error *err)
{
	struct index *ix = NULL;
	struct handle *h;
	char *msg = NULL;
	int fd, rc;

	*out = NULL;
	/* Create the file ourselves so it is 0600 from the first byte. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return mfs_fail(err, MFS_E_IO, "index %s: %s", path,
				strerror(errno));
	fchmod(fd, 0600);
	close(fd);
	ix = calloc(1, sizeof(*ix));
	if (!ix || !(ix->path = strdup(path))) {
		free(ix);
		return mfs_fail(err, MFS_E_NOMEM, "out of memory");
	}
	pthread_mutex_init(&ix->lock, NULL);
	pthread_key_create(&ix->key, handle_destroy);
	h = handle_get(ix, err);
	if (!h) {
		rc = err ? err->code : MFS_E_IO;
		goto fail;
	}
	if (sqlite3_exec(h->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		rc = mfs_fail(err, MFS_E_IO, "index schema: %s",
			      msg ? msg : "?");
		sqlite3_free(msg);
		goto fail;
	}
	rc = upgrade(h->db, err);
	if (rc < 0)
		goto fail;
	*out = ix;
	return 0;
fail:
	index_close(ix);
	return rc;
}

void index_close(struct index *ix)
{
	if (!ix)
		return;
	pthread_setspecific(ix->key, NULL);
	pthread_mutex_lock(&ix->lock);
	while (ix->handles) {
		struct handle *h = ix->handles;

		ix->handles = h->next;
		handle_free(h);
	}
	pthread_mutex_unlock(&ix->lock);
	pthread_key_delete(ix->key);
	pthread_mutex_destroy(&ix->lock);
	free(ix->path);
	free(ix);
}

static int exec(struct index *ix, const char *sql, struct mfs_error *err)
{
	struct handle *h = handle_get(ix, err);

	if (!h)
		return MFS_E_NOMEM;
	if (sqlite3_exec(h->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(err, h->db, sql);
	return 0;
}

int index_begin(struct index *ix, struct mfs_error *err)
{
	return exec(ix, "BEGIN IMMEDIATE", err);
}

int index_commit(struct index *ix, struct mfs_error *err)
{
	return exec(ix, "COMMIT", err);
}

void index_rollback(struct index *ix)
{
	exec(ix, "ROLLBACK", NULL);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* Run a SELECT, handing each row to row(); stops early on a non-zero
 * return.  With want_one, no row at all is MFS_E_NOTFOUND. */
static int run_query(sqlite3_stmt *st, int (*row)(sqlite3_stmt *, void *,
						   void *),
		     void *fn, void *ctx, bool want_one, struct mfs_error *err)
{
	int rc, n = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		rc = row(st, fn, ctx);
		if (rc) {
			sqlite3_reset(st);
			return rc;
		}
	}
	if (rc != SQLITE_DONE) {
		rc = db_fail(err, sqlite3_db_handle(st), "query");
		sqlite3_reset(st);
		return rc;
	}
	sqlite3_reset(st);
	return (want_one && n == 0) ? MFS_E_NOTFOUND : 0;
}

#define FOLDER_COLS \
	"id, parent, wire, name, delim, flags, uidvalidity, uidnext," \
	" highestmodseq, synced"

static int folder_row(sqlite3_stmt *st, void *fn, void *ctx)
{
	struct ix_folder f = {
		.id = sqlite3_column_int64(st, 0),
		.parent = sqlite3_column_int64(st, 1),
		.wire = col_text(st, 2),
		.name = col_text(st, 3),
		.delim = (char)sqlite3_column_int(st, 4),
		.flags = (unsigned)sqlite3_column_int(st, 5),
		.uidvalidity = (uint32_t)sqlite3_column_int64(st, 6),
		.uidnext = (uint32_t)sqlite3_column_int64(st, 7),
		.highestmodseq = (uint64_t)sqlite3_column_int64(st, 8),
		.synced = sqlite3_column_int(st, 9) != 0,
	};

	return ((ix_folder_fn)fn)(ctx, &f);
}

int index_folder_get(struct index *ix, int64_t id, ix_folder_fn fn, void *ctx,
		     struct mfs_error *err)
{
	static const char sql[] =
		"SELECT " FOLDER_COLS " FROM folders WHERE id = ?";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, id);
	return run_query(st, folder_row, (void *)fn, ctx, true, err);
}

int index_folder_by_name(struct index *ix, int64_t parent, const char *name,
			 ix_folder_fn fn, void *ctx, struct mfs_error *err)
{
	static const char sql[] = "SELECT " FOLDER_COLS
				  " FROM folders WHERE parent = ? AND name = ?";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, parent);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	return run_query(st, folder_row, (void *)fn, ctx, true, err);
}

int index_folder_children(struct index *ix, int64_t parent, ix_folder_fn fn,
			  void *ctx, struct mfs_error *err)
{
	static const char sql[] = "SELECT " FOLDER_COLS
				  " FROM folders WHERE parent = ? ORDER BY name";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, parent);
	return run_query(st, folder_row, (void *)fn, ctx, false, err);
}

int index_folder_all(struct index *ix, ix_folder_fn fn, void *ctx,
		     struct mfs_error *err)
{
	static const char sql[] = "SELECT " FOLDER_COLS
				  " FROM folders ORDER BY id";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	return run_query(st, folder_row, (void *)fn, ctx, false, err);
}

/* ?1..?5 of a folder row: parent, name, wire (NULL: none), delim, flags. */
static void bind_folder(sqlite3_stmt *st, int64_t parent, const char *name,
			const char *wire, char delim, unsigned flags)
{
	sqlite3_bind_int64(st, 1, parent);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (wire)
		sqlite3_bind_text(st, 3, wire, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 3);
	sqlite3_bind_int(st, 4, delim);
	sqlite3_bind_int(st, 5, (int)flags);
}

int index_folder_put(struct index *ix, int64_t parent, const char *name,
		     const char *wire, char delim, unsigned flags, int64_t *id,
		     struct mfs_error *err)
{
	/* An implied directory (wire NULL) never overwrites what a real
	 * LIST entry said about the same path. */
	static const char sql[] =
		"INSERT INTO folders(parent, name, wire, delim, flags)"
		" VALUES(?1, ?2, ?3, ?4, ?5)"
		" ON CONFLICT(parent, name) DO UPDATE SET"
		"  wire = coalesce(?3, wire),"
		"  delim = CASE WHEN ?3 IS NULL THEN delim ELSE ?4 END,"
		"  flags = CASE WHEN ?3 IS NULL THEN flags ELSE ?5 END"
		" RETURNING id";
	sqlite3_stmt *st = stmt(ix, sql, err);
	int rc;

	if (!st)
		return MFS_E_IO;
	bind_folder(st, parent, name, wire, delim, flags);
	rc = step_row(st, "folder put", err);
	if (rc < 0)
		return rc;
	*id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

/* A folder row's place, its name copied. */
struct place {
	int64_t id, parent;
	bool implied;		/* wire is NULL */
	char *name;
};

static int place_get(sqlite3_stmt *st, struct place *p,
		     struct mfs_error *err)
{
	const char *name;
	int rc = step_row(st, "folder place", err);

	if (rc < 0)
		return rc;
	p->id = sqlite3_column_int64(st, 0);
	p->parent = sqlite3_column_int64(st, 1);
	p->implied = sqlite3_column_type(st, 2) == SQLITE_NULL;
	name = (const char *)sqlite3_column_text(st, 3);
	p->name = strdup(name ? name : "");
	sqlite3_reset(st);
	return p->name ? 0 : mfs_fail(err, MFS_E_NOMEM, "out of memory");
}

static int place_by_wire(struct index *ix, const char *wire, struct place *p,
			 struct mfs_error *err)
{
	static const char sql[] =
		"SELECT id, parent, wire, name FROM folders WHERE wire = ?"
		" ORDER BY id LIMIT 1";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_text(st, 1, wire, -1, SQLITE_STATIC);
	return place_get(st, p, err);
}

static int place_by_name(struct index *ix, int64_t parent, const char *name,
			 struct place *p, struct mfs_error *err)
{
	static const char sql[] =
		"SELECT id, parent, wire, name FROM folders"
		" WHERE parent = ? AND name = ?";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, parent);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	return place_get(st, p, err);
}

/* A row set aside has a name no cleaning produces (a control character
 * first); it was reported when it was set aside. */
static bool set_aside(const struct place *p)
{
	return p->name[0] == '\1';
}

static int report_moved(const struct place *p, ix_folder_fn moved, void *ctx)
{
	struct ix_folder f = { .id = p->id, .parent = p->parent,
			       .name = p->name };

	if (!moved || set_aside(p))
		return 0;
	return moved(ctx, &f);
}

/* Free (parent, name) of any row but keep. */
static int place_clear(struct index *ix, int64_t parent, const char *name,
		       int64_t keep, ix_folder_fn moved, void *ctx,
		       struct mfs_error *err)
{
	static const char sql[] =
		"UPDATE folders SET name = char(1) || id WHERE id = ?";
	struct place q = { 0 };
	sqlite3_stmt *st;
	int rc;

	rc = place_by_name(ix, parent, name, &q, err);
	if (rc == MFS_E_NOTFOUND || (rc == 0 && q.id == keep)) {
		free(q.name);
		return 0;
	}
	if (rc == 0)
		rc = report_moved(&q, moved, ctx);
	if (rc == 0 && !(st = stmt(ix, sql, err)))
		rc = MFS_E_IO;
	if (rc == 0) {
		sqlite3_bind_int64(st, 1, q.id);
		rc = step_done(ix, st, err);
	}
	free(q.name);
	return rc;
}

int index_folder_place(struct index *ix, int64_t parent, const char *name,
		       const char *wire, char delim, unsigned flags,
		       int64_t *id, ix_folder_fn moved, void *ctx,
		       struct mfs_error *err)
{
	static const char move_sql[] =
		"UPDATE folders SET parent = ?1, name = ?2, wire = ?3,"
		" delim = ?4, flags = ?5 WHERE id = ?6";
	static const char insert_sql[] =
		"INSERT INTO folders(parent, name, wire, delim, flags)"
		" VALUES(?1, ?2, ?3, ?4, ?5) RETURNING id";
	struct place p = { 0 };
	sqlite3_stmt *st;
	int rc;

	rc = wire ? place_by_wire(ix, wire, &p, err) :
		    place_by_name(ix, parent, name, &p, err);
	if (rc == 0 && !wire && !p.implied) {
		/* A server folder shown here before: it is elsewhere now,
		 * or gone; this directory is a new row. */
		free(p.name);
		p.name = NULL;
		rc = MFS_E_NOTFOUND;
	}
	if (rc == MFS_E_NOTFOUND && wire) {
		/* A directory implied before may be listed now. */
		rc = place_by_name(ix, parent, name, &p, err);
		if (rc == 0 && !p.implied) {
			free(p.name);
			p.name = NULL;
			rc = MFS_E_NOTFOUND;
		}
	}
	if (rc < 0 && rc != MFS_E_NOTFOUND)
		goto out;
	if (rc == 0 && !wire) {
		/* A directory stays as it was. */
		*id = p.id;
		goto out;
	}
	if (rc == 0 && (p.parent != parent || strcmp(p.name, name) != 0)) {
		rc = place_clear(ix, parent, name, p.id, moved, ctx, err);
		if (rc == 0)
			rc = report_moved(&p, moved, ctx);
		if (rc < 0)
			goto out;
	}
	if (rc == MFS_E_NOTFOUND) {
		rc = place_clear(ix, parent, name, 0, moved, ctx, err);
		if (rc < 0)
			goto out;
		p.id = 0;
	}
	st = stmt(ix, p.id ? move_sql : insert_sql, err);
	if (!st) {
		rc = MFS_E_IO;
		goto out;
	}
	bind_folder(st, parent, name, wire, delim, flags);
	if (p.id) {
		sqlite3_bind_int64(st, 6, p.id);
		rc = step_done(ix, st, err);
		*id = p.id;
	} else {
		rc = step_row(st, "folder place", err);
		if (rc == 0) {
			*id = sqlite3_column_int64(st, 0);
			sqlite3_reset(st);
		}
	}
out:
	free(p.name);
	return rc;
}

int index_folder_set_state(struct index *ix, int64_t id, uint32_t uidvalidity,
			   uint32_t uidnext, uint64_t highestmodseq,
			   struct mfs_error *err)
{
	static const char sql[] =
		"UPDATE folders SET uidvalidity = ?, uidnext = ?,"
		" highestmodseq = ?, synced = 1 WHERE id = ?";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, uidvalidity);
	sqlite3_bind_int64(st, 2, uidnext);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)highestmodseq);
	sqlite3_bind_int64(st, 4, id);
	return step_done(ix, st, err);
}

static int delete_folder_rows(struct index *ix, int64_t id,
			      struct mfs_error *err)
{
	static const char *const sqls[] = {
		"DELETE FROM messages WHERE folder = ?",
		"DELETE FROM parts WHERE folder = ?",
		"DELETE FROM cache WHERE folder = ?",
		"DELETE FROM folders WHERE id = ?",
	};
	int rc;

	for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++) {
		sqlite3_stmt *st = stmt(ix, sqls[i], err);

		if (!st)
			return MFS_E_IO;
		sqlite3_bind_int64(st, 1, id);
		rc = step_done(ix, st, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int index_folder_drop(struct index *ix, int64_t id, bool renew,
		      int64_t *new_id, struct mfs_error *err)
{
	static const char copy_sql[] =
		"INSERT INTO folders(parent, name, wire, delim, flags)"
		" SELECT parent, name || char(1), wire, delim, flags"
		" FROM folders WHERE id = ? RETURNING id";
	static const char fix_sql[] =
		"UPDATE folders SET name = substr(name, 1, length(name) - 1)"
		" WHERE id = ?";
	static const char reparent_sql[] =
		"UPDATE folders SET parent = ? WHERE parent = ?";
	sqlite3_stmt *st;
	int64_t nid = 0;
	int rc;

	if (renew) {
		/* Insert the successor under a temporary name first: the
		 * (parent, name) key is still held by the old row. */
		st = stmt(ix, copy_sql, err);
		if (!st)
			return MFS_E_IO;
		sqlite3_bind_int64(st, 1, id);
		if (sqlite3_step(st) != SQLITE_ROW) {
			rc = db_fail(err, sqlite3_db_handle(st), "folder renew");
			sqlite3_reset(st);
			return rc;
		}
		nid = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		st = stmt(ix, reparent_sql, err);
		if (!st)
			return MFS_E_IO;
		sqlite3_bind_int64(st, 1, nid);
		sqlite3_bind_int64(st, 2, id);
		if ((rc = step_done(ix, st, err)) < 0)
			return rc;
	}
	rc = delete_folder_rows(ix, id, err);
	if (rc < 0 || !renew)
		return rc;
	st = stmt(ix, fix_sql, err);
	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, nid);
	rc = step_done(ix, st, err);
	if (rc == 0 && new_id)
		*new_id = nid;
	return rc;
}

int index_folder_rename(struct index *ix, int64_t id, int64_t new_parent,
			const char *new_name, const char *old_wire,
			const char *new_wire, char delim,
			struct mfs_error *err)
{
	static const char row_sql[] =
		"UPDATE folders SET parent = ?, name = ? WHERE id = ?";
	static const char wire_sql[] =
		"UPDATE folders SET wire = ?1 || substr(wire, length(?2) + 1)"
		" WHERE wire = ?2 OR substr(wire, 1, length(?2) + 1) = ?2 || ?3";
	char d[2] = { delim, 0 };
	sqlite3_stmt *st;
	int rc;

	st = stmt(ix, row_sql, err);
	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, new_parent);
	sqlite3_bind_text(st, 2, new_name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, id);
	rc = step_done(ix, st, err);
	if (rc < 0)
		return rc;
	st = stmt(ix, wire_sql, err);
	if (!st)
		return MFS_E_IO;
	sqlite3_bind_text(st, 1, new_wire, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, old_wire, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, d, -1, SQLITE_STATIC);
	return step_done(ix, st, err);
}

int index_folder_counts(struct index *ix, int64_t id, unsigned *messages,
			unsigned *children, struct mfs_error *err)
{
	static const char sql[] =
		"SELECT (SELECT count(*) FROM messages WHERE folder = ?1),"
		" (SELECT count(*) FROM folders WHERE parent = ?1)";
	sqlite3_stmt *st = stmt(ix, sql, err);
	int rc;

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, id);
	rc = step_row(st, "counts", err);
	if (rc < 0)
		return rc;
	*messages = (unsigned)sqlite3_column_int(st, 0);
	*children = (unsigned)sqlite3_column_int(st, 1);
	sqlite3_reset(st);
	return 0;
}

#define MSG_COLS                                                       \
	"folder, uid, size, date, flags, message_id, name, parts_known," \
	" sender, subject, internaldate"

static int msg_row(sqlite3_stmt *st, void *fn, void *ctx)
{
	struct ix_msg m = {
		.folder = sqlite3_column_int64(st, 0),
		.uid = (uint32_t)sqlite3_column_int64(st, 1),
		.size = (uint64_t)sqlite3_column_int64(st, 2),
		.date = sqlite3_column_int64(st, 3),
		.flags = col_text(st, 4),
		.message_id = col_text(st, 5),
		.name = col_text(st, 6),
		.parts_known = sqlite3_column_int(st, 7) != 0,
		.sender = col_text(st, 8),
		.subject = col_text(st, 9),
		.internaldate = sqlite3_column_int64(st, 10),
		.unfilled = sqlite3_column_type(st, 10) == SQLITE_NULL,
	};

	return ((ix_msg_fn)fn)(ctx, &m);
}

int index_msg_get(struct index *ix, int64_t folder, uint32_t uid,
		  ix_msg_fn fn, void *ctx, struct mfs_error *err)
{
	static const char sql[] = "SELECT " MSG_COLS
				  " FROM messages WHERE folder = ? AND uid = ?";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_int64(st, 2, uid);
	return run_query(st, msg_row, (void *)fn, ctx, true, err);
}

int index_msg_by_name(struct index *ix, int64_t folder, const char *name,
		      ix_msg_fn fn, void *ctx, struct mfs_error *err)
{
	/* Without statistics SQLite prefers the primary key's folder prefix
	 * and scans the folder; the name index is what answers this. */
	static const char sql[] = "SELECT " MSG_COLS
				  " FROM messages INDEXED BY messages_name"
				  " WHERE folder = ? AND name = ?";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	return run_query(st, msg_row, (void *)fn, ctx, true, err);
}

int index_msg_list(struct index *ix, int64_t folder, ix_msg_fn fn, void *ctx,
		   struct mfs_error *err)
{
	static const char sql[] = "SELECT " MSG_COLS
				  " FROM messages INDEXED BY messages_name"
				  " WHERE folder = ? ORDER BY name";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	return run_query(st, msg_row, (void *)fn, ctx, false, err);
}

int index_msg_after(struct index *ix, int64_t folder, uint32_t uid,
		    unsigned limit, ix_msg_fn fn, void *ctx,
		    struct mfs_error *err)
{
	static const char sql[] =
		"SELECT " MSG_COLS " FROM messages INDEXED BY messages_name"
		" WHERE folder = ?1 AND name >"
		" (SELECT name FROM messages WHERE folder = ?1 AND uid = ?2)"
		" ORDER BY name LIMIT ?3";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int(st, 3, (int)limit);
	return run_query(st, msg_row, (void *)fn, ctx, false, err);
}

int index_msg_put(struct index *ix, const struct ix_msg *m,
		  struct mfs_error *err)
{
	static const char sql[] =
		"INSERT OR REPLACE INTO messages(" MSG_COLS ")"
		" VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, m->folder);
	sqlite3_bind_int64(st, 2, m->uid);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)m->size);
	sqlite3_bind_int64(st, 4, m->date);
	sqlite3_bind_text(st, 5, m->flags ? m->flags : "", -1, SQLITE_STATIC);
	if (m->message_id)
		sqlite3_bind_text(st, 6, m->message_id, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 6);
	sqlite3_bind_text(st, 7, m->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 8, m->parts_known);
	/* Unbound parameters are NULL. */
	if (m->sender)
		sqlite3_bind_text(st, 9, m->sender, -1, SQLITE_STATIC);
	if (m->subject)
		sqlite3_bind_text(st, 10, m->subject, -1, SQLITE_STATIC);
	if (!m->unfilled)
		sqlite3_bind_int64(st, 11, m->internaldate);
	return step_done(ix, st, err);
}

int index_msg_unfilled(struct index *ix, int64_t folder, uint32_t *lo,
		       uint32_t *hi, struct mfs_error *err)
{
	static const char sql[] =
		"SELECT min(uid), max(uid) FROM messages INDEXED BY"
		" messages_unfilled WHERE folder = ? AND internaldate IS NULL";
	sqlite3_stmt *st = stmt(ix, sql, err);
	int rc;

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	rc = step_row(st, "unfilled", err);
	if (rc < 0)
		return rc;
	/* An aggregate always has its row: NULL when nothing matched. */
	if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
		rc = MFS_E_NOTFOUND;
	} else {
		*lo = (uint32_t)sqlite3_column_int64(st, 0);
		*hi = (uint32_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return rc;
}

int index_msg_fill(struct index *ix, int64_t folder, uint32_t uid,
		   const char *sender, const char *subject,
		   int64_t internaldate, struct mfs_error *err)
{
	static const char sql[] =
		"UPDATE messages SET sender = ?, subject = ?, internaldate = ?"
		" WHERE folder = ? AND uid = ? AND internaldate IS NULL";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	if (sender)
		sqlite3_bind_text(st, 1, sender, -1, SQLITE_STATIC);
	if (subject)
		sqlite3_bind_text(st, 2, subject, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, internaldate);
	sqlite3_bind_int64(st, 4, folder);
	sqlite3_bind_int64(st, 5, uid);
	return step_done(ix, st, err);
}

static int update_msg(struct index *ix, const char *sql, int64_t folder,
		      uint32_t uid, const char *text, int64_t num,
		      struct mfs_error *err)
{
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	if (text)
		sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, num);
	sqlite3_bind_int64(st, 2, folder);
	sqlite3_bind_int64(st, 3, uid);
	return step_done(ix, st, err);
}

int index_msg_set_flags(struct index *ix, int64_t folder, uint32_t uid,
			const char *flags, struct mfs_error *err)
{
	static const char sql[] =
		"UPDATE messages SET flags = ? WHERE folder = ? AND uid = ?";

	return update_msg(ix, sql, folder, uid, flags ? flags : "", 0, err);
}

int index_msg_set_size(struct index *ix, int64_t folder, uint32_t uid,
		       uint64_t size, struct mfs_error *err)
{
	static const char sql[] =
		"UPDATE messages SET size = ? WHERE folder = ? AND uid = ?";

	return update_msg(ix, sql, folder, uid, NULL, (int64_t)size, err);
}

int index_msg_delete(struct index *ix, int64_t folder, uint32_t uid,
		     struct mfs_error *err)
{
	static const char *const sqls[] = {
		"DELETE FROM messages WHERE folder = ? AND uid = ?",
		"DELETE FROM parts WHERE folder = ? AND uid = ?",
	};
	int rc;

	for (size_t i = 0; i < 2; i++) {
		sqlite3_stmt *st = stmt(ix, sqls[i], err);

		if (!st)
			return MFS_E_IO;
		sqlite3_bind_int64(st, 1, folder);
		sqlite3_bind_int64(st, 2, uid);
		if ((rc = step_done(ix, st, err)) < 0)
			return rc;
	}
	return 0;
}

int index_msg_max_uid(struct index *ix, int64_t folder, uint32_t *uid,
		      struct mfs_error *err)
{
	static const char sql[] =
		"SELECT coalesce(max(uid), 0) FROM messages WHERE folder = ?";
	sqlite3_stmt *st = stmt(ix, sql, err);
	int rc;

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	rc = step_row(st, "max uid", err);
	if (rc < 0)
		return rc;
	*uid = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

int index_parts_set(struct index *ix, int64_t folder, uint32_t uid,
		    const struct ix_part *parts, unsigned n,
		    struct mfs_error *err)
{
	static const char del_sql[] =
		"DELETE FROM parts WHERE folder = ? AND uid = ?";
	static const char ins_sql[] =
		"INSERT INTO parts(folder, uid, n, name, type, size)"
		" VALUES(?, ?, ?, ?, ?, ?)";
	static const char known_sql[] =
		"UPDATE messages SET parts_known = 1 WHERE folder = ? AND uid = ?";
	/* Parts stored before are not these: their file goes. */
	static const char views_sql[] =
		"UPDATE cache SET views = NULL WHERE folder = ? AND uid = ?";
	sqlite3_stmt *st;
	int rc;

	rc = index_begin(ix, err);
	if (rc < 0)
		return rc;
	st = stmt(ix, del_sql, err);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_int64(st, 2, uid);
	if (step_done(ix, st, err) < 0)
		goto fail;
	for (unsigned i = 0; i < n; i++) {
		st = stmt(ix, ins_sql, err);
		if (!st)
			goto fail;
		sqlite3_bind_int64(st, 1, folder);
		sqlite3_bind_int64(st, 2, uid);
		sqlite3_bind_int(st, 3, (int)parts[i].n);
		sqlite3_bind_text(st, 4, parts[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, parts[i].type, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)parts[i].size);
		if (step_done(ix, st, err) < 0)
			goto fail;
	}
	for (int i = 0; i < 2; i++) {
		st = stmt(ix, i == 0 ? known_sql : views_sql, err);
		if (!st)
			goto fail;
		sqlite3_bind_int64(st, 1, folder);
		sqlite3_bind_int64(st, 2, uid);
		if (step_done(ix, st, err) < 0)
			goto fail;
	}
	return index_commit(ix, err);
fail:
	index_rollback(ix);
	return MFS_E_IO;
}

/* Rows the last statement on st's connection changed. */
static int changes(sqlite3_stmt *st)
{
	return sqlite3_changes(sqlite3_db_handle(st));
}

int index_views_set(struct index *ix, int64_t folder, uint32_t uid,
		    const struct ix_part *parts, const uint64_t *off,
		    unsigned n, uint64_t total, struct mfs_error *err)
{
	static const char count_sql[] =
		"SELECT count(*) FROM parts WHERE folder = ? AND uid = ?";
	static const char off_sql[] =
		"UPDATE parts SET off = ? WHERE folder = ? AND uid = ?"
		" AND n = ? AND name = ? AND size = ?";
	static const char views_sql[] =
		"UPDATE cache SET views = ? WHERE folder = ? AND uid = ?";
	sqlite3_stmt *st;
	int rc;

	rc = index_begin(ix, err);
	if (rc < 0)
		return rc;
	st = stmt(ix, count_sql, err);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_int64(st, 2, uid);
	rc = step_row(st, "parts count", err);
	if (rc < 0)
		goto fail;
	rc = sqlite3_column_int64(st, 0) == (sqlite3_int64)n ? 0 :
							      MFS_E_NOTFOUND;
	sqlite3_reset(st);
	for (unsigned i = 0; rc == 0 && i < n; i++) {
		st = stmt(ix, off_sql, err);
		if (!st)
			goto fail;
		sqlite3_bind_int64(st, 1, (sqlite3_int64)off[i]);
		sqlite3_bind_int64(st, 2, folder);
		sqlite3_bind_int64(st, 3, uid);
		sqlite3_bind_int(st, 4, (int)parts[i].n);
		sqlite3_bind_text(st, 5, parts[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)parts[i].size);
		if ((rc = step_done(ix, st, err)) < 0)
			goto fail;
		if (changes(st) != 1)
			rc = MFS_E_NOTFOUND;
	}
	if (rc == 0) {
		st = stmt(ix, views_sql, err);
		if (!st)
			goto fail;
		sqlite3_bind_int64(st, 1, (sqlite3_int64)total);
		sqlite3_bind_int64(st, 2, folder);
		sqlite3_bind_int64(st, 3, uid);
		if ((rc = step_done(ix, st, err)) < 0)
			goto fail;
		if (changes(st) != 1)
			rc = MFS_E_NOTFOUND;
	}
	if (rc < 0) {
		index_rollback(ix);
		return rc;
	}
	return index_commit(ix, err);
fail:
	index_rollback(ix);
	return rc < 0 ? rc : MFS_E_IO;
}

int index_views_clear(struct index *ix, int64_t folder, uint32_t uid,
		      struct mfs_error *err)
{
	static const char sql[] =
		"UPDATE cache SET views = NULL WHERE folder = ? AND uid = ?";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_int64(st, 2, uid);
	return step_done(ix, st, err);
}

int index_views_get(struct index *ix, int64_t folder, uint32_t uid,
		    uint64_t *total, struct mfs_error *err)
{
	static const char sql[] =
		"SELECT views FROM cache WHERE folder = ? AND uid = ?"
		" AND views IS NOT NULL";
	sqlite3_stmt *st = stmt(ix, sql, err);
	int rc;

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_int64(st, 2, uid);
	rc = step_row(st, "views", err);
	if (rc < 0)
		return rc;
	*total = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

int index_part_view(struct index *ix, int64_t folder, uint32_t uid,
		    unsigned n, uint64_t *off, uint64_t *size,
		    uint64_t *total, struct mfs_error *err)
{
	static const char sql[] =
		"SELECT p.off, p.size, c.views FROM parts p JOIN cache c"
		" ON c.folder = p.folder AND c.uid = p.uid"
		" WHERE p.folder = ? AND p.uid = ? AND p.n = ?"
		" AND p.off IS NOT NULL AND c.views IS NOT NULL";
	sqlite3_stmt *st = stmt(ix, sql, err);
	int rc;

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int(st, 3, (int)n);
	rc = step_row(st, "part view", err);
	if (rc < 0)
		return rc;
	*off = (uint64_t)sqlite3_column_int64(st, 0);
	*size = (uint64_t)sqlite3_column_int64(st, 1);
	*total = (uint64_t)sqlite3_column_int64(st, 2);
	sqlite3_reset(st);
	return 0;
}

static int part_row(sqlite3_stmt *st, void *fn, void *ctx)
{
	struct ix_part p = {
		.n = (unsigned)sqlite3_column_int(st, 0),
		.name = col_text(st, 1),
		.type = col_text(st, 2),
		.size = (uint64_t)sqlite3_column_int64(st, 3),
	};

	return ((ix_part_fn)fn)(ctx, &p);
}

int index_parts_list(struct index *ix, int64_t folder, uint32_t uid,
		     ix_part_fn fn, void *ctx, struct mfs_error *err)
{
	static const char sql[] = "SELECT n, name, type, size FROM parts"
				  " WHERE folder = ? AND uid = ? ORDER BY n";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_int64(st, 2, uid);
	return run_query(st, part_row, (void *)fn, ctx, false, err);
}

int index_part_by_name(struct index *ix, int64_t folder, uint32_t uid,
		       const char *name, ix_part_fn fn, void *ctx,
		       struct mfs_error *err)
{
	static const char sql[] =
		"SELECT n, name, type, size FROM parts"
		" WHERE folder = ? AND uid = ? AND name = ?";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	return run_query(st, part_row, (void *)fn, ctx, true, err);
}

int index_part_get(struct index *ix, int64_t folder, uint32_t uid, unsigned n,
		   ix_part_fn fn, void *ctx, struct mfs_error *err)
{
	static const char sql[] = "SELECT n, name, type, size FROM parts"
				  " WHERE folder = ? AND uid = ? AND n = ?";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int(st, 3, (int)n);
	return run_query(st, part_row, (void *)fn, ctx, true, err);
}

/* A clock for LRU order that never goes backwards within one index. */
static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int index_cache_add(struct index *ix, int64_t folder, uint32_t uid,
		    uint64_t bytes, struct mfs_error *err)
{
	static const char sql[] =
		"INSERT INTO cache(folder, uid, bytes, used) VALUES(?, ?, ?, ?)"
		" ON CONFLICT(folder, uid) DO UPDATE"
		" SET bytes = excluded.bytes, used = excluded.used";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)bytes);
	sqlite3_bind_int64(st, 4, now_ms());
	return step_done(ix, st, err);
}

int index_cache_touch(struct index *ix, int64_t folder, uint32_t uid,
		      struct mfs_error *err)
{
	static const char sql[] =
		"UPDATE cache SET used = ? WHERE folder = ? AND uid = ?";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, now_ms());
	sqlite3_bind_int64(st, 2, folder);
	sqlite3_bind_int64(st, 3, uid);
	return step_done(ix, st, err);
}

int index_cache_adopt(struct index *ix, int64_t folder, uint32_t uid,
		      uint64_t bytes, struct mfs_error *err)
{
	static const char sql[] =
		"INSERT OR IGNORE INTO cache(folder, uid, bytes, used)"
		" VALUES(?, ?, ?, 0)";
	sqlite3_stmt *st = stmt(ix, sql, err);
	int rc;

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)bytes);
	rc = step_done(ix, st, err);
	return rc < 0 ? rc : sqlite3_changes(sqlite3_db_handle(st)) > 0;
}

int index_cache_remove(struct index *ix, int64_t folder, uint32_t uid,
		       uint64_t *bytes, struct mfs_error *err)
{
	static const char sql[] =
		"DELETE FROM cache WHERE folder = ? AND uid = ?"
		" RETURNING bytes + coalesce(views, 0)";
	sqlite3_stmt *st = stmt(ix, sql, err);
	int rc;

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	sqlite3_bind_int64(st, 2, uid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (bytes)
			*bytes = (uint64_t)sqlite3_column_int64(st, 0);
		rc = sqlite3_step(st);
	} else if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		return 0;
	}
	if (rc != SQLITE_DONE) {
		rc = db_fail(err, sqlite3_db_handle(st), "cache remove");
		sqlite3_reset(st);
		return rc;
	}
	sqlite3_reset(st);
	return 1;
}

int index_cache_total(struct index *ix, uint64_t *bytes,
		      struct mfs_error *err)
{
	static const char sql[] =
		"SELECT coalesce(sum(bytes + coalesce(views, 0)), 0) FROM cache";
	sqlite3_stmt *st = stmt(ix, sql, err);
	int rc;

	if (!st)
		return MFS_E_IO;
	rc = step_row(st, "cache total", err);
	if (rc < 0)
		return rc;
	*bytes = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

int index_cache_count(struct index *ix, int64_t folder, uint64_t *count,
		      uint64_t *bytes, struct mfs_error *err)
{
	static const char sql[] = "SELECT count(*), coalesce(sum(bytes), 0) "
				  "FROM cache WHERE ?1 = 0 OR folder = ?1";
	sqlite3_stmt *st = stmt(ix, sql, err);
	int rc;

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int64(st, 1, folder);
	rc = step_row(st, "cache count", err);
	if (rc < 0)
		return rc;
	*count = (uint64_t)sqlite3_column_int64(st, 0);
	*bytes = (uint64_t)sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	return 0;
}

int index_views_count(struct index *ix, uint64_t *count, uint64_t *bytes,
		      struct mfs_error *err)
{
	static const char sql[] = "SELECT count(*), coalesce(sum(views), 0)"
				  " FROM cache WHERE views IS NOT NULL";
	sqlite3_stmt *st = stmt(ix, sql, err);
	int rc;

	if (!st)
		return MFS_E_IO;
	rc = step_row(st, "views count", err);
	if (rc < 0)
		return rc;
	*count = (uint64_t)sqlite3_column_int64(st, 0);
	*bytes = (uint64_t)sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	return 0;
}

int index_cache_oldest(struct index *ix, unsigned skip, int64_t *folder,
		       uint32_t *uid, uint64_t *bytes, struct mfs_error *err)
{
	static const char sql[] =
		"SELECT folder, uid, bytes + coalesce(views, 0) FROM cache"
		" ORDER BY used LIMIT 1 OFFSET ?";
	sqlite3_stmt *st = stmt(ix, sql, err);
	int rc;

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_int(st, 1, (int)skip);
	rc = step_row(st, "cache oldest", err);
	if (rc < 0)
		return rc;
	*folder = sqlite3_column_int64(st, 0);
	*uid = (uint32_t)sqlite3_column_int64(st, 1);
	*bytes = (uint64_t)sqlite3_column_int64(st, 2);
	sqlite3_reset(st);
	return 0;
}

int index_meta_get(struct index *ix, const char *key, char *buf, size_t cap,
		   struct mfs_error *err)
{
	static const char sql[] = "SELECT value FROM meta WHERE key = ?";
	sqlite3_stmt *st = stmt(ix, sql, err);
	const char *v;
	int rc;

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = step_row(st, "meta", err);
	if (rc < 0)
		return rc;
	v = col_text(st, 0);
	rc = v && strlen(v) < cap ? 0 : MFS_E_TOOBIG;
	if (rc == 0)
		memcpy(buf, v, strlen(v) + 1);
	sqlite3_reset(st);
	return rc;
}

int index_meta_set(struct index *ix, const char *key, const char *value,
		   struct mfs_error *err)
{
	static const char sql[] =
		"INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)";
	sqlite3_stmt *st = stmt(ix, sql, err);

	if (!st)
		return MFS_E_IO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	return step_done(ix, st, err);
}
