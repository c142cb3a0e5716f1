/* test_index.c - the SQLite index on a temporary file: folders with
 * hierarchy, UIDVALIDITY renewal, messages by name, parts, cache LRU, and
 * concurrent readers on other threads. */
#include <pthread.h>
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
	CHECK(index_cache_oldest(ix, &of, &ou, &total, &err) == 0 && ou == 9 && total == 50,
	      "LRU: 9 is oldest after touching 7 (got %u)", ou);

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
	CHECK(index_cache_oldest(ix, &of, &ou, &total, &err) == MFS_E_NOTFOUND,
	      "and so is its cache bookkeeping");

	index_close(ix);
	ix = NULL;
	CHECK(index_open(path, &ix, &err) == 0, "reopen");
	memset(&g, 0, sizeof(g));
	CHECK(index_folder_by_name(ix, 0, "Archive", got_folder, &g, &err) ==
		      0 && g.id == renewed, "state persists across reopen");
	index_close(ix);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	if (system(path) != 0)
		return 1;
	return check_done();
}
