/* test_overwrite.c - writes over a message: the same bytes pass, anything
 * else is refused, in the orders cp, cat > and editors write. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "overwrite.h"

static const char msg[] = "Subject: hi\r\n\r\nbody line one\r\nline two\r\n";
#define SZ (sizeof(msg) - 1)

static struct overwrite *open_msg(void)
{
	struct overwrite *w = NULL;
	int fd = memfd_create("msg", MFD_CLOEXEC);

	if (fd < 0 || write(fd, msg, SZ) != (ssize_t)SZ)
		return NULL;
	if (overwrite_open(fd, SZ, &w) < 0)
		return NULL;
	return w;
}

int main(void)
{
	struct overwrite *w;

	/* cp: O_TRUNC, then the whole file in pieces. */
	w = open_msg();
	CHECK(w && overwrite_truncate(w, 0) == 0, "truncate to 0 is taken");
	CHECK(w && overwrite_check(w) == -EPERM,
	      "closing right after O_TRUNC (an emptied message) is refused");
	CHECK(w && overwrite_write(w, msg, 10, 0) == 0 &&
		      overwrite_write(w, msg + 10, SZ - 10, 10) == 0,
	      "writing the message's own bytes back in two pieces succeeds");
	CHECK(w && overwrite_check(w) == 0, "and the close succeeds");
	overwrite_close(w);

	/* Without O_TRUNC, a prefix rewritten is still the message. */
	w = open_msg();
	CHECK(w && overwrite_write(w, msg, 5, 0) == 0 && overwrite_check(w) == 0,
	      "rewriting only a prefix with the same bytes leaves the message whole");
	overwrite_close(w);

	/* Nothing written at all: an open for writing and a close. */
	w = open_msg();
	CHECK(w && overwrite_check(w) == 0, "open for writing and close alone is fine");
	overwrite_close(w);

	/* One different byte. */
	w = open_msg();
	{
		char bad[SZ];

		memcpy(bad, msg, SZ);
		bad[SZ - 3] ^= 1;
		CHECK(w && overwrite_truncate(w, 0) == 0 &&
			      overwrite_write(w, bad, SZ, 0) == -EPERM,
		      "a write with one different byte is refused with EPERM");
		CHECK(w && overwrite_write(w, msg, SZ, 0) == -EPERM &&
			      overwrite_check(w) == -EPERM,
		      "and the handle stays refused, up to the close");
	}
	overwrite_close(w);

	/* Longer than the message. */
	w = open_msg();
	{
		char longer[SZ + 1];

		memcpy(longer, msg, SZ);
		longer[SZ] = 'x';
		CHECK(w && overwrite_write(w, longer, SZ + 1, 0) == -EPERM,
		      "a write past the message's end is refused");
	}
	overwrite_close(w);
	w = open_msg();
	CHECK(w && overwrite_truncate(w, SZ + 1) == -EPERM &&
		      overwrite_check(w) == -EPERM,
	      "growing the file with ftruncate is refused");
	overwrite_close(w);

	/* Shorter: truncated and written back only in part. */
	w = open_msg();
	CHECK(w && overwrite_truncate(w, 0) == 0 &&
		      overwrite_write(w, msg, SZ - 1, 0) == 0 &&
		      overwrite_check(w) == -EPERM,
	      "the message's bytes but one short: the close is refused");
	overwrite_close(w);

	/* A write after a hole (zeros in between) is refused. */
	w = open_msg();
	CHECK(w && overwrite_truncate(w, 0) == 0 &&
		      overwrite_write(w, msg + 10, 5, 10) == -EPERM,
	      "a write that leaves a hole after O_TRUNC is refused");
	overwrite_close(w);

	/* Out of order, but whole and the same (no O_TRUNC). */
	w = open_msg();
	CHECK(w && overwrite_write(w, msg + 10, SZ - 10, 10) == 0 &&
		      overwrite_write(w, msg, 10, 0) == 0 && overwrite_check(w) == 0,
	      "the same bytes written back out of order without O_TRUNC succeed");
	overwrite_close(w);

	/* A negative offset never reaches pread. */
	w = open_msg();
	CHECK(w && overwrite_write(w, msg, 1, -1) == -EPERM,
	      "a negative offset is refused");
	overwrite_close(w);
	overwrite_close(NULL);
	return check_done();
}
