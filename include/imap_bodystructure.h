/* imap_bodystructure.h - a message's MIME structure as the server's
 * BODYSTRUCTURE describes it (RFC 3501 7.4.2, RFC 9051 7.5.2), turned from
 * the parser's values (imap_parse.h) into a table of typed parts.
 *
 * Pure: no I/O, and nothing allocated but the table it returns.  Strings
 * are borrowed from the value tree (NUL-terminated there; one holding a
 * NUL byte reads as cut at it) and live as long as the tree does.
 * Bounded: at most IMAP_BS_MAX_DEPTH levels of nesting, IMAP_BS_MAX_PARTS
 * parts and IMAP_BS_MAX_PARAMS parameters in a list; beyond, MFS_E_TOOBIG.
 * Tolerant where servers are known to differ: extension data may stop
 * anywhere or be absent, a number may come as a string, a disposition as
 * a bare string, a message/rfc822 part without its envelope and body
 * reads as a leaf.
 */
#ifndef IMAP_BODYSTRUCTURE_H
#define IMAP_BODYSTRUCTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_parse.h"

#define IMAP_BS_MAX_DEPTH 32
#define IMAP_BS_MAX_PARTS 1000
#define IMAP_BS_MAX_PARAMS 64
/* Longest section number: IMAP_BS_MAX_DEPTH levels of up to 4 digits. */
#define IMAP_BS_SECTION_MAX 192

struct imap_bs_param {
	const char *name, *value;	/* value NULL for NIL */
};

struct imap_bs_params {
	size_t n;
	struct imap_bs_param *p;
};

/* One body part.  The table is in pre-order: a multipart, or a message
 * part, is followed by the parts it holds. */
struct imap_bs_part {
	const char *type, *subtype;	/* as sent, e.g. "TEXT" "plain" */
	bool multipart;
	/* message/rfc822 or message/global with its envelope and body: the
	 * next part is the encapsulated message's body. */
	bool message;
	int parent;			/* index in the table; -1 for the top */
	unsigned depth;			/* 0 for the top */
	/* For BODY[...] and BINARY[...]: "1", "2.1.3"; "" for a multipart
	 * that is the whole message, and a message part's multipart body
	 * has the message part's number (RFC 3501 6.4.5). */
	char section[IMAP_BS_SECTION_MAX];
	struct imap_bs_params params;	/* Content-Type parameters */
	/* Single parts; NULL for NIL (or a multipart). */
	const char *id, *description, *encoding;
	uint64_t size;			/* octets, as transfer-encoded */
	uint64_t lines;			/* text and message parts, else 0 */
	const char *subject;		/* message parts: the envelope's */
	const char *md5;
	/* Content-Disposition, NULL when NIL or not sent; its parameters. */
	const char *disposition;
	struct imap_bs_params dparams;
};

struct imap_bs {
	size_t n;
	struct imap_bs_part *parts;
};

/* Read v, the value of a FETCH response's BODYSTRUCTURE (or BODY) item,
 * into *out (imap_bs_free).  0, MFS_E_PROTO when it is not a body
 * structure, MFS_E_TOOBIG past a bound, MFS_E_NOMEM. */
int imap_bs_parse(const struct imap_value *v, struct imap_bs **out);
void imap_bs_free(struct imap_bs *bs);

/* The value of parameter name in ps, ASCII case ignored; NULL when it is
 * not there (or NIL). */
const char *imap_bs_param(const struct imap_bs_params *ps, const char *name);

#endif
