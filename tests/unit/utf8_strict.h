/* utf8_strict.h - strict UTF-8 (RFC 3629) for the name tests.
 *
 * Written independently of fs/names.c, so a bug there is not mirrored
 * here; shared by tests/unit/test_names.c and tests/fuzz/fuzz_names.c.
 */
#ifndef UTF8_STRICT_H
#define UTF8_STRICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when p[0..len) is well-formed UTF-8: shortest forms only, no
 * surrogates, nothing above U+10FFFF. */
static inline bool valid_utf8(const unsigned char *p, size_t len)
{
	size_t i = 0, n, k;
	uint32_t cp;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0) {
			n = 2;
			cp = p[i] & 0x1f;
		} else if ((p[i] & 0xf0) == 0xe0) {
			n = 3;
			cp = p[i] & 0x0f;
		} else if ((p[i] & 0xf8) == 0xf0) {
			n = 4;
			cp = p[i] & 0x07;
		} else {
			return false;
		}
		if (i + n > len)
			return false;
		for (k = 1; k < n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
		    (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

/* True when well-formed UTF-8 p[0..len) holds a C1 control (U+0080 to
 * U+009F, encoded C2 80 to C2 9F). */
static inline bool has_c1(const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i++)
		if (p[i] == 0xc2 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			return true;
	return false;
}

#endif
