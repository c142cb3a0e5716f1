/* names.c - file names derived from mail (see names.h).
 *
 * Everything here is pure: no I/O, no allocation, no locale.  The same
 * cleaning loop serves single path components (attachment names) and the
 * sender/subject fields of message names; only the treatment of slashes and
 * leading dots differs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "names.h"

enum {
	CLEAN_BASENAME = 1, /* drop everything up to the last '/' or '\\' */
	CLEAN_NODOTS = 2,   /* drop leading dots */
};

/* Budget for the name without ".eml". */
#define MESSAGE_MAX (NAMES_MAX - 4)

/* A subject is cut before the sender, but not below this many bytes, so a
 * very long sender cannot squeeze the subject out entirely. */
#define SUBJECT_FLOOR 64

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF) with its code point in *cp, or 0. */
static size_t utf8_char(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, i;
	uint32_t v;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		v = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		v = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	/* Only the second byte has a narrowed range; the rest are plain
	 * continuation bytes. */
	if (s[1] < lo || s[1] > hi)
		return 0;
	v = (v << 6) | (s[1] & 0x3f);
	for (i = 2; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	*cp = v;
	return len;
}

/* Characters that become a (collapsible) space: whitespace, C0 and C1
 * controls, DEL, and the invisible line separators and bidirectional
 * controls that let a name display differently from what it is
 * ("invoice\u202Efdp.exe"). */
static int is_blank(uint32_t cp)
{
	if (cp <= 0x20 || (cp >= 0x7f && cp <= 0x9f))
		return 1;
	switch (cp) {
	case 0x061c:
	case 0x200e:
	case 0x200f:
	case 0x2028:
	case 0x2029:
		return 1;
	}
	return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* The cleaning loop.  Writes at most max bytes plus a NUL to out and
 * returns the length, which may be 0.  Spaces are only written in front of
 * a following character, so a cut never leaves one at the end. */
static size_t clean(const char *in, size_t inlen, unsigned flags, size_t max,
		    char *out)
{
	const unsigned char *p, *end, *q;
	bool space = false;
	size_t len = 0;

	/* NULL + 0 is undefined behaviour in C. */
	if (!in) {
		in = "";
		inlen = 0;
	}
	p = (const unsigned char *)in;
	end = p + inlen;
	if (flags & CLEAN_BASENAME) {
		for (q = p; q < end; q++)
			if (*q == '/' || *q == '\\')
				p = q + 1;
	}
	while (p < end) {
		const unsigned char *emit = p;
		uint32_t cp = 0;
		size_t n, elen, need;

		n = utf8_char(p, (size_t)(end - p), &cp);
		if (n == 0) {
			emit = (const unsigned char *)"_";
			n = 1;
		} else if (is_blank(cp)) {
			space = true;
			p += n;
			continue;
		} else if (cp == '/' || cp == '\\') {
			emit = (const unsigned char *)"_";
		} else if (cp == '.' && len == 0 && (flags & CLEAN_NODOTS)) {
			p += n;
			continue;
		}
		elen = emit == p ? n : 1;
		need = elen + (space && len > 0);
		if (len + need > max)
			break;
		if (space && len > 0)
			out[len++] = ' ';
		space = false;
		memcpy(out + len, emit, elen);
		len += elen;
		p += n;
	}
	out[len] = '\0';
	return len;
}

/* clean(), or the fallback when nothing is left of the input. */
static size_t clean_or(const char *in, size_t inlen, unsigned flags,
		       const char *fallback, size_t max, char *out)
{
	size_t len;

	len = clean(in, inlen, flags, max, out);
	if (len == 0 && fallback)
		len = clean(fallback, strlen(fallback), 0, max, out);
	return len;
}

size_t names_component(const char *in, size_t inlen, const char *fallback,
		       size_t max, char *out)
{
	if (max > NAMES_MAX)
		max = NAMES_MAX;
	/* Never return an empty component, even with a NULL fallback. */
	return clean_or(in, inlen, CLEAN_BASENAME | CLEAN_NODOTS,
			fallback ? fallback : "_", max, out);
}

size_t names_message(int64_t date, const char *from, const char *subject,
		     uint32_t uid, char *out)
{
	char when[32], tail[16];
	char who[NAMES_MAX + 1], what[NAMES_MAX + 1];
	size_t wlen, tlen, flen, slen, budget, floor;
	time_t t = (time_t)date;
	struct tm tm;
	int n;

	/* Years outside 0..9999 come only from broken or hostile dates; a
	 * fixed placeholder keeps the name's shape (and its length). */
	if ((int64_t)t == date && gmtime_r(&t, &tm) && tm.tm_year >= -1900 &&
	    tm.tm_year <= 9999 - 1900)
		n = snprintf(when, sizeof(when), "%04d-%02d-%02d %02d%02d",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min);
	else
		n = snprintf(when, sizeof(when), "0000-00-00 0000");
	wlen = (size_t)n;
	tlen = (size_t)snprintf(tail, sizeof(tail), " [%" PRIu32 "]", uid);

	/* when + ' ' + who + " - " + what + tail */
	budget = MESSAGE_MAX - wlen - 1 - 3 - tlen;

	/* Slashes become '_' here rather than cutting the field: in a subject
	 * they are words ("Q3/Q4"), not directories. */
	flen = clean_or(from, from ? strlen(from) : 0, 0, "(no sender)",
			NAMES_MAX, who);
	slen = clean_or(subject, subject ? strlen(subject) : 0, 0,
			"(no subject)", NAMES_MAX, what);
	if (flen + slen > budget) {
		floor = slen < SUBJECT_FLOOR ? slen : SUBJECT_FLOOR;
		if (flen + floor > budget)
			flen = clean_or(from, from ? strlen(from) : 0, 0,
					"(no sender)", budget - floor, who);
		/* Cleaning is a prefix operation, so recleaning with a
		 * smaller max is the same as cutting at a boundary. */
		slen = clean_or(subject, subject ? strlen(subject) : 0, 0,
				"(no subject)", budget - flen, what);
	}
	n = snprintf(out, NAMES_MAX + 1, "%s %s - %s%s", when, who, what, tail);
	return (size_t)n;
}

int names_unique(char *name, bool (*taken)(void *ctx, const char *name),
		 void *ctx)
{
	char cand[NAMES_MAX + 1];
	size_t len, stem, extlen, keep, slen;
	const char *dot;
	char suffix[16];
	unsigned i;

	if (!taken(ctx, name))
		return 0;
	len = strnlen(name, NAMES_MAX);
	dot = memrchr(name, '.', len);
	stem = dot && dot != name ? (size_t)(dot - name) : len;
	extlen = len - stem;
	/* A "extension" this long is really part of the name; keeping it
	 * whole could leave no room for the stem. */
	if (extlen > NAMES_MAX / 2) {
		stem = len;
		extlen = 0;
	}
	for (i = 2; i <= 10001; i++) {
		slen = (size_t)snprintf(suffix, sizeof(suffix), " (%u)", i);
		keep = stem;
		if (keep + slen + extlen > NAMES_MAX) {
			keep = NAMES_MAX - slen - extlen;
			while (keep > 0 &&
			       ((unsigned char)name[keep] & 0xc0) == 0x80)
				keep--;
		}
		while (keep > 0 && name[keep - 1] == ' ')
			keep--;
		memcpy(cand, name, keep);
		memcpy(cand + keep, suffix, slen);
		memcpy(cand + keep + slen, name + stem, extlen);
		cand[keep + slen + extlen] = '\0';
		/* Cutting "x (2).txt" to make room for " (2)" gives back the
		 * name itself; don't even ask. */
		if (strcmp(cand, name) == 0)
			continue;
		if (!taken(ctx, cand)) {
			memcpy(name, cand, keep + slen + extlen + 1);
			return 0;
		}
	}
	return -1;
}

static int sibling_cmp(const void *a, const void *b)
{
	const struct names_sibling *x = *(struct names_sibling *const *)a;
	const struct names_sibling *y = *(struct names_sibling *const *)b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	if (x->exact != y->exact)
		return x->exact ? -1 : 1;
	return strcmp(x->key, y->key);
}

static bool is_reserved(const char *name, const char *const *reserved)
{
	for (; reserved && *reserved; reserved++)
		if (strcmp(name, *reserved) == 0)
			return true;
	return false;
}

/* Whether any sibling has (or will keep) this name.  A sibling not yet
 * renamed still holds its cleaned name, which its group's first member
 * keeps or which is reserved: either way it is taken. */
static bool sibling_taken(struct names_sibling **v, size_t n,
			  const char *name, const char *const *reserved)
{
	if (is_reserved(name, reserved))
		return true;
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i]->name, name) == 0)
			return true;
	return false;
}

int names_siblings(struct names_sibling **v, size_t n,
		   const char *const *reserved)
{
	char base[NAMES_MAX + 1], cand[NAMES_MAX + 1], suffix[16];
	size_t len, keep, slen, h;
	int rc = 0;

	qsort(v, n, sizeof(*v), sibling_cmp);
	/* Runs of one cleaned name; a run is measured before any of its
	 * names changes, and later runs still hold theirs. */
	for (size_t g = 0; g < n; g = h) {
		unsigned next = 2;

		for (h = g + 1; h < n && strcmp(v[h]->name, v[g]->name) == 0;
		     h++)
			;
		len = strnlen(v[g]->name, NAMES_MAX);
		memcpy(base, v[g]->name, len);
		base[len] = '\0';
		for (size_t i = g; i < h; i++) {
			bool found = false;

			v[i]->renamed = i > g || is_reserved(base, reserved);
			if (!v[i]->renamed)
				continue;
			for (unsigned t = 0; t < 10000 && !found; t++, next++) {
				slen = (size_t)snprintf(suffix, sizeof(suffix),
							" (%u)", next);
				keep = len;
				if (keep + slen > NAMES_MAX) {
					keep = NAMES_MAX - slen;
					while (keep > 0 &&
					       ((unsigned char)base[keep] &
						0xc0) == 0x80)
						keep--;
				}
				while (keep > 0 && base[keep - 1] == ' ')
					keep--;
				memcpy(cand, base, keep);
				memcpy(cand + keep, suffix, slen + 1);
				found = !sibling_taken(v, n, cand, reserved);
			}
			if (found)
				memcpy(v[i]->name, cand, strlen(cand) + 1);
			else
				rc = -1;
		}
	}
	return rc;
}
