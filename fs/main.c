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
#include <unistd.h>

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
#include "outbox_dir.h"
#include "outbox.h"
#include "imap_parse.h"
#include "pool.h"
#include "prefetch.h"
#include "sync.h"
#include "watch.h"

#define NOFILE_MAX ((rlim_t)1 << 20)

enum { KEY_HELP, KEY_VERSION, KEY_DISCARD };

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
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
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
	bool help, version;
	int nonopt;
};

static void usage(const char *prog)
{
	printf("usage: %s [options] ACCOUNT|imaps://user@host[:port] MOUNTPOINT\n"
	       "\n"
	       "Mount an IMAP account as a directory tree.\n"
	       "\n"
	       "    -f                     stay in the foreground\n"
	       "    -d                     FUSE debug output (implies -f)\n"
	       "    -o config=FILE         config file ($XDG_CONFIG_HOME/mailfs/config)\n"
	       "    -o tls=implicit|starttls|none   (none needs -o allow_plaintext)\n"
	       "    -o ca_file=FILE        trust these CA certificates\n"
	       "    -o password_command=CMD  first line of its output is the password\n"
	       "                           (run for every login)\n"
	       "    -o oauth2_token_command=CMD  log in with XOAUTH2 using its output\n"
	       "    -o netrc_file=FILE     password from this netrc (default ~/.netrc)\n"
	       "    -o connections=N       IMAP connections for reading (4)\n"
	       "    -o cache_size=N[KMG]   body cache cap (1G)\n"
	       "    -o cache_dir=DIR       index and cache ($XDG_CACHE_HOME/mailfs/USER@HOST)\n"
	       "    -o timeout=SECONDS     network timeout; an uncached read fails\n"
	       "                           with EIO after it when offline (15)\n"
	       "    -o poll_interval=SECONDS  full resync of every folder (60)\n"
	       "    -o idle_folders=N      IDLE on INBOX and N-1 recent folders (2)\n"
	       "    -o debug=imap:fs:sync:cache   debug output by category\n"
	       "    -o log_file=FILE       log here instead of syslog/stderr\n"
	       "\n"
	       "See mailfs(1).  Unmount with: fusermount3 -u MOUNTPOINT\n",
	       prog);
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
		fprintf(stderr, "mailfs: unexpected argument '%s'\n", arg);
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

static int fail_line(const char *what, const struct mfs_error *err)
{
	if (what)
		fprintf(stderr, "mailfs: %s: %s\n", what,
			err->msg[0] ? err->msg : mfs_strerror(err->code));
	else
		fprintf(stderr, "mailfs: %s\n",
			err->msg[0] ? err->msg : mfs_strerror(err->code));
	return 1;
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
		fprintf(stderr, "mailfs: %s\n", msg);
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

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cmdline cl = { 0 };
	struct fuse_cmdline_opts fo = { 0 };
	struct mfs_error err = { 0 };
	struct imap_opts io = { 0 };
	struct imap_conn *first = NULL;
	struct fuse_session *se = NULL;
	struct fuse_loop_config *lc = NULL;
	struct fsops *fsops = NULL;
	struct index *ix = NULL;
	struct pool *pool = NULL;
	struct cache *cache = NULL;
	struct sync *sync = NULL;
	struct sync_hooks hooks;
	struct outbox_opts oo = { 0 };
	struct outbox *outbox = NULL;
	struct outbox_dir *obdir = NULL;
	struct sender sender = { 0 };
	struct changes_opts ao = { 0 };
	struct changes *act = NULL;
	struct import *imp = NULL;
	struct watch *watch = NULL;
	struct prefetch *prefetch = NULL;
	struct control *ctl = NULL;
	struct control_opts co = { 0 };
	struct sigthread sigt = { 0 };
	sigset_t usr1;
	unsigned idle_slots = 2;
	char *import_dir = NULL;
	int smtp_implicit = 0;
	struct stat st;
	struct cred *cred = NULL;
	struct acctlock *alock = NULL;
	char *mnt_abs = NULL;
	char *fsname = NULL, *index_path = NULL,
	     *body_dir = NULL;
	unsigned debug_mask = 0;
	uint64_t cache_bytes;
	bool mounted = false, handlers = false;
	int ret = 1, rc;

	/* Sixteen FUSE threads would each get a malloc arena that keeps
	 * what a big listing once needed; two are plenty for us. */
	mallopt(M_ARENA_MAX, 2);
	raise_nofile();
	fuse_set_log_func(fuse_logger);
	if (fuse_opt_parse(&args, &cl, opt_spec, opt_proc) < 0)
		goto out;
	if (cl.help) {
		usage(argv[0]);
		ret = 0;
		goto out;
	}
	if (cl.version) {
		printf("mailfs %s (libfuse %s, %s)\n", MAILFS_VERSION,
		       fuse_pkgversion(), curl_version());
		ret = 0;
		goto out;
	}
	if (fuse_parse_cmdline(&args, &fo) != 0)
		goto out;
	if (!cl.cfg.account || !cl.mountpoint) {
		fprintf(stderr, "mailfs: need ACCOUNT and MOUNTPOINT "
				"(try --help)\n");
		goto out;
	}
	errno = 0;
	if (stat(cl.mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "mailfs: mountpoint %s: %s\n", cl.mountpoint,
			errno ? strerror(errno) : "not a directory");
		goto out;
	}
	if (config_resolve(&cl.cfg, &err) < 0 ||
	    config_tls(&cl.cfg, &io.tls, &err) < 0 ||
	    config_cache_bytes(&cl.cfg, &cache_bytes, &err) < 0 ||
	    config_smtp_tls(&cl.cfg, &smtp_implicit, &err) < 0) {
		ret = fail_line("configuration", &err);
		goto out;
	}
	if (parse_idle(cl.cfg.idle_folders, &idle_slots) < 0) {
		fprintf(stderr, "mailfs: configuration: idle_folders must be "
				"a number from 0 to 16\n");
		goto out;
	}
	if (cl.cfg.debug && log_parse_categories(cl.cfg.debug, &debug_mask) < 0) {
		fprintf(stderr, "mailfs: unknown debug category in '%s' "
				"(imap, fs, sync, cache, all; separate with ':')\n",
			cl.cfg.debug);
		goto out;
	}
	log_setup(debug_mask, false, cl.cfg.log_file);
	/* The password or token command runs for every login, not once:
	 * OAuth2 tokens expire long before a mount ends. */
	cred = cred_new(&cl.cfg);
	if (!cred)
		goto out;
	io.host = cl.cfg.host;
	io.port = cl.cfg.port;
	io.user = cl.cfg.user;
	io.secret = cred_source(cred);
	io.netrc_file = cl.cfg.netrc_file;
	io.allow_plaintext = cl.cfg.allow_plaintext;
	io.ca_file = cl.cfg.ca_file;
	io.timeout_s = cl.cfg.timeout;
	if (debug_mask & LOG_CAT_IMAP)
		io.trace = log_imap_trace;

	if (asprintf(&index_path, "%s/index.sqlite", cl.cfg.cache_dir) < 0 ||
	    asprintf(&body_dir, "%s/bodies", cl.cfg.cache_dir) < 0 ||
	    asprintf(&fsname, "-ofsname=mailfs:%s,subtype=mailfs,"
			      "default_permissions",
		     cl.cfg.account) < 0)
		goto out;
	/* fsname carries the account; commas in it would split options. */
	for (char *p = fsname + 15; *p && strncmp(p, ",subtype", 8); p++)
		if (*p == ',')
			*p = '_';
	if (fuse_opt_add_arg(&args, fsname) < 0)
		goto out;

	/* The session checks the remaining -o options: let a typo fail
	 * before we talk to the server. */
	fsops = fsops_new(cl.cfg.timeout);
	if (!fsops)
		goto out;
	se = fuse_session_new(&args, fsops_ops(), sizeof(*fsops_ops()), fsops);
	if (!se)
		goto out;

	/* One daemon per account, decided before we log in: a second mount
	 * must not make the user type a passphrase only to be refused. */
	if (config_mkdirs(cl.cfg.cache_dir, &err) < 0) {
		ret = fail_line("cache directory", &err);
		goto out;
	}
	if (config_mkdirs(cl.cfg.outbox_dir, &err) < 0) {
		ret = fail_line("outbox directory", &err);
		goto out;
	}
	mnt_abs = realpath(cl.mountpoint, NULL);
	if (!mnt_abs) {
		fprintf(stderr, "mailfs: mountpoint %s: %s\n", cl.mountpoint,
			strerror(errno));
		goto out;
	}
	if (acctlock_take(cl.cfg.cache_dir, cl.cfg.outbox_dir, mnt_abs,
			  cl.cfg.timeout, &alock, &err) < 0) {
		ret = fail_line(cl.cfg.account, &err);
		goto out;
	}

	curl_global_init(CURL_GLOBAL_DEFAULT);
	mime_init();
	rc = imap_open(&io, &first, &err);
	if (rc < 0 && !(unreachable(rc) && access(index_path, F_OK) == 0)) {
		ret = fail_line(err.code == MFS_E_SECRET ? "credentials" : NULL,
				&err);
		goto out;
	}
	if (rc < 0)
		fprintf(stderr, "mailfs: %s; serving %s offline from its index "
				"until the server is back\n",
			err.msg[0] ? err.msg : mfs_strerror(err.code),
			cl.cfg.account);
	/* The user may have typed a passphrase for that one; from now on a
	 * stuck command must fail a login (retried later), not hang it. */
	cred_limit(cred, cl.cfg.timeout);
	if (config_mkdirs(body_dir, &err) < 0) {
		ret = fail_line("cache directory", &err);
		goto out;
	}
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	handlers = true;
	if (fuse_session_mount(se, cl.mountpoint) != 0) {
		fprintf(stderr, "mailfs: cannot mount on %s\n", cl.mountpoint);
		goto out;
	}
	mounted = true;
	if (fuse_daemonize(fo.foreground) != 0)
		goto out;
	log_setup(debug_mask, !fo.foreground, cl.cfg.log_file);
	started = true;
	/* The parent has exited: the lock file must name the daemon. */
	if (acctlock_note(alock, &err) < 0)
		log_msg(LOG_WARNING, "lock file: %s", err.msg);
	if (!acctlock_held(alock))
		log_msg(LOG_WARNING, "cannot lock %s: a second mount of this "
				     "account would not be refused",
			cl.cfg.cache_dir);

	/* Before any thread exists, so that all of them inherit it. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);

	/* After the fork: SQLite handles and threads must not cross it. */
	if (index_open(index_path, &ix, &err) < 0) {
		log_msg(LOG_ERR, "%s", err.msg);
		goto out;
	}
	if (pool_new(&io, cl.cfg.connections, first, &pool) < 0)
		goto out;
	first = NULL;
	if (cache_open(body_dir, ix, pool, cache_bytes, cl.cfg.timeout,
		       fsops_size_changed, fsops, &cache, &err) < 0)
		goto out;
	fsops_attach(fsops, ix, cache, NULL);
	if (fsops_start_notifier(fsops, se) < 0)
		goto out;
	hooks = (struct sync_hooks){ .folder_changed = fsops_folder_changed,
				     .msg_gone = fsops_msg_gone,
				     .entry_gone = fsops_entry_gone,
				     .ctx = fsops };
	if (sync_start(ix, pool, NULL, &hooks, cl.cfg.poll_interval, &sync) < 0)
		goto out;
	fsops_attach(fsops, ix, cache, sync);
	if (watch_start(pool, ix, sync, idle_slots, &watch) < 0 ||
	    prefetch_start(ix, cache, &prefetch) < 0)
		goto out;
	sigt.sync = sync;
	if (pthread_create(&sigt.thread, NULL, sig_main, &sigt) != 0)
		goto out;
	sigt.running = true;

	ao.ix = ix;
	ao.pool = pool;
	ao.sync = sync;
	ao.timeout_s = cl.cfg.timeout;
	ao.expunge = cl.cfg.delete_mode && strcmp(cl.cfg.delete_mode,
						  "expunge") == 0;
	ao.trash = cl.cfg.trash_folder;
	ao.sent = cl.cfg.sent_folder;
	ao.hooks = (struct changes_hooks){ .folder_changed = fsops_folder_changed,
				       .msg_gone = fsops_msg_gone,
				       .ctx = fsops };
	act = changes_new(&ao);
	if (!act)
		goto out;
	fsops_attach_act(fsops, act);
	if (asprintf(&import_dir, "%s/import", cl.cfg.cache_dir) < 0)
		goto out;
	imp = import_new(import_dir, ix, act, getuid(), getgid());
	if (!imp)
		goto out;
	import_set_changed(imp, fsops_folder_changed, fsops);
	if (fsops_attach_imp(fsops, imp) < 0)
		goto out;

	sender = (struct sender){ fsops, act };
	oo.dir = cl.cfg.outbox_dir;
	oo.default_from = cl.cfg.from;
	oo.smtp = (struct smtp_opts){
		.host = cl.cfg.smtp_host, .port = cl.cfg.smtp_port,
		.tls = smtp_implicit ? SMTP_TLS_IMPLICIT : SMTP_TLS_STARTTLS,
		.user = cl.cfg.user, .secret = io.secret,
		.ca_file = cl.cfg.ca_file,
		.timeout_s = cl.cfg.timeout,
	};
	oo.settle_s = cl.cfg.settle_time;
	oo.retry_initial_s = cl.cfg.retry_initial;
	oo.retry_max_s = cl.cfg.retry_max_delay;
	oo.give_up_s = cl.cfg.give_up_after;
	if (!cl.cfg.save_sent || strcmp(cl.cfg.save_sent, "yes") == 0)
		oo.save_sent = save_sent;
	oo.changed = outbox_changed;
	oo.log = outbox_log;
	oo.ctx = &sender;
	if (outbox_start(&oo, &outbox, &err) < 0) {
		log_msg(LOG_ERR, "outbox: %s", err.msg);
		goto out;
	}
	obdir = outbox_dir_new(cl.cfg.outbox_dir, outbox, getuid(), getgid());
	if (!obdir)
		goto out;
	if (fsops_add_subtree(fsops, outbox_dir_subtree(obdir)) < 0)
		goto out;
	co = (struct control_opts){
		.ix = ix, .sync = sync, .watch = watch, .cache = cache,
		.prefetch = prefetch, .outbox = outbox, .act = act,
		.outbox_dir = cl.cfg.outbox_dir,
		.refresh_timeout_s = 600, .uid = getuid(), .gid = getgid(),
	};
	ctl = control_new(&co);
	if (!ctl)
		goto out;
	if (fsops_add_subtree(fsops, control_subtree(ctl)) < 0)
		goto out;
	fsops_attach_watch(fsops, watch);
	log_msg(LOG_INFO, "mounted %s on %s", cl.cfg.account, cl.mountpoint);

	if (fo.singlethread) {
		ret = fuse_session_loop(se);
	} else {
		lc = fuse_loop_cfg_create();
		if (!lc)
			goto out;
		fuse_loop_cfg_set_max_threads(lc, 16);
		ret = fuse_session_loop_mt(se, lc);
	}
	/* A signal that ends the loop (SIGTERM, SIGINT, SIGHUP from
	 * fusermount or the user) is a normal unmount. */
	ret = ret < 0 ? 1 : 0;
out:
	/* The notifier writes to /dev/fuse, which unmounting closes: its
	 * descriptor number could then be another file's (TSan saw the
	 * writev race the close).  Stopped first; notes after it are
	 * dropped, and an unmounted tree has no cache to invalidate. */
	if (fsops)
		fsops_stop_notifier(fsops);
	if (se && mounted) {
		fuse_session_unmount(se);
		mounted = false;
	}
	if (fsops) {
		fsops_clear_subtrees(fsops);
		fsops_attach_act(fsops, NULL);
		fsops_attach_watch(fsops, NULL);
	}
	control_free(ctl);
	if (sigt.running) {
		atomic_store(&sigt.stop, true);
		pthread_kill(sigt.thread, SIGUSR1);
		pthread_join(sigt.thread, NULL);
	}
	prefetch_stop(prefetch);
	watch_stop(watch);
	changes_free(act);
	import_free(imp);
	free(import_dir);
	outbox_stop(outbox);
	outbox_dir_free(obdir);
	sync_stop(sync);
	if (fsops)
		fsops_attach(fsops, ix, cache, NULL);
	if (se) {
		if (handlers)
			fuse_remove_signal_handlers(se);
		fuse_session_destroy(se);
	}
	fuse_loop_cfg_destroy(lc);
	cache_close(cache);
	pool_free(pool);
	imap_close(first);
	index_close(ix);
	fsops_free(fsops);
	cred_free(cred);
	/* Last: everything that shares the account's files is gone. */
	acctlock_free(alock);
	free(mnt_abs);
	free(fsname);
	free(index_path);
	free(body_dir);
	free(cl.mountpoint);
	config_clear(&cl.cfg);
	fuse_opt_free_args(&args);
	return ret;
}
