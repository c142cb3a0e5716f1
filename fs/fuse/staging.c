/* staging.c - files kept locally while FUSE users write them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "staging.h"

bool stage_valid_name(const char *name)
{
	return name[0] && strlen(name) <= NAME_MAX && !strchr(name, '/') &&
	       strcmp(name, ".") && strcmp(name, "..");
}

int stage_open(const char *dir, const char *name, int flags,
	       struct stage_file **out)
{
	struct stage_file *f = calloc(1, sizeof(*f));
	char path[PATH_MAX];

	if (!f)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f->fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (f->fd < 0) {
		int e = errno;

		free(f);
		return -e;
	}
	f->writing = (flags & O_ACCMODE) != O_RDONLY;
	snprintf(f->name, sizeof(f->name), "%s", name);
	*out = f;
	return 0;
}

void stage_close(struct stage_file *f)
{
	if (!f)
		return;
	close(f->fd);
	free(f);
}

void stage_read(void *self, fuse_req_t req, fuse_ino_t ino, size_t size,
		off_t off, struct fuse_file_info *fi)
{
	struct stage_file *f = (struct stage_file *)(uintptr_t)fi->fh;
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)self;
	(void)ino;

	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = f->fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void stage_write(void *self, fuse_req_t req, fuse_ino_t ino, const char *buf,
		 size_t size, off_t off, struct fuse_file_info *fi)
{
	struct stage_file *f = (struct stage_file *)(uintptr_t)fi->fh;
	ssize_t n = pwrite(f->fd, buf, size, off);

	(void)self;
	(void)ino;
	f->written = true;
	if (n < 0) {
		if (!f->werr)
			f->werr = errno;
		fuse_reply_err(req, errno);
	} else
		fuse_reply_write(req, (size_t)n);
}

int stage_setattr(const char *path, struct stage_file *f,
		  const struct stat *attr, int to_set, struct stat *st)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };

	if ((to_set & FUSE_SET_ATTR_SIZE) &&
	    (f ? ftruncate(f->fd, attr->st_size) :
		 truncate(path, attr->st_size)) < 0)
		return -errno;
	if (to_set & FUSE_SET_ATTR_ATIME)
		ts[0] = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME)
		ts[1] = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		ts[0].tv_nsec = UTIME_NOW;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		ts[1].tv_nsec = UTIME_NOW;
	if ((ts[0].tv_nsec != UTIME_OMIT || ts[1].tv_nsec != UTIME_OMIT) &&
	    utimensat(AT_FDCWD, path, ts, 0) < 0)
		return -errno;
	return lstat(path, st) < 0 ? -errno : 0;
}

int stage_find(const char *dir, uint64_t ino, uint64_t mask, char *name,
	       size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int rc = -ENOENT;

	if (!d)
		return -ENOENT;
	while ((de = readdir(d))) {
		if ((de->d_ino & mask) == (ino & mask) &&
		    stage_valid_name(de->d_name)) {
			snprintf(name, len, "%s", de->d_name);
			rc = 0;
			break;
		}
	}
	closedir(d);
	return rc;
}
