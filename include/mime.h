/* mime.h - the decoded view of a message, with GMime.
 *
 * Best effort by design: malformed mail yields whatever can be decoded and
 * never crashes; only local failures (I/O, memory) are errors.
 */
#ifndef MIME_H
#define MIME_H

#include <stdbool.h>
#include <stdint.h>

#include "mfs_err.h"

/* Call once per process before any other function here (g_mime_init). */
void mime_init(void);
void mime_shutdown(void);

/* What a message's header says, decoded to UTF-8. */
struct mime_summary {
	int64_t date;		/* Date header (maildate.h), seconds since epoch */
	bool date_valid;	/* false when missing or unparsable */
	char *from;		/* display name of the first From, else address, else NULL */
	char *subject;		/* decoded (RFC 2047), NULL when missing */
	char *message_id;	/* without angle brackets, NULL when missing */
};

/* Parse a raw header block (as fetched with BODY.PEEK[HEADER.FIELDS ...] or
 * the head of a whole message).  Fills *out (caller frees with
 * mime_summary_clear).  0, MFS_E_NOMEM. Unparsable fields are left NULL. */
int mime_summary_parse(const char *hdr, size_t len, struct mime_summary *out);
void mime_summary_clear(struct mime_summary *s);

/* Called for a part of the decoded view, n counting from 1: name is the
 * clean, unique file name; type the MIME type ("text/plain"); size the
 * exact number of bytes the part decodes to.  Return 0 to go on or a
 * negative mfs_err to stop with it. */
typedef int (*mime_part_fn)(void *ctx, unsigned n, const char *name,
			    const char *type, uint64_t size);

/* Decode the raw message read from fd_in (from offset 0).  Its parts are,
 * in order:
 *   body.txt   first text/plain body part, converted to UTF-8
 *   body.html  first text/html body part, converted to UTF-8
 *   each attachment / inline part under its decoded filename
 *     (RFC 2231 / 2047, names_component), transfer-decoded
 *   a nested message/rfc822 as "<its subject>.eml", raw bytes
 *   other unnamed leaf parts as "part<N>.<ext>"
 * Names are unique within the message (names_unique); at most max_parts.
 * With want 0 every part is measured (decoded, nothing written) and told
 * to fn; with want n only part n is decoded, written to fd_out at its
 * offset, and told to fn; the others cost no decoding.  The same message
 * always gives the same parts, names and sizes.  Returns 0 (also when
 * there is no part n), MFS_E_IO, MFS_E_NOMEM, or fn's code. */
int mime_decode(int fd_in, unsigned want, int fd_out, unsigned max_parts,
		mime_part_fn fn, void *ctx, struct mfs_error *err);

/* Where part n of mime_decode_all goes: a descriptor to write it to (the
 * caller's, not closed here), -1 to only measure it, or -errno to stop
 * with MFS_E_IO. */
typedef int (*mime_open_fn)(void *ctx, unsigned n);

/* Every part at once, from one parse: each written to the descriptor
 * open_fn gives for it, and told to fn as with mime_decode (same ctx).
 * Parts are written in order, each from its descriptor's current offset
 * on, one call of open_fn before each: one descriptor given for all of
 * them holds them one after another. */
int mime_decode_all(int fd_in, unsigned max_parts, mime_open_fn open_fn,
		    mime_part_fn fn, void *ctx, struct mfs_error *err);

/* True when data looks like one message: a header field at the top and
 * a header GMime can parse. */
bool mime_is_message(const char *data, size_t len);

#endif
