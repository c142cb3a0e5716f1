/* import.c - staging and appending files copied into a folder. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "changes.h"
#include "import.h"
#include "inode.h"
#include "log.h"
#include "mime.h"
#include "smtp.h"
#include "staging.h"

#define MAX_IMPORT (64u * 1024 * 1024)

struct import {
	char *dir;
	struct index *ix;
	struct changes *changes;
	uid_t uid;
	gid_t gid;
	void (*changed)(void *ctx, int64_t folder);
	void *ctx;
};

/* What an earlier mount left staged is nobody's any more: a temporary
 * file never renamed, or a message whose append failed (its writer was
 * told at close and still has the source).  Left, they would stay
 * findable by name for ever. */
static void clear_staging(const char *dir)
{
	DIR *top = opendir(dir);
	struct dirent *de;

	if (!top)
		return;
	while ((de = readdir(top))) {
		int fd;
		DIR *sub;
		struct dirent *fe;

		if (de->d_name[0] == '.')
			continue;
		fd = openat(dirfd(top), de->d_name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		sub = fd >= 0 ? fdopendir(fd) : NULL;
		if (!sub) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		while ((fe = readdir(sub)))
			if (strcmp(fe->d_name, ".") && strcmp(fe->d_name, ".."))
				unlinkat(dirfd(sub), fe->d_name, 0);
		closedir(sub);
		unlinkat(dirfd(top), de->d_name, AT_REMOVEDIR);
	}
	closedir(top);
}

struct import *import_new(const char *dir, struct index *ix,
			  struct changes *changes, uid_t uid, gid_t gid)
{
	struct import *im = calloc(1, sizeof(*im));

	if (!im || !(im->dir = strdup(dir))) {
		free(im);
		return NULL;
	}
	mkdir(dir, 0700);
	clear_staging(dir);
	im->ix = ix;
	im->changes = changes;
	im->uid = uid;
	im->gid = gid;
	return im;
}

void import_free(struct import *im)
{
	if (!im)
		return;
	free(im->dir);
	free(im);
}

void import_set_changed(struct import *im, void (*fn)(void *ctx, int64_t folder),
		     void *ctx)
{
	im->changed = fn;
	im->ctx = ctx;
}

static bool temporary(const char *name)
{
	static const char *const patterns[] = { ".*", "*~", "*.swp", "*.tmp",
						"#*#" };

	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
		if (fnmatch(patterns[i], name, 0) == 0)
			return true;
	return false;
}

static void folder_dir(struct import *im, int64_t folder, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%lld", im->dir, (long long)folder);
}

static void path_of(struct import *im, int64_t folder, const char *name,
		    char *buf, size_t len)
{
	snprintf(buf, len, "%s/%lld/%s", im->dir, (long long)folder, name);
}

static void fix_stat(struct import *im, int64_t folder, struct stat *st)
{
	st->st_ino = ino_import_make(folder, st->st_ino);
	st->st_uid = im->uid;
	st->st_gid = im->gid;
}

static int name_of(struct import *im, fuse_ino_t ino, int64_t *folder, char *name,
		   size_t len)
{
	char dir[PATH_MAX];

	*folder = ino_import_folder(ino);
	folder_dir(im, *folder, dir, sizeof(dir));
	return stage_find(dir, ino, INO_SUB_MASK, name, len);
}

int import_lookup(struct import *im, int64_t folder, const char *name,
	       struct fuse_entry_param *e)
{
	char path[PATH_MAX];

	if (!stage_valid_name(name))
		return -ENOENT;
	path_of(im, folder, name, path, sizeof(path));
	if (lstat(path, &e->attr) < 0 || !S_ISREG(e->attr.st_mode))
		return -ENOENT;
	fix_stat(im, folder, &e->attr);
	e->ino = e->attr.st_ino;
	e->attr_timeout = e->entry_timeout = 0;
	return 0;
}

static void import_getattr(void *self, fuse_req_t req, fuse_ino_t ino)
{
	struct import *im = self;
	char name[NAME_MAX + 1], path[PATH_MAX];
	int64_t folder;
	struct stat st;
	int rc = name_of(im, ino, &folder, name, sizeof(name));

	path_of(im, folder, name, path, sizeof(path));
	if (rc == 0 && lstat(path, &st) < 0)
		rc = -errno;
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fix_stat(im, folder, &st);
	fuse_reply_attr(req, &st, 0);
}

static void import_setattr(void *self, fuse_req_t req, fuse_ino_t ino,
			struct stat *attr, int to_set,
			struct fuse_file_info *fi)
{
	struct import *im = self;
	char name[NAME_MAX + 1], path[PATH_MAX];
	int64_t folder;
	struct stat st;
	int rc = name_of(im, ino, &folder, name, sizeof(name));

	path_of(im, folder, name, path, sizeof(path));
	if (rc == 0)
		rc = stage_setattr(path, fi ? (struct stage_file *)(uintptr_t)
						      fi->fh : NULL,
				   attr, to_set, &st);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fix_stat(im, folder, &st);
	fuse_reply_attr(req, &st, 0);
}

static void import_release(void *self, fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi);

static int open_staged(struct import *im, int64_t folder, const char *name,
		       int flags, struct fuse_file_info *fi)
{
	struct stage_file *f = NULL;
	char dir[PATH_MAX];
	int rc;

	folder_dir(im, folder, dir, sizeof(dir));
	mkdir(dir, 0700);
	rc = stage_open(dir, name, flags, &f);
	if (rc < 0)
		return rc;
	f->folder = folder;
	fi->fh = (uintptr_t)f;
	fi->direct_io = 1;
	return 0;
}

void import_create(struct import *im, fuse_req_t req, int64_t folder,
		const char *name, struct fuse_file_info *fi)
{
	struct fuse_entry_param e = { 0 };
	int rc;

	if (!stage_valid_name(name)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = open_staged(im, folder, name,
			 (fi->flags & (O_ACCMODE | O_EXCL)) | O_CREAT | O_TRUNC,
			 fi);
	if (rc == 0)
		rc = import_lookup(im, folder, name, &e);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	((struct stage_file *)(uintptr_t)fi->fh)->written = true;
	if (fuse_reply_create(req, &e, fi) != 0)
		import_release(im, NULL, e.ino, fi);
}

static void import_open(void *self, fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi)
{
	struct import *im = self;
	char name[NAME_MAX + 1];
	int64_t folder;
	int rc = name_of(im, ino, &folder, name, sizeof(name));

	if (rc == 0)
		rc = open_staged(im, folder, name,
				 fi->flags & (O_ACCMODE | O_TRUNC | O_APPEND),
				 fi);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (fuse_reply_open(req, fi) != 0)
		import_release(im, NULL, ino, fi);
}

/* Message literals are CRLF; files on disk often are not. */
static char *to_crlf(const char *in, size_t len, size_t *out_len)
{
	size_t extra = 0, j = 0;
	char *out;

	for (size_t i = 0; i < len; i++)
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			extra++;
	out = malloc(len + extra + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			out[j++] = '\r';
		out[j++] = in[i];
	}
	*out_len = j;
	return out;
}

struct wire_ctx {
	char *wire;
};

static int get_wire(void *ctx, const struct ix_folder *f)
{
	((struct wire_ctx *)ctx)->wire = f->wire ? strdup(f->wire) : NULL;
	return 0;
}

/* Append the staged file; 0 or -errno.  The staged file goes either way
 * once judged: appended, a duplicate, or not a message. */
static int commit(struct import *im, int64_t folder, const char *name)
{
	struct mfs_error err = { 0 };
	struct mime_summary sum = { 0 };
	struct wire_ctx wc = { 0 };
	char path[PATH_MAX];
	char *raw = NULL, *data = NULL;
	bool dup = false;
	size_t len = 0, dlen = 0;
	struct stat st;
	char why[128];
	int fd = -1, rc = 0;

	path_of(im, folder, name, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if ((uint64_t)st.st_size > MAX_IMPORT) {
		rc = -EFBIG;
		goto drop;
	}
	raw = malloc((size_t)st.st_size + 1);
	if (!raw) {
		rc = -ENOMEM;
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, raw + len, (size_t)st.st_size - len);

		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (!mime_is_message(raw, len)) {
		log_msg(LOG_WARNING, "%s: not a message, not appended", name);
		rc = -EINVAL;
		goto drop;
	}
	/* An interrupted cp leaves what it wrote: a message visibly cut
	 * short (see smtp_msg_cut for what shows) is not appended. */
	if (smtp_msg_cut(raw, len, why, sizeof(why))) {
		log_msg(LOG_WARNING, "%s: cut short (%s), not appended", name,
			why);
		rc = -EINVAL;
		goto drop;
	}
	data = to_crlf(raw, len, &dlen);
	if (!data) {
		rc = -ENOMEM;
		goto out;
	}
	mime_summary_parse(raw, len, &sum);
	if (index_folder_get(im->ix, folder, get_wire, &wc, NULL) < 0 ||
	    !wc.wire) {
		rc = -EROFS;
		goto drop;
	}
	rc = changes_append(im->changes, folder, data, dlen, sum.message_id,
			    sum.date_valid ? sum.date : 0, &dup, &err);
	if (rc < 0) {
		log_msg(LOG_WARNING, "%s: append failed: %s", name, err.msg);
		rc = -mfs_errno(rc);
		goto out;	/* keep it staged: the writer may retry */
	}
	if (dup)
		log_msg(LOG_INFO, "%s: already in the folder, skipped", name);
	else
		log_debug(LOG_CAT_FS, "appended %s to %s", name, wc.wire);
drop:
	unlink(path);
	if (im->changed)
		im->changed(im->ctx, folder);
out:
	if (fd >= 0)
		close(fd);
	mime_summary_clear(&sum);
	free(wc.wire);
	free(data);
	free(raw);
	return rc;
}

static void import_flush(void *self, fuse_req_t req, fuse_ino_t ino,
		      struct fuse_file_info *fi)
{
	struct import *im = self;
	struct stage_file *f = (struct stage_file *)(uintptr_t)fi->fh;
	int rc = 0;

	(void)ino;
	if (f->written && !temporary(f->name) && f->werr) {
		/* A write failed (a full disk): what is staged is not what
		 * the writer meant; it has been told and still has it. */
		log_msg(LOG_WARNING, "%s: a write failed (%s), not appended",
			f->name, strerror(f->werr));
		rc = -f->werr;
		f->written = false;
	} else if (f->written && !temporary(f->name)) {
		rc = commit(im, f->folder, f->name);
		f->written = false;
	}
	fuse_reply_err(req, -rc);
}

static void import_release(void *self, fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct stage_file *f = (struct stage_file *)(uintptr_t)fi->fh;

	(void)self;
	(void)ino;
	stage_close(f);
	if (req)
		fuse_reply_err(req, 0);
}

int import_unlink(struct import *im, int64_t folder, const char *name)
{
	char path[PATH_MAX];

	if (!stage_valid_name(name))
		return -ENOENT;
	path_of(im, folder, name, path, sizeof(path));
	return unlink(path) < 0 ? -errno : 0;
}

int import_rename(struct import *im, int64_t folder, const char *name,
	       const char *newname)
{
	char from[PATH_MAX], to[PATH_MAX];
	struct stat st;

	if (!stage_valid_name(name) || !stage_valid_name(newname))
		return -EINVAL;
	path_of(im, folder, name, from, sizeof(from));
	path_of(im, folder, newname, to, sizeof(to));
	if (lstat(from, &st) < 0)
		return -ENOENT;
	if (rename(from, to) < 0)
		return -errno;
	/* rsync's temp file renamed to its final name: that is the
	 * moment the message is complete. */
	return temporary(newname) ? 0 : commit(im, folder, newname);
}

static const struct subtree_ops ops = {
	.kinds = 1u << INO_IMPORT,
	.getattr = import_getattr,
	.setattr = import_setattr,
	.open = import_open,
	.read = stage_read,
	.write = stage_write,
	.flush = import_flush,
	.release = import_release,
};

struct subtree import_subtree(struct import *im)
{
	return (struct subtree){ .ops = &ops, .self = im };
}
