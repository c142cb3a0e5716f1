/* test_outbox_queue.c - the outbox queue (smtp/queue.c) through its
 * header, against a scripted SMTP server that the test runs on a thread:
 * implicit TLS on 127.0.0.1 with a certificate made at start, so every
 * submission goes through the real smtp_send (libcurl, certificate
 * verified) and the server decides, message by message, to accept
 * (250), refuse for now (451), refuse for good (554) or hold its answer
 * until the test lets go.  The Sent copy goes to a hook that records it
 * (or refuses it, or holds it likewise).
 *
 * What is checked is what a user sees: the status line, the files in the
 * spool (the message, its .error, the records under .state/ that
 * outbox.h documents), and what the server received.  Waits are bounded
 * polls; a "nothing happens" check waits QUIET_MS with the message
 * already due, so a queue that would act has had its chance.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "fake_imap.h"
#include "mfs_err.h"
#include "mime.h"
#include "outbox.h"

#define QUIET_MS 1000

/* Poll expr every 20 ms for at most secs seconds; the caller then checks
 * expr itself. */
#define WAIT_UNTIL(expr, secs)                                            \
	for (unsigned w_ = 0; !(expr) && w_ < (secs) * 50u; w_++)         \
	usleep(20000)

static void quiet(void)
{
	usleep(QUIET_MS * 1000);
}

/* ---- a certificate for 127.0.0.1, made at start ---- */

static char ca_path[300];

static int make_cert(const char *pem, EVP_PKEY **key_out, X509 **cert_out)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_NAME *name;
	X509_EXTENSION *ext;
	FILE *f;
	int rc = -1;

	if (!key || !x)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"127.0.0.1", -1, -1,
				   0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
				  "IP:127.0.0.1");
	if (!ext)
		goto out;
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
				  "critical,CA:TRUE");
	if (!ext)
		goto out;
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (!X509_sign(x, key, EVP_sha256()))
		goto out;
	f = fopen(pem, "w");
	if (!f)
		goto out;
	PEM_write_X509(f, x);
	if (fclose(f) != 0)
		goto out;
	*key_out = key;
	*cert_out = x;
	key = NULL;
	x = NULL;
	rc = 0;
out:
	EVP_PKEY_free(key);
	X509_free(x);
	return rc;
}

/* ---- the scripted SMTP server ---- */

/* What the server has seen. */
struct seen {
	bool holding;		/* a message waits for its answer */
	unsigned sessions;	/* TLS sessions */
	unsigned datas;		/* messages transmitted */
	unsigned accepted;	/* of those, answered 2xx */
	unsigned aborted;	/* client left while its answer was held */
	unsigned rcpts;		/* RCPT TO in the last session */
	time_t answered_at;	/* when the last answer to DATA was sent */
};

struct smtpd {
	int lfd;
	unsigned port;
	SSL_CTX *ctx;
	pthread_t thread;
	pthread_mutex_t lock;	/* guards all below */
	bool stop;
	/* The script: each end of DATA takes the next answer of script[];
	 * when they are used up, answer.  With hold, the answer waits until
	 * the test clears hold (or the client goes away). */
	const char *script[8];
	size_t nscript;
	const char *answer;
	bool hold;
	bool drop_at_mail;	/* MAIL FROM: close without a reply */
	struct seen n;
	char *last;		/* the last message transmitted, unstuffed */
	char *first;		/* the first one since the last reset */
};

static struct smtpd srv;

static void srv_reset(const char *answer)
{
	pthread_mutex_lock(&srv.lock);
	srv.nscript = 0;
	srv.answer = answer;
	srv.hold = false;
	srv.drop_at_mail = false;
	memset(&srv.n, 0, sizeof(srv.n));
	free(srv.last);
	free(srv.first);
	srv.last = srv.first = NULL;
	pthread_mutex_unlock(&srv.lock);
}

/* The answers for the next messages, in order (then srv.answer). */
static void srv_script(const char *a, const char *b)
{
	pthread_mutex_lock(&srv.lock);
	srv.nscript = 0;
	if (a)
		srv.script[srv.nscript++] = a;
	if (b)
		srv.script[srv.nscript++] = b;
	pthread_mutex_unlock(&srv.lock);
}

static void srv_hold(bool hold)
{
	pthread_mutex_lock(&srv.lock);
	srv.hold = hold;
	pthread_mutex_unlock(&srv.lock);
}

static struct seen srv_get(void)
{
	struct seen n;

	pthread_mutex_lock(&srv.lock);
	n = srv.n;
	pthread_mutex_unlock(&srv.lock);
	return n;
}

static bool srv_holding(void)
{
	return srv_get().holding;
}

static unsigned srv_datas(void)
{
	return srv_get().datas;
}

static unsigned srv_accepted(void)
{
	return srv_get().accepted;
}

/* The Message-ID line of the last (or first) message, "" if none. */
static void srv_msgid(bool first, char *buf, size_t len)
{
	const char *m, *e;

	pthread_mutex_lock(&srv.lock);
	m = first ? srv.first : srv.last;
	m = m ? strcasestr(m, "\r\nMessage-ID: ") : NULL;
	m = m ? m + 2 : NULL;
	e = m ? strstr(m, "\r\n") : NULL;
	snprintf(buf, len, "%.*s", m && e ? (int)(e - m) : 0, m ? m : "");
	pthread_mutex_unlock(&srv.lock);
}

static bool srv_last_has(const char *needle)
{
	bool has;

	pthread_mutex_lock(&srv.lock);
	has = srv.last && strstr(srv.last, needle);
	pthread_mutex_unlock(&srv.lock);
	return has;
}

struct sline {
	SSL *ssl;
	char buf[8192];
	size_t len;
};

/* One line without its CRLF into out; -1 when the client is gone. */
static int sread(struct sline *l, char *out, size_t outlen)
{
	for (;;) {
		char *nl = memchr(l->buf, '\n', l->len);
		int n;

		if (nl) {
			size_t k = (size_t)(nl - l->buf) + 1;
			size_t t = k - 1;

			if (t > 0 && l->buf[t - 1] == '\r')
				t--;
			snprintf(out, outlen, "%.*s", (int)t, l->buf);
			memmove(l->buf, l->buf + k, l->len - k);
			l->len -= k;
			return 0;
		}
		if (l->len == sizeof(l->buf))
			return -1;
		n = SSL_read(l->ssl, l->buf + l->len,
			     (int)(sizeof(l->buf) - l->len));
		if (n <= 0)
			return -1;
		l->len += (size_t)n;
	}
}

static void swrite(SSL *ssl, const char *s)
{
	SSL_write(ssl, s, (int)strlen(s));
}

/* After the final dot: the answer, held as long as the test says. */
static bool answer_data(int fd, SSL *ssl, char *msg)
{
	const char *answer;
	bool gone = false;

	pthread_mutex_lock(&srv.lock);
	srv.n.datas++;
	if (!srv.first)
		srv.first = strdup(msg);
	free(srv.last);
	srv.last = msg;
	if (srv.nscript) {
		answer = srv.script[0];
		memmove(srv.script, srv.script + 1,
			--srv.nscript * sizeof(srv.script[0]));
	} else {
		answer = srv.answer;
	}
	if (srv.hold) {
		srv.n.holding = true;
		while (srv.hold && !srv.stop) {
			struct pollfd p = { fd, POLLIN, 0 };

			pthread_mutex_unlock(&srv.lock);
			/* A client that gives up closes the connection. */
			gone = poll(&p, 1, 20) > 0;
			pthread_mutex_lock(&srv.lock);
			if (gone)
				break;
		}
		srv.n.holding = false;
	}
	if (gone) {
		srv.n.aborted++;
	} else {
		if (answer[0] == '2')
			srv.n.accepted++;
		srv.n.answered_at = time(NULL);
	}
	pthread_mutex_unlock(&srv.lock);
	if (gone)
		return false;
	swrite(ssl, answer);
	swrite(ssl, "\r\n");
	return true;
}

static void serve(int fd)
{
	struct sline l = { 0 };
	struct timeval tv = { 10, 0 };
	char line[1024];

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	l.ssl = SSL_new(srv.ctx);
	if (!l.ssl || SSL_set_fd(l.ssl, fd) != 1 || SSL_accept(l.ssl) != 1)
		goto out;
	pthread_mutex_lock(&srv.lock);
	srv.n.sessions++;
	srv.n.rcpts = 0;
	pthread_mutex_unlock(&srv.lock);
	swrite(l.ssl, "220 fake ESMTP\r\n");
	while (sread(&l, line, sizeof(line)) == 0) {
		if (strncasecmp(line, "EHLO", 4) == 0) {
			swrite(l.ssl, "250-fake\r\n250 8BITMIME\r\n");
		} else if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
			bool drop;

			pthread_mutex_lock(&srv.lock);
			drop = srv.drop_at_mail;
			pthread_mutex_unlock(&srv.lock);
			if (drop)
				goto out;
			swrite(l.ssl, "250 ok\r\n");
		} else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
			pthread_mutex_lock(&srv.lock);
			srv.n.rcpts++;
			pthread_mutex_unlock(&srv.lock);
			swrite(l.ssl, "250 ok\r\n");
		} else if (strcasecmp(line, "DATA") == 0) {
			char *msg = NULL;
			size_t len = 0;
			FILE *f = open_memstream(&msg, &len);
			bool done = false;

			if (!f)
				goto out;
			swrite(l.ssl, "354 go ahead\r\n");
			while (sread(&l, line, sizeof(line)) == 0) {
				if (strcmp(line, ".") == 0) {
					done = true;
					break;
				}
				fprintf(f, "%s\r\n",
					line[0] == '.' ? line + 1 : line);
			}
			fclose(f);
			if (!done || !answer_data(fd, l.ssl, msg)) {
				if (!done)
					free(msg);
				goto out;
			}
		} else if (strcasecmp(line, "QUIT") == 0) {
			swrite(l.ssl, "221 bye\r\n");
			break;
		} else if (strcasecmp(line, "RSET") == 0 ||
			   strcasecmp(line, "NOOP") == 0) {
			swrite(l.ssl, "250 ok\r\n");
		} else {
			swrite(l.ssl, "502 not here\r\n");
		}
	}
out:
	SSL_free(l.ssl);
	close(fd);
}

static void *srv_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p = { srv.lfd, POLLIN, 0 };
		bool stop;
		int fd;

		pthread_mutex_lock(&srv.lock);
		stop = srv.stop;
		pthread_mutex_unlock(&srv.lock);
		if (stop)
			break;
		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(srv.lfd, NULL, NULL);
		if (fd >= 0)
			serve(fd);
	}
	return NULL;
}

static int srv_start(const char *dir)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t salen = sizeof(sa);
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;

	snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", dir);
	if (make_cert(ca_path, &key, &cert) < 0)
		return -1;
	srv.ctx = SSL_CTX_new(TLS_server_method());
	if (!srv.ctx || SSL_CTX_use_certificate(srv.ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey(srv.ctx, key) != 1)
		return -1;
	X509_free(cert);
	EVP_PKEY_free(key);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv.lfd < 0 || bind(srv.lfd, (struct sockaddr *)&sa, salen) < 0 ||
	    listen(srv.lfd, 8) < 0 ||
	    getsockname(srv.lfd, (struct sockaddr *)&sa, &salen) < 0)
		return -1;
	srv.port = ntohs(sa.sin_port);
	pthread_mutex_init(&srv.lock, NULL);
	srv.answer = "250 ok";
	return pthread_create(&srv.thread, NULL, srv_main, NULL) == 0 ? 0 : -1;
}

static void srv_stop(void)
{
	pthread_mutex_lock(&srv.lock);
	srv.stop = true;
	pthread_mutex_unlock(&srv.lock);
	pthread_join(srv.thread, NULL);
	close(srv.lfd);
	SSL_CTX_free(srv.ctx);
	free(srv.last);
	free(srv.first);
	pthread_mutex_destroy(&srv.lock);
}

/* ---- the queue's hooks: the Sent copy, listing changes, log ---- */

struct saves {
	bool holding;		/* save_sent is held */
	unsigned calls;
	unsigned saved;		/* calls answered 0 */
	unsigned changed;	/* calls of the changed hook */
};

struct hooks {
	pthread_mutex_t lock;	/* guards all below */
	int save_rc;		/* what save_sent answers */
	bool save_hold;		/* hold save_sent until cleared */
	struct saves n;
	char *copy;		/* the last copy saved */
};

static struct hooks hk = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void hk_reset(int save_rc)
{
	pthread_mutex_lock(&hk.lock);
	hk.save_rc = save_rc;
	hk.save_hold = false;
	memset(&hk.n, 0, sizeof(hk.n));
	free(hk.copy);
	hk.copy = NULL;
	pthread_mutex_unlock(&hk.lock);
}

static void hk_hold(bool hold)
{
	pthread_mutex_lock(&hk.lock);
	hk.save_hold = hold;
	pthread_mutex_unlock(&hk.lock);
}

static struct saves hk_get(void)
{
	struct saves n;

	pthread_mutex_lock(&hk.lock);
	n = hk.n;
	pthread_mutex_unlock(&hk.lock);
	return n;
}

/* Does the last Sent copy hold needle? */
static bool hk_copy_has(const char *needle)
{
	bool has;

	pthread_mutex_lock(&hk.lock);
	has = hk.copy && needle[0] && strstr(hk.copy, needle);
	pthread_mutex_unlock(&hk.lock);
	return has;
}

static int save_hook(void *ctx, const char *data, size_t len,
		     struct mfs_error *err)
{
	int rc;

	(void)ctx;
	pthread_mutex_lock(&hk.lock);
	hk.n.calls++;
	hk.n.holding = hk.save_hold;
	while (hk.save_hold) {
		pthread_mutex_unlock(&hk.lock);
		usleep(20000);
		pthread_mutex_lock(&hk.lock);
	}
	hk.n.holding = false;
	rc = hk.save_rc;
	if (rc == 0) {
		hk.n.saved++;
		free(hk.copy);
		hk.copy = strndup(data, len);
	}
	pthread_mutex_unlock(&hk.lock);
	return rc ? mfs_fail(err, rc, "Sent folder not reachable") : 0;
}

static void changed_hook(void *ctx, const char *name)
{
	(void)ctx;
	(void)name;
	pthread_mutex_lock(&hk.lock);
	hk.n.changed++;
	pthread_mutex_unlock(&hk.lock);
}

static void log_hook(void *ctx, bool error, const char *msg)
{
	(void)ctx;
	if (getenv("MFS_TEST_VERBOSE"))
		fprintf(stderr, "  queue%s: %s\n", error ? " (error)" : "", msg);
}

/* ---- the spool ---- */

static char base[256];

struct spool {
	char dir[300];
	struct outbox_opts o;
	struct outbox *q;
};

static void spool_new(struct spool *s, const char *tag)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "%s/%s", base, tag);
	mkdir(s->dir, 0700);
	s->o = (struct outbox_opts){
		.dir = s->dir,
		.default_from = "alice@example.org",
		.smtp = { .host = "127.0.0.1",
			  .port = srv.port,
			  .tls = SMTP_TLS_IMPLICIT,
			  .secret = { .kind = SECRET_NETRC },
			  .ca_file = ca_path,
			  .timeout_s = 10 },
		.settle_s = 0,
		.retry_initial_s = 1,
		.retry_max_s = 60,
		.give_up_s = 3600,
		.save_sent = save_hook,
		.changed = changed_hook,
		.log = log_hook,
	};
}

static bool spool_start(struct spool *s)
{
	struct mfs_error err = { 0 };
	int rc = outbox_start(&s->o, &s->q, &err);

	if (rc < 0)
		fprintf(stderr, "outbox_start: %s\n", err.msg);
	return rc == 0;
}

static void spool_stop(struct spool *s)
{
	outbox_stop(s->q);
	s->q = NULL;
}

static bool exists(const struct spool *s, const char *name)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/%s", s->dir, name);
	return access(path, F_OK) == 0;
}

static bool file_has(const struct spool *s, const char *name,
		     const char *needle)
{
	char path[700], buf[2048];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", s->dir, name);
	f = fopen(path, "r");
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return f && strstr(buf, needle);
}

/* Write a message file the way a careful writer does (a dot name, which
 * the queue ignores, renamed into place), with its mtime age_s seconds in
 * the past (whole seconds), or now when age_s is 0; then tell the queue. */
static void put(struct spool *s, const char *name, const char *text,
		long age_s)
{
	char tmp[700], path[700];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s/.put-%s", s->dir, name);
	snprintf(path, sizeof(path), "%s/%s", s->dir, name);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
	if (age_s) {
		struct timespec t[2] = { { time(NULL) - age_s, 0 },
					 { time(NULL) - age_s, 0 } };

		utimensat(AT_FDCWD, tmp, t, 0);
	}
	rename(tmp, path);
	if (s->q)
		outbox_kick(s->q);
}

static void rm(struct spool *s, const char *name)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/%s", s->dir, name);
	unlink(path);
	outbox_forget(s->q, name);
}

static bool status_is(struct spool *s, const char *name, const char *prefix)
{
	char buf[512];

	outbox_status(s->q, name, buf, sizeof(buf));
	return strncmp(buf, prefix, strlen(prefix)) == 0;
}

static void status(struct spool *s, const char *name, char *buf, size_t len)
{
	outbox_status(s->q, name, buf, len);
}

/* "next" of a "retrying: ...; next YYYY-mm-dd HH:MM:SS" status, as epoch
 * seconds, or 0. */
static time_t status_next(const char *st)
{
	const char *p = strstr(st, "; next ");
	struct tm tm = { 0 };

	if (!p || !strptime(p + 7, "%Y-%m-%d %H:%M:%S", &tm))
		return 0;
	tm.tm_isdst = -1;
	return mktime(&tm);
}

static time_t next_of(struct spool *s, const char *name)
{
	char buf[512];

	outbox_status(s->q, name, buf, sizeof(buf));
	return status_next(buf);
}

#define MSG(subject)                                                      \
	"From: Alice <alice@example.org>\n"                               \
	"To: Bob <bob@example.org>\n"                                     \
	"Bcc: Carol <carol@example.org>\n"                                \
	"Subject: " subject "\n"                                          \
	"\n"                                                              \
	"Hello from " subject ".\n"

#define DAY (24 * 3600L)

/* ---- the cases ---- */

/* waiting -> settled -> sending (prepared) -> saving -> removed, each step
 * seen while the server or the Sent copy holds it there. */
static void test_happy_path(void)
{
	struct spool s;
	char st[512], id[300];
	struct saves h;

	srv_reset("250 2.0.0 queued as 1");
	hk_reset(0);
	spool_new(&s, "happy");
	s.o.settle_s = 3600;
	if (!spool_start(&s))
		return;
	put(&s, "a.eml", MSG("happy"), 0);
	/* Without settling it would go within a second or two. */
	WAIT_UNTIL(srv_get().sessions > 0, 3);
	status(&s, "a.eml", st, sizeof(st));
	CHECK(srv_get().sessions == 0 && strcmp(st, "queued") == 0,
	      "a file younger than settle_time waits (status '%s')", st);

	srv_hold(true);
	hk_hold(true);
	put(&s, "a.eml", MSG("happy"), DAY);
	WAIT_UNTIL(srv_holding(), 15);
	CHECK(srv_holding(), "a settled file is submitted");
	status(&s, "a.eml", st, sizeof(st));
	CHECK_STR(st, "sending", "status while the server has it");
	CHECK(srv_get().rcpts == 2, "envelope: To and Bcc (%u RCPT)",
	      srv_get().rcpts);
	srv_msgid(false, id, sizeof(id));
	CHECK(id[0] && srv_last_has("\r\nDate: ") &&
		      !srv_last_has("Bcc:") && srv_last_has("\r\nHello from"),
	      "submitted as prepared: Date and Message-ID added, Bcc out, "
	      "CRLF");

	srv_hold(false);
	WAIT_UNTIL(hk_get().holding, 15);
	status(&s, "a.eml", st, sizeof(st));
	CHECK_STR(st, "saving", "status while the Sent copy is made");
	CHECK(exists(&s, "a.eml"), "the file stays until it is saved");

	hk_hold(false);
	/* The file goes first, then its record; then the listing hook. */
	WAIT_UNTIL(!exists(&s, "a.eml") && !exists(&s, ".state/a.eml") &&
			   hk_get().changed >= 1,
		   15);
	CHECK(!exists(&s, "a.eml"), "the file is removed once saved");
	CHECK(!exists(&s, ".state/a.eml") && !exists(&s, ".state/a.eml.msg") &&
		      !exists(&s, "a.eml.error"),
	      "no record, prepared copy or .error left");
	h = hk_get();
	CHECK(h.saved == 1 && hk_copy_has(id),
	      "the Sent copy is the message that was submitted (%s)", id);
	CHECK(h.changed >= 1, "the listing was said to change");
	CHECK(srv_get().datas == 1 && srv_get().accepted == 1,
	      "submitted once");
	spool_stop(&s);
}

/* 451 twice: retrying with doubling delays, the same message each time,
 * then sent. */
static void test_retry(void)
{
	struct spool s;
	char st[512], first[300], last[300];
	time_t t, next;

	srv_reset("250 ok");
	srv_script("451 4.3.0 try again later", "451 4.3.0 try again later");
	hk_reset(0);
	spool_new(&s, "retry");
	s.o.retry_initial_s = 2;
	if (!spool_start(&s))
		return;
	put(&s, "r.eml", MSG("retry"), DAY);
	WAIT_UNTIL(status_is(&s, "r.eml", "retrying: 451"), 15);
	status(&s, "r.eml", st, sizeof(st));
	t = srv_get().answered_at;
	next = status_next(st);
	CHECK(strncmp(st, "retrying: 451 4.3.0 try again later; next ",
		      42) == 0,
	      "a 451 gives 'retrying: <reply>; next <time>' ('%s')", st);
	CHECK(next >= t + 2, "first retry at least retry_initial after "
	      "(next - reply = %lld s)", (long long)(next - t));
	CHECK(exists(&s, "r.eml") && !exists(&s, "r.eml.error"),
	      "the file stays, no .error");

	WAIT_UNTIL(next_of(&s, "r.eml") > next, 15);
	status(&s, "r.eml", st, sizeof(st));
	t = srv_get().answered_at;
	next = status_next(st);
	CHECK(srv_datas() == 2 && next >= t + 4,
	      "second retry after twice the delay (next - reply = %lld s)",
	      (long long)(next - t));

	WAIT_UNTIL(!exists(&s, "r.eml"), 20);
	CHECK(!exists(&s, "r.eml") && srv_datas() == 3 &&
		      srv_accepted() == 1 && hk_get().saved == 1,
	      "third try accepted, saved, removed (%u tries)", srv_datas());
	srv_msgid(true, first, sizeof(first));
	srv_msgid(false, last, sizeof(last));
	CHECK(first[0] && strcmp(first, last) == 0,
	      "every try carries the same Message-ID");
	spool_stop(&s);
}

/* A server that hangs up instead of answering MAIL FROM (as Dovecot's
 * submission does when its relay is down and it closes before its 421
 * is out): retrying, and the status says which reply never came. */
static void test_dropped(void)
{
	struct spool s;
	char st[512];

	srv_reset("250 ok");
	pthread_mutex_lock(&srv.lock);
	srv.drop_at_mail = true;
	pthread_mutex_unlock(&srv.lock);
	hk_reset(0);
	spool_new(&s, "dropped");
	s.o.retry_initial_s = 1;
	if (!spool_start(&s))
		return;
	put(&s, "d.eml", MSG("dropped"), DAY);
	WAIT_UNTIL(status_is(&s, "d.eml", "retrying"), 15);
	status(&s, "d.eml", st, sizeof(st));
	CHECK(strncmp(st, "retrying: no reply to MAIL FROM: ", 33) == 0 &&
		      strstr(st, "; next "),
	      "a hang-up at MAIL FROM gives 'retrying: no reply to MAIL FROM:"
	      " <why>; next <time>' ('%s')", st);
	CHECK(srv_datas() == 0, "nothing was transmitted");
	pthread_mutex_lock(&srv.lock);
	srv.drop_at_mail = false;
	pthread_mutex_unlock(&srv.lock);
	WAIT_UNTIL(!exists(&s, "d.eml"), 20);
	CHECK(!exists(&s, "d.eml") && srv_accepted() == 1,
	      "once the server answers it is sent, once (%u tries)",
	      srv_datas());
	spool_stop(&s);
}

/* 554: failed at once, with a .error, never tried again. */
static void test_permanent(void)
{
	struct spool s;
	char st[512];

	srv_reset("554 5.7.1 refused for good");
	hk_reset(0);
	spool_new(&s, "perm");
	if (!spool_start(&s))
		return;
	put(&s, "p.eml", MSG("permanent"), DAY);
	WAIT_UNTIL(status_is(&s, "p.eml", "failed"), 15);
	status(&s, "p.eml", st, sizeof(st));
	CHECK_STR(st, "failed: 554 5.7.1 refused for good",
		  "a 554 gives 'failed: <reply>'");
	CHECK(file_has(&s, "p.eml.error", "failed: 554 5.7.1 refused"),
	      "p.eml.error says why");
	CHECK(exists(&s, "p.eml"), "the message stays");
	outbox_kick(s.q);
	quiet();
	CHECK(srv_datas() == 1 && hk_get().calls == 0,
	      "not tried again, nothing saved (%u tries)", srv_datas());
	spool_stop(&s);
}

/* give_up_after: temporary failures end in "failed" once it has passed. */
static void test_give_up(void)
{
	struct spool s;
	char st[512];
	unsigned n;

	srv_reset("421 4.4.2 closing, busy");
	hk_reset(0);
	spool_new(&s, "giveup");
	s.o.give_up_s = 2;
	if (!spool_start(&s))
		return;
	put(&s, "g.eml", MSG("give up"), DAY);
	WAIT_UNTIL(status_is(&s, "g.eml", "failed"), 20);
	status(&s, "g.eml", st, sizeof(st));
	n = srv_datas();
	CHECK(strncmp(st, "failed: 421 4.4.2 closing", 25) == 0 && n >= 2,
	      "retried, then given up after give_up_after ('%s', %u tries)",
	      st, n);
	CHECK(file_has(&s, "g.eml.error", "failed: 421"),
	      "given up: a .error");
	outbox_kick(s.q);
	quiet();
	CHECK(srv_datas() == n, "no try after giving up");
	spool_stop(&s);
}

/* A file open for writing is never picked up; closing it sends it. */
static void test_writing(void)
{
	struct spool s;

	srv_reset("250 ok");
	hk_reset(0);
	spool_new(&s, "writing");
	if (!spool_start(&s))
		return;
	CHECK(outbox_writing(s.q, "w.eml", true) == 0, "a writer registers");
	put(&s, "w.eml", MSG("written"), DAY);
	quiet();
	CHECK(srv_get().sessions == 0 && status_is(&s, "w.eml", "queued"),
	      "an open file, settled or not, is not sent");
	outbox_writing(s.q, "w.eml", false);
	WAIT_UNTIL(!exists(&s, "w.eml"), 15);
	CHECK(!exists(&s, "w.eml") && srv_accepted() == 1,
	      "sent once its writer closed it");
	spool_stop(&s);
}

/* A failed write (ENOSPC) leaves a version that is never sent; writing
 * it again sends the new one. */
static void test_write_failed(void)
{
	struct spool s;
	char st[512];

	srv_reset("250 ok");
	hk_reset(0);
	spool_new(&s, "wfail");
	if (!spool_start(&s))
		return;
	outbox_writing(s.q, "x.eml", true);
	/* Cut where nothing shows it: only the failed write tells. */
	put(&s, "x.eml",
	    "From: Alice <alice@example.org>\nTo: Bob <bob@example.org>\n"
	    "Subject: cut\n\nThe first half of a sent",
	    DAY);
	outbox_write_failed(s.q, "x.eml", ENOSPC);
	outbox_writing(s.q, "x.eml", false);
	outbox_kick(s.q);
	quiet();
	status(&s, "x.eml", st, sizeof(st));
	CHECK_STR(st, "failed: not sent: writing it failed: No space left on "
		  "device", "status of a file whose write failed");
	CHECK(file_has(&s, "x.eml.error", "writing it failed"),
	      "a .error beside it");
	CHECK(srv_get().sessions == 0, "the incomplete file is not sent");

	outbox_writing(s.q, "x.eml", true);
	put(&s, "x.eml", MSG("rewritten"), DAY - 10);
	outbox_writing(s.q, "x.eml", false);
	WAIT_UNTIL(!exists(&s, "x.eml"), 15);
	CHECK(!exists(&s, "x.eml") && srv_accepted() == 1 &&
		      srv_last_has("Hello from rewritten."),
	      "written again in full: sent");
	CHECK(!exists(&s, "x.eml.error"), "its .error gone with it");
	spool_stop(&s);
}

/* rm of a message that waits (to settle, to be retried, after failing),
 * and of one the server is receiving. */
static void test_forget(void)
{
	struct spool s;

	srv_reset("451 4.3.0 later");
	hk_reset(0);
	spool_new(&s, "forget");
	s.o.retry_initial_s = 5;
	if (!spool_start(&s))
		return;

	put(&s, "r.eml", MSG("retrying, then removed"), DAY);
	WAIT_UNTIL(status_is(&s, "r.eml", "retrying"), 15);
	CHECK(exists(&s, ".state/r.eml") && exists(&s, ".state/r.eml.msg"),
	      "a retrying message has its record and prepared copy");
	rm(&s, "r.eml");
	CHECK(!exists(&s, ".state/r.eml") && !exists(&s, ".state/r.eml.msg"),
	      "rm of a waiting message drops its record and prepared copy");

	srv_reset("554 5.1.1 no such user");
	put(&s, "f.eml", MSG("failed, then removed"), DAY);
	WAIT_UNTIL(exists(&s, "f.eml.error"), 15);
	rm(&s, "f.eml");
	CHECK(!exists(&s, "f.eml.error") && !exists(&s, ".state/f.eml"),
	      "rm of a failed message takes its .error and record");

	srv_reset("250 ok");
	srv_hold(true);
	put(&s, "c.eml", MSG("cancelled mid-send"), DAY);
	WAIT_UNTIL(srv_holding(), 15);
	rm(&s, "c.eml");
	WAIT_UNTIL(srv_get().aborted == 1, 15);
	CHECK(srv_get().aborted == 1 && srv_accepted() == 0,
	      "rm while the server has the message: the submission is "
	      "abandoned before the server accepts");
	srv_hold(false);
	WAIT_UNTIL(!exists(&s, ".state/c.eml"), 15);
	CHECK(!exists(&s, ".state/c.eml") && hk_get().calls == 0,
	      "cancelled: no record, no Sent copy");
	spool_stop(&s);
}

/* outbox_stop and outbox_start on the same spool: what was pending goes
 * on, and nothing the server accepted is sent again. */
static void test_restart(void)
{
	struct spool s;
	char a[300], b[300];

	/* Sent, but the Sent copy failed: after a restart only the copy is
	 * retried. */
	srv_reset("250 ok");
	hk_reset(MFS_E_TEMPFAIL);
	spool_new(&s, "restart");
	if (!spool_start(&s))
		return;
	put(&s, "s.eml", MSG("saved after restart"), DAY);
	WAIT_UNTIL(status_is(&s, "s.eml", "retrying: saving to Sent"), 15);
	CHECK(status_is(&s, "s.eml", "retrying: saving to Sent: Sent folder "
			"not reachable; next "),
	      "accepted, Sent copy refused: retrying the copy");
	spool_stop(&s);
	hk_reset(0);
	if (!spool_start(&s))
		return;
	WAIT_UNTIL(!exists(&s, "s.eml"), 15);
	CHECK(!exists(&s, "s.eml") && hk_get().saved == 1,
	      "after a restart the Sent copy is made and the file goes");
	CHECK(srv_datas() == 1 && srv_accepted() == 1,
	      "and the message was not submitted again (%u)", srv_datas());

	/* Retrying when stopped: sent once by the next start. */
	srv_reset("451 4.3.0 later");
	hk_reset(0);
	put(&s, "r.eml", MSG("retried after restart"), DAY);
	WAIT_UNTIL(status_is(&s, "r.eml", "retrying"), 15);
	spool_stop(&s);
	pthread_mutex_lock(&srv.lock);
	srv.answer = "250 ok";
	pthread_mutex_unlock(&srv.lock);
	if (!spool_start(&s))
		return;
	WAIT_UNTIL(!exists(&s, "r.eml"), 15);
	CHECK(!exists(&s, "r.eml") && srv_datas() == 2 &&
		      srv_accepted() == 1 && hk_get().saved == 1,
	      "a retrying message is sent by the next start, once");

	/* Stopped while the server had it (the answer never came): the next
	 * start sends it again, with the same Message-ID. */
	srv_reset("250 ok");
	hk_reset(0);
	srv_hold(true);
	put(&s, "h.eml", MSG("interrupted by stop"), DAY);
	WAIT_UNTIL(srv_holding(), 15);
	spool_stop(&s);
	WAIT_UNTIL(srv_get().aborted == 1, 5);
	CHECK(srv_get().aborted == 1 && srv_accepted() == 0 &&
		      exists(&s, "h.eml"),
	      "stop abandons a submission under way; the file stays");
	srv_hold(false);
	if (!spool_start(&s))
		return;
	WAIT_UNTIL(!exists(&s, "h.eml"), 15);
	srv_msgid(true, a, sizeof(a));
	srv_msgid(false, b, sizeof(b));
	CHECK(!exists(&s, "h.eml") && srv_accepted() == 1 &&
		      srv_datas() == 2 && a[0] && strcmp(a, b) == 0,
	      "sent again after the restart, as the same message");
	spool_stop(&s);
}

int main(int argc, char **argv)
{
	const char *t = getenv("TMPDIR");

	/* GSlice's caches hide leaked GObjects from LeakSanitizer, and GLib
	 * reads G_SLICE before main: run again with it set. */
	(void)argc;
	if (!getenv("G_SLICE")) {
		setenv("G_SLICE", "always-malloc", 1);
		execv("/proc/self/exe", argv);
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(base, sizeof(base), "%s/mfs-outbox-XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	mime_init();
	if (srv_start(base) < 0) {
		CHECK(false, "the scripted SMTP server starts");
		ERR_print_errors_fp(stderr);
		test_rm_rf(base);
		return check_done();
	}
	test_happy_path();
	test_retry();
	test_dropped();
	test_permanent();
	test_give_up();
	test_writing();
	test_write_failed();
	test_forget();
	test_restart();
	srv_stop();
	hk_reset(0);
	mime_shutdown();
	curl_global_cleanup();
	test_rm_rf(base);
	return check_done();
}
