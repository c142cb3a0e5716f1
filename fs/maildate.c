/* maildate.c - the instant a Date header names (see maildate.h).
 *
 * The steps follow python's email._parseaddr._parsedate_tz one for one,
 * over words found with RFC 5322's comments taken as white space; the
 * range checks are those of python's datetime and timezone.
 */
#include "maildate.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A word of the value: bytes of it, never copied. */
struct word {
	const char *p;
	size_t n;
};

/* A weekday and five fields are all that is ever looked at; one word
 * more tells "five or more" from four. */
#define WORDS 6

/* Bigger than any number that could pass a range check. */
#define NUM_CAP 1000000000000LL

static const char *const month_names[] = {
    "jan",     "feb",	   "mar",	"apr",	   "may",      "jun",
    "jul",     "aug",	   "sep",	"oct",	   "nov",      "dec",
    "january", "february", "march",	"april",   "may",      "june",
    "july",    "august",   "september", "october", "november", "december",
};

static const char *const day_names[] = {"mon", "tue", "wed", "thu",
					"fri", "sat", "sun"};

/* The named zones python knows, as +hhmm numbers.  RFC 822's military
 * letters other than Z had their signs wrong (RFC 1123), so they are not
 * here and count as unknown, that is UTC, as RFC 5322 advises. */
static const struct {
	const char *name;
	int hhmm;
} zone_names[] = {
    {"ut", 0},	   {"utc", 0},	  {"gmt", 0},	 {"z", 0},	{"ast", -400},
    {"adt", -300}, {"est", -500}, {"edt", -400}, {"cst", -600}, {"cdt", -500},
    {"mst", -700}, {"mdt", -600}, {"pst", -800}, {"pdt", -700},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The ASCII white space of python's str.split(). */
static bool is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* w equals name (lower case) in any case. */
static bool word_is(struct word w, const char *name)
{
	size_t i;

	for (i = 0; i < w.n; i++)
		if (name[i] == '\0' || lower(w.p[i]) != name[i])
			return false;
	return name[i] == '\0';
}

static bool ends_with(struct word w, char c)
{
	return w.n > 0 && w.p[w.n - 1] == c;
}

/* Index of the first c in w, or w.n. */
static size_t find(struct word w, char c)
{
	size_t i = 0;

	while (i < w.n && w.p[i] != c)
		i++;
	return i;
}

static struct word cut(struct word w, size_t from, size_t to)
{
	return (struct word){w.p + from, to - from};
}

/* The end of the comment that starts at s[i] == '(': past its closing
 * parenthesis, or len when it is never closed. */
static size_t skip_comment(const char *s, size_t len, size_t i)
{
	size_t depth = 0;
	char c;

	while (i < len) {
		c = s[i++];
		if (c == '\\') {
			if (i < len)
				i++;
		} else if (c == '(') {
			depth++;
		} else if (c == ')' && --depth == 0) {
			break;
		}
	}
	return i;
}

/* The first WORDS words of s into w; their number, counting no further
 * than WORDS + 1. */
static size_t split_words(const char *s, size_t len, struct word *w)
{
	size_t i = 0, n = 0, start;

	while (i < len && n <= WORDS) {
		if (s[i] == '(') {
			i = skip_comment(s, len, i);
		} else if (is_space((unsigned char)s[i])) {
			i++;
		} else {
			start = i;
			while (i < len && s[i] != '(' &&
			       !is_space((unsigned char)s[i]))
				i++;
			if (n < WORDS)
				w[n] = cut((struct word){s, len}, start, i);
			n++;
		}
	}
	return n;
}

/* A number as python's int() reads a word: an optional sign, then ASCII
 * digits with single '_' between them.  Beyond NUM_CAP it stays there. */
static bool number(struct word w, int64_t *v)
{
	int64_t x = 0;
	bool neg = false;
	size_t i = 0;

	if (w.n > 0 && (w.p[0] == '+' || w.p[0] == '-')) {
		neg = w.p[0] == '-';
		i++;
	}
	if (i == w.n)
		return false;
	for (; i < w.n; i++) {
		if (w.p[i] == '_' && i > 0 && is_digit(w.p[i - 1]) &&
		    i + 1 < w.n && is_digit(w.p[i + 1]))
			continue;
		if (!is_digit(w.p[i]))
			return false;
		x = x < NUM_CAP ? x * 10 + (w.p[i] - '0') : NUM_CAP;
	}
	*v = neg ? -x : x;
	return true;
}

/* 1-12 for a month's name, else 0. */
static int month_of(struct word w)
{
	size_t i;

	for (i = 0; i < COUNT(month_names); i++)
		if (word_is(w, month_names[i]))
			return (int)(i % 12) + 1;
	return 0;
}

static bool is_day_name(struct word w)
{
	size_t i;

	for (i = 0; i < COUNT(day_names); i++)
		if (word_is(w, day_names[i]))
			return true;
	return false;
}

/* The zone's offset east of UTC in seconds; 0 for one that is unknown. */
static int64_t zone_offset(struct word w)
{
	int64_t v = 0, a;
	size_t i;

	for (i = 0; i < COUNT(zone_names); i++)
		if (word_is(w, zone_names[i].name))
			break;
	if (i < COUNT(zone_names))
		v = zone_names[i].hhmm;
	else if (!number(w, &v))
		v = 0;
	a = v < 0 ? -v : v;
	a = a / 100 * 3600 + a % 100 * 60;
	return v < 0 ? -a : a;
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int64_t days_in_month(int64_t y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30,
				   31, 31, 30, 31, 30, 31};

	return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil), for y >= 1. */
static int64_t days_from_civil(int64_t y, int m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = y / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

bool maildate_parse(const char *s, size_t len, int64_t *when)
{
	struct word words[WORDS], f[5], t, *w = words;
	struct word hh, mi, ss = {"0", 1};
	int64_t year, day, hour, min, sec, off;
	size_t n, i, j;
	int mon;

	if (!s)
		return false;
	n = split_words(s, len, words);
	if (n == 0)
		return false;
	/* The weekday goes, or whatever a comma ends in the first word. */
	if (ends_with(w[0], ',') || is_day_name(w[0])) {
		w++;
		n--;
	} else {
		for (i = w[0].n; i > 0 && w[0].p[i - 1] != ','; i--)
			;
		w[0] = cut(w[0], i, w[0].n);
	}

	if (n == 3) {
		/* RFC 850: "03-Jan-23 10:30:00 GMT". */
		i = find(w[0], '-');
		j = i < w[0].n ? i + 1 + find(cut(w[0], i + 1, w[0].n), '-')
			       : w[0].n;
		if (j < w[0].n &&
		    find(cut(w[0], j + 1, w[0].n), '-') == w[0].n - j - 1) {
			f[0] = cut(w[0], 0, i);
			f[1] = cut(w[0], i + 1, j);
			f[2] = cut(w[0], j + 1, w[0].n);
			f[3] = w[1];
			f[4] = w[2];
			n = 5;
		}
	} else if (n == 4) {
		/* The zone against the time ("10:30+0100"), or none. */
		f[0] = w[0];
		f[1] = w[1];
		f[2] = w[2];
		i = find(w[3], '+');
		if (i == w[3].n)
			i = find(w[3], '-');
		if (i > 0 && i < w[3].n) {
			f[3] = cut(w[3], 0, i);
			f[4] = cut(w[3], i, w[3].n);
		} else {
			f[3] = w[3];
			f[4] = (struct word){s, 0};
		}
		n = 5;
	} else if (n >= 5) {
		for (i = 0; i < 5; i++)
			f[i] = w[i];
	}
	if (n < 5)
		return false;

	/* f: day, month, year, time, zone, as far as they are in order. */
	if (f[0].n == 0 || f[1].n == 0 || f[2].n == 0)
		return false;
	mon = month_of(f[1]);
	if (!mon) {
		mon = month_of(f[0]);
		f[0] = f[1];
		if (!mon)
			return false;
	}
	if (ends_with(f[0], ','))
		f[0].n--;
	i = find(f[2], ':');
	if (i > 0 && i < f[2].n) {
		t = f[2];
		f[2] = f[3];
		f[3] = t;
	}
	if (ends_with(f[2], ',') && --f[2].n == 0)
		return false;
	if (f[2].n == 0 || !is_digit(f[2].p[0])) {
		t = f[2];
		f[2] = f[4];
		f[4] = t;
	}
	if (f[3].n == 0)
		return false;
	if (ends_with(f[3], ','))
		f[3].n--;

	/* hh:mm[:ss], or hh.mm[.ss] when there is no ':'. */
	t = f[3];
	i = find(t, ':');
	if (i == t.n)
		i = find(t, '.');
	if (i == t.n)
		return false;
	hh = cut(t, 0, i);
	j = i + 1 + find(cut(t, i + 1, t.n), t.p[i]);
	mi = cut(t, i + 1, j);
	if (j < t.n) {
		ss = cut(t, j + 1, t.n);
		if (find(ss, t.p[i]) < ss.n)
			return false;
	}

	if (!number(f[2], &year) || !number(f[0], &day) || !number(hh, &hour) ||
	    !number(mi, &min) || !number(ss, &sec))
		return false;
	if (year < 100)
		year += year > 68 ? 1900 : 2000;
	off = zone_offset(f[4]);

	if (year < 1 || year > 9999 || day < 1 ||
	    day > days_in_month(year, mon) || hour < 0 || hour > 23 ||
	    min < 0 || min > 59 || sec < 0 || sec > 59 || off <= -86400 ||
	    off >= 86400)
		return false;
	*when = days_from_civil(year, mon, day) * 86400 + hour * 3600 +
		min * 60 + sec - off;
	return true;
}
