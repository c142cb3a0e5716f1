/* test_changes.c - the mailbox changes' batching (fs/core/changes.c):
 * runs of rm and mv sent as UID sets, a refused batch put back in the
 * index, changes_flush waiting for the server, and the aliases of moved
 * messages (changes_moved).
 *
 * Against a real SQLite index in a temporary directory and a scripted
 * IMAP server that the test runs on threads (plain TCP on 127.0.0.1,
 * which imap_open allows with allow_plaintext): it announces MOVE and
 * UIDPLUS, keeps which UIDs each mailbox holds, logs every command, and
 * can refuse the UID MOVE of chosen UIDs (NO) or answer moves late.
 * Connections come from a real pool, so the path is the daemon's:
 * changes.c -> pool.c -> imap_open (libcurl login) -> mailbox.c.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "changes.h"
#include "check.h"
#include "imap.h"
#include "index.h"
#include "pool.h"

#define MAXUID 200
#define MAXCONN 8
#define MAXCMDS 2000

/* ---- the scripted IMAP server ---- */

struct mbox {
	const char *name;
	uint32_t uidvalidity;
	bool has[MAXUID + 1];
};

enum { INBOX, TRASH, ARCHIVE, NMBOX };

struct imapd {
	int lfd;
	unsigned port;
	pthread_t thread;
	pthread_t conns[MAXCONN];
	unsigned nconns;
	pthread_mutex_t lock;	/* guards all below */
	bool stop;
	struct mbox mb[NMBOX];
	bool refuse[MAXUID + 1];	/* UID MOVE of these gets NO */
	unsigned move_delay_ms;		/* before a UID MOVE is answered */
	char *cmds[MAXCMDS];		/* commands received, without tag */
	unsigned ncmds;
};

static struct imapd srv = {
	.mb = { { "INBOX", 7, { 0 } },
		{ "Trash", 9, { 0 } },
		{ "Archive", 11, { 0 } } },
};

static int mbox_by_name(const char *name)
{
	for (int i = 0; i < NMBOX; i++)
		if (strcmp(srv.mb[i].name, name) == 0)
			return i;
	return -1;
}

/* Parse a UID set ("3,5:7") into uids[]; false when malformed. */
static bool parse_set(const char *s, bool uids[MAXUID + 1])
{
	memset(uids, 0, (MAXUID + 1) * sizeof(bool));
	while (*s) {
		char *end;
		unsigned long lo = strtoul(s, &end, 10), hi = lo;

		if (end == s || lo == 0 || lo > MAXUID)
			return false;
		s = end;
		if (*s == ':') {
			hi = strtoul(s + 1, &end, 10);
			if (end == s + 1 || hi == 0 || hi > MAXUID)
				return false;
			s = end;
		}
		for (unsigned long u = lo < hi ? lo : hi; u <= (lo < hi ? hi : lo);
		     u++)
			uids[u] = true;
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

/* One command of a connection whose selected mailbox is *sel. */
static bool command(int fd, const char *tag, const char *cmd, int *sel)
{
	char name[100], set[4096];
	bool uids[MAXUID + 1];

	pthread_mutex_lock(&srv.lock);
	if (srv.ncmds < MAXCMDS)
		srv.cmds[srv.ncmds++] = strdup(cmd);
	pthread_mutex_unlock(&srv.lock);
	if (strcasecmp(cmd, "CAPABILITY") == 0) {
		say(fd, "* CAPABILITY IMAP4rev1 MOVE UIDPLUS\r\n%s OK done\r\n",
		    tag);
	} else if (strncasecmp(cmd, "LOGIN ", 6) == 0 ||
		   strcasecmp(cmd, "NOOP") == 0) {
		say(fd, "%s OK done\r\n", tag);
	} else if (strcasecmp(cmd, "LOGOUT") == 0) {
		say(fd, "* BYE bye\r\n%s OK done\r\n", tag);
		return false;
	} else if ((strncasecmp(cmd, "SELECT ", 7) == 0 ||
		    strncasecmp(cmd, "EXAMINE ", 8) == 0) &&
		   quoted(strchr(cmd, ' ') + 1, name, sizeof(name)) &&
		   mbox_by_name(name) >= 0) {
		unsigned n = 0;

		*sel = mbox_by_name(name);
		pthread_mutex_lock(&srv.lock);
		for (unsigned u = 1; u <= MAXUID; u++)
			n += srv.mb[*sel].has[u];
		say(fd, "* %u EXISTS\r\n* OK [UIDVALIDITY %u] ok\r\n"
			"* OK [UIDNEXT %u] ok\r\n%s OK [READ-WRITE] done\r\n",
		    n, srv.mb[*sel].uidvalidity, MAXUID + 1, tag);
		pthread_mutex_unlock(&srv.lock);
	} else if (*sel >= 0 && sscanf(cmd, "UID MOVE %4095s", set) == 1 &&
		   parse_set(set, uids) &&
		   quoted(cmd + 10 + strlen(set), name, sizeof(name)) &&
		   mbox_by_name(name) >= 0) {
		bool refused = false;
		unsigned delay;

		pthread_mutex_lock(&srv.lock);
		for (unsigned u = 1; u <= MAXUID; u++)
			refused |= uids[u] && srv.refuse[u];
		delay = srv.move_delay_ms;
		pthread_mutex_unlock(&srv.lock);
		usleep(delay * 1000);
		if (refused) {
			say(fd, "%s NO [CANNOT] refused by the test\r\n", tag);
			return true;
		}
		pthread_mutex_lock(&srv.lock);
		for (unsigned u = 1; u <= MAXUID; u++) {
			if (uids[u] && srv.mb[*sel].has[u]) {
				srv.mb[*sel].has[u] = false;
				srv.mb[mbox_by_name(name)].has[u] = true;
			}
		}
		pthread_mutex_unlock(&srv.lock);
		say(fd, "%s OK moved\r\n", tag);
	} else if (*sel >= 0 &&
		   sscanf(cmd, "UID STORE %4095s", set) == 1 &&
		   parse_set(set, uids)) {
		say(fd, "%s OK stored\r\n", tag);
	} else if (*sel >= 0 &&
		   sscanf(cmd, "UID EXPUNGE %4095s", set) == 1 &&
		   parse_set(set, uids)) {
		pthread_mutex_lock(&srv.lock);
		for (unsigned u = 1; u <= MAXUID; u++)
			if (uids[u])
				srv.mb[*sel].has[u] = false;
		pthread_mutex_unlock(&srv.lock);
		say(fd, "%s OK expunged\r\n", tag);
	} else if (*sel >= 0 &&
		   sscanf(cmd, "UID SEARCH UID %4095s", set) == 1 &&
		   parse_set(set, uids)) {
		char out[4096] = "* SEARCH";
		size_t len = strlen(out);

		pthread_mutex_lock(&srv.lock);
		for (unsigned u = 1; u <= MAXUID; u++)
			if (uids[u] && srv.mb[*sel].has[u])
				len += (size_t)snprintf(out + len,
							sizeof(out) - len,
							" %u", u);
		pthread_mutex_unlock(&srv.lock);
		say(fd, "%s\r\n%s OK searched\r\n", out, tag);
	} else {
		say(fd, "%s BAD not in the script\r\n", tag);
	}
	return true;
}

static bool stopping(void)
{
	bool stop;

	pthread_mutex_lock(&srv.lock);
	stop = srv.stop;
	pthread_mutex_unlock(&srv.lock);
	return stop;
}

static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[8192];
	size_t len = 0;
	int sel = -1;

	say(fd, "* OK fake IMAP ready\r\n");
	while (!stopping()) {
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
			more = !sp || (*sp = '\0', command(fd, buf, sp + 1, &sel));
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
	(void)arg;
	while (!stopping()) {
		struct pollfd p = { srv.lfd, POLLIN, 0 };
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(srv.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&srv.lock);
		if (srv.nconns == MAXCONN ||
		    pthread_create(&srv.conns[srv.nconns], NULL, conn_main,
				   (void *)(intptr_t)fd) != 0)
			close(fd);
		else
			srv.nconns++;
		pthread_mutex_unlock(&srv.lock);
	}
	return NULL;
}

static int srv_start(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t salen = sizeof(sa);

	pthread_mutex_init(&srv.lock, NULL);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv.lfd < 0 || bind(srv.lfd, (struct sockaddr *)&sa, salen) < 0 ||
	    listen(srv.lfd, 8) < 0 ||
	    getsockname(srv.lfd, (struct sockaddr *)&sa, &salen) < 0)
		return -1;
	srv.port = ntohs(sa.sin_port);
	return pthread_create(&srv.thread, NULL, accept_main, NULL) == 0 ? 0 :
									   -1;
}

static void srv_stop(void)
{
	pthread_mutex_lock(&srv.lock);
	srv.stop = true;
	pthread_mutex_unlock(&srv.lock);
	pthread_join(srv.thread, NULL);
	for (unsigned i = 0; i < srv.nconns; i++)
		pthread_join(srv.conns[i], NULL);
	close(srv.lfd);
	for (unsigned i = 0; i < srv.ncmds; i++)
		free(srv.cmds[i]);
	pthread_mutex_destroy(&srv.lock);
}

static bool srv_has(int mb, uint32_t uid)
{
	bool has;

	pthread_mutex_lock(&srv.lock);
	has = srv.mb[mb].has[uid];
	pthread_mutex_unlock(&srv.lock);
	return has;
}

/* Answer UID MOVE ms late: long enough for the test to look at what a
 * queued change shows before the server has answered it. */
static void srv_delay(unsigned ms)
{
	pthread_mutex_lock(&srv.lock);
	srv.move_delay_ms = ms;
	pthread_mutex_unlock(&srv.lock);
}

static void srv_refuse(uint32_t lo, uint32_t hi, bool refuse)
{
	pthread_mutex_lock(&srv.lock);
	for (uint32_t u = lo; u <= hi; u++)
		srv.refuse[u] = refuse;
	pthread_mutex_unlock(&srv.lock);
}

/* Commands from number `from` on that begin with prefix: how many, and
 * in *uids how often each UID appears in their sets. */
struct sets {
	unsigned cmds;
	unsigned multi;		/* of those, with more than one UID */
	unsigned times[MAXUID + 1];
};

static void srv_sets(unsigned from, const char *prefix, struct sets *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&srv.lock);
	for (unsigned i = from; i < srv.ncmds; i++) {
		bool uids[MAXUID + 1];
		char set[4096];
		unsigned n = 0;

		if (strncmp(srv.cmds[i], prefix, strlen(prefix)) != 0 ||
		    sscanf(srv.cmds[i] + strlen(prefix), "%4095s", set) != 1 ||
		    !parse_set(set, uids))
			continue;
		out->cmds++;
		for (unsigned u = 1; u <= MAXUID; u++) {
			out->times[u] += uids[u];
			n += uids[u];
		}
		out->multi += n > 1;
	}
	pthread_mutex_unlock(&srv.lock);
}

static unsigned srv_ncmds(void)
{
	unsigned n;

	pthread_mutex_lock(&srv.lock);
	n = srv.ncmds;
	pthread_mutex_unlock(&srv.lock);
	return n;
}

/* ---- the index, and the hooks the changes call ---- */

static struct index *ix;
static int64_t f_inbox, f_trash, f_archive;

struct hooks {
	pthread_mutex_t lock;
	unsigned changed[8];	/* folder_changed by folder id (small) */
	unsigned gone;		/* msg_gone calls */
};

static struct hooks hk = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void folder_changed(void *ctx, int64_t folder)
{
	(void)ctx;
	pthread_mutex_lock(&hk.lock);
	if (folder >= 0 && folder < 8)
		hk.changed[folder]++;
	pthread_mutex_unlock(&hk.lock);
}

static void msg_gone(void *ctx, int64_t folder, uint32_t uid,
		     const char *name)
{
	(void)ctx;
	(void)folder;
	(void)uid;
	(void)name;
	pthread_mutex_lock(&hk.lock);
	hk.gone++;
	pthread_mutex_unlock(&hk.lock);
}

static struct hooks hk_get(void)
{
	struct hooks h;

	pthread_mutex_lock(&hk.lock);
	h = hk;
	pthread_mutex_unlock(&hk.lock);
	return h;
}

static void name_of(uint32_t uid, char *buf, size_t len)
{
	snprintf(buf, len, "2026-06-01 1000 Carol - Message %u [%u]", uid, uid);
}

/* A message on the server and in the index (folder mb, index id f). */
static void add_msg(int mb, int64_t f, uint32_t uid)
{
	char name[100], mid[50], subject[50];
	struct ix_msg m = { .folder = f,
			    .uid = uid,
			    .size = 1000 + uid,
			    .date = 1780000000 + uid,
			    .flags = "\\Seen",
			    .message_id = mid,
			    .name = name,
			    .sender = "Carol",
			    .subject = subject,
			    .internaldate = 1780000100 + uid };

	name_of(uid, name, sizeof(name));
	snprintf(mid, sizeof(mid), "<%u@example.org>", uid);
	snprintf(subject, sizeof(subject), "Message %u", uid);
	index_msg_put(ix, &m, NULL);
	pthread_mutex_lock(&srv.lock);
	srv.mb[mb].has[uid] = true;
	pthread_mutex_unlock(&srv.lock);
}

/* The whole row of (f, uid) as text, "" when there is none. */
struct rowtext {
	char s[600];
};

static int row_text(void *ctx, const struct ix_msg *m)
{
	struct rowtext *r = ctx;

	snprintf(r->s, sizeof(r->s), "%u|%llu|%lld|%s|%s|%s|%s|%s|%lld|%d",
		 m->uid, (unsigned long long)m->size, (long long)m->date,
		 m->flags ? m->flags : "-",
		 m->message_id ? m->message_id : "-", m->name,
		 m->sender ? m->sender : "-", m->subject ? m->subject : "-",
		 (long long)m->internaldate, m->unfilled);
	return 0;
}

static void row(int64_t f, uint32_t uid, struct rowtext *r)
{
	r->s[0] = '\0';
	index_msg_get(ix, f, uid, row_text, r, NULL);
}

static bool in_index(int64_t f, uint32_t uid)
{
	struct rowtext r;

	row(f, uid, &r);
	return r.s[0] != '\0';
}

static int password(void *ctx, char **out, struct mfs_error *err)
{
	(void)ctx;
	(void)err;
	*out = strdup("secret");
	return *out ? 0 : MFS_E_NOMEM;
}

/* ---- the cases ---- */

/* rm of a run of messages: the first at once, the rest hidden at once
 * and sent as UID sets; changes_flush returns once the server has them. */
static void test_rm_run(struct changes *a)
{
	unsigned from = srv_ncmds();
	bool ok = true, hidden = true, moved = true, once = true;
	struct sets s;

	for (uint32_t u = 1; u <= 40; u++)
		add_msg(INBOX, f_inbox, u);
	srv_delay(300);
	for (uint32_t u = 1; u <= 40; u++) {
		struct mfs_error err = { 0 };

		ok &= changes_delete(a, f_inbox, u, &err) == 0;
		hidden &= !in_index(f_inbox, u);
	}
	CHECK(ok, "rm of 40 messages in a run: every call succeeds");
	CHECK(hidden, "each is gone from the index when its call returns");
	changes_flush(a);
	for (uint32_t u = 1; u <= 40; u++) {
		moved &= !srv_has(INBOX, u) && srv_has(TRASH, u);
	}
	CHECK(moved, "after changes_flush the server has moved all 40 to "
	      "Trash (each move answered 300 ms late)");
	srv_sets(from, "UID MOVE ", &s);
	for (uint32_t u = 1; u <= 40; u++)
		once &= s.times[u] == 1;
	CHECK(once, "each UID moved by exactly one command");
	CHECK(s.cmds <= 5 && s.multi >= 1,
	      "40 moves in %u UID MOVE commands (%u of them UID sets)",
	      s.cmds, s.multi);
	CHECK(hk_get().gone == 40, "the kernel was told of 40 messages gone "
	      "(%u)", hk_get().gone);
	srv_delay(0);
}

/* The queued part of a run refused: the rows come back as they were. */
static void test_refused(struct changes *a)
{
	struct rowtext before[6], after;
	bool hidden = true, back = true, kept = true;
	unsigned changed;

	for (uint32_t u = 41; u <= 46; u++) {
		add_msg(INBOX, f_inbox, u);
		row(f_inbox, u, &before[u - 41]);
	}
	srv_refuse(42, 46, true);
	srv_delay(300);
	/* The last change was an expunge in Trash: 41 starts a new run and
	 * is moved at once; 42-46 follow it into the queue. */
	for (uint32_t u = 41; u <= 46; u++) {
		struct mfs_error err = { 0 };
		int rc = changes_delete(a, f_inbox, u, &err);

		if (u > 41)
			hidden &= rc == 0 && !in_index(f_inbox, u);
	}
	CHECK(hidden, "rm of 42-46 answered at once, rows hidden");
	changed = hk_get().changed[f_inbox];
	changes_flush(a);
	for (uint32_t u = 42; u <= 46; u++) {
		row(f_inbox, u, &after);
		back &= strcmp(after.s, before[u - 41].s) == 0;
		kept &= srv_has(INBOX, u) && !srv_has(TRASH, u);
	}
	CHECK(back, "the refused batch is back in the index, rows as they "
	      "were");
	CHECK(kept, "and still in INBOX on the server");
	CHECK(!in_index(f_inbox, 41) && srv_has(TRASH, 41),
	      "41, not refused, moved");
	CHECK(hk_get().changed[f_inbox] > changed,
	      "INBOX's listing said to change after the put-back");
	srv_refuse(42, 46, false);
	srv_delay(0);
}

/* Runs of rm in Trash: UID EXPUNGE of a set. */
static void test_expunge_run(struct changes *a)
{
	unsigned from = srv_ncmds();
	bool gone = true;
	struct sets s;

	for (uint32_t u = 101; u <= 110; u++)
		add_msg(TRASH, f_trash, u);
	for (uint32_t u = 101; u <= 110; u++) {
		struct mfs_error err = { 0 };

		changes_delete(a, f_trash, u, &err);
	}
	changes_flush(a);
	for (uint32_t u = 101; u <= 110; u++)
		gone &= !srv_has(TRASH, u) && !in_index(f_trash, u);
	CHECK(gone, "rm of 10 messages in Trash expunges them");
	srv_sets(from, "UID EXPUNGE ", &s);
	CHECK(s.cmds <= 5 && s.multi >= 1,
	      "in %u UID EXPUNGE commands (%u of them UID sets)", s.cmds,
	      s.multi);
	srv_sets(from, "UID MOVE ", &s);
	CHECK(s.cmds == 0, "and no UID MOVE");
}

/* mv: the moved message answers by its old place and by its name in the
 * target a while; not when the server refused the move. */
static void test_aliases(struct changes *a)
{
	struct changes_moved mv = { 0 };
	struct mfs_error err = { 0 };
	char name[100];
	int rc;

	add_msg(INBOX, f_inbox, 51);
	add_msg(INBOX, f_inbox, 52);
	add_msg(INBOX, f_inbox, 53);
	/* The last change was an rm to Trash: a new run, done at once. */
	rc = changes_move(a, f_inbox, 51, f_archive, &err);
	CHECK(rc == 0 && srv_has(ARCHIVE, 51) && !in_index(f_inbox, 51),
	      "mv of the first of a run is done when it returns (%s)",
	      err.msg);
	CHECK(changes_moved(a, f_inbox, 51, NULL, 0, &mv) &&
		      mv.src == f_inbox && mv.uid == 51 && mv.size == 1051 &&
		      mv.date == 1780000051,
	      "changes_moved by its old place: size and date");
	name_of(51, name, sizeof(name));
	memset(&mv, 0, sizeof(mv));
	CHECK(changes_moved(a, 0, 0, name, f_archive, &mv) &&
		      mv.src == f_inbox && mv.uid == 51,
	      "changes_moved by its name in the target");
	CHECK(!changes_moved(a, 0, 0, name, f_trash, &mv),
	      "not by that name in another folder");

	/* Queued (same run) and refused. */
	srv_refuse(52, 52, true);
	srv_delay(300);
	rc = changes_move(a, f_inbox, 52, f_archive, &err);
	CHECK(rc == 0 && changes_moved(a, f_inbox, 52, NULL, 0, &mv),
	      "a queued mv answers by its old place at once");
	changes_flush(a);
	name_of(52, name, sizeof(name));
	CHECK(!changes_moved(a, f_inbox, 52, NULL, 0, &mv) &&
		      !changes_moved(a, 0, 0, name, f_archive, &mv),
	      "a queued mv the server refused: no alias left");
	CHECK(in_index(f_inbox, 52) && srv_has(INBOX, 52),
	      "and the message is back where it was");
	srv_delay(0);

	/* Another target: a new run, done at once, refused: an error. */
	srv_refuse(53, 53, true);
	rc = changes_move(a, f_inbox, 53, f_trash, &err);
	name_of(53, name, sizeof(name));
	CHECK(rc == MFS_E_NO && in_index(f_inbox, 53),
	      "an mv done at once and refused fails (%d: %s), row kept", rc,
	      err.msg);
	CHECK(!changes_moved(a, f_inbox, 53, NULL, 0, &mv) &&
		      !changes_moved(a, 0, 0, name, f_trash, &mv),
	      "and leaves no alias");
	srv_refuse(52, 53, false);
}

static void rm_rf(const char *dir)
{
	char path[700];
	struct dirent *de;
	DIR *d = opendir(dir);

	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	char dir[256], path[300];
	struct mfs_error err = { 0 };
	struct imap_opts io = { 0 };
	struct pool *pool = NULL;
	struct changes *a = NULL;
	struct changes_opts co;

	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "%s/mfs-changes-XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(path, sizeof(path), "%s/index.sqlite", dir);
	CHECK(srv_start() == 0, "the scripted IMAP server starts");
	CHECK(index_open(path, &ix, &err) == 0, "an index in a temporary "
	      "directory (%s)", err.msg);
	if (!ix || !srv.port)
		goto out;
	index_folder_put(ix, 0, "INBOX", "INBOX", '/', 0, &f_inbox, NULL);
	index_folder_put(ix, 0, "Trash", "Trash", '/', IMAP_MB_TRASH, &f_trash,
			 NULL);
	index_folder_put(ix, 0, "Archive", "Archive", '/', 0, &f_archive,
			 NULL);
	index_folder_set_state(ix, f_inbox, 7, MAXUID + 1, 0, NULL);
	index_folder_set_state(ix, f_trash, 9, MAXUID + 1, 0, NULL);
	index_folder_set_state(ix, f_archive, 11, MAXUID + 1, 0, NULL);

	io.host = "127.0.0.1";
	io.port = srv.port;
	io.user = "alice";
	io.secret = (struct secret_src){ SECRET_PASSWORD, password, NULL };
	io.tls = IMAP_TLS_NONE;
	io.allow_plaintext = true;
	io.timeout_s = 5;
	CHECK(pool_new(&io, 2, NULL, &pool) == 0, "a pool of 2 connections");
	co = (struct changes_opts){
		.ix = ix,
		.pool = pool,
		.timeout_s = 5,
		.hooks = { .folder_changed = folder_changed,
			   .msg_gone = msg_gone },
	};
	a = changes_new(&co);
	CHECK(a != NULL, "changes_new");
	if (!a)
		goto out;
	/* In this order: each starts a run of another kind than the last. */
	test_rm_run(a);
	test_expunge_run(a);
	test_refused(a);
	test_aliases(a);
out:
	changes_free(a);
	pool_free(pool);
	index_close(ix);
	srv_stop();
	curl_global_cleanup();
	rm_rf(dir);
	return check_done();
}
