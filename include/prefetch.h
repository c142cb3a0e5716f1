/* prefetch.h - download a folder's bodies in the background, so it can be
 * read offline later.  One job at a time, in the order asked; progress is
 * reported as text lines for the status file. */
#ifndef PREFETCH_H
#define PREFETCH_H

#include <stdint.h>

#include "cache.h"
#include "index.h"

struct prefetch;

int prefetch_start(struct index *ix, struct cache *cache,
		   struct prefetch **out);
/* Stop the thread (the running job ends after its batch).  NULL: no-op. */
void prefetch_stop(struct prefetch *p);

/* Queue a folder; path is how to name it in reports. */
int prefetch_add(struct prefetch *p, int64_t folder, const char *path);

/* One line per job, queued, running or finished, e.g.
 * "prefetch INBOX: 120/1000 messages, 3100000 bytes, 2.0 MB/s, ETA 12 s". */
typedef void (*prefetch_line_fn)(void *ctx, const char *line);
void prefetch_report(struct prefetch *p, prefetch_line_fn fn, void *ctx);

#endif
