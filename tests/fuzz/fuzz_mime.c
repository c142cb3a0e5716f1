/* fuzz_mime.c - mime_summary_parse and mime_decode on arbitrary bytes.
 *
 * The input is both a header block and a whole message.  Every part is
 * measured, then each is written on its own into a memfd, as mailfs does
 * on open.  Besides crashes and leaks, a local error, a part whose
 * written size differs from its measured one, or a bad name is a finding
 * (abort()).
 */
#include <fcntl.h>
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n, k;

	while (*p) {
		if (*p < 0x80) {
			p++;
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf)
			n = 2;
		else if (*p >= 0xe0 && *p <= 0xef)
			n = 3;
		else if (*p >= 0xf0 && *p <= 0xf4)
			n = 4;
		else
			return false;
		for (k = 1; k < n; k++)
			if ((p[k] & 0xc0) != 0x80)
				return false;
		p += n;
	}
	return true;
}

struct seen {
	unsigned count;
	char names[64][NAMES_MAX + 1];
	uint64_t sizes[64];
};

static int check_part(void *ctx, unsigned n, const char *name, const char *type,
		      uint64_t size)
{
	struct seen *s = ctx;
	size_t len = strlen(name);
	unsigned i;

	if (n != s->count + 1 || n > 64)
		abort();
	if (len == 0 || len > NAMES_MAX || name[0] == '.' ||
	    strchr(name, '/') || !valid_utf8(name) || !strchr(type, '/'))
		abort();
	for (i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			abort();
	for (i = 0; i < s->count; i++)
		if (!strcmp(s->names[i], name))
			abort();
	s->sizes[s->count] = size;
	memcpy(s->names[s->count++], name, len + 1);
	return 0;
}

/* Part n alone, into a memfd: told once, and as long as measured. */
static void write_one(int fd, unsigned n, uint64_t measured)
{
	struct mfs_error err = {0};
	struct one o = {0};
	struct stat st;
	int out = memfd_create("fuzz-part", MFD_CLOEXEC);

	if (out < 0 || mime_decode(fd, n, out, 64, note_one, &o, &err) != 0)
		abort();
	if (o.calls != 1 || o.size != measured || fstat(out, &st) < 0 ||
	    (uint64_t)st.st_size != measured)
		abort();
	close(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mfs_error err = {0};
	struct mime_summary sum;
	struct seen *seen;
	int fd, ret;

	if (mime_summary_parse((const char *)data, size, &sum) != 0)
		abort();
	if ((sum.from && !valid_utf8(sum.from)) ||
	    (sum.subject && !valid_utf8(sum.subject)) ||
	    (sum.message_id && !valid_utf8(sum.message_id)))
		abort();
	mime_summary_clear(&sum);

	seen = calloc(1, sizeof(*seen));
	fd = memfd_create("fuzz-mime", MFD_CLOEXEC);
	if (!seen || fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	ret = mime_decode(fd, 0, -1, 64, check_part, seen, &err);
	if (ret != 0) {
		fprintf(stderr, "mime_decode: %d %s\n", ret, err.msg);
		abort();
	}
	for (unsigned i = 0; i < seen->count; i++)
		write_one(fd, i + 1, seen->sizes[i]);
	close(fd);
	free(seen);
	return 0;
}
