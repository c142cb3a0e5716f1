/* acctlock.c - one daemon per account (see acctlock.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "acctlock.h"

struct acctlock {
	int fd;		/* the lock file in the cache directory */
	int dirfd;	/* the outbox directory; -1 when not lockable */
	bool held;
	char *mountpoint;
	char path[PATH_MAX];
};

/* What the lock file says: "<pid>\n<mountpoint>\n". */
struct holder {
	long pid;
	char mountpoint[PATH_MAX];
};

static bool read_holder(int fd, struct holder *h)
{
	char buf[PATH_MAX + 32];
	ssize_t n;
	char *nl, *end;

	h->pid = 0;
	h->mountpoint[0] = '\0';
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	if (!nl)
		return false;
	errno = 0;
	h->pid = strtol(buf, &end, 10);
	if (errno || end != nl || h->pid <= 0)
		return false;
	/* The mountpoint is the rest, up to the final newline (a path may
	 * hold newlines of its own). */
	end = buf + n;
	if (end == nl + 1 || end[-1] != '\n')
		return false;
	end[-1] = '\0';
	snprintf(h->mountpoint, sizeof(h->mountpoint), "%s", nl + 1);
	return true;
}

/* mountinfo escapes blanks and backslashes in paths as \ooo. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Whether anything is mounted on path; true when we cannot tell. */
static bool is_mounted(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return true;
	while (!found && getline(&line, &cap, f) > 0) {
		char *p = line;

		/* id parent major:minor root MOUNTPOINT ... */
		for (int i = 0; i < 4 && p; i++) {
			p = strchr(p, ' ');
			if (p)
				p++;
		}
		if (!p)
			continue;
		p[strcspn(p, " ")] = '\0';
		unescape(p);
		found = strcmp(p, path) == 0;
	}
	free(line);
	fclose(f);
	return found;
}

static int write_holder(struct acctlock *l, struct mfs_error *err)
{
	char *text = NULL;
	int len, rc = 0;

	len = asprintf(&text, "%ld\n%s\n", (long)getpid(), l->mountpoint);
	if (len < 0)
		return mfs_fail(err, MFS_E_NOMEM, "out of memory");
	if (ftruncate(l->fd, 0) < 0 ||
	    pwrite(l->fd, text, (size_t)len, 0) != len)
		rc = mfs_fail(err, MFS_E_IO, "%s: %s", l->path,
			      strerror(errno));
	free(text);
	return rc;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Lock the lock file, waiting only while its holder is a daemon whose
 * mount is gone (shutting down after an unmount). */
static int lock_file(struct acctlock *l, unsigned wait_s,
		     struct mfs_error *err)
{
	long waited_ms = 0;
	struct holder h;

	for (;;) {
		if (flock(l->fd, LOCK_EX | LOCK_NB) == 0) {
			l->held = true;
			return 0;
		}
		if (errno != EWOULDBLOCK && errno != EINTR)
			return 0;	/* no flock here: not held */
		if (errno == EINTR)
			continue;
		if (!read_holder(l->fd, &h))
			break;
		if (is_mounted(h.mountpoint) ||
		    waited_ms >= (long)wait_s * 1000)
			return mfs_fail(err, MFS_E_EXISTS,
					"already mounted on %s by pid %ld",
					h.mountpoint, h.pid);
		sleep_ms(100);
		waited_ms += 100;
	}
	return mfs_fail(err, MFS_E_EXISTS,
			"already in use by another mailfs (lock %s)", l->path);
}

int acctlock_take(const char *cache_dir, const char *outbox_dir,
		  const char *mountpoint, unsigned wait_s,
		  struct acctlock **out, struct mfs_error *err)
{
	struct acctlock *l = calloc(1, sizeof(*l));
	int rc;

	*out = NULL;
	if (!l)
		return mfs_fail(err, MFS_E_NOMEM, "out of memory");
	l->fd = l->dirfd = -1;
	l->mountpoint = strdup(mountpoint);
	if (!l->mountpoint) {
		rc = mfs_fail(err, MFS_E_NOMEM, "out of memory");
		goto out;
	}
	if (snprintf(l->path, sizeof(l->path), "%s/lock", cache_dir) >=
	    (int)sizeof(l->path)) {
		rc = mfs_fail(err, MFS_E_IO, "path too long: %s", cache_dir);
		goto out;
	}
	l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (l->fd < 0) {
		rc = mfs_fail(err, MFS_E_IO, "%s: %s", l->path,
			      strerror(errno));
		goto out;
	}
	rc = lock_file(l, wait_s, err);
	if (rc < 0 || !l->held)
		goto out;
	/* The spool too: another cache_dir must not mean a second sender
	 * of the same outbox. */
	l->dirfd = open(outbox_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->dirfd >= 0 && flock(l->dirfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK) {
			rc = mfs_fail(err, MFS_E_EXISTS,
				      "outbox %s is in use by another mailfs",
				      outbox_dir);
			goto out;
		}
		close(l->dirfd);
		l->dirfd = -1;
	}
	rc = write_holder(l, err);
out:
	if (rc < 0) {
		acctlock_free(l);
		return rc;
	}
	*out = l;
	return 0;
}

bool acctlock_held(const struct acctlock *l)
{
	return l && l->held;
}

int acctlock_note(struct acctlock *l, struct mfs_error *err)
{
	if (!l || !l->held)
		return 0;
	return write_holder(l, err);
}

void acctlock_free(struct acctlock *l)
{
	if (!l)
		return;
	if (l->dirfd >= 0)
		close(l->dirfd);
	if (l->fd >= 0)
		close(l->fd);
	free(l->mountpoint);
	free(l);
}
