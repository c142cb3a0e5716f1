/* test_cache.c - the body store (fs/core/cache.c): two readers of one
 * uncached message cause one UID FETCH, and with a small cap the least
 * recently used body is the one evicted.
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
