/* main.c - options, log in before mounting, then serve.
 *
 * Order matters (as in sshfs): everything that can fail for a reason the
 * user must hear about (bad options, mountpoint, password, TLS, login)
 * happens in the foreground, before mounting and daemonizing; the index
 * and the threads start only after the fork. */
#include <curl/curl.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "acctcheck.h"
#include "acctlock.h"
#include "changes.h"
#include "cache.h"
#include "config.h"
#include "cred.h"
#include "control.h"
#include "fsops.h"
#include "import.h"
#include "index.h"
#include "log.h"
#include "mime.h"
#include "notify.h"
#include "outbox_dir.h"
#include "outbox.h"
#include "imap_parse.h"
#include "pool.h"
#include "prefetch.h"
#include "sync.h"
#include "watch.h"

#define NOFILE_MAX ((rlim_t)1 << 20)

enum { KEY_HELP, KEY_VERSION, KEY_CHECK, KEY_DISCARD };

#define OPT(t, f) { t, offsetof(struct config, f), 0 }

static const struct fuse_opt opt_spec[] = {
	OPT("config=%s", config_file),
	OPT("host=%s", host),
	OPT("port=%u", port),
	OPT("user=%s", user),
	OPT("tls=%s", tls),
	OPT("allow_plaintext", allow_plaintext),
	OPT("ca_file=%s", ca_file),
	OPT("password_command=%s", password_command),
	OPT("oauth2_token_command=%s", oauth2_token_command),
	OPT("netrc_file=%s", netrc_file),
	OPT("connections=%u", connections),
	OPT("cache_size=%s", cache_size),
	OPT("cache_dir=%s", cache_dir),
	OPT("debug=%s", debug),
	OPT("log_file=%s", log_file),
	OPT("timeout=%u", timeout),
	OPT("poll_interval=%u", poll_interval),
	OPT("idle_folders=%s", idle_folders),
	OPT("smtp_host=%s", smtp_host),
	OPT("smtp_port=%u", smtp_port),
	OPT("smtp_tls=%s", smtp_tls),
	OPT("from=%s", from),
	OPT("save_sent=%s", save_sent),
	OPT("sent_folder=%s", sent_folder),
	OPT("outbox_dir=%s", outbox_dir),
	OPT("settle_time=%u", settle_time),
	OPT("retry_initial=%u", retry_initial),
	OPT("retry_max_delay=%u", retry_max_delay),
	OPT("give_up_after=%u", give_up_after),
	OPT("delete=%s", delete_mode),
	OPT("trash_folder=%s", trash_folder),
	OPT("strip_prefix=%s", strip_prefix),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("--check", KEY_CHECK),
	/* fstab's own words mean nothing to us. */
	FUSE_OPT_KEY("_netdev", KEY_DISCARD),
	FUSE_OPT_KEY("noauto", KEY_DISCARD),
	FUSE_OPT_KEY("auto", KEY_DISCARD),
	FUSE_OPT_KEY("user", KEY_DISCARD),
	FUSE_OPT_KEY("users", KEY_DISCARD),
	FUSE_OPT_KEY("nofail", KEY_DISCARD),
	FUSE_OPT_END
};

struct cmdline {
	struct config cfg;
	char *mountpoint;
	bool help, version, check;
	int nonopt;
};

static void usage(const char *prog)
{
	printf("usage: %s [options] ACCOUNT|imaps://user@host[:port] MOUNTPOINT\n"
	       "       %s --check [options] ACCOUNT|imaps://user@host[:port]\n"
	       "\n"
	       "Mount an IMAP account as a directory tree.  Every -o KEY=VALUE is\n"
	       "also a config file key (defaults in parentheses); see mailfs(1).\n"
	       "--check logs in over IMAP and SMTP, says what a mount would use\n"
	       "and mounts nothing; the exit status says what failed.\n"
	       "\n"
	       "Account:\n"
	       "    -o config=FILE         config file ($XDG_CONFIG_HOME/mailfs/config)\n"
	       "    -o host=HOST -o port=N -o user=NAME   the IMAP server and login\n"
	       "                           (or from ACCOUNT's section, or the URL)\n"
	       "    -o tls=implicit|starttls|none   (implicit on 993; none needs\n"
	       "                           -o allow_plaintext)\n"
	       "    -o allow_plaintext     permit tls=none: passwords in clear\n"
	       "    -o ca_file=FILE        trust these CA certificates\n"
	       "    -o password_command=CMD  first line of its output is the password\n"
	       "                           (run for every login)\n"
	       "    -o oauth2_token_command=CMD  log in with XOAUTH2 using its output\n"
	       "    -o netrc_file=FILE     password from this netrc (~/.netrc)\n"
	       "\n"
	       "Reading:\n"
	       "    -o connections=N       IMAP connections for reading (4)\n"
	       "    -o cache_size=N[KMG]   body and decoded parts cache cap (2G)\n"
	       "    -o cache_dir=DIR       index and cache\n"
	       "                           ($XDG_CACHE_HOME/mailfs/USER@HOST)\n"
	       "    -o timeout=SECONDS     network timeout; an uncached read fails\n"
	       "                           with EIO after it when offline (15)\n"
	       "    -o poll_interval=SECONDS  full resync of every folder (60)\n"
	       "    -o idle_folders=N      IDLE on INBOX and N-1 recent folders (2)\n"
	       "    -o strip_prefix=yes|no show folders below INBOX. at the top (yes)\n"
	       "\n"
	       "Changing:\n"
	       "    -o delete=trash|expunge  what rm does outside Trash (trash)\n"
	       "    -o trash_folder=NAME   (the \\Trash folder, else Trash ...)\n"
	       "    -o ro                  read-only mount\n"
	       "\n"
	       "Sending (outbox/):\n"
	       "    -o smtp_host=HOST -o smtp_port=N   (the IMAP host, 587 or 465)\n"
	       "    -o smtp_tls=starttls|implicit      (starttls)\n"
	       "    -o from=ADDRESS        sender when a message has no From\n"
	       "    -o save_sent=yes|no    copy sent mail to Sent (yes)\n"
	       "    -o sent_folder=NAME    (the \\Sent folder, else Sent ...)\n"
	       "    -o outbox_dir=DIR      the spool\n"
	       "                           ($XDG_DATA_HOME/mailfs/USER@HOST/outbox)\n"
	       "    -o settle_time=S       quiet time before a file is sent (2)\n"
	       "    -o retry_initial=S -o retry_max_delay=S   retry delays (60, 3600)\n"
	       "    -o give_up_after=S     fail a message after (432000: 5 days)\n"
	       "\n"
	       "Logging:\n"
	       "    -o debug=imap:fs:sync:cache   debug output by category\n"
	       "    -o log_file=FILE       log here instead of syslog/stderr\n"
	       "\n"
	       "FUSE:\n",
	       prog, prog);
	fuse_cmdline_help();
	fuse_lowlevel_help();
	printf("\nUnmount with: fusermount3 -u MOUNTPOINT\n");
}

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct cmdline *cl = data;

	(void)outargs;
	switch (key) {
	case KEY_HELP:
		cl->help = true;
		return 0;
	case KEY_CHECK:
		cl->check = true;
		return 0;
	case KEY_VERSION:
		cl->version = true;
		return 0;
	case KEY_DISCARD:
		return 0;
	case FUSE_OPT_KEY_NONOPT:
			if (cl->nonopt == 0) {
			cl->nonopt++;
			cl->cfg.account = strdup(arg);
			return cl->cfg.account ? 0 : -1;
		}
		if (cl->nonopt == 1) {
			/* Checked by us, so a bad one gets our one line. */
			cl->nonopt++;
			cl->mountpoint = strdup(arg);
			return cl->mountpoint ? 0 : -1;
		}
		log_early(LOG_ERR, "unexpected argument '%s'", arg);
		return -1;
	default:
		return 1;
	}
}


/* The one line a user sees when mailfs cannot start; what is omitted
 * when the detail already names it. */
/* A server that is down or out of reach now may be back later; one that
 * refuses our certificate or password will not be, and an account never
 * mounted has nothing to show offline. */
static bool unreachable(int rc)
{
	return rc == MFS_E_CONNECT || rc == MFS_E_TIMEOUT ||
	       rc == MFS_E_CLOSED;
}

/* The exit status for a failure to start, by its cause (mailfs(1), EXIT
 * STATUS), so that a service manager restarts only what can succeed
 * later: an unreachable server can; a refused password, an unverifiable
 * certificate or a wrong configuration cannot until someone acts. */
static int exit_status(int rc)
{
	switch (rc) {
	case MFS_E_CONFIG:
	case MFS_E_INVAL:
		return EX_CONFIG;
	case MFS_E_AUTH:
	case MFS_E_SECRET:
		return EX_NOPERM;
	case MFS_E_TLS:
	case MFS_E_PROTO:
	case MFS_E_BAD:
	case MFS_E_UNSUPPORTED:
		return EX_PROTOCOL;
	case MFS_E_CONNECT:
	case MFS_E_TIMEOUT:
	case MFS_E_CLOSED:
	case MFS_E_TEMPFAIL:
		return EX_TEMPFAIL;
	default:
		return 1;
	}
}

static int fail_line(const char *what, const struct mfs_error *err)
{
	if (what)
		log_early(LOG_ERR, "%s: %s", what,
			  err->msg[0] ? err->msg : mfs_strerror(err->code));
	else
		log_early(LOG_ERR, "%s", err->msg[0] ? err->msg : mfs_strerror(err->code));
	return exit_status(err->code);
}

/* Until the daemon runs, libfuse's complaints are start-up errors and get
 * the same one-line form as ours; afterwards they go to the log.  libfuse
 * writes a line in several calls, so pieces are joined up to the newline. */
static bool started;
static pthread_mutex_t fuse_log_lock = PTHREAD_MUTEX_INITIALIZER;
static char fuse_line[1024];
static size_t fuse_len;

static void fuse_logger(enum fuse_log_level level, const char *fmt,
			va_list ap)
{
	const char *msg;
	int n;

	pthread_mutex_lock(&fuse_log_lock);
	n = vsnprintf(fuse_line + fuse_len, sizeof(fuse_line) - fuse_len, fmt,
		      ap);
	if (n > 0)
		fuse_len += (size_t)n;
	if (fuse_len >= sizeof(fuse_line))
		fuse_len = sizeof(fuse_line) - 1;
	if (fuse_len == 0 || (fuse_line[fuse_len - 1] != '\n' &&
			      fuse_len < sizeof(fuse_line) - 1)) {
		pthread_mutex_unlock(&fuse_log_lock);
		return;
	}
	while (fuse_len > 0 && fuse_line[fuse_len - 1] == '\n')
		fuse_line[--fuse_len] = '\0';
	msg = fuse_line;
	if (strncmp(msg, "fuse: ", 6) == 0)
		msg += 6;
	if (started)
		log_msg(level <= FUSE_LOG_ERR ? LOG_ERR : LOG_INFO, "fuse: %s",
			msg);
	else
		log_early(level <= FUSE_LOG_ERR ? LOG_ERR : LOG_INFO, "%s", msg);
	fuse_len = 0;
	fuse_line[0] = '\0';
	pthread_mutex_unlock(&fuse_log_lock);
}

/* The outbox's hooks: sent mail saved through the mailbox changes, and
 * outbox/ listings refreshed. */
struct sender {
	struct fsops *fsops;
	struct changes *changes;
};

static int save_sent(void *ctx, const char *data, size_t len,
		     struct mfs_error *err)
{
	return changes_save_sent(((struct sender *)ctx)->changes, data, len,
				 err);
}

static void outbox_changed(void *ctx, const char *name)
{
	fsops_outbox_changed(((struct sender *)ctx)->fsops, name);
}

static void outbox_log(void *ctx, bool error, const char *msg)
{
	(void)ctx;
	log_msg(error ? LOG_WARNING : LOG_INFO, "%s", msg);
}

/* SIGUSR1 asks for a resync.  Handlers may not take locks, so the signal
 * is blocked everywhere and this thread waits for it. */
struct sigthread {
	pthread_t thread;
	struct sync *sync;
	atomic_bool stop;	/* set by main, read by the thread */
	bool running;
};

static void *sig_main(void *arg)
{
	struct sigthread *st = arg;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	while (sigwait(&set, &sig) == 0 && !atomic_load(&st->stop)) {
		log_msg(LOG_INFO, "SIGUSR1: resync");
		sync_refresh(st->sync, 0);
	}
	return NULL;
}

static int parse_idle(const char *s, unsigned *n)
{
	char *end;
	unsigned long v;

	*n = 2;
	if (!s)
		return 0;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > 16)
		return -1;
	*n = (unsigned)v;
	return 0;
}

/* Every file open through the mount holds a descriptor here (a cached
 * body, a decoded part), so the usual soft limit of 1024 would fail the
 * 1000th concurrent open: take what the hard limit allows.  (Capped so a
 * limit of "unlimited" does not slow what walks every descriptor.) */
static void raise_nofile(void)
{
	struct rlimit rl;
	rlim_t want;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	want = rl.rlim_max < NOFILE_MAX ? rl.rlim_max : NOFILE_MAX;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = want;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Everything a mount is made of.  main starts the parts in this order and
 * tears them down in reverse; each part borrows only parts made before it. */
struct daemon {
	struct cmdline cl;
	struct fuse_cmdline_opts fo;
	struct imap_opts io;
	uint64_t cache_bytes;
	unsigned idle_slots, debug_mask;
	int smtp_implicit;
	char *index_path, *body_dir, *import_dir, *mnt_abs, *fsname;
	struct cred *cred;
	struct acctlock *alock;
	struct imap_conn *first;	/* the login at start, until the pool */
	struct fuse_session *se;
	struct fuse_loop_config *lc;
	bool handlers, mounted;
	struct fsops *fsops;
	struct index *ix;
	struct pool *pool;
	struct cache *cache;
	struct sync *sync;
	struct watch *watch;
	struct prefetch *prefetch;
	struct sigthread sigt;
	struct changes *changes;
	struct import *imp;
	struct sender sender;
	struct outbox *outbox;
	struct outbox_dir *obdir;
	struct control *ctl;
};

/* Options, the config file and what they imply, before anything is made.
 * true: go on; false: exit with *status (0 after --help). */
static bool options(struct daemon *d, struct fuse_args *args, int *status)
{
	struct cmdline *cl = &d->cl;
	struct mfs_error err = { 0 };
	struct stat st;

	/* Until the command line is read, a failure is the caller's usage. */
	*status = EX_USAGE;
	if (fuse_opt_parse(args, cl, opt_spec, opt_proc) < 0)
		return false;
	if (cl->help || cl->version) {
		if (cl->help)
			usage(args->argv[0]);
		else
			printf("mailfs %s (libfuse %s, %s)\n", MAILFS_VERSION,
			       fuse_pkgversion(), curl_version());
		*status = 0;
		return false;
	}
	if (fuse_parse_cmdline(args, &d->fo) != 0)
		return false;
	if (cl->check && (!cl->cfg.account || cl->mountpoint)) {
		log_early(LOG_ERR, "--check takes ACCOUNT and no MOUNTPOINT "
				   "(try --help)");
		return false;
	}
	if (!cl->cfg.account || (!cl->mountpoint && !cl->check)) {
		log_early(LOG_ERR, "need ACCOUNT and MOUNTPOINT (try --help)");
		return false;
	}
	errno = 0;
	if (!cl->check &&
	    (stat(cl->mountpoint, &st) < 0 || !S_ISDIR(st.st_mode))) {
		log_early(LOG_ERR, "mountpoint %s: %s", cl->mountpoint,
			  errno ? strerror(errno) : "not a directory");
		return false;
	}
	*status = EX_CONFIG;
	if (config_resolve(&cl->cfg, &err) < 0 ||
	    config_tls(&cl->cfg, &d->io.tls, &err) < 0 ||
	    config_cache_bytes(&cl->cfg, &d->cache_bytes, &err) < 0 ||
	    config_smtp_tls(&cl->cfg, &d->smtp_implicit, &err) < 0) {
		*status = fail_line("configuration", &err);
		return false;
	}
	if (parse_idle(cl->cfg.idle_folders, &d->idle_slots) < 0) {
		log_early(LOG_ERR, "configuration: idle_folders must be a number from 0 "
			  "to 16");
		return false;
	}
	if (cl->cfg.debug &&
	    log_parse_categories(cl->cfg.debug, &d->debug_mask) < 0) {
		log_early(LOG_ERR, "unknown debug category in '%s' (imap, fs, sync, "
			  "cache, all; separate with ':')", cl->cfg.debug);
		return false;
	}
	*status = 1;
	log_setup(d->debug_mask, false, cl->cfg.log_file);
	/* The password or token command runs for every login, not once:
	 * OAuth2 tokens expire long before a mount ends. */
	d->cred = cred_new(&cl->cfg);
	if (!d->cred)
		return false;
	d->io.host = cl->cfg.host;
	d->io.port = cl->cfg.port;
	d->io.user = cl->cfg.user;
	d->io.secret = cred_source(d->cred);
	d->io.netrc_file = cl->cfg.netrc_file;
	d->io.allow_plaintext = cl->cfg.allow_plaintext;
	d->io.ca_file = cl->cfg.ca_file;
	d->io.timeout_s = cl->cfg.timeout;
	if (d->debug_mask & LOG_CAT_IMAP)
		d->io.trace = log_imap_trace;
	if (asprintf(&d->index_path, "%s/index.sqlite", cl->cfg.cache_dir) < 0 ||
	    asprintf(&d->body_dir, "%s/bodies", cl->cfg.cache_dir) < 0 ||
	    asprintf(&d->import_dir, "%s/import", cl->cfg.cache_dir) < 0 ||
	    asprintf(&d->fsname, "-ofsname=mailfs:%s,subtype=mailfs,"
				 "default_permissions",
		     cl->cfg.account) < 0)
		return false;
	/* fsname carries the account; commas in it would split options. */
	for (char *p = d->fsname + 15; *p && strncmp(p, ",subtype", 8); p++)
		if (*p == ',')
			*p = '_';
	return fuse_opt_add_arg(args, d->fsname) == 0;
}

/* Lock the account, log in, mount and become a daemon.  0, or the exit
 * status; every failure has said why in one line. */
static int log_in_and_mount(struct daemon *d, struct fuse_args *args)
{
	struct cmdline *cl = &d->cl;
	struct mfs_error err = { 0 };
	sigset_t usr1;
	int rc;

	/* The session checks the remaining -o options: let a typo fail
	 * before we talk to the server. */
	d->fsops = fsops_new(cl->cfg.timeout);
	if (!d->fsops)
		return 1;
	d->se = fuse_session_new(args, fsops_ops(), sizeof(*fsops_ops()),
				 d->fsops);
	if (!d->se)
		return EX_USAGE;

	/* One daemon per account, decided before we log in: a second mount
	 * must not make the user type a passphrase only to be refused. */
	if (config_mkdirs(cl->cfg.cache_dir, &err) < 0)
		return fail_line("cache directory", &err);
	if (config_mkdirs(cl->cfg.outbox_dir, &err) < 0)
		return fail_line("outbox directory", &err);
	d->mnt_abs = realpath(cl->mountpoint, NULL);
	if (!d->mnt_abs) {
		log_early(LOG_ERR, "mountpoint %s: %s", cl->mountpoint, strerror(errno));
		return EX_USAGE;
	}
	if (acctlock_take(cl->cfg.cache_dir, cl->cfg.outbox_dir, d->mnt_abs,
			  cl->cfg.timeout, &d->alock, &err) < 0)
		return fail_line(cl->cfg.account, &err);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	mime_init();
	rc = imap_open(&d->io, &d->first, &err);
	if (rc < 0 && !(unreachable(rc) && access(d->index_path, F_OK) == 0))
		return fail_line(err.code == MFS_E_SECRET ? "credentials" : NULL,
				 &err);
	if (rc < 0)
		log_early(LOG_WARNING, "%s; serving %s offline from its index until the "
			  "server is back",
			  err.msg[0] ? err.msg : mfs_strerror(err.code),
			  cl->cfg.account);
	/* The user may have typed a passphrase for that one; from now on a
	 * stuck command must fail a login (retried later), not hang it. */
	cred_limit(d->cred, cl->cfg.timeout);
	if (config_mkdirs(d->body_dir, &err) < 0)
		return fail_line("cache directory", &err);
	if (fuse_set_signal_handlers(d->se) != 0)
		return 1;
	d->handlers = true;
	if (fuse_session_mount(d->se, cl->mountpoint) != 0) {
		log_early(LOG_ERR, "cannot mount on %s", cl->mountpoint);
		return 1;
	}
	d->mounted = true;
	if (fuse_daemonize(d->fo.foreground) != 0)
		return 1;
	log_setup(d->debug_mask, !d->fo.foreground, cl->cfg.log_file);
	started = true;
	/* The parent has exited: the lock file must name the daemon. */
	if (acctlock_note(d->alock, &err) < 0)
		log_msg(LOG_WARNING, "lock file: %s", err.msg);
	if (!acctlock_held(d->alock))
		log_msg(LOG_WARNING, "cannot lock %s: a second mount of this "
				     "account would not be refused",
			cl->cfg.cache_dir);

	/* Before any thread exists, so that all of them inherit it. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	return 0;
}

/* The index and everything that reads the server: pool, cache, sync, IDLE
 * watchers, prefetch, the SIGUSR1 thread.  After the fork: SQLite handles
 * and threads must not cross it.  0 or -1 (logged). */
static int start_readers(struct daemon *d)
{
	struct config *cfg = &d->cl.cfg;
	struct mfs_error err = { 0 };
	struct sync_opts so = {
		.hooks = { .folder_changed = fsops_folder_changed,
			   .msg_gone = fsops_msg_gone,
			   .entry_gone = fsops_entry_gone,
			   .ctx = d->fsops },
		.interval_s = cfg->poll_interval,
		.strip_prefix = !cfg->strip_prefix ||
				strcmp(cfg->strip_prefix, "yes") == 0,
	};

	if (index_open(d->index_path, &d->ix, &err) < 0) {
		log_msg(LOG_ERR, "%s", err.msg);
		return -1;
	}
	if (pool_new(&d->io, cfg->connections, d->first, &d->pool) < 0)
		return -1;
	d->first = NULL;
	so.ix = d->ix;
	so.pool = d->pool;
	if (cache_open(d->body_dir, d->ix, d->pool, d->cache_bytes,
		       cfg->timeout, fsops_size_changed, d->fsops, &d->cache,
		       &err) < 0)
		return -1;
	if (fsops_start_notifier(d->fsops, d->se) < 0 ||
	    sync_start(&so, &d->sync) < 0)
		return -1;
	fsops_attach(d->fsops, d->ix, d->cache, d->sync);
	if (watch_start(d->pool, d->ix, d->sync, d->idle_slots, &d->watch) < 0 ||
	    prefetch_start(d->ix, d->cache, &d->prefetch) < 0)
		return -1;
	fsops_attach_watch(d->fsops, d->watch);
	d->sigt.sync = d->sync;
	if (pthread_create(&d->sigt.thread, NULL, sig_main, &d->sigt) != 0)
		return -1;
	d->sigt.running = true;
	return 0;
}

/* Everything that writes: the mailbox changes, import, the outbox queue
 * and outbox/, and .mailfs/.  0 or -1 (logged). */
static int start_writers(struct daemon *d)
{
	struct config *cfg = &d->cl.cfg;
	struct mfs_error err = { 0 };
	struct changes_opts ao = {
		.ix = d->ix, .pool = d->pool, .sync = d->sync,
		.timeout_s = cfg->timeout,
		.expunge = cfg->delete_mode &&
			   strcmp(cfg->delete_mode, "expunge") == 0,
		.trash = cfg->trash_folder, .sent = cfg->sent_folder,
		.hooks = { .folder_changed = fsops_folder_changed,
			   .msg_gone = fsops_msg_gone, .ctx = d->fsops },
	};
	struct outbox_opts oo = {
		.dir = cfg->outbox_dir, .default_from = cfg->from,
		.smtp = { .host = cfg->smtp_host, .port = cfg->smtp_port,
			  .tls = d->smtp_implicit ? SMTP_TLS_IMPLICIT :
						    SMTP_TLS_STARTTLS,
			  .user = cfg->user, .secret = d->io.secret,
			  .ca_file = cfg->ca_file, .timeout_s = cfg->timeout },
		.settle_s = cfg->settle_time,
		.retry_initial_s = cfg->retry_initial,
		.retry_max_s = cfg->retry_max_delay,
		.give_up_s = cfg->give_up_after,
		.changed = outbox_changed, .log = outbox_log,
		.ctx = &d->sender,
	};
	struct control_opts co;

	d->changes = changes_new(&ao);
	if (!d->changes)
		return -1;
	fsops_attach_act(d->fsops, d->changes);
	d->imp = import_new(d->import_dir, d->ix, d->changes, getuid(),
			    getgid());
	if (!d->imp)
		return -1;
	import_set_changed(d->imp, fsops_folder_changed, d->fsops);
	if (fsops_attach_imp(d->fsops, d->imp) < 0)
		return -1;

	d->sender = (struct sender){ d->fsops, d->changes };
	if (!cfg->save_sent || strcmp(cfg->save_sent, "yes") == 0)
		oo.save_sent = save_sent;
	if (outbox_start(&oo, &d->outbox, &err) < 0) {
		log_msg(LOG_ERR, "outbox: %s", err.msg);
		return -1;
	}
	d->obdir = outbox_dir_new(cfg->outbox_dir, d->outbox, getuid(),
				  getgid());
	if (!d->obdir ||
	    fsops_add_subtree(d->fsops, outbox_dir_subtree(d->obdir)) < 0)
		return -1;
	co = (struct control_opts){
		.ix = d->ix, .sync = d->sync, .watch = d->watch,
		.cache = d->cache, .prefetch = d->prefetch,
		.outbox = d->outbox, .act = d->changes,
		.outbox_dir = cfg->outbox_dir, .refresh_timeout_s = 600,
		.uid = getuid(), .gid = getgid(),
	};
	d->ctl = control_new(&co);
	if (!d->ctl || fsops_add_subtree(d->fsops, control_subtree(d->ctl)) < 0)
		return -1;
	return 0;
}

/* A service manager that asked (Type=notify) learns when the tree can be
 * used and when it is going. */
static void tell_manager(const char *state)
{
	int rc = notify_manager(state);

	if (rc < 0)
		log_msg(LOG_WARNING, "NOTIFY_SOCKET: %s", strerror(-rc));
}

/* Until unmounted or signalled; 0 for a normal unmount. */
static int serve(struct daemon *d)
{
	int rc;

	if (d->fo.singlethread) {
		rc = fuse_session_loop(d->se);
	} else {
		d->lc = fuse_loop_cfg_create();
		if (!d->lc)
			return 1;
		fuse_loop_cfg_set_max_threads(d->lc, 16);
		rc = fuse_session_loop_mt(d->se, d->lc);
	}
	/* A signal that ends the loop (SIGTERM, SIGINT, SIGHUP from
	 * fusermount or the user) is a normal unmount. */
	return rc < 0 ? 1 : 0;
}

static void teardown(struct daemon *d)
{
	/* The notifier writes to /dev/fuse, which unmounting closes: its
	 * descriptor number could then be another file's (TSan saw the
	 * writev race the close).  Stopped first; notes after it are
	 * dropped, and an unmounted tree has no cache to invalidate. */
	if (d->fsops)
		fsops_stop_notifier(d->fsops);
	if (d->se && d->mounted) {
		fuse_session_unmount(d->se);
		d->mounted = false;
	}
	if (d->fsops)
		fsops_detach(d->fsops);
	control_free(d->ctl);
	if (d->sigt.running) {
		atomic_store(&d->sigt.stop, true);
		pthread_kill(d->sigt.thread, SIGUSR1);
		pthread_join(d->sigt.thread, NULL);
	}
	prefetch_stop(d->prefetch);
	watch_stop(d->watch);
	changes_free(d->changes);
	import_free(d->imp);
	outbox_stop(d->outbox);
	outbox_dir_free(d->obdir);
	sync_stop(d->sync);
	if (d->se) {
		if (d->handlers)
			fuse_remove_signal_handlers(d->se);
		fuse_session_destroy(d->se);
	}
	fuse_loop_cfg_destroy(d->lc);
	cache_close(d->cache);
	pool_free(d->pool);
	imap_close(d->first);
	index_close(d->ix);
	fsops_free(d->fsops);
	cred_free(d->cred);
	/* Last: everything that shares the account's files is gone. */
	acctlock_free(d->alock);
	free(d->mnt_abs);
	free(d->fsname);
	free(d->index_path);
	free(d->body_dir);
	free(d->import_dir);
	free(d->cl.mountpoint);
	config_clear(&d->cl.cfg);
}

/* mailfs --check: log in, say what a mount would use, mount nothing. */
static int check(struct daemon *d)
{
	struct config *cfg = &d->cl.cfg;
	struct mfs_error err = { 0 };
	const char *tmp = getenv("TMPDIR");
	char log_to[600];
	struct smtp_opts so = {
		.host = cfg->smtp_host, .port = cfg->smtp_port,
		.tls = d->smtp_implicit ? SMTP_TLS_IMPLICIT : SMTP_TLS_STARTTLS,
		.user = cfg->user, .secret = d->io.secret,
		.ca_file = cfg->ca_file, .timeout_s = cfg->timeout,
	};
	struct acctcheck_opts o = {
		.account = cfg->account, .imap = &d->io, .smtp = &so,
		.strip_prefix = !cfg->strip_prefix ||
				strcmp(cfg->strip_prefix, "yes") == 0,
		.trash = cfg->trash_folder, .sent = cfg->sent_folder,
		.save_sent = !cfg->save_sent ||
			     strcmp(cfg->save_sent, "yes") == 0,
		.expunge = cfg->delete_mode &&
			   strcmp(cfg->delete_mode, "expunge") == 0,
		.cache_dir = cfg->cache_dir, .index_path = d->index_path,
		.outbox_dir = cfg->outbox_dir, .log_to = log_to,
		.tmp_dir = tmp && *tmp ? tmp : "/tmp",
	};

	snprintf(log_to, sizeof(log_to), "%s",
		 cfg->log_file ? cfg->log_file :
		 "syslog, or standard error with -f (the journal under "
		 "systemd)");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (acctcheck_run(&o, stdout, &err) < 0)
		return fail_line(NULL, &err);
	return 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct daemon d = { .idle_slots = 2 };
	int status = 1;

	/* Sixteen FUSE threads would each get a malloc arena that keeps
	 * what a big listing once needed; two are plenty for us. */
	mallopt(M_ARENA_MAX, 2);
	raise_nofile();
	fuse_set_log_func(fuse_logger);
	if (!options(&d, &args, &status))
		goto out;
	if (d.cl.check) {
		status = check(&d);
		goto out;
	}
	status = log_in_and_mount(&d, &args);
	if (status == 0) {
		status = 1;
		if (start_readers(&d) == 0 && start_writers(&d) == 0) {
			log_msg(LOG_INFO, "mounted %s on %s", d.cl.cfg.account,
				d.cl.mountpoint);
			tell_manager("READY=1\nSTATUS=mounted");
			status = serve(&d);
			tell_manager("STOPPING=1");
		}
	}
out:
	teardown(&d);
	fuse_opt_free_args(&args);
	return status;
}
