/* utf7.c - modified UTF-7 mailbox names (RFC 3501 5.1.3) to UTF-8 and back.
 *
 * Decoding is strict: every UTF-8 name has exactly one accepted encoding,
 * so two different names on the server can never decode to the same
 * local directory name.  That rules out encoded printable ASCII, nonzero
 * or excess padding bits, empty or adjacent shift sequences, lone
 * surrogates, and an encoded NUL (which would cut the C string short).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"
#include "mfs_err.h"

struct obuf {
	char *d;
	size_t len, cap;
};

static int put(struct obuf *b, char c)
{
	char *d;
	size_t cap;

	if (b->len == b->cap) {
		cap = b->cap ? b->cap * 2 : 32;
		d = realloc(b->d, cap);
		if (!d)
			return MFS_E_NOMEM;
		b->d = d;
		b->cap = cap;
	}
	b->d[b->len++] = c;
	return 0;
}

static int put_utf8(struct obuf *b, uint32_t cp)
{
	char u[4];
	int n, i, rc;

	if (cp < 0x80) {
		u[0] = cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = 0xc0 | (cp >> 6);
		u[1] = 0x80 | (cp & 0x3f);
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = 0xe0 | (cp >> 12);
		u[1] = 0x80 | ((cp >> 6) & 0x3f);
		u[2] = 0x80 | (cp & 0x3f);
		n = 3;
	} else {
		u[0] = 0xf0 | (cp >> 18);
		u[1] = 0x80 | ((cp >> 12) & 0x3f);
		u[2] = 0x80 | ((cp >> 6) & 0x3f);
		u[3] = 0x80 | (cp & 0x3f);
		n = 4;
	}
	for (i = 0; i < n; i++) {
		rc = put(b, u[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The modified base64 alphabet: ',' takes the place of '/'. */
static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static bool printable(uint32_t c)
{
	return c >= 0x20 && c <= 0x7e;
}

/* Decode the base64 run after '&' up to and including its '-'. */
static int decode_shift(struct obuf *b, const unsigned char **sp)
{
	const unsigned char *s = *sp;
	uint32_t bits = 0, u, high = 0;
	int nbits = 0, v, rc;
	bool any = false;

	for (; *s != '-'; s++) {
		v = b64_val(*s);
		if (v < 0)
			return MFS_E_INVAL; /* also the NUL of "&AOQ" */
		bits = bits << 6 | v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		u = bits >> nbits & 0xffff;
		bits &= (1u << nbits) - 1;
		any = true;
		if (high) {
			if (u < 0xdc00 || u > 0xdfff)
				return MFS_E_INVAL;
			u = 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00);
			high = 0;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			high = u;
			continue;
		} else if ((u >= 0xdc00 && u <= 0xdfff) || u == 0 ||
			   printable(u)) {
			return MFS_E_INVAL;
		}
		rc = put_utf8(b, u);
		if (rc < 0)
			return rc;
	}
	/* only the zero bits padding the last unit to a base64 digit */
	if (!any || high || nbits >= 6 || bits)
		return MFS_E_INVAL;
	*sp = s + 1;
	return 0;
}

int imap_utf7_decode(const char *in, char **out)
{
	const unsigned char *s = (const unsigned char *)in;
	struct obuf b = {NULL, 0, 0};
	bool after_shift = false;
	int rc = 0;

	*out = NULL;
	while (*s) {
		if (!printable(*s)) {
			rc = MFS_E_INVAL;
			goto out;
		}
		if (*s != '&') {
			rc = put(&b, *s++);
			after_shift = false;
		} else if (s[1] == '-') {
			rc = put(&b, '&');
			s += 2;
			after_shift = false;
		} else if (after_shift) {
			/* "&AOQ-&AOQ-" should have been "&AOQA5A-" */
			rc = MFS_E_INVAL;
		} else {
			s++;
			rc = decode_shift(&b, &s);
			after_shift = true;
		}
		if (rc < 0)
			goto out;
	}
	rc = put(&b, '\0');
	if (rc < 0)
		goto out;
	*out = b.d;
	b.d = NULL;
out:
	free(b.d);
	return rc;
}

/* Next code point of strict UTF-8: no overlongs, surrogates or values
 * past U+10FFFF, and no sequence cut short by the terminating NUL. */
static int next_utf8(const unsigned char **sp, uint32_t *cp)
{
	const unsigned char *s = *sp;
	uint32_t c = *s, min;
	int n, i;

	if (c < 0x80) {
		*cp = c;
		*sp = s + 1;
		return 0;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 1;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 2;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3;
		c &= 0x07;
		min = 0x10000;
	} else {
		return MFS_E_INVAL;
	}
	for (i = 1; i <= n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return MFS_E_INVAL;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return MFS_E_INVAL;
	*cp = c;
	*sp = s + n + 1;
	return 0;
}

/* Append 16 bits to the base64 run, emitting every complete digit. */
static int shift_unit(struct obuf *b, uint32_t u, uint32_t *bits, int *nbits)
{
	int rc;

	*bits = *bits << 16 | u;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		rc = put(b, b64[*bits >> *nbits & 0x3f]);
		if (rc < 0)
			return rc;
	}
	*bits &= (1u << *nbits) - 1;
	return 0;
}

static int shift_end(struct obuf *b, uint32_t *bits, int *nbits)
{
	int rc = 0;

	if (*nbits)
		rc = put(b, b64[*bits << (6 - *nbits) & 0x3f]);
	if (rc == 0)
		rc = put(b, '-');
	*bits = 0;
	*nbits = 0;
	return rc;
}

int imap_utf7_encode(const char *in, char **out)
{
	const unsigned char *s = (const unsigned char *)in;
	struct obuf b = {NULL, 0, 0};
	uint32_t cp, bits = 0;
	int nbits = 0, rc = 0;
	bool shifted = false;

	*out = NULL;
	while (*s) {
		rc = next_utf8(&s, &cp);
		if (rc < 0)
			goto out;
		if (printable(cp)) {
			if (shifted) {
				rc = shift_end(&b, &bits, &nbits);
				shifted = false;
			}
			if (rc == 0)
				rc = put(&b, cp);
			if (rc == 0 && cp == '&')
				rc = put(&b, '-');
		} else {
			if (!shifted)
				rc = put(&b, '&');
			shifted = true;
			if (rc == 0 && cp >= 0x10000) {
				cp -= 0x10000;
				rc = shift_unit(&b, 0xd800 | cp >> 10, &bits,
						&nbits);
				cp = 0xdc00 | (cp & 0x3ff);
			}
			if (rc == 0)
				rc = shift_unit(&b, cp, &bits, &nbits);
		}
		if (rc < 0)
			goto out;
	}
	if (shifted)
		rc = shift_end(&b, &bits, &nbits);
	if (rc == 0)
		rc = put(&b, '\0');
	if (rc < 0)
		goto out;
	*out = b.d;
	b.d = NULL;
out:
	free(b.d);
	return rc;
}
