/* changes.c - file operations that change the mailbox.
 *
 * rm and mv of messages come one system call at a time, so a thousand of
 * them would be a thousand round trips.  The first of a run is carried
 * out at once; when more of the same kind (same source, same target)
 * follow within BULK_MS, they are queued, hidden from the index at once,
 * and sent as one UID MOVE / UID EXPUNGE of a UID set when the run pauses
 * for FLUSH_MS or reaches MAX_BATCH.  Their callers were told it is
 * done, so a broken connection is not the end of a batch (uid_cmd_run);
 * a refusal puts them back (and into the log).  Whatever needs the truth first (a listing of either folder,
 * rmdir, a folder rename, a refresh, fsync of a directory, unmount)
 * flushes the queue and waits for it. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "changes.h"
#include "folders.h"
#include "imap_parse.h"
#include "log.h"

#define BULK_MS 500
#define FLUSH_MS 20
#define MAX_BATCH 500
/* After mv, coreutils stats the target name, which a derived name never
 * is: the moved message answers to it (and to its old inode) a while. */
#define ALIASES 256
#define ALIAS_MS 10000

struct alias {
	int64_t src, dest;
	uint32_t uid;
	uint64_t size;
	int64_t date;
	int64_t ms;
	char *name;	/* base name, without .eml */
};

/* A queued message: a copy of its row, which a refused batch puts back
 * as it was.  The strings belong to the queue (then the flusher). */
struct queued {
	uint32_t uid;
	uint64_t size;
	int64_t date, internaldate;
	bool unfilled;
	char *flags, *message_id, *name, *sender, *subject;
};

struct changes {
	struct changes_opts o;
	pthread_t thread;
	/* Guards everything below but sending, which is the flusher's. */
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* to the flusher: work, or stop */
	pthread_cond_t idle;	/* from the flusher: queue empty */
	bool stop, running, busy;
	/* The run so far: the last change done or queued. */
	int64_t run_src, run_dest;
	int64_t run_ms;
	/* The queue: one (source, target) at a time; target 0 = expunge. */
	int64_t q_src, q_dest;
	struct queued *q;
	size_t nq;
	struct queued *sending;	/* the flusher's batch, off the lock */
	int64_t q_ms;		/* when the last one was queued */
	struct alias aliases[ALIASES];
	unsigned nalias;	/* next slot, round robin */
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *flusher_main(void *arg);

struct changes *changes_new(const struct changes_opts *o)
{
	struct changes *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->o = *o;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	pthread_cond_init(&a->idle, NULL);
	a->q = calloc(MAX_BATCH, sizeof(*a->q));
	a->sending = calloc(MAX_BATCH, sizeof(*a->sending));
	if (!a->q || !a->sending ||
	    pthread_create(&a->thread, NULL, flusher_main, a) != 0) {
		free(a->q);
		free(a->sending);
		free(a);
		return NULL;
	}
	a->running = true;
	return a;
}

void changes_free(struct changes *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	/* The flusher sends what is queued before it exits. */
	pthread_join(a->thread, NULL);
	pthread_cond_destroy(&a->cond);
	pthread_cond_destroy(&a->idle);
	pthread_mutex_destroy(&a->lock);
	free(a->q);
	free(a->sending);
	for (unsigned i = 0; i < ALIASES; i++)
		free(a->aliases[i].name);
	free(a);
}

static void remember_move(struct changes *a, int64_t src, int64_t dest,
			  uint32_t uid, uint64_t size, int64_t date,
			  const char *name)
{
	struct alias *al;
	char *copy = strdup(name);

	if (!copy)
		return;		/* only mv's stat afterwards suffers */
	pthread_mutex_lock(&a->lock);
	al = &a->aliases[a->nalias++ % ALIASES];
	free(al->name);
	*al = (struct alias){ src, dest, uid, size, date, mono_ms(), copy };
	pthread_mutex_unlock(&a->lock);
}

/* The move of src/uid failed: its name in dest must not resolve to it. */
static void forget_move(struct changes *a, int64_t src, uint32_t uid)
{
	pthread_mutex_lock(&a->lock);
	for (unsigned i = 0; i < ALIASES; i++) {
		struct alias *al = &a->aliases[i];

		if (al->name && al->src == src && al->uid == uid) {
			free(al->name);
			al->name = NULL;
		}
	}
	pthread_mutex_unlock(&a->lock);
}

bool changes_moved(struct changes *a, int64_t src, uint32_t uid, const char *name,
	       int64_t dest, struct changes_moved *out)
{
	bool found = false;
	int64_t now = mono_ms();

	if (!a)
		return false;
	pthread_mutex_lock(&a->lock);
	for (unsigned i = 0; !found && i < ALIASES; i++) {
		const struct alias *al = &a->aliases[i];

		if (!al->name || now - al->ms > ALIAS_MS)
			continue;
		found = name ? al->dest == dest && strcmp(al->name, name) == 0 :
			       al->src == src && al->uid == uid;
		if (found)
			*out = (struct changes_moved){ al->src, al->uid, al->size,
						   al->date };
	}
	pthread_mutex_unlock(&a->lock);
	return found;
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

static int folder(struct changes *a, int64_t id, struct folder_info *fi,
		  struct mfs_error *err)
{
	memset(fi, 0, sizeof(*fi));
	return index_folder_get(a->o.ix, id, get_folder, fi, err);
}

struct msg_info {
	char name[NAMES_MAX + 1];
	uint64_t size;
	int64_t date;
};

static int get_msg(void *ctx, const struct ix_msg *m)
{
	struct msg_info *mi = ctx;

	snprintf(mi->name, NAMES_MAX + 1, "%s", m->name);
	mi->size = m->size;
	mi->date = m->date;
	return 0;
}

static int with_conn(struct changes *a, struct imap_conn **c,
		     struct mfs_error *err)
{
	return pool_get(a->o.pool, a->o.timeout_s, c, err);
}

static void changed(struct changes *a, int64_t folder)
{
	if (a->o.hooks.folder_changed)
		a->o.hooks.folder_changed(a->o.hooks.ctx, folder);
}

/* A write found the folder recreated under its name (MFS_E_STALE) or
 * gone: nothing was done; have the sync rebuild it, so the listing shows
 * what the folder now holds. */
static void stale_check(struct changes *a, int64_t folder, int rc)
{
	if ((rc == MFS_E_STALE || rc == MFS_E_NO) && a->o.sync)
		sync_request(a->o.sync, folder);
}

/* The message is gone from folder on the server: from the index too. */
static void forget_msg(struct changes *a, int64_t folder, uint32_t uid,
		       const char *name)
{
	index_msg_delete(a->o.ix, folder, uid, NULL);
	if (a->o.hooks.msg_gone)
		a->o.hooks.msg_gone(a->o.hooks.ctx, folder, uid, name);
	changed(a, folder);
}

/* One UID command that changes the mailbox: a flag store (flags), a move
 * (dest) or an expunge (neither). */
struct uid_cmd {
	const char *wire;
	uint32_t uidvalidity;
	const char *set;	/* UID set; uid for a flag store */
	uint32_t uid;
	const char *flags;
	const char *dest;
};

static int uid_cmd_once(struct imap_conn *c, const struct uid_cmd *u,
			struct mfs_error *err)
{
	if (u->flags)
		return imap_store_flags(c, u->wire, u->uidvalidity, u->uid,
					u->flags, err);
	if (u->dest)
		return imap_move(c, u->wire, u->uidvalidity, u->set, u->dest,
				 NULL, err);
	return imap_expunge(c, u->wire, u->uidvalidity, u->set, err);
}

/* Run a UID command on a pooled connection, again when the connection
 * broke.  One that sat in the pool may have been closed meanwhile (idle
 * timeout, a network blip): MFS_E_CLOSED is tried again at once until
 * each pooled connection has had its turn (a broken one is dropped, so
 * the last try is on a new one).  A queued batch, whose callers were told
 * it is done, also waits out a cut, a stall or a failed connect, for up to
 * twice the timeout in all.  Each try SELECTs the folder afresh and
 * compares its UIDVALIDITY.  A flag store or an expunge may simply be
 * sent again.  A move may not: when the command may have reached the
 * server, the server may still be carrying it out, and two sessions
 * moving one message at once can leave two copies (Dovecot does).  So
 * after such a failure the next try first waits RESOLVE_MS, then asks
 * which UIDs are still in the folder and moves only those (none left: the
 * lost try did it).  Without MOVE (UID COPY, which a second time copies
 * again) a move is not tried again once it may have reached the server. */
#define RESOLVE_MS 1000

static int uid_cmd_run(struct changes *a, const struct uid_cmd *u0, bool queued,
		       struct mfs_error *err)
{
	struct uid_cmd u = *u0;
	char *left = NULL;
	bool unsure = false;	/* a try of the move may have reached it */
	int64_t start = mono_ms();
	unsigned waits = 0;
	int rc;

	for (unsigned tries = 1;; tries++) {
		struct imap_conn *c = NULL;
		bool sent = false, again = true;
		int64_t delay;

		rc = with_conn(a, &c, err);
		if (rc == 0 && unsure) {
			free(left);
			left = NULL;
			u.set = u0->set;
			rc = imap_uids_left(c, u.wire, u.uidvalidity, u0->set,
					    &left, err);
			if (rc == 0) {
				unsure = false;
				u.set = left;
				log_debug(LOG_CAT_FS, "%s: of UIDs %s, %s left "
					  "to move", u.wire, u0->set,
					  *left ? left : "none");
			}
		}
		if (rc == 0 && !(u.set && !*u.set)) {
			again = !u.dest || (imap_caps(c) & IMAP_CAP_MOVE);
			rc = uid_cmd_once(c, &u, err);
			/* Only a completed SELECT is followed by the command. */
			sent = rc < 0 && imap_is_selected(c, u.wire);
		}
		if (c)
			pool_put(a->o.pool, c);
		/* A TLS failure here is a handshake cut short as often as a
		 * bad certificate; the time bound ends the latter. */
		if (rc == 0 || (sent && !again) ||
		    !(mfs_is_transient(rc) || rc == MFS_E_TLS))
			break;
		if (rc == MFS_E_CLOSED && tries <= pool_size(a->o.pool))
			delay = 0;
		else if (queued)
			delay = (int64_t)250 << (waits < 3 ? waits++ : 3);
		else
			break;
		if (sent && u.dest) {
			unsure = true;
			delay = delay > RESOLVE_MS ? delay : RESOLVE_MS;
		}
		if (mono_ms() - start + delay > 2000 * (int64_t)a->o.timeout_s)
			break;
		log_debug(LOG_CAT_FS, "%s: %s; trying again%s", u.wire,
			  err && err->msg[0] ? err->msg : mfs_strerror(rc),
			  delay ? " shortly" : "");
		if (delay) {
			struct timespec ts = { delay / 1000,
					       (delay % 1000) * 1000000 };

			nanosleep(&ts, NULL);
		}
	}
	free(left);
	return rc;
}

int changes_set_flags(struct changes *a, int64_t id, uint32_t uid, const char *flags,
		  struct mfs_error *err)
{
	struct folder_info f;
	int rc;

	if (imap_flags_valid(flags) < 0)
		return mfs_fail(err, MFS_E_INVAL, "not a list of IMAP flags: '%s'",
				flags);
	rc = folder(a, id, &f, err);
	if (rc == 0 && !f.wire)
		rc = MFS_E_NOTFOUND;
	if (rc == 0) {
		struct uid_cmd u = { .wire = f.wire,
				     .uidvalidity = f.uidvalidity,
				     .uid = uid,
				     .flags = flags };

		rc = uid_cmd_run(a, &u, false, err);
	}
	if (rc == 0)
		rc = index_msg_set_flags(a->o.ix, id, uid, flags, err);
	stale_check(a, id, rc);
	free(f.wire);
	return rc;
}

/* The Trash folder (folders_special), 0 when there is none. */
static int64_t trash_id(struct changes *a)
{
	int64_t id = 0;

	folders_special(a->o.ix, FOLDERS_TRASH, a->o.trash, &id, NULL, NULL);
	return id;
}

static int move_now(struct changes *a, int64_t id, uint32_t uid, int64_t dest,
		    struct mfs_error *err)
{
	struct folder_info f, d = { 0 };
	struct msg_info m = { .size = 0 };
	struct uid_cmd u;
	char set[16];
	int rc;

	rc = folder(a, id, &f, err);
	if (rc == 0 && dest)
		rc = folder(a, dest, &d, err);
	if (rc == 0 && (!f.wire || (dest && !d.wire)))
		rc = mfs_fail(err, MFS_E_INVAL, "not a folder that holds mail");
	if (rc == 0)
		rc = index_msg_get(a->o.ix, id, uid, get_msg, &m, err);
	if (rc == 0 && dest)
		remember_move(a, id, dest, uid, m.size, m.date, m.name);
	if (rc < 0)
		goto out;
	snprintf(set, sizeof(set), "%u", uid);
	u = (struct uid_cmd){ .wire = f.wire,
			      .uidvalidity = f.uidvalidity,
			      .set = set,
			      .dest = dest ? d.wire : NULL };
	rc = uid_cmd_run(a, &u, false, err);
	stale_check(a, id, rc);
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
	if (rc < 0 && dest)
		forget_move(a, id, uid);
	free(f.wire);
	free(d.wire);
	return rc;
}

/* ---- the queue ---- */

static void free_queued(struct queued *q)
{
	free(q->flags);
	free(q->message_id);
	free(q->name);
	free(q->sender);
	free(q->subject);
	memset(q, 0, sizeof(*q));
}

/* Send the batch (taken off the queue by the caller) as one command. */
static void send_batch(struct changes *a, int64_t src, int64_t dest,
		       struct queued *b, size_t n)
{
	struct mfs_error err = { 0 };
	struct folder_info f, d = { 0 };
	char *set = NULL;
	size_t len = 0, cap = 0;
	int rc;

	rc = folder(a, src, &f, &err);
	if (rc == 0 && dest)
		rc = folder(a, dest, &d, &err);
	if (rc == 0 && (!f.wire || (dest && !d.wire)))
		rc = mfs_fail(&err, MFS_E_INVAL, "folder has gone");
	/* UIDs come in name order; the set need not be sorted. */
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (len + 12 > cap) {
			char *p;

			cap = cap ? cap * 2 : 4096;
			p = realloc(set, cap);
			if (!p) {
				rc = mfs_fail(&err, MFS_E_NOMEM, "out of memory");
				break;
			}
			set = p;
		}
		len += (size_t)snprintf(set + len, cap - len, "%s%u",
					i ? "," : "", b[i].uid);
	}
	if (rc == 0) {
		struct uid_cmd u = { .wire = f.wire,
				     .uidvalidity = f.uidvalidity,
				     .set = set,
				     .dest = dest ? d.wire : NULL };

		rc = uid_cmd_run(a, &u, true, &err);
	}
	stale_check(a, src, rc);
	if (rc == 0) {
		log_debug(LOG_CAT_FS, "%s %zu messages of %s%s%s",
			  dest ? "moved" : "expunged", n, f.wire,
			  dest ? " to " : "", dest ? d.wire : "");
		/* A resync between hiding a row and queueing it may have put
		 * it back: the server has done it now, so out for good. */
		for (size_t i = 0; i < n; i++)
			index_msg_delete(a->o.ix, src, b[i].uid, NULL);
		if (dest) {
			changed(a, dest);
			if (a->o.sync)
				sync_request(a->o.sync, dest);
		}
	} else {
		/* Nothing happened on the server (a MOVE is atomic; the
		 * fallback expunges only after copying): show them again. */
		log_msg(LOG_WARNING, "%s of %zu messages in %s refused, they "
			"are back: %s", dest ? "move" : "delete", n,
			f.wire ? f.wire : "?", err.msg);
		for (size_t i = 0; i < n; i++) {
			struct ix_msg m = { .folder = src, .uid = b[i].uid,
					    .size = b[i].size,
					    .date = b[i].date,
					    .flags = b[i].flags,
					    .message_id = b[i].message_id,
					    .name = b[i].name,
					    .sender = b[i].sender,
					    .subject = b[i].subject,
					    .internaldate = b[i].internaldate,
					    .unfilled = b[i].unfilled };

			index_msg_put(a->o.ix, &m, NULL);
			if (dest)
				forget_move(a, src, b[i].uid);
		}
		changed(a, src);
	}
	free(set);
	free(f.wire);
	free(d.wire);
}

static void *flusher_main(void *arg)
{
	struct changes *a = arg;
	struct queued *b = a->sending;

	pthread_mutex_lock(&a->lock);
	for (;;) {
		int64_t src, dest, wait;
		size_t n;

		if (a->nq == 0) {
			a->busy = false;
			pthread_cond_broadcast(&a->idle);
			if (a->stop)
				break;
			pthread_cond_wait(&a->cond, &a->lock);
			continue;
		}
		wait = a->q_ms + FLUSH_MS - mono_ms();
		if (wait > 0 && a->nq < MAX_BATCH && !a->stop && !a->busy) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += wait * 1000000;
			until.tv_sec += until.tv_nsec / 1000000000;
			until.tv_nsec %= 1000000000;
			pthread_cond_timedwait(&a->cond, &a->lock, &until);
			continue;
		}
		/* busy here means someone is waiting in changes_flush. */
		n = a->nq;
		src = a->q_src;
		dest = a->q_dest;
		memcpy(b, a->q, n * sizeof(*b));
		memset(a->q, 0, n * sizeof(*a->q));
		a->nq = 0;
		a->busy = true;
		pthread_mutex_unlock(&a->lock);
		send_batch(a, src, dest, b, n);
		for (size_t i = 0; i < n; i++)
			free_queued(&b[i]);
		pthread_mutex_lock(&a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

void changes_flush(struct changes *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	if (a->nq > 0) {
		a->busy = true;	/* send now, don't wait for the pause */
		pthread_cond_signal(&a->cond);
	}
	while (a->nq > 0 || a->busy)
		pthread_cond_wait(&a->idle, &a->lock);
	pthread_mutex_unlock(&a->lock);
}

struct row_copy {
	struct queued *q;
};

static int copy_row(void *ctx, const struct ix_msg *m)
{
	struct queued *q = ((struct row_copy *)ctx)->q;

	q->uid = m->uid;
	q->size = m->size;
	q->date = m->date;
	q->flags = strdup(m->flags ? m->flags : "");
	q->message_id = m->message_id ? strdup(m->message_id) : NULL;
	q->name = strdup(m->name);
	q->internaldate = m->internaldate;
	q->unfilled = m->unfilled;
	q->sender = m->sender ? strdup(m->sender) : NULL;
	q->subject = m->subject ? strdup(m->subject) : NULL;
	if (!q->flags || !q->name || (m->message_id && !q->message_id) ||
	    (m->sender && !q->sender) || (m->subject && !q->subject))
		return MFS_E_NOMEM;
	return 0;
}

/* Part of a run of the same change: queue it (1), or do it now (0). */
static int queue_or_not(struct changes *a, int64_t id, uint32_t uid,
			int64_t dest, struct mfs_error *err)
{
	struct queued q = { 0 };
	struct row_copy rc_ = { &q };
	bool bulk;
	int rc;

	pthread_mutex_lock(&a->lock);
	bulk = a->run_src == id && a->run_dest == dest &&
	       mono_ms() - a->run_ms < BULK_MS;
	a->run_src = id;
	a->run_dest = dest;
	a->run_ms = mono_ms();
	pthread_mutex_unlock(&a->lock);
	if (!bulk)
		return 0;
	rc = index_msg_get(a->o.ix, id, uid, copy_row, &rc_, err);
	if (rc < 0) {
		free_queued(&q);
		return rc;
	}
	/* Gone from the listing before it is queued: once queued, the
	 * flusher owns q's strings (and may free them at once), and a
	 * refused batch puts the row back, which must come after this. */
	if (dest)
		remember_move(a, id, dest, uid, q.size, q.date, q.name);
	forget_msg(a, id, uid, q.name);
	pthread_mutex_lock(&a->lock);
	/* A queue for another pair goes first, and a full one. */
	while (a->nq > 0 && (a->q_src != id || a->q_dest != dest ||
			     a->nq == MAX_BATCH)) {
		a->busy = true;
		pthread_cond_signal(&a->cond);
		pthread_cond_wait(&a->idle, &a->lock);
	}
	a->q_src = id;
	a->q_dest = dest;
	a->q[a->nq++] = q;
	a->q_ms = mono_ms();
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	return 1;	/* the server follows within FLUSH_MS */
}

static int move_or_expunge(struct changes *a, int64_t id, uint32_t uid,
			   int64_t dest, struct mfs_error *err)
{
	int rc = queue_or_not(a, id, uid, dest, err);

	if (rc == 0)
		rc = move_now(a, id, uid, dest, err);
	pthread_mutex_lock(&a->lock);
	if (rc >= 0)
		a->run_ms = mono_ms();	/* the run continues from here */
	else
		a->run_src = -1;	/* a refusal ends it: the next one
					   is tried at once, and answered */
	pthread_mutex_unlock(&a->lock);
	return rc < 0 ? rc : 0;
}

int changes_delete(struct changes *a, int64_t id, uint32_t uid, struct mfs_error *err)
{
	int64_t trash = a->o.expunge ? 0 : trash_id(a);

	if (!a->o.expunge && !trash)
		return mfs_fail(err, MFS_E_UNSUPPORTED,
				"no Trash folder on the server (set "
				"trash_folder or delete=expunge)");
	return move_or_expunge(a, id, uid, trash == id ? 0 : trash, err);
}

int changes_move(struct changes *a, int64_t id, uint32_t uid, int64_t dest,
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

/* Wire name for UTF-8 name under parent (0: top level).  With the
 * personal namespace prefix stripped from the tree (sync.h), the top
 * level is under that prefix, and the folder the prefix names (INBOX)
 * shows no children: a new one there would appear at the top. */
static int child_wire(struct changes *a, int64_t parent, const char *name,
		      char **wire, char *delim, struct mfs_error *err)
{
	struct folder_info p = { 0 };
	struct delim_ctx dc = { 0 };
	char strip[IMAP_NS_PREFIX_MAX] = "";
	size_t sl;
	char *enc = NULL;
	int rc;

	if (index_meta_get(a->o.ix, SYNC_META_STRIP, strip, sizeof(strip),
			   NULL) < 0)
		strip[0] = '\0';
	sl = strlen(strip);
	index_folder_all(a->o.ix, any_delim, &dc, NULL);
	if (parent) {
		rc = folder(a, parent, &p, err);
		if (rc < 0)
			return rc;
		if (p.delim)
			dc.delim = p.delim;
	} else if (sl) {
		dc.delim = strip[sl - 1];
	}
	*delim = dc.delim ? dc.delim : '/';
	if (!name[0] || strchr(name, *delim) || name[0] == '.' ||
	    strlen(name) > NAMES_MAX) {
		free(p.wire);
		return mfs_fail(err, MFS_E_INVAL, "unusable folder name '%s'",
				name);
	}
	if (p.wire && sl && strlen(p.wire) + 1 == sl &&
	    strncmp(p.wire, strip, sl - 1) == 0) {
		free(p.wire);
		return mfs_fail(err, MFS_E_INVAL,
				"folders under %s are shown at the top level "
				"(strip_prefix): make '%s' there", p.name,
				name);
	}
	rc = imap_utf7_encode(name, &enc);
	if (rc == 0 && parent && !p.wire)
		rc = mfs_fail(err, MFS_E_INVAL, "parent has no server name");
	if (rc == 0) {
		if (parent) {
			if (asprintf(wire, "%s%c%s", p.wire, *delim, enc) < 0)
				rc = MFS_E_NOMEM;
		} else if (asprintf(wire, "%s%s", strip, enc) < 0) {
			rc = MFS_E_NOMEM;
		}
	}
	free(enc);
	free(p.wire);
	return rc;
}

int changes_mkdir(struct changes *a, int64_t parent, const char *name, int64_t *id,
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

int changes_rmdir(struct changes *a, int64_t id, struct mfs_error *err)
{
	struct folder_info f;
	struct imap_conn *c = NULL;
	struct imap_mbstate st = { 0 };
	unsigned msgs = 0, kids = 0;
	int rc;

	changes_flush(a);	/* rm -r of its messages may still be queued */
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
		/* One of the same name made by another client since is not
		 * the folder the user saw empty. */
		if (rc == 0 && !(f.flags & IMAP_MB_NOSELECT) &&
		    f.uidvalidity && st.uidvalidity != f.uidvalidity)
			rc = mfs_fail(err, MFS_E_STALE,
				      "%s was recreated by another client: "
				      "not deleted", f.wire);
		if (rc == 0 && st.exists)
			rc = mfs_fail(err, MFS_E_NOTEMPTY,
				      "folder is not empty on the server");
		if (rc == 0)
			rc = imap_delete(c, f.wire, err);
		pool_put(a->o.pool, c);
	}
	stale_check(a, id, rc);
	if (rc == 0)
		rc = index_folder_drop(a->o.ix, id, false, NULL, err);
	if (rc == 0)
		changed(a, f.parent);
out:
	free(f.wire);
	return rc;
}

int changes_rename_folder(struct changes *a, int64_t id, int64_t new_parent,
		      const char *new_name, struct mfs_error *err)
{
	struct folder_info f;
	struct imap_conn *c = NULL;
	char *wire = NULL;
	char delim;
	int rc;

	changes_flush(a);	/* queued moves name the folder by its old name */
	rc = folder(a, id, &f, err);
	if (rc == 0 && !f.wire)
		rc = mfs_fail(err, MFS_E_INVAL, "not a server folder");
	if (rc == 0)
		rc = child_wire(a, new_parent, new_name, &wire, &delim, err);
	if (rc == 0)
		rc = with_conn(a, &c, err);
	if (rc == 0) {
		/* Renaming takes the messages with it: only the folder the
		 * user saw, not one made since under the same name. */
		if (!(f.flags & IMAP_MB_NOSELECT) && f.uidvalidity)
			rc = imap_check_validity(c, f.wire, f.uidvalidity, err);
		if (rc == 0)
			rc = imap_rename(c, f.wire, wire, err);
		pool_put(a->o.pool, c);
	}
	stale_check(a, id, rc);
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

/* ---- appends: copies into a folder, and the Sent copy of sent mail ---- */

/* Candidates fetched to compare a message without a Message-ID with:
 * messages of exactly its size are rare, so this is seldom reached. */
#define SAME_SIZE_MAX 32

struct same_ctx {
	const char *data;
	size_t len;
	bool found;
};

static int same_tmp(void *ctx)
{
	int fd = memfd_create("mailfs-compare", MFD_CLOEXEC);

	(void)ctx;
	return fd < 0 ? MFS_E_IO : fd;
}

static int same_body(void *ctx, uint32_t uid, int fd, uint64_t len)
{
	struct same_ctx *sc = ctx;
	char buf[65536];
	size_t off = 0;

	(void)uid;
	while (!sc->found && len == sc->len && off < len) {
		ssize_t n = pread(fd, buf, sizeof(buf), (off_t)off);

		if (n <= 0 || memcmp(buf, sc->data + off, (size_t)n) != 0)
			break;
		off += (size_t)n;
		if (off == len)
			sc->found = true;
	}
	close(fd);
	return 0;
}

/* Does the folder hold a message with exactly these bytes?  For messages
 * without a Message-ID (or with one hidden by a broken header): compared
 * with the server's copies of the same size, not with the index. */
static int has_same_bytes(struct imap_conn *c, const char *wire,
			  const char *data, size_t len, bool *found,
			  struct mfs_error *err)
{
	struct same_ctx sc = { data, len, false };
	struct imap_mbstate st;
	uint32_t uids[SAME_SIZE_MAX];
	size_t n = 0;
	int rc;

	*found = false;
	rc = imap_examine_keep(c, wire, &st, err);
	if (rc == 0)
		rc = imap_search_size(c, wire, len, uids, SAME_SIZE_MAX, &n,
				      err);
	if (rc == 0 && n > 0)
		/* Same size: a longer body is not this message. */
		rc = imap_fetch_bodies(c, wire, st.uidvalidity, uids, n, len,
				       same_tmp, same_body, &sc, err);
	*found = rc == 0 && sc.found;
	return rc;
}

int changes_append(struct changes *a, int64_t id, const char *data,
		   size_t len, const char *message_id, time_t date, bool *dup,
		   struct mfs_error *err)
{
	struct folder_info f;
	struct imap_conn *c = NULL;
	int rc;

	*dup = false;
	rc = folder(a, id, &f, err);
	if (rc == 0 && !f.wire)
		rc = mfs_fail(err, MFS_E_INVAL, "not a server folder");
	if (rc == 0)
		rc = with_conn(a, &c, err);
	/* Only the server knows: the index may still hold a message another
	 * client deleted, or miss one restored a moment ago. */
	if (rc == 0 && message_id)
		rc = imap_has_message(c, f.wire, message_id, len, dup, err);
	else if (rc == 0)
		rc = has_same_bytes(c, f.wire, data, len, dup, err);
	if (rc == 0 && !*dup)
		rc = imap_append(c, f.wire, NULL, date, data, len, err);
	if (c)
		pool_put(a->o.pool, c);
	if (rc == 0 && !*dup && a->o.sync)
		sync_request(a->o.sync, id);
	free(f.wire);
	return rc;
}

int changes_save_sent(struct changes *a, const char *data, size_t len,
		      struct mfs_error *err)
{
	struct imap_conn *c = NULL;
	char strip[IMAP_NS_PREFIX_MAX] = "";
	char *wire = NULL, *enc = NULL;
	int64_t id;
	int rc;

	rc = folders_special(a->o.ix, FOLDERS_SENT, a->o.sent, &id, &wire,
			     err);
	if (rc == 0 && !wire && a->o.sent) {
		rc = imap_utf7_encode(a->o.sent, &wire);
	} else if (rc == 0 && !wire) {
		/* No Sent folder yet: "Sent" at the top of the tree (the
		 * server may answer [TRYCREATE]). */
		index_meta_get(a->o.ix, SYNC_META_STRIP, strip, sizeof(strip),
			       NULL);
		rc = imap_utf7_encode("Sent", &enc);
		if (rc == 0 && asprintf(&wire, "%s%s", strip, enc) < 0) {
			wire = NULL;
			rc = MFS_E_NOMEM;
		}
		free(enc);
	}
	if (rc < 0)
		return mfs_fail(err, rc, "cannot name the Sent folder");
	rc = with_conn(a, &c, err);
	if (rc == 0) {
		rc = imap_append(c, wire, "\\Seen", 0, data, len, err);
		pool_put(a->o.pool, c);
	}
	free(wire);
	return rc;
}
