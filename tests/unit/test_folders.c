/* test_folders.c - LIST answers written to an index on a temporary file:
 * every server folder gets a directory of its own whatever its siblings
 * are called, the same names whatever order the server lists them in,
 * and a row (its id, its messages) stays with its server folder when the
 * names shift. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "folders.h"
#include "index.h"

#define MAXF 64

struct seen {
	int64_t ids[MAXF];
	size_t n;
	char moved[MAXF][300];
	size_t nmoved;
};

static int on_seen(void *ctx, int64_t id, const struct imap_mailbox *mb)
{
	struct seen *s = ctx;

	(void)mb;
	if (s->n < MAXF)
		s->ids[s->n++] = id;
	return 0;
}

static int on_moved(void *ctx, int64_t parent, const char *name)
{
	struct seen *s = ctx;

	if (s->nmoved < MAXF)
		snprintf(s->moved[s->nmoved++], sizeof(s->moved[0]),
			 "%lld/%s", (long long)parent, name);
	return 0;
}

struct all {
	struct {
		int64_t id, parent;
		char name[300], wire[300];
	} f[MAXF];
	size_t n;
};

static int collect(void *ctx, const struct ix_folder *f)
{
	struct all *a = ctx;

	if (a->n < MAXF) {
		a->f[a->n].id = f->id;
		a->f[a->n].parent = f->parent;
		snprintf(a->f[a->n].name, sizeof(a->f[0].name), "%s", f->name);
		snprintf(a->f[a->n].wire, sizeof(a->f[0].wire), "%s",
			 f->wire ? f->wire : "-");
		a->n++;
	}
	return 0;
}

/* One LIST answer, as the sync writes it: the tree, then the rows it
 * did not show dropped. */
static bool apply_strip(struct index *ix, const char *const *names,
			char delim, const char *strip, struct seen *s)
{
	struct imap_mailbox v[MAXF];
	struct folders_hooks h = { on_seen, on_moved, s };
	struct mfs_error err = { 0 };
	struct all a = { 0 };
	size_t n = 0;
	int rc;

	memset(s, 0, sizeof(*s));
	for (; names[n]; n++)
		v[n] = (struct imap_mailbox){ .name = names[n], .delim = delim };
	rc = index_begin(ix, &err);
	if (rc == 0)
		rc = folders_put(ix, v, n, strip, &h, &err);
	if (rc == 0)
		rc = index_folder_all(ix, collect, &a, &err);
	for (size_t i = 0; rc == 0 && i < a.n; i++) {
		bool shown = false;

		for (size_t k = 0; k < s->n; k++)
			shown |= s->ids[k] == a.f[i].id;
		if (!shown)
			rc = index_folder_drop(ix, a.f[i].id, false, NULL,
					       &err);
	}
	if (rc == 0)
		rc = index_commit(ix, &err);
	else
		index_rollback(ix);
	if (rc)
		printf("    apply: %d %s\n", rc, err.msg);
	return rc == 0;
}

static bool apply(struct index *ix, const char *const *names, char delim,
		  struct seen *s)
{
	return apply_strip(ix, names, delim, NULL, s);
}

static int by_path(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "path=wire" for every row, sorted, joined by ", " (wire "-" for a
 * directory only implied). */
static void dump(struct index *ix, char *out, size_t cap)
{
	struct all a = { 0 };
	char paths[MAXF][700], *sorted[MAXF];
	size_t len = 0;

	index_folder_all(ix, collect, &a, NULL);
	for (size_t i = 0; i < a.n; i++) {
		char path[600] = "";

		for (int64_t id = a.f[i].id; id;) {
			size_t k;
			char tmp[600];

			for (k = 0; k < a.n && a.f[k].id != id; k++)
				;
			if (k == a.n)
				break;
			snprintf(tmp, sizeof(tmp), "%s%s%s", a.f[k].name,
				 path[0] ? "/" : "", path);
			memcpy(path, tmp, sizeof(path));
			id = a.f[k].parent;
		}
		snprintf(paths[i], sizeof(paths[i]), "%s=%s", path, a.f[i].wire);
		sorted[i] = paths[i];
	}
	qsort(sorted, a.n, sizeof(sorted[0]), by_path);
	out[0] = '\0';
	for (size_t i = 0; i < a.n; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%s",
					i ? ", " : "", sorted[i]);
}

static int64_t id_of(struct index *ix, const char *wire)
{
	struct all a = { 0 };

	index_folder_all(ix, collect, &a, NULL);
	for (size_t i = 0; i < a.n; i++)
		if (strcmp(a.f[i].wire, wire) == 0)
			return a.f[i].id;
	return 0;
}

static struct index *fresh(char *dir, size_t cap)
{
	char path[300];
	struct index *ix = NULL;

	snprintf(dir, cap, "/tmp/mailfs-test-folders-XXXXXX");
	if (!mkdtemp(dir))
		return NULL;
	snprintf(path, sizeof(path), "%s/index.sqlite", dir);
	if (index_open(path, &ix, NULL) < 0)
		return NULL;
	return ix;
}

static void gone(struct index *ix, const char *dir)
{
	char cmd[400];

	index_close(ix);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("    could not remove %s\n", dir);
}

/* Each case: a LIST answer, the tree it must give; the same reversed. */
static void test_trees(void)
{
	static const struct {
		const char *what;
		char delim;
		const char *names[12];
		const char *want;
		const char *strip;
	} t[] = {
		{ "'.' server: '/' in a name, a leading dot", '.',
		  { "INBOX", "a/b", "a_b", "a.c", ".Spam", "Spam" },
		  "INBOX=INBOX, Spam=Spam, _/Spam=.Spam, _=-, a/c=a.c, "
		  "a=-, a_b (2)=a/b, a_b=a_b", NULL },
		{ "'/' server: dots, outbox, .mailfs, nested", '/',
		  { "INBOX", ".Spam", "Spam", "Spam/x", "Spam/.x", "outbox",
		    ".mailfs", "..dots", "a\\b", "a_b" },
		  "INBOX=INBOX, Spam (2)=.Spam, Spam/x (2)=Spam/.x, "
		  "Spam/x=Spam/x, Spam=Spam, a_b (2)=a\\b, a_b=a_b, "
		  "dots=..dots, mailfs=.mailfs, outbox (2)=outbox", NULL },
		{ "modified UTF-7 decoded before comparing", '/',
		  { "Caf&AOk-", ".Caf&AOk-", "Caf&AOk-/x" },
		  "Caf\xc3\xa9 (2)=.Caf&AOk-, Caf\xc3\xa9/x=Caf&AOk-/x, "
		  "Caf\xc3\xa9=Caf&AOk-", NULL },
		{ "an implied level and a folder that cleans like it", '/',
		  { ".a", "a/b" },
		  "a (2)=.a, a/b=a/b, a=-", NULL },
		{ "personal namespace INBOX. stripped", '.',
		  { "INBOX", "INBOX.Archive", "INBOX.Archive.2024",
		    "INBOX.Trash", "INBOX.INBOX", "INBOX.outbox", "Other",
		    "INBOX.a/b", "Other.x" },
		  "Archive/2024=INBOX.Archive.2024, Archive=INBOX.Archive, "
		  "INBOX (2)=INBOX.INBOX, INBOX=INBOX, Other/x=Other.x, "
		  "Other=Other, Trash=INBOX.Trash, a_b=INBOX.a/b, "
		  "outbox (2)=INBOX.outbox", "INBOX." },
		{ "a prefix only implied by its children", '/',
		  { "INBOX/Sent", "INBOX/Sent/old", "Shared/x" },
		  "Sent/old=INBOX/Sent/old, Sent=INBOX/Sent, Shared/x=Shared/x, "
		  "Shared=-", "INBOX/" },
	};
	char dir[64], got[4096], got2[4096];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *rev[12];
		struct seen s;
		struct index *ix = fresh(dir, sizeof(dir));
		size_t n = 0;

		if (!ix) {
			CHECK(0, "open an index");
			return;
		}
		CHECK(apply_strip(ix, t[i].names, t[i].delim, t[i].strip, &s),
		      "%s: written", t[i].what);
		dump(ix, got, sizeof(got));
		CHECK_STR(got, t[i].want, "%s", t[i].what);
		gone(ix, dir);

		while (t[i].names[n])
			n++;
		for (size_t k = 0; k < n; k++)
			rev[k] = t[i].names[n - 1 - k];
		rev[n] = NULL;
		ix = fresh(dir, sizeof(dir));
		if (!ix)
			return;
		apply_strip(ix, rev, t[i].delim, t[i].strip, &s);
		dump(ix, got2, sizeof(got2));
		CHECK_STR(got2, t[i].want, "%s: listed in reverse", t[i].what);
		gone(ix, dir);
	}
}

static void test_changes(void)
{
	static const char *const only_dot[] = { ".Spam", NULL };
	static const char *const both[] = { ".Spam", "Spam", NULL };
	static const char *const x1[] = { ".x", "..x", NULL };
	static const char *const x2[] = { ".x", "..x", "x", NULL };
	static const char *const ab[] = { "a/b", NULL };
	static const char *const a_ab[] = { "a", "a/b", NULL };
	struct ix_msg m = { .uid = 7, .size = 10, .date = 1, .flags = "",
			    .message_id = "m@x", .name = "msg" };
	char dir[64], got[4096];
	struct index *ix = fresh(dir, sizeof(dir));
	struct mfs_error err = { 0 };
	int64_t dot, plain, a, dotx, dotdotx, child;
	unsigned msgs = 0, kids = 0;
	struct seen s;

	if (!ix) {
		CHECK(0, "open an index");
		return;
	}
	/* .Spam alone shows as Spam; then Spam appears on the server. */
	apply(ix, only_dot, '/', &s);
	dump(ix, got, sizeof(got));
	CHECK_STR(got, "Spam=.Spam", ".Spam alone keeps the name Spam");
	dot = id_of(ix, ".Spam");
	m.folder = dot;
	CHECK(index_msg_put(ix, &m, &err) == 0, "a message in .Spam");
	apply(ix, both, '/', &s);
	dump(ix, got, sizeof(got));
	CHECK_STR(got, "Spam (2)=.Spam, Spam=Spam",
		  "Spam appears: it takes the name, .Spam moves aside");
	plain = id_of(ix, "Spam");
	CHECK(id_of(ix, ".Spam") == dot && plain != dot,
	      ".Spam keeps its row (id %lld), Spam gets a new one (%lld)",
	      (long long)id_of(ix, ".Spam"), (long long)plain);
	CHECK(index_folder_counts(ix, dot, &msgs, &kids, &err) == 0 &&
		      msgs == 1,
	      ".Spam's message stays with .Spam (%u)", msgs);
	msgs = 1;
	CHECK(index_folder_counts(ix, plain, &msgs, &kids, &err) == 0 &&
		      msgs == 0,
	      "Spam's row has none of .Spam's messages (%u)", msgs);
	CHECK(s.nmoved == 1 && strcmp(s.moved[0], "0/Spam") == 0,
	      "the kernel is told to forget the entry Spam (%zu: %s)",
	      s.nmoved, s.nmoved ? s.moved[0] : "");
	apply(ix, both, '/', &s);
	CHECK(s.nmoved == 0 && id_of(ix, ".Spam") == dot &&
		      id_of(ix, "Spam") == plain,
	      "the same answer again changes nothing");
	apply(ix, only_dot, '/', &s);
	dump(ix, got, sizeof(got));
	CHECK_STR(got, "Spam=.Spam", "Spam deleted: .Spam takes the name again");
	CHECK(id_of(ix, ".Spam") == dot, ".Spam still has its row");

	/* Names pass from one row to another in one answer. */
	apply(ix, x1, '/', &s);
	dump(ix, got, sizeof(got));
	CHECK_STR(got, "x (2)=.x, x=..x", "..x and .x: the first by key keeps x");
	dotx = id_of(ix, ".x");
	dotdotx = id_of(ix, "..x");
	apply(ix, x2, '/', &s);
	dump(ix, got, sizeof(got));
	CHECK_STR(got, "x (2)=..x, x (3)=.x, x=x",
		  "x appears: every name shifts");
	CHECK(id_of(ix, ".x") == dotx && id_of(ix, "..x") == dotdotx,
	      "each server folder keeps its row while the names shift");

	/* An implied level listed later, then implied again. */
	apply(ix, ab, '/', &s);
	a = id_of(ix, "-");
	child = id_of(ix, "a/b");
	apply(ix, a_ab, '/', &s);
	dump(ix, got, sizeof(got));
	CHECK_STR(got, "a/b=a/b, a=a", "a listed: the directory becomes it");
	CHECK(id_of(ix, "a") == a && id_of(ix, "a/b") == child,
	      "same rows (%lld, %lld)", (long long)id_of(ix, "a"),
	      (long long)a);
	m.folder = a;
	index_msg_put(ix, &m, &err);
	apply(ix, ab, '/', &s);
	dump(ix, got, sizeof(got));
	CHECK_STR(got, "a/b=a/b, a=-", "a deleted, a/b kept: a directory again");
	CHECK(id_of(ix, "-") != a && id_of(ix, "a/b") == child,
	      "the directory is a new row; a/b keeps its row");
	msgs = 1;
	CHECK(index_folder_counts(ix, id_of(ix, "-"), &msgs, &kids, &err) ==
			      0 && msgs == 0 && kids == 1,
	      "the directory holds none of a's messages, and a/b (%u, %u)",
	      msgs, kids);
	gone(ix, dir);
}

/* Which folder is Trash or Sent, on servers that mark them and on ones
 * that only name them. */
static void test_special(void)
{
	static const struct {
		const char *what;
		const char *folders[8];	/* "wire" or "wire\tflags" */
		int role;
		const char *configured;
		const char *want;	/* wire, or "" for none */
	} t[] = {
		{ "marked \\Trash wins over the name", { "Trash", "Bin\tT" },
		  FOLDERS_TRASH, NULL, "Bin" },
		{ "Courier: INBOX.Trash", { "INBOX", "INBOX.Trash", "INBOX.Sent" },
		  FOLDERS_TRASH, NULL, "INBOX.Trash" },
		{ "Outlook's names, any case", { "INBOX", "Sent Items",
		  "deleted items" }, FOLDERS_TRASH, NULL, "deleted items" },
		{ "Trash before Deleted Items", { "Deleted Items", "TRASH" },
		  FOLDERS_TRASH, NULL, "TRASH" },
		{ "not deeper down", { "INBOX", "Archive.Trash", "INBOX.a.Trash" },
		  FOLDERS_TRASH, NULL, "" },
		{ "not a \\Noselect one", { "INBOX", "Trash\tN" },
		  FOLDERS_TRASH, NULL, "" },
		{ "configured, below INBOX", { "INBOX", "INBOX.Bin", "Trash" },
		  FOLDERS_TRASH, "Bin", "INBOX.Bin" },
		{ "configured and missing: nothing else", { "Trash" },
		  FOLDERS_TRASH, "Bin", "" },
		{ "Sent: marked", { "Sent", "INBOX.Sent Messages\tS" },
		  FOLDERS_SENT, NULL, "INBOX.Sent Messages" },
		{ "Sent: by name", { "INBOX", "INBOX.Sent Items", "Trash" },
		  FOLDERS_SENT, NULL, "INBOX.Sent Items" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char dir[64];
		struct index *ix = fresh(dir, sizeof(dir));
		int64_t id = -1, row;
		char *wire = NULL;
		int rc;

		if (!ix) {
			CHECK(0, "open an index");
			return;
		}
		for (size_t k = 0; k < 8 && t[i].folders[k]; k++) {
			char name[100], w[100];
			const char *tab = strchr(t[i].folders[k], '\t');
			unsigned flags = 0;

			snprintf(w, sizeof(w), "%.*s",
				 tab ? (int)(tab - t[i].folders[k]) : 99,
				 t[i].folders[k]);
			if (tab)
				flags = tab[1] == 'T' ? IMAP_MB_TRASH :
					tab[1] == 'S' ? IMAP_MB_SENT :
							IMAP_MB_NOSELECT;
			snprintf(name, sizeof(name), "f%zu", k);
			index_folder_put(ix, 0, name, w, '.', flags, &row,
					 NULL);
		}
		rc = folders_special(ix, t[i].role, t[i].configured, &id,
				     &wire, NULL);
		CHECK(rc == 0 && strcmp(wire ? wire : "", t[i].want) == 0 &&
		      (id != 0) == (wire != NULL),
		      "special folder, %s: \"%s\" (want \"%s\")", t[i].what,
		      wire ? wire : "", t[i].want);
		free(wire);
		gone(ix, dir);
	}
}

int main(void)
{
	test_trees();
	test_changes();
	test_special();
	return check_done();
}
