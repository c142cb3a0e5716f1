/* fuzz_names.c - the promises of names.h on arbitrary bytes.
 *
 * Input layout: byte 0 picks max for names_component, bytes 1-8 a date,
 * 9-12 a uid, 13 how many names names_unique finds taken; the rest is the
 * text, split at its first NUL into sender and subject for names_message,
 * and at newlines into up to 16 sibling folder names for names_siblings.
 * Every broken promise is an abort(), so libFuzzer reports it.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "../unit/utf8_strict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What any name shown in a directory must be. */
static void check_name(const char *s, size_t len, size_t max)
{
	size_t i;

	if (len == 0 || len > max || len > NAMES_MAX || strlen(s) != len)
		abort();
	if (!valid_utf8((const unsigned char *)s, len) ||
	    has_c1((const unsigned char *)s, len))
		abort();
	if (s[0] == ' ' || s[len - 1] == ' ')
		abort();
	if (!strcmp(s, ".") || !strcmp(s, ".."))
		abort();
	for (i = 0; i < len; i++)
		if (s[i] == '/' || (unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
}

struct taken {
	unsigned left; /* report this many more names as taken */
	char first[NAMES_MAX + 1];
};

static bool is_taken(void *ctx, const char *name)
{
	struct taken *t = ctx;

	check_name(name, strlen(name), NAMES_MAX);
	if (t->left == 0)
		return false;
	t->left--;
	return true;
}

/* names_siblings: distinct, clean, never reserved, and the same answer
 * for the same siblings in the other order. */
static void check_siblings(const uint8_t *text, size_t tlen)
{
	static const char *const reserved[] = { "outbox", ".mailfs", NULL };
	struct names_sibling a[16], b[16], *va[16], *vb[16];
	char keys[16][64];
	size_t n = 0, start = 0;

	for (size_t i = 0; i <= tlen && n < 16; i++) {
		size_t len;
		bool dup = false;

		if (i < tlen && text[i] != '\n')
			continue;
		len = i - start < 63 ? i - start : 63;
		memcpy(keys[n], text + start, len);
		keys[n][len] = '\0';
		start = i + 1;
		for (size_t k = 0; k < n; k++)
			dup |= strcmp(keys[k], keys[n]) == 0;
		if (dup || strlen(keys[n]) != len)
			continue;
		a[n].key = keys[n];
		names_component(keys[n], len, "_", NAMES_MAX, a[n].name);
		a[n].exact = strcmp(a[n].name, keys[n]) == 0;
		b[n] = a[n];
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		va[i] = &a[i];
		vb[i] = &b[n - 1 - i];
	}
	if (names_siblings(va, n, reserved) != 0 ||
	    names_siblings(vb, n, reserved) != 0)
		abort();
	for (size_t i = 0; i < n; i++) {
		check_name(a[i].name, strlen(a[i].name), NAMES_MAX);
		if (strcmp(a[i].name, b[i].name) != 0 ||
		    strcmp(a[i].name, "outbox") == 0 || a[i].name[0] == '.')
			abort();
		for (size_t k = 0; k < i; k++)
			if (strcmp(a[i].name, a[k].name) == 0)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[NAMES_MAX + 1], again[NAMES_MAX + 1], msg[NAMES_MAX + 1];
	char tail[24], *from = NULL, *subject = NULL;
	const uint8_t *text, *nul;
	size_t max, len, tlen, n;
	struct taken t;
	int64_t date;
	uint32_t uid;

	if (size < 14)
		return 0;
	max = 1 + data[0] % NAMES_MAX;
	memcpy(&date, data + 1, sizeof(date));
	memcpy(&uid, data + 9, sizeof(uid));
	t.left = data[13] % 32;
	text = data + 14;
	tlen = size - 14;

	len = names_component((const char *)text, tlen, "fb", max, out);
	check_name(out, len, max);
	if (out[0] == '.')
		abort();
	/* Clean output is a fixed point. */
	n = names_component(out, len, "other", NAMES_MAX, again);
	if (n != len || strcmp(out, again) != 0)
		abort();

	/* The first t.left candidates are taken, then one is free. */
	memcpy(t.first, out, len + 1);
	if (names_unique(out, is_taken, &t) != 0)
		abort();
	check_name(out, strlen(out), NAMES_MAX);
	if (out[0] == '.' || (data[13] % 32 && !strcmp(out, t.first)))
		abort();

	check_siblings(text, tlen);

	/* names_message: sender and subject are C strings. */
	nul = memchr(text, '\0', tlen);
	n = nul ? (size_t)(nul - text) : tlen;
	from = malloc(n + 1);
	subject = malloc(tlen - n + 1);
	if (!from || !subject)
		goto out;
	memcpy(from, text, n);
	from[n] = '\0';
	if (nul) {
		memcpy(subject, nul + 1, tlen - n - 1);
		subject[tlen - n - 1] = '\0';
	} else {
		subject[0] = '\0';
	}
	len = names_message(date, data[0] & 1 ? from : NULL,
			    data[0] & 2 ? subject : NULL, uid, msg);
	check_name(msg, len, NAMES_MAX - 4);
	if (msg[0] < '0' || msg[0] > '9' || !strstr(msg, " - "))
		abort();
	snprintf(tail, sizeof(tail), " [%" PRIu32 "]", uid);
	if (len < strlen(tail) || strcmp(msg + len - strlen(tail), tail))
		abort();
out:
	free(from);
	free(subject);
	return 0;
}
