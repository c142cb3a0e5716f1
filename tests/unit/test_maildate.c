/* test_maildate.c - Date header values to instants, table-driven.
 *
 * Every expected instant is python3's (3.11) reading of the value, got
 * with
 *
 *   python3 -c 'import sys, calendar, email.utils as u
 *   d = u.parsedate_to_datetime(sys.argv[1])
 *   print(int(d.timestamp()) if d.tzinfo else calendar.timegm(d.timetuple()))'
 * VALUE
 *
 * (a naive result is UTC; an exception means false), after each RFC 5322
 * comment of VALUE was replaced by a space (maildate.h says why).  The
 * 8-bit values were given to python decoded as Latin-1.
 */
#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "maildate.h"

#define SENTINEL ((int64_t)0x5a5a5a5a5a5a5a5aLL)

static const struct {
	const char *what, *in;
	bool ok;
	int64_t when;
} cases[] = {
    {"the issue's example", "Tue, 3 Jan 2023 10:30+0100", true, 1672738200LL},
    {"RFC 5322", "Tue, 03 Jan 2023 10:30:00 +0100", true, 1672738200LL},
    {"no seconds", "Tue, 3 Jan 2023 10:30 +0100", true, 1672738200LL},
    {"no weekday", "3 Jan 2023 10:30:00 +0100", true, 1672738200LL},
    {"weekday without comma", "Tue 3 Jan 2023 10:30:00 +0100", true,
     1672738200LL},
    {"weekday against the day", "Tue,3 Jan 2023 10:30:00 +0100", true,
     1672738200LL},
    {"full weekday with comma", "Tuesday, 3 Jan 2023 10:30:00 +0100", true,
     1672738200LL},
    {"full weekday without comma", "Tuesday 3 Jan 2023 10:30:00 +0100", false,
     0},
    {"wrong weekday is ignored", "Fri, 3 Jan 2023 10:30:00 +0100", true,
     1672738200LL},
    {"zone against the time, minus", "3 Jan 2023 10:30:00-0500", true,
     1672759800LL},
    {"year 49", "3 Jan 49 10:30:00 +0000", true, 2493282600LL},
    {"year 50", "3 Jan 50 10:30:00 +0000", true, 2524818600LL},
    {"year 68", "3 Jan 68 10:30:00 +0000", true, 3092812200LL},
    {"year 69", "3 Jan 69 10:30:00 +0000", true, -31325400LL},
    {"year 99", "3 Jan 99 10:30:00 +0000", true, 915359400LL},
    {"year 00", "3 Jan 00 10:30:00 +0000", true, 946895400LL},
    {"year 0099 is 99", "3 Jan 0099 10:30:00 +0000", true, 915359400LL},
    {"three-digit year", "3 Jan 103 10:30:00 +0000", true, -58916640600LL},
    {"year 100 at the start of the range, zone +2359",
     "1 Jan 100 00:00:00 +2359", true, -59011545540LL},
    {"year 9999 at the end of the range, zone -2359",
     "31 Dec 9999 23:59:59 -2359", true, 253402387139LL},
    {"year 10000", "3 Jan 10000 10:30:00 +0000", false, 0},
    {"year -5, as python", "3 Jan -5 10:30:00 +0000", true, 946895700LL},
    {"EST", "3 Jan 2023 10:30:00 EST", true, 1672759800LL},
    {"EDT", "3 Jan 2023 10:30:00 EDT", true, 1672756200LL},
    {"CST", "3 Jan 2023 10:30:00 CST", true, 1672763400LL},
    {"CDT", "3 Jan 2023 10:30:00 CDT", true, 1672759800LL},
    {"MST", "3 Jan 2023 10:30:00 MST", true, 1672767000LL},
    {"MDT", "3 Jan 2023 10:30:00 MDT", true, 1672763400LL},
    {"PST", "3 Jan 2023 10:30:00 PST", true, 1672770600LL},
    {"PDT", "3 Jan 2023 10:30:00 PDT", true, 1672767000LL},
    {"AST", "3 Jan 2023 10:30:00 AST", true, 1672756200LL},
    {"ADT", "3 Jan 2023 10:30:00 ADT", true, 1672752600LL},
    {"est in lower case", "3 Jan 2023 10:30:00 est", true, 1672759800LL},
    {"UT", "3 Jan 2023 10:30:00 UT", true, 1672741800LL},
    {"UTC", "3 Jan 2023 10:30:00 UTC", true, 1672741800LL},
    {"GMT", "3 Jan 2023 10:30:00 GMT", true, 1672741800LL},
    {"military Z", "3 Jan 2023 10:30:00 Z", true, 1672741800LL},
    {"military A is UTC", "3 Jan 2023 10:30:00 A", true, 1672741800LL},
    {"military N is UTC", "3 Jan 2023 10:30:00 N", true, 1672741800LL},
    {"unknown zone CET is UTC", "3 Jan 2023 10:30:00 CET", true, 1672741800LL},
    {"-0000", "3 Jan 2023 10:30:00 -0000", true, 1672741800LL},
    {"+0000", "3 Jan 2023 10:30:00 +0000", true, 1672741800LL},
    {"zone +01 is one minute", "3 Jan 2023 10:30:00 +01", true, 1672741740LL},
    {"zone 0100 without sign", "3 Jan 2023 10:30:00 0100", true, 1672738200LL},
    {"zone +0199 is 1 h 99 min", "3 Jan 2023 10:30:00 +0199", true,
     1672732260LL},
    {"zone +2359", "3 Jan 2023 10:30:00 +2359", true, 1672655460LL},
    {"zone +2400", "3 Jan 2023 10:30:00 +2400", false, 0},
    {"zone -2400", "3 Jan 2023 10:30:00 -2400", false, 0},
    {"zone +2360 is 24 h", "3 Jan 2023 10:30:00 +2360", false, 0},
    {"zone +01:00 is UTC", "3 Jan 2023 10:30:00 +01:00", true, 1672741800LL},
    {"zone of 30 digits", "3 Jan 2023 10:30:00 +000000000000000000000000000100",
     true, 1672738200LL},
    {"huge zone", "3 Jan 2023 10:30:00 +99999999999999999999", false, 0},
    {"lone +", "3 Jan 2023 10:30:00 +", true, 1672741800LL},
    {"no zone", "Tue, 3 Jan 2023 10:30:00", true, 1672741800LL},
    {"no zone, no seconds", "Tue, 3 Jan 2023 10:30", true, 1672741800LL},
    {"comment after the zone", "Tue, 3 Jan 2023 10:30:00 +0100 (CET)", true,
     1672738200LL},
    {"comment before the zone", "Tue, 3 Jan 2023 10:30:00 (CET) +0100", true,
     1672738200LL},
    {"comment against the zone", "Tue, 3 Jan 2023 10:30:00 +0100(CET)", true,
     1672738200LL},
    {"zone against the time and a comment", "Tue, 3 Jan 2023 10:30+0100 (CET)",
     true, 1672738200LL},
    {"comments everywhere", "(a)Tue,(b)3(c)Jan(d)2023(e)10:30:00(f)+0100(g)",
     true, 1672738200LL},
    {"nested comment with quoted pairs",
     "Tue, 3 Jan (x (y) \\) \\( z) 2023 10:30:00 -0800", true, 1672770600LL},
    {"comment never closed", "Tue, 3 Jan 2023 10:30:00 +0100 (CET", true,
     1672738200LL},
    {"comment never closed, backslash last",
     "Tue, 3 Jan 2023 10:30:00 +0100 (CET\\", true, 1672738200LL},
    {"comment opened before the zone", "Tue, 3 Jan 2023 10:30:00 (+0100", true,
     1672741800LL},
    {"only a comment", "(Tue, 3 Jan 2023 10:30:00 +0100)", false, 0},
    {"lone closing parenthesis is a word", "Tue, 3 Jan 2023 10:30:00 ) +0100",
     true, 1672741800LL},
    {"lower-case month", "3 jan 2023 10:30:00 +0100", true, 1672738200LL},
    {"upper-case month", "3 JAN 2023 10:30:00 +0100", true, 1672738200LL},
    {"full month name", "3 January 2023 10:30:00 +0100", true, 1672738200LL},
    {"full month name, mixed case", "3 sEpTeMbEr 2023 10:30:00 +0100", true,
     1693733400LL},
    {"month before the day", "Jan 3 2023 10:30 +0100", true, 1672738200LL},
    {"month before the day, comma", "Tue, Jan 3, 2023 10:30 +0100", true,
     1672738200LL},
    {"year with a comma", "3 Jan 2023, 10:30 +0100", true, 1672738200LL},
    {"time with a comma", "3 Jan 2023 10:30, +0100", true, 1672738200LL},
    {"not a month", "3 Foo 2023 10:30:00 +0100", false, 0},
    {"extra spaces", "  Tue,   3   Jan   2023    10:30:00    +0100   ", true,
     1672738200LL},
    {"folded, CRLF and tab", " Tue,\r\n 3 Jan 2023\r\n\t10:30:00 +0100\r\n",
     true, 1672738200LL},
    {"vertical tab and 0x1c are white space",
     "Tue,\x0b"
     "3\x1cJan 2023 10:30:00 +0100",
     true, 1672738200LL},
    {"words after the zone are ignored",
     "Tue, 3 Jan 2023 10:30:00 +0100 and then some", true, 1672738200LL},
    {"asctime", "Tue Jan  3 10:30:00 2023", true, 1672741800LL},
    {"asctime with a zone", "Tue Jan  3 10:30:00 +0100 2023", true,
     1672738200LL},
    {"no year", "Thu Jan 01 00:00:10 +0000", false, 0},
    {"RFC 850", "Tuesday, 03-Jan-23 10:30:00 GMT", true, 1672741800LL},
    {"RFC 850, four-digit year", "03-jan-2023 10:30:00 -0500", true,
     1672759800LL},
    {"RFC 850 with an empty day", "-Jan-23 10:30:00 GMT", false, 0},
    {"three dashes", "03-Jan-23-x 10:30:00 GMT", false, 0},
    {"dots in the time", "Tue, 3 Jan 2023 10.30.00 +0100", true, 1672738200LL},
    {"dots, no seconds", "Tue, 3 Jan 2023 10.30 +0100", true, 1672738200LL},
    {"four time fields", "Tue, 3 Jan 2023 10:30:00:00 +0100", false, 0},
    {"time without minutes", "Tue, 3 Jan 2023 10 +0100", false, 0},
    {"empty minutes", "Tue, 3 Jan 2023 10: +0100", false, 0},
    {"underscores in numbers, as python's int()", "3 Jan 2_023 1_0:3_0 +01_00",
     true, 1672738200LL},
    {"double underscore", "3 Jan 2__023 10:30 +0100", false, 0},
    {"signed day", "+3 Jan 2023 10:30 +0100", true, 1672738200LL},
    {"negative day", "-3 Jan 2023 10:30 +0100", false, 0},
    {"leading zeros", "003 Jan 002023 010:030:000 +0100", true, 1672738200LL},
    {"day 0", "0 Jan 2023 10:30:00 +0100", false, 0},
    {"31 Jan", "31 Jan 2023 10:30:00 +0100", true, 1675157400LL},
    {"31 Apr", "31 Apr 2023 10:30:00 +0100", false, 0},
    {"30 Feb", "30 Feb 2024 10:30:00 +0100", false, 0},
    {"29 Feb 2023", "29 Feb 2023 10:30:00 +0100", false, 0},
    {"29 Feb 2024", "29 Feb 2024 10:30:00 +0100", true, 1709199000LL},
    {"29 Feb 2000", "29 Feb 2000 10:30:00 +0100", true, 951816600LL},
    {"29 Feb 2100", "29 Feb 2100 10:30:00 +0100", false, 0},
    {"hour 23:59:59", "3 Jan 2023 23:59:59 +0100", true, 1672786799LL},
    {"hour 24", "3 Jan 2023 24:00:00 +0100", false, 0},
    {"hour 25", "3 Jan 2023 25:30:00 +0100", false, 0},
    {"minute 60", "3 Jan 2023 10:60:00 +0100", false, 0},
    {"second 60", "3 Jan 2023 10:30:60 +0100", false, 0},
    {"the epoch", "Thu, 01 Jan 1970 00:00:00 +0000", true, 0LL},
    {"before the epoch", "Wed, 31 Dec 1969 23:59:59 +0000", true, -1LL},
    {"after 2038", "Tue, 19 Jan 2038 03:14:08 +0000", true, 2147483648LL},
    {"a date without a time", "Tue, 3 Jan 2023", false, 0},
    {"garbage", "sometime last week, probably", false, 0},
    {"ISO 8601", "2023-01-03T10:30:00+01:00", false, 0},
    {"ISO 8601 with a space", "2023-01-03 10:30:00 +0100", false, 0},
    {"empty", "", false, 0},
    {"white space only", " \t\r\n ", false, 0},
    {"a weekday only", "Tue,", false, 0},
    {"8-bit bytes", "Tue, 3 Jan 2023 10:30:00 +0100 \xe9t\xe9", true,
     1672738200LL},
    {"8-bit month", "3 J\xe4n 2023 10:30:00 +0100", false, 0},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* maildate_parse on a heap copy of exactly len bytes, so that the ASan
 * build sees any read beyond them: true and *when as it said, or false
 * with *when still SENTINEL (a failure leaves it untouched). */
static bool parse_exact(const char *s, size_t len, int64_t *when)
{
	char *copy = malloc(len ? len : 1);
	bool ok;

	if (!copy)
		abort();
	memcpy(copy, s, len);
	*when = SENTINEL;
	ok = maildate_parse(copy, len, when);
	free(copy);
	return ok;
}

static void test_table(void)
{
	int64_t when;
	size_t i;
	bool ok;

	for (i = 0; i < NCASES; i++) {
		ok = parse_exact(cases[i].in, strlen(cases[i].in), &when);
		if (cases[i].ok)
			CHECK(ok && when == cases[i].when, "%s: %lld",
			      cases[i].what, (long long)cases[i].when);
		else
			CHECK(!ok && when == SENTINEL,
			      "%s: no instant, *when untouched", cases[i].what);
		if (ok)
			CHECK(when >= MAILDATE_MIN && when <= MAILDATE_MAX,
			      "%s: within MAILDATE_MIN..MAILDATE_MAX",
			      cases[i].what);
	}
}

/* Case never matters: names of days, months and zones are ASCII. */
static void test_case(void)
{
	char buf[128];
	int64_t a, b, c;
	size_t i, k, len, bad = 0;

	for (i = 0; i < NCASES; i++) {
		len = strlen(cases[i].in);
		if (len >= sizeof(buf))
			continue;
		for (k = 0; k < len; k++) {
			char ch = cases[i].in[k];

			buf[k] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
		}
		a = b = c = SENTINEL;
		if (maildate_parse(buf, len, &a) != cases[i].ok)
			bad++;
		for (k = 0; k < len; k++) {
			char ch = cases[i].in[k];

			buf[k] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
		}
		if (maildate_parse(buf, len, &b) != cases[i].ok)
			bad++;
		maildate_parse(cases[i].in, len, &c);
		if (a != c || b != c)
			bad++;
	}
	CHECK(bad == 0,
	      "every case gives the same in upper and lower case "
	      "(%zu differ)",
	      bad);
}

/* A comment before and after the value changes nothing. */
static void test_comments_around(void)
{
	char buf[192];
	int64_t a, b;
	size_t i, len, bad = 0;
	int n;

	for (i = 0; i < NCASES; i++) {
		n = snprintf(buf, sizeof(buf), "(x (y) \\)) %s (z)",
			     cases[i].in);
		if (n < 0 || (size_t)n >= sizeof(buf))
			continue;
		len = (size_t)n;
		a = b = SENTINEL;
		if (parse_exact(buf, len, &a) != cases[i].ok)
			bad++;
		maildate_parse(cases[i].in, strlen(cases[i].in), &b);
		if (a != b && cases[i].ok)
			bad++;
	}
	CHECK(bad == 0,
	      "every case gives the same between comments "
	      "(%zu differ)",
	      bad);
}

/* Only the len bytes count: what follows them, even a zone or the end of
 * a comment, is never read. */
static void test_len(void)
{
	static const char full[] = "Tue, 3 Jan 2023 10:30:00 +0100 (CET)";
	const char *s = cases[0].in;
	size_t k, len = strlen(s), bad = 0;
	int64_t a, b;
	char *z;

	CHECK(parse_exact(full, 24, &a) && a == 1672741800LL,
	      "len ending before the zone: the time in UTC");
	CHECK(!parse_exact(full, 18, &a), "len ending after the hour: none");
	CHECK(parse_exact("3 Jan 2023 10:30:00 (+0100)", 21, &a) &&
		  a == 1672741800LL,
	      "len ending inside a comment: the comment ends there");
	CHECK(!maildate_parse(NULL, 0, &a) && !maildate_parse(full, 0, &a),
	      "NULL or len 0: none");
	/* Every prefix of the example parses as the same bytes
	 * NUL-terminated would. */
	for (k = 0; k <= len; k++) {
		bool x, y;

		z = strndup(s, k);
		if (!z)
			abort();
		x = parse_exact(s, k, &a);
		y = maildate_parse(z, strlen(z), &b);
		if (x != y || (x && a != b))
			bad++;
		free(z);
	}
	CHECK(bad == 0, "each prefix of '%s' as its own string (%zu differ)", s,
	      bad);
}

/* Neither the process's time zone nor its locale (Turkish, whose
 * upper-case I is no ASCII letter) plays a part. */
static void test_environment(void)
{
	size_t i, bad = 0;
	int64_t when;

	setenv("TZ", "America/St_Johns", 1);
	tzset();
	if (!setlocale(LC_ALL, "tr_TR.UTF-8"))
		setlocale(LC_ALL, "");
	for (i = 0; i < NCASES; i++) {
		when = SENTINEL;
		if (maildate_parse(cases[i].in, strlen(cases[i].in), &when) !=
			cases[i].ok ||
		    (cases[i].ok && when != cases[i].when))
			bad++;
	}
	CHECK(bad == 0,
	      "TZ=America/St_Johns and locale %s give the same "
	      "(%zu differ)",
	      setlocale(LC_ALL, NULL), bad);
	setlocale(LC_ALL, "C");
}

int main(void)
{
	test_table();
	test_case();
	test_comments_around();
	test_len();
	test_environment();
	return check_done();
}
