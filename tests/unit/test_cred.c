/* test_cred.c - cred_run: the password/token command's first line, and
 * every way the command can fail, each a one-line MFS_E_SECRET that never
 * holds what the command printed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cred.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const struct {
	const char *cmd;
	long limit_s;
	int rc;
	const char *secret;	/* on success */
	const char *msg;	/* on failure: err.msg starts with this */
} cases[] = {
	{ "echo tok-1", 0, 0, "tok-1", NULL },
	{ "printf 'tok-2\\r\\nsecond line\\n'", 0, 0, "tok-2", NULL },
	{ "printf 'no-newline'", 0, 0, "no-newline", NULL },
	{ "printf '  spaced tok  \\n'", 0, 0, "  spaced tok  ", NULL },
	/* Lots after the first line: drained, not a SIGPIPE failure. */
	{ "echo tok-3; head -c 300000 /dev/zero", 5, 0, "tok-3", NULL },
	{ "echo tok-4 && exit 3", 0, MFS_E_SECRET, NULL,
	  "password_command failed (exit status 3)" },
	{ "false", 0, MFS_E_SECRET, NULL,
	  "password_command failed (exit status 1)" },
	{ "true", 0, MFS_E_SECRET, NULL, "password_command printed nothing" },
	{ "echo", 0, MFS_E_SECRET, NULL, "password_command printed nothing" },
	{ "no-such-command-xyz", 0, MFS_E_SECRET, NULL,
	  "password_command failed (exit status 127)" },
	{ "echo tok-5; kill -9 $$", 0, MFS_E_SECRET, NULL,
	  "password_command killed by signal 9" },
	{ "head -c 20000 /dev/zero | tr '\\0' x", 5, MFS_E_SECRET, NULL,
	  "password_command printed a line over 16383 bytes" },
	/* Signals the daemon's threads block or ignore are the command's
	 * again: SIGPIPE from a reader gone kills it as it would in a shell. */
	{ "trap - PIPE; (yes | head -n 1) >/dev/null; echo tok-6", 5, 0,
	  "tok-6", NULL },
};

int main(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mfs_error err = { 0 };
		char *secret = (char *)"not touched";
		int rc = cred_run("password_command", cases[i].cmd,
				  cases[i].limit_s, &secret, &err);

		CHECK(rc == cases[i].rc, "cred_run(%s) returns %d (got %d: %s)",
		      cases[i].cmd, cases[i].rc, rc, err.msg);
		if (cases[i].rc == 0) {
			CHECK_STR(secret, cases[i].secret,
				  "cred_run(%s): first line", cases[i].cmd);
		} else {
			CHECK(secret == NULL, "cred_run(%s): no secret on failure",
			      cases[i].cmd);
			CHECK(strncmp(err.msg, cases[i].msg,
				      strlen(cases[i].msg)) == 0,
			      "cred_run(%s): message '%s'", cases[i].cmd,
			      err.msg);
			CHECK(!strstr(err.msg, "tok-"),
			      "cred_run(%s): message holds no output",
			      cases[i].cmd);
			CHECK(!strchr(err.msg, '\n'),
			      "cred_run(%s): message is one line", cases[i].cmd);
		}
		if (rc == 0)
			secret_free(secret);
	}

	/* A command that hangs is killed at the limit, even one that closed
	 * its output first or printed a line and then stalled. */
	static const char *const hangs[] = {
		"sleep 30",
		"exec >&-; sleep 30",
		"echo tok-7; sleep 30",
	};
	for (size_t i = 0; i < sizeof(hangs) / sizeof(hangs[0]); i++) {
		struct mfs_error err = { 0 };
		char *secret = NULL;
		double t0 = now();
		int rc = cred_run("oauth2_token_command", hangs[i], 1, &secret,
				  &err);
		double took = now() - t0;

		CHECK(rc == MFS_E_SECRET && !secret,
		      "cred_run(%s, limit 1 s) fails (got %d)", hangs[i], rc);
		CHECK(took >= 0.9 && took < 5,
		      "cred_run(%s) gives up after the limit (%.1f s)", hangs[i],
		      took);
		CHECK_STR(err.msg, "oauth2_token_command did not finish within 1 s",
			  "cred_run(%s): message", hangs[i]);
		secret_free(secret);
	}

	/* Descriptors the daemon did not mark close-on-exec (curl's
	 * sockets) are not the command's. */
	{
		int fd = open("/dev/null", O_RDONLY);
		char cmd[96];
		struct mfs_error err = { 0 };
		char *secret = NULL;

		snprintf(cmd, sizeof(cmd),
			 "if [ -e /proc/self/fd/%d ]; then echo open; "
			 "else echo closed; fi", fd);
		cred_run("password_command", cmd, 0, &secret, &err);
		CHECK_STR(secret, "closed",
			  "the command does not inherit our descriptor %d", fd);
		secret_free(secret);
		if (fd >= 0)
			close(fd);
	}

	/* What the command started dies with it: nothing is left behind in
	 * its process group. */
	{
		char path[] = "/tmp/test_cred.XXXXXX", cmd[128];
		struct mfs_error err = { 0 };
		char *secret = NULL;
		long pgid = 0;
		int fd = mkstemp(path);
		FILE *f;

		snprintf(cmd, sizeof(cmd), "sleep 30 & echo $$ > %s; wait", path);
		cred_run("password_command", cmd, 1, &secret, &err);
		usleep(100000);
		f = fopen(path, "r");
		CHECK(fd >= 0 && f && fscanf(f, "%ld", &pgid) == 1 && pgid > 0,
		      "the hung command wrote its pid");
		/* Orphans are reaped by init in its own time. */
		for (int i = 0; i < 50 && pgid > 0 && kill(-(pid_t)pgid, 0) == 0;
		     i++)
			usleep(100000);
		CHECK(pgid > 0 && kill(-(pid_t)pgid, 0) < 0 && errno == ESRCH,
		      "nothing left in the killed command's process group");
		if (f)
			fclose(f);
		if (fd >= 0)
			close(fd);
		unlink(path);
	}
	return check_done();
}
