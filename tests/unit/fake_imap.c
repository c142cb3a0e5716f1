/* fake_imap.c - the scripted IMAP server of the unit tests (fake_imap.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <dirent.h>
#include <unistd.h>

#include "fake_imap.h"
#include "mfs_err.h"

#define MAXCONN 16
#define MAXCMDS 4000

struct fmsg {
	bool has;
	char flags[128];
	uint64_t modseq;	/* of its last change */
	uint64_t gone;		/* MODSEQ of its expunge; 0: never */
};

struct fmbox {
	char name[64];
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t modseq;	/* HIGHESTMODSEQ */
	struct fmsg m[FAKE_MAXUID + 1];
};

struct fake_imap {
	int lfd;
	unsigned port;
	char caps[200];
	pthread_t thread;
	pthread_t conns[MAXCONN];
	unsigned nconns;
	pthread_mutex_t lock;	/* guards all below */
	bool stop;
	struct fmbox mb[FAKE_NMBOX];
	int nmb;
	bool refuse[FAKE_MAXUID + 1];	/* UID MOVE of these gets NO */
	unsigned delay_ms;		/* before UID MOVE / body answers */
	char *cmds[MAXCMDS];		/* commands received, without tag */
	unsigned ncmds;
};

struct conn {
	struct fake_imap *f;
	int fd;
};

static int mbox_locked(struct fake_imap *f, const char *name)
{
	for (int i = 0; i < f->nmb; i++)
		if (strcmp(f->mb[i].name, name) == 0)
			return i;
	return -1;
}

/* Parse a UID set ("3,5:7", "4:*") into uids[]; * is the highest UID
 * present (none: 0, which matches nothing).  False when malformed. */
static bool parse_set(const char *s, uint32_t star, bool uids[])
{
	memset(uids, 0, (FAKE_MAXUID + 1) * sizeof(bool));
	while (*s) {
		unsigned long lo, hi;
		char *end;

		if (*s == '*') {
			lo = star;
			end = (char *)s + 1;
		} else {
			lo = strtoul(s, &end, 10);
			if (end == s || lo == 0)
				return false;
		}
		hi = lo;
		s = end;
		if (*s == ':') {
			if (s[1] == '*') {
				hi = star;
				end = (char *)s + 2;
			} else {
				hi = strtoul(s + 1, &end, 10);
				if (end == s + 1 || hi == 0)
					return false;
			}
			s = end;
		}
		if (lo > hi) {
			unsigned long t = lo;

			lo = hi;
			hi = t;
		}
		for (unsigned long u = lo; u <= hi && u <= FAKE_MAXUID; u++)
			uids[u] = u > 0;
		if (*s == ',')
			s++;
		else if (*s)
			return false;
	}
	return true;
}

/* "\"name\"" at s: the name into out; the rest after it, or NULL. */
static const char *quoted(const char *s, char *out, size_t len)
{
	const char *e;

	if (*s != '"' || !(e = strchr(s + 1, '"')))
		return NULL;
	snprintf(out, len, "%.*s", (int)(e - s - 1), s + 1);
	return e + 1;
}

static void say(int fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void say(int fd, const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		send(fd, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf),
		     MSG_NOSIGNAL);
}

const char *fake_imap_body(uint32_t uid, char *buf, size_t len)
{
	snprintf(buf, len,
		 "Date: Mon, 01 Jun 2026 10:00:00 +0000\r\n"
		 "From: Carol <carol@example.org>\r\n"
		 "Subject: Message %u\r\n"
		 "Message-ID: <%u@example.org>\r\n"
		 "\r\n"
		 "Body of message %u.\r\n",
		 uid, uid, uid);
	return buf;
}

static uint32_t max_uid(const struct fmbox *m)
{
	for (uint32_t u = FAKE_MAXUID; u > 0; u--)
		if (m->m[u].has)
			return u;
	return 0;
}

static unsigned seqno(const struct fmbox *m, uint32_t uid)
{
	unsigned n = 0;

	for (uint32_t u = 1; u <= uid; u++)
		n += m->m[u].has;
	return n;
}

/* UID FETCH of metadata, of changes (CHANGEDSINCE) or of bodies. */
static void fetch(struct fake_imap *f, int fd, const char *tag,
		  const char *cmd, int sel)
{
	struct fmbox *m = &f->mb[sel];
	bool uids[FAKE_MAXUID + 1];
	char set[4096], body[1024];
	const char *cs = strstr(cmd, "(CHANGEDSINCE ");
	uint64_t since = cs ? strtoull(cs + 14, NULL, 10) : 0;
	bool vanished = cs && strstr(cs, " VANISHED");
	bool full = strstr(cmd, "RFC822.SIZE") != NULL;
	bool hdr = strstr(cmd, "HEADER.FIELDS") != NULL;
	bool raw = strstr(cmd, "BODY.PEEK[]") != NULL;
	bool modseq = strstr(cmd, " MODSEQ") != NULL;
	unsigned delay;

	pthread_mutex_lock(&f->lock);
	delay = f->delay_ms;
	if (sscanf(cmd, "UID FETCH %4095s", set) != 1 ||
	    !parse_set(set, max_uid(m), uids)) {
		pthread_mutex_unlock(&f->lock);
		say(fd, "%s BAD bad set\r\n", tag);
		return;
	}
	if (vanished) {
		char out[4096] = "";
		size_t len = 0;

		for (uint32_t u = 1; u <= FAKE_MAXUID; u++)
			if (uids[u] && !m->m[u].has && m->m[u].gone > since)
				len += (size_t)snprintf(out + len,
							sizeof(out) - len,
							"%s%u", len ? "," : "",
							u);
		if (len)
			say(fd, "* VANISHED (EARLIER) %s\r\n", out);
	}
	for (uint32_t u = 1; u <= FAKE_MAXUID; u++) {
		char ms[64] = "";
		const char *b;

		if (!uids[u] || !m->m[u].has || (cs && m->m[u].modseq <= since))
			continue;
		if (modseq)
			snprintf(ms, sizeof(ms), " MODSEQ (%llu)",
				 (unsigned long long)m->m[u].modseq);
		b = fake_imap_body(u, body, sizeof(body));
		if (raw) {
			pthread_mutex_unlock(&f->lock);
			usleep(delay * 1000);
			say(fd, "* %u FETCH (UID %u BODY[] {%zu}\r\n%s)\r\n",
			    seqno(m, u), u, strlen(b), b);
			pthread_mutex_lock(&f->lock);
			continue;
		}
		say(fd, "* %u FETCH (UID %u FLAGS (%s)%s", seqno(m, u), u,
		    m->m[u].flags, ms);
		if (full)
			say(fd, " RFC822.SIZE %zu INTERNALDATE "
				"\"01-Jun-2026 10:00:00 +0000\"",
			    strlen(b));
		if (hdr)
			say(fd, " BODY[HEADER.FIELDS (DATE FROM SUBJECT "
				"MESSAGE-ID)] {%zu}\r\n%.*s",
			    (size_t)(strstr(b, "\r\n\r\n") + 4 - b),
			    (int)(strstr(b, "\r\n\r\n") + 4 - b), b);
		say(fd, ")\r\n");
	}
	pthread_mutex_unlock(&f->lock);
	say(fd, "%s OK fetched\r\n", tag);
}

/* One command of a connection whose selected mailbox is *sel. */
static bool command(struct fake_imap *f, int fd, const char *tag,
		    const char *cmd, int *sel)
{
	char name[100], set[4096];
	bool uids[FAKE_MAXUID + 1];

	pthread_mutex_lock(&f->lock);
	if (f->ncmds < MAXCMDS)
		f->cmds[f->ncmds++] = strdup(cmd);
	pthread_mutex_unlock(&f->lock);
	if (strcasecmp(cmd, "CAPABILITY") == 0) {
		say(fd, "* CAPABILITY %s\r\n%s OK done\r\n", f->caps, tag);
	} else if (strncasecmp(cmd, "LOGIN ", 6) == 0 ||
		   strcasecmp(cmd, "NOOP") == 0) {
		say(fd, "%s OK done\r\n", tag);
	} else if (strcasecmp(cmd, "LOGOUT") == 0) {
		say(fd, "* BYE bye\r\n%s OK done\r\n", tag);
		return false;
	} else if (strcasecmp(cmd, "ENABLE QRESYNC") == 0 &&
		   strstr(f->caps, "QRESYNC")) {
		say(fd, "* ENABLED QRESYNC\r\n%s OK enabled\r\n", tag);
	} else if (strcasecmp(cmd, "NAMESPACE") == 0 &&
		   strstr(f->caps, "NAMESPACE")) {
		say(fd, "* NAMESPACE ((\"INBOX/\" \"/\")) NIL NIL\r\n"
			"%s OK done\r\n", tag);
	} else if (strncasecmp(cmd, "LIST \"\" \"*\"", 11) == 0) {
		pthread_mutex_lock(&f->lock);
		for (int i = 0; i < f->nmb; i++)
			say(fd, "* LIST (\\HasNoChildren) \"/\" \"%s\"\r\n",
			    f->mb[i].name);
		pthread_mutex_unlock(&f->lock);
		say(fd, "%s OK listed\r\n", tag);
	} else if ((strncasecmp(cmd, "SELECT ", 7) == 0 ||
		    strncasecmp(cmd, "EXAMINE ", 8) == 0) &&
		   quoted(strchr(cmd, ' ') + 1, name, sizeof(name))) {
		struct fmbox *m;
		unsigned n = 0;

		pthread_mutex_lock(&f->lock);
		*sel = mbox_locked(f, name);
		if (*sel < 0) {
			pthread_mutex_unlock(&f->lock);
			say(fd, "%s NO no such mailbox\r\n", tag);
			return true;
		}
		m = &f->mb[*sel];
		for (unsigned u = 1; u <= FAKE_MAXUID; u++)
			n += m->m[u].has;
		say(fd, "* %u EXISTS\r\n* OK [UIDVALIDITY %u] ok\r\n"
			"* OK [UIDNEXT %u] ok\r\n",
		    n, m->uidvalidity, m->uidnext);
		if (strstr(cmd, "(CONDSTORE)"))
			say(fd, "* OK [HIGHESTMODSEQ %llu] ok\r\n",
			    (unsigned long long)m->modseq);
		pthread_mutex_unlock(&f->lock);
		say(fd, "%s OK done\r\n", tag);
	} else if (*sel >= 0 && strncmp(cmd, "UID FETCH ", 10) == 0) {
		fetch(f, fd, tag, cmd, *sel);
	} else if (*sel >= 0 && sscanf(cmd, "UID MOVE %4095s", set) == 1 &&
		   parse_set(set, 0, uids) &&
		   quoted(cmd + 10 + strlen(set), name, sizeof(name)) &&
		   fake_imap_mbox_by_name(f, name) >= 0) {
		bool refused = false;
		unsigned delay;
		int to;

		pthread_mutex_lock(&f->lock);
		for (unsigned u = 1; u <= FAKE_MAXUID; u++)
			refused |= uids[u] && f->refuse[u];
		delay = f->delay_ms;
		pthread_mutex_unlock(&f->lock);
		usleep(delay * 1000);
		if (refused) {
			say(fd, "%s NO [CANNOT] refused by the test\r\n", tag);
			return true;
		}
		pthread_mutex_lock(&f->lock);
		to = mbox_locked(f, name);
		for (unsigned u = 1; u <= FAKE_MAXUID; u++) {
			struct fmsg *s = &f->mb[*sel].m[u];

			if (!uids[u] || !s->has)
				continue;
			f->mb[to].m[u] = *s;
			f->mb[to].m[u].modseq = ++f->mb[to].modseq;
			if (f->mb[to].uidnext <= u)
				f->mb[to].uidnext = u + 1;
			s->has = false;
			s->gone = ++f->mb[*sel].modseq;
		}
		pthread_mutex_unlock(&f->lock);
		say(fd, "%s OK moved\r\n", tag);
	} else if (*sel >= 0 &&
		   sscanf(cmd, "UID STORE %4095s", set) == 1 &&
		   parse_set(set, 0, uids)) {
		say(fd, "%s OK stored\r\n", tag);
	} else if (*sel >= 0 &&
		   sscanf(cmd, "UID EXPUNGE %4095s", set) == 1 &&
		   parse_set(set, 0, uids)) {
		pthread_mutex_lock(&f->lock);
		for (unsigned u = 1; u <= FAKE_MAXUID; u++) {
			struct fmsg *s = &f->mb[*sel].m[u];

			if (uids[u] && s->has) {
				s->has = false;
				s->gone = ++f->mb[*sel].modseq;
			}
		}
		pthread_mutex_unlock(&f->lock);
		say(fd, "%s OK expunged\r\n", tag);
	} else if (*sel >= 0 &&
		   sscanf(cmd, "UID SEARCH UID %4095s", set) == 1 &&
		   parse_set(set, 0, uids)) {
		char out[4096] = "* SEARCH";
		size_t len = strlen(out);

		pthread_mutex_lock(&f->lock);
		for (unsigned u = 1; u <= FAKE_MAXUID; u++)
			if (uids[u] && f->mb[*sel].m[u].has)
				len += (size_t)snprintf(out + len,
							sizeof(out) - len,
							" %u", u);
		pthread_mutex_unlock(&f->lock);
		say(fd, "%s\r\n%s OK searched\r\n", out, tag);
	} else {
		say(fd, "%s BAD not in the script\r\n", tag);
	}
	return true;
}

static bool stopping(struct fake_imap *f)
{
	bool stop;

	pthread_mutex_lock(&f->lock);
	stop = f->stop;
	pthread_mutex_unlock(&f->lock);
	return stop;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct fake_imap *f = c->f;
	int fd = c->fd;
	char buf[8192];
	size_t len = 0;
	int sel = -1;

	free(c);
	say(fd, "* OK fake IMAP ready\r\n");
	while (!stopping(f)) {
		struct pollfd p = { fd, POLLIN, 0 };
		char *nl;
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			char *sp;
			bool more;

			*nl = '\0';
			if (nl > buf && nl[-1] == '\r')
				nl[-1] = '\0';
			sp = strchr(buf, ' ');
			more = !sp ||
			       (*sp = '\0', command(f, fd, buf, sp + 1, &sel));
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len + 1);
			if (!more)
				goto out;
		}
		if (len == sizeof(buf) - 1)
			break;
	}
out:
	close(fd);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct fake_imap *f = arg;

	while (!stopping(f)) {
		struct pollfd p = { f->lfd, POLLIN, 0 };
		struct conn *c;
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		c = malloc(sizeof(*c));
		pthread_mutex_lock(&f->lock);
		if (c)
			*c = (struct conn){ f, fd };
		if (!c || f->nconns == MAXCONN ||
		    pthread_create(&f->conns[f->nconns], NULL, conn_main, c) !=
			    0) {
			close(fd);
			free(c);
		} else {
			f->nconns++;
		}
		pthread_mutex_unlock(&f->lock);
	}
	return NULL;
}

struct fake_imap *fake_imap_start(const char *caps)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t salen = sizeof(sa);
	struct fake_imap *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	snprintf(f->caps, sizeof(f->caps), "%s", caps);
	pthread_mutex_init(&f->lock, NULL);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, salen) < 0 ||
	    listen(f->lfd, 8) < 0 ||
	    getsockname(f->lfd, (struct sockaddr *)&sa, &salen) < 0 ||
	    pthread_create(&f->thread, NULL, accept_main, f) != 0) {
		if (f->lfd >= 0)
			close(f->lfd);
		pthread_mutex_destroy(&f->lock);
		free(f);
		return NULL;
	}
	f->port = ntohs(sa.sin_port);
	return f;
}

void fake_imap_stop(struct fake_imap *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	for (unsigned i = 0; i < f->nconns; i++)
		pthread_join(f->conns[i], NULL);
	close(f->lfd);
	for (unsigned i = 0; i < f->ncmds; i++)
		free(f->cmds[i]);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

unsigned fake_imap_port(const struct fake_imap *f)
{
	return f->port;
}

int fake_imap_mbox(struct fake_imap *f, const char *name,
		   uint32_t uidvalidity)
{
	int n = -1;

	pthread_mutex_lock(&f->lock);
	if (f->nmb < FAKE_NMBOX) {
		n = f->nmb++;
		snprintf(f->mb[n].name, sizeof(f->mb[n].name), "%s", name);
		f->mb[n].uidvalidity = uidvalidity;
		f->mb[n].uidnext = 1;
		f->mb[n].modseq = 1;
	}
	pthread_mutex_unlock(&f->lock);
	return n;
}

int fake_imap_mbox_by_name(struct fake_imap *f, const char *name)
{
	int n;

	pthread_mutex_lock(&f->lock);
	n = mbox_locked(f, name);
	pthread_mutex_unlock(&f->lock);
	return n;
}

void fake_imap_set_uidvalidity(struct fake_imap *f, int mb,
			       uint32_t uidvalidity)
{
	pthread_mutex_lock(&f->lock);
	f->mb[mb].uidvalidity = uidvalidity;
	pthread_mutex_unlock(&f->lock);
}

void fake_imap_put(struct fake_imap *f, int mb, uint32_t uid,
		   const char *flags)
{
	struct fmbox *m = &f->mb[mb];

	pthread_mutex_lock(&f->lock);
	m->m[uid].has = true;
	m->m[uid].gone = 0;
	snprintf(m->m[uid].flags, sizeof(m->m[uid].flags), "%s", flags);
	m->m[uid].modseq = ++m->modseq;
	if (m->uidnext <= uid)
		m->uidnext = uid + 1;
	pthread_mutex_unlock(&f->lock);
}

void fake_imap_set_flags(struct fake_imap *f, int mb, uint32_t uid,
			 const char *flags)
{
	struct fmbox *m = &f->mb[mb];

	pthread_mutex_lock(&f->lock);
	snprintf(m->m[uid].flags, sizeof(m->m[uid].flags), "%s", flags);
	m->m[uid].modseq = ++m->modseq;
	pthread_mutex_unlock(&f->lock);
}

void fake_imap_expunge(struct fake_imap *f, int mb, uint32_t uid)
{
	struct fmbox *m = &f->mb[mb];

	pthread_mutex_lock(&f->lock);
	if (m->m[uid].has) {
		m->m[uid].has = false;
		m->m[uid].gone = ++m->modseq;
	}
	pthread_mutex_unlock(&f->lock);
}

bool fake_imap_has(struct fake_imap *f, int mb, uint32_t uid)
{
	bool has;

	pthread_mutex_lock(&f->lock);
	has = f->mb[mb].m[uid].has;
	pthread_mutex_unlock(&f->lock);
	return has;
}

void fake_imap_refuse(struct fake_imap *f, uint32_t lo, uint32_t hi,
		      bool refuse)
{
	pthread_mutex_lock(&f->lock);
	for (uint32_t u = lo; u <= hi && u <= FAKE_MAXUID; u++)
		f->refuse[u] = refuse;
	pthread_mutex_unlock(&f->lock);
}

void fake_imap_delay(struct fake_imap *f, unsigned ms)
{
	pthread_mutex_lock(&f->lock);
	f->delay_ms = ms;
	pthread_mutex_unlock(&f->lock);
}

unsigned fake_imap_ncmds(struct fake_imap *f)
{
	unsigned n;

	pthread_mutex_lock(&f->lock);
	n = f->ncmds;
	pthread_mutex_unlock(&f->lock);
	return n;
}

unsigned fake_imap_count(struct fake_imap *f, unsigned from,
			 const char *prefix, const char *has)
{
	unsigned n = 0;

	pthread_mutex_lock(&f->lock);
	for (unsigned i = from; i < f->ncmds; i++)
		n += strncmp(f->cmds[i], prefix, strlen(prefix)) == 0 &&
		     (!has || strstr(f->cmds[i], has));
	pthread_mutex_unlock(&f->lock);
	return n;
}

void fake_imap_sets(struct fake_imap *f, unsigned from, const char *prefix,
		    struct fake_sets *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&f->lock);
	for (unsigned i = from; i < f->ncmds; i++) {
		bool uids[FAKE_MAXUID + 1];
		char set[4096];
		unsigned n = 0;

		if (strncmp(f->cmds[i], prefix, strlen(prefix)) != 0 ||
		    sscanf(f->cmds[i] + strlen(prefix), "%4095s", set) != 1 ||
		    !parse_set(set, 0, uids))
			continue;
		out->cmds++;
		for (unsigned u = 1; u <= FAKE_MAXUID; u++) {
			out->times[u] += uids[u];
			n += uids[u];
		}
		out->multi += n > 1;
	}
	pthread_mutex_unlock(&f->lock);
}

int fake_imap_password(void *ctx, char **out, struct mfs_error *err)
{
	(void)ctx;
	(void)err;
	*out = strdup("secret");
	return *out ? 0 : MFS_E_NOMEM;
}

void test_rm_rf(const char *dir)
{
	char path[700];
	struct dirent *de;
	DIR *d = opendir(dir);

	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) < 0)
			test_rm_rf(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

struct imap_opts fake_imap_opts(const struct fake_imap *f)
{
	struct imap_opts io = { 0 };

	io.host = "127.0.0.1";
	io.port = fake_imap_port(f);
	io.user = "alice";
	io.secret = (struct secret_src){ SECRET_PASSWORD, fake_imap_password,
					 NULL };
	io.tls = IMAP_TLS_NONE;
	io.allow_plaintext = true;
	io.timeout_s = 5;
	return io;
}
