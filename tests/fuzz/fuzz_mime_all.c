/* fuzz_mime_all.c - mime_decode_all (every part from one parse, as the
 * cache decodes a message for its views) on arbitrary bytes.
 *
 * Parts get a memfd each, except every third one, which is only
 * measured.  mime_decode_all must agree with mime_decode, which the views
 * stand in for: the same parts in the same order, with the same names,
 * types and sizes; each part written is exactly as long as measured and
 * byte for byte what mime_decode writes for it alone.  Besides crashes
 * and leaks, any disagreement is a finding (abort()).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mime.h"
#include "names.h"
#include "mime_fuzz.h"

#define MAX_PARTS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct part {
	char name[NAMES_MAX + 1];
	char type[256];
	uint64_t size;
	int fd;
};

struct run {
	unsigned count;
	struct part p[MAX_PARTS];
};

static int open_part(void *ctx, unsigned n)
{
	struct run *r = ctx;
	int fd;

	if (n < 1 || n > MAX_PARTS || r->p[n - 1].fd != -1)
		abort();
	if (n % 3 == 0)
		return -1;	/* measured only */
	fd = memfd_create("fuzz-part", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	r->p[n - 1].fd = fd;
	return fd;
}

static int note(void *ctx, unsigned n, const char *name, const char *type,
		uint64_t size)
{
	struct run *r = ctx;
	struct part *p;

	if (n != r->count + 1 || n > MAX_PARTS)
		abort();
	p = &r->p[n - 1];
	if (strlen(name) > NAMES_MAX || !name[0] || strchr(name, '/'))
		abort();
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->type, sizeof(p->type), "%s", type);
	p->size = size;
	r->count++;
	return 0;
}

static void init(struct run *r)
{
	memset(r, 0, sizeof(*r));
	for (unsigned i = 0; i < MAX_PARTS; i++)
		r->p[i].fd = -1;
}

static bool same_bytes(int a, int b, uint64_t len)
{
	char x[4096], y[4096];
	uint64_t off = 0;

	while (off < len) {
		size_t n = len - off < sizeof(x) ? (size_t)(len - off) : sizeof(x);

		if (pread(a, x, n, (off_t)off) != (ssize_t)n ||
		    pread(b, y, n, (off_t)off) != (ssize_t)n || memcmp(x, y, n))
			return false;
		off += n;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mfs_error err = { 0 };
	struct run *all = malloc(sizeof(*all)), *each = malloc(sizeof(*each));
	int fd = memfd_create("fuzz-mime", MFD_CLOEXEC);
	struct stat st;
	int ret;

	if (!all || !each || fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	init(all);
	init(each);
	ret = mime_decode_all(fd, MAX_PARTS, open_part, note, all, &err);
	if (ret != 0) {
		fprintf(stderr, "mime_decode_all: %d %s\n", ret, err.msg);
		abort();
	}
	if (mime_decode(fd, 0, -1, MAX_PARTS, note, each, &err) != 0)
		abort();
	if (all->count != each->count)
		abort();
	for (unsigned i = 0; i < all->count; i++) {
		struct part *a = &all->p[i], *b = &each->p[i];

		if (strcmp(a->name, b->name) || strcmp(a->type, b->type) ||
		    a->size != b->size)
			abort();
		if (a->fd < 0)
			continue;
		if (fstat(a->fd, &st) < 0 || (uint64_t)st.st_size != a->size)
			abort();
		{
			struct one o = { 0 };
			int out = memfd_create("fuzz-one", MFD_CLOEXEC);

			if (out < 0 ||
			    mime_decode(fd, i + 1, out, MAX_PARTS, note_one, &o,
					&err) != 0 ||
			    o.calls != 1 || o.size != a->size ||
			    !same_bytes(a->fd, out, a->size))
				abort();
			close(out);
		}
	}
	for (unsigned i = 0; i < MAX_PARTS; i++)
		if (all->p[i].fd >= 0)
			close(all->p[i].fd);
	close(fd);
	free(all);
	free(each);
	return 0;
}
