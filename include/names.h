/* names.h - every file name mailfs derives from mail goes through here.
 *
 * Pure functions, no I/O.  Input is untrusted (subjects, sender names,
 * attachment filenames already decoded from RFC 2047/2231 to UTF-8 by the
 * caller, but possibly still invalid UTF-8).  Output is a single path
 * component that can never escape its directory.
 */
#ifndef NAMES_H
#define NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NAMES_MAX 255	/* bytes in a component, as NAME_MAX */

/* Clean untrusted text into one component of at most max bytes (max <=
 * NAMES_MAX) written NUL-terminated to out (which holds max + 1 bytes):
 * basename only (anything up to the last '/' or '\\' dropped), invalid UTF-8
 * bytes replaced by '_', NUL/control characters and DEL replaced by a space,
 * runs of whitespace collapsed, leading/trailing whitespace and leading dots
 * removed, cut at a UTF-8 character boundary.  "." and ".." never result.
 * If nothing is left, fallback (trusted, short) is used.  Returns the
 * length written. */
size_t names_component(const char *in, size_t inlen, const char *fallback,
		       size_t max, char *out);

/* Message base name, without extension, into out (NAMES_MAX + 1 bytes):
 *   "YYYY-MM-DD HHMM <from> - <subject> [<uid>]"
 * date is seconds since the epoch, shown in UTC so names are the same on
 * every machine.  from and subject may be NULL or empty ("(no sender)",
 * "(no subject)").  Sized so that the name plus ".eml" fits NAMES_MAX: the
 * subject is shortened first, then the sender, at character boundaries;
 * the date and "[uid]" are always kept.  Returns the length. */
size_t names_message(int64_t date, const char *from, const char *subject,
		     uint32_t uid, char *out);

/* Make name (in/out, NAMES_MAX + 1 bytes, already clean) distinct from the
 * names for which taken() returns true, by inserting " (2)", " (3)" ...
 * before the extension (the last '.' not at the start), shortening the stem
 * at a character boundary if needed.  Returns 0, or -1 after 10000 tries. */
int names_unique(char *name, bool (*taken)(void *ctx, const char *name),
		 void *ctx);

/* One folder among its siblings, for names_siblings. */
struct names_sibling {
	const char *key;	/* the server's own name for it: the order */
	bool exact;		/* name is the server's name unchanged */
	bool renamed;		/* out: name got a suffix */
	char name[NAMES_MAX + 1];	/* in: cleaned; out: distinct */
};

/* Make the names of n sibling folders distinct, the same way for the
 * same set of siblings whatever order they come in.  Of siblings whose
 * cleaned names are equal, one keeps the name: the exact one, else the
 * first by key (byte order); the others, in key order, get the first of
 * " (2)", " (3)" ... appended that no sibling has and that is not
 * reserved (a NULL-terminated list, or NULL), the name cut at a
 * character boundary to make room.  A sibling whose name is reserved
 * never keeps it.  Sorts v in place.  Returns 0, or -1 when 10000
 * suffixes were all taken (then names may repeat). */
int names_siblings(struct names_sibling **v, size_t n,
		   const char *const *reserved);

#endif
