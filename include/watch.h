/* watch.h - push updates: a few connections sit in IMAP IDLE on INBOX and
 * on the folders used most recently, and ask sync for a resync of a folder
 * as soon as the server reports a change in it.  The other folders are
 * left to sync's periodic pass. */
#ifndef WATCH_H
#define WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "index.h"
#include "pool.h"
#include "sync.h"

struct watch;

/* slots connections at most: the first watches INBOX, the others the
 * folders most recently passed to watch_use.  0 slots, or a server
 * without IDLE: nothing is started and *out is NULL. */
int watch_start(struct pool *pool, struct index *ix, struct sync *sync,
		unsigned slots, struct watch **out);

/* Stop the threads (ending IDLE) and free.  NULL is a no-op. */
void watch_stop(struct watch *w);

/* Someone looked at this folder: watch it, in place of the folder used
 * least recently.  Never blocks on the network.  NULL w is a no-op. */
void watch_use(struct watch *w, int64_t folder);

/* Is the folder watched by an IDLE that is up right now? */
bool watch_has(struct watch *w, int64_t folder);

#endif
