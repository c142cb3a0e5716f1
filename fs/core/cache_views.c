/* cache_views.c - decoded parts, decoded once per message and kept on disk
 * with its body.
 *
 * The first time a message's decoded view is wanted (its decoded
 * directory listed, or a part opened), its cached body is decoded once
 * with GMime and every part is written, one after another, into one file
 * beside the body: dir/<folder>.<uidvalidity>.<uid>.parts.  The file is
 * written under a temporary name and renamed into place; then, in one
 * transaction, the index records where each part lies in it and the
 * file's size in the body's cache entry.  That record is what makes the
 * file good: the file counts against the cap with its body and is evicted
 * with it.  An open of a part is then an index lookup and an open of that
 * file; the reader is given the part's range of it.  No GMime, no copy.
 *
 * What can go wrong, and what is done about it:
 *   - a crash before the rename leaves a temporary file (swept at start);
 *     between the rename and the record, a file the index does not know
 *     (swept at start too: cache_sweep_run);
 *   - a record whose file is missing or has another size than recorded
 *     (a disk that lost it, someone's rm) is found at the open and the
 *     file is made again;
 *   - the body evicted meanwhile (its entry gone) or the index busy: the
 *     record cannot be written, and the file is removed;
 *   - the index holds other parts for the message than this decoder gives
 *     (an index made by a version whose decoder differed): they are
 *     replaced by these, which are what a reader gets.
 * One decode of a message at a time: whoever holds its inflight slot
 * decodes, a second reader waits for the slot and then finds the file.
 *
 * A message gets no parts file when its body is more than half the cap
 * (body and parts could not both be kept), or when one cannot be written
 * or recorded (the disk full, the cases above).  Then each open decodes
 * its part on its own, into memory (a memfd) for a message of up to 8 MB,
 * else into an unlinked file beside the bodies; the parts' names and
 * sizes still go to the index, so listings work. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_int.h"
#include "log.h"
#include "mime.h"

#define MAX_PARTS 1000
/* Up to this message size a part decoded on its own goes into memory. */
#define MEM_MSG_MAX (8ull << 20)

/* What one decode of a message found: each part's name, type and size,
 * and where it begins in the parts file when one is written. */
struct parts_acc {
	struct ix_part parts[MAX_PARTS];
	uint64_t off[MAX_PARTS];
	char *names[MAX_PARTS];
	char *types[MAX_PARTS];
	unsigned n;
	int fd;		/* the parts file being written; -1: measure only */
};

static void acc_clear(struct parts_acc *a)
{
	for (unsigned i = 0; i < a->n; i++) {
		free(a->names[i]);
		free(a->types[i]);
	}
	a->n = 0;
}

static int collect_part(void *ctx, unsigned n, const char *name,
			const char *type, uint64_t size)
{
	struct parts_acc *a = ctx;
	unsigned i = a->n;

	if (i >= MAX_PARTS || n != i + 1)
		return 0;
	a->names[i] = strdup(name);
	a->types[i] = strdup(type);
	if (!a->names[i] || !a->types[i]) {
		free(a->names[i]);
		free(a->types[i]);
		return MFS_E_NOMEM;
	}
	a->parts[i] = (struct ix_part){ .n = n, .name = a->names[i],
					.type = a->types[i], .size = size };
	a->n++;
	return 0;
}

/* Every part into the one file, each where the previous one ended. */
static int open_part(void *ctx, unsigned n)
{
	struct parts_acc *a = ctx;
	off_t off;

	if (a->fd < 0 || n < 1 || n > MAX_PARTS)
		return -1;
	off = lseek(a->fd, 0, SEEK_CUR);
	if (off < 0)
		return -errno;
	a->off[n - 1] = (uint64_t)off;
	return a->fd;
}

static void count_decode(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	c->decoded++;
	pthread_mutex_unlock(&c->lock);
}

/* Rename the parts file written at tmp into place and record it.  Any
 * failure leaves the message without one (and its reader decoding parts
 * on their own); nothing of it is left behind. */
static void view_keep(struct cache *c, const struct cache_key *k,
		      const struct parts_acc *a, const char *tmp)
{
	char path[PATH_MAX];
	struct mfs_error err = { 0 };
	uint64_t total = 0;
	struct stat st;
	int rc;

	if (a->n > 0)
		total = a->off[a->n - 1] + a->parts[a->n - 1].size;
	/* A short write that no call reported would misplace every part. */
	if (a->n == 0 || fstat(a->fd, &st) < 0 ||
	    (uint64_t)st.st_size != total) {
		unlink(tmp);
		return;
	}
	cache_key_path(c, k, ".parts", path, sizeof(path));
	if (rename(tmp, path) < 0) {
		log_msg(LOG_WARNING, "%s/%u: decoded parts: %s", k->mailbox,
			k->uid, strerror(errno));
		unlink(tmp);
		return;
	}
	rc = index_views_set(c->ix, k->folder, k->uid, a->parts, a->off, a->n,
			     total, &err);
	if (rc == MFS_E_NOTFOUND) {
		/* The index has other parts for it, from a version whose
		 * decoder differed: these are what a reader will get. */
		rc = index_parts_set(c->ix, k->folder, k->uid, a->parts, a->n,
				     &err);
		if (rc == 0)
			rc = index_views_set(c->ix, k->folder, k->uid, a->parts,
					     a->off, a->n, total, &err);
	}
	if (rc < 0) {
		/* Evicted meanwhile (no entry to count it in), or the index
		 * busy: the file would count for nothing. */
		if (rc != MFS_E_NOTFOUND)
			log_msg(LOG_WARNING, "%s/%u: decoded parts: %s",
				k->mailbox, k->uid, err.msg);
		unlink(path);
		return;
	}
	cache_account(c, total);
	cache_evict(c, k);
}

/* Decode k's body once (the caller holds k's inflight slot): the parts'
 * names, types and sizes into the index unless known says they are
 * there, and every part into k's parts file, recorded in the index. */
static int decode_view(struct cache *c, const struct cache_key *k, bool known,
		       struct mfs_error *err)
{
	struct mfs_error werr = { 0 };
	struct parts_acc *a = NULL;
	char tmp[PATH_MAX] = "";
	uint64_t size;
	int body = -1, rc;

	rc = cache_open_body(c, k, true, &body, &size, err);
	if (rc < 0)
		return rc;
	a = calloc(1, sizeof(*a));
	if (!a) {
		rc = mfs_fail(err, MFS_E_NOMEM, "out of memory");
		goto out;
	}
	a->fd = -1;
	/* The parts take about as much room as the body: both must fit. */
	if (size <= c->max_bytes / 2) {
		snprintf(tmp, sizeof(tmp), "%s/tmp.XXXXXX", c->dir);
		a->fd = mkostemp(tmp, O_CLOEXEC);
		if (a->fd < 0)
			tmp[0] = '\0';
	}
	/* Known parts and no file to write: nothing to decode for. */
	if (known && a->fd < 0)
		goto out;
	count_decode(c);
	rc = mime_decode_all(body, MAX_PARTS, open_part, collect_part, a,
			     &werr);
	if (rc == MFS_E_IO && a->fd >= 0) {
		/* Most likely the disk is full: no parts file.  A reader
		 * decodes its part on its own, into memory; the names and
		 * sizes can still be had, for a listing. */
		log_msg(LOG_WARNING, "%s/%u: decoded parts: %s", k->mailbox,
			k->uid, werr.msg);
		close(a->fd);
		a->fd = -1;
		unlink(tmp);
		tmp[0] = '\0';
		acc_clear(a);
		rc = 0;
		if (!known) {
			count_decode(c);
			rc = mime_decode_all(body, MAX_PARTS, open_part,
					     collect_part, a, err);
		}
	} else if (rc < 0) {
		mfs_fail(err, rc, "%s", werr.msg);
	}
	if (rc == 0 && !known)
		rc = index_parts_set(c->ix, k->folder, k->uid, a->parts, a->n,
				     err);
	if (rc == 0 && a->fd >= 0) {
		view_keep(c, k, a, tmp);
		tmp[0] = '\0';
	}
out:
	if (a && a->fd >= 0)
		close(a->fd);
	if (tmp[0])
		unlink(tmp);
	if (a)
		acc_clear(a);
	free(a);
	close(body);
	return rc;
}

struct known_ctx {
	bool known;
};

static int get_known(void *ctx, const struct ix_msg *m)
{
	((struct known_ctx *)ctx)->known = m->parts_known;
	return 0;
}

int cache_parts(struct cache *c, const struct cache_key *k,
		struct mfs_error *err)
{
	struct known_ctx kc = { false };
	int rc;

	/* Listing needs no body once the parts are known: ls and rsync of
	 * decoded directories work offline and after eviction. */
	rc = index_msg_get(c->ix, k->folder, k->uid, get_known, &kc, err);
	if (rc < 0 || kc.known)
		return rc;
	cache_inflight_enter(c, k);
	rc = index_msg_get(c->ix, k->folder, k->uid, get_known, &kc, err);
	if (rc == 0 && !kc.known)
		rc = decode_view(c, k, false, err);
	cache_inflight_leave(c, k);
	return rc;
}

/* Part n from k's parts file: 0 with *fd open on it, or MFS_E_NOTFOUND
 * when there is no good one (with held, a recorded file that is missing
 * or of the wrong size is forgotten, to be made again). */
static int view_open(struct cache *c, const struct cache_key *k, unsigned n,
		     bool held, int *fd, uint64_t *off, uint64_t *size)
{
	const char *why = "of the wrong size";
	char path[PATH_MAX];
	uint64_t total;
	struct stat st;
	int rc;

	rc = index_part_view(c->ix, k->folder, k->uid, n, off, size, &total,
			     NULL);
	if (rc < 0)
		return MFS_E_NOTFOUND;
	cache_key_path(c, k, ".parts", path, sizeof(path));
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		why = errno == ENOENT ? "missing" : strerror(errno);
	else if (fstat(*fd, &st) == 0 && (uint64_t)st.st_size == total &&
		 *off + *size <= total) {
		cache_touch(c, k);
		return 0;
	}
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	/* Only the slot's holder may judge: another thread may be in the
	 * middle of putting a new file in place. */
	if (held) {
		log_msg(LOG_INFO, "%s/%u: decoded parts file %s: made again",
			k->mailbox, k->uid, why);
		if (index_views_clear(c->ix, k->folder, k->uid, NULL) == 0)
			cache_unaccount(c, total);
		unlink(path);
	}
	return MFS_E_NOTFOUND;
}

struct one_part {
	unsigned n;
	bool seen;
	uint64_t size;
};

static int note_part(void *ctx, unsigned n, const char *name,
		     const char *type, uint64_t size)
{
	struct one_part *p = ctx;

	(void)name;
	(void)type;
	if (n == p->n) {
		p->seen = true;
		p->size = size;
	}
	return 0;
}

/* Part n alone, decoded from the body into a file of its own: for a
 * message that has no parts file.  The caller holds k's slot. */
static int decode_alone(struct cache *c, const struct cache_key *k,
			unsigned n, int *fd, uint64_t *size,
			struct mfs_error *err)
{
	struct one_part p = { n, false, 0 };
	char name[PATH_MAX];
	uint64_t body_size;
	int body = -1, rc;

	rc = cache_open_body(c, k, true, &body, &body_size, err);
	if (rc < 0)
		return rc;
	if (body_size <= MEM_MSG_MAX) {
		*fd = memfd_create("mailfs-part", MFD_CLOEXEC);
	} else {
		snprintf(name, sizeof(name), "%s/tmp.XXXXXX", c->dir);
		*fd = mkostemp(name, O_CLOEXEC);
		if (*fd >= 0)
			unlink(name);
	}
	if (*fd < 0) {
		rc = mfs_fail(err, MFS_E_IO, "decoded part: %s",
			      strerror(errno));
		goto out;
	}
	count_decode(c);
	rc = mime_decode(body, n, *fd, MAX_PARTS, note_part, &p, err);
	if (rc == 0 && !p.seen)
		rc = mfs_fail(err, MFS_E_NOTFOUND, "no part %u", n);
	if (rc == 0)
		*size = p.size;
out:
	if (rc < 0 && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	close(body);
	return rc;
}

int cache_part(struct cache *c, const struct cache_key *k, unsigned n,
	       int *fd, uint64_t *off, uint64_t *size, struct mfs_error *err)
{
	struct known_ctx kc = { false };
	int rc = 0;

	*fd = -1;
	*off = 0;
	if (view_open(c, k, n, false, fd, off, size) == 0)
		return 0;
	cache_inflight_enter(c, k);
	/* A reader before us may have made it while we waited. */
	if (view_open(c, k, n, true, fd, off, size) == 0)
		goto out;
	rc = index_msg_get(c->ix, k->folder, k->uid, get_known, &kc, err);
	if (rc == 0)
		rc = decode_view(c, k, kc.known, err);
	if (rc < 0)
		goto out;
	if (view_open(c, k, n, true, fd, off, size) == 0)
		goto out;
	*off = 0;
	rc = decode_alone(c, k, n, fd, size, err);
out:
	cache_inflight_leave(c, k);
	return rc;
}
