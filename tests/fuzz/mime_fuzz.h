/* mime_fuzz.h - what fuzz_mime and fuzz_mime_all share: GMime set up once
 * before the first input, and the mime_decode callback for a part written
 * on its own (it counts the calls and keeps the size told, so a target
 * can check that the part was told once, as long as measured).
 * Include it once, from the fuzz target's own file.
 */
#ifndef MIME_FUZZ_H
#define MIME_FUZZ_H

#include <stdint.h>

#include "mime.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	mime_init();
	return 0;
}

struct one {
	unsigned calls;
	uint64_t size;
};

static inline int note_one(void *ctx, unsigned n, const char *name,
			   const char *type, uint64_t size)
{
	struct one *o = ctx;

	(void)n;
	(void)name;
	(void)type;
	o->calls++;
	o->size = size;
	return 0;
}

#endif
