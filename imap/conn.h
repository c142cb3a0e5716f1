/* conn.h - private to imap/: the I/O shell under the command layer. */
#ifndef IMAP_CONN_H
#define IMAP_CONN_H

#include <curl/curl.h>

#include "imap.h"
#include "imap_parse.h"

/* The byte stream under a connection when it is not curl's: a unit test
 * or fuzz target plays the server (see conn_new_fake). */
struct conn_io {
	/* Up to len bytes into buf and *n their count; *n == 0 when the
	 * stream has ended.  0 or a negative mfs_err. */
	int (*recv)(void *ctx, char *buf, size_t len, size_t *n);
	/* Take all len bytes.  0 or a negative mfs_err. */
	int (*send)(void *ctx, const char *buf, size_t len);
	void *ctx;
};

struct imap_conn {
	CURL *curl;
	const struct conn_io *io;	/* instead of curl, when set */
	curl_socket_t sock;
	struct imap_parser *parser;
	char *rbuf;
	size_t rpos, rlen;
	unsigned tagseq;
	unsigned caps;
	char cap_text[IMAP_CAP_TEXT_MAX];	/* CAPABILITY, as announced */
	bool broken;
	bool qresync;		/* ENABLE QRESYNC done */
	unsigned max_untagged;	/* per command; see conn_finish */
	long timeout_ms;
	char *selected;		/* wire name of the selected mailbox */
	bool selected_rw;	/* SELECT rather than EXAMINE */
	struct imap_mbstate st;
	imap_trace_fn trace;
	void *trace_ctx;
};

/* A logged-in connection over io, with the capabilities caps: for tests
 * and fuzz targets of the command layer.  io must outlive it; close with
 * imap_close.  NULL when out of memory. */
struct imap_conn *conn_new_fake(const struct conn_io *io, unsigned caps);

/* Called for each untagged response while a command runs. */
typedef int (*conn_untagged_fn)(void *ctx, const struct imap_resp *r);

/* Send one command line (without tag and CRLF) and read until its tagged
 * completion, passing untagged responses to fn (may be NULL).  Returns 0 on
 * OK, MFS_E_NO / MFS_E_BAD with the server's text in err, or an I/O error
 * (which also marks the connection broken).  A command that gets more
 * than c->max_untagged untagged responses, or whose fn returns
 * MFS_E_TOOBIG, fails with MFS_E_TOOBIG at once: the rest of an unbounded
 * answer is not read, so the connection is broken too. */
int conn_cmd(struct imap_conn *c, const char *line, conn_untagged_fn fn,
	     void *ctx, struct mfs_error *err);

/* The two halves of conn_cmd, for pipelining: conn_start sends a command
 * and returns its tag; conn_finish reads up to that tag's completion.
 * Commands must be finished in the order they were started. */
int conn_start(struct imap_conn *c, const char *line, char tag[16],
	       struct mfs_error *err);
int conn_finish(struct imap_conn *c, const char *tag, conn_untagged_fn fn,
		void *ctx, struct mfs_error *err);

/* For a synchronising literal: read until the server's "+" (0) or the
 * command's tagged refusal (MFS_E_NO / MFS_E_BAD). */
int conn_wait_continuation(struct imap_conn *c, const char *tag,
			   struct mfs_error *err);

/* Send bytes as they are (a literal's payload); never traced. */
int conn_send_raw(struct imap_conn *c, const char *buf, size_t len,
		  struct mfs_error *err);

/* Wait up to ms for the next response (1, *out to free), for wake_fd
 * (may be -1) to become readable or the time to pass (0), or fail (the
 * connection is then broken).  wake_fd is not read: the caller drains it. */
int conn_next(struct imap_conn *c, int wake_fd, long ms,
	      struct imap_resp **out, struct mfs_error *err);

/* SELECT (rw) or EXAMINE mailbox; with reuse, keep a selection of the
 * same mailbox that is at least as writable. */
int conn_select(struct imap_conn *c, const char *mailbox, bool rw,
		bool reuse, struct imap_mbstate *st, struct mfs_error *err);

/* Append s to the growable command buffer *buf as an IMAP quoted string.
 * MFS_E_INVAL if s holds CR, LF or NUL-unsafe bytes; MFS_E_NOMEM. */
int conn_quote(char **buf, size_t *len, const char *s);

/* Append printf output to *buf.  MFS_E_NOMEM. */
int conn_append(char **buf, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
