/* test_netrc.c - config_netrc_lookup, table-driven: which entry's
 * password IMAP and SMTP both get. */
#include <stdlib.h>

#include "check.h"
#include "config.h"

static const struct {
	const char *what, *text, *host, *user, *want;
} cases[] = {
	{ "one line", "machine imap.example.org login alice password s3cret\n",
	  "imap.example.org", "alice", "s3cret" },
	{ "host compared without case",
	  "machine IMAP.Example.ORG login alice password pw\n",
	  "imap.example.org", "alice", "pw" },
	{ "tokens over several lines",
	  "machine h\n\tlogin alice\n\tpassword pw\n", "h", "alice", "pw" },
	{ "password before login", "machine h password pw login alice",
	  "h", "alice", "pw" },
	{ "the entry with our login, not the first for the host",
	  "machine h login bob password bobs\nmachine h login alice password "
	  "alices\n", "h", "alice", "alices" },
	{ "an entry without login matches any user",
	  "machine h password any\n", "h", "alice", "any" },
	{ "other hosts are skipped",
	  "machine other login alice password no\nmachine h login alice "
	  "password yes\n", "h", "alice", "yes" },
	{ "default when no machine matches",
	  "machine other login alice password no\ndefault login alice "
	  "password dflt\n", "h", "alice", "dflt" },
	{ "a machine entry wins over default",
	  "machine h login alice password m\ndefault password d\n", "h",
	  "alice", "m" },
	{ "quoted password with spaces and escapes",
	  "machine h login alice password \"a b\\\"c\\\\d\"\n", "h", "alice",
	  "a b\"c\\d" },
	{ "account tokens are ignored",
	  "machine h login alice account x password pw\n", "h", "alice",
	  "pw" },
	{ "a macdef body is not parsed as entries",
	  "macdef init\nmachine h login alice password evil\n\nmachine h "
	  "login alice password good\n", "h", "alice", "good" },
	{ "no entry for the host", "machine other login alice password pw\n",
	  "h", "alice", NULL },
	{ "wrong login", "machine h login bob password pw\n", "h", "alice",
	  NULL },
	{ "entry without a password", "machine h login alice\n", "h",
	  "alice", NULL },
	{ "password cut short at the end", "machine h login alice password",
	  "h", "alice", NULL },
	{ "empty text", "", "h", "alice", NULL },
	{ "host name as a password is not a machine",
	  "machine x login alice password h\n", "h", "alice", NULL },
};

int main(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *pw = (char *)"unset";
		int rc = config_netrc_lookup(cases[i].text, cases[i].host,
					     cases[i].user, &pw);

		CHECK(rc == 0, "netrc: %s: returns 0", cases[i].what);
		CHECK_STR(pw, cases[i].want, "netrc: %s", cases[i].what);
		if (rc == 0)
			free(pw);
	}
	return check_done();
}
