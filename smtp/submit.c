/* submit.c - one submission over libcurl's SMTP.  curl does the dialogue;
 * its debug stream tells us the server's words for each recipient. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp.h"

struct upload {
	const char *data;
	size_t len, pos;
};

static size_t read_cb(char *buf, size_t size, size_t nmemb, void *ctx)
{
	struct upload *u = ctx;
	size_t n = size * nmemb;

	if (n > u->len - u->pos)
		n = u->len - u->pos;
	memcpy(buf, u->data + u->pos, n);
	u->pos += n;
	return n;
}

/* Pairs each RCPT TO we send with the reply that follows it. */
struct dialogue {
	struct smtp_result *res;
	char rcpt[256];		/* address of the RCPT awaiting its reply */
	char last[256];		/* last reply line before QUIT */
	char cmd[16];		/* verb of the last command sent */
	bool quitting;		/* QUIT sent: its "221 Bye" is no reason */
};

/* Remember which command a reply is awaited for, by its verb only: the
 * line after AUTH is the credentials, which must never be kept. */
static void note_verb(struct dialogue *d, const char *line)
{
	static const char *const verbs[] = {
		"EHLO", "HELO", "STARTTLS", "AUTH", "MAIL FROM", "RCPT TO",
		"DATA", "BDAT", "RSET", "NOOP",
	};

	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		size_t n = strlen(verbs[i]);

		if (strncasecmp(line, verbs[i], n) == 0 &&
		    (line[n] == '\0' || line[n] == ' ' || line[n] == ':')) {
			snprintf(d->cmd, sizeof(d->cmd), "%s", verbs[i]);
			return;
		}
	}
}

static int debug_cb(CURL *h, curl_infotype type, char *data, size_t size,
		    void *ctx)
{
	struct dialogue *d = ctx;
	char line[256];
	size_t n = size < sizeof(line) - 1 ? size : sizeof(line) - 1;

	(void)h;
	if (type != CURLINFO_HEADER_OUT && type != CURLINFO_HEADER_IN)
		return 0;
	memcpy(line, data, n);
	line[n] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (type == CURLINFO_HEADER_OUT) {
		/* curl says QUIT on its way out of a failed transfer too, and
		 * the reason for the failure is the reply before that. */
		if (strncmp(line, "QUIT", 4) == 0)
			d->quitting = true;
		else
			note_verb(d, line);
		if (strncmp(line, "RCPT TO:<", 9) == 0)
			snprintf(d->rcpt, sizeof(d->rcpt), "%.*s",
				 (int)strcspn(line + 9, ">"), line + 9);
		return 0;
	}
	if (d->quitting)
		return 0;
	snprintf(d->last, sizeof(d->last), "%s", line);
	if (d->rcpt[0] && (line[0] == '4' || line[0] == '5') &&
	    (line[3] == ' ' || line[3] == '\0')) {
		struct smtp_result *r = d->res;
		size_t used = strlen(r->rejected);

		snprintf(r->rejected + used, sizeof(r->rejected) - used,
			 "%s%s: %s", used ? "; " : "", d->rcpt, line);
		r->nrejected++;
	}
	if (line[3] == ' ' || line[3] == '\0')
		d->rcpt[0] = '\0';
	return 0;
}

static int classify(CURLcode cr, long code)
{
	if (code >= 400 && code < 500)
		return MFS_E_TEMPFAIL;
	if (code >= 500)
		return code == 535 ? MFS_E_AUTH : MFS_E_REJECTED;
	switch (cr) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		return MFS_E_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return MFS_E_TIMEOUT;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_USE_SSL_FAILED:
		return MFS_E_TLS;
	case CURLE_LOGIN_DENIED:
		return MFS_E_AUTH;
	case CURLE_OUT_OF_MEMORY:
		return MFS_E_NOMEM;
	default:
		/* Dropped connections, handshakes cut short: try again. */
		return MFS_E_CLOSED;
	}
}

/* Also called while waiting for a silent server, so a cancel does not
 * wait for the timeout. */
static int progress_cb(void *p, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	const struct smtp_opts *o = p;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return o->cancelled(o->cancel_ctx) ? 1 : 0;
}

/* A handle for o's server: URL, TLS, timeouts and the login, with a
 * secret asked of o->secret now.  0 or a negative mfs_err (the words in
 * res->reply too); *out is the caller's either way (NULL on failure). */
static int session_new(const struct smtp_opts *o, char *errbuf,
		       struct smtp_result *res, CURL **out,
		       struct mfs_error *err)
{
	unsigned port = o->port;
	char *url = NULL, *secret = NULL;
	CURL *h = curl_easy_init();
	int rc = 0;

	*out = h;
	if (!port)
		port = o->tls == SMTP_TLS_IMPLICIT ? 465 : 587;
	if (asprintf(&url, "%s://%s:%u/", o->tls == SMTP_TLS_IMPLICIT ?
		     "smtps" : "smtp", o->host, port) < 0)
		url = NULL;
	if (!url || !h) {
		rc = mfs_fail(err, MFS_E_NOMEM, "out of memory");
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, o->timeout_s);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, o->timeout_s * 10);
	if (o->tls == SMTP_TLS_STARTTLS)
		curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	if (o->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
	if (o->user)
		curl_easy_setopt(h, CURLOPT_USERNAME, o->user);
	rc = secret_get(&o->secret, &secret, err);
	if (rc < 0) {
		snprintf(res->reply, sizeof(res->reply), "%s", err ?
			 err->msg : mfs_strerror(rc));
		goto out;
	}
	if (o->secret.kind == SECRET_OAUTH2) {
		curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, secret);
		curl_easy_setopt(h, CURLOPT_LOGIN_OPTIONS, "AUTH=XOAUTH2");
	} else if (o->secret.kind == SECRET_PASSWORD) {
		curl_easy_setopt(h, CURLOPT_PASSWORD, secret);
	}
out:
	/* libcurl keeps its own copies: ours need not live any longer. */
	secret_free(secret);
	free(url);
	return rc;
}

/* res->reply and the mfs_err for a transfer that did not succeed. */
static int failed(CURLcode cr, long code, const struct dialogue *d,
		  const char *errbuf, struct smtp_result *res,
		  struct mfs_error *err)
{
	int rc = classify(cr, code);

	if (code >= 400 && d->last[0])
		snprintf(res->reply, sizeof(res->reply), "%s", d->last);
	else if ((cr == CURLE_RECV_ERROR || cr == CURLE_GOT_NOTHING) &&
		 d->cmd[0])
		/* The server went away between replies: say which reply
		 * never came, as curl's words do not. */
		snprintf(res->reply, sizeof(res->reply), "no reply to %s: %s",
			 d->cmd, errbuf[0] ? errbuf : curl_easy_strerror(cr));
	else
		snprintf(res->reply, sizeof(res->reply), "%s",
			 errbuf[0] ? errbuf : curl_easy_strerror(cr));
	return mfs_fail(err, rc, "%s", res->reply);
}

int smtp_login(const struct smtp_opts *o, struct smtp_result *res,
	       struct mfs_error *err)
{
	struct dialogue d = { .res = res };
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = NULL;
	CURLcode cr;
	long code = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	rc = session_new(o, errbuf, res, &h, err);
	if (rc < 0)
		goto out;
	/* The protocol's connect phase is EHLO, STARTTLS and AUTH. */
	curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
	curl_easy_setopt(h, CURLOPT_DEBUGDATA, &d);
	curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
	cr = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	res->code = (int)code;
	if (cr != CURLE_OK)
		rc = failed(cr, code, &d, errbuf, res, err);
out:
	if (h) {
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
		curl_easy_cleanup(h);
	}
	return rc;
}

int smtp_send(const struct smtp_opts *o, const struct smtp_msg *m,
	      struct smtp_result *res, struct mfs_error *err)
{
	struct upload up = { m->data, m->len, 0 };
	struct dialogue d = { .res = res };
	struct curl_slist *rcpts = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	char *from = NULL;
	CURL *h = NULL;
	CURLcode cr;
	long code = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	if (asprintf(&from, "<%s>", m->from) < 0) {
		from = NULL;
		rc = mfs_fail(err, MFS_E_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < m->nrcpt; i++) {
		struct curl_slist *n = curl_slist_append(rcpts, m->rcpt[i]);

		if (!n) {
			rc = mfs_fail(err, MFS_E_NOMEM, "out of memory");
			goto out;
		}
		rcpts = n;
	}
	rc = session_new(o, errbuf, res, &h, err);
	if (rc < 0)
		goto out;
	curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpts);
	/* One refused recipient must not stop delivery to the others. */
	curl_easy_setopt(h, CURLOPT_MAIL_RCPT_ALLLOWFAILS, 1L);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(h, CURLOPT_READDATA, &up);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)m->len);
	curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
	curl_easy_setopt(h, CURLOPT_DEBUGDATA, &d);
	curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
	if (o->cancelled) {
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)o);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	}
	cr = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	res->code = (int)code;
	if (cr == CURLE_OK) {
		rc = 0;
		goto out;
	}
	if (cr == CURLE_ABORTED_BY_CALLBACK) {
		snprintf(res->reply, sizeof(res->reply), "cancelled");
		rc = mfs_fail(err, MFS_E_CANCELLED, "cancelled");
		goto out;
	}
	rc = failed(cr, code, &d, errbuf, res, err);
out:
	if (h) {
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
		curl_easy_cleanup(h);
	}
	curl_slist_free_all(rcpts);
	free(from);
	return rc;
}
