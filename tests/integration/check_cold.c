/* check_cold.c - rows that are not in memory, served by the real engramd:
 * read by the I/O thread in page-cache mode and into the row cache, exact
 * against the fill formula (egt_row_bytes) for rows that straddle pages and
 * the short last chunk; the row cache never serves a row of another
 * version, across patches, published versions and concurrent reloads; rows
 * once read count warm in a table partly in memory, and a cold table (or
 * one served from a row cache) is not read back behind the lookups; a
 * table wholly in memory is known to be, also once patched, and gets pages
 * evicted behind its back read back, without holding up a reload when
 * that read hangs. */
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "egtest.h"
#include "engram.h"

/* 100-byte rows: one in 40 crosses a page boundary; 50,037 slots leave a
 * short last chunk of 885 rows. */
#define ROW 100
#define SLOTS 50037
#define CHUNK 1024
#define SEED 7
#define N 3000

static void evict(const char *dir)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fdatasync(fd), 0);
	ck_assert_int_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	close(fd);
}

/* One metric's value from GET /metrics on 127.0.0.1:port (first sample
 * whose line starts with name); -1 when absent. */
static double metric(int port, const char *name)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	static char buf[1 << 17];
	const char *req = "GET /metrics HTTP/1.0\r\n\r\n";
	size_t got = 0;
	ssize_t r;
	char *p;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	while (got < sizeof(buf) - 1 && (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)r;
	close(fd);
	buf[got] = '\0';
	for (p = buf; (p = strstr(p, name)); p++) {
		if ((p == buf || p[-1] == '\n') && (p[strlen(name)] == ' ' || p[strlen(name)] == '{'))
			return atof(strchr(p, ' ') + 1);
	}
	return -1;
}

/* Random slots plus the edges: first, last, both rows around a chunk
 * boundary, rows of the short last chunk. */
static void pick_slots(uint64_t *s, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		s[i] = x % SLOTS;
	}
	s[0] = 0;
	s[1] = SLOTS - 1;
	s[2] = CHUNK - 1;
	s[3] = CHUNK;
	s[4] = (SLOTS / CHUNK) * CHUNK;
	s[5] = s[9]; /* a duplicate */
}

/* The row of slot a daemon must serve: patched slots (even ones below
 * patched_below) carry seed patch_seed. */
static void want_row(uint64_t slot, uint64_t seed, uint64_t patched_below, uint64_t patch_seed,
                     uint8_t *out)
{
	int patched = slot < patched_below && slot % 2 == 0;

	egt_row_bytes(patched ? patch_seed : seed, slot, ROW, out);
}

static void check_lookup(eg_client *c, const uint64_t *slots, size_t n, uint64_t seed,
                         uint64_t gen, uint64_t patched_below, uint64_t patch_seed)
{
	uint8_t *rows = malloc(n * ROW), want[ROW];
	eg_client_rows r;

	ck_assert_int_eq(eg_client_lookup(c, "t", slots, n, rows, n * ROW, &r), 0);
	ck_assert_uint_eq(r.count, n);
	ck_assert_uint_eq(r.generation, gen);
	for (size_t i = 0; i < n; i++) {
		want_row(slots[i], seed, patched_below, patch_seed, want);
		ck_assert_msg(memcmp(rows + i * ROW, want, ROW) == 0,
		              "slot %llu (index %zu) differs from the fill formula",
		              (unsigned long long)slots[i], i);
	}
	free(rows);
}

static void start(egt_daemon *d, const char *dir, int port, const char *cache)
{
	char table[600], http[64];
	const char *args[8] = { "--table", table, "--http", http, NULL, NULL, NULL };

	snprintf(table, sizeof(table), "t=%s", dir);
	snprintf(http, sizeof(http), "127.0.0.1:%d", port);
	if (cache) {
		args[4] = "--cache-bytes";
		args[5] = cache;
	}
	egt_daemon_start(d, 0, args);
}

/* Reads the whole data file, so every page of it is in the page cache. */
static void warm(const char *dir)
{
	char path[512], buf[1 << 16];
	int fd;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

/* Builds table t, evicted from the page cache (cold) or read whole, and
 * serves it with its metrics on port; *c is connected. Returns its dir. */
static char *serve(egt_daemon *d, eg_client **c, int port, const char *cache, int cold)
{
	char *dir = egt_path("t");

	egt_make_table(dir, "t", SLOTS, ROW, CHUNK, SEED);
	if (cold)
		evict(dir);
	else
		warm(dir);
	start(d, dir, port, cache);
	ck_assert_int_eq(eg_client_connect(d->addr, 10000, c), 0);
	return dir;
}

static void cold_exact(const char *cache)
{
	uint64_t *slots = malloc(N * sizeof(*slots));
	int port = egt_free_port();
	egt_daemon d;
	eg_client *c;

	serve(&d, &c, port, cache, 1);
	for (int round = 0; round < 3; round++) {
		pick_slots(slots, N, (uint64_t)round % 2 + 1); /* rounds 0 and 2 ask the same */
		check_lookup(c, slots, N, SEED, 1, 0, 0);
	}
	/* the rows really came through the I/O thread */
	ck_assert_double_gt(metric(port, "engramd_rows_cold_total"), 0);
	ck_assert_double_gt(metric(port, "engramd_disk_reads_total"), 0);
	ck_assert_double_gt(metric(port, "engramd_disk_read_latency_seconds_count"), 0);
	if (cache) {
		ck_assert_double_gt(metric(port, "engramd_cache_hits_total"), 0);
		ck_assert_double_gt(metric(port, "engramd_cache_misses_total"), 0);
	}
	/* and `engram stats` / eg_client_stats_get say the same */
	{
		eg_client_stats st;

		ck_assert_int_eq(eg_client_stats_get(c, &st), 0);
		ck_assert_uint_eq(st.rows_cold, (uint64_t)metric(port, "engramd_rows_cold_total"));
		ck_assert_uint_eq(st.rows_warm + st.rows_cold, 3 * N);
		ck_assert_uint_gt(st.disk_reads, 0);
		ck_assert_uint_ge(st.disk_read_bytes, st.disk_reads * 512);
		ck_assert_uint_gt(st.disk_read_p99_us, 0);
		ck_assert_uint_ge(st.disk_read_p99_us, st.disk_read_p50_us);
		if (cache) {
			ck_assert_uint_eq(st.cache_hits + st.cache_misses, 3 * N);
			ck_assert_uint_gt(st.cache_rows, 0);
			ck_assert_uint_le(st.cache_bytes, 512 * 1024);
		}
	}
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
	free(slots);
}

START_TEST(page_cache_mode_cold_rows_exact)
{
	cold_exact(NULL);
}
END_TEST

/* A table partly in memory: a small lookup (served on the loop when all
 * its rows are known resident) counts its rows warm only once they have
 * been read, and a row of a page still out is read cold. */
START_TEST(read_rows_turn_warm_in_a_partly_cold_table)
{
	enum { SMALL = 64 };
	uint64_t slots[2 * SMALL];
	int port = egt_free_port();
	double warm, cold;
	egt_daemon d;
	eg_client *c;

	serve(&d, &c, port, NULL, 1);
	pick_slots(slots, 2 * SMALL, 21);
	check_lookup(c, slots, SMALL, SEED, 1, 0, 0);
	cold = metric(port, "engramd_rows_cold_total");
	warm = metric(port, "engramd_rows_warm_total");
	ck_assert_double_gt(cold, 0);
	ck_assert_double_eq(warm + cold, SMALL);
	/* the same rows again: their pages were read, so all warm */
	check_lookup(c, slots, SMALL, SEED, 1, 0, 0);
	ck_assert_double_eq(metric(port, "engramd_rows_cold_total"), cold);
	ck_assert_double_eq(metric(port, "engramd_rows_warm_total"), warm + SMALL);
	/* with as many rows not read yet: those come from the disk */
	check_lookup(c, slots, 2 * SMALL, SEED, 1, 0, 0);
	ck_assert_double_gt(metric(port, "engramd_rows_cold_total"), cold);
	ck_assert_double_eq(metric(port, "engramd_rows_warm_total") +
	                            metric(port, "engramd_rows_cold_total"), 4 * SMALL);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* A cold table with a part of it read, so that fewer than 1024 pages are
 * missing (the read-back's bound for large tables), is cold, not a warm
 * table that lost a few pages: nothing reads the rest back. */
START_TEST(a_cold_table_is_not_read_back)
{
	enum { SOME = 100 };
	uint64_t slots[SOME];
	int port = egt_free_port();
	double used, res;
	egt_daemon d;
	eg_client *c;

	serve(&d, &c, port, NULL, 1);
	used = metric(port, "engramd_used_pages");
	for (uint64_t round = 0; round < 30; round++) {
		usleep(60000); /* the refresh has seen the last lookup's pages */
		if (used - metric(port, "engramd_resident_pages") < 1000)
			break;
		pick_slots(slots, SOME, 31 + round);
		check_lookup(c, slots, SOME, SEED, 1, 0, 0);
	}
	ck_assert_double_lt(used - metric(port, "engramd_resident_pages"), 1000);
	usleep(600000); /* a dozen refresh steps: 1536 pages' worth of read-back */
	res = metric(port, "engramd_resident_pages");
	ck_assert_msg(used - res > 500, "%g of %g pages resident: the cold table was read back", res,
	              used);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* A cache of about a tenth of the table: rows are evicted and read again. */
START_TEST(row_cache_mode_cold_rows_exact)
{
	cold_exact("512K");
}
END_TEST

/* A page budget of 1 MiB on a 5 MB table: rows stay exact while engramd
 * keeps dropping pages to stay inside it. */
START_TEST(page_budget_holds)
{
	char *dir = egt_path("t");
	uint64_t *slots = malloc(N * sizeof(*slots));
	char table[600], http[64];
	const char *args[] = { "--table", table, "--http", http, "--page-budget", "1M", NULL };
	int port = egt_free_port();
	double resident, evicted;
	egt_daemon d;
	eg_client *c;

	egt_make_table(dir, "t", SLOTS, ROW, CHUNK, SEED);
	evict(dir);
	snprintf(table, sizeof(table), "t=%s", dir);
	snprintf(http, sizeof(http), "127.0.0.1:%d", port);
	egt_daemon_start(&d, 0, args);
	ck_assert_int_eq(eg_client_connect(d.addr, 10000, &c), 0);
	for (int round = 0; round < 6; round++) {
		pick_slots(slots, N, (uint64_t)round + 20);
		check_lookup(c, slots, N, SEED, 1, 0, 0);
		resident = metric(port, "engramd_resident_pages");
		/* the budget, plus what one piece's reads may add before the
		 * clock runs (pages of 4 KiB) */
		ck_assert_double_le(resident, 256 + 512);
	}
	evicted = metric(port, "engramd_page_evictions_total");
	ck_assert_double_gt(evicted, 0);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
	free(slots);
}
END_TEST

/* Patch even slots below 20000 with rows of seed 100 + generation. */
static void patch(const char *dir, uint64_t gen_after)
{
	size_t n = 10000;
	uint64_t *slots = malloc(n * sizeof(*slots));
	uint8_t *rows = malloc(n * ROW);
	uint64_t g = 0;

	for (size_t i = 0; i < n; i++) {
		slots[i] = 2 * i;
		egt_row_bytes(100 + gen_after, slots[i], ROW, rows + i * ROW);
	}
	ck_assert_int_eq(eg_table_update(dir, slots, n, rows, NULL, &g), 0);
	ck_assert_uint_eq(g, gen_after);
	free(slots);
	free(rows);
}

static void reload(eg_client *c, uint64_t want_gen)
{
	eg_client_reload res;
	size_t n = 0;

	ck_assert_int_eq(eg_client_reload_tables(c, "t", &res, 1, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(res.error, "");
	ck_assert_uint_eq(res.new_generation, want_gen);
}

START_TEST(row_cache_follows_patches_and_publish)
{
	char *v1 = egt_path("v1"), *v2 = egt_path("v2"), *link = egt_path("cur");
	uint64_t *slots = malloc(N * sizeof(*slots));
	int port = egt_free_port();
	egt_daemon d;
	eg_client *c;
	eg_meta m = { 0 };
	eg_builder *b;
	uint64_t slot = 0;

	egt_make_table(v1, "t", SLOTS, ROW, CHUNK, SEED);
	ck_assert_int_eq(symlink(v1, link), 0);
	/* a cache that holds the whole table: every row asked twice is a hit */
	start(&d, link, port, "64M");
	ck_assert_int_eq(eg_client_connect(d.addr, 10000, &c), 0);
	pick_slots(slots, N, 3);
	check_lookup(c, slots, N, SEED, 1, 0, 0);
	check_lookup(c, slots, N, SEED, 1, 0, 0);
	ck_assert_double_gt(metric(port, "engramd_cache_hits_total"), N - 1);

	/* patches in place: the patched rows change, the cached others stay */
	patch(v1, 2);
	reload(c, 2);
	check_lookup(c, slots, N, SEED, 2, 20000, 102);
	patch(v1, 3);
	reload(c, 3);
	check_lookup(c, slots, N, SEED, 3, 20000, 103);
	check_lookup(c, slots, N, SEED, 3, 20000, 103);

	/* a published version of other rows: nothing cached may survive */
	snprintf(m.name, sizeof(m.name), "t");
	m.slots = SLOTS;
	m.dim = ROW;
	m.dtype = EG_DTYPE_U8;
	m.chunk_slots = CHUNK;
	m.generation = 10;
	ck_assert_int_eq(eg_builder_open(v2, &m, &b), 0);
	for (uint64_t k = 0; k < eg_builder_chunks(b); k++) {
		uint8_t *rows;

		ck_assert_int_eq(eg_builder_next_chunk(b, (void **)&rows), 0);
		for (uint64_t r = 0; r < eg_builder_chunk_rows(b, k); r++, slot++)
			egt_row_bytes(SEED + 1, slot, ROW, rows + r * ROW);
	}
	ck_assert_int_eq(eg_builder_finish(b), 0);
	ck_assert_int_eq(unlink(link), 0);
	ck_assert_int_eq(symlink(v2, link), 0);
	reload(c, 10);
	check_lookup(c, slots, N, SEED + 1, 10, 0, 0);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
	free(slots);
}
END_TEST

/* Waits (5 s at most) until the daemon's residency refresh has seen the
 * table's newest commit: it counts at least the pages that commit uses. */
static void wait_refresh(int port, const char *dir)
{
	double want, until = egt_now() + 5;
	uint64_t used = 0;
	eg_table *t;

	ck_assert_int_eq(eg_table_open(dir, &t), 0);
	ck_assert_int_eq(eg_table_used_bytes(t, &used), 0);
	eg_table_close(t);
	want = (double)(used / (uint64_t)sysconf(_SC_PAGESIZE));
	while (metric(port, "engramd_used_pages") < want && egt_now() < until)
		usleep(10000);
	ck_assert_double_ge(metric(port, "engramd_used_pages"), want);
}

/* Whether the daemon knows table t wholly resident (what lets lookups skip
 * the per-row check). */
static void assert_known_resident(int port)
{
	double used = metric(port, "engramd_used_pages");
	double res = metric(port, "engramd_resident_pages");

	ck_assert_msg(used > 0 && res >= used, "%g of %g used pages known resident", res, used);
}

/* A table wholly in memory is known to be, and stays so while it is
 * patched: a patch grows the file past the pages in use (room set aside
 * for the next one), which must not count as pages missing. Every row is
 * counted warm, none cold. */
START_TEST(warm_table_stays_warm_across_patches)
{
	uint64_t *slots = malloc(N * sizeof(*slots));
	int port = egt_free_port();
	egt_daemon d;
	eg_client *c;
	char *dir = serve(&d, &c, port, NULL, 0);

	pick_slots(slots, N, 4);
	check_lookup(c, slots, N, SEED, 1, 0, 0);
	assert_known_resident(port);
	for (uint64_t g = 2; g <= 4; g++) {
		patch(dir, g);
		wait_refresh(port, dir);
		assert_known_resident(port);
		check_lookup(c, slots, N, SEED, g - 1, g > 2 ? 20000 : 0, 100 + g - 1);
		reload(c, g);
		assert_known_resident(port);
		check_lookup(c, slots, N, SEED, g, 20000, 100 + g);
	}
	ck_assert_double_eq(metric(port, "engramd_rows_warm_total"), 7 * N);
	ck_assert_double_eq(metric(port, "engramd_rows_cold_total"), 0);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
	free(slots);
}
END_TEST

/* Resident pages of data.mdb among [first, first + n). */
static unsigned resident_of(const char *dir, uint64_t first, unsigned n)
{
	long psz = sysconf(_SC_PAGESIZE);
	unsigned char vec[64];
	char path[512];
	unsigned got = 0;
	void *map;
	int fd;

	ck_assert_uint_le(n, sizeof(vec));
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	ck_assert_int_ge(fd = open(path, O_RDONLY | O_CLOEXEC), 0);
	map = mmap(NULL, (size_t)n * (size_t)psz, PROT_READ, MAP_SHARED, fd, (off_t)first * psz);
	ck_assert_ptr_ne(map, MAP_FAILED);
	ck_assert_int_eq(mincore(map, (size_t)n * (size_t)psz, vec), 0);
	for (unsigned i = 0; i < n; i++)
		got += vec[i] & 1;
	munmap(map, (size_t)n * (size_t)psz);
	close(fd);
	return got;
}

/* Builds table dir read back a page at a time: whole folios of one page
 * each, so that a few pages can leave (a large folio leaves whole or not
 * at all). Returns data.mdb open (close-on-exec: a daemon started later
 * must not hold it). */
static int make_paged_table(const char *dir, uint64_t gen)
{
	long psz = sysconf(_SC_PAGESIZE);
	char path[512], byte;
	int fd;

	egt_make_table_gen(dir, "t", SLOTS, ROW, CHUNK, SEED, gen);
	evict(dir);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	ck_assert_int_ge(fd = open(path, O_RDONLY | O_CLOEXEC), 0);
	ck_assert_int_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM), 0);
	for (off_t off = 0; pread(fd, &byte, 1, off) == 1; off += psz)
		;
	return fd;
}

/* Takes pages [first, first + OUT) of data.mdb (fd) out of the page cache,
 * pages the daemon has not mapped (no lookup yet); retried, as the daemon
 * may read them back between the advice and the look. Closes fd. */
enum { OUT = 8 };
static void take_out(const char *dir, int fd, uint64_t first)
{
	long psz = sysconf(_SC_PAGESIZE);

	for (int i = 0; i < 5 && resident_of(dir, first, OUT) == OUT; i++)
		ck_assert_int_eq(posix_fadvise(fd, (off_t)first * psz, OUT * psz, POSIX_FADV_DONTNEED), 0);
	close(fd);
	ck_assert_uint_lt(resident_of(dir, first, OUT), OUT);
}

/* A table that fits, with a few pages taken out of the page cache behind
 * the daemon's back (as a proactive reclaimer takes pages that look idle):
 * engramd reads them back by itself, with no lookup asking for them, and
 * the table is known wholly resident again. */
START_TEST(evicted_pages_of_a_warm_table_come_back)
{
	int port = egt_free_port();
	char *dir = egt_path("t");
	int fd = make_paged_table(dir, 1);
	uint64_t first;
	double until;
	egt_daemon d;
	eg_client *c;

	start(&d, dir, port, NULL);
	ck_assert_int_eq(eg_client_connect(d.addr, 10000, &c), 0);
	first = (uint64_t)metric(port, "engramd_used_pages") / 2;
	take_out(dir, fd, first);
	until = egt_now() + 5;
	while ((resident_of(dir, first, OUT) < OUT ||
	        metric(port, "engramd_resident_pages") < metric(port, "engramd_used_pages")) &&
	       egt_now() < until)
		usleep(20000);
	ck_assert_uint_eq(resident_of(dir, first, OUT), OUT);
	ck_assert_double_ge(metric(port, "engramd_resident_pages"), metric(port, "engramd_used_pages"));
	ck_assert_double_eq(metric(port, "engramd_rows_cold_total"), 0);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* Pages [first, first + OUT) of a table served from a row cache, taken
 * out of the page cache, stay out a dozen refresh steps later. */
static void stays_out(const char *dir, int fd)
{
	struct stat st;
	uint64_t first;

	ck_assert_int_eq(fstat(fd, &st), 0);
	first = (uint64_t)st.st_size / (uint64_t)sysconf(_SC_PAGESIZE) / 2;
	take_out(dir, fd, first);
	usleep(600000);
	ck_assert_uint_lt(resident_of(dir, first, OUT), OUT);
}

/* A table served from a row cache reads its rows around the page cache:
 * pages of it evicted from there are left out, not read back; also in a
 * version published while it serves. */
START_TEST(a_row_cache_table_is_not_read_back)
{
	int port = egt_free_port();
	char *v1 = egt_path("v1"), *v2 = egt_path("v2"), *link = egt_path("cur");
	int fd1 = make_paged_table(v1, 1), fd2 = make_paged_table(v2, 2);
	egt_daemon d;
	eg_client *c;

	ck_assert_int_eq(symlink(v1, link), 0);
	start(&d, link, port, "512K");
	ck_assert_int_eq(eg_client_connect(d.addr, 10000, &c), 0);
	stays_out(v1, fd1);
	ck_assert_int_eq(unlink(link), 0);
	ck_assert_int_eq(symlink(v2, link), 0);
	reload(c, 2);
	stays_out(v2, fd2);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* The read-back of evicted pages stuck on a hung disk (the tests' fault
 * hook holds it 6 s) holds up nothing else: a new version is published
 * and served while it waits. The old version's file, which the read-back
 * still reads, is closed once it is done. */
START_TEST(a_hung_read_back_holds_up_no_reload)
{
	int port = egt_free_port();
	char *v1 = egt_path("v1"), *v2 = egt_path("v2"), *link = egt_path("cur");
	int fd = make_paged_table(v1, 1);
	uint64_t slots[64];
	double until, took;
	char old[600];
	egt_daemon d;
	eg_client *c;

	egt_make_table_gen(v2, "t", SLOTS, ROW, CHUNK, SEED, 2);
	ck_assert_int_eq(symlink(v1, link), 0);
	setenv("ENGRAMD", getenv("ENGRAMD_FAULTS"), 1);
	setenv("ENGRAMD_FAULT_SLOW_REFILL", "6000", 1);
	start(&d, link, port, NULL);
	ck_assert_int_eq(eg_client_connect(d.addr, 10000, &c), 0);
	take_out(v1, fd, (uint64_t)metric(port, "engramd_used_pages") / 2);
	until = egt_now() + 5;
	while (!egt_count_lines(d.log, "a read-back waits") && egt_now() < until)
		usleep(20000);
	ck_assert_msg(egt_count_lines(d.log, "a read-back waits"), "no read-back began");
	ck_assert_int_eq(unlink(link), 0);
	ck_assert_int_eq(symlink(v2, link), 0);
	took = egt_now();
	reload(c, 2);
	took = egt_now() - took;
	ck_assert_msg(took < 3, "the reload took %.2f s, behind the read-back", took);
	pick_slots(slots, 64, 41);
	check_lookup(c, slots, 64, SEED, 2, 0, 0);
	snprintf(old, sizeof(old), "%s/data.mdb", v1);
	until = egt_now() + 10;
	while (egt_fd_count_on(d.pid, old) && egt_now() < until)
		usleep(50000);
	ck_assert_msg(!egt_fd_count_on(d.pid, old), "engramd still holds %s after the read-back", old);
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

/* Readers while a writer patches and the daemon reloads: each response is
 * exactly the rows of the generation it names. */
struct reader {
	const char *addr;
	atomic_int *stop;
	int checked;
};

static void *read_loop(void *arg)
{
	struct reader *rd = arg;
	uint64_t *slots = malloc(N * sizeof(*slots));
	uint8_t *rows = malloc(N * ROW), want[ROW];
	eg_client *c;

	ck_assert_int_eq(eg_client_connect(rd->addr, 10000, &c), 0);
	for (uint64_t round = 0; !atomic_load(rd->stop); round++) {
		eg_client_rows r;

		pick_slots(slots, N, round % 5 + 10);
		ck_assert_int_eq(eg_client_lookup(c, "t", slots, N, rows, N * ROW, &r), 0);
		for (size_t i = 0; i < N; i++) {
			want_row(slots[i], SEED, r.generation > 1 ? 20000 : 0, 100 + r.generation, want);
			ck_assert_msg(memcmp(rows + i * ROW, want, ROW) == 0,
			              "generation %llu slot %llu: a row of another version",
			              (unsigned long long)r.generation, (unsigned long long)slots[i]);
		}
		rd->checked++;
	}
	eg_client_close(c);
	free(slots);
	free(rows);
	return NULL;
}

START_TEST(row_cache_exact_under_concurrent_reloads)
{
	char *dir = egt_path("t");
	atomic_int stop = 0;
	struct reader rd[2];
	pthread_t th[2];
	egt_daemon d;
	eg_client *c;

	egt_make_table(dir, "t", SLOTS, ROW, CHUNK, SEED);
	evict(dir);
	start(&d, dir, egt_free_port(), "1M");
	ck_assert_int_eq(eg_client_connect(d.addr, 10000, &c), 0);
	for (int i = 0; i < 2; i++) {
		rd[i] = (struct reader){ .addr = d.addr, .stop = &stop };
		ck_assert_int_eq(pthread_create(&th[i], NULL, read_loop, &rd[i]), 0);
	}
	for (uint64_t g = 2; g <= 8; g++) {
		patch(dir, g);
		evict(dir);
		reload(c, g);
		usleep(50000);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_gt(rd[i].checked, 0);
	}
	eg_client_close(c);
	ck_assert_int_eq(egt_daemon_stop(&d, SIGTERM), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cold");
	TCase *tc = tcase_create("cold");

	tcase_add_test(tc, page_cache_mode_cold_rows_exact);
	tcase_add_test(tc, row_cache_mode_cold_rows_exact);
	tcase_add_test(tc, read_rows_turn_warm_in_a_partly_cold_table);
	tcase_add_test(tc, a_cold_table_is_not_read_back);
	tcase_add_test(tc, page_budget_holds);
	tcase_add_test(tc, warm_table_stays_warm_across_patches);
	tcase_add_test(tc, evicted_pages_of_a_warm_table_come_back);
	tcase_add_test(tc, a_hung_read_back_holds_up_no_reload);
	tcase_add_test(tc, a_row_cache_table_is_not_read_back);
	tcase_add_test(tc, row_cache_follows_patches_and_publish);
	tcase_add_test(tc, row_cache_exact_under_concurrent_reloads);
	suite_add_tcase(s, tc);
	return egt_run_suite(s);
}
