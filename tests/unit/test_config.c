/* test_config.c - the config file parser through config_resolve: comments
 * at the start of a line and after a value, quoting in commands, and the
 * one-line errors. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

#define FIELD(f) offsetof(struct config, f)

/* Each case is one line of [acct], placed before defaults for host and
 * user (the first setting of a key wins, so the case's line counts). */
static const struct {
	const char *what, *line;
	size_t field;	/* a char * field of struct config */
	const char *want;
} cases[] = {
	{ "README's example: a comment after the value",
	  "tls = implicit                 # or starttls; none only with "
	  "allow_plaintext",
	  FIELD(tls), "implicit" },
	{ "a comment after a host name", "host = imap.example.org # work",
	  FIELD(host), "imap.example.org" },
	{ "a comment after a tab", "user = alice\t# login", FIELD(user),
	  "alice" },
	{ "'#' inside a word is kept", "sent_folder = Sent#2",
	  FIELD(sent_folder), "Sent#2" },
	{ "an apostrophe outside a command does not hide a comment",
	  "from = Pat O'Brien <pat@example.org>   # work", FIELD(from),
	  "Pat O'Brien <pat@example.org>" },
	{ "';' after a value is not a comment", "trash_folder = Bin ; old",
	  FIELD(trash_folder), "Bin ; old" },
	{ "a command: comment after it",
	  "password_command = pass show mail/alice   # the work account",
	  FIELD(password_command), "pass show mail/alice" },
	{ "a command: ' #' inside single quotes is kept",
	  "password_command = pass show 'mail/a #b'  # comment",
	  FIELD(password_command), "pass show 'mail/a #b'" },
	{ "a command: ' #' inside double quotes is kept",
	  "password_command = pass show \"mail/a #b\" # comment",
	  FIELD(password_command), "pass show \"mail/a #b\"" },
	{ "a command: an escaped quote does not end double quotes",
	  "password_command = printf \"%s\\\" #x\" y # comment",
	  FIELD(password_command), "printf \"%s\\\" #x\" y" },
	{ "a command: backslash-space then '#' is not a comment",
	  "password_command = echo a\\ #b", FIELD(password_command),
	  "echo a\\ #b" },
	{ "a command: '$#' and 'x#y' are kept",
	  "password_command = echo $# x#y", FIELD(password_command),
	  "echo $# x#y" },
	{ "a command: ';' separates commands",
	  "password_command = true ; cat pw", FIELD(password_command),
	  "true ; cat pw" },
	{ "a token command: comment after quotes",
	  "oauth2_token_command = printf '%s' \"$(cat t)\" # rotated",
	  FIELD(oauth2_token_command), "printf '%s' \"$(cat t)\"" },
	{ "no comment: the value is unchanged",
	  "cache_dir = /var/cache/mail box", FIELD(cache_dir),
	  "/var/cache/mail box" },
};

static char *write_config(const char *text)
{
	char tmpl[] = "/tmp/mailfs-test-config.XXXXXX";
	int fd = mkstemp(tmpl);
	size_t len = strlen(text);

	if (fd < 0)
		return NULL;
	if (write(fd, text, len) != (ssize_t)len) {
		close(fd);
		unlink(tmpl);
		return NULL;
	}
	close(fd);
	return strdup(tmpl);
}

/* config_resolve of account "acct" in a file holding text; the caller
 * clears cfg. */
static int resolve(const char *text, struct config *cfg,
		   struct mfs_error *err)
{
	char *path = write_config(text);
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	memset(err, 0, sizeof(*err));
	if (!path)
		return -1000;
	cfg->account = strdup("acct");
	cfg->config_file = strdup(path);
	rc = config_resolve(cfg, err);
	unlink(path);
	free(path);
	return rc;
}

static void line_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config cfg;
		struct mfs_error err;
		char *text = NULL;
		int rc;

		if (asprintf(&text, "[acct]\n%s\nhost = h\nuser = u\n",
			     cases[i].line) < 0)
			abort();
		rc = resolve(text, &cfg, &err);
		CHECK(rc == 0, "config: %s: parses", cases[i].what);
		if (rc != 0)
			printf("    %s\n", err.msg);
		else
			CHECK_STR(*(char **)((char *)&cfg + cases[i].field),
				  cases[i].want, "config: %s: value",
				  cases[i].what);
		config_clear(&cfg);
		free(text);
	}
}

static void other_cases(void)
{
	struct config cfg;
	struct mfs_error err;
	enum imap_tls tls;
	int rc;

	rc = resolve("# a comment line\n"
		     "; another\n"
		     "   # an indented one\n"
		     "[acct]   # the work account\n"
		     "host = h\n"
		     "user = u\n"
		     "tls = starttls # STARTTLS on 143\n"
		     "port = 143   # imap\n"
		     "connections = 2\t# fewer\n",
		     &cfg, &err);
	CHECK(rc == 0, "config: comments in a whole file: parses (%s)",
	      err.msg);
	CHECK(cfg.port == 143, "config: a number followed by a comment");
	CHECK(cfg.connections == 2,
	      "config: a number followed by a tab and a comment");
	CHECK(rc == 0 && config_tls(&cfg, &tls, &err) == 0 &&
		      tls == IMAP_TLS_STARTTLS,
	      "config: tls followed by a comment is understood");
	config_clear(&cfg);

	rc = resolve("[acct]\nhost = h\nuser = u\n"
		     "password_command = pass show 'a #b\n",
		     &cfg, &err);
	CHECK(rc == MFS_E_CONFIG,
	      "config: a command with an unterminated quote is refused");
	CHECK(strstr(err.msg, ":4:") && strstr(err.msg, "password_command") &&
		      strstr(err.msg, "quote"),
	      "config: the error names the line, the key and the quote: %s",
	      err.msg);
	config_clear(&cfg);

	rc = resolve("[acct]\nhost = h\nuser = u\nport = 99x # no\n", &cfg,
		     &err);
	CHECK(rc == MFS_E_CONFIG && strstr(err.msg, ":4: bad number for port"),
	      "config: a bad number is still refused: %s", err.msg);
	config_clear(&cfg);

	rc = resolve("[acct]\nhost = h\nuser = u\ntls = implicit # x\n"
		     "[other]\ntls = bad # ignored\n",
		     &cfg, &err);
	CHECK(rc == 0 && cfg.tls && strcmp(cfg.tls, "implicit") == 0,
	      "config: other sections do not count");
	config_clear(&cfg);
}

/* cache_size: the default, and sizes with their suffixes. */
static void cache_cases(void)
{
	struct config cfg = { 0 };
	uint64_t b = 0;

	CHECK(config_cache_bytes(&cfg, &b, NULL) == 0 && b == 2ull << 30,
	      "cache_size by default: 2G (%llu), room for a folder's bodies "
	      "and their decoded parts", (unsigned long long)b);
	cfg.cache_size = (char *)"512M";
	CHECK(config_cache_bytes(&cfg, &b, NULL) == 0 && b == 512ull << 20,
	      "cache_size=512M");
	cfg.cache_size = (char *)"1x";
	CHECK(config_cache_bytes(&cfg, &b, NULL) == MFS_E_CONFIG,
	      "cache_size=1x is refused");
}

int main(void)
{
	line_cases();
	other_cases();
	cache_cases();
	return check_done();
}
