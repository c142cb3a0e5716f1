/* overwrite.c - writes over a message compared with its bytes.
 *
 * The file as the writer sees it is modelled by two numbers: len, its
 * length, and covered, the prefix [0, covered) known to hold the message's
 * bytes.  Opening leaves both at the message's size; O_TRUNC cuts them;
 * a write that starts inside the known prefix and matches extends it.
 * Anything else (other bytes, a write past a hole, growing past the end)
 * marks the handle different for good. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "overwrite.h"

struct overwrite {
	int fd;
	uint64_t size;		/* the message's */
	uint64_t len, covered;
	bool differs;
};

int overwrite_open(int body_fd, uint64_t size, struct overwrite **out)
{
	struct overwrite *w = calloc(1, sizeof(*w));

	if (!w) {
		close(body_fd);
		return -ENOMEM;
	}
	w->fd = body_fd;
	w->size = w->len = w->covered = size;
	*out = w;
	return 0;
}

int overwrite_fd(const struct overwrite *w)
{
	return w->fd;
}

/* Are buf's n bytes the message's at off? */
static int same(const struct overwrite *w, const char *buf, size_t n,
		uint64_t off)
{
	char chunk[16384];

	while (n > 0) {
		size_t want = n < sizeof(chunk) ? n : sizeof(chunk);
		ssize_t got = pread(w->fd, chunk, want, (off_t)off);

		if (got < 0)
			return -EIO;
		if (got == 0 || memcmp(chunk, buf, (size_t)got) != 0)
			return 0;
		buf += got;
		off += (uint64_t)got;
		n -= (size_t)got;
	}
	return 1;
}

int overwrite_write(struct overwrite *w, const char *buf, size_t n, off_t off)
{
	uint64_t start = off < 0 ? UINT64_MAX : (uint64_t)off;
	uint64_t end;
	int rc;

	if (w->differs)
		return -EPERM;
	/* Past a hole the file would hold zeros the message may not have;
	 * past the message's end it would be longer. */
	if (start > w->covered || n > w->size || start > w->size - n) {
		w->differs = true;
		return -EPERM;
	}
	rc = same(w, buf, n, start);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		w->differs = true;
		return -EPERM;
	}
	end = start + n;
	if (end > w->covered)
		w->covered = end;
	if (end > w->len)
		w->len = end;
	return 0;
}

int overwrite_truncate(struct overwrite *w, uint64_t size)
{
	if (size > w->size) {
		w->differs = true;
		return -EPERM;
	}
	w->len = size;
	if (w->covered > size)
		w->covered = size;
	return 0;
}

int overwrite_check(const struct overwrite *w)
{
	return !w->differs && w->len == w->size && w->covered == w->size ?
		       0 : -EPERM;
}

void overwrite_close(struct overwrite *w)
{
	if (!w)
		return;
	close(w->fd);
	free(w);
}
