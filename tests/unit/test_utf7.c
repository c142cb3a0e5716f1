/* test_utf7.c - modified UTF-7 mailbox names, both directions.
 *
 * Each row is a UTF-8 name and its modified UTF-7 form; NULL on one side
 * means the other side must be rejected.  Rows with both sides are
 * checked in both directions (so they round-trip by construction).
 */
#include <stdlib.h>

#include "check.h"
#include "imap_parse.h"
#include "mfs_err.h"

/* clang-format off */
static const struct {
	const char *utf8, *utf7;
} table[] = {
	{ "", "" },
	{ "INBOX", "INBOX" },
	{ "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	  "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
	{ "\xc3\xa4", "&AOQ-" },				/* ä */
	{ "tiet\xc3\xa4j\xc3\xa4", "tiet&AOQ-j&AOQ-" },
	{ "\xc3\xa4\xc3\xb6\xc3\xbc", "&AOQA9gD8-" },		/* äöü */
	{ "m\xc3\xbcll", "m&APw-ll" },
	{ "\xc3\xbc" "ber", "&APw-ber" },
	{ "Entw\xc3\xbcrfe", "Entw&APw-rfe" },
	{ "[Gmail]/\xd0\x92\xd0\xb0\xd0\xb6\xd0\xbd\xd0\xbe\xd0\xb5",
	  "[Gmail]/&BBIEMAQ2BD0EPgQ1-" },			/* Важное */
	{ "\xe1\xb8\x80", "&HgA-" },				/* U+1E00 */
	{ "&", "&-" },
	{ "A&B", "A&-B" },
	{ "&&x&&", "&-&-x&-&-" },
	{ "\t", "&AAk-" },
	{ "\t&\t", "&AAk-&-&AAk-" },
	{ "m\x7f" "ll", "m&AH8-ll" },
	{ "\xf0\x9f\x98\x82", "&2D3eAg-" },			/* 😂 U+1F602 */
	{ "\xf0\x9f\x98\x88\xf0\x9f\x98\x8e", "&2D3eCNg93g4-" },	/* 😈😎 */
	{ "a\xf0\x9f\x98\x82" "b", "a&2D3eAg-b" },
	{ "\xef\xbf\xbd", "&,,0-" },				/* U+FFFD */
	{ "\xf4\x8f\xbf\xbf", "&2,,f,w-" },			/* U+10FFFF */
	/* malformed modified UTF-7 */
	{ NULL, "&" },			/* unterminated shift */
	{ NULL, "&AOQ" },
	{ NULL, "&-&" },
	{ NULL, "&&-" },		/* '&' is not base64 */
	{ NULL, "&AO!-" },		/* neither is '!' */
	{ NULL, "&AOQ/-" },		/* plain base64 '/' is not ',' */
	{ NULL, "&AA-" },		/* 12 bits: no complete unit */
	{ NULL, "&AOR-" },		/* nonzero padding bits */
	{ NULL, "&AOQA-" },		/* a whole digit of padding */
	{ NULL, "&AEE-" },		/* "A" must not be encoded */
	{ NULL, "&ACY-" },		/* nor "&" */
	{ NULL, "&AAA-" },		/* NUL */
	{ NULL, "&2D0-" },		/* lone high surrogate */
	{ NULL, "&3gI-" },		/* lone low surrogate */
	{ NULL, "&2D0AQQ-" },		/* high surrogate, then not a low one */
	{ NULL, "&AOQ-&APw-" },		/* adjacent shifts are not canonical */
	{ NULL, "a\tb" },		/* raw control character */
	{ NULL, "\xc3\xa4" },		/* raw 8-bit */
	/* malformed UTF-8 */
	{ "\x83\x84", NULL },		/* stray continuation bytes */
	{ "\xc3\xc4", NULL },
	{ "\xc3", NULL },		/* cut short */
	{ "\xc0\xae", NULL },		/* overlong '.' */
	{ "\xe0\x80\xaf", NULL },	/* overlong '/' */
	{ "\xe1\xb8", NULL },
	{ "\xed\xa0\x80", NULL },	/* UTF-8 encoded surrogate */
	{ "\xf0\x9f\x98", NULL },
	{ "\xf4\x90\x80\x80", NULL },	/* past U+10FFFF */
	{ "\xf8\x88\x80\x80\x80", NULL },
	{ "\xff", NULL },
};
/* clang-format on */

int main(void)
{
	size_t i;
	char *got, *back;
	int rc;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const char *u8 = table[i].utf8, *u7 = table[i].utf7;

		if (u8) {
			rc = imap_utf7_encode(u8, &got);
			if (u7) {
				CHECK(rc == 0, "encode row %zu", i);
				CHECK_STR(got, u7, "encode row %zu -> %s", i,
					  u7);
			} else {
				CHECK(rc == MFS_E_INVAL && !got,
				      "encode row %zu rejected", i);
			}
			free(got);
		}
		if (u7) {
			rc = imap_utf7_decode(u7, &got);
			if (u8) {
				CHECK(rc == 0, "decode %s", u7);
				CHECK_STR(got, u8, "decode %s", u7);
				/* and back again from our own output */
				back = NULL;
				if (got)
					imap_utf7_encode(got, &back);
				CHECK_STR(back, u7, "round trip %s", u7);
				free(back);
			} else {
				CHECK(rc == MFS_E_INVAL && !got,
				      "decode %s rejected", u7);
			}
			free(got);
		}
	}

	/* Every printable ASCII character but '&' stands for itself. */
	{
		char ascii[96], *p = ascii;
		int c;

		for (c = 0x20; c < 0x7f; c++)
			if (c != '&')
				*p++ = c;
		*p = '\0';
		rc = imap_utf7_encode(ascii, &got);
		CHECK(rc == 0, "encode printable ASCII");
		CHECK_STR(got, ascii, "printable ASCII is unchanged");
		free(got);
		rc = imap_utf7_decode(ascii, &got);
		CHECK_STR(got, ascii, "printable ASCII decodes to itself");
		free(got);
	}

	/* Every BMP code point outside ASCII and the surrogates, plus a
	 * sample of the astral planes, survives encode then decode. */
	{
		unsigned long cp, bad = 0;
		char u8[16];
		int n;

		for (cp = 1; cp <= 0x10ffff; cp += cp < 0x10000 ? 1 : 97) {
			if (cp >= 0x20 && cp < 0x7f)
				continue;
			if (cp >= 0xd800 && cp <= 0xdfff)
				continue;
			n = 0;
			u8[n++] = 'x';
			if (cp < 0x80) {
				u8[n++] = cp;
			} else if (cp < 0x800) {
				u8[n++] = 0xc0 | cp >> 6;
				u8[n++] = 0x80 | (cp & 0x3f);
			} else if (cp < 0x10000) {
				u8[n++] = 0xe0 | cp >> 12;
				u8[n++] = 0x80 | (cp >> 6 & 0x3f);
				u8[n++] = 0x80 | (cp & 0x3f);
			} else {
				u8[n++] = 0xf0 | cp >> 18;
				u8[n++] = 0x80 | (cp >> 12 & 0x3f);
				u8[n++] = 0x80 | (cp >> 6 & 0x3f);
				u8[n++] = 0x80 | (cp & 0x3f);
			}
			u8[n++] = 'y';
			u8[n] = '\0';
			got = back = NULL;
			if (imap_utf7_encode(u8, &got) != 0 ||
			    imap_utf7_decode(got, &back) != 0 ||
			    strcmp(back, u8) != 0)
				bad++;
			free(got);
			free(back);
		}
		CHECK(bad == 0, "code point round trips (%lu failed)", bad);
	}

	return check_done();
}
