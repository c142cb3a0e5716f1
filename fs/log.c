#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static unsigned debug_mask;
static bool to_syslog;
static FILE *log_file;
static int journal = -1;	/* stderr is the journal: -1 not yet known */
/* Guards writes to the log file or stderr, so that lines do not mix.  A
 * leaf: taken last, with other locks held (the outbox queue's). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

int log_parse_categories(const char *s, unsigned *mask)
{
	static const struct {
		const char *name;
		unsigned bit;
	} cats[] = {
		{ "imap", LOG_CAT_IMAP }, { "fs", LOG_CAT_FS },
		{ "sync", LOG_CAT_SYNC }, { "cache", LOG_CAT_CACHE },
		{ "all", ~0u },
	};
	unsigned m = 0;

	while (*s) {
		size_t len = strcspn(s, ",:+");
		size_t i;

		for (i = 0; i < sizeof(cats) / sizeof(cats[0]); i++)
			if (strlen(cats[i].name) == len &&
			    strncmp(s, cats[i].name, len) == 0)
				break;
		if (i == sizeof(cats) / sizeof(cats[0]))
			return -1;
		m |= cats[i].bit;
		s += len;
		if (*s)
			s++;
	}
	*mask = m;
	return 0;
}

/* systemd connects stderr to the journal and says so in JOURNAL_STREAM
 * ("device:inode" of that stream); a stderr redirected since is not it. */
static bool journal_check(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char end;

	if (!js || sscanf(js, "%llu:%llu%c", &dev, &ino, &end) != 2)
		return false;
	return fstat(STDERR_FILENO, &st) == 0 &&
	       (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

/* Whether to write "<N>" prefixes; asked with log_lock held. */
static bool stderr_is_journal(void)
{
	if (journal < 0)
		journal = journal_check();
	return journal;
}

void log_setup(unsigned mask, bool use_syslog, const char *file)
{
	journal = -1;	/* daemonizing hands stderr to /dev/null */
	debug_mask = mask;
	to_syslog = use_syslog && !file;
	if (log_file && log_file != stderr)
		fclose(log_file);
	log_file = NULL;
	if (file)
		log_file = fopen(file, "ae");
	if (to_syslog)
		openlog("mailfs", LOG_PID, LOG_MAIL);
}

static void vlog(int prio, const char *fmt, va_list ap)
{
	FILE *f = log_file ? log_file : stderr;
	char ts[32];
	struct tm tm;
	time_t now;

	if (to_syslog) {
		vsyslog(prio, fmt, ap);
		return;
	}
	pthread_mutex_lock(&log_lock);
	if (f == stderr && stderr_is_journal()) {
		fprintf(f, "<%d>mailfs: ", prio);
	} else {
		now = time(NULL);
		localtime_r(&now, &tm);
		strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
		fprintf(f, "%s mailfs: ", ts);
	}
	vfprintf(f, fmt, ap);
	fputc('\n', f);
	fflush(f);
	pthread_mutex_unlock(&log_lock);
}

void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(prio, fmt, ap);
	va_end(ap);
}

void log_early(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pthread_mutex_lock(&log_lock);
	if (stderr_is_journal())
		fprintf(stderr, "<%d>", prio);
	fputs("mailfs: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
	va_end(ap);
}

bool log_enabled(unsigned cat)
{
	return (debug_mask & cat) != 0;
}

void log_debug(unsigned cat, const char *fmt, ...)
{
	va_list ap;

	if (!(debug_mask & cat))
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void log_imap_trace(void *ctx, const char *dir, const char *line, size_t len)
{
	(void)ctx;
	if (len > 300)
		len = 300;
	log_debug(LOG_CAT_IMAP, "%s: %.*s", dir, (int)len, line);
}
