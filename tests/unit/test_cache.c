/* test_cache.c - the body store (fs/core/cache.c): two readers of one
 * uncached message cause one UID FETCH, and with a small cap the least
 * recently used body is the one evicted.  The decoded parts
 * (cache_views.c): one decode and one parts file for two readers, none
 * after, a damaged or lost file made again, a file the index does not
 * record swept at start.
 *
 * A real cache in a temporary directory over a real pool and SQLite
 * index, against the scripted IMAP server of fake_imap.h, which answers
 * body fetches late (so both readers are waiting at once) and logs every
 * command.  The index has the folder but no message rows, so read-ahead
 * has nothing to add to a fetch: each UID FETCH is one reader's.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "check.h"
#include "fake_imap.h"
#include "imap.h"
#include "index.h"
#include "mime.h"
#include "pool.h"

static struct fake_imap *srv;
static struct cache *cache;
static int64_t f_inbox;

static struct cache_key key(uint32_t uid)
{
	return (struct cache_key){ f_inbox, "INBOX", 5, uid };
}

/* Read the body of uid through the cache: true when it is the server's
 * message, byte for byte. */
static bool read_body(uint32_t uid)
{
	struct cache_key k = key(uid);
	struct mfs_error err = { 0 };
	char want[1024], got[1024];
	uint64_t size = 0;
	ssize_t n;
	int fd = -1;

	if (cache_body(cache, &k, &fd, &size, &err) < 0)
		return false;
	n = pread(fd, got, sizeof(got) - 1, 0);
	close(fd);
	fake_imap_body(uid, want, sizeof(want));
	return n >= 0 && (size_t)n == strlen(want) && size == (uint64_t)n &&
	       memcmp(got, want, (size_t)n) == 0;
}

/* How many UID FETCH commands since `from` asked for uid's body. */
static unsigned body_fetches(unsigned from, uint32_t uid)
{
	struct fake_sets s;

	fake_imap_sets(srv, from, "UID FETCH ", &s);
	return s.times[uid];
}

static int got_it;

/* A reader thread: &got_it when it read UID 1 right, else NULL. */
static void *reader(void *arg)
{
	(void)arg;
	return read_body(1) ? &got_it : NULL;
}

/* Two readers at once of an uncached body: one fetch, both get it. */
static void test_inflight(void)
{
	unsigned from = fake_imap_ncmds(srv);
	pthread_t t1, t2;
	void *r1 = NULL, *r2 = NULL;
	struct cache_stats st;
	int ok1, ok2;

	/* Late enough that the second reader comes while the first waits. */
	fake_imap_delay(srv, 500);
	ok1 = pthread_create(&t1, NULL, reader, NULL);
	ok2 = pthread_create(&t2, NULL, reader, NULL);
	if (ok1 == 0)
		pthread_join(t1, &r1);
	if (ok2 == 0)
		pthread_join(t2, &r2);
	fake_imap_delay(srv, 0);
	CHECK(r1 && r2, "two readers of uncached UID 1 both get its bytes");
	CHECK(body_fetches(from, 1) == 1,
	      "and the server was asked for it once (%u UID FETCH)",
	      body_fetches(from, 1));
	cache_stats(cache, &st);
	CHECK(st.fetched == 1 && st.bodies == 1,
	      "the cache counts one fetch, one body (%llu, %llu)",
	      (unsigned long long)st.fetched, (unsigned long long)st.bodies);
}

/* A cap of two bodies: the least recently used one goes, not the oldest
 * fetched. */
static void test_evict(void)
{
	unsigned from = fake_imap_ncmds(srv);
	struct cache_stats st;

	/* Pauses keep the last-use times (milliseconds) apart. */
	CHECK(read_body(2), "UID 2 read (1 and 2 cached)");
	usleep(20000);
	CHECK(read_body(1), "UID 1 read again, from the cache");
	CHECK(body_fetches(from, 1) == 0, "without a UID FETCH");
	usleep(20000);
	CHECK(read_body(3), "UID 3 read: over the cap");
	cache_stats(cache, &st);
	CHECK(st.bodies == 2 && st.bytes <= st.cap,
	      "two bodies left, %llu bytes within the cap of %llu",
	      (unsigned long long)st.bytes, (unsigned long long)st.cap);
	from = fake_imap_ncmds(srv);
	CHECK(read_body(1) && body_fetches(from, 1) == 0,
	      "UID 1 (fetched first, used since) is still cached");
	CHECK(read_body(3) && body_fetches(from, 3) == 0,
	      "UID 3 (the newest) is still cached");
	CHECK(read_body(2) && body_fetches(from, 2) == 1,
	      "UID 2 (least recently used) was evicted: fetched again");
	CHECK(body_fetches(0, 4) == 0 && body_fetches(0, 5) == 0,
	      "no read-ahead of UIDs nobody read");
}

/* ---- decoded parts: one parts file per message ---- */

static struct cache *pcache;	/* test_parts' own cache */
static char pdir[300];		/* and its directory */

/* The scripted messages' one decoded part, body.txt, at off in fd. */
static bool part_is(int fd, uint64_t off, uint64_t size, uint32_t uid)
{
	char want[64], got[64];
	ssize_t n = -1;

	snprintf(want, sizeof(want), "Body of message %u.\n", uid);
	if (size < sizeof(got))
		n = pread(fd, got, (size_t)size, (off_t)off);
	return n >= 0 && (size_t)n == strlen(want) && size == (uint64_t)n &&
	       memcmp(got, want, (size_t)n) == 0;
}

static bool read_part(uint32_t uid)
{
	struct cache_key k = key(uid);
	uint64_t off = 0, size = 0;
	bool ok = false;
	int fd = -1;

	if (cache_part(pcache, &k, 1, &fd, &off, &size, NULL) == 0) {
		ok = part_is(fd, off, size, uid);
		close(fd);
	}
	return ok;
}

static void *part_reader(void *arg)
{
	return read_part((uint32_t)(uintptr_t)arg) ? &got_it : NULL;
}

static void parts_path(uint32_t uid, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%lld.5.%u.parts", pdir, (long long)f_inbox,
		 uid);
}

static uint64_t decodes(void)
{
	struct cache_stats st;

	cache_stats(pcache, &st);
	return st.decoded;
}

static bool wait_gone(const char *path)
{
	for (int i = 0; i < 100 && access(path, F_OK) == 0; i++)
		usleep(50000);
	return access(path, F_OK) != 0;
}

/* Two readers of an uncached message's part: one fetch, one decode, one
 * parts file, and from then on no decode; a damaged or missing file is
 * made again; a file the index does not record is swept at start; a
 * message too big for a parts file still reads. */
static void test_parts(const char *dir, struct pool *pool)
{
	char body[1024];
	/* UIDs 10, 20 and 30 are all this long. */
	uint64_t one = strlen(fake_imap_body(10, body, sizeof(body)));
	uint64_t before;
	char path[400], p10[400], p20[400];
	struct mfs_error err = { 0 };
	struct index *ix = NULL;
	struct cache_stats st;
	struct stat sb;
	pthread_t t1, t2;
	void *r1 = NULL, *r2 = NULL;
	unsigned from = fake_imap_ncmds(srv);
	int ok1, ok2;

	snprintf(path, sizeof(path), "%s/parts.sqlite", dir);
	snprintf(pdir, sizeof(pdir), "%s/parts", dir);
	CHECK(index_open(path, &ix, &err) == 0 && mkdir(pdir, 0700) == 0,
	      "parts: an index and a cache directory of their own (%s)",
	      err.msg);
	if (!ix)
		return;
	index_folder_put(ix, 0, "INBOX", "INBOX", '/', 0, &f_inbox, NULL);
	index_folder_set_state(ix, f_inbox, 5, 6, 0, NULL);
	for (uint32_t u = 10; u <= 30; u += 10) {
		char name[16];
		struct ix_msg m = { .folder = f_inbox, .uid = u, .size = one,
				    .flags = "", .name = name };

		snprintf(name, sizeof(name), "m%u", u);
		index_msg_put(ix, &m, NULL);
		fake_imap_put(srv, fake_imap_mbox_by_name(srv, "INBOX"), u,
			      "");
	}
	CHECK(cache_open(pdir, ix, pool, 1 << 20, 5, NULL, NULL, &pcache,
			 &err) == 0, "parts: a cache (%s)", err.msg);
	if (!pcache)
		goto out;
	parts_path(10, p10, sizeof(p10));
	parts_path(20, p20, sizeof(p20));

	fake_imap_delay(srv, 500);
	ok1 = pthread_create(&t1, NULL, part_reader, (void *)(uintptr_t)10);
	ok2 = pthread_create(&t2, NULL, part_reader, (void *)(uintptr_t)10);
	if (ok1 == 0)
		pthread_join(t1, &r1);
	if (ok2 == 0)
		pthread_join(t2, &r2);
	fake_imap_delay(srv, 0);
	CHECK(r1 && r2, "parts: two readers of UID 10's body.txt at once both "
	      "get its bytes");
	CHECK(body_fetches(from, 10) == 1 && decodes() == 1,
	      "parts: one fetch (%u), one decode (%llu)",
	      body_fetches(from, 10), (unsigned long long)decodes());
	CHECK(stat(p10, &sb) == 0 && (sb.st_mode & 0777) == 0600 &&
		      sb.st_size == (off_t)strlen("Body of message 10.\n"),
	      "parts: its parts file is there, mode 0600, the part's size");
	CHECK(read_part(10) && read_part(10) && decodes() == 1,
	      "parts: read twice more, with no decode");
	cache_stats(pcache, &st);
	CHECK(st.views == 1 && st.bytes == one + (uint64_t)sb.st_size,
	      "parts: the cache counts body and parts file (%llu bytes)",
	      (unsigned long long)st.bytes);

	CHECK(truncate(p10, 3) == 0 && read_part(10) && decodes() == 2 &&
		      stat(p10, &sb) == 0 && sb.st_size > 3,
	      "parts: a parts file cut short is made again");
	CHECK(unlink(p10) == 0 && read_part(10) && decodes() == 3 &&
		      access(p10, F_OK) == 0,
	      "parts: a parts file removed is made again");
	cache_stats(pcache, &st);
	CHECK(st.bytes == one + (uint64_t)sb.st_size,
	      "parts: and counted once (%llu bytes)",
	      (unsigned long long)st.bytes);

	/* A crash between rename and record: a file the index does not
	 * know; and one of another size than recorded. */
	CHECK(read_part(20), "parts: UID 20's part read");
	cache_close(pcache);
	pcache = NULL;
	index_views_clear(ix, f_inbox, 20, NULL);
	CHECK(truncate(p10, 1) == 0, "parts: UID 10's file cut short");
	CHECK(cache_open(pdir, ix, pool, 1 << 20, 5, NULL, NULL, &pcache,
			 &err) == 0, "parts: the cache opened again (%s)",
	      err.msg);
	if (!pcache)
		goto out;
	CHECK(wait_gone(p20) && wait_gone(p10),
	      "parts: at start, both are swept");
	cache_stats(pcache, &st);
	CHECK(st.views == 0 && st.bytes == st.bodies * one,
	      "parts: and no longer counted (%llu bytes)",
	      (unsigned long long)st.bytes);
	CHECK(read_part(10) && read_part(20) && decodes() == 2 &&
		      access(p10, F_OK) == 0 && access(p20, F_OK) == 0,
	      "parts: read again, each made again once");

	/* A body more than half the cap: no parts file, a part decoded on
	 * its own at each open. */
	cache_close(pcache);
	pcache = NULL;
	CHECK(cache_open(pdir, ix, pool, one + one / 2, 5, NULL, NULL,
			 &pcache, &err) == 0,
	      "parts: a cache capped at one and a half bodies (%s)", err.msg);
	if (!pcache)
		goto out;
	parts_path(30, path, sizeof(path));
	{
		struct cache_key k = key(30);

		CHECK(cache_parts(pcache, &k, &err) == 0,
		      "parts: UID 30's parts listed (%s)", err.msg);
	}
	before = decodes();
	CHECK(read_part(30) && read_part(30) && decodes() == before + 2 &&
		      access(path, F_OK) != 0,
	      "parts: a body over half the cap reads with no parts file, "
	      "decoded at each open (%llu)",
	      (unsigned long long)(decodes() - before));
out:
	cache_close(pcache);
	pcache = NULL;
	index_close(ix);
}

/* Bytes of the files in pdir (bodies and parts files). */
static uint64_t dir_bytes(void)
{
	DIR *d = opendir(pdir);
	struct dirent *de;
	uint64_t n = 0;
	char path[600];
	struct stat sb;

	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && strncmp(de->d_name, "tmp.", 4)) {
			snprintf(path, sizeof(path), "%s/%s", pdir, de->d_name);
			if (stat(path, &sb) == 0)
				n += (uint64_t)sb.st_size;
		}
	if (d)
		closedir(d);
	return n;
}

#define EVICTORS 4
#define EVICT_FIRST 100
#define EVICT_N 80

static void *evict_reader(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;

	for (uint32_t u = EVICT_FIRST + t; u < EVICT_FIRST + EVICT_N;
	     u += EVICTORS)
		read_part(u);
	return NULL;
}

/* Readers fetching and decoding at once, each evicting what is over
 * the cap: the cache's byte count stays the bytes on disk (readers that
 * evicted the same entry at once each took its bytes off the total). */
static void test_evict_race(const char *dir, struct pool *pool)
{
	char path[400], body[1024];
	uint64_t one = strlen(fake_imap_body(EVICT_FIRST, body, sizeof(body)));
	struct mfs_error err = { 0 };
	struct index *ix = NULL;
	struct cache_stats st;
	pthread_t t[EVICTORS];
	int mb = fake_imap_mbox_by_name(srv, "INBOX");

	snprintf(path, sizeof(path), "%s/race.sqlite", dir);
	snprintf(pdir, sizeof(pdir), "%s/race", dir);
	CHECK(index_open(path, &ix, &err) == 0 && mkdir(pdir, 0700) == 0,
	      "race: an index and a cache directory (%s)", err.msg);
	if (!ix)
		return;
	index_folder_put(ix, 0, "INBOX", "INBOX", '/', 0, &f_inbox, NULL);
	index_folder_set_state(ix, f_inbox, 5, 6, 0, NULL);
	for (uint32_t u = EVICT_FIRST; u <= EVICT_FIRST + EVICT_N; u++) {
		char name[16];
		struct ix_msg m = { .folder = f_inbox, .uid = u, .size = one,
				    .flags = "", .name = name };

		snprintf(name, sizeof(name), "m%u", u);
		index_msg_put(ix, &m, NULL);
		fake_imap_put(srv, mb, u, "");
	}
	/* Room for about four messages with their parts. */
	CHECK(cache_open(pdir, ix, pool, 5 * one, 5, NULL, NULL, &pcache,
			 &err) == 0, "race: a small cache (%s)", err.msg);
	if (!pcache)
		goto out;
	for (unsigned i = 0; i < EVICTORS; i++)
		pthread_create(&t[i], NULL, evict_reader, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < EVICTORS; i++)
		pthread_join(t[i], NULL);
	/* The cache's thread may still be fetching a read-ahead window.
	 * What was in flight could not be evicted meanwhile: one more
	 * message read alone, and the cache is within its cap again. */
	for (int i = 0; i < 100; i++) {
		cache_stats(pcache, &st);
		if (st.bytes == dir_bytes())
			break;
		usleep(50000);
	}
	read_part(EVICT_FIRST + EVICT_N);
	cache_stats(pcache, &st);
	CHECK(st.bytes == dir_bytes() && st.bytes <= st.cap,
	      "race: %u readers of %u messages evicting at once: the cache "
	      "counts %llu bytes, %llu on disk, cap %llu",
	      EVICTORS, EVICT_N, (unsigned long long)st.bytes,
	      (unsigned long long)dir_bytes(), (unsigned long long)st.cap);
out:
	cache_close(pcache);
	pcache = NULL;
	index_close(ix);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	char dir[256], path[300], cdir[300], body[1024];
	struct mfs_error err = { 0 };
	struct imap_opts io = { 0 };
	struct index *ix = NULL;
	struct pool *pool = NULL;
	uint64_t one;
	int mb;

	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "%s/mfs-cache-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	mime_init();
	srv = fake_imap_start("IMAP4rev1");
	CHECK(srv != NULL, "the scripted IMAP server starts");
	if (!srv)
		goto out;
	mb = fake_imap_mbox(srv, "INBOX", 5);
	for (uint32_t u = 1; u <= 5; u++)
		fake_imap_put(srv, mb, u, "");
	snprintf(path, sizeof(path), "%s/index.sqlite", dir);
	snprintf(cdir, sizeof(cdir), "%s/cache", dir);
	CHECK(index_open(path, &ix, &err) == 0 && mkdir(cdir, 0700) == 0,
	      "an index and a cache directory (%s)", err.msg);
	if (!ix)
		goto out;
	index_folder_put(ix, 0, "INBOX", "INBOX", '/', 0, &f_inbox, NULL);
	index_folder_set_state(ix, f_inbox, 5, 6, 0, NULL);
	io = fake_imap_opts(srv);
	CHECK(pool_new(&io, 2, NULL, &pool) == 0, "a pool of 2 connections");
	/* Room for two bodies (all are the same size), not three. */
	one = strlen(fake_imap_body(1, body, sizeof(body)));
	CHECK(cache_open(cdir, ix, pool, 2 * one + one / 2, 5, NULL, NULL,
			 &cache, &err) == 0,
	      "a cache capped at two and a half bodies (%s)", err.msg);
	if (!cache)
		goto out;
	test_inflight();
	test_evict();
	test_parts(dir, pool);
	test_evict_race(dir, pool);
out:
	cache_close(cache);
	pool_free(pool);
	index_close(ix);
	fake_imap_stop(srv);
	mime_shutdown();
	curl_global_cleanup();
	test_rm_rf(dir);
	return check_done();
}
