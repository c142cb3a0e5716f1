#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cred.h"

extern char **environ;

/* Longer than any token we know of (Microsoft's run to a few KiB). */
#define MAX_SECRET 16384

struct cred {
	const struct config *cfg;
	pthread_mutex_t lock;	/* one command at a time */
	long limit_s;
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read the child's output until EOF or the deadline (0: none), keeping
 * the first line in buf; the rest is read and dropped so the command is
 * not killed by SIGPIPE mid-write.  1 at EOF, 0 when time ran out, -1
 * on a read error; *toolong if the first line did not fit. */
static int read_line(int fd, char *buf, size_t cap, size_t *len,
		     bool *toolong, long long deadline)
{
	bool line_done = false;
	char tmp[512];
	int ret = 1;

	*len = 0;
	*toolong = false;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int wait = -1;
		ssize_t n;

		if (deadline) {
			long long left = deadline - mono_ms();

			if (left <= 0) {
				ret = 0;
				break;
			}
			wait = left > 60000 ? 60000 : (int)left;
		}
		n = poll(&pfd, 1, wait);
		if (n > 0)
			n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -1;
			break;
		}
		if (n == 0 && pfd.revents)
			break;
		for (ssize_t i = 0; i < n && !line_done; i++) {
			if (tmp[i] == '\n' || tmp[i] == '\r') {
				line_done = true;
			} else if (*len + 1 >= cap) {
				*toolong = line_done = true;
			} else {
				buf[(*len)++] = tmp[i];
			}
		}
	}
	explicit_bzero(tmp, sizeof(tmp));
	buf[*len] = '\0';
	return ret;
}

/* Reap pid, killing its process group if it is still there at the
 * deadline (0: wait as long as it takes); *killed says whether that
 * happened. */
static int reap(pid_t pid, long long deadline, int *status, bool *killed)
{
	for (;;) {
		pid_t r = waitpid(pid, status, deadline ? WNOHANG : 0);

		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
		if (r == 0 && mono_ms() >= deadline) {
			kill(-pid, SIGKILL);
			*killed = true;
			deadline = 0;
		} else if (r == 0) {
			struct timespec ts = { 0, 20 * 1000000 };

			nanosleep(&ts, NULL);
		}
	}
}

int cred_run(const char *what, const char *cmd, long limit_s, char **secret,
	     struct mfs_error *err)
{
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)cmd, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, pipe_only;
	long long deadline = limit_s > 0 ? mono_ms() + limit_s * 1000 : 0;
	int fds[2] = { -1, -1 };
	char *buf = NULL;
	size_t len = 0;
	bool killed = false, toolong = false;
	pid_t pid = -1;
	int status = 0, got, rc;

	*secret = NULL;
	buf = malloc(MAX_SECRET);
	if (!buf)
		return mfs_fail(err, MFS_E_NOMEM, "out of memory");
	if (pipe2(fds, O_CLOEXEC) < 0) {
		rc = mfs_fail(err, MFS_E_SECRET, "%s: %s", what,
			      strerror(errno));
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	/* Not every descriptor of ours is close-on-exec (curl's sockets):
	 * a helper that leaves a daemon behind must not keep our IMAP
	 * connections open. */
	posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
	/* Our threads block SIGUSR1 and libfuse ignores SIGPIPE; both
	 * would outlive exec and confuse the command. */
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &pipe_only);
	/* With a time limit the command gets a process group of its own, so
	 * that what it started dies with it.  Not without one: that is at
	 * start-up, where it may have to read a passphrase from the
	 * terminal, which a background group may not. */
	if (deadline)
		posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF |
				 (deadline ? POSIX_SPAWN_SETPGROUP : 0));
	errno = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(fds[1]);
	fds[1] = -1;
	if (errno) {
		pid = -1;
		rc = mfs_fail(err, MFS_E_SECRET, "%s: cannot run /bin/sh: %s",
			      what, strerror(errno));
		goto out;
	}
	got = read_line(fds[0], buf, MAX_SECRET, &len, &toolong, deadline);
	close(fds[0]);
	fds[0] = -1;
	if (got == 0) {
		kill(-pid, SIGKILL);
		killed = true;
	}
	if (reap(pid, killed ? 0 : deadline, &status, &killed) < 0) {
		rc = mfs_fail(err, MFS_E_SECRET, "%s: %s", what,
			      strerror(errno));
		goto out;
	}
	pid = -1;
	if (killed) {
		rc = mfs_fail(err, MFS_E_SECRET,
			      "%s did not finish within %ld s", what, limit_s);
	} else if (got < 0) {
		rc = mfs_fail(err, MFS_E_SECRET, "%s: reading its output: %s",
			      what, strerror(errno));
	} else if (WIFSIGNALED(status)) {
		rc = mfs_fail(err, MFS_E_SECRET, "%s killed by signal %d",
			      what, WTERMSIG(status));
	} else if (WEXITSTATUS(status) != 0) {
		rc = mfs_fail(err, MFS_E_SECRET, "%s failed (exit status %d)",
			      what, WEXITSTATUS(status));
	} else if (toolong) {
		rc = mfs_fail(err, MFS_E_SECRET, "%s printed a line over %d bytes",
			      what, MAX_SECRET - 1);
	} else if (len == 0) {
		rc = mfs_fail(err, MFS_E_SECRET, "%s printed nothing", what);
	} else if (!(*secret = strdup(buf))) {
		rc = mfs_fail(err, MFS_E_NOMEM, "out of memory");
	} else {
		rc = 0;
	}
out:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	explicit_bzero(buf, MAX_SECRET);
	free(buf);
	return rc;
}

struct cred *cred_new(const struct config *cfg)
{
	struct cred *cr = calloc(1, sizeof(*cr));

	if (!cr)
		return NULL;
	cr->cfg = cfg;
	pthread_mutex_init(&cr->lock, NULL);
	return cr;
}

void cred_free(struct cred *cr)
{
	if (!cr)
		return;
	pthread_mutex_destroy(&cr->lock);
	free(cr);
}

void cred_limit(struct cred *cr, long limit_s)
{
	pthread_mutex_lock(&cr->lock);
	cr->limit_s = limit_s;
	pthread_mutex_unlock(&cr->lock);
}

static int cred_get(void *ctx, char **out, struct mfs_error *err)
{
	struct cred *cr = ctx;
	const struct config *cfg = cr->cfg;
	int rc;

	pthread_mutex_lock(&cr->lock);
	if (cfg->oauth2_token_command)
		rc = cred_run("oauth2_token_command",
			      cfg->oauth2_token_command, cr->limit_s, out, err);
	else if (cfg->password_command)
		rc = cred_run("password_command", cfg->password_command,
			      cr->limit_s, out, err);
	else
		rc = config_netrc_password(cfg, out, err);
	pthread_mutex_unlock(&cr->lock);
	return rc;
}

struct secret_src cred_source(struct cred *cr)
{
	const struct config *cfg = cr->cfg;
	/* Without a command the password comes from netrc, read here too:
	 * SMTP needs it as much as IMAP does. */
	struct secret_src src = { .kind = SECRET_PASSWORD, .get = cred_get,
				  .ctx = cr };

	if (cfg->oauth2_token_command)
		src.kind = SECRET_OAUTH2;
	return src;
}
