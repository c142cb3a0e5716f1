/* log.h - logging for the daemon (fs/ only; libraries return errors).
 *
 * Foreground: stderr.  Daemonized: syslog, or log_file when given.
 * When stderr is the journal (systemd's JOURNAL_STREAM names it), each
 * line carries its priority as a "<N>" prefix (sd-daemon(3)) and no time
 * of its own.
 * Debug output is by category, chosen with -o debug=imap:fs:sync:cache
 * (':' because FUSE splits -o values on commas).
 */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

enum {
	LOG_CAT_IMAP = 1u << 0,
	LOG_CAT_FS = 1u << 1,
	LOG_CAT_SYNC = 1u << 2,
	LOG_CAT_CACHE = 1u << 3,
};

/* Parse "imap,fs" (or "all") into LOG_CAT_* bits; -1 on an unknown name. */
int log_parse_categories(const char *s, unsigned *mask);

/* Set up: debug category mask, and where messages go.  Not thread safe;
 * call before threads start (and again after daemonizing). */
void log_setup(unsigned debug_mask, bool use_syslog, const char *file);

void log_msg(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The one line a user sees when mailfs cannot start, or about how it
 * starts: "mailfs: ..." on stderr, with no time, whatever log_setup said. */
void log_early(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_debug(unsigned cat, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
bool log_enabled(unsigned cat);

/* imap_trace_fn for the IMAP engine (category imap). */
void log_imap_trace(void *ctx, const char *dir, const char *line, size_t len);

#endif
