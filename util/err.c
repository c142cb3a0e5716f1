#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "mfs_err.h"

int mfs_fail(struct mfs_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

static const struct {
	int code;
	const char *name;
	int errnum;
	bool transient;
} table[] = {
	{ MFS_OK, "success", 0, false },
	{ MFS_E_NOMEM, "out of memory", ENOMEM, true },
	{ MFS_E_IO, "local I/O error", EIO, false },
	{ MFS_E_CONNECT, "cannot connect", EHOSTUNREACH, true },
	{ MFS_E_TLS, "TLS failure", EIO, false },
	{ MFS_E_AUTH, "authentication failed", EACCES, false },
	{ MFS_E_PROTO, "protocol error", EIO, true },
	{ MFS_E_NO, "server refused", EIO, false },
	{ MFS_E_BAD, "server rejected command", EIO, false },
	{ MFS_E_TIMEOUT, "timed out", EIO, true },
	{ MFS_E_CLOSED, "connection closed", EIO, true },
	{ MFS_E_CONFIG, "configuration error", EINVAL, false },
	{ MFS_E_TOOBIG, "too large", EFBIG, false },
	{ MFS_E_NOTFOUND, "not found", ENOENT, false },
	{ MFS_E_INVAL, "invalid input", EINVAL, false },
	{ MFS_E_UNSUPPORTED, "not supported by server", ENOTSUP, false },
	{ MFS_E_TEMPFAIL, "temporarily refused", EAGAIN, true },
	{ MFS_E_REJECTED, "refused", EIO, false },
	{ MFS_E_EXISTS, "already exists", EEXIST, false },
	{ MFS_E_NOTEMPTY, "not empty", ENOTEMPTY, false },
	/* A locked password manager or a token service down for a moment:
	 * the next login may well get one. */
	{ MFS_E_SECRET, "no password or token", EIO, true },
	{ MFS_E_CANCELLED, "cancelled", ECANCELED, false },
	/* Not ESTALE: the kernel retries an ESTALE rename or unlink once
	 * after looking the names up again, and by then the sync may have
	 * rebuilt the folder, so the retry would act on the new one. */
	{ MFS_E_STALE, "folder recreated by another client", ENOENT, false },
};

static int lookup(int code)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].code == code)
			return (int)i;
	return -1;
}

const char *mfs_strerror(int code)
{
	int i = lookup(code);

	return i < 0 ? "unknown error" : table[i].name;
}

int mfs_errno(int code)
{
	int i = lookup(code);

	return i < 0 ? EIO : table[i].errnum;
}

bool mfs_is_transient(int code)
{
	int i = lookup(code);

	return i >= 0 && table[i].transient;
}
