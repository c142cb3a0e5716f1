/* fuzz_outbox.c - smtp_prepare on arbitrary bytes, as if a user had
 * dropped them into outbox/.
 *
 * Besides crashes and leaks, a finding (abort()) is a refusal that is not
 * MFS_E_INVAL with a reason, or an accepted message that breaks what
 * smtp.h promises: data that is empty or has a bare LF, a header that
 * still has a Bcc field, lacks From, Date, Message-ID or MIME-Version, or
 * holds a bare CR or a NUL, no recipient, or an envelope address without
 * '@' or with white space or a line break in it.
 *
 * smtp_msg_cut on the same bytes: a message it calls cut is refused
 * (never sent), its reason is a non-empty line that fits whylen, and the
 * answer is the same with every LF made CRLF (input without CR) and with
 * no room for the reason at all.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mfs_err.h"
#include "mime.h"
#include "smtp.h"

#define DEF_FROM "outbox@example.org"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	/* GSlice's caches hide leaked GObjects from LeakSanitizer, and GLib
	 * reads G_SLICE before main: run again with it set. */
	if (!getenv("G_SLICE")) {
		setenv("G_SLICE", "always-malloc", 1);
		execv("/proc/self/exe", *argv);
	}
	mime_init();
	return 0;
}

/* A bare envelope address: an '@', no white space, no control bytes. */
static bool bare_addr(const char *a)
{
	if (!a || !strchr(a, '@'))
		return false;
	for (; *a; a++)
		if ((unsigned char)*a <= ' ' || *a == 0x7f)
			return false;
	return true;
}

/* Length of the header block of data: up to the first blank line. */
static size_t header_len(const char *d, size_t len)
{
	const char *end;

	if (len >= 2 && !memcmp(d, "\r\n", 2))
		return 0;
	end = memmem(d, len, "\r\n\r\n", 4);
	return end ? (size_t)(end - d) + 2 : len;
}

/* Does the header hold a field called name, in any case, with or without
 * blanks before the colon? */
static bool has_field(const char *d, size_t h, const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i + nl < h; i++) {
		size_t k = i + nl;

		if (i > 0 && d[i - 1] != '\n')
			continue;
		if (strncasecmp(d + i, name, nl))
			continue;
		while (k < h && (d[k] == ' ' || d[k] == '\t'))
			k++;
		if (k < h && d[k] == ':')
			return true;
	}
	return false;
}

static void check(const struct smtp_msg *m)
{
	size_t h;

	if (!m->data || m->len == 0 || m->data[m->len] != '\0')
		abort();
	h = header_len(m->data, m->len);
	if (has_field(m->data, h, "Bcc"))
		abort();
	/* what smtp_prepare adds when missing is there */
	if (!has_field(m->data, h, "From") || !has_field(m->data, h, "Date") ||
	    !has_field(m->data, h, "Message-ID") ||
	    !has_field(m->data, h, "MIME-Version"))
		abort();
	for (size_t i = 0; i < m->len; i++) {
		/* CRLF throughout: no bare LF anywhere */
		if (m->data[i] == '\n' && (i == 0 || m->data[i - 1] != '\r'))
			abort();
		/* and no bare CR or NUL in the header */
		if (i < h && m->data[i] == '\r' && m->data[i + 1] != '\n')
			abort();
		if (i < h && m->data[i] == '\0')
			abort();
	}
	if (m->nrcpt < 1 || !m->rcpt || !bare_addr(m->from))
		abort();
	for (size_t i = 0; i < m->nrcpt; i++)
		if (!bare_addr(m->rcpt[i]))
			abort();
}

/* The cut check's own promises; returns its answer. */
static bool check_cut(const char *d, size_t len)
{
	char why[64], tiny[4];
	bool cut, crs = memchr(d, '\r', len) != NULL;

	memset(why, 0x55, sizeof(why));
	cut = smtp_msg_cut(d, len, why, sizeof(why));
	if (cut && (!why[0] || !memchr(why, '\0', sizeof(why)) ||
		    strchr(why, '\n')))
		abort();
	if (smtp_msg_cut(d, len, NULL, 0) != cut ||
	    smtp_msg_cut(d, len, tiny, sizeof(tiny)) != cut)
		abort();
	if (!crs && len < 65536) {
		size_t n = 0;
		char *dos = malloc(2 * len + 1);

		if (!dos)
			abort();
		for (size_t i = 0; i < len; i++) {
			if (d[i] == '\n')
				dos[n++] = '\r';
			dos[n++] = d[i];
		}
		if (smtp_msg_cut(dos, n, why, sizeof(why)) != cut)
			abort();
		free(dos);
	}
	return cut;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mfs_error err = {0};
	static struct smtp_msg sentinel;
	struct smtp_msg *m = &sentinel; /* must be reset */
	bool cut = check_cut((const char *)data, size);
	int rc;

	rc = smtp_prepare((const char *)data, size, DEF_FROM, &m, &err);
	if (rc == 0 && cut)
		abort();	/* a cut message was accepted for sending */
	if (rc == 0) {
		if (!m)
			abort();
		check(m);
	} else if (rc != MFS_E_INVAL || m || err.code != rc || !err.msg[0]) {
		abort();
	}
	smtp_msg_free(m);
	return 0;
}
