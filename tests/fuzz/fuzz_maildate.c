/* fuzz_maildate.c - the promises of maildate.h on arbitrary bytes.
 *
 * The input is a Date header's value.  Every broken promise is an abort(),
 * so libFuzzer reports it:
 *  - a success lies within MAILDATE_MIN..MAILDATE_MAX, a failure leaves
 *    *when untouched, and the same bytes give the same answer;
 *  - only len bytes are read: a prefix (its length from the first byte)
 *    gives, with other bytes after it, what an exact copy of it gives (and
 *    ASan sees any read past either);
 *  - case, a comment before and after the value, and which white space
 *    byte separates words make no difference;
 *  - a success, written out as "D Mon YYYY HH:MM:SS +0000" (gmtime_r),
 *    reads back as the same instant (for years 100-9999 in UTC: a zone
 *    can move an instant out of them, and two-digit years mean others).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maildate.h"

#define UNTOUCHED ((int64_t)0x5a5a5a5a5a5a5a5aLL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct answer {
	bool ok;
	int64_t when;
};

static struct answer parse(const char *s, size_t len)
{
	struct answer a = {false, UNTOUCHED};

	a.ok = maildate_parse(s, len, &a.when);
	if (a.ok && (a.when < MAILDATE_MIN || a.when > MAILDATE_MAX))
		abort();
	if (!a.ok && a.when != UNTOUCHED)
		abort();
	return a;
}

static void same(struct answer a, struct answer b)
{
	if (a.ok != b.ok || (a.ok && a.when != b.when))
		abort();
}

/* parse() of a heap copy of exactly len bytes. */
static struct answer parse_copy(const char *s, size_t len)
{
	char *copy = malloc(len ? len : 1);
	struct answer a;

	if (!copy)
		abort();
	memcpy(copy, s, len);
	a = parse(copy, len);
	free(copy);
	return a;
}

static void check_prefix(const char *s, size_t size)
{
	static const char tail[] = " +0100 (x) 10:30:00 Jan 2023";
	size_t k = size ? (unsigned char)s[0] % (size + 1) : 0;
	char *buf = malloc(k + sizeof(tail));

	if (!buf)
		abort();
	memcpy(buf, s, k);
	memcpy(buf + k, tail, sizeof(tail));
	same(parse(buf, k), parse_copy(s, k));
	free(buf);
}

static void check_variants(const char *s, size_t size, struct answer a)
{
	char *buf = malloc(size + 16);
	size_t i;

	if (!buf)
		abort();
	for (i = 0; i < size; i++)
		buf[i] = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 32) : s[i];
	same(parse(buf, size), a);
	for (i = 0; i < size; i++)
		buf[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] + 32) : s[i];
	same(parse(buf, size), a);
	for (i = 0; i < size; i++)
		buf[i] =
		    s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'
			? "\t\n\r \x0b\x1f"[i % 6]
			: s[i];
	same(parse(buf, size), a);
	memcpy(buf, "(a\\)(b)) ", 9);
	memcpy(buf + 9, s, size);
	memcpy(buf + 9 + size, " (c)", 4);
	same(parse(buf, size + 13), a);
	free(buf);
}

static void check_round_trip(struct answer a)
{
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr",
					  "May", "Jun", "Jul", "Aug",
					  "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)a.when;
	struct tm tm;
	char out[64];
	int n;

	if (!a.ok || !gmtime_r(&t, &tm) || tm.tm_year + 1900 < 100 ||
	    tm.tm_year + 1900 > 9999)
		return;
	n = snprintf(out, sizeof(out), "%d %s %d %02d:%02d:%02d +0000",
		     tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
		     tm.tm_min, tm.tm_sec);
	if (n < 0 || (size_t)n >= sizeof(out))
		abort();
	same(parse(out, (size_t)n), a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct answer a;

	if (size > 4096)
		return 0;
	a = parse(s, size);
	same(parse(s, size), a);
	check_prefix(s, size);
	check_variants(s, size, a);
	check_round_trip(a);
	return 0;
}
