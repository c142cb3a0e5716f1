/* test_index.c - the SQLite index on a temporary file: folders with
 * hierarchy, UIDVALIDITY renewal, messages by name, parts, cache LRU,
 * concurrent readers on other threads, and the upgrade of an index made
 * by an earlier version. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "index.h"

struct got {
	int n;
	int64_t id;
	char name[300];
	uint64_t size;
	uint32_t uid;
};

static int got_folder(void *ctx, const struct ix_folder *f)
{
	struct got *g = ctx;

	g->n++;
	g->id = f->id;
	snprintf(g->name, sizeof(g->name), "%s", f->name);
	return 0;
}

static int got_msg(void *ctx, const struct ix_msg *m)
{
	struct got *g = ctx;

	g->n++;
	g->uid = m->uid;
	g->size = m->size;
	snprintf(g->name, sizeof(g->name), "%s", m->name);
	return 0;
}

static int got_part(void *ctx, const struct ix_part *p)
{
	struct got *g = ctx;

	g->n++;
	g->uid = p->n;
	g->size = p->size;
	snprintf(g->name, sizeof(g->name), "%s", p->name);
	return 0;
}

/* A whole message row, its strings copied. */
struct row {
	int n;
	struct ix_msg m;
	char name[300], sender[300], subject[300], message_id[300];
	bool has_sender, has_subject;
};

static int got_row(void *ctx, const struct ix_msg *m)
{
	struct row *r = ctx;

	r->n++;
	r->m = *m;
	snprintf(r->name, sizeof(r->name), "%s", m->name);
	snprintf(r->message_id, sizeof(r->message_id), "%s",
		 m->message_id ? m->message_id : "");
	r->has_sender = m->sender != NULL;
	snprintf(r->sender, sizeof(r->sender), "%s",
		 m->sender ? m->sender : "");
	r->has_subject = m->subject != NULL;
	snprintf(r->subject, sizeof(r->subject), "%s",
		 m->subject ? m->subject : "");
	r->m.name = r->m.sender = r->m.subject = r->m.message_id = NULL;
	r->m.flags = NULL;
	return 0;
}

/* The schema of the first release, with two rows in it. */
static const char old_index[] =
	"PRAGMA journal_mode=WAL;"
	"CREATE TABLE folders("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" parent INTEGER NOT NULL, name TEXT NOT NULL, wire TEXT,"
	" delim INTEGER NOT NULL DEFAULT 0, flags INTEGER NOT NULL DEFAULT 0,"
	" uidvalidity INTEGER NOT NULL DEFAULT 0,"
	" uidnext INTEGER NOT NULL DEFAULT 0,"
	" highestmodseq INTEGER NOT NULL DEFAULT 0,"
	" synced INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE(parent, name));"
	"CREATE TABLE messages("
	" folder INTEGER NOT NULL, uid INTEGER NOT NULL,"
	" size INTEGER NOT NULL, date INTEGER NOT NULL,"
	" flags TEXT NOT NULL, message_id TEXT, name TEXT NOT NULL,"
	" parts_known INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY(folder, uid)) WITHOUT ROWID;"
	"CREATE INDEX messages_name ON messages(folder, name);"
	"CREATE TABLE parts("
	" folder INTEGER NOT NULL, uid INTEGER NOT NULL, n INTEGER NOT NULL,"
	" name TEXT NOT NULL, type TEXT NOT NULL, size INTEGER NOT NULL,"
	" PRIMARY KEY(folder, uid, n)) WITHOUT ROWID;"
	"CREATE INDEX parts_name ON parts(folder, uid, name);"
	"CREATE TABLE cache("
	" folder INTEGER NOT NULL, uid INTEGER NOT NULL,"
	" bytes INTEGER NOT NULL, used INTEGER NOT NULL,"
	" PRIMARY KEY(folder, uid)) WITHOUT ROWID;"
	"CREATE INDEX cache_used ON cache(used);"
	"INSERT INTO folders(parent, name, wire, delim, uidvalidity, uidnext,"
	" synced) VALUES(0, 'INBOX', 'INBOX', 47, 5, 13, 1);"
	"INSERT INTO messages VALUES(1, 3, 100, 1600000000, '\\Seen', 'm3@x',"
	" '2020-09-13 1226 Ann - Hi [3]', 1);"
	"INSERT INTO messages VALUES(1, 12, 200, 1600000100, '', NULL,"
	" '2020-09-13 1228 Bob - Yo [12]', 0);"
	"INSERT INTO parts VALUES(1, 3, 1, 'body.txt', 'text/plain', 5);"
	"INSERT INTO cache VALUES(1, 3, 100, 1);";

static void test_upgrade(const char *dir)
{
	char path[300];
	sqlite3 *db = NULL;
	struct index *ix = NULL;
	struct mfs_error err = { 0 };
	struct row r = { 0 };
	struct got g = { 0 };
	uint32_t lo = 0, hi = 0;
	int64_t inbox = 0;
	uint64_t total = 0, off = 0;
	struct ix_part parts[] = { { 1, "body.txt", "text/plain", 5 } };

	snprintf(path, sizeof(path), "%s/old.sqlite", dir);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK &&
		      sqlite3_exec(db, old_index, NULL, NULL, NULL) == SQLITE_OK,
	      "make an index with the first release's schema");
	sqlite3_close(db);

	CHECK(index_open(path, &ix, &err) == 0, "open it: upgraded (%s)",
	      err.msg);
	CHECK(index_folder_by_name(ix, 0, "INBOX", got_folder, &g, &err) == 0,
	      "its folder is there");
	inbox = g.id;
	CHECK(index_msg_get(ix, inbox, 3, got_row, &r, &err) == 0 &&
		      r.m.size == 100 && r.m.date == 1600000000 &&
		      r.m.parts_known &&
		      strcmp(r.name, "2020-09-13 1226 Ann - Hi [3]") == 0 &&
		      strcmp(r.message_id, "m3@x") == 0,
	      "an old row keeps size, date, name, message-id, parts_known");
	CHECK(r.m.unfilled && !r.has_sender && !r.has_subject &&
		      r.m.internaldate == 0,
	      "and reads as unfilled, sender and subject NULL");
	memset(&g, 0, sizeof(g));
	CHECK(index_msg_by_name(ix, inbox, "2020-09-13 1228 Bob - Yo [12]",
				got_msg, &g, &err) == 0 && g.uid == 12,
	      "old rows are found by name");
	memset(&g, 0, sizeof(g));
	CHECK(index_part_by_name(ix, inbox, 3, "body.txt", got_part, &g,
				 &err) == 0 && g.size == 5,
	      "old parts are kept");
	CHECK(index_msg_unfilled(ix, inbox, &lo, &hi, &err) == 0 && lo == 3 &&
		      hi == 12, "unfilled UIDs 3:12 (got %u:%u)", lo, hi);
	CHECK(index_cache_total(ix, &total, &err) == 0 && total == 100 &&
		      index_views_get(ix, inbox, 3, &total, &err) ==
			      MFS_E_NOTFOUND &&
		      index_part_view(ix, inbox, 3, 1, &off, &total, &total,
				      &err) == MFS_E_NOTFOUND,
	      "an old cache entry counts its body and has no parts file");
	CHECK(index_views_set(ix, inbox, 3, parts, &off, 1, 5, &err) == 0 &&
		      index_cache_total(ix, &total, &err) == 0 && total == 105,
	      "one can be recorded for it (%s)", err.msg);

	/* A put of a row read back (a refused delete) keeps it unfilled. */
	memset(&r, 0, sizeof(r));
	index_msg_get(ix, inbox, 12, got_row, &r, &err);
	r.m.name = r.name;
	r.m.flags = "";
	CHECK(index_msg_put(ix, &r.m, &err) == 0, "put an unfilled row back");
	memset(&r, 0, sizeof(r));
	index_msg_get(ix, inbox, 12, got_row, &r, &err);
	CHECK(r.n == 1 && r.m.unfilled, "it is still unfilled");

	CHECK(index_msg_fill(ix, inbox, 3, "Ann", "Hi", 1599999999, &err) == 0,
	      "fill UID 3");
	CHECK(index_msg_fill(ix, inbox, 3, "Other", "Other", 1, &err) == 0,
	      "fill UID 3 again");
	memset(&r, 0, sizeof(r));
	index_msg_get(ix, inbox, 3, got_row, &r, &err);
	CHECK(!r.m.unfilled && r.m.internaldate == 1599999999 &&
		      strcmp(r.sender, "Ann") == 0 &&
		      strcmp(r.subject, "Hi") == 0 &&
		      strcmp(r.name, "2020-09-13 1226 Ann - Hi [3]") == 0,
	      "filled once, the first time; name unchanged");
	CHECK(index_msg_fill(ix, inbox, 12, NULL, NULL, 0, &err) == 0,
	      "fill UID 12 with no From, no Subject, no INTERNALDATE");
	memset(&r, 0, sizeof(r));
	index_msg_get(ix, inbox, 12, got_row, &r, &err);
	CHECK(!r.m.unfilled && !r.has_sender && !r.has_subject,
	      "filled with NULLs and 0 is filled");
	CHECK(index_msg_unfilled(ix, inbox, &lo, &hi, &err) == MFS_E_NOTFOUND,
	      "nothing left unfilled");
	index_close(ix);
	ix = NULL;

	CHECK(index_open(path, &ix, &err) == 0, "reopen the upgraded index (%s)",
	      err.msg);
	memset(&r, 0, sizeof(r));
	CHECK(index_msg_get(ix, inbox, 3, got_row, &r, &err) == 0 &&
		      strcmp(r.sender, "Ann") == 0 &&
		      r.m.internaldate == 1599999999,
	      "filled values persist");
	index_close(ix);
}

/* Parts files: where each part lies, counted with the body, checked
 * against the parts the index has. */
static void test_views(const char *dir)
{
	char path[300];
	struct index *ix = NULL;
	struct mfs_error err = { 0 };
	struct ix_part parts[] = {
		{ 1, "body.txt", "text/plain", 10 },
		{ 2, "report.pdf", "application/pdf", 2000 },
	};
	struct ix_part other[] = {
		{ 1, "body.txt", "text/plain", 10 },
		{ 2, "report (2).pdf", "application/pdf", 2000 },
	};
	uint64_t off[] = { 0, 10 }, o = 0, size = 0, total = 0, count = 0;
	struct ix_msg m = { .uid = 7, .size = 3000, .flags = "", .name = "m7" };
	int64_t inbox = 0, of = 0;
	uint32_t ou = 0;

	snprintf(path, sizeof(path), "%s/views.sqlite", dir);
	CHECK(index_open(path, &ix, &err) == 0, "views: a new index (%s)",
	      err.msg);
	if (!ix)
		return;
	index_folder_put(ix, 0, "INBOX", "INBOX", '/', 0, &inbox, &err);
	m.folder = inbox;
	index_msg_put(ix, &m, &err);
	CHECK(index_parts_set(ix, inbox, 7, parts, 2, &err) == 0,
	      "views: parts of UID 7 known");
	CHECK(index_views_set(ix, inbox, 7, parts, off, 2, 2010, &err) ==
		      MFS_E_NOTFOUND,
	      "views: no parts file recorded without the body's entry");
	CHECK(index_cache_add(ix, inbox, 7, 3000, &err) == 0,
	      "views: the body cached");
	CHECK(index_part_view(ix, inbox, 7, 2, &o, &size, &total, &err) ==
		      MFS_E_NOTFOUND, "views: no parts file yet");
	CHECK(index_views_set(ix, inbox, 7, other, off, 2, 2010, &err) ==
		      MFS_E_NOTFOUND,
	      "views: other parts than the index has are not recorded");
	CHECK(index_views_set(ix, inbox, 7, parts, off, 1, 10, &err) ==
		      MFS_E_NOTFOUND, "views: nor fewer of them");
	CHECK(index_part_view(ix, inbox, 7, 1, &o, &size, &total, &err) ==
		      MFS_E_NOTFOUND, "views: and nothing changed");
	CHECK(index_views_set(ix, inbox, 7, parts, off, 2, 2010, &err) == 0,
	      "views: the same parts are (%s)", err.msg);
	CHECK(index_part_view(ix, inbox, 7, 2, &o, &size, &total, &err) == 0 &&
		      o == 10 && size == 2000 && total == 2010,
	      "views: part 2 at 10, 2000 bytes, file of 2010 (%llu %llu %llu)",
	      (unsigned long long)o, (unsigned long long)size,
	      (unsigned long long)total);
	CHECK(index_part_view(ix, inbox, 7, 3, &o, &size, &total, &err) ==
		      MFS_E_NOTFOUND, "views: no part 3");
	CHECK(index_cache_total(ix, &total, &err) == 0 && total == 5010,
	      "views: the total counts body and parts file (%llu)",
	      (unsigned long long)total);
	CHECK(index_cache_oldest(ix, 0, &of, &ou, &total, &err) == 0 &&
		      ou == 7 && total == 5010,
	      "views: evicting UID 7 frees both (%llu)",
	      (unsigned long long)total);
	CHECK(index_views_count(ix, &count, &total, &err) == 0 && count == 1 &&
		      total == 2010, "views: one parts file of 2010 bytes");
	CHECK(index_cache_add(ix, inbox, 7, 3000, &err) == 0 &&
		      index_views_get(ix, inbox, 7, &total, &err) == 0 &&
		      total == 2010,
	      "views: a body added again keeps its parts file");
	CHECK(index_views_clear(ix, inbox, 7, &err) == 0 &&
		      index_views_get(ix, inbox, 7, &total, &err) ==
			      MFS_E_NOTFOUND &&
		      index_part_view(ix, inbox, 7, 1, &o, &size, &total,
				      &err) == MFS_E_NOTFOUND,
	      "views: cleared, it is gone");
	CHECK(index_cache_total(ix, &total, &err) == 0 && total == 3000,
	      "views: and no longer counted (%llu)", (unsigned long long)total);
	index_views_set(ix, inbox, 7, parts, off, 2, 2010, &err);
	CHECK(index_parts_set(ix, inbox, 7, parts, 2, &err) == 0 &&
		      index_views_get(ix, inbox, 7, &total, &err) ==
			      MFS_E_NOTFOUND,
	      "views: new parts set forget the parts file");
	index_views_set(ix, inbox, 7, parts, off, 2, 2010, &err);
	CHECK(index_cache_remove(ix, inbox, 7, &total, &err) == 1 &&
		      total == 5010 &&
		      index_part_view(ix, inbox, 7, 1, &o, &size, &total,
				      &err) == MFS_E_NOTFOUND,
	      "views: the body evicted, its parts file goes with it (%llu "
	      "bytes)", (unsigned long long)total);
	CHECK(index_cache_add(ix, inbox, 7, 3000, &err) == 0 &&
		      index_part_view(ix, inbox, 7, 1, &o, &size, &total,
				      &err) == MFS_E_NOTFOUND,
	      "views: and fetched again, it has none");
	index_close(ix);
}

struct reader {
	struct index *ix;
	int64_t folder;
	int ok;
};

static void *read_loop(void *arg)
{
	struct reader *r = arg;

	for (int i = 0; i < 200; i++) {
		struct got g = { 0 };

		if (index_msg_list(r->ix, r->folder, got_msg, &g, NULL) == 0 &&
		    g.n >= 2)
			r->ok++;
	}
	return NULL;
}

int main(void)
{
	char dir[] = "/tmp/mailfs-test-index-XXXXXX";
	char path[300];
	struct index *ix = NULL;
	struct mfs_error err = { 0 };
	struct got g = { 0 };
	struct stat st;
	int64_t inbox, archive, y2024, again, renewed;
	uint32_t max;
	uint64_t total;
	int64_t of;
	uint32_t ou;

	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/index.sqlite", dir);
	CHECK(index_open(path, &ix, &err) == 0, "open a new index (%s)",
	      err.msg);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
	      "index file is 0600");

	CHECK(index_folder_put(ix, 0, "INBOX", "INBOX", '/', 0, &inbox,
			       &err) == 0, "put INBOX");
	CHECK(index_folder_put(ix, 0, "Archive", NULL, '/', 1, &archive,
			       &err) == 0, "put implied Archive");
	CHECK(index_folder_put(ix, archive, "2024", "Archive/2024", '/', 0,
			       &y2024, &err) == 0, "put Archive/2024");
	CHECK(index_folder_put(ix, 0, "Archive", "Archive", '/', 0, &again,
			       &err) == 0 && again == archive,
	      "a real LIST entry upgrades the implied folder, same id");
	CHECK(index_folder_put(ix, 0, "Archive", NULL, '/', 1, &again, &err) ==
			      0 && again == archive,
	      "an implied put never downgrades");
	memset(&g, 0, sizeof(g));
	index_folder_children(ix, 0, got_folder, &g, &err);
	CHECK(g.n == 2, "two top-level folders (got %d)", g.n);
	memset(&g, 0, sizeof(g));
	CHECK(index_folder_by_name(ix, archive, "2024", got_folder, &g, &err) ==
			      0 && g.id == y2024, "child found by name");
	CHECK(index_folder_by_name(ix, 0, "Nope", got_folder, &g, &err) ==
		      MFS_E_NOTFOUND, "missing folder is NOTFOUND");

	struct ix_msg m = { .folder = inbox, .uid = 7, .size = 1234,
			    .date = 1700000000, .flags = "\\Seen",
			    .message_id = "a@b", .name = "2023-11-14 2213 A - x [7]" };
	CHECK(index_msg_put(ix, &m, &err) == 0, "put message 7");
	m.uid = 9;
	m.name = "2023-11-14 2213 A - y [9]";
	CHECK(index_msg_put(ix, &m, &err) == 0, "put message 9");
	memset(&g, 0, sizeof(g));
	CHECK(index_msg_by_name(ix, inbox, "2023-11-14 2213 A - y [9]", got_msg,
				&g, &err) == 0 && g.uid == 9,
	      "message found by name");
	CHECK(index_msg_max_uid(ix, inbox, &max, &err) == 0 && max == 9,
	      "max uid 9");
	CHECK(index_msg_set_size(ix, inbox, 9, 999, &err) == 0,
	      "size corrected");
	memset(&g, 0, sizeof(g));
	index_msg_get(ix, inbox, 9, got_msg, &g, &err);
	CHECK(g.size == 999, "corrected size read back (%llu)",
	      (unsigned long long)g.size);

	struct row row = { 0 };
	m.uid = 8;
	m.name = "2023-11-14 2213 Zoë Ünïcode - Grüße [8]";
	m.sender = "Zoë Ünïcode";
	m.subject = "Grüße aus Köln";
	m.internaldate = 1700000321;
	CHECK(index_msg_put(ix, &m, &err) == 0, "put message 8 with sender, "
	      "subject, internaldate");
	CHECK(index_msg_get(ix, inbox, 8, got_row, &row, &err) == 0 &&
		      !row.m.unfilled && row.m.internaldate == 1700000321 &&
		      row.m.date == 1700000000,
	      "internaldate read back, apart from date");
	CHECK_STR(row.sender, "Zoë Ünïcode", "sender read back");
	CHECK_STR(row.subject, "Grüße aus Köln", "subject read back");
	m.sender = m.subject = NULL;
	m.internaldate = 0;
	CHECK(index_msg_put(ix, &m, &err) == 0, "replace it with none");
	memset(&row, 0, sizeof(row));
	index_msg_get(ix, inbox, 8, got_row, &row, &err);
	CHECK(row.n == 1 && !row.has_sender && !row.has_subject &&
		      row.m.internaldate == 0 && !row.m.unfilled,
	      "no From, no Subject: NULL, and the row is not unfilled");
	CHECK(index_msg_unfilled(ix, inbox, &max, &max, &err) ==
		      MFS_E_NOTFOUND, "a new index has no unfilled rows");
	index_msg_delete(ix, inbox, 8, &err);

	struct ix_part parts[] = {
		{ 1, "body.txt", "text/plain", 10 },
		{ 2, "report.pdf", "application/pdf", 20000 },
	};
	CHECK(index_parts_set(ix, inbox, 7, parts, 2, &err) == 0, "parts set");
	memset(&g, 0, sizeof(g));
	CHECK(index_part_by_name(ix, inbox, 7, "report.pdf", got_part, &g,
				 &err) == 0 && g.uid == 2 && g.size == 20000,
	      "part by name");
	memset(&g, 0, sizeof(g));
	index_parts_list(ix, inbox, 7, got_part, &g, &err);
	CHECK(g.n == 2, "two parts listed");

	/* Concurrent readers on their own connections while we write. */
	struct reader r[3];
	pthread_t t[3];
	for (int i = 0; i < 3; i++) {
		r[i] = (struct reader){ ix, inbox, 0 };
		pthread_create(&t[i], NULL, read_loop, &r[i]);
	}
	for (uint32_t u = 100; u < 300; u++) {
		char name[64];
		snprintf(name, sizeof(name), "n%u", u);
		m.uid = u;
		m.name = name;
		index_msg_put(ix, &m, NULL);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		CHECK(r[i].ok == 200, "reader %d saw every listing (%d)", i,
		      r[i].ok);
	}

	CHECK(index_cache_add(ix, inbox, 7, 100, &err) == 0, "cache add 7");
	usleep(2000);
	CHECK(index_cache_add(ix, inbox, 9, 50, &err) == 0, "cache add 9");
	usleep(2000);
	index_cache_touch(ix, inbox, 7, &err);
	CHECK(index_cache_total(ix, &total, &err) == 0 && total == 150,
	      "cache total 150");
	CHECK(index_cache_oldest(ix, 0, &of, &ou, &total, &err) == 0 && ou == 9 && total == 50,
	      "LRU: 9 is oldest after touching 7 (got %u)", ou);
	CHECK(index_cache_adopt(ix, inbox, 7, 999, &err) == 0,
	      "adopt: a body with an entry keeps it");
	CHECK(index_cache_adopt(ix, inbox, 11, 30, &err) == 1,
	      "adopt: a body without one gets one");
	CHECK(index_cache_total(ix, &total, &err) == 0 && total == 180,
	      "adopt: it counts against the total (%llu)",
	      (unsigned long long)total);
	CHECK(index_cache_oldest(ix, 0, &of, &ou, &total, &err) == 0 && ou == 11,
	      "adopt: as the least recently used (got %u)", ou);
	CHECK(index_cache_oldest(ix, 1, &of, &ou, &total, &err) == 0 &&
		      ou == 9, "LRU: the next oldest is 9 (got %u)", ou);
	CHECK(index_cache_remove(ix, inbox, 11, &total, &err) == 1 &&
		      total == 30, "adopt: removed, with its 30 bytes");
	CHECK(index_cache_remove(ix, inbox, 11, &total, &err) == 0,
	      "removing it again finds nothing");

	CHECK(index_folder_drop(ix, archive, true, &renewed, &err) == 0 &&
		      renewed != archive, "renew gives a new id");
	memset(&g, 0, sizeof(g));
	CHECK(index_folder_by_name(ix, 0, "Archive", got_folder, &g, &err) ==
			      0 && g.id == renewed,
	      "renewed folder keeps its name");
	memset(&g, 0, sizeof(g));
	CHECK(index_folder_by_name(ix, renewed, "2024", got_folder, &g, &err) ==
		      0, "subfolder moved under the renewed id");
	CHECK(index_folder_drop(ix, inbox, false, NULL, &err) == 0, "drop");
	memset(&g, 0, sizeof(g));
	CHECK(index_msg_get(ix, inbox, 7, got_msg, &g, &err) == MFS_E_NOTFOUND,
	      "dropped folder's messages are gone");
	CHECK(index_cache_oldest(ix, 0, &of, &ou, &total, &err) == MFS_E_NOTFOUND,
	      "and so is its cache bookkeeping");

	index_close(ix);
	ix = NULL;
	CHECK(index_open(path, &ix, &err) == 0, "reopen");
	memset(&g, 0, sizeof(g));
	CHECK(index_folder_by_name(ix, 0, "Archive", got_folder, &g, &err) ==
		      0 && g.id == renewed, "state persists across reopen");
	index_close(ix);
	test_upgrade(dir);
	test_views(dir);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	if (system(path) != 0)
		return 1;
	return check_done();
}
