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

#endif
