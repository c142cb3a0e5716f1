/* test_changes.c - the mailbox changes' batching (fs/core/changes.c):
 * runs of rm and mv sent as UID sets, a refused batch put back in the
 * index, changes_flush waiting for the server, and the aliases of moved
 * messages (changes_moved).
 *
 * Against a real SQLite index in a temporary directory and the scripted
 * IMAP server of fake_imap.h (announcing MOVE and UIDPLUS), which keeps
 * which UIDs each mailbox holds, logs every command, and can refuse the
 * UID MOVE of chosen UIDs (NO) or answer moves late.
 * Connections come from a real pool, so the path is the daemon's:
 * changes.c -> pool.c -> imap_open (libcurl login) -> mailbox.c.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "changes.h"
#include "check.h"
#include "fake_imap.h"
#include "imap.h"
#include "index.h"
#include "pool.h"

#define MAXUID FAKE_MAXUID

/* The scripted server (fake_imap.h) and its mailboxes. */
static struct fake_imap *srv;
static int INBOX, TRASH, ARCHIVE;

static bool srv_has(int mb, uint32_t uid)
{
	return fake_imap_has(srv, mb, uid);
}

/* Answer UID MOVE ms late: long enough for the test to look at what a
 * queued change shows before the server has answered it. */
static void srv_delay(unsigned ms)
{
	fake_imap_delay(srv, ms);
}

static void srv_refuse(uint32_t lo, uint32_t hi, bool refuse)
{
	fake_imap_refuse(srv, lo, hi, refuse);
}

/* ---- the index, and the hooks the changes call ---- */

static struct index *ix;
static int64_t f_inbox, f_trash, f_archive;

struct hooks {
	pthread_mutex_t lock;
	unsigned changed[8];	/* folder_changed by folder id (small) */
	unsigned gone;		/* msg_gone calls */
};

static struct hooks hk = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void folder_changed(void *ctx, int64_t folder)
{
	(void)ctx;
	pthread_mutex_lock(&hk.lock);
	if (folder >= 0 && folder < 8)
		hk.changed[folder]++;
	pthread_mutex_unlock(&hk.lock);
}

static void msg_gone(void *ctx, int64_t folder, uint32_t uid,
		     const char *name)
{
	(void)ctx;
	(void)folder;
	(void)uid;
	(void)name;
	pthread_mutex_lock(&hk.lock);
	hk.gone++;
	pthread_mutex_unlock(&hk.lock);
}

static struct hooks hk_get(void)
{
	struct hooks h;

	pthread_mutex_lock(&hk.lock);
	h = hk;
	pthread_mutex_unlock(&hk.lock);
	return h;
}

static void name_of(uint32_t uid, char *buf, size_t len)
{
	snprintf(buf, len, "2026-06-01 1000 Carol - Message %u [%u]", uid, uid);
}

/* A message on the server and in index x (folder mb, index id f). */
static void add_msg_to(struct index *x, int mb, int64_t f, uint32_t uid)
{
	char name[100], mid[50], subject[50];
	struct ix_msg m = { .folder = f,
			    .uid = uid,
			    .size = 1000 + uid,
			    .date = 1780000000 + uid,
			    .flags = "\\Seen",
			    .message_id = mid,
			    .name = name,
			    .sender = "Carol",
			    .subject = subject,
			    .internaldate = 1780000100 + uid };

	name_of(uid, name, sizeof(name));
	snprintf(mid, sizeof(mid), "<%u@example.org>", uid);
	snprintf(subject, sizeof(subject), "Message %u", uid);
	index_msg_put(x, &m, NULL);
	fake_imap_put(srv, mb, uid, "\\Seen");
}

static void add_msg(int mb, int64_t f, uint32_t uid)
{
	add_msg_to(ix, mb, f, uid);
}

/* The whole row of (f, uid) as text, "" when there is none. */
struct rowtext {
	char s[600];
};

static int row_text(void *ctx, const struct ix_msg *m)
{
	struct rowtext *r = ctx;

	snprintf(r->s, sizeof(r->s), "%u|%llu|%lld|%s|%s|%s|%s|%s|%lld|%d",
		 m->uid, (unsigned long long)m->size, (long long)m->date,
		 m->flags ? m->flags : "-",
		 m->message_id ? m->message_id : "-", m->name,
		 m->sender ? m->sender : "-", m->subject ? m->subject : "-",
		 (long long)m->internaldate, m->unfilled);
	return 0;
}

static void row(int64_t f, uint32_t uid, struct rowtext *r)
{
	r->s[0] = '\0';
	index_msg_get(ix, f, uid, row_text, r, NULL);
}

static bool in_index(int64_t f, uint32_t uid)
{
	struct rowtext r;

	row(f, uid, &r);
	return r.s[0] != '\0';
}

/* ---- the cases ---- */

/* rm of a run of messages: the first at once, the rest hidden at once
 * and sent as UID sets; changes_flush returns once the server has them. */
static void test_rm_run(struct changes *a)
{
	unsigned from = fake_imap_ncmds(srv);
	bool ok = true, hidden = true, moved = true, once = true;
	struct fake_sets s;

	for (uint32_t u = 1; u <= 40; u++)
		add_msg(INBOX, f_inbox, u);
	srv_delay(300);
	for (uint32_t u = 1; u <= 40; u++) {
		struct mfs_error err = { 0 };

		ok &= changes_delete(a, f_inbox, u, &err) == 0;
		hidden &= !in_index(f_inbox, u);
	}
	CHECK(ok, "rm of 40 messages in a run: every call succeeds");
	CHECK(hidden, "each is gone from the index when its call returns");
	changes_flush(a);
	for (uint32_t u = 1; u <= 40; u++) {
		moved &= !srv_has(INBOX, u) && srv_has(TRASH, u);
	}
	CHECK(moved, "after changes_flush the server has moved all 40 to "
	      "Trash (each move answered 300 ms late)");
	fake_imap_sets(srv, from, "UID MOVE ", &s);
	for (uint32_t u = 1; u <= 40; u++)
		once &= s.times[u] == 1;
	CHECK(once, "each UID moved by exactly one command");
	CHECK(s.cmds <= 5 && s.multi >= 1,
	      "40 moves in %u UID MOVE commands (%u of them UID sets)",
	      s.cmds, s.multi);
	CHECK(hk_get().gone == 40, "the kernel was told of 40 messages gone "
	      "(%u)", hk_get().gone);
	srv_delay(0);
}

/* The queued part of a run refused: the rows come back as they were. */
static void test_refused(struct changes *a)
{
	struct rowtext before[6], after;
	bool hidden = true, back = true, kept = true;
	unsigned changed;

	for (uint32_t u = 41; u <= 46; u++) {
		add_msg(INBOX, f_inbox, u);
		row(f_inbox, u, &before[u - 41]);
	}
	srv_refuse(42, 46, true);
	srv_delay(300);
	/* The last change was an expunge in Trash: 41 starts a new run and
	 * is moved at once; 42-46 follow it into the queue. */
	for (uint32_t u = 41; u <= 46; u++) {
		struct mfs_error err = { 0 };
		int rc = changes_delete(a, f_inbox, u, &err);

		if (u > 41)
			hidden &= rc == 0 && !in_index(f_inbox, u);
	}
	CHECK(hidden, "rm of 42-46 answered at once, rows hidden");
	changed = hk_get().changed[f_inbox];
	changes_flush(a);
	for (uint32_t u = 42; u <= 46; u++) {
		row(f_inbox, u, &after);
		back &= strcmp(after.s, before[u - 41].s) == 0;
		kept &= srv_has(INBOX, u) && !srv_has(TRASH, u);
	}
	CHECK(back, "the refused batch is back in the index, rows as they "
	      "were");
	CHECK(kept, "and still in INBOX on the server");
	CHECK(!in_index(f_inbox, 41) && srv_has(TRASH, 41),
	      "41, not refused, moved");
	CHECK(hk_get().changed[f_inbox] > changed,
	      "INBOX's listing said to change after the put-back");
	srv_refuse(42, 46, false);
	srv_delay(0);
}

/* Runs of rm in Trash: UID EXPUNGE of a set. */
static void test_expunge_run(struct changes *a)
{
	unsigned from = fake_imap_ncmds(srv);
	bool gone = true;
	struct fake_sets s;

	for (uint32_t u = 101; u <= 110; u++)
		add_msg(TRASH, f_trash, u);
	for (uint32_t u = 101; u <= 110; u++) {
		struct mfs_error err = { 0 };

		changes_delete(a, f_trash, u, &err);
	}
	changes_flush(a);
	for (uint32_t u = 101; u <= 110; u++)
		gone &= !srv_has(TRASH, u) && !in_index(f_trash, u);
	CHECK(gone, "rm of 10 messages in Trash expunges them");
	fake_imap_sets(srv, from, "UID EXPUNGE ", &s);
	CHECK(s.cmds <= 5 && s.multi >= 1,
	      "in %u UID EXPUNGE commands (%u of them UID sets)", s.cmds,
	      s.multi);
	fake_imap_sets(srv, from, "UID MOVE ", &s);
	CHECK(s.cmds == 0, "and no UID MOVE");
}

/* mv: the moved message answers by its old place and by its name in the
 * target a while; not when the server refused the move. */
static void test_aliases(struct changes *a)
{
	struct changes_moved mv = { 0 };
	struct mfs_error err = { 0 };
	char name[100];
	int rc;

	add_msg(INBOX, f_inbox, 51);
	add_msg(INBOX, f_inbox, 52);
	add_msg(INBOX, f_inbox, 53);
	/* The last change was an rm to Trash: a new run, done at once. */
	rc = changes_move(a, f_inbox, 51, f_archive, &err);
	CHECK(rc == 0 && srv_has(ARCHIVE, 51) && !in_index(f_inbox, 51),
	      "mv of the first of a run is done when it returns (%s)",
	      err.msg);
	CHECK(changes_moved(a, f_inbox, 51, NULL, 0, &mv) &&
		      mv.src == f_inbox && mv.uid == 51 && mv.size == 1051 &&
		      mv.date == 1780000051,
	      "changes_moved by its old place: size and date");
	name_of(51, name, sizeof(name));
	memset(&mv, 0, sizeof(mv));
	CHECK(changes_moved(a, 0, 0, name, f_archive, &mv) &&
		      mv.src == f_inbox && mv.uid == 51,
	      "changes_moved by its name in the target");
	CHECK(!changes_moved(a, 0, 0, name, f_trash, &mv),
	      "not by that name in another folder");

	/* Queued (same run) and refused. */
	srv_refuse(52, 52, true);
	srv_delay(300);
	rc = changes_move(a, f_inbox, 52, f_archive, &err);
	CHECK(rc == 0 && changes_moved(a, f_inbox, 52, NULL, 0, &mv),
	      "a queued mv answers by its old place at once");
	changes_flush(a);
	name_of(52, name, sizeof(name));
	CHECK(!changes_moved(a, f_inbox, 52, NULL, 0, &mv) &&
		      !changes_moved(a, 0, 0, name, f_archive, &mv),
	      "a queued mv the server refused: no alias left");
	CHECK(in_index(f_inbox, 52) && srv_has(INBOX, 52),
	      "and the message is back where it was");
	srv_delay(0);

	/* Another target: a new run, done at once, refused: an error. */
	srv_refuse(53, 53, true);
	rc = changes_move(a, f_inbox, 53, f_trash, &err);
	name_of(53, name, sizeof(name));
	CHECK(rc == MFS_E_NO && in_index(f_inbox, 53),
	      "an mv done at once and refused fails (%d: %s), row kept", rc,
	      err.msg);
	CHECK(!changes_moved(a, f_inbox, 53, NULL, 0, &mv) &&
		      !changes_moved(a, 0, 0, name, f_trash, &mv),
	      "and leaves no alias");
	srv_refuse(52, 53, false);
}

/* A server without SPECIAL-USE whose Trash is INBOX/Trash (Courier's
 * INBOX.Trash), shown at the top level: rm moves there.  Without any
 * Trash, rm says the server cannot, not that the file is missing. */
static void test_trash_below_inbox(const char *dir, struct pool *pool)
{
	char path[300];
	struct index *x = NULL;
	struct changes *c = NULL;
	struct mfs_error err = { 0 };
	int64_t in = 0, tr = 0;
	int mb_trash = fake_imap_mbox(srv, "INBOX/Trash", 13);
	int rc;

	snprintf(path, sizeof(path), "%s/index-courier.sqlite", dir);
	if (index_open(path, &x, &err) < 0 || mb_trash < 0) {
		CHECK(0, "a second index (%s)", err.msg);
		goto out;
	}
	index_folder_put(x, 0, "INBOX", "INBOX", '/', 0, &in, NULL);
	index_folder_set_state(x, in, 7, MAXUID + 1, 0, NULL);
	c = changes_new(&(struct changes_opts){ .ix = x, .pool = pool,
						.timeout_s = 5 });
	add_msg_to(x, INBOX, in, 150);
	rc = changes_delete(c, in, 150, &err);
	CHECK(rc == MFS_E_UNSUPPORTED, "rm with no Trash folder at all: "
	      "MFS_E_UNSUPPORTED (ENOTSUP), not a missing file (rc %d; %s)",
	      rc, err.msg);
	CHECK(srv_has(INBOX, 150), "... and the message stays");

	index_folder_put(x, 0, "Trash", "INBOX/Trash", '/', 0, &tr, NULL);
	index_folder_set_state(x, tr, 13, MAXUID + 1, 0, NULL);
	memset(&err, 0, sizeof(err));
	rc = changes_delete(c, in, 150, &err);
	changes_flush(c);
	CHECK(rc == 0 && !srv_has(INBOX, 150) &&
	      srv_has(mb_trash, 150),
	      "rm with Trash as INBOX/Trash (no \\Trash mark): moved there "
	      "(rc %d; %s)", rc, err.msg);

	/* The tree shows INBOX/'s folders at the top: none can be made
	 * below INBOX, where it would not appear. */
	{
		unsigned from = fake_imap_ncmds(srv);
		int64_t nid = 0;

		index_meta_set(x, SYNC_META_STRIP, "INBOX/", NULL);
		memset(&err, 0, sizeof(err));
		rc = changes_mkdir(c, in, "New", &nid, &err);
		CHECK(rc == MFS_E_INVAL &&
		      fake_imap_count(srv, from, "CREATE", NULL) == 0,
		      "mkdir below INBOX with its prefix stripped: refused, "
		      "nothing sent (rc %d; %s)", rc, err.msg);
	}
out:
	changes_free(c);
	index_close(x);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	char dir[256], path[300];
	struct mfs_error err = { 0 };
	struct imap_opts io = { 0 };
	struct pool *pool = NULL;
	struct changes *a = NULL;
	struct changes_opts co;

	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "%s/mfs-changes-XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(path, sizeof(path), "%s/index.sqlite", dir);
	srv = fake_imap_start("IMAP4rev1 MOVE UIDPLUS");
	CHECK(srv != NULL, "the scripted IMAP server starts");
	if (srv) {
		INBOX = fake_imap_mbox(srv, "INBOX", 7);
		TRASH = fake_imap_mbox(srv, "Trash", 9);
		ARCHIVE = fake_imap_mbox(srv, "Archive", 11);
	}
	CHECK(index_open(path, &ix, &err) == 0, "an index in a temporary "
	      "directory (%s)", err.msg);
	if (!ix || !srv)
		goto out;
	index_folder_put(ix, 0, "INBOX", "INBOX", '/', 0, &f_inbox, NULL);
	index_folder_put(ix, 0, "Trash", "Trash", '/', IMAP_MB_TRASH, &f_trash,
			 NULL);
	index_folder_put(ix, 0, "Archive", "Archive", '/', 0, &f_archive,
			 NULL);
	index_folder_set_state(ix, f_inbox, 7, MAXUID + 1, 0, NULL);
	index_folder_set_state(ix, f_trash, 9, MAXUID + 1, 0, NULL);
	index_folder_set_state(ix, f_archive, 11, MAXUID + 1, 0, NULL);

	io = fake_imap_opts(srv);
	CHECK(pool_new(&io, 2, NULL, &pool) == 0, "a pool of 2 connections");
	co = (struct changes_opts){
		.ix = ix,
		.pool = pool,
		.timeout_s = 5,
		.hooks = { .folder_changed = folder_changed,
			   .msg_gone = msg_gone },
	};
	a = changes_new(&co);
	CHECK(a != NULL, "changes_new");
	if (!a)
		goto out;
	/* In this order: each starts a run of another kind than the last. */
	test_rm_run(a);
	test_expunge_run(a);
	test_refused(a);
	test_aliases(a);
	test_trash_below_inbox(dir, pool);
out:
	changes_free(a);
	pool_free(pool);
	index_close(ix);
	fake_imap_stop(srv);
	curl_global_cleanup();
	test_rm_rf(dir);
	return check_done();
}
