/* queue.c - the outbox spool: a thread that sends settled files, with the
 * state of each kept on disk so nothing is lost across crashes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "outbox.h"

#define MAX_MESSAGE (64u * 1024 * 1024)
#define TEMP_PREFIX ".new-"

/* ST_UNSAVED: accepted by the server, but the Sent copy was given up on;
 * terminal like ST_FAILED, and never sent again by itself. */
enum state {
	ST_QUEUED,
	ST_SENDING,
	ST_SAVING,
	ST_RETRYING,
	ST_FAILED,
	ST_UNSAVED,
	ST_COUNT
};

static const char *const state_names[ST_COUNT] = {
	"queued", "sending", "saving", "retrying", "failed", "unsaved"
};

struct record {
	enum state state;
	unsigned attempts;
	unsigned saves;		/* attempts at the Sent copy */
	long long first;	/* first attempt, epoch seconds */
	long long sent;		/* accepted by the server (saving) */
	long long next;		/* next attempt (retrying, saving) */
	long long mtime;	/* the file as it was when last looked at */
	long long mtime_ns;	/* -1: not recorded (older state files) */
	long long size;
	char reply[300];
};

/* A record the spool would not take (full, read-only): kept here until a
 * write succeeds, so that the state machine goes on (backing off, never
 * sending twice) while the disk is in trouble.  Lost with the process;
 * the disk then has the last record it took. */
struct memrec {
	char *name;
	struct record r;
};

struct writer {
	char *name;
	unsigned n;		/* opens for writing */
};

/* A version of a file that a failed write left incomplete: never sent,
 * whatever its record says, until it is written again. */
struct spoiled {
	char *name;
	long long mtime, mtime_ns, size;
	int errnum;
};

struct outbox {
	struct outbox_opts o;
	char *dir;
	char *state_dir;
	pthread_t thread;
	/* Guards everything below and the state files.  The FUSE side takes
	 * it for every open, release, unlink and getxattr in outbox/, so it
	 * is never held across network I/O. */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop, kicked;
	/* The message the thread is submitting or saving with the lock
	 * dropped ("" when none), and what happened to its file meanwhile.
	 * Its state files stay until the outcome is recorded: a deleted
	 * message that the server had already accepted still gets its
	 * Sent copy. */
	char busy[NAME_MAX + 1];
	bool busy_gone;		/* deleted, renamed away or over */
	bool busy_touched;	/* opened for writing */
	struct writer *writers;
	size_t nwriters, capwriters;
	struct memrec *mem;
	size_t nmem, capmem;
	struct spoiled *spoiled;
	size_t nspoiled, capspoiled;
};

static void say(struct outbox *q, bool error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(struct outbox *q, bool error, const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	if (!q->o.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	q->o.log(q->o.ctx, error, msg);
}

bool outbox_ignored(const char *name)
{
	static const char *const patterns[] = { ".*", "*~", "*.swp", "*.tmp",
						"#*#", "*.error" };

	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
		if (fnmatch(patterns[i], name, 0) == 0)
			return true;
	return false;
}

bool outbox_name_ok(const char *name)
{
	return outbox_ignored(name) || strlen(name) <= OUTBOX_NAME_MAX;
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -1;
	if (fsync(fd) < 0)
		rc = -1;
	close(fd);
	return rc;
}

/* Write path (in dir) atomically and durably: a temporary with a short
 * name of its own in the state directory (so that no suffix can make a
 * name too long), fsync, rename, fsync of dir.  0 or -errno. */
static int write_file(struct outbox *q, const char *dir, const char *path,
		      const char *data, size_t len)
{
	char tmp[PATH_MAX];
	int fd, e = 0;

	snprintf(tmp, sizeof(tmp), "%s/" TEMP_PREFIX "XXXXXX", q->state_dir);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			goto out;
		}
		data += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0)
		e = errno;
	if (close(fd) < 0 && !e)
		e = errno;
	fd = -1;
	if (!e && rename(tmp, path) < 0)
		e = errno;
	if (!e && sync_dir(dir) < 0)
		e = errno;
out:
	if (fd >= 0)
		close(fd);
	if (e)
		unlink(tmp);
	return -e;
}

static void state_path(struct outbox *q, const char *name, const char *ext,
		       char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s%s", q->state_dir, name, ext);
}

/* arr (n elements of sz bytes, room for *cap) with room for one more:
 * arr itself or its reallocation, NULL (arr untouched) when out of
 * memory. */
static void *grow(void *arr, size_t n, size_t *cap, size_t sz)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return arr;
	ncap = *cap ? 2 * *cap : 8;
	p = realloc(arr, ncap * sz);
	if (p)
		*cap = ncap;
	return p;
}

static struct memrec *mem_find(struct outbox *q, const char *name)
{
	for (size_t i = 0; i < q->nmem; i++)
		if (strcmp(q->mem[i].name, name) == 0)
			return &q->mem[i];
	return NULL;
}

static void mem_drop(struct outbox *q, const char *name)
{
	struct memrec *m = mem_find(q, name);

	if (!m)
		return;
	free(m->name);
	*m = q->mem[--q->nmem];
}

static void mem_put(struct outbox *q, const char *name, const struct record *r)
{
	struct memrec *m = mem_find(q, name);

	if (!m) {
		char *copy;

		void *p = grow(q->mem, q->nmem, &q->capmem, sizeof(*q->mem));

		if (!p)
			return;
		q->mem = p;
		if (!(copy = strdup(name)))
			return;
		m = &q->mem[q->nmem++];
		m->name = copy;
	}
	m->r = *r;
}

static struct spoiled *spoil_find(struct outbox *q, const char *name)
{
	for (size_t i = 0; i < q->nspoiled; i++)
		if (strcmp(q->spoiled[i].name, name) == 0)
			return &q->spoiled[i];
	return NULL;
}

static void spoil_drop(struct outbox *q, const char *name)
{
	struct spoiled *sp = spoil_find(q, name);

	if (!sp)
		return;
	free(sp->name);
	*sp = q->spoiled[--q->nspoiled];
}

static void spoil_put(struct outbox *q, const char *name,
		      const struct stat *st, int errnum)
{
	struct spoiled *sp = spoil_find(q, name);

	if (!sp) {
		char *copy;

		void *p = grow(q->spoiled, q->nspoiled, &q->capspoiled,
			       sizeof(*q->spoiled));

		if (!p)
			return;
		q->spoiled = p;
		if (!(copy = strdup(name)))
			return;
		sp = &q->spoiled[q->nspoiled++];
		sp->name = copy;
	}
	sp->mtime = (long long)st->st_mtim.tv_sec;
	sp->mtime_ns = (long long)st->st_mtim.tv_nsec;
	sp->size = (long long)st->st_size;
	sp->errnum = errnum;
}

/* Is st the version a failed write left?  (A newer one clears it.) */
static struct spoiled *spoiled(struct outbox *q, const char *name,
			       const struct stat *st)
{
	struct spoiled *sp = spoil_find(q, name);

	if (sp && (sp->mtime != (long long)st->st_mtim.tv_sec ||
		   sp->mtime_ns != (long long)st->st_mtim.tv_nsec ||
		   sp->size != (long long)st->st_size)) {
		spoil_drop(q, name);
		sp = NULL;
	}
	return sp;
}

static bool load(struct outbox *q, const char *name, struct record *r)
{
	char path[PATH_MAX], line[400];
	struct memrec *m = mem_find(q, name);
	FILE *f;

	if (m) {
		*r = m->r;
		return true;
	}
	memset(r, 0, sizeof(*r));
	r->mtime_ns = -1;
	state_path(q, name, "", path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *v = strchr(line, ' ');

		if (!v)
			continue;
		*v++ = '\0';
		v[strcspn(v, "\n")] = '\0';
		if (strcmp(line, "state") == 0) {
			for (size_t i = 0; i < ST_COUNT; i++)
				if (strcmp(v, state_names[i]) == 0)
					r->state = (enum state)i;
		} else if (strcmp(line, "attempts") == 0) {
			r->attempts = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(line, "saves") == 0) {
			r->saves = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(line, "first") == 0) {
			r->first = strtoll(v, NULL, 10);
		} else if (strcmp(line, "sent") == 0) {
			r->sent = strtoll(v, NULL, 10);
		} else if (strcmp(line, "mtime_ns") == 0) {
			r->mtime_ns = strtoll(v, NULL, 10);
		} else if (strcmp(line, "next") == 0) {
			r->next = strtoll(v, NULL, 10);
		} else if (strcmp(line, "mtime") == 0) {
			r->mtime = strtoll(v, NULL, 10);
		} else if (strcmp(line, "size") == 0) {
			r->size = strtoll(v, NULL, 10);
		} else if (strcmp(line, "reply") == 0) {
			snprintf(r->reply, sizeof(r->reply), "%s", v);
		}
	}
	fclose(f);
	return true;
}

/* Record r on disk; when the disk will not take it, in memory (and
 * -errno).  Either way load() gives r from now on. */
static int save(struct outbox *q, const char *name, const struct record *r)
{
	char path[PATH_MAX], buf[1024];
	int n, rc;

	state_path(q, name, "", path, sizeof(path));
	n = snprintf(buf, sizeof(buf),
		     "state %s\nattempts %u\nsaves %u\nfirst %lld\nsent %lld\n"
		     "next %lld\nmtime %lld\nmtime_ns %lld\nsize %lld\n"
		     "reply %s\n",
		     state_names[r->state], r->attempts, r->saves, r->first,
		     r->sent, r->next, r->mtime, r->mtime_ns, r->size,
		     r->reply);
	rc = write_file(q, q->state_dir, path, buf, (size_t)n);
	if (rc < 0)
		mem_put(q, name, r);
	else
		mem_drop(q, name);
	return rc;
}

/* Drop the record and the prepared copy; the .error companion stays. */
static void drop_state(struct outbox *q, const char *name)
{
	char path[PATH_MAX];

	state_path(q, name, "", path, sizeof(path));
	unlink(path);
	state_path(q, name, ".msg", path, sizeof(path));
	unlink(path);
	mem_drop(q, name);
}

static void forget_locked(struct outbox *q, const char *name)
{
	char path[PATH_MAX];

	drop_state(q, name);
	spoil_drop(q, name);
	snprintf(path, sizeof(path), "%s/%s.error", q->dir, name);
	unlink(path);
}

void outbox_forget(struct outbox *q, const char *name)
{
	if (outbox_ignored(name))
		return;
	pthread_mutex_lock(&q->lock);
	/* Mid-submission the thread still needs the record and, if the
	 * server has accepted the message, the prepared copy for Sent: it
	 * forgets the name itself once the outcome is known. */
	if (strcmp(q->busy, name) == 0)
		q->busy_gone = true;
	else
		forget_locked(q, name);
	pthread_mutex_unlock(&q->lock);
}

static void write_error(struct outbox *q, const char *name, const char *text)
{
	char path[PATH_MAX];
	char buf[1200];
	int n;

	snprintf(path, sizeof(path), "%s/%s.error", q->dir, name);
	n = snprintf(buf, sizeof(buf), "%s\n", text);
	/* Best effort: the status says the same. */
	write_file(q, q->dir, path, buf, (size_t)n);
	if (q->o.changed)
		q->o.changed(q->o.ctx, name);
}

static char *read_all(const char *path, size_t *len, struct mfs_error *err)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		/* Only "gone" is NOTFOUND: EMFILE or EIO is trouble that
		 * passes, not a reason to forget the message. */
		mfs_fail(err, errno == ENOENT ? MFS_E_NOTFOUND : MFS_E_IO,
			 "outbox spool: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		mfs_fail(err, MFS_E_IO, "outbox spool: %s", strerror(errno));
		goto out;
	}
	if ((uint64_t)st.st_size > MAX_MESSAGE) {
		mfs_fail(err, MFS_E_INVAL, "file too large to send");
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		mfs_fail(err, MFS_E_NOMEM, "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*len = got;
out:
	close(fd);
	return buf;
}

static long long now_s(void)
{
	return (long long)time(NULL);
}

/* The message as prepared at its first attempt is kept, so every retry
 * (and the Sent copy) carries the same Date and Message-ID. */
static int prepared(struct outbox *q, const char *name, bool fresh,
		    struct smtp_msg **m, struct mfs_error *err)
{
	char path[PATH_MAX];
	size_t len = 0;
	char *raw;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", q->dir, name);
	raw = read_all(path, &len, err);
	if (!raw)
		return err->code;
	rc = smtp_prepare(raw, len, q->o.default_from, m, err);
	free(raw);
	if (rc < 0)
		return rc;
	state_path(q, name, ".msg", path, sizeof(path));
	if (!fresh) {
		size_t plen = 0;
		char *prev = read_all(path, &plen, NULL);

		if (prev) {
			/* Same envelope, earlier bytes. */
			free((*m)->data);
			(*m)->data = prev;
			(*m)->len = plen;
			return 0;
		}
	}
	rc = write_file(q, q->state_dir, path, (*m)->data, (*m)->len);
	if (rc < 0) {
		smtp_msg_free(*m);
		*m = NULL;
		return mfs_fail(err, MFS_E_IO, "outbox spool: %s",
				strerror(-rc));
	}
	return 0;
}

static struct writer *writer_find(struct outbox *q, const char *name)
{
	for (size_t i = 0; i < q->nwriters; i++)
		if (strcmp(q->writers[i].name, name) == 0)
			return &q->writers[i];
	return NULL;
}

static bool is_writing(struct outbox *q, const char *name)
{
	return writer_find(q, name) != NULL;
}

/* Is st the file the record was made from?  Nanoseconds too, so that a
 * rewrite to the same size within a second is still a new version. */
static bool same_file(const struct record *r, const struct stat *st)
{
	return r->mtime == (long long)st->st_mtim.tv_sec &&
	       r->size == (long long)st->st_size &&
	       (r->mtime_ns < 0 ||
		r->mtime_ns == (long long)st->st_mtim.tv_nsec);
}

/* Is the file in the spool still the version the record describes, and
 * left alone?  Only then may the queue delete it. */
static bool untouched(struct outbox *q, const char *name,
		      const struct record *r)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", q->dir, name);
	if (stat(path, &st) < 0)
		return false;
	return !q->busy_touched && !is_writing(q, name) && same_file(r, &st);
}

/* Never 0: a retry "now" would go round without a pause. */
static long long backoff(const struct outbox *q, unsigned attempts)
{
	unsigned shift = attempts > 20 ? 20 : attempts ? attempts - 1 : 0;
	long long delay = (long long)q->o.retry_initial_s << shift;

	if (delay > (long long)q->o.retry_max_s)
		delay = (long long)q->o.retry_max_s;
	return delay > 0 ? delay : 1;
}

/* Accepted by the server (and saved, if wanted).  The file goes, unless
 * it is no longer the version that was sent. */
static void finish_sent(struct outbox *q, const char *name,
			const struct record *r)
{
	char path[PATH_MAX];

	if (q->busy_gone) {
		/* Deleting it cannot call it back any more. */
		forget_locked(q, name);
		say(q, false, "outbox: %s was deleted while being sent, "
			      "after the server had accepted it", name);
	} else if (!untouched(q, name, r)) {
		/* A new message under the old name: its own turn, afresh. */
		drop_state(q, name);
		say(q, false, "outbox: %s changed while being sent; the "
			      "earlier version went out, this one will be "
			      "sent as a new message", name);
	} else {
		snprintf(path, sizeof(path), "%s/%s", q->dir, name);
		if (unlink(path) < 0 && errno != ENOENT) {
			struct record done = *r;

			/* It stays, so it must never look unsent. */
			done.state = ST_UNSAVED;
			snprintf(done.reply, sizeof(done.reply),
				 "sent, but not removed from the outbox: %s",
				 strerror(errno));
			save(q, name, &done);
			say(q, true, "outbox: %s %s", name, done.reply);
		} else {
			drop_state(q, name);
		}
	}
	sync_dir(q->dir);
	sync_dir(q->state_dir);
	if (q->o.changed)
		q->o.changed(q->o.ctx, name);
}

/* Called and returns with the lock held; drops it for the APPEND. */
static void save_sent(struct outbox *q, const char *name, struct record *r)
{
	struct mfs_error err = { 0 };
	char path[PATH_MAX], text[400];
	size_t len = 0;
	char *data;
	int rc;

	if (!q->o.save_sent) {
		finish_sent(q, name, r);
		return;
	}
	state_path(q, name, ".msg", path, sizeof(path));
	data = read_all(path, &len, &err);
	rc = data ? 0 : err.code;
	r->saves++;
	if (data) {
		pthread_mutex_unlock(&q->lock);
		rc = q->o.save_sent(q->o.ctx, data, len, &err);
		pthread_mutex_lock(&q->lock);
		free(data);
	}
	if (rc == 0) {
		say(q, false, "outbox: %s sent and saved", name);
		finish_sent(q, name, r);
		return;
	}
	if (q->busy_gone) {
		forget_locked(q, name);
		say(q, true, "outbox: %s sent, and deleted before it was "
			     "saved to Sent", name);
		return;
	}
	/* Sent already: only the copy is retried, never the sending.  Like
	 * sending, with doubling delays and a give-up, counted from when the
	 * server accepted it; what is given up on stays, with its reason. */
	if (!r->sent)
		r->sent = now_s();	/* a record from an older version */
	if (mfs_is_transient(rc) &&
	    now_s() - r->sent < (long long)q->o.give_up_s) {
		long long delay = backoff(q, r->saves);

		r->state = ST_SAVING;
		r->next = now_s() + delay;
		snprintf(r->reply, sizeof(r->reply), "saving to Sent: %s",
			 err.msg);
		save(q, name, r);
		say(q, true, "outbox: %s sent, but not saved to Sent yet: %s; "
			     "retrying in %lld s", name, err.msg, delay);
		return;
	}
	r->state = ST_UNSAVED;
	snprintf(r->reply, sizeof(r->reply), "sent, but not saved to Sent: %s",
		 err.msg);
	save(q, name, r);
	snprintf(text, sizeof(text), "failed: %s", r->reply);
	write_error(q, name, text);
	say(q, true, "outbox: %s %s", name, r->reply);
}

/* One step for name: send it, or retry its Sent copy.  Called and
 * returns with the lock held, which is dropped around the network I/O;
 * meanwhile q->busy names the message so that deleting or rewriting it
 * is noticed instead of waiting, and a submission under way is
 * abandoned (see send_cancelled). */
static void attempt(struct outbox *q, const char *name, struct record *r,
		    const struct stat *st)
{
	struct mfs_error err = { 0 };
	struct smtp_result res;
	struct smtp_msg *m = NULL;
	bool fresh = r->state == ST_QUEUED || !same_file(r, st);
	int rc;

	snprintf(q->busy, sizeof(q->busy), "%s", name);
	q->busy_gone = q->busy_touched = false;
	if (r->state == ST_SAVING) {
		save_sent(q, name, r);
		goto out;
	}
	if (!r->first)
		r->first = now_s();
	r->attempts++;
	r->state = ST_SENDING;
	r->mtime = (long long)st->st_mtim.tv_sec;
	r->mtime_ns = (long long)st->st_mtim.tv_nsec;
	r->size = st->st_size;
	/* On disk before anything goes out: a crash from here on means
	 * "send again" (at least once).  A spool that cannot take it (full,
	 * read-only) is waited out like a server that is down. */
	rc = save(q, name, r);
	if (rc < 0)
		rc = mfs_fail(&err, MFS_E_IO, "outbox spool: %s", strerror(-rc));
	/* Read with the lock held: writers register before they open (and
	 * maybe truncate) the file, so these are the bytes stat saw. */
	if (rc == 0)
		rc = prepared(q, name, fresh, &m, &err);
	if (rc == 0) {
		pthread_mutex_unlock(&q->lock);
		rc = smtp_send(&q->o.smtp, m, &res, &err);
		pthread_mutex_lock(&q->lock);
	}
	if (rc == 0) {
		if (res.nrejected) {
			char text[700];

			snprintf(text, sizeof(text),
				 "sent, but refused for %zu recipient(s): %s",
				 res.nrejected, res.rejected);
			write_error(q, name, text);
			say(q, true, "outbox: %s: %s", name, text);
		}
		r->state = ST_SAVING;
		r->sent = now_s();
		r->saves = 0;
		r->next = 0;
		r->reply[0] = '\0';
		save(q, name, r);
		save_sent(q, name, r);
		goto out;
	}
	snprintf(r->reply, sizeof(r->reply), "%s",
		 err.msg[0] ? err.msg : mfs_strerror(rc));
	if (q->busy_gone) {
		forget_locked(q, name);
		say(q, false, "outbox: %s deleted while being sent: "
			      "cancelled (%s)", name, r->reply);
	} else if (rc == MFS_E_CANCELLED && q->busy_touched) {
		/* Rewritten: what the file says now is the message. */
		drop_state(q, name);
		say(q, false, "outbox: %s changed while being sent: sending "
			      "the new version instead", name);
	} else if (rc == MFS_E_CANCELLED) {
		/* Unmounting: the record still says "sending", so the next
		 * start sends it again. */
		say(q, false, "outbox: %s: sending interrupted by unmount",
		    name);
	} else if (rc == MFS_E_NOTFOUND) {
		forget_locked(q, name);	/* deleted while we looked */
	} else if ((mfs_is_transient(rc) || rc == MFS_E_IO) &&
		   now_s() - r->first < (long long)q->o.give_up_s) {
		/* MFS_E_IO is the spool's own trouble (full, read-only, out
		 * of descriptors): it passes like a server's. */
		long long delay = backoff(q, r->attempts);

		r->state = ST_RETRYING;
		r->next = now_s() + delay;
		save(q, name, r);
		say(q, false, "outbox: %s: %s; retrying in %lld s", name,
		    r->reply, delay);
		if (q->o.changed)
			q->o.changed(q->o.ctx, name);
	} else {
		char text[400];

		r->state = ST_FAILED;
		save(q, name, r);
		snprintf(text, sizeof(text), "failed: %s", r->reply);
		write_error(q, name, text);
		say(q, true, "outbox: %s not sent: %s", name, r->reply);
	}
out:
	q->busy[0] = '\0';
	q->busy_gone = q->busy_touched = false;
	smtp_msg_free(m);
}

/* One look at the spool; returns seconds until something is due. */
static long long scan(struct outbox *q)
{
	long long wait = 30, now = now_s();
	DIR *d = opendir(q->dir);
	struct dirent *de;

	while (d && !q->stop && (de = readdir(d))) {
		char path[PATH_MAX];
		struct record r;
		struct stat st;
		long long due;

		if (outbox_ignored(de->d_name) || is_writing(q, de->d_name) ||
		    !outbox_name_ok(de->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", q->dir, de->d_name);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) ||
		    spoiled(q, de->d_name, &st))
			continue;
		if (!load(q, de->d_name, &r))
			r.state = ST_QUEUED;
		/* Edited after failing: the user wants another try (as a
		 * new message, also when only the Sent copy failed). */
		if ((r.state == ST_FAILED || r.state == ST_UNSAVED) &&
		    !same_file(&r, &st)) {
			forget_locked(q, de->d_name);
			memset(&r, 0, sizeof(r));
			r.mtime_ns = -1;
		}
		if (r.state == ST_FAILED || r.state == ST_UNSAVED)
			continue;
		/* Rounded up: now_s() is whole seconds, and a file changed
		 * at x.95 has not settled at x + settle_s. */
		due = (long long)st.st_mtim.tv_sec + q->o.settle_s +
		      (st.st_mtim.tv_nsec > 0);
		if (r.state == ST_RETRYING || r.state == ST_SAVING)
			due = due > r.next ? due : r.next;
		if (due > now) {
			wait = wait < due - now ? wait : due - now;
			continue;
		}
		/* A crash mid-send leaves ST_SENDING: send again. */
		attempt(q, de->d_name, &r, &st);
		now = now_s();
		wait = 0;
	}
	if (d)
		closedir(d);
	return wait;
}

/* State left by a message deleted while it was being sent, when mailfs
 * died before recording the outcome, and half-written state files. */
static void sweep_state(struct outbox *q)
{
	DIR *d = opendir(q->state_dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char path[PATH_MAX], base[NAME_MAX + 1];
		size_t n = strlen(de->d_name);
		struct stat st;

		if (strncmp(de->d_name, TEMP_PREFIX, strlen(TEMP_PREFIX)) == 0) {
			state_path(q, de->d_name, "", path, sizeof(path));
			unlink(path);	/* a write cut short */
			continue;
		}
		if (de->d_name[0] == '.')
			continue;
		/* Kept: the record (NAME) and prepared copy (NAME.msg) of a
		 * message still in the spool; the rest (the "NAME.new" temps
		 * of older versions too) is left over. */
		snprintf(path, sizeof(path), "%s/%s", q->dir, de->d_name);
		if (lstat(path, &st) == 0)
			continue;
		if (n > 4 && strcmp(de->d_name + n - 4, ".msg") == 0) {
			snprintf(base, sizeof(base), "%.*s", (int)(n - 4),
				 de->d_name);
			snprintf(path, sizeof(path), "%s/%s", q->dir, base);
			if (lstat(path, &st) == 0)
				continue;
		}
		state_path(q, de->d_name, "", path, sizeof(path));
		unlink(path);
	}
	if (d)
		closedir(d);
}

/* smtp_send's cancel question: has the file been deleted or opened for
 * writing since the attempt began, or is mailfs being unmounted (which
 * should not wait for a silent server)? */
static bool send_cancelled(void *ctx)
{
	struct outbox *q = ctx;
	bool stop;

	pthread_mutex_lock(&q->lock);
	stop = q->stop || q->busy_gone || q->busy_touched;
	pthread_mutex_unlock(&q->lock);
	return stop;
}

static void *queue_main(void *arg)
{
	struct outbox *q = arg;

	pthread_mutex_lock(&q->lock);
	sweep_state(q);
	while (!q->stop) {
		long long wait;
		struct timespec until;

		q->kicked = false;
		wait = scan(q);
		if (wait == 0 || q->kicked)
			continue;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += wait;
		while (!q->stop && !q->kicked &&
		       pthread_cond_timedwait(&q->wake, &q->lock, &until) !=
			       ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int outbox_start(const struct outbox_opts *o, struct outbox **out,
		 struct mfs_error *err)
{
	struct outbox *q = calloc(1, sizeof(*q));

	if (!q)
		return mfs_fail(err, MFS_E_NOMEM, "out of memory");
	q->o = *o;
	q->o.smtp.cancelled = send_cancelled;
	q->o.smtp.cancel_ctx = q;
	q->dir = strdup(o->dir);
	if (!q->dir || asprintf(&q->state_dir, "%s/.state", o->dir) < 0) {
		free(q->dir);
		free(q);
		return mfs_fail(err, MFS_E_NOMEM, "out of memory");
	}
	if (mkdir(q->state_dir, 0700) < 0 && errno != EEXIST) {
		mfs_fail(err, MFS_E_IO, "%s: %s", q->state_dir, strerror(errno));
		free(q->state_dir);
		free(q->dir);
		free(q);
		return MFS_E_IO;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->wake, NULL);
	if (pthread_create(&q->thread, NULL, queue_main, q) != 0) {
		free(q->state_dir);
		free(q->dir);
		free(q);
		return mfs_fail(err, MFS_E_NOMEM, "cannot start the outbox");
	}
	*out = q;
	return 0;
}

void outbox_stop(struct outbox *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	for (size_t i = 0; i < q->nwriters; i++)
		free(q->writers[i].name);
	free(q->writers);
	for (size_t i = 0; i < q->nmem; i++)
		free(q->mem[i].name);
	free(q->mem);
	for (size_t i = 0; i < q->nspoiled; i++)
		free(q->spoiled[i].name);
	free(q->spoiled);
	pthread_cond_destroy(&q->wake);
	pthread_mutex_destroy(&q->lock);
	free(q->state_dir);
	free(q->dir);
	free(q);
}

void outbox_kick(struct outbox *q)
{
	pthread_mutex_lock(&q->lock);
	q->kicked = true;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
}

int outbox_writing(struct outbox *q, const char *name, bool open)
{
	struct writer *w;
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	w = writer_find(q, name);
	/* Whatever it writes is not what is being sent. */
	if (open && strcmp(q->busy, name) == 0)
		q->busy_touched = true;
	if (open && w) {
		w->n++;
	} else if (open) {
		void *p = grow(q->writers, q->nwriters, &q->capwriters,
			       sizeof(*q->writers));
		char *copy = NULL;

		if (p) {
			q->writers = p;
			copy = strdup(name);
		}
		if (copy) {
			q->writers[q->nwriters].name = copy;
			q->writers[q->nwriters++].n = 1;
		} else {
			rc = MFS_E_NOMEM;	/* the open fails */
		}
	} else if (w && --w->n == 0) {
		free(w->name);
		*w = q->writers[--q->nwriters];
	}
	q->kicked = true;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

void outbox_write_failed(struct outbox *q, const char *name, int errnum)
{
	char path[PATH_MAX], text[400];
	struct stat st;

	if (outbox_ignored(name))
		return;
	pthread_mutex_lock(&q->lock);
	snprintf(path, sizeof(path), "%s/%s", q->dir, name);
	if (stat(path, &st) == 0) {
		struct record r = { 0 };

		spoil_put(q, name, &st, errnum);
		r.state = ST_FAILED;
		r.first = now_s();
		r.mtime = (long long)st.st_mtim.tv_sec;
		r.mtime_ns = (long long)st.st_mtim.tv_nsec;
		r.size = st.st_size;
		snprintf(r.reply, sizeof(r.reply),
			 "not sent: writing it failed: %s", strerror(errnum));
		/* For the next start too, unless an attempt at the earlier
		 * version still owns the record. */
		if (strcmp(q->busy, name) != 0)
			save(q, name, &r);
		snprintf(text, sizeof(text), "failed: %s", r.reply);
		write_error(q, name, text);
		say(q, true, "outbox: %s %s", name, r.reply);
	}
	pthread_mutex_unlock(&q->lock);
}

void outbox_status(struct outbox *q, const char *name, char *buf, size_t len)
{
	char path[PATH_MAX];
	struct spoiled *sp;
	struct stat st;
	struct record r;
	char when[32];
	struct tm tm;
	time_t t;
	bool busy;

	if (!outbox_name_ok(name)) {
		snprintf(buf, len, "failed: name too long to send (more than "
				   "%d bytes)", OUTBOX_NAME_MAX);
		return;
	}
	pthread_mutex_lock(&q->lock);
	snprintf(path, sizeof(path), "%s/%s", q->dir, name);
	sp = stat(path, &st) == 0 ? spoiled(q, name, &st) : NULL;
	if (sp) {
		snprintf(buf, len, "failed: not sent: writing it failed: %s",
			 strerror(sp->errnum));
		pthread_mutex_unlock(&q->lock);
		return;
	}
	if (!load(q, name, &r))
		r.state = ST_QUEUED;
	busy = strcmp(q->busy, name) == 0;
	pthread_mutex_unlock(&q->lock);
	switch (r.state) {
	case ST_SAVING:
		/* A retry under way is no longer waiting for its time. */
		if (busy || !r.reply[0]) {
			snprintf(buf, len, "saving");
			break;
		}
		/* fall through */
	case ST_RETRYING:
		t = (time_t)r.next;
		localtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		snprintf(buf, len, "retrying: %s; next %s", r.reply, when);
		break;
	case ST_FAILED:
	case ST_UNSAVED:
		snprintf(buf, len, "failed: %s", r.reply);
		break;
	default:
		snprintf(buf, len, "%s", state_names[r.state]);
	}
}
