/* notify.h - readiness and stopping notes to a service manager, the
 * sd_notify(3) protocol without libsystemd: one datagram of
 * "KEY=VALUE\n" lines to the AF_UNIX socket named by NOTIFY_SOCKET (a
 * path, or "@name" for the abstract namespace).
 */
#ifndef NOTIFY_H
#define NOTIFY_H

/* Send state (e.g. "READY=1\nSTATUS=mounted") when NOTIFY_SOCKET is set.
 * 0 when sent or when no manager asked for it; otherwise -errno, for the
 * caller to log (a manager that cannot be told is no reason to stop). */
int notify_manager(const char *state);

#endif
