/* maildate.h - the instant a Date header names.
 *
 * Pure: no allocation, no I/O, and neither the locale nor the process's
 * time zone plays a part, so the same bytes give the same instant on every
 * machine.
 *
 * The reading is that of python3's email.utils.parsedate_to_datetime
 * (3.11), which the tests check against and many mail tools share, with
 * a naive result there (-0000, a zone it does not know, no zone) taken as
 * UTC, as python documents for -0000.  That covers RFC 5322 with the
 * obsolete syntax of its section 4.3 and the forms real mail has beside
 * it:
 *
 *   [weekday[,]] day month year hh:mm[:ss] [zone]
 *
 *   weekday  any first word ending in ',', or a day's three-letter name;
 *            not checked against the date ("Tue,3 Jan" is fine too)
 *   month    three-letter or full English name, any case; it may come
 *            before the day ("Jan 3 2023")
 *   year     00-68 is 2000-2068 and 69-99 is 1969-1999 (POSIX, as
 *            python; RFC 5322 has 50-99 in the 1900s); any other number
 *            as written (RFC 5322 adds 1900 to three digits), 1 to 9999
 *   time     hh:mm or hh:mm:ss, also with '.' ("10.30.00"); no leap
 *            second
 *   zone     +hhmm or -hhmm, also written against the time
 *            ("10:30+0100"), the number's hundreds being hours and the
 *            rest minutes ("+01" is one minute); UT UTC GMT Z, EST EDT
 *            CST CDT MST MDT PST PDT AST ADT; -0000, the other military
 *            letters, an unknown word or no zone: UTC
 *
 * also asctime ("Tue Jan  3 10:30:00 2023", no zone) and RFC 850
 * ("Tuesday, 03-Jan-23 10:30:00 GMT").  Numbers are ASCII digits with an
 * optional sign and single '_' between digits, as python's int() takes
 * them; words after the zone are ignored.
 *
 * One difference on purpose: RFC 5322 comments ("(CET)", nested, with
 * quoted pairs) are white space wherever they stand.  python reads them
 * as words, which is harmless after the zone only: it takes
 * "10:30:00 (CET) +0100" as 10:30 UTC and rejects "10:30+0100 (CET)".
 */
#ifndef MAILDATE_H
#define MAILDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every instant maildate_parse gives lies in this range: 0001-01-01
 * 00:00:00 to 9999-12-31 23:59:59, each moved by less than a day of
 * zone. */
#define MAILDATE_MIN (-62135596800LL - 86400)
#define MAILDATE_MAX (253402300799LL + 86400)

/* Read the value of a Date header: the len bytes at s (any bytes, not
 * NUL-terminated, never read beyond len; folded lines and a trailing
 * newline are white space).  true with *when set to seconds since the
 * epoch when the value names an instant as above; false, *when
 * untouched, when it does not: no time, a field that is not a number
 * where one must be, a day the month does not have, hour 24 or more,
 * minute or second 60 or more, a zone of 24 hours or more, a year
 * outside 1..9999. */
bool maildate_parse(const char *s, size_t len, int64_t *when);

#endif
