/* check.h - the smallest table-friendly test helper.
 *
 * Each check prints "PASS: <what>" or "FAIL: <what> (<file>:<line>)"; the
 * suite runner counts those lines.  main() ends with `return check_done();`.
 */
#ifndef CHECK_H
#define CHECK_H

#include <stdio.h>
#include <string.h>

static int check_pass, check_fail;

#define CHECK(cond, ...)                                                  \
	do {                                                              \
		if (cond) {                                               \
			check_pass++;                                     \
			printf("PASS: ");                                 \
			printf(__VA_ARGS__);                              \
			printf("\n");                                     \
		} else {                                                  \
			check_fail++;                                     \
			printf("FAIL: ");                                 \
			printf(__VA_ARGS__);                              \
			printf(" (%s:%d: %s)\n", __FILE__, __LINE__, #cond); \
		}                                                         \
	} while (0)

#define CHECK_STR(got, want, ...)                                         \
	do {                                                              \
		const char *g_ = (got), *w_ = (want);                     \
		int ok_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_;    \
		CHECK(ok_, __VA_ARGS__);                                  \
		if (!ok_)                                                 \
			printf("    got  [%s]\n    want [%s]\n",          \
			       g_ ? g_ : "(null)", w_ ? w_ : "(null)");   \
	} while (0)

static inline int check_done(void)
{
	fflush(stdout);
	return check_fail ? 1 : 0;
}

#endif
