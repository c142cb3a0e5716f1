/* outbox_dir.c - outbox/: files written here are durable when close() returns
 * (fsync of file and directory in flush) and then belong to the queue. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "outbox_dir.h"
#include "staging.h"

#define STATE_DIR ".state"

struct obdir;

struct outbox_dir {
	char *dir;
	struct outbox *q;
	uid_t uid;
	gid_t gid;
	/* Open listings: a session that ends with outbox/ still open gets
	 * no releasedir for it, so outbox_dir_free frees what is left.  Guarded
	 * by lock. */
	pthread_mutex_t lock;
	struct obdir *open;
};

struct obdir {
	size_t n;
	struct {
		char name[NAME_MAX + 1];
		struct stat st;
	} *e;
	struct obdir *next, **pprev;
};

static void obdir_free(struct obdir *od)
{
	if (!od)
		return;
	free(od->e);
	free(od);
}

struct outbox_dir *outbox_dir_new(const char *dir, struct outbox *q, uid_t uid, gid_t gid)
{
	struct outbox_dir *ob = calloc(1, sizeof(*ob));

	if (!ob || !(ob->dir = strdup(dir))) {
		free(ob);
		return NULL;
	}
	ob->q = q;
	ob->uid = uid;
	ob->gid = gid;
	pthread_mutex_init(&ob->lock, NULL);
	return ob;
}

void outbox_dir_free(struct outbox_dir *ob)
{
	if (!ob)
		return;
	while (ob->open) {
		struct obdir *od = ob->open;

		ob->open = od->next;
		obdir_free(od);
	}
	pthread_mutex_destroy(&ob->lock);
	free(ob->dir);
	free(ob);
}

/* Names a user may see and make: one component, not our state dir. */
static bool valid_name(const char *name)
{
	return stage_valid_name(name) && strcmp(name, STATE_DIR);
}

static void path_of(struct outbox_dir *ob, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", ob->dir, name);
}

static void fix_stat(struct outbox_dir *ob, struct stat *st)
{
	st->st_ino = ino_make(INO_OUTBOX, st->st_ino);
	st->st_uid = ob->uid;
	st->st_gid = ob->gid;
}

static void outbox_dir_dir_stat(struct outbox_dir *ob, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	stat(ob->dir, st);
	st->st_ino = OUTBOX_DIR_DIR_INO;
	st->st_mode = S_IFDIR | 0700;
	st->st_nlink = 2;
	st->st_uid = ob->uid;
	st->st_gid = ob->gid;
}

/* Name of the spool file behind ino (a scan: the spool is small). */
static int name_of(struct outbox_dir *ob, fuse_ino_t ino, char *name, size_t len)
{
	int rc = stage_find(ob->dir, ino, INO_LOW_MASK, name, len);

	return rc == 0 && !valid_name(name) ? -ENOENT : rc;
}

static void reply_entry(struct outbox_dir *ob, fuse_req_t req, const char *name)
{
	struct fuse_entry_param e = { 0 };
	char path[PATH_MAX];

	path_of(ob, name, path, sizeof(path));
	if (!valid_name(name) || lstat(path, &e.attr) < 0 ||
	    !S_ISREG(e.attr.st_mode)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fix_stat(ob, &e.attr);
	e.ino = e.attr.st_ino;
	fuse_reply_entry(req, &e);
}

static void ob_lookup(void *self, fuse_req_t req, fuse_ino_t parent,
		      const char *name)
{
	struct outbox_dir *ob = self;

	if (parent == FUSE_ROOT_ID) {
		struct fuse_entry_param e = { 0 };

		outbox_dir_dir_stat(ob, &e.attr);
		e.ino = OUTBOX_DIR_DIR_INO;
		fuse_reply_entry(req, &e);
		return;
	}
	reply_entry(ob, req, name);
}

static void ob_getattr(void *self, fuse_req_t req, fuse_ino_t ino)
{
	struct outbox_dir *ob = self;
	char name[NAME_MAX + 1], path[PATH_MAX];
	struct stat st;
	int rc;

	if (ino == OUTBOX_DIR_DIR_INO) {
		outbox_dir_dir_stat(ob, &st);
		fuse_reply_attr(req, &st, 0);
		return;
	}
	rc = name_of(ob, ino, name, sizeof(name));
	path_of(ob, name, path, sizeof(path));
	if (rc == 0 && lstat(path, &st) < 0)
		rc = -errno;
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fix_stat(ob, &st);
	fuse_reply_attr(req, &st, 0);
}

static void ob_setattr(void *self, fuse_req_t req, fuse_ino_t ino,
		       struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	struct outbox_dir *ob = self;
	char name[NAME_MAX + 1], path[PATH_MAX];
	struct stat st;
	int rc;

	if (ino == OUTBOX_DIR_DIR_INO) {
		outbox_dir_dir_stat(ob, &st);
		fuse_reply_attr(req, &st, 0);
		return;
	}
	rc = name_of(ob, ino, name, sizeof(name));
	path_of(ob, name, path, sizeof(path));
	if (rc == 0)
		rc = stage_setattr(path, fi ? (struct stage_file *)(uintptr_t)
						      fi->fh : NULL,
				   attr, to_set, &st);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fix_stat(ob, &st);
	fuse_reply_attr(req, &st, 0);
}

static void ob_releasedir(void *self, fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi);
static void ob_release(void *self, fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi);

static void ob_opendir(void *self, fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct outbox_dir *ob = self;
	struct obdir *od = calloc(1, sizeof(*od));
	DIR *d = opendir(ob->dir);
	struct dirent *de;
	size_t cap = 0;

	if (!od || !d) {
		free(od);
		if (d)
			closedir(d);
		fuse_reply_err(req, od ? EIO : ENOMEM);
		return;
	}
	while ((de = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;

		if (!valid_name(de->d_name))
			continue;
		path_of(ob, de->d_name, path, sizeof(path));
		if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (od->n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			void *p = realloc(od->e, ncap * sizeof(*od->e));

			if (!p)
				break;
			od->e = p;
			cap = ncap;
		}
		snprintf(od->e[od->n].name, NAME_MAX + 1, "%s", de->d_name);
		fix_stat(ob, &st);
		od->e[od->n++].st = st;
	}
	closedir(d);
	pthread_mutex_lock(&ob->lock);
	od->next = ob->open;
	if (od->next)
		od->next->pprev = &od->next;
	od->pprev = &ob->open;
	ob->open = od;
	pthread_mutex_unlock(&ob->lock);
	fi->fh = (uintptr_t)od;
	if (fuse_reply_open(req, fi) != 0)
		ob_releasedir(ob, NULL, ino, fi);
}

static void ob_readdir(void *self, fuse_req_t req, fuse_ino_t ino,
		       size_t size, off_t off, struct fuse_file_info *fi,
		       bool plus)
{
	struct outbox_dir *ob = self;
	struct obdir *od = (struct obdir *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t pos = 0;
	struct stat dot;

	(void)ino;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	outbox_dir_dir_stat(ob, &dot);
	for (size_t i = (size_t)off; i < od->n + 2; i++) {
		const char *name = i == 0 ? "." : i == 1 ? ".." :
						     od->e[i - 2].name;
		struct stat *st = i < 2 ? &dot : &od->e[i - 2].st;
		size_t len;

		if (plus) {
			struct fuse_entry_param e = { 0 };

			e.attr = *st;
			if (i >= 2)
				e.ino = st->st_ino;
			len = fuse_add_direntry_plus(req, buf + pos, size - pos,
						     name, &e, (off_t)(i + 1));
		} else {
			len = fuse_add_direntry(req, buf + pos, size - pos,
						name, st, (off_t)(i + 1));
		}
		if (len > size - pos)
			break;
		pos += len;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void ob_releasedir(void *self, fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct outbox_dir *ob = self;
	struct obdir *od = (struct obdir *)(uintptr_t)fi->fh;

	(void)ino;
	if (od) {
		pthread_mutex_lock(&ob->lock);
		*od->pprev = od->next;
		if (od->next)
			od->next->pprev = od->pprev;
		pthread_mutex_unlock(&ob->lock);
		obdir_free(od);
	}
	if (req)
		fuse_reply_err(req, 0);
}

static int open_file(struct outbox_dir *ob, const char *name, int flags,
		     struct fuse_file_info *fi)
{
	struct stage_file *f = NULL;
	bool writing = (flags & O_ACCMODE) != O_RDONLY && ob->q;
	int rc;

	/* Before the open, which may truncate: the queue reads a file only
	 * when no writer is registered, so it never sends half of one. */
	if (writing && outbox_writing(ob->q, name, true) < 0)
		return -ENOMEM;
	rc = stage_open(ob->dir, name, flags, &f);
	if (rc < 0) {
		if (writing)
			outbox_writing(ob->q, name, false);
		return rc;
	}
	fi->fh = (uintptr_t)f;
	fi->direct_io = 1;	/* the spool file is the truth, not the page cache */
	return 0;
}

static void ob_create(void *self, fuse_req_t req, fuse_ino_t parent,
		      const char *name, mode_t mode, struct fuse_file_info *fi)
{
	struct outbox_dir *ob = self;
	struct fuse_entry_param e = { 0 };
	char path[PATH_MAX];
	int rc;

	(void)parent;
	(void)mode;
	if (!valid_name(name)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* Its state files and .error must fit: refused now, not stuck
	 * later. */
	if (!outbox_name_ok(name)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	rc = open_file(ob, name,
		       (fi->flags & (O_ACCMODE | O_TRUNC | O_APPEND | O_EXCL)) |
			       O_CREAT, fi);
	path_of(ob, name, path, sizeof(path));
	if (rc == 0 && lstat(path, &e.attr) < 0)
		rc = -errno;
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fix_stat(ob, &e.attr);
	e.ino = e.attr.st_ino;
	if (fuse_reply_create(req, &e, fi) != 0)
		ob_release(ob, NULL, e.ino, fi);
}

static void ob_open(void *self, fuse_req_t req, fuse_ino_t ino,
		    struct fuse_file_info *fi)
{
	struct outbox_dir *ob = self;
	char name[NAME_MAX + 1];
	int rc = name_of(ob, ino, name, sizeof(name));

	if (rc == 0)
		rc = open_file(ob, name,
			       fi->flags & (O_ACCMODE | O_TRUNC | O_APPEND), fi);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (fuse_reply_open(req, fi) != 0)
		ob_release(ob, NULL, ino, fi);
}

/* fsync of the spool directory: a name made, removed or renamed there is
 * durable once this returns.  0 or -errno. */
static int sync_spool(struct outbox_dir *ob)
{
	int dfd = open(ob->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (dfd < 0)
		return -errno;
	if (fsync(dfd) < 0)
		rc = -errno;
	close(dfd);
	return rc;
}

/* close() waits for flush: make the bytes and the name durable here, so
 * that a message accepted into outbox/ survives a crash or power loss.
 * A failure here (ENOSPC from a filesystem that allocates late, EIO)
 * leaves the file incomplete, like a failed write. */
static int make_durable(struct outbox_dir *ob, struct stage_file *f)
{
	int rc;

	if (!f->writing)
		return 0;
	rc = fsync(f->fd) < 0 ? -errno : sync_spool(ob);
	if (rc < 0 && !f->werr)
		f->werr = -rc;
	return rc;
}

static void ob_flush(void *self, fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi)
{
	struct outbox_dir *ob = self;

	(void)ino;
	fuse_reply_err(req, -make_durable(ob, (struct stage_file *)(uintptr_t)fi->fh));
}

static void ob_fsync(void *self, fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct outbox_dir *ob = self;

	(void)ino;
	(void)datasync;
	fuse_reply_err(req, -make_durable(ob, (struct stage_file *)(uintptr_t)fi->fh));
}

static void ob_release(void *self, fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct outbox_dir *ob = self;
	struct stage_file *f = (struct stage_file *)(uintptr_t)fi->fh;

	/* Marked before the writer goes, so the queue never sees the
	 * incomplete file as a message. */
	if (f->writing && f->werr && ob->q)
		outbox_write_failed(ob->q, f->name, f->werr);
	if (f->writing && ob->q)
		outbox_writing(ob->q, f->name, false);
	(void)ino;
	stage_close(f);
	if (req)
		fuse_reply_err(req, 0);
}

static void ob_unlink(void *self, fuse_req_t req, fuse_ino_t parent,
		      const char *name)
{
	struct outbox_dir *ob = self;
	char path[PATH_MAX];

	(void)parent;
	if (!valid_name(name)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	path_of(ob, name, path, sizeof(path));
	if (unlink(path) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	/* Deleting a message cancels it (and its .error goes with it). */
	if (ob->q)
		outbox_forget(ob->q, name);
	/* Durable before rm returns: a cancelled message must not come
	 * back after a crash and be sent. */
	fuse_reply_err(req, -sync_spool(ob));
}

static void ob_rename(void *self, fuse_req_t req, fuse_ino_t parent,
		      const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct outbox_dir *ob = self;
	char from[PATH_MAX], to[PATH_MAX];
	int rc;

	(void)parent;
	(void)newparent;
	if (!valid_name(name) || !valid_name(newname)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!outbox_name_ok(newname)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	path_of(ob, name, from, sizeof(from));
	path_of(ob, newname, to, sizeof(to));
	rc = renameat2(AT_FDCWD, from, AT_FDCWD, to, flags);
	if (rc < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (ob->q) {
		/* State is kept by name: the old name's goes, and the new
		 * name starts afresh (an editor's temp file renamed to its
		 * final name is a new message). */
		outbox_forget(ob->q, name);
		outbox_forget(ob->q, newname);
		outbox_kick(ob->q);
	}
	/* Durable before mv returns, like a cancel. */
	fuse_reply_err(req, -sync_spool(ob));
}

static void ob_getxattr(void *self, fuse_req_t req, fuse_ino_t ino,
			const char *name, size_t size)
{
	struct outbox_dir *ob = self;
	char fname[NAME_MAX + 1], status[400];
	size_t len;

	if (strncmp(name, "user.", 5) != 0) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (strcmp(name, "user.mail.status") != 0 || ino == OUTBOX_DIR_DIR_INO ||
	    name_of(ob, ino, fname, sizeof(fname)) < 0 ||
	    outbox_ignored(fname) || !ob->q) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	outbox_status(ob->q, fname, status, sizeof(status));
	len = strlen(status);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, status, len);
}

static void ob_listxattr(void *self, fuse_req_t req, fuse_ino_t ino,
			 size_t size)
{
	struct outbox_dir *ob = self;
	static const char names[] = "user.mail.status";
	char fname[NAME_MAX + 1];
	bool has = ino != OUTBOX_DIR_DIR_INO &&
		   name_of(ob, ino, fname, sizeof(fname)) == 0 &&
		   !outbox_ignored(fname);
	size_t len = has ? sizeof(names) : 0;

	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names, len);
}

static void ob_dir_stat(void *self, struct stat *st)
{
	outbox_dir_dir_stat(self, st);
}

static const struct subtree_ops ops = {
	.kinds = 1u << INO_OUTBOX_DIR | 1u << INO_OUTBOX,
	.lookup = ob_lookup,
	.getattr = ob_getattr,
	.setattr = ob_setattr,
	.opendir = ob_opendir,
	.readdir = ob_readdir,
	.releasedir = ob_releasedir,
	.create = ob_create,
	.open = ob_open,
	.read = stage_read,
	.write = stage_write,
	.flush = ob_flush,
	.fsync = ob_fsync,
	.release = ob_release,
	.unlink = ob_unlink,
	.rename = ob_rename,
	.listxattr = ob_listxattr,
	.getxattr = ob_getxattr,
};

struct subtree outbox_dir_subtree(struct outbox_dir *ob)
{
	return (struct subtree){ .ops = &ops,
				 .self = ob,
				 .name = OUTBOX_DIR_NAME,
				 .dir = OUTBOX_DIR_DIR_INO,
				 .listed = true,
				 .dir_stat = ob_dir_stat };
}
