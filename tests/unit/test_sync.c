/* test_sync.c - the sync's decisions (fs/core/sync.c): what the index
 * holds after a pass, and which hooks were called.
 *
 * Each case runs the real sync thread (sync_start, sync_refresh) over a
 * real pool against the scripted IMAP server of fake_imap.h, with a real
 * SQLite index in a temporary directory, and reads the index back through
 * index.h.  The server's capabilities choose the path: plain IMAP4rev1
 * (flags of the whole known range compared), CONDSTORE alone (CHANGEDSINCE,
 * expunges found by count), and QRESYNC (expunges named by VANISHED).
 */
#include <curl/curl.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fake_imap.h"
#include "imap.h"
#include "index.h"
#include "mime.h"
#include "pool.h"
#include "sync.h"

/* ---- what the hooks were told ---- */

enum ev_kind { EV_CHANGED, EV_ENTRY_GONE, EV_MSG_GONE };

#define MAXEV 1000

static struct {
	pthread_mutex_t lock;
	unsigned n;
	struct ev {
		enum ev_kind kind;
		int64_t folder;	/* parent for EV_ENTRY_GONE */
		uint32_t uid;
		char name[100];
	} v[MAXEV];
} evs = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void ev_add(enum ev_kind kind, int64_t folder, uint32_t uid,
		   const char *name)
{
	pthread_mutex_lock(&evs.lock);
	if (evs.n < MAXEV) {
		struct ev *e = &evs.v[evs.n++];

		e->kind = kind;
		e->folder = folder;
		e->uid = uid;
		snprintf(e->name, sizeof(e->name), "%s", name ? name : "");
	}
	pthread_mutex_unlock(&evs.lock);
}

static void on_folder_changed(void *ctx, int64_t folder)
{
	(void)ctx;
	ev_add(EV_CHANGED, folder, 0, NULL);
}

static void on_entry_gone(void *ctx, int64_t parent, const char *name)
{
	(void)ctx;
	ev_add(EV_ENTRY_GONE, parent, 0, name);
}

static void on_msg_gone(void *ctx, int64_t folder, uint32_t uid,
			const char *name)
{
	(void)ctx;
	ev_add(EV_MSG_GONE, folder, uid, name);
}

static unsigned ev_mark(void)
{
	unsigned n;

	pthread_mutex_lock(&evs.lock);
	n = evs.n;
	pthread_mutex_unlock(&evs.lock);
	return n;
}

/* How many events of kind about folder (and uid, unless 0; and name,
 * unless NULL) since mark. */
static unsigned ev_count(unsigned mark, enum ev_kind kind, int64_t folder,
			 uint32_t uid, const char *name)
{
	unsigned n = 0;

	pthread_mutex_lock(&evs.lock);
	for (unsigned i = mark; i < evs.n; i++)
		n += evs.v[i].kind == kind && evs.v[i].folder == folder &&
		     (!uid || evs.v[i].uid == uid) &&
		     (!name || strcmp(evs.v[i].name, name) == 0);
	pthread_mutex_unlock(&evs.lock);
	return n;
}

/* ---- one world: server, index, pool, sync ---- */

struct world {
	struct fake_imap *srv;
	struct index *ix;
	struct pool *pool;
	struct sync *sync;
	char dir[256];
};

static bool world_open(struct world *w, const char *caps)
{
	const char *t = getenv("TMPDIR");
	struct mfs_error err = { 0 };
	struct imap_opts io = { 0 };
	char path[300];

	memset(w, 0, sizeof(*w));
	snprintf(w->dir, sizeof(w->dir), "%s/mfs-sync-XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(w->dir))
		return false;
	snprintf(path, sizeof(path), "%s/index.sqlite", w->dir);
	w->srv = fake_imap_start(caps);
	if (!w->srv || index_open(path, &w->ix, &err) < 0)
		return false;
	io = fake_imap_opts(w->srv);
	return pool_new(&io, 1, NULL, &w->pool) == 0;
}

/* Start the sync thread (the server's mailboxes set up by then). */
static bool world_sync(struct world *w)
{
	struct sync_hooks h = { .folder_changed = on_folder_changed,
				.entry_gone = on_entry_gone,
				.msg_gone = on_msg_gone };

	struct sync_opts o = { .ix = w->ix, .pool = w->pool, .hooks = h,
			       .interval_s = 3600, .strip_prefix = true };

	return sync_start(&o, &w->sync) == 0;
}

static void world_close(struct world *w)
{
	sync_stop(w->sync);
	pool_free(w->pool);
	index_close(w->ix);
	fake_imap_stop(w->srv);
	if (w->dir[0])
		test_rm_rf(w->dir);
}

/* ---- the index, read back ---- */

struct folder_info {
	bool found;
	int64_t id;
	uint32_t uidvalidity;
};

static int get_folder(void *ctx, const struct ix_folder *f)
{
	struct folder_info *fi = ctx;

	fi->found = true;
	fi->id = f->id;
	fi->uidvalidity = f->uidvalidity;
	return 0;
}

static struct folder_info folder(struct world *w, const char *name)
{
	struct folder_info fi = { 0 };

	index_folder_by_name(w->ix, 0, name, get_folder, &fi, NULL);
	return fi;
}

struct row {
	bool found;
	uint64_t size;
	char flags[100], subject[100], sender[100], mid[100];
};

static int get_row(void *ctx, const struct ix_msg *m)
{
	struct row *r = ctx;

	r->found = true;
	r->size = m->size;
	snprintf(r->flags, sizeof(r->flags), "%s", m->flags ? m->flags : "");
	snprintf(r->subject, sizeof(r->subject), "%s",
		 m->subject ? m->subject : "");
	snprintf(r->sender, sizeof(r->sender), "%s",
		 m->sender ? m->sender : "");
	snprintf(r->mid, sizeof(r->mid), "%s",
		 m->message_id ? m->message_id : "");
	return 0;
}

static struct row row(struct world *w, int64_t f, uint32_t uid)
{
	struct row r = { 0 };

	index_msg_get(w->ix, f, uid, get_row, &r, NULL);
	return r;
}

/* UIDs lo..hi: which of them the index holds, as "1 2 5". */
static void uids_in(struct world *w, int64_t f, uint32_t lo, uint32_t hi,
		    char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (uint32_t u = lo; u <= hi; u++)
		if (row(w, f, u).found && n < len)
			n += (size_t)snprintf(buf + n, len - n, "%s%u",
					      n ? " " : "", u);
}

/* Commands from `from` on that begin with "UID FETCH " and fetch flags
 * of a known range the long way: no CHANGEDSINCE, no headers. */
static unsigned full_flag_passes(struct world *w, unsigned from)
{
	return fake_imap_count(w->srv, from, "UID FETCH 1:", NULL) -
	       fake_imap_count(w->srv, from, "UID FETCH 1:", "CHANGEDSINCE") -
	       fake_imap_count(w->srv, from, "UID FETCH 1:", "RFC822.SIZE");
}

/* ---- the cases ---- */

/* Plain IMAP4rev1: first pass, new messages, flags, expunges, and a
 * UIDVALIDITY change. */
static void test_plain(void)
{
	struct world w;
	struct folder_info in, in2;
	struct row r;
	char got[200], body[1024];
	unsigned from, mark;
	int mb;

	CHECK(world_open(&w, "IMAP4rev1"), "plain: server, index and pool");
	if (!w.pool)
		goto out;
	mb = fake_imap_mbox(w.srv, "INBOX", 5);
	fake_imap_mbox(w.srv, "Archive", 8);
	for (uint32_t u = 1; u <= 5; u++)
		fake_imap_put(w.srv, mb, u, u == 3 ? "" : "\\Seen");
	CHECK(world_sync(&w), "plain: sync_start");
	if (!w.sync)
		goto out;
	CHECK(sync_refresh(w.sync, 20) == 0, "plain: first full pass");
	in = folder(&w, "INBOX");
	CHECK(in.found && in.uidvalidity == 5 && folder(&w, "Archive").found,
	      "plain: LIST gave INBOX (UIDVALIDITY %u) and Archive",
	      in.uidvalidity);
	uids_in(&w, in.id, 1, 10, got, sizeof(got));
	CHECK_STR(got, "1 2 3 4 5", "plain: the first pass indexed UIDs 1-5");
	r = row(&w, in.id, 3);
	CHECK(r.size == strlen(fake_imap_body(3, body, sizeof(body))) &&
		      strcmp(r.subject, "Message 3") == 0 &&
		      strcmp(r.sender, "Carol") == 0 &&
		      strcmp(r.mid, "3@example.org") == 0 &&
		      strcmp(r.flags, "") == 0,
	      "plain: a row as the server described it (size %llu, "
	      "subject '%s', from '%s', id '%s', flags '%s')",
	      (unsigned long long)r.size, r.subject, r.sender, r.mid, r.flags);

	/* New messages: only the UIDs above the known range are fetched. */
	from = fake_imap_ncmds(w.srv);
	mark = ev_mark();
	fake_imap_put(w.srv, mb, 6, "");
	fake_imap_put(w.srv, mb, 7, "\\Answered");
	CHECK(sync_refresh(w.sync, 20) == 0, "plain: a pass after 6, 7 came");
	uids_in(&w, in.id, 1, 10, got, sizeof(got));
	CHECK_STR(got, "1 2 3 4 5 6 7", "plain: 6 and 7 are in the index");
	CHECK_STR(row(&w, in.id, 7).flags, "\\Answered",
		  "plain: with their flags");
	CHECK(fake_imap_count(w.srv, from, "UID FETCH 6:* ", "RFC822.SIZE") ==
			      1 &&
		      fake_imap_count(w.srv, from, "UID FETCH 1:",
				      "RFC822.SIZE") == 0,
	      "plain: new messages by one UID FETCH 6:*, the known ones' "
	      "headers not fetched again");
	CHECK(ev_count(mark, EV_CHANGED, in.id, 0, NULL) >= 1,
	      "plain: INBOX's listing said to change");

	/* Flags changed by another client. */
	fake_imap_set_flags(w.srv, mb, 2, "\\Flagged \\Seen");
	CHECK(sync_refresh(w.sync, 20) == 0, "plain: a pass after a flag "
	      "change");
	CHECK_STR(row(&w, in.id, 2).flags, "\\Flagged \\Seen",
		  "plain: the new flags of 2 are in the index");

	/* Expunged by another client: found by the flags pass. */
	from = fake_imap_ncmds(w.srv);
	mark = ev_mark();
	fake_imap_expunge(w.srv, mb, 4);
	CHECK(sync_refresh(w.sync, 20) == 0, "plain: a pass after an "
	      "expunge");
	uids_in(&w, in.id, 1, 10, got, sizeof(got));
	CHECK_STR(got, "1 2 3 5 6 7", "plain: 4 is gone from the index, the "
		  "rest stay");
	CHECK(ev_count(mark, EV_MSG_GONE, in.id, 4, NULL) == 1 &&
		      ev_count(mark, EV_MSG_GONE, in.id, 0, NULL) == 1,
	      "plain: msg_gone told of 4, of no other");
	CHECK(ev_count(mark, EV_CHANGED, in.id, 0, NULL) >= 1,
	      "plain: and INBOX's listing said to change");
	CHECK(full_flag_passes(&w, from) == 1 &&
		      fake_imap_count(w.srv, from, "UID FETCH", "CHANGEDSINCE") ==
			      0,
	      "plain: by one UID FETCH 1:7 (UID FLAGS), no CHANGEDSINCE");

	/* The folder recreated: a new UIDVALIDITY, other messages. */
	mark = ev_mark();
	for (uint32_t u = 1; u <= 7; u++)
		fake_imap_expunge(w.srv, mb, u);
	fake_imap_set_uidvalidity(w.srv, mb, 6);
	fake_imap_put(w.srv, mb, 1, "\\Draft");
	fake_imap_put(w.srv, mb, 2, "");
	CHECK(sync_refresh(w.sync, 20) == 0, "plain: a pass after "
	      "UIDVALIDITY 5 -> 6");
	in2 = folder(&w, "INBOX");
	CHECK(in2.found && in2.id != in.id && in2.uidvalidity == 6,
	      "plain: INBOX rebuilt under a new id (%lld -> %lld), "
	      "UIDVALIDITY %u", (long long)in.id, (long long)in2.id,
	      in2.uidvalidity);
	CHECK(index_folder_get(w.ix, in.id, get_folder, &(struct folder_info){
					       0 }, NULL) == MFS_E_NOTFOUND,
	      "plain: the old id is gone from the index");
	uids_in(&w, in2.id, 1, 10, got, sizeof(got));
	CHECK_STR(got, "1 2", "plain: the new INBOX holds the new 1 and 2 "
		  "only");
	CHECK_STR(row(&w, in2.id, 1).flags, "\\Draft",
		  "plain: with the new messages' flags");
	CHECK(ev_count(mark, EV_ENTRY_GONE, 0, 0, "INBOX") == 1,
	      "plain: entry_gone(root, \"INBOX\") called");
	CHECK(ev_count(mark, EV_CHANGED, 0, 0, NULL) >= 1,
	      "plain: folder_changed(root) called");
out:
	world_close(&w);
}

/* CONDSTORE without QRESYNC: flags by CHANGEDSINCE; an expunge shows only
 * in the count, and then the flags of the whole range are fetched. */
static void test_condstore(void)
{
	struct world w;
	struct folder_info in;
	char got[200];
	unsigned from, mark;
	int mb;

	CHECK(world_open(&w, "IMAP4rev1 CONDSTORE"),
	      "condstore: server, index and pool");
	if (!w.pool)
		goto out;
	mb = fake_imap_mbox(w.srv, "INBOX", 5);
	for (uint32_t u = 1; u <= 5; u++)
		fake_imap_put(w.srv, mb, u, "\\Seen");
	CHECK(world_sync(&w) && sync_refresh(w.sync, 20) == 0,
	      "condstore: first full pass");
	in = folder(&w, "INBOX");

	/* Nothing changed: HIGHESTMODSEQ says so, nothing is fetched. */
	from = fake_imap_ncmds(w.srv);
	CHECK(sync_refresh(w.sync, 20) == 0 &&
		      fake_imap_count(w.srv, from, "UID FETCH", NULL) == 0,
	      "condstore: an unchanged HIGHESTMODSEQ: no UID FETCH at all");

	/* A flag change: CHANGEDSINCE, and no long pass. */
	from = fake_imap_ncmds(w.srv);
	fake_imap_set_flags(w.srv, mb, 3, "\\Flagged");
	CHECK(sync_refresh(w.sync, 20) == 0, "condstore: a pass after a flag "
	      "change");
	CHECK_STR(row(&w, in.id, 3).flags, "\\Flagged",
		  "condstore: the new flags of 3 are in the index");
	CHECK(fake_imap_count(w.srv, from, "UID FETCH 1:5 ", "CHANGEDSINCE") ==
			      1 &&
		      full_flag_passes(&w, from) == 0,
	      "condstore: by UID FETCH 1:5 (CHANGEDSINCE), without a long "
	      "flags pass");

	/* An expunge: EXISTS is one short, the long pass finds which. */
	from = fake_imap_ncmds(w.srv);
	mark = ev_mark();
	fake_imap_expunge(w.srv, mb, 2);
	CHECK(sync_refresh(w.sync, 20) == 0, "condstore: a pass after an "
	      "expunge");
	uids_in(&w, in.id, 1, 10, got, sizeof(got));
	CHECK_STR(got, "1 3 4 5", "condstore: 2 is gone from the index");
	CHECK(ev_count(mark, EV_MSG_GONE, in.id, 2, NULL) == 1,
	      "condstore: msg_gone told of 2");
	CHECK(full_flag_passes(&w, from) == 1,
	      "condstore: found by one long flags pass (the count differed)");
out:
	world_close(&w);
}

/* QRESYNC: expunges come as VANISHED, with no long flags pass. */
static void test_qresync(void)
{
	struct world w;
	struct folder_info in;
	char got[200];
	unsigned from, mark;
	int mb;

	CHECK(world_open(&w, "IMAP4rev1 ENABLE CONDSTORE QRESYNC"),
	      "qresync: server, index and pool");
	if (!w.pool)
		goto out;
	mb = fake_imap_mbox(w.srv, "INBOX", 5);
	for (uint32_t u = 1; u <= 6; u++)
		fake_imap_put(w.srv, mb, u, "\\Seen");
	CHECK(world_sync(&w) && sync_refresh(w.sync, 20) == 0,
	      "qresync: first full pass");
	in = folder(&w, "INBOX");

	from = fake_imap_ncmds(w.srv);
	mark = ev_mark();
	fake_imap_expunge(w.srv, mb, 2);
	fake_imap_expunge(w.srv, mb, 5);
	fake_imap_set_flags(w.srv, mb, 3, "\\Answered \\Seen");
	fake_imap_put(w.srv, mb, 7, "");
	CHECK(sync_refresh(w.sync, 20) == 0, "qresync: a pass after two "
	      "expunges, a flag change and a new message");
	uids_in(&w, in.id, 1, 10, got, sizeof(got));
	CHECK_STR(got, "1 3 4 6 7", "qresync: 2 and 5 gone, 7 new");
	CHECK_STR(row(&w, in.id, 3).flags, "\\Answered \\Seen",
		  "qresync: the new flags of 3 are in the index");
	CHECK(ev_count(mark, EV_MSG_GONE, in.id, 2, NULL) == 1 &&
		      ev_count(mark, EV_MSG_GONE, in.id, 5, NULL) == 1 &&
		      ev_count(mark, EV_MSG_GONE, in.id, 0, NULL) == 2,
	      "qresync: msg_gone told of 2 and 5 only");
	CHECK(fake_imap_count(w.srv, 0, "ENABLE QRESYNC", NULL) >= 1 &&
		      fake_imap_count(w.srv, from, "UID FETCH 1:6 ",
				      "VANISHED") == 1 &&
		      full_flag_passes(&w, from) == 0,
	      "qresync: by UID FETCH 1:6 (CHANGEDSINCE n VANISHED), without "
	      "a long flags pass");
out:
	world_close(&w);
}

static int get_wire(void *ctx, const struct ix_folder *f)
{
	snprintf(ctx, 100, "%s", f->wire ? f->wire : "-");
	return 0;
}

/* A server whose folders live under the personal namespace "INBOX/":
 * shown at the top level, INBOX itself still INBOX; the prefix kept in
 * the index for the changes to put back. */
static void test_namespace(void)
{
	struct world w;
	char wire[100] = "", kept[100] = "";
	struct folder_info in, arch, sub = { 0 };

	CHECK(world_open(&w, "IMAP4rev1 NAMESPACE"),
	      "namespace: server, index and pool");
	if (!w.pool)
		goto out;
	fake_imap_mbox(w.srv, "INBOX", 5);
	fake_imap_mbox(w.srv, "INBOX/Archive", 6);
	fake_imap_mbox(w.srv, "INBOX/Archive/2024", 7);
	CHECK(world_sync(&w) && sync_refresh(w.sync, 20) == 0,
	      "namespace: first full pass");
	in = folder(&w, "INBOX");
	arch = folder(&w, "Archive");
	if (arch.found)
		index_folder_by_name(w.ix, arch.id, "2024", get_folder, &sub,
				     NULL);
	if (arch.found)
		index_folder_get(w.ix, arch.id, get_wire, wire, NULL);
	CHECK(in.found && arch.found && strcmp(wire, "INBOX/Archive") == 0,
	      "namespace: INBOX/Archive is Archive at the top (%d, wire %s)",
	      arch.found, wire);
	CHECK(arch.found && sub.found && sub.uidvalidity == 7,
	      "namespace: and INBOX/Archive/2024 is Archive/2024");
	CHECK(index_meta_get(w.ix, SYNC_META_STRIP, kept, sizeof(kept),
			     NULL) == 0 && strcmp(kept, "INBOX/") == 0,
	      "namespace: the prefix is kept in the index (\"%s\")", kept);
out:
	world_close(&w);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	mime_init();
	test_plain();
	test_condstore();
	test_qresync();
	test_namespace();
	mime_shutdown();
	curl_global_cleanup();
	return check_done();
}
