/* smtp.h - sending: message preparation (GMime) and submission (libcurl
 * SMTP).  Protocol leaf: no FUSE, no SQLite, no IMAP, never prints.
 */
#ifndef SMTP_H
#define SMTP_H

#include <stdbool.h>
#include <stddef.h>

#include "mfs_err.h"
#include "secret.h"

/* ---- preparation ---- */

struct smtp_msg {
	char *data;		/* the message to transmit: CRLF, no Bcc */
	size_t len;
	char *from;		/* envelope sender (bare address) */
	char **rcpt;		/* envelope recipients: To + Cc + Bcc, bare */
	size_t nrcpt;
};

/* Check and complete a message written by a user (raw bytes, any line
 * ending):  From defaults to default_from; Date, Message-ID and
 * MIME-Version are added when missing; 8-bit text without a charset is
 * declared UTF-8; Bcc is removed.  Refused with MFS_E_INVAL and a reason
 * in err: an empty file, something that is not a message, CR or NUL
 * inside the header, a message cut short (smtp_msg_cut), an unparsable
 * address, no recipient.  mime_init()
 * (GMime) must have been called.  *out is freed with smtp_msg_free. */
int smtp_prepare(const char *raw, size_t len, const char *default_from,
		 struct smtp_msg **out, struct mfs_error *err);
void smtp_msg_free(struct smtp_msg *m);

/* Is this message visibly cut short, as an interrupted copy leaves it?
 * True, with a one-line reason in why (truncated to whylen), when the
 * end of raw (a whole message, LF or CRLF) falls inside a structure that
 * announces more to come:
 *   - a multipart whose closing delimiter ("--boundary--") never comes
 *     (also one declared by a header that no blank line ends);
 *   - a last part in base64 whose characters, white space ignored, do
 *     not fill whole groups of four ('=' padding counted).
 * Not visible, so false: a cut in a text, quoted-printable or 8bit body
 * that is not inside a multipart (a single-part text message), a base64
 * part cut at a group boundary, a cut inside a header that declares no
 * multipart (a header without body is a message, as printf writes one).
 * Broken structure that ends before the end of the data (a nested
 * multipart never closed inside one that is, stray characters in
 * base64) is odd mail, not a cut, and gives false.  Pure: no I/O, no
 * allocation, no GMime; any bytes of any length. */
bool smtp_msg_cut(const char *raw, size_t len, char *why, size_t whylen);

/* ---- submission ---- */

enum smtp_tls { SMTP_TLS_STARTTLS, SMTP_TLS_IMPLICIT };

struct smtp_opts {
	const char *host;
	unsigned port;		/* 0: 587 or 465 by tls */
	enum smtp_tls tls;
	const char *user;
	struct secret_src secret; /* asked afresh for every submission;
				   * SECRET_NETRC: no AUTH */
	const char *ca_file;
	long timeout_s;
	/* Asked about once a second during smtp_send; true abandons the
	 * attempt with MFS_E_CANCELLED.  Whether the server had taken the
	 * message is then unknown only if it came after the final dot.
	 * NULL: never cancelled. */
	bool (*cancelled)(void *ctx);
	void *cancel_ctx;
};

/* Outcome of one submission attempt. */
struct smtp_result {
	int code;		/* last SMTP reply code, 0 if none */
	char reply[256];	/* the server's words for the failure */
	char rejected[512];	/* "addr: reply; ..." for refused recipients */
	size_t nrejected;
};

/* Submit m, with a secret asked of o->secret just before connecting.
 * 0: the server accepted it for at least one recipient (see
 * res->rejected for the others).  Otherwise a negative mfs_err whose
 * mfs_is_transient() tells whether to retry: network, TLS handshake,
 * timeouts, 4xx replies and a secret source that failed (MFS_E_SECRET)
 * are transient; 5xx and authentication are not; MFS_E_CANCELLED when
 * o->cancelled said so. */
int smtp_send(const struct smtp_opts *o, const struct smtp_msg *m,
	      struct smtp_result *res, struct mfs_error *err);

/* Connect, secure and log in as smtp_send would (EHLO, STARTTLS, AUTH),
 * then leave without sending: whether a submission could start.  0, or
 * a negative mfs_err classified as for smtp_send (MFS_E_AUTH for a
 * refused login), with the server's or curl's words in res->reply. */
int smtp_login(const struct smtp_opts *o, struct smtp_result *res,
	       struct mfs_error *err);

#endif
