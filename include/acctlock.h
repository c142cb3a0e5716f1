/* acctlock.h - one daemon per account.
 *
 * Two mounts of one account would share its index, body cache and outbox
 * spool: the second would send queued mail again and write rows the
 * first believes are its own.  The first daemon therefore holds an
 * exclusive flock(2) on a file "lock" in the cache directory and on the
 * outbox directory for its whole life.  The lock file says which process
 * holds it and where it is mounted, for the one line the second mount
 * prints.  flock locks belong to the open file, so the lock survives the
 * daemonizing fork and is released by the kernel when the daemon ends,
 * however it ends; a lock file left behind by a killed daemon blocks
 * nothing.  The descriptors are close-on-exec: a password command
 * (or anything it leaves running) never holds the lock.
 */
#ifndef ACCTLOCK_H
#define ACCTLOCK_H

#include <stdbool.h>

#include "mfs_err.h"

struct acctlock;

/* Take both locks for a mount on mountpoint (an absolute path), without
 * waiting, except while the holder's mount is already gone (a daemon
 * still shutting down after its unmount): then for up to wait_s seconds.
 * The directories must exist.  On success *out owns the locks and the
 * lock file names the calling process and mountpoint.
 * MFS_E_EXISTS when another process holds either lock; err's detail then
 * reads "already mounted on <mountpoint> by pid <pid>" from its lock file
 * (or says the lock is held when the file names no mount).  MFS_E_IO when
 * the lock file cannot be opened or written, MFS_E_NOMEM.  A file system
 * without flock support does not stop the mount: *out is then returned
 * with acctlock_held() false. */
int acctlock_take(const char *cache_dir, const char *outbox_dir,
		  const char *mountpoint, unsigned wait_s,
		  struct acctlock **out, struct mfs_error *err);

/* True when the locks are really held (see acctlock_take). */
bool acctlock_held(const struct acctlock *l);

/* Name the calling process in the lock file: call after daemonizing, so
 * the PID a second mount reports is the daemon that stayed.  MFS_E_IO. */
int acctlock_note(struct acctlock *l, struct mfs_error *err);

/* Release the locks (the lock file stays; NULL is a no-op). */
void acctlock_free(struct acctlock *l);

#endif
