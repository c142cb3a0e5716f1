/* fuzz_mime.c - mime_summary_parse and mime_decode on arbitrary bytes.
 *
 * The input is both a header block and a whole message.  Decoding goes
 * from a memfd into a scratch directory that is emptied after every run.
 * Besides crashes and leaks, a local error or a part whose reported size
 * or name is wrong is a finding (abort()).
 */
#include <dirent.h>
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

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Process-wide by necessity: libFuzzer's entry points take no context. */
static char scratch[256];
static int scratch_fd = -1;

static void empty_scratch(void);

static void remove_scratch(void)
{
	empty_scratch();
	rmdir(scratch);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *t = getenv("TMPDIR");

	(void)argc;
	(void)argv;
	mime_init();
	snprintf(scratch, sizeof(scratch), "%s/fuzz-mime-XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(scratch))
		abort();
	scratch_fd = open(scratch, O_RDONLY | O_DIRECTORY);
	if (scratch_fd < 0)
		abort();
	atexit(remove_scratch);
	return 0;
}

static void empty_scratch(void)
{
	struct dirent *e;
	DIR *d;

	d = fdopendir(dup(scratch_fd));
	if (!d)
		abort();
	rewinddir(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(scratch_fd, e->d_name, 0);
	closedir(d);
}

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
};

static int check_part(void *ctx, unsigned n, const char *name, const char *type,
		      uint64_t size)
{
	struct seen *s = ctx;
	char file[16];
	struct stat st;
	size_t len = strlen(name);
	unsigned i;

	if (n != s->count + 1 || n > 64)
		abort();
	snprintf(file, sizeof(file), "%u", n);
	if (fstatat(scratch_fd, file, &st, 0) < 0 ||
	    (uint64_t)st.st_size != size)
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
	memcpy(s->names[s->count++], name, len + 1);
	return 0;
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
	ret = mime_decode(fd, scratch, 64, check_part, seen, &err);
	if (ret != 0) {
		fprintf(stderr, "mime_decode: %d %s\n", ret, err.msg);
		abort();
	}
	close(fd);
	free(seen);
	empty_scratch();
	return 0;
}
