/* test_names.c - the naming rules of names.h, table-driven. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "names.h"
#include "utf8_strict.h"

#define LEN_STR ((size_t)-1) /* inlen: use strlen(in) */

/* Everything a directory entry made from mail must satisfy. */
static bool safe_name(const char *s, size_t len, size_t max)
{
	size_t i;

	if (len == 0 || len > max || strlen(s) != len)
		return false;
	if (!valid_utf8((const unsigned char *)s, len) ||
	    has_c1((const unsigned char *)s, len))
		return false;
	if (s[0] == '.' || s[0] == ' ' || s[len - 1] == ' ')
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '/' || c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static const struct {
	const char *what;
	const char *in;
	size_t inlen;
	const char *fallback;
	size_t max;
	const char *want;
} comp[] = {
    {"plain", "report.pdf", LEN_STR, "x", 255, "report.pdf"},
    {"utf-8 kept", "na\xc3\xafve file.pdf", LEN_STR, "x", 255,
     "na\xc3\xafve file.pdf"},
    {"empty uses fallback", "", LEN_STR, "attachment", 255, "attachment"},
    {"NULL uses fallback", NULL, 0, "attachment", 255, "attachment"},
    {"NULL fallback still gives a name", "", LEN_STR, NULL, 255, "_"},
    {"slashes: basename", "dir/sub/file.txt", LEN_STR, "x", 255, "file.txt"},
    {"backslashes: basename", "C:\\Users\\me\\evil.exe", LEN_STR, "x", 255,
     "evil.exe"},
    {"mixed slashes", "a\\b/c\\d", LEN_STR, "x", 255, "d"},
    {"traversal", "../../etc/passwd", LEN_STR, "x", 255, "passwd"},
    {"trailing slash", "dir/", LEN_STR, "fb", 255, "fb"},
    {"dot", ".", LEN_STR, "fb", 255, "fb"},
    {"dotdot", "..", LEN_STR, "fb", 255, "fb"},
    {"dotdot after slash", "foo/..", LEN_STR, "fb", 255, "fb"},
    {"dots only", ".....", LEN_STR, "fb", 255, "fb"},
    {"leading dot", ".bashrc", LEN_STR, "fb", 255, "bashrc"},
    {"leading dots and spaces", " . ..hidden", LEN_STR, "fb", 255, "hidden"},
    {"inner and trailing dots kept", "a..b.", LEN_STR, "fb", 255, "a..b."},
    {"whitespace collapsed", "  lots \t of\r\n\r\n  space  ", LEN_STR, "fb",
     255, "lots of space"},
    {"controls and DEL",
     "a\x01\x1b[31mb\x7f"
     "c",
     LEN_STR, "fb", 255, "a [31mb c"},
    {"C1 control",
     "a\xc2\x85"
     "b",
     LEN_STR, "fb", 255, "a b"},
    {"bidi override",
     "invoice\xe2\x80\xae"
     "fdp.exe",
     LEN_STR, "fb", 255, "invoice fdp.exe"},
    {"NUL inside", "ab\0cd", 5, "fb", 255, "ab cd"},
    {"NUL then slash", "ab\0/cd", 6, "fb", 255, "cd"},
    {"only controls", "\x01\x02\t\n", LEN_STR, "fb", 255, "fb"},
    {"invalid byte", "caf\xe9.txt", LEN_STR, "fb", 255, "caf_.txt"},
    {"overlong slash",
     "a\xc0\xaf"
     "b",
     LEN_STR, "fb", 255, "a__b"},
    {"surrogate", "\xed\xa0\x80", LEN_STR, "fb", 255, "___"},
    {"above U+10FFFF", "\xf4\x90\x80\x80", LEN_STR, "fb", 255, "____"},
    {"truncated sequence at end", "ab\xe2\x82", LEN_STR, "fb", 255, "ab__"},
    {"lone continuation", "\x80x", LEN_STR, "fb", 255, "_x"},
    {"emoji fits exactly",
     "ab\xf0\x9f\x98\x80"
     "cd",
     LEN_STR, "fb", 6, "ab\xf0\x9f\x98\x80"},
    {"emoji across the cut",
     "ab\xf0\x9f\x98\x80"
     "cd",
     LEN_STR, "fb", 5, "ab"},
    {"no trailing space after cut", "abc def", LEN_STR, "fb", 4, "abc"},
    {"fallback cut too", "", LEN_STR, "attachment", 3, "att"},
    {"max above NAMES_MAX clamps", "x", LEN_STR, "fb", 1000, "x"},
};

static void test_component_table(void)
{
	char out[NAMES_MAX + 1];
	size_t i, len, inlen;

	for (i = 0; i < sizeof(comp) / sizeof(comp[0]); i++) {
		inlen = comp[i].inlen == LEN_STR ? strlen(comp[i].in)
						 : comp[i].inlen;
		memset(out, 'Z', sizeof(out));
		len = names_component(comp[i].in, inlen, comp[i].fallback,
				      comp[i].max, out);
		CHECK_STR(out, comp[i].want, "component: %s", comp[i].what);
		CHECK(len == strlen(out), "component: %s: length returned",
		      comp[i].what);
		CHECK(safe_name(out, len, comp[i].max), "component: %s: safe",
		      comp[i].what);
	}
}

/* Long inputs: the cut lands on a character boundary as close to the limit
 * as the characters allow. */
static void test_component_long(void)
{
	static const struct {
		const char *what, *prefix, *unit;
		size_t want;
	} t[] = {
	    {"ascii", "", "x", 255},
	    {"2-byte even", "", "\xc3\xa9", 254},
	    {"2-byte odd", "a", "\xc3\xa9", 255},
	    {"4-byte", "", "\xf0\x9f\x98\x80", 252},
	    {"4-byte after 3", "abc", "\xf0\x9f\x98\x80", 255},
	    {"4-byte after 2", "ab", "\xf0\x9f\x98\x80", 254},
	    {"3-byte after 1", "a", "\xe2\x82\xac", 253},
	};
	char in[2048], out[NAMES_MAX + 1];
	size_t i, n, len;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		n = strlen(t[i].prefix);
		memcpy(in, t[i].prefix, n);
		while (n + strlen(t[i].unit) < sizeof(in)) {
			memcpy(in + n, t[i].unit, strlen(t[i].unit));
			n += strlen(t[i].unit);
		}
		len = names_component(in, n, "fb", NAMES_MAX, out);
		CHECK(len == t[i].want, "long %s: cut at %zu (got %zu)",
		      t[i].what, t[i].want, len);
		CHECK(safe_name(out, len, NAMES_MAX), "long %s: safe",
		      t[i].what);
		CHECK(memcmp(out, in, len) == 0, "long %s: a prefix",
		      t[i].what);
	}
}

static void test_message(void)
{
	static const struct {
		const char *what;
		int64_t date;
		const char *from, *subject;
		uint32_t uid;
		const char *want;
	} t[] = {
	    {"plain", 1716373380, "Alice Smith", "Quarterly report", 4711,
	     "2024-05-22 1023 Alice Smith - Quarterly report [4711]"},
	    {"NULL from and subject", 1716373380, NULL, NULL, 1,
	     "2024-05-22 1023 (no sender) - (no subject) [1]"},
	    {"empty from and subject", 1716373380, "", " \t ", 2,
	     "2024-05-22 1023 (no sender) - (no subject) [2]"},
	    {"Re: kept, folded subject collapsed", 1716373380, "Bob",
	     "Re: Quarterly\r\n report\r\n\tdraft", 3,
	     "2024-05-22 1023 Bob - Re: Quarterly report draft [3]"},
	    {"slashes become _", 1716373380, "a\\b", "Q3/Q4 results", 4,
	     "2024-05-22 1023 a_b - Q3_Q4 results [4]"},
	    {"dots kept inside", 1716373380, ".hidden", "...and more", 5,
	     "2024-05-22 1023 .hidden - ...and more [5]"},
	    {"controls and bad bytes", 1716373380, "Eve\x01", "x\xff\x7fy", 6,
	     "2024-05-22 1023 Eve - x_ y [6]"},
	    {"epoch", 0, "a", "b", 7, "1970-01-01 0000 a - b [7]"},
	    {"before epoch", -60, "a", "b", 8, "1969-12-31 2359 a - b [8]"},
	    {"year 9999", 253402300799LL, "a", "b", 9,
	     "9999-12-31 2359 a - b [9]"},
	    {"year 10000", 253402300800LL, "a", "b", 10,
	     "0000-00-00 0000 a - b [10]"},
	    {"absurd date", INT64_MAX, "a", "b", 11,
	     "0000-00-00 0000 a - b [11]"},
	    {"absurd negative date", INT64_MIN, "a", "b", 12,
	     "0000-00-00 0000 a - b [12]"},
	    {"max uid", 1716373380, "a", "b", UINT32_MAX,
	     "2024-05-22 1023 a - b [4294967295]"},
	};
	char out[NAMES_MAX + 1];
	size_t i, len;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		len = names_message(t[i].date, t[i].from, t[i].subject,
				    t[i].uid, out);
		CHECK_STR(out, t[i].want, "message: %s", t[i].what);
		CHECK(len == strlen(out) && len + 4 <= NAMES_MAX &&
			  safe_name(out, len, NAMES_MAX - 4),
		      "message: %s: safe", t[i].what);
	}
}

static bool ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);

	return a >= b && memcmp(s + a - b, tail, b) == 0;
}

static void fill(char *buf, size_t size, const char *unit)
{
	size_t n = 0, u = strlen(unit);

	while (n + u < size) {
		memcpy(buf + n, unit, u);
		n += u;
	}
	buf[n] = '\0';
}

static void test_message_long(void)
{
	char longsubj[1024], longfrom[1024], emoji[1024], out[NAMES_MAX + 1];
	const char *p;
	size_t len;

	fill(longsubj, 600, "report ");
	fill(longfrom, 600, "Alice ");
	fill(emoji, 600, "\xf0\x9f\x98\x80");

	len = names_message(1716373380, "Alice Smith", longsubj, 4711, out);
	CHECK(len + 4 <= NAMES_MAX, "long subject: fits with .eml (%zu)", len);
	CHECK(len + 4 >= NAMES_MAX - 6, "long subject: uses the room (%zu)",
	      len);
	CHECK(ends_with(out, " [4711]"), "long subject: uid kept");
	CHECK(strncmp(out, "2024-05-22 1023 Alice Smith - report ", 37) == 0,
	      "long subject: date and sender whole");
	CHECK(safe_name(out, len, NAMES_MAX), "long subject: safe");

	len = names_message(1716373380, "Alice Smith", emoji, 4711, out);
	CHECK(len + 4 <= NAMES_MAX && safe_name(out, len, NAMES_MAX) &&
		  ends_with(out, "\xf0\x9f\x98\x80 [4711]"),
	      "emoji subject: cut at a character boundary (%zu)", len);

	len = names_message(1716373380, longfrom, "Hi", 4711, out);
	CHECK(len + 4 <= NAMES_MAX && safe_name(out, len, NAMES_MAX) &&
		  len + 4 == NAMES_MAX && ends_with(out, " - Hi [4711]"),
	      "long sender, short subject: sender cut, subject whole");

	len = names_message(1716373380, longfrom, longsubj, 4294967295u, out);
	p = strstr(out, " - ");
	CHECK(len + 4 <= NAMES_MAX && safe_name(out, len, NAMES_MAX) &&
		  ends_with(out, " [4294967295]"),
	      "long sender and subject: fits, uid kept (%zu)", len);
	CHECK(p && strlen(p + 3) - strlen(" [4294967295]") >= 60,
	      "long sender and subject: subject keeps its floor");
	CHECK(p && (size_t)(p - out) > 100,
	      "long sender and subject: sender keeps the rest");

	len = names_message(1716373380, emoji, emoji, 1, out);
	CHECK(len + 4 <= NAMES_MAX && safe_name(out, len, NAMES_MAX),
	      "emoji sender and subject: safe");
}

/* A set of names for names_unique, as the decoder keeps one. */
struct set {
	size_t n;
	char names[64][NAMES_MAX + 1];
};

static bool in_set(void *ctx, const char *name)
{
	struct set *s = ctx;
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return true;
	return false;
}

static void add(struct set *s, const char *name)
{
	snprintf(s->names[s->n++], NAMES_MAX + 1, "%s", name);
}

static bool always(void *ctx, const char *name)
{
	(void)ctx;
	(void)name;
	return true;
}

static void test_unique(void)
{
	static const struct {
		const char *what, *name, *want;
	} t[] = {
	    {"with extension", "report.pdf", "report (2).pdf"},
	    {"without extension", "README", "README (2)"},
	    {"last dot only", "archive.tar.gz", "archive.tar (2).gz"},
	    {"dot at start is no extension", ".bashrc", ".bashrc (2)"},
	    {"trailing dot", "name.", "name (2)."},
	    {"space before extension", "a .txt", "a (2).txt"},
	};
	char name[NAMES_MAX + 1], in[NAMES_MAX + 1];
	struct set *s = calloc(1, sizeof(*s));
	size_t i, len;
	int ret;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		s->n = 0;
		add(s, t[i].name);
		snprintf(name, sizeof(name), "%s", t[i].name);
		ret = names_unique(name, in_set, s);
		CHECK(ret == 0, "unique %s: ok", t[i].what);
		CHECK_STR(name, t[i].want, "unique %s", t[i].what);
	}

	s->n = 0;
	add(s, "other");
	snprintf(name, sizeof(name), "free.txt");
	CHECK(names_unique(name, in_set, s) == 0 &&
		  strcmp(name, "free.txt") == 0,
	      "unique: a free name is kept");

	/* Clean input cannot start with a dot, and a suffix keeps it so. */
	s->n = 0;
	len = names_component(".bashrc", 7, "fb", NAMES_MAX, name);
	add(s, name);
	CHECK(names_unique(name, in_set, s) == 0 &&
		  strcmp(name, "bashrc (2)") == 0 && len == 6,
	      "unique: cleaned .bashrc stays safe");

	/* Many collisions: every result is new and safe. */
	s->n = 0;
	for (i = 0; i < 60; i++) {
		snprintf(name, sizeof(name), "x.txt");
		ret = names_unique(name, in_set, s);
		if (ret || in_set(s, name) ||
		    !safe_name(name, strlen(name), NAMES_MAX))
			break;
		add(s, name);
	}
	CHECK(i == 60, "unique: 60 collisions all resolved (%zu)", i);
	CHECK_STR(s->names[59], "x (60).txt", "unique: 60th name");

	/* At the length limit the stem gives way, at a character boundary,
	 * and the extension stays whole. */
	fill(in, NAMES_MAX - 4 + 1, "\xc3\xa9");
	len = strlen(in);
	memcpy(in + len, ".txt", 5);
	s->n = 0;
	add(s, in);
	snprintf(name, sizeof(name), "%s", in);
	ret = names_unique(name, in_set, s);
	CHECK(ret == 0 && ends_with(name, "\xc3\xa9 (2).txt") &&
		  safe_name(name, strlen(name), NAMES_MAX),
	      "unique: long multibyte stem cut at a boundary (%zu)",
	      strlen(name));

	/* An "extension" longer than half the limit is part of the stem. */
	in[0] = 'a';
	in[1] = '.';
	fill(in + 2, NAMES_MAX - 1, "x");
	s->n = 0;
	add(s, in);
	snprintf(name, sizeof(name), "%s", in);
	ret = names_unique(name, in_set, s);
	CHECK(ret == 0 && ends_with(name, "x (2)") &&
		  strncmp(name, "a.x", 3) == 0 && strlen(name) <= NAMES_MAX,
	      "unique: huge extension treated as stem");

	snprintf(name, sizeof(name), "stuck.txt");
	CHECK(names_unique(name, always, NULL) == -1 &&
		  strcmp(name, "stuck.txt") == 0,
	      "unique: gives up after 10000 tries, name unchanged");
	free(s);
}

/* Sibling folders: which keeps a name, which get suffixes, and the same
 * answer whatever order the server lists them in. */
struct sib_case {
	const char *what;
	const char *key[5];	/* server name */
	const char *clean[5];	/* as cleaned */
	bool exact[5];
	const char *want[5];	/* by key */
};

static const char *const reserved_top[] = { "outbox", ".mailfs", NULL };

static void run_siblings(const struct sib_case *c, const size_t *order,
			 size_t n, const char *const *reserved, bool *ok)
{
	struct names_sibling s[5], *v[5];

	for (size_t i = 0; i < n; i++) {
		size_t k = order[i];

		s[i].key = c->key[k];
		s[i].exact = c->exact[k];
		snprintf(s[i].name, sizeof(s[i].name), "%s", c->clean[k]);
		v[i] = &s[i];
	}
	*ok = names_siblings(v, n, reserved) == 0;
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < n; k++)
			if (strcmp(s[i].key, c->key[k]) == 0 &&
			    strcmp(s[i].name, c->want[k]) != 0) {
				printf("    %s: key [%s] got [%s] want [%s]\n",
				       c->what, c->key[k], s[i].name,
				       c->want[k]);
				*ok = false;
			}
}

static void test_siblings(void)
{
	static const struct sib_case t[] = {
		{ "leading dot", { ".Spam", "Spam" }, { "Spam", "Spam" },
		  { false, true }, { "Spam (2)", "Spam" } },
		{ "'/' in a name on a '.' server", { "a/b", "a_b" },
		  { "a_b", "a_b" }, { false, true }, { "a_b (2)", "a_b" } },
		{ "three alike", { "a b", "a  b", "a b " },
		  { "a b", "a b", "a b" }, { true, false, false },
		  { "a b", "a b (2)", "a b (3)" } },
		{ "none exact: first by key", { ".x", "..x" }, { "x", "x" },
		  { false, false }, { "x (2)", "x" } },
		{ "a suffix another folder has is skipped",
		  { "Spam", ".Spam", "Spam (2)" },
		  { "Spam", "Spam", "Spam (2)" }, { true, false, true },
		  { "Spam", "Spam (3)", "Spam (2)" } },
		{ "outbox is the mount's", { "outbox", "outbox (2)", "Outbox" },
		  { "outbox", "outbox (2)", "Outbox" }, { true, true, true },
		  { "outbox (3)", "outbox (2)", "Outbox" } },
		{ "distinct names stay", { "INBOX", "Sent", "Trash" },
		  { "INBOX", "Sent", "Trash" }, { true, true, true },
		  { "INBOX", "Sent", "Trash" } },
		{ "four", { "q", ".q", "..q", "q (2)" },
		  { "q", "q", "q", "q (2)" }, { true, false, false, true },
		  { "q", "q (4)", "q (3)", "q (2)" } },
	};
	static const size_t perms[][4] = {
		{ 0, 1, 2, 3 }, { 3, 2, 1, 0 }, { 1, 3, 0, 2 }, { 2, 0, 3, 1 },
	};
	struct names_sibling many[200], *mv[200];
	char want[NAMES_MAX + 1];
	bool ok;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = 0;

		while (n < 5 && t[i].key[n])
			n++;
		for (size_t p = 0; p < sizeof(perms) / sizeof(perms[0]); p++) {
			size_t order[4], m = 0;

			/* This permutation's members that exist. */
			for (size_t k = 0; k < 4; k++)
				if (perms[p][k] < n)
					order[m++] = perms[p][k];
			run_siblings(&t[i], order, n,
				     i == 5 ? reserved_top : NULL, &ok);
			CHECK(ok, "siblings: %s (order %zu)", t[i].what, p);
		}
	}

	/* At the length limit the name gives way at a character boundary. */
	{
		struct names_sibling s[2], *v[2] = { &s[0], &s[1] };
		size_t len;

		fill(s[0].name, NAMES_MAX, "\xc3\xa9");
		len = strlen(s[0].name);
		memcpy(s[1].name, s[0].name, len + 1);
		s[0].key = "exact";
		s[0].exact = true;
		s[1].key = "other";
		s[1].exact = false;
		CHECK(names_siblings(v, 2, NULL) == 0, "siblings: long: ok");
		len = strlen(s[1].name);
		CHECK(len <= NAMES_MAX && safe_name(s[1].name, len, NAMES_MAX) &&
			      len > 4 && strcmp(s[1].name + len - 4, " (2)") == 0 &&
			      strcmp(s[0].name, s[1].name) != 0,
		      "siblings: long: cut, valid UTF-8, ' (2)' at the end "
		      "(%zu bytes)", len);
	}

	/* Many alike: all distinct, in key order. */
	for (size_t i = 0; i < 200; i++) {
		static char keys[200][8];

		snprintf(keys[i], sizeof(keys[i]), ".%03zu", 199 - i);
		many[i].key = keys[i];
		many[i].exact = false;
		snprintf(many[i].name, sizeof(many[i].name), "same");
		mv[i] = &many[i];
	}
	ok = names_siblings(mv, 200, NULL) == 0;
	for (size_t i = 0; ok && i < 200; i++) {
		if (i == 0)
			snprintf(want, sizeof(want), "same");
		else
			snprintf(want, sizeof(want), "same (%zu)", i + 1);
		ok = strcmp(mv[i]->name, want) == 0 &&
		     mv[i]->renamed == (i > 0);
	}
	CHECK(ok, "siblings: 200 alike get 'same', 'same (2)' ... "
		  "'same (200)' in key order");
}

int main(void)
{
	test_component_table();
	test_component_long();
	test_message();
	test_message_long();
	test_unique();
	test_siblings();
	return check_done();
}
