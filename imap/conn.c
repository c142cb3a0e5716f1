/* conn.c - the connection: curl does the connect, TLS and login; we speak
 * IMAP over the raw byte stream it leaves us. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"

#define RBUF_SIZE (64 * 1024)
#define MAX_INLINE (64 * 1024)
/* One response in memory (a body is streamed to a file, never held):
 * each connection may hold one, so this times the connections (readers,
 * sync, IDLE) bounds what servers can make us hold. */
#define MAX_RESPONSE (4u * 1024 * 1024)
/* A folder's flags pass gets one response per message. */
#define MAX_UNTAGGED (1u << 23)

static int map_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return MFS_E_CONNECT;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
		return MFS_E_TLS;
	case CURLE_LOGIN_DENIED:
		return MFS_E_AUTH;
	case CURLE_OPERATION_TIMEDOUT:
		return MFS_E_TIMEOUT;
	case CURLE_OUT_OF_MEMORY:
		return MFS_E_NOMEM;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		return MFS_E_CLOSED;
	default:
		return MFS_E_PROTO;
	}
}

static int wait_sock(struct imap_conn *c, short events, struct mfs_error *err)
{
	struct pollfd pfd = { .fd = c->sock, .events = events };
	int n;

	do
		n = poll(&pfd, 1, (int)c->timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return mfs_fail(err, MFS_E_IO, "poll: %s", strerror(errno));
	if (n == 0)
		return mfs_fail(err, MFS_E_TIMEOUT,
				"no answer from server in %ld s",
				c->timeout_ms / 1000);
	return 0;
}

static int conn_send(struct imap_conn *c, const char *buf, size_t len,
		     struct mfs_error *err)
{
	int rc;

	if (c->io) {
		rc = c->io->send(c->io->ctx, buf, len);
		if (rc < 0) {
			mfs_fail(err, rc, "send: %s", mfs_strerror(rc));
			goto fail;
		}
		return 0;
	}
	while (len > 0) {
		size_t n = 0;
		CURLcode cr = curl_easy_send(c->curl, buf, len, &n);

		if (cr == CURLE_AGAIN) {
			rc = wait_sock(c, POLLOUT, err);
			if (rc < 0)
				goto fail;
			continue;
		}
		if (cr != CURLE_OK) {
			rc = mfs_fail(err, map_curl(cr), "send: %s",
				      curl_easy_strerror(cr));
			goto fail;
		}
		buf += n;
		len -= n;
	}
	return 0;
fail:
	c->broken = true;
	return rc;
}

/* TLS may already hold decrypted bytes the socket no longer shows, so
 * always try to receive first and poll only when curl says CURLE_AGAIN. */
static int conn_fill(struct imap_conn *c, struct mfs_error *err)
{
	if (c->io) {
		size_t n = 0;
		int rc = c->io->recv(c->io->ctx, c->rbuf, RBUF_SIZE, &n);

		if (rc < 0)
			return mfs_fail(err, rc, "receive: %s",
					mfs_strerror(rc));
		if (n == 0)
			return mfs_fail(err, MFS_E_CLOSED,
					"server closed the connection");
		c->rpos = 0;
		c->rlen = n;
		return 0;
	}
	for (;;) {
		size_t n = 0;
		CURLcode cr = curl_easy_recv(c->curl, c->rbuf, RBUF_SIZE, &n);
		int rc;

		if (cr == CURLE_AGAIN) {
			rc = wait_sock(c, POLLIN, err);
			if (rc < 0)
				return rc;
			continue;
		}
		if (cr != CURLE_OK)
			return mfs_fail(err, map_curl(cr), "receive: %s",
					curl_easy_strerror(cr));
		if (n == 0)
			return mfs_fail(err, MFS_E_CLOSED,
					"server closed the connection");
		c->rpos = 0;
		c->rlen = n;
		return 0;
	}
}

static void trace_resp(struct imap_conn *c, const struct imap_resp *r)
{
	char line[200];
	int n;

	if (!c->trace)
		return;
	if (r->kind == IMAP_R_TAGGED || r->status != IMAP_S_NONE)
		n = snprintf(line, sizeof(line), "%s %s", r->tag ? r->tag : "*",
			     r->text ? r->text : "");
	else
		n = snprintf(line, sizeof(line), "* %.*s %.*s (%zu items)",
			     r->data.n > 0 ? (int)r->data.items[0].len : 0,
			     r->data.n > 0 && r->data.items[0].str ?
				     r->data.items[0].str : "",
			     r->data.n > 1 ? (int)r->data.items[1].len : 0,
			     r->data.n > 1 && r->data.items[1].str ?
				     r->data.items[1].str : "",
			     r->data.n);
	if (n > 0)
		c->trace(c->trace_ctx, "S", line,
			 (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* The parser failed with rc: the server's bytes, or the literal sink's
 * own failure (a full disk), which has said why in err already. */
static int parse_failed(struct mfs_error *err, int rc)
{
	if (rc != MFS_E_PROTO && rc != MFS_E_TOOBIG && err && err->code == rc)
		return rc;
	return mfs_fail(err, rc, "unparsable server response");
}

static int conn_read(struct imap_conn *c, struct imap_resp **out,
		     struct mfs_error *err)
{
	int rc;

	*out = NULL;
	for (;;) {
		if (c->rpos < c->rlen) {
			ssize_t n = imap_parser_feed(c->parser,
						     c->rbuf + c->rpos,
						     c->rlen - c->rpos, out);
			if (n < 0) {
				rc = parse_failed(err, (int)n);
				goto fail;
			}
			c->rpos += (size_t)n;
			if (*out) {
				trace_resp(c, *out);
				return 0;
			}
			continue;
		}
		rc = conn_fill(c, err);
		if (rc < 0)
			goto fail;
	}
fail:
	c->broken = true;
	return rc;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int conn_next(struct imap_conn *c, int wake_fd, long ms,
	      struct imap_resp **out, struct mfs_error *err)
{
	int64_t until = mono_ms() + ms;
	int rc;

	*out = NULL;
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = c->sock, .events = POLLIN },
			{ .fd = wake_fd, .events = POLLIN },
		};
		int64_t left;
		size_t n = 0;
		CURLcode cr;

		if (c->rpos < c->rlen) {
			ssize_t used = imap_parser_feed(c->parser,
							c->rbuf + c->rpos,
							c->rlen - c->rpos, out);
			if (used < 0) {
				rc = parse_failed(err, (int)used);
				goto fail;
			}
			c->rpos += (size_t)used;
			if (*out) {
				trace_resp(c, *out);
				return 1;
			}
			continue;
		}
		if (c->io) {
			/* A scripted stream never waits: what it has, or
			 * its end. */
			rc = conn_fill(c, err);
			if (rc < 0)
				goto fail;
			continue;
		}
		cr = curl_easy_recv(c->curl, c->rbuf, RBUF_SIZE, &n);
		if (cr == CURLE_OK && n > 0) {
			c->rpos = 0;
			c->rlen = n;
			continue;
		}
		if (cr == CURLE_OK) {
			rc = mfs_fail(err, MFS_E_CLOSED,
				      "server closed the connection");
			goto fail;
		}
		if (cr != CURLE_AGAIN) {
			rc = mfs_fail(err, map_curl(cr), "receive: %s",
				      curl_easy_strerror(cr));
			goto fail;
		}
		left = until - mono_ms();
		if (left <= 0)
			return 0;
		do
			n = (size_t)poll(pfd, wake_fd >= 0 ? 2 : 1, (int)left);
		while ((int)n < 0 && errno == EINTR);
		if ((int)n < 0) {
			rc = mfs_fail(err, MFS_E_IO, "poll: %s", strerror(errno));
			goto fail;
		}
		if (wake_fd >= 0 && (pfd[1].revents & POLLIN))
			return 0;
	}
fail:
	c->broken = true;
	return rc;
}

int conn_append(char **buf, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MFS_E_INVAL;
	p = realloc(*buf, *len + (size_t)n + 1);
	if (!p)
		return MFS_E_NOMEM;
	*buf = p;
	va_start(ap, fmt);
	vsnprintf(p + *len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	*len += (size_t)n;
	return 0;
}

int conn_quote(char **buf, size_t *len, const char *s)
{
	size_t extra = 2;
	char *p;

	for (const char *q = s; *q; q++) {
		if (*q == '\r' || *q == '\n')
			return MFS_E_INVAL;
		extra += (*q == '"' || *q == '\\') ? 2 : 1;
	}
	p = realloc(*buf, *len + extra + 1);
	if (!p)
		return MFS_E_NOMEM;
	*buf = p;
	p += *len;
	*p++ = '"';
	for (const char *q = s; *q; q++) {
		if (*q == '"' || *q == '\\')
			*p++ = '\\';
		*p++ = *q;
	}
	*p++ = '"';
	*p = '\0';
	*len += extra;
	return 0;
}

int conn_start(struct imap_conn *c, const char *line, char tag[16],
	       struct mfs_error *err)
{
	char *out = NULL;
	size_t outlen = 0;
	int rc;

	if (c->broken)
		return mfs_fail(err, MFS_E_CLOSED, "connection is down");
	snprintf(tag, 16, "M%u", ++c->tagseq);
	rc = conn_append(&out, &outlen, "%s %s\r\n", tag, line);
	if (rc < 0)
		return mfs_fail(err, rc, "out of memory");
	if (c->trace)
		c->trace(c->trace_ctx, "C", out, outlen - 2);
	rc = conn_send(c, out, outlen, err);
	free(out);
	return rc;
}

int conn_finish(struct imap_conn *c, const char *tag, conn_untagged_fn fn,
		void *ctx, struct mfs_error *err)
{
	struct imap_resp *r = NULL;
	unsigned untagged = 0;
	int rc, cbrc = 0;

	for (;;) {
		rc = conn_read(c, &r, err);
		if (rc < 0)
			return rc;
		if (r->kind == IMAP_R_TAGGED && r->tag &&
		    strcmp(r->tag, tag) == 0)
			break;
		if (r->kind == IMAP_R_UNTAGGED && r->status == IMAP_S_BYE) {
			/* The server is going away; remember why, the read
			 * that follows will fail. */
			mfs_fail(err, MFS_E_CLOSED, "server said BYE: %s",
				 r->text ? r->text : "");
			c->broken = true;
		} else if (r->kind == IMAP_R_UNTAGGED && fn && cbrc == 0) {
			/* Keep reading to the tagged reply even after a
			 * callback fails, so the stream stays in step. */
			cbrc = fn(ctx, r);
		}
		imap_resp_free(r);
		r = NULL;
		if (++untagged > c->max_untagged || cbrc == MFS_E_TOOBIG) {
			/* Endless, or more than the caller will take: the
			 * rest is not read, so the stream is lost. */
			c->broken = true;
			if (cbrc)
				return mfs_fail(err, cbrc, "server response "
						"over a limit");
			return mfs_fail(err, MFS_E_TOOBIG, "more than %u "
					"responses to one command",
					c->max_untagged);
		}
	}
	switch (r->status) {
	case IMAP_S_OK:
		/* The completion's code ([COPYUID ...], [APPENDUID ...]) is
		 * the callback's business too. */
		if (fn && cbrc == 0 && r->code.n > 0)
			cbrc = fn(ctx, r);
		rc = cbrc;
		break;
	case IMAP_S_NO:
		/* RFC 5530 codes say which errno the user should see. */
		rc = MFS_E_NO;
		if (imap_atom_is(imap_list_get(&r->code, 0), "ALREADYEXISTS"))
			rc = MFS_E_EXISTS;
		else if (imap_atom_is(imap_list_get(&r->code, 0),
				      "NONEXISTENT"))
			rc = MFS_E_NOTFOUND;
		mfs_fail(err, rc, "%s", r->text ? r->text : "NO");
		break;
	default:
		rc = mfs_fail(err, MFS_E_BAD, "%s", r->text ? r->text : "BAD");
		break;
	}
	imap_resp_free(r);
	return rc;
}

int conn_wait_continuation(struct imap_conn *c, const char *tag,
			   struct mfs_error *err)
{
	struct imap_resp *r = NULL;
	unsigned untagged = 0;
	int rc;

	for (;;) {
		rc = conn_read(c, &r, err);
		if (rc < 0)
			return rc;
		if (++untagged > c->max_untagged) {
			imap_resp_free(r);
			c->broken = true;
			return mfs_fail(err, MFS_E_TOOBIG, "more than %u "
					"responses while waiting for '+'",
					c->max_untagged);
		}
		if (r->kind == IMAP_R_CONT) {
			rc = 0;
			break;
		}
		if (r->kind == IMAP_R_TAGGED && r->tag &&
		    strcmp(r->tag, tag) == 0) {
			rc = mfs_fail(err, r->status == IMAP_S_NO ? MFS_E_NO :
					   MFS_E_BAD, "%s", r->text ? r->text : "");
			break;
		}
		imap_resp_free(r);
		r = NULL;
	}
	imap_resp_free(r);
	return rc;
}

int conn_send_raw(struct imap_conn *c, const char *buf, size_t len,
		  struct mfs_error *err)
{
	return conn_send(c, buf, len, err);
}

int conn_cmd(struct imap_conn *c, const char *line, conn_untagged_fn fn,
	     void *ctx, struct mfs_error *err)
{
	char tag[16];
	int rc = conn_start(c, line, tag, err);

	return rc < 0 ? rc : conn_finish(c, tag, fn, ctx, err);
}

static const struct {
	const char *name;
	unsigned bit;
} known_caps[] = {
	{ "CONDSTORE", IMAP_CAP_CONDSTORE },
	{ "QRESYNC", IMAP_CAP_QRESYNC },
	{ "BINARY", IMAP_CAP_BINARY },
	{ "LIST-STATUS", IMAP_CAP_LIST_STATUS },
	{ "SPECIAL-USE", IMAP_CAP_SPECIAL_USE },
	{ "UIDPLUS", IMAP_CAP_UIDPLUS },
	{ "ESEARCH", IMAP_CAP_ESEARCH },
	{ "LITERAL+", IMAP_CAP_LITERALPLUS },
	{ "MOVE", IMAP_CAP_MOVE },
	{ "IDLE", IMAP_CAP_IDLE },
	{ "ENABLE", IMAP_CAP_ENABLE },
	{ "UNSELECT", IMAP_CAP_UNSELECT },
	{ "NAMESPACE", IMAP_CAP_NAMESPACE },
};

const char *imap_cap_name(unsigned bit)
{
	for (size_t k = 0; k < sizeof(known_caps) / sizeof(known_caps[0]); k++)
		if (known_caps[k].bit == bit)
			return known_caps[k].name;
	return NULL;
}

static int parse_caps(void *ctx, const struct imap_resp *r)
{
	struct imap_conn *c = ctx;

	if (!imap_atom_is(imap_list_get(&r->data, 0), "CAPABILITY"))
		return 0;
	c->caps = 0;
	c->cap_text[0] = '\0';
	for (size_t i = 1; i < r->data.n; i++) {
		const struct imap_value *v = &r->data.items[i];
		size_t used = strlen(c->cap_text);

		for (size_t k = 0; k < sizeof(known_caps) / sizeof(known_caps[0]);
		     k++)
			if (imap_atom_is(v, known_caps[k].name))
				c->caps |= known_caps[k].bit;
		/* Kept for people to read; what does not fit is left out. */
		if (v->type == IMAP_V_ATOM &&
		    used + 1 + strlen(v->str) < sizeof(c->cap_text))
			snprintf(c->cap_text + used, sizeof(c->cap_text) - used,
				 "%s%s", used ? " " : "", v->str);
	}
	return 0;
}

static char *make_url(const struct imap_opts *o)
{
	unsigned port = o->port;
	const char *scheme = o->tls == IMAP_TLS_IMPLICIT ? "imaps" : "imap";
	bool v6 = strchr(o->host, ':') != NULL;
	char *url = NULL;
	size_t len = 0;

	if (!port)
		port = o->tls == IMAP_TLS_IMPLICIT ? 993 : 143;
	if (conn_append(&url, &len, "%s://%s%s%s:%u/", scheme, v6 ? "[" : "",
			o->host, v6 ? "]" : "", port) < 0) {
		free(url);
		return NULL;
	}
	return url;
}

int imap_open(const struct imap_opts *o, struct imap_conn **out,
	      struct mfs_error *err)
{
	struct imap_conn *c = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	char *url = NULL, *secret = NULL;
	CURLcode cr;
	int rc;

	*out = NULL;
	if (o->tls == IMAP_TLS_NONE && !o->allow_plaintext)
		return mfs_fail(err, MFS_E_CONFIG,
				"refusing to log in without TLS "
				"(tls=none needs -o allow_plaintext)");
	c = calloc(1, sizeof(*c));
	if (!c)
		return mfs_fail(err, MFS_E_NOMEM, "out of memory");
	c->sock = CURL_SOCKET_BAD;
	c->max_untagged = MAX_UNTAGGED;
	c->timeout_ms = (o->timeout_s > 0 ? o->timeout_s : 30) * 1000;
	c->trace = o->trace;
	c->trace_ctx = o->trace_ctx;
	c->rbuf = malloc(RBUF_SIZE);
	c->parser = imap_parser_new(MAX_INLINE, MAX_RESPONSE);
	c->curl = curl_easy_init();
	url = make_url(o);
	if (!c->rbuf || !c->parser || !c->curl || !url) {
		rc = mfs_fail(err, MFS_E_NOMEM, "out of memory");
		goto fail;
	}
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
	/* With CONNECT_ONLY this bounds TCP, TLS and login together: a
	 * server that accepts and then stalls must not hang the caller. */
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (o->tls == IMAP_TLS_STARTTLS)
		curl_easy_setopt(c->curl, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	if (o->ca_file)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, o->ca_file);
	if (o->user)
		curl_easy_setopt(c->curl, CURLOPT_USERNAME, o->user);
	rc = secret_get(&o->secret, &secret, err);
	if (rc < 0)
		goto fail;
	if (o->secret.kind == SECRET_OAUTH2) {
		curl_easy_setopt(c->curl, CURLOPT_XOAUTH2_BEARER, secret);
		curl_easy_setopt(c->curl, CURLOPT_LOGIN_OPTIONS,
				 "AUTH=XOAUTH2");
	} else if (o->secret.kind == SECRET_PASSWORD) {
		curl_easy_setopt(c->curl, CURLOPT_PASSWORD, secret);
	} else {
		curl_easy_setopt(c->curl, CURLOPT_NETRC,
				 (long)CURL_NETRC_REQUIRED);
		if (o->netrc_file)
			curl_easy_setopt(c->curl, CURLOPT_NETRC_FILE,
					 o->netrc_file);
	}
	/* libcurl keeps its own copy: ours need not live any longer. */
	secret_free(secret);
	secret = NULL;
	cr = curl_easy_perform(c->curl);
	/* The error buffer must not outlive this frame. */
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
	if (cr != CURLE_OK) {
		rc = map_curl(cr);
		if (rc == MFS_E_AUTH)
			mfs_fail(err, rc, "%s: login as %s refused", o->host,
				 o->user ? o->user : "(netrc user)");
		else
			mfs_fail(err, rc, "%s:%u: %s%s", o->host, o->port,
				 rc == MFS_E_TLS ? "TLS: " : "",
				 errbuf[0] ? errbuf : curl_easy_strerror(cr));
		goto fail;
	}
	cr = curl_easy_getinfo(c->curl, CURLINFO_ACTIVESOCKET, &c->sock);
	if (cr != CURLE_OK || c->sock == CURL_SOCKET_BAD) {
		rc = mfs_fail(err, MFS_E_CONNECT, "no socket after connect");
		goto fail;
	}
	rc = conn_cmd(c, "CAPABILITY", parse_caps, c, err);
	if (rc < 0)
		goto fail;
	free(url);
	*out = c;
	return 0;
fail:
	secret_free(secret);
	free(url);
	imap_close(c);
	return rc;
}

struct imap_conn *conn_new_fake(const struct conn_io *io, unsigned caps)
{
	struct imap_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->io = io;
	c->sock = CURL_SOCKET_BAD;
	c->max_untagged = MAX_UNTAGGED;
	c->caps = caps;
	c->timeout_ms = 1000;
	c->rbuf = malloc(RBUF_SIZE);
	c->parser = imap_parser_new(MAX_INLINE, MAX_RESPONSE);
	if (!c->rbuf || !c->parser) {
		imap_close(c);
		return NULL;
	}
	return c;
}

void imap_close(struct imap_conn *c)
{
	if (!c)
		return;
	if (c->curl && c->sock != CURL_SOCKET_BAD && !c->broken) {
		/* Don't wait for the reply: closing is what we want anyway. */
		static const char bye[] = "Z LOGOUT\r\n";
		size_t n;

		curl_easy_send(c->curl, bye, sizeof(bye) - 1, &n);
	}
	if (c->curl)
		curl_easy_cleanup(c->curl);
	imap_parser_free(c->parser);
	free(c->rbuf);
	free(c->selected);
	free(c);
}

bool imap_is_selected(const struct imap_conn *c, const char *mailbox)
{
	return c && c->selected && strcmp(c->selected, mailbox) == 0;
}

unsigned imap_caps(const struct imap_conn *c)
{
	return c->caps;
}

const char *imap_cap_text(const struct imap_conn *c)
{
	return c->cap_text;
}

bool imap_usable(const struct imap_conn *c)
{
	return c && !c->broken;
}
