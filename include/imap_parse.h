/* imap_parse.h - pure IMAP response parser: bytes in, typed values out.
 *
 * No I/O, no allocation beyond the values it returns, hard caps on size and
 * nesting.  It is a push parser: the I/O shell feeds whatever bytes arrived
 * and gets a complete response once one is there, so a literal split across
 * reads (or a 40 MB message body) needs no special handling by the caller.
 * Literals above `max_inline` bytes are streamed to a sink instead of being
 * held in memory, so fetching a big body costs no RAM.
 */
#ifndef IMAP_PARSE_H
#define IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum imap_vtype {
	IMAP_V_ATOM,	/* atom or number; "BODY[HEADER.FIELDS (A B)]<0>" is one atom */
	IMAP_V_STRING,	/* quoted string or in-memory literal */
	IMAP_V_NIL,
	IMAP_V_LIST,	/* parenthesised list, or a resp-text-code's "[...]" */
	IMAP_V_SUNK,	/* literal delivered to the sink; see off/len */
};

struct imap_value {
	enum imap_vtype type;
	size_t len;		/* bytes in str (ATOM/STRING); literal length (SUNK) */
	char *str;		/* NUL-terminated copy; may hold NULs, use len */
	uint64_t off;		/* SUNK: sink offset of the first byte */
	size_t n;		/* LIST: number of items */
	struct imap_value *items;
};

enum imap_rkind { IMAP_R_UNTAGGED, IMAP_R_TAGGED, IMAP_R_CONT };
enum imap_status {
	IMAP_S_NONE, IMAP_S_OK, IMAP_S_NO, IMAP_S_BAD, IMAP_S_BYE, IMAP_S_PREAUTH
};

/* One complete server response.
 * - Status responses ("A1 OK [..] text", "* NO ..", "* BYE ..") set status,
 *   code (a LIST, n == 0 when absent) and text (rest of line, may be "").
 * - Other untagged responses set status = IMAP_S_NONE and data = LIST of the
 *   tokens after "* ", e.g. ["3", "FETCH", (...)] or ["CAPABILITY", ...].
 * - A continuation ("+ text") sets kind = IMAP_R_CONT and text. */
struct imap_resp {
	enum imap_rkind kind;
	char *tag;		/* IMAP_R_TAGGED only, else NULL */
	enum imap_status status;
	struct imap_value code;
	char *text;
	struct imap_value data;
};

/* Receives the bytes of a large literal, in order, possibly in many calls.
 * Returns 0 or a negative mfs_err, which aborts the parse with that code. */
typedef int (*imap_sink_fn)(void *ctx, const char *buf, size_t len);

struct imap_parser;

/* New parser.  Literals longer than max_inline go to the sink (if one is
 * set; otherwise they count against max_total like everything else).
 * max_total caps the in-memory size of one response.  NULL on ENOMEM. */
struct imap_parser *imap_parser_new(size_t max_inline, size_t max_total);
void imap_parser_free(struct imap_parser *p);

/* Set or clear (fn == NULL) the sink.  Offsets of SUNK values count bytes
 * given to the sink since the last imap_parser_set_sink call. */
void imap_parser_set_sink(struct imap_parser *p, imap_sink_fn fn, void *ctx);

/* Feed up to len bytes.  Returns how many were consumed (>= 0); when a
 * response completes, consumption stops right after it and *out receives it
 * (caller frees with imap_resp_free); otherwise *out is NULL and all bytes
 * were consumed.  A negative mfs_err (MFS_E_PROTO, MFS_E_TOOBIG, MFS_E_NOMEM
 * or a sink's code) means the stream is unusable; the parser must be reset
 * or freed. */
ssize_t imap_parser_feed(struct imap_parser *p, const char *buf, size_t len,
			 struct imap_resp **out);

/* Forget any partial response (after a reconnect). */
void imap_parser_reset(struct imap_parser *p);

void imap_resp_free(struct imap_resp *r);

/* Item i of a LIST, or NULL when out of range or not a list. */
const struct imap_value *imap_list_get(const struct imap_value *v, size_t i);

/* True when v is an ATOM equal to s, ignoring ASCII case. */
bool imap_atom_is(const struct imap_value *v, const char *s);

/* Parse an ATOM made only of digits into *out.  0 or MFS_E_PROTO. */
int imap_value_u64(const struct imap_value *v, uint64_t *out);

/* In a FETCH attribute list (key value key value ...), the value whose key
 * atom equals key ignoring case, or NULL.  "BODY[]" matches "BODY[]<0>"
 * only when given exactly, i.e. no prefix matching. */
const struct imap_value *imap_fetch_item(const struct imap_value *list,
					 const char *key);

/* Walk an IMAP sequence set of UIDs ("1:3,7,9:8"; no "*", as in the
 * VANISHED and COPYUID responses), calling fn once per range with lo <= hi.
 * 0, MFS_E_PROTO for a malformed set (fn may have been called for the
 * ranges before the fault), or fn's negative return. */
typedef int (*imap_range_fn)(void *ctx, uint32_t lo, uint32_t hi);
int imap_uidset_each(const char *set, imap_range_fn fn, void *ctx);

/* Modified UTF-7 (RFC 3501 5.1.3) to UTF-8 and back.  *out is malloc'd,
 * caller frees.  0, MFS_E_INVAL for malformed input, MFS_E_NOMEM. */
int imap_utf7_decode(const char *in, char **out);
int imap_utf7_encode(const char *in, char **out);

#endif
