#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"

static int set_str(char **field, const char *v)
{
	if (*field)
		return 0;	/* the command line wins */
	*field = strdup(v);
	return *field ? 0 : MFS_E_NOMEM;
}

static int parse_uint(const char *v, unsigned *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || end == v || *end || n > 100000000)
		return -1;
	*out = (unsigned)n;
	return 0;
}

/* host[:port] with optional user@ in front; [v6]:port accepted. */
static int parse_url(struct config *cfg, const char *url,
		     struct mfs_error *err)
{
	const char *p, *at, *hend, *colon;
	char *host = NULL;
	bool implicit;

	if (strncmp(url, "imaps://", 8) == 0) {
		implicit = true;
		p = url + 8;
	} else {
		implicit = false;
		p = url + 7;
	}
	at = strrchr(p, '@');
	if (at) {
		char *user = strndup(p, (size_t)(at - p));

		if (!user || set_str(&cfg->user, user) < 0) {
			free(user);
			return MFS_E_NOMEM;
		}
		free(user);
		p = at + 1;
	}
	if (*p == '[') {
		hend = strchr(p, ']');
		if (!hend)
			return mfs_fail(err, MFS_E_CONFIG, "bad URL %s", url);
		host = strndup(p + 1, (size_t)(hend - p - 1));
		colon = hend[1] == ':' ? hend + 1 : NULL;
	} else {
		hend = p + strcspn(p, ":/");
		host = strndup(p, (size_t)(hend - p));
		colon = *hend == ':' ? hend : NULL;
	}
	if (!host)
		return MFS_E_NOMEM;
	if (!*host) {
		free(host);
		return mfs_fail(err, MFS_E_CONFIG, "no host in %s", url);
	}
	if (set_str(&cfg->host, host) < 0) {
		free(host);
		return MFS_E_NOMEM;
	}
	free(host);
	if (colon && !cfg->port) {
		char port[8] = "";

		snprintf(port, sizeof(port), "%.*s",
			 (int)strcspn(colon + 1, "/"), colon + 1);
		if (parse_uint(port, &cfg->port) < 0 || cfg->port > 65535)
			return mfs_fail(err, MFS_E_CONFIG, "bad port in %s",
					url);
	}
	if (!cfg->tls && !(cfg->tls = strdup(implicit ? "implicit" :
								 "starttls")))
		return MFS_E_NOMEM;
	return 0;
}

static int set_key(struct config *cfg, const char *k, const char *v,
		   const char *file, int line, struct mfs_error *err)
{
	static const struct {
		const char *key;
		size_t off;
	} strs[] = {
#define S(f) { #f, offsetof(struct config, f) }
		S(host), S(user), S(tls), S(ca_file), S(password_command),
		S(oauth2_token_command), S(netrc_file), S(cache_size),
		S(cache_dir), S(debug), S(log_file), S(smtp_host), S(smtp_tls),
		S(from), S(save_sent), S(sent_folder), S(outbox_dir),
		S(trash_folder), S(idle_folders), S(strip_prefix),
#undef S
	};

	if (strcmp(k, "delete") == 0)
		return set_str(&cfg->delete_mode, v);
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		if (strcmp(k, strs[i].key) == 0)
			return set_str((char **)((char *)cfg + strs[i].off), v);
	static const struct {
		const char *key;
		size_t off;
	} nums[] = {
#define N(f) { #f, offsetof(struct config, f) }
		N(port), N(connections), N(timeout), N(smtp_port),
		N(settle_time), N(retry_initial), N(retry_max_delay),
		N(give_up_after), N(poll_interval),
#undef N
	};
	size_t ni;

	for (ni = 0; ni < sizeof(nums) / sizeof(nums[0]); ni++)
		if (strcmp(k, nums[ni].key) == 0)
			break;
	if (ni < sizeof(nums) / sizeof(nums[0])) {
		unsigned *f = (unsigned *)((char *)cfg + nums[ni].off);
		unsigned n;

		if (parse_uint(v, &n) < 0)
			return mfs_fail(err, MFS_E_CONFIG,
					"%s:%d: bad number for %s", file, line,
					k);
		if (!*f)
			*f = n;
		return 0;
	}
	if (strcmp(k, "allow_plaintext") == 0) {
		if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0)
			cfg->allow_plaintext = 1;
		return 0;
	}
	return mfs_fail(err, MFS_E_CONFIG, "%s:%d: unknown setting '%s'", file,
			line, k);
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* End v at a comment: a '#' that begins a word, i.e. at the start or after
 * a space or tab.  Commands (run with sh -c) are read as sh reads them:
 * quotes and backslashes protect a '#' and are kept for sh to remove, so
 * nothing sh would run is cut.  Other values have no quoting: an
 * apostrophe in "O'Brien" must not hide the comment after it.  False for
 * a command whose quote is never closed. */
static bool cut_comment(char *v, bool command)
{
	bool word_start = true;
	char quote = 0;

	for (char *p = v; *p; p++) {
		if (quote == '\'') {
			if (*p == '\'')
				quote = 0;
			continue;
		}
		if (quote == '"') {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '"')
				quote = 0;
			continue;
		}
		if (*p == '#' && word_start) {
			*p = '\0';
			break;
		}
		word_start = *p == ' ' || *p == '\t';
		if (!command)
			continue;
		if (*p == '\\' && p[1])
			p++;
		else if (*p == '\'' || *p == '"')
			quote = *p;
	}
	return !quote;
}

static bool is_command(const char *key)
{
	size_t n = strlen(key), c = strlen("_command");

	return n > c && strcmp(key + n - c, "_command") == 0;
}

static int load_file(struct config *cfg, const char *path,
		     struct mfs_error *err)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	bool in_section = false, found = false;
	int lineno = 0, rc = 0;

	if (!f)
		return mfs_fail(err, MFS_E_CONFIG,
				"account '%s' is not a URL and %s: %s",
				cfg->account, path, strerror(errno));
	while (getline(&line, &cap, f) > 0) {
		char *s = trim(line), *eq, *key, *val;

		lineno++;
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *e = strchr(s, ']');

			if (!e) {
				rc = mfs_fail(err, MFS_E_CONFIG,
					      "%s:%d: bad section", path,
					      lineno);
				goto out;
			}
			*e = '\0';
			in_section = strcmp(trim(s + 1), cfg->account) == 0;
			found |= in_section;
			continue;
		}
		if (!in_section)
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			rc = mfs_fail(err, MFS_E_CONFIG,
				      "%s:%d: expected key = value", path,
				      lineno);
			goto out;
		}
		*eq = '\0';
		key = trim(s);
		val = trim(eq + 1);
		if (!cut_comment(val, is_command(key))) {
			rc = mfs_fail(err, MFS_E_CONFIG,
				      "%s:%d: %s: unterminated quote", path,
				      lineno, key);
			goto out;
		}
		rc = set_key(cfg, key, trim(val), path, lineno, err);
		if (rc < 0)
			goto out;
	}
	if (!found)
		rc = mfs_fail(err, MFS_E_CONFIG, "no account [%s] in %s",
			      cfg->account, path);
out:
	free(line);
	fclose(f);
	return rc;
}

static char *xdg_path(const char *var, const char *fallback,
		      const char *rest)
{
	const char *base = getenv(var);
	const char *home = getenv("HOME");
	char *out = NULL;

	if (base && *base) {
		if (asprintf(&out, "%s/%s", base, rest) < 0)
			out = NULL;
	} else if (asprintf(&out, "%s/%s/%s", home ? home : "/", fallback,
			    rest) < 0) {
		out = NULL;
	}
	return out;
}

int config_resolve(struct config *cfg, struct mfs_error *err)
{
	int rc;

	if (!cfg->account)
		return mfs_fail(err, MFS_E_CONFIG, "no account given");
	if (strncmp(cfg->account, "imaps://", 8) == 0 ||
	    strncmp(cfg->account, "imap://", 7) == 0) {
		rc = parse_url(cfg, cfg->account, err);
		if (rc < 0)
			return rc;
		/* The config file may still add settings for a URL. */
	} else {
		if (!cfg->config_file &&
		    !(cfg->config_file = xdg_path("XDG_CONFIG_HOME", ".config",
						  "mailfs/config")))
			return MFS_E_NOMEM;
		rc = load_file(cfg, cfg->config_file, err);
		if (rc < 0)
			return rc;
	}
	if (!cfg->host)
		return mfs_fail(err, MFS_E_CONFIG, "account %s: no host",
				cfg->account);
	if (!cfg->user)
		return mfs_fail(err, MFS_E_CONFIG, "account %s: no user",
				cfg->account);
	if (!cfg->connections)
		cfg->connections = 4;
	if (!cfg->timeout)
		cfg->timeout = 15;
	if (!cfg->poll_interval)
		cfg->poll_interval = 60;
	if (!cfg->cache_dir) {
		char *rest = NULL;

		/* The account name becomes one directory component. */
		if (asprintf(&rest, "mailfs/%s@%s", cfg->user, cfg->host) < 0)
			return MFS_E_NOMEM;
		for (char *p = rest + 7; *p; p++)
			if (*p == '/')
				*p = '_';
		cfg->cache_dir = xdg_path("XDG_CACHE_HOME", ".cache", rest);
		free(rest);
		if (!cfg->cache_dir)
			return MFS_E_NOMEM;
	}
	if (!cfg->outbox_dir) {
		char *rest = NULL;

		if (asprintf(&rest, "mailfs/%s@%s/outbox", cfg->user,
			     cfg->host) < 0)
			return MFS_E_NOMEM;
		for (char *p = rest + 7; *p && strcmp(p, "/outbox"); p++)
			if (*p == '/')
				*p = '_';
		cfg->outbox_dir = xdg_path("XDG_DATA_HOME", ".local/share", rest);
		free(rest);
		if (!cfg->outbox_dir)
			return MFS_E_NOMEM;
	}
	if (!cfg->smtp_host && !(cfg->smtp_host = strdup(cfg->host)))
		return MFS_E_NOMEM;
	if (!cfg->from && strchr(cfg->user, '@') &&
	    !(cfg->from = strdup(cfg->user)))
		return MFS_E_NOMEM;
	if (!cfg->settle_time)
		cfg->settle_time = 2;
	if (!cfg->retry_initial)
		cfg->retry_initial = 60;
	if (!cfg->retry_max_delay)
		cfg->retry_max_delay = 3600;
	if (!cfg->give_up_after)
		cfg->give_up_after = 5 * 24 * 3600;
	if (cfg->delete_mode && strcmp(cfg->delete_mode, "trash") &&
	    strcmp(cfg->delete_mode, "expunge"))
		return mfs_fail(err, MFS_E_CONFIG,
				"delete must be trash or expunge, not '%s'",
				cfg->delete_mode);
	if (cfg->save_sent && strcmp(cfg->save_sent, "yes") &&
	    strcmp(cfg->save_sent, "no"))
		return mfs_fail(err, MFS_E_CONFIG,
				"save_sent must be yes or no, not '%s'",
				cfg->save_sent);
	if (cfg->strip_prefix && strcmp(cfg->strip_prefix, "yes") &&
	    strcmp(cfg->strip_prefix, "no"))
		return mfs_fail(err, MFS_E_CONFIG,
				"strip_prefix must be yes or no, not '%s'",
				cfg->strip_prefix);
	return 0;
}

int config_smtp_tls(const struct config *cfg, int *implicit,
		    struct mfs_error *err)
{
	const char *t = cfg->smtp_tls;

	if (!t)
		t = cfg->smtp_port == 465 ? "implicit" : "starttls";
	if (strcmp(t, "implicit") == 0)
		*implicit = 1;
	else if (strcmp(t, "starttls") == 0)
		*implicit = 0;
	else
		return mfs_fail(err, MFS_E_CONFIG,
				"smtp_tls must be starttls or implicit, not "
				"'%s'", t);
	return 0;
}

int config_tls(const struct config *cfg, enum imap_tls *tls,
	       struct mfs_error *err)
{
	const char *t = cfg->tls ? cfg->tls : "implicit";

	if (strcmp(t, "implicit") == 0)
		*tls = IMAP_TLS_IMPLICIT;
	else if (strcmp(t, "starttls") == 0)
		*tls = IMAP_TLS_STARTTLS;
	else if (strcmp(t, "none") == 0)
		*tls = IMAP_TLS_NONE;
	else
		return mfs_fail(err, MFS_E_CONFIG,
				"tls must be implicit, starttls or none, not "
				"'%s'", t);
	return 0;
}

int config_cache_bytes(const struct config *cfg, uint64_t *bytes,
		       struct mfs_error *err)
{
	const char *s = cfg->cache_size ? cfg->cache_size : "2G";
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || end == s)
		goto bad;
	switch (toupper((unsigned char)*end)) {
	case 'K': n <<= 10; end++; break;
	case 'M': n <<= 20; end++; break;
	case 'G': n <<= 30; end++; break;
	case '\0': break;
	default: goto bad;
	}
	if (*end)
		goto bad;
	*bytes = n;
	return 0;
bad:
	return mfs_fail(err, MFS_E_CONFIG, "bad cache_size '%s'", s);
}

/* One netrc token: a word, or a "quoted string" with backslash escapes.
 * Returns the position after it, or NULL at the end of the text. */
static const char *netrc_token(const char *p, char *tok, size_t len)
{
	size_t n = 0;

	while (*p && isspace((unsigned char)*p))
		p++;
	if (!*p)
		return NULL;
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			if (n + 1 < len)
				tok[n++] = *p;
		}
		if (*p == '"')
			p++;
	} else {
		for (; *p && !isspace((unsigned char)*p); p++)
			if (n + 1 < len)
				tok[n++] = *p;
	}
	tok[n] = '\0';
	return p;
}

int config_netrc_lookup(const char *text, const char *host,
			const char *user, char **password)
{
	char tok[1024], login[1024] = "", pass[1024] = "";
	const char *p = text;
	bool in = false, have_pass = false, done = false;
	int rc = 0;

	*password = NULL;
	while (!done) {
		const char *next = netrc_token(p, tok, sizeof(tok));
		bool entry = !next || strcmp(tok, "machine") == 0 ||
			     strcmp(tok, "default") == 0 ||
			     strcmp(tok, "macdef") == 0;

		/* An entry ends where the next one (or a macro) starts. */
		if (entry && in && have_pass &&
		    (!login[0] || !user || strcmp(login, user) == 0))
			break;
		if (!next) {
			have_pass = false;
			break;
		}
		p = next;
		if (strcmp(tok, "machine") == 0) {
			p = netrc_token(p, tok, sizeof(tok));
			in = p && strcasecmp(tok, host) == 0;
			login[0] = '\0';
			have_pass = false;
			done = !p;
		} else if (strcmp(tok, "default") == 0) {
			in = true;
			login[0] = '\0';
			have_pass = false;
		} else if (strcmp(tok, "macdef") == 0) {
			/* A macro body runs to the next empty line. */
			const char *end = strstr(p, "\n\n");

			in = false;
			p = end ? end + 2 : p + strlen(p);
		} else if (strcmp(tok, "login") == 0 ||
			   strcmp(tok, "password") == 0 ||
			   strcmp(tok, "account") == 0) {
			bool is_login = tok[0] == 'l', is_pass = tok[0] == 'p';

			p = netrc_token(p, tok, sizeof(tok));
			if (!p) {
				have_pass = false;	/* cut short */
				break;
			}
			if (in && is_login)
				snprintf(login, sizeof(login), "%s", tok);
			if (in && is_pass) {
				snprintf(pass, sizeof(pass), "%s", tok);
				have_pass = true;
			}
		}
	}
	if (have_pass && !(*password = strdup(pass)))
		rc = MFS_E_NOMEM;
	explicit_bzero(tok, sizeof(tok));
	explicit_bzero(pass, sizeof(pass));
	return rc;
}

int config_netrc_password(const struct config *cfg, char **secret,
			  struct mfs_error *err)
{
	const char *home = getenv("HOME");
	char path[PATH_MAX], *text = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int rc;

	if (cfg->netrc_file)
		snprintf(path, sizeof(path), "%s", cfg->netrc_file);
	else if (home && *home)
		snprintf(path, sizeof(path), "%s/.netrc", home);
	else
		return mfs_fail(err, MFS_E_SECRET, "no password: no "
				"password_command, and no $HOME for ~/.netrc");
	f = fopen(path, "re");
	if (!f)
		return mfs_fail(err, MFS_E_SECRET, "no password: no "
				"password_command, and %s: %s", path,
				strerror(errno));
	n = getdelim(&text, &cap, '\0', f);
	fclose(f);
	if (n < 0) {
		free(text);
		return mfs_fail(err, MFS_E_SECRET, "%s: empty or unreadable",
				path);
	}
	rc = config_netrc_lookup(text, cfg->host, cfg->user, secret);
	explicit_bzero(text, cap);
	free(text);
	if (rc < 0)
		return mfs_fail(err, rc, "out of memory");
	if (!*secret)
		return mfs_fail(err, MFS_E_SECRET, "%s: no password for %s "
				"at %s", path, cfg->user ? cfg->user : "(any)",
				cfg->host);
	return 0;
}

int config_mkdirs(const char *dir, struct mfs_error *err)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);

	if (len >= sizeof(path))
		return mfs_fail(err, MFS_E_CONFIG, "path too long: %s", dir);
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(path, 0700) < 0 && errno != EEXIST)
				return mfs_fail(err, MFS_E_IO, "mkdir %s: %s",
						path, strerror(errno));
			*p = c;
			if (!c)
				break;
		}
	}
	/* An existing directory may have been made with a laxer umask. */
	if (chmod(dir, 0700) < 0)
		return mfs_fail(err, MFS_E_IO, "chmod %s: %s", dir,
				strerror(errno));
	return 0;
}

void config_clear(struct config *cfg)
{
	char **strs[] = { &cfg->account, &cfg->host, &cfg->user, &cfg->tls,
			  &cfg->ca_file, &cfg->password_command,
			  &cfg->oauth2_token_command, &cfg->netrc_file,
			  &cfg->cache_size, &cfg->cache_dir,
			  &cfg->config_file, &cfg->debug, &cfg->log_file,
			  &cfg->smtp_host, &cfg->smtp_tls, &cfg->from,
			  &cfg->save_sent, &cfg->sent_folder,
			  &cfg->outbox_dir, &cfg->delete_mode,
			  &cfg->trash_folder, &cfg->idle_folders,
			  &cfg->strip_prefix };

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
}
