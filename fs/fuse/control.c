/* control.c - .mailfs/: status, refresh and prefetch as files, so scripts and
 * people need no other tool to see or steer the daemon. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "control.h"
#include "log.h"

enum { F_STATUS = 2, F_REFRESH = 3, F_PREFETCH = 4 };

static const struct {
	const char *name;
	unsigned n;
	mode_t mode;
} files[] = {
	{ "status", F_STATUS, 0444 },
	{ "refresh", F_REFRESH, 0200 },
	{ "prefetch", F_PREFETCH, 0200 },
};
#define NFILES (sizeof(files) / sizeof(files[0]))

struct control {
	struct control_opts o;
	time_t started;
};

/* What an open control file holds: status text to read. */
struct handle {
	char *buf;
	size_t len;
};

struct control *control_new(const struct control_opts *o)
{
	struct control *c = calloc(1, sizeof(*c));

	if (c) {
		c->o = *o;
		c->started = time(NULL);
	}
	return c;
}

void control_free(struct control *c)
{
	free(c);
}

static fuse_ino_t file_ino(unsigned n)
{
	return ino_make(INO_CONTROL, n);
}

static void attr(struct control *c, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = c->o.uid;
	st->st_gid = c->o.gid;
	st->st_mtime = st->st_ctime = st->st_atime = c->started;
	if (ino == CONTROL_DIR_INO) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return;
	}
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	for (size_t i = 0; i < NFILES; i++)
		if (file_ino(files[i].n) == ino)
			st->st_mode = S_IFREG | files[i].mode;
}

static bool known(fuse_ino_t ino)
{
	if (ino == CONTROL_DIR_INO)
		return true;
	for (size_t i = 0; i < NFILES; i++)
		if (file_ino(files[i].n) == ino)
			return true;
	return false;
}

static void control_lookup(void *self, fuse_req_t req, fuse_ino_t parent,
		       const char *name)
{
	struct control *c = self;
	struct fuse_entry_param e = { 0 };

	if (parent == FUSE_ROOT_ID) {
		e.ino = CONTROL_DIR_INO;
	} else {
		for (size_t i = 0; i < NFILES; i++)
			if (strcmp(name, files[i].name) == 0)
				e.ino = file_ino(files[i].n);
	}
	if (!e.ino) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	attr(c, e.ino, &e.attr);
	e.attr_timeout = e.entry_timeout = 60;
	fuse_reply_entry(req, &e);
}

static void control_getattr(void *self, fuse_req_t req, fuse_ino_t ino)
{
	struct control *c = self;
	struct stat st;

	if (!known(ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	attr(c, ino, &st);
	fuse_reply_attr(req, &st, 60);
}

/* `echo > .mailfs/refresh` truncates before writing: allow that, and
 * nothing else. */
static void control_setattr(void *self, fuse_req_t req, fuse_ino_t ino,
			struct stat *a, int to_set, struct fuse_file_info *fi)
{
	struct control *c = self;
	struct stat st;

	(void)fi;
	if (ino == CONTROL_DIR_INO || ino == file_ino(F_STATUS) ||
	    (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME |
			FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
			FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) ||
	    ((to_set & FUSE_SET_ATTR_SIZE) && a->st_size != 0)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	attr(c, ino, &st);
	fuse_reply_attr(req, &st, 60);
}

static void control_opendir(void *self, fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	(void)self;
	if (ino != CONTROL_DIR_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

static void control_readdir(void *self, fuse_req_t req, fuse_ino_t ino,
			size_t size, off_t off, struct fuse_file_info *fi,
			bool plus)
{
	struct control *c = self;
	char *buf;
	size_t pos = 0;

	(void)fi;
	if (ino != CONTROL_DIR_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < NFILES + 2; i++) {
		struct fuse_entry_param e = { 0 };
		const char *name = i == 0 ? "." : i == 1 ? ".." :
				   files[i - 2].name;
		fuse_ino_t ino = i == 0 ? CONTROL_DIR_INO : i == 1 ? FUSE_ROOT_ID :
				 file_ino(files[i - 2].n);
		size_t len;

		attr(c, ino == FUSE_ROOT_ID ? CONTROL_DIR_INO : ino, &e.attr);
		e.attr.st_ino = ino;
		if (plus) {
			/* "." and ".." must not take a lookup reference. */
			e.ino = i >= 2 ? ino : 0;
			e.attr_timeout = e.entry_timeout = 60;
			len = fuse_add_direntry_plus(req, buf + pos, size - pos,
						     name, &e, (off_t)(i + 1));
		} else {
			len = fuse_add_direntry(req, buf + pos, size - pos,
						name, &e.attr, (off_t)(i + 1));
		}
		if (len > size - pos)
			break;
		pos += len;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

/* ---- the status text ---- */

struct text {
	char *buf;
	size_t len, cap;
	bool failed;
};

static void put(struct text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || t->failed)
		return;
	if (t->len + (size_t)n + 1 > t->cap) {
		size_t cap = (t->len + (size_t)n + 1) * 2;
		char *p = realloc(t->buf, cap);

		if (!p) {
			t->failed = true;
			return;
		}
		t->buf = p;
		t->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

static void put_line(void *ctx, const char *line)
{
	put(ctx, "%s\n", line);
}

static const char *when(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!t || !localtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "never");
	return buf;
}

struct fnode {
	int64_t id, parent;
	char *name;
	bool mail;	/* selectable: has messages */
};

struct flist {
	struct fnode *v;
	size_t n, cap;
};

static int add_folder(void *ctx, const struct ix_folder *f)
{
	struct flist *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct fnode *p = realloc(l->v, cap * sizeof(*p));

		if (!p)
			return MFS_E_NOMEM;
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n] = (struct fnode){ f->id, f->parent, strdup(f->name),
				     f->wire && !(f->flags & IMAP_MB_NOSELECT) };
	if (!l->v[l->n].name)
		return MFS_E_NOMEM;
	l->n++;
	return 0;
}

/* The folder's path from the mount root, as ls shows it. */
static void folder_path(const struct flist *l, int64_t id, char *buf,
			size_t len, unsigned depth)
{
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].id != id)
			continue;
		if (l->v[i].parent && depth < 64) {
			folder_path(l, l->v[i].parent, buf, len, depth + 1);
			strncat(buf, "/", len - strlen(buf) - 1);
		}
		strncat(buf, l->v[i].name, len - strlen(buf) - 1);
		return;
	}
}

struct fline {
	char *path, *line;
};

/* By path, so that a folder comes before its subfolders. */
static int cmp_path(const void *a, const void *b)
{
	return strcmp(((const struct fline *)a)->path,
		      ((const struct fline *)b)->path);
}

static void status_folders(struct control *c, struct text *t)
{
	struct flist l = { 0 };
	struct fline *lines = NULL;
	size_t n = 0;

	if (index_folder_all(c->o.ix, add_folder, &l, NULL) == 0)
		lines = calloc(l.n ? l.n : 1, sizeof(*lines));
	for (size_t i = 0; lines && i < l.n; i++) {
		char path[4096] = "", tbuf[32];
		unsigned msgs = 0, sub = 0;

		if (!l.v[i].mail)
			continue;
		folder_path(&l, l.v[i].id, path, sizeof(path), 0);
		index_folder_counts(c->o.ix, l.v[i].id, &msgs, &sub, NULL);
		lines[n].path = strdup(path);
		if (lines[n].path &&
		    asprintf(&lines[n].line,
			     "folder %s: %u messages, synced %s%s", path, msgs,
			     when(sync_folder_time(c->o.sync, l.v[i].id), tbuf,
				  sizeof(tbuf)),
			     watch_has(c->o.watch, l.v[i].id) ? ", idle" :
								 "") >= 0)
			n++;
		else
			free(lines[n].path);
	}
	if (n)
		qsort(lines, n, sizeof(*lines), cmp_path);
	for (size_t i = 0; i < n; i++) {
		put(t, "%s\n", lines[i].line);
		free(lines[i].line);
		free(lines[i].path);
	}
	free(lines);
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].name);
	free(l.v);
}

static void status_outbox(struct control *c, struct text *t)
{
	DIR *d;
	struct dirent *de;
	struct text files = { 0 };
	unsigned n = 0;

	if (!c->o.outbox || !(d = opendir(c->o.outbox_dir)))
		return;
	while ((de = readdir(d))) {
		char st[512];

		if (de->d_type != DT_REG || outbox_ignored(de->d_name))
			continue;
		outbox_status(c->o.outbox, de->d_name, st, sizeof(st));
		put(&files, "outbox %s: %s\n", de->d_name, st);
		n++;
	}
	closedir(d);
	put(t, "outbox: %u queued\n", n);
	if (files.buf)
		put(t, "%s", files.buf);
	free(files.buf);
}

int control_status_text(struct control *c, char **out, size_t *len)
{
	struct text t = { 0 };
	struct sync_state ss;
	struct cache_stats cs;
	char tbuf[32];

	sync_status(c->o.sync, &ss);
	if (ss.online)
		put(&t, "state: online\n");
	else if (ss.error[0])
		put(&t, "state: offline: %s\n", ss.error);
	else
		put(&t, "state: connecting\n");
	put(&t, "since: %s\n", when(ss.since ? ss.since : c->started, tbuf,
				    sizeof(tbuf)));
	cache_stats(c->o.cache, &cs);
	put(&t, "cache: %llu bytes in %llu bodies, cap %llu\n",
	    (unsigned long long)cs.bytes, (unsigned long long)cs.bodies,
	    (unsigned long long)cs.cap);
	put(&t, "fetched: %llu bodies, %llu bytes\n",
	    (unsigned long long)cs.fetched,
	    (unsigned long long)cs.fetched_bytes);
	put(&t, "decoded: %llu messages, %llu bytes on disk; %llu decodes\n",
	    (unsigned long long)cs.views, (unsigned long long)cs.views_bytes,
	    (unsigned long long)cs.decoded);
	status_folders(c, &t);
	prefetch_report(c->o.prefetch, put_line, &t);
	status_outbox(c, &t);
	if (t.failed) {
		free(t.buf);
		return MFS_E_NOMEM;
	}
	*out = t.buf;
	*len = t.len;
	return 0;
}

/* ---- open, read, write ---- */

static void control_open(void *self, fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi)
{
	struct control *c = self;
	struct handle *h;
	bool wr = (fi->flags & O_ACCMODE) != O_RDONLY;

	if (ino == CONTROL_DIR_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (!known(ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (ino == file_ino(F_STATUS) ? wr : !wr) {
		fuse_reply_err(req, EACCES);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h || (ino == file_ino(F_STATUS) &&
		   control_status_text(c, &h->buf, &h->len) < 0)) {
		free(h);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	fi->nonseekable = ino != file_ino(F_STATUS);
	if (fuse_reply_open(req, fi) != 0) {
		free(h->buf);
		free(h);
	}
}

static void control_read(void *self, fuse_req_t req, fuse_ino_t ino, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	size_t n;
	char *copy;

	(void)self;
	(void)ino;
	if (off < 0 || (size_t)off >= h->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	/* A copy: the release of this handle may run on another thread as
	 * soon as the kernel has the data, before fuse_reply_buf returns. */
	n = h->len - (size_t)off < size ? h->len - (size_t)off : size;
	copy = malloc(n);
	if (!copy) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(copy, h->buf + off, n);
	fuse_reply_buf(req, copy, n);
	free(copy);
}

struct find_ctx {
	int64_t id;
	bool mail;
};

static int found(void *ctx, const struct ix_folder *f)
{
	struct find_ctx *fc = ctx;

	fc->id = f->id;
	fc->mail = f->wire && !(f->flags & IMAP_MB_NOSELECT);
	return 0;
}

/* "Archive/2024" as ls shows it, to a folder id. */
static int resolve_path(struct control *c, const char *path, struct find_ctx *fc)
{
	char *copy = strdup(path), *save = NULL, *comp;
	int rc = MFS_E_NOTFOUND;

	if (!copy)
		return MFS_E_NOMEM;
	fc->id = 0;
	for (comp = strtok_r(copy, "/", &save); comp;
	     comp = strtok_r(NULL, "/", &save)) {
		rc = index_folder_by_name(c->o.ix, fc->id, comp, found, fc,
					  NULL);
		if (rc < 0)
			break;
	}
	free(copy);
	if (rc == 0 && !fc->mail)
		rc = MFS_E_NOTFOUND;	/* \Noselect: nothing to fetch */
	return rc;
}

static int prefetch_lines(struct control *c, const char *buf, size_t size)
{
	char *text = strndup(buf, size), *save = NULL, *line;
	int rc = 0;

	if (!text)
		return MFS_E_NOMEM;
	for (line = strtok_r(text, "\n", &save); rc == 0 && line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct find_ctx fc;
		size_t len = strlen(line);

		while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' ||
			       line[len - 1] == '/'))
			line[--len] = '\0';
		while (*line == '/')
			line++;
		if (!*line)
			continue;
		rc = resolve_path(c, line, &fc);
		if (rc == 0)
			rc = prefetch_add(c->o.prefetch, fc.id, line);
		if (rc < 0)
			log_msg(LOG_WARNING, "prefetch %s: %s", line,
				mfs_strerror(rc));
	}
	free(text);
	return rc;
}

static void control_write(void *self, fuse_req_t req, fuse_ino_t ino,
		      const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct control *c = self;
	int rc;

	(void)off;
	(void)fi;
	if (ino == file_ino(F_REFRESH)) {
		changes_flush(c->o.act);
		rc = sync_refresh(c->o.sync, c->o.refresh_timeout_s);
		if (rc < 0)
			log_msg(LOG_WARNING, "refresh: %s", mfs_strerror(rc));
		/* Offline or timed out: the caller must not think the tree
		 * is current. */
		if (rc < 0)
			rc = rc == MFS_E_TIMEOUT ? MFS_E_TIMEOUT : MFS_E_IO;
	} else if (ino == file_ino(F_PREFETCH)) {
		rc = prefetch_lines(c, buf, size);
	} else {
		rc = MFS_E_INVAL;
	}
	if (rc < 0)
		fuse_reply_err(req, mfs_errno(rc));
	else
		fuse_reply_write(req, size);
}

static void control_release(void *self, fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	(void)self;
	(void)ino;
	if (h)
		free(h->buf);
	free(h);
	fuse_reply_err(req, 0);
}

static const struct subtree_ops ops = {
	.kinds = 1u << INO_CONTROL,
	.lookup = control_lookup,
	.getattr = control_getattr,
	.setattr = control_setattr,
	.opendir = control_opendir,
	.readdir = control_readdir,
	.open = control_open,
	.read = control_read,
	.write = control_write,
	.release = control_release,
};

struct subtree control_subtree(struct control *c)
{
	return (struct subtree){ .ops = &ops,
				 .self = c,
				 .name = CONTROL_NAME,
				 .dir = CONTROL_DIR_INO,
				 .listed = false };
}
