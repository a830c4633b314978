/* check_rowcache.c - the row cache (server/rowcache.c): exact rows, epochs,
 * the byte budget, the policy against a plain FIFO on a Zipf stream and
 * against a one-pass scan, and threads racing on the same rows. Every row is
 * egt_row_bytes(epoch, slot), so each hit can be checked byte for byte. */
#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egtest.h"
#include "rowcache.h"

#define OVERHEAD 24 /* bytes per row beyond row_bytes the cache may spend */

static uint64_t rnd(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static struct ed_rowcache *cache_new(uint32_t row_bytes, uint64_t budget)
{
	struct ed_rowcache *c = NULL;
	int rc = ed_rowcache_new(row_bytes, budget, &c);

	ck_assert_msg(rc == 0, "ed_rowcache_new(%u, %llu): %d", row_bytes,
	              (unsigned long long)budget, rc);
	return c;
}

static struct ed_rowcache_stats stats_of(const struct ed_rowcache *c)
{
	struct ed_rowcache_stats st;

	ed_rowcache_stats(c, &st);
	return st;
}

/* Puts (slots[i], epochs[i]) with their reference rows, in one call. */
static void put_ref(struct ed_rowcache *c, uint32_t row_bytes, const uint64_t *slots,
                    const uint32_t *epochs, size_t n)
{
	uint8_t *buf = malloc(n * row_bytes);
	const uint8_t **rows = malloc(n * sizeof *rows);

	ck_assert(buf && rows);
	for (size_t i = 0; i < n; i++) {
		egt_row_bytes(epochs[i], slots[i], row_bytes, buf + i * row_bytes);
		rows[i] = buf + i * row_bytes;
	}
	ed_rowcache_put(c, slots, epochs, n, rows);
	free(rows);
	free(buf);
}

/* Gets in one call; checks every hit against its reference row and every
 * miss's row untouched (0xa5). Returns the hits; hit[] is the caller's. */
static size_t get_check(struct ed_rowcache *c, uint32_t row_bytes, const uint64_t *slots,
                        const uint32_t *epochs, size_t n, uint8_t *hit)
{
	uint8_t *dst = malloc(n * row_bytes), *want = malloc(row_bytes), *poison = malloc(row_bytes);
	size_t hits, counted = 0;

	ck_assert(dst && want && poison);
	memset(dst, 0xa5, n * row_bytes);
	memset(poison, 0xa5, row_bytes);
	hits = ed_rowcache_get(c, slots, epochs, n, dst, hit);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_le(hit[i], 1);
		if (hit[i])
			egt_row_bytes(epochs[i], slots[i], row_bytes, want);
		ck_assert_msg(memcmp(dst + i * row_bytes, hit[i] ? want : poison, row_bytes) == 0,
		              "row %zu (slot %llu epoch %u, %s) has the wrong bytes", i,
		              (unsigned long long)slots[i], epochs[i], hit[i] ? "hit" : "miss");
		counted += hit[i];
	}
	ck_assert_uint_eq(hits, counted);
	free(poison);
	free(want);
	free(dst);
	return hits;
}

static int hit1(struct ed_rowcache *c, uint32_t row_bytes, uint64_t slot, uint32_t epoch)
{
	uint8_t hit;

	return (int)get_check(c, row_bytes, &slot, &epoch, 1, &hit);
}

/* ---- contract ------------------------------------------------------------ */

START_TEST(test_new_errors)
{
	struct ed_rowcache *c = (struct ed_rowcache *)1;

	ck_assert_int_eq(ed_rowcache_new(0, 1 << 20, &c), -EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(ed_rowcache_new(ED_ROWCACHE_MAX_ROW + 1, 1ull << 30, &c), -EINVAL);
	ck_assert_int_eq(ed_rowcache_new(160, 0, &c), -EINVAL);
	ck_assert_int_eq(ed_rowcache_new(160, 15 * 160, &c), -EINVAL);
	/* the smallest budget that works buys ED_ROWCACHE_MIN_ROWS rows */
	for (uint64_t b = 16 * 160; c == NULL; b += 8) {
		int rc = ed_rowcache_new(160, b, &c);

		ck_assert(rc == 0 || rc == -EINVAL);
		ck_assert_uint_lt(b, 16 * (160 + OVERHEAD) + 4096);
	}
	ck_assert_uint_eq(stats_of(c).capacity, ED_ROWCACHE_MIN_ROWS);
	ed_rowcache_free(c);
	c = cache_new(ED_ROWCACHE_MAX_ROW, 20ull * (ED_ROWCACHE_MAX_ROW + OVERHEAD));
	ck_assert_uint_ge(stats_of(c).capacity, ED_ROWCACHE_MIN_ROWS);
	ed_rowcache_free(c);
	ed_rowcache_free(NULL);
}
END_TEST

static const uint32_t row_sizes[] = {1, 7, 16, 160, 4096, ED_ROWCACHE_MAX_ROW};

/* Rows come back byte for byte, across more than one shard group, and only
 * the rows that were put hit. */
START_TEST(test_exact_rows)
{
	uint32_t rb = row_sizes[_i];
	size_t n = rb >= 4096 ? 300 : 2 * ED_ROWCACHE_GROUP + 123; /* what fits the budget */
	struct ed_rowcache *c = cache_new(rb, 2 * n * (rb + OVERHEAD) + (1 << 16));
	uint64_t *slots = malloc(2 * n * sizeof *slots), seed = rb;
	uint32_t *epochs = malloc(2 * n * sizeof *epochs);
	uint8_t *hit = malloc(2 * n);

	ck_assert(slots && epochs && hit);
	for (size_t i = 0; i < 2 * n; i++) {
		slots[i] = rnd(&seed) >> 20; /* up to 2^44 */
		epochs[i] = (uint32_t)rnd(&seed);
	}
	ck_assert_uint_ge(stats_of(c).capacity, 2 * n); /* nothing needs evicting */
	put_ref(c, rb, slots, epochs, n); /* the first half */
	ck_assert_uint_eq(get_check(c, rb, slots, epochs, 2 * n, hit), n);
	for (size_t i = 0; i < 2 * n; i++)
		ck_assert_uint_eq(hit[i], i < n);
	ck_assert_uint_eq(stats_of(c).entries, n);
	ck_assert_uint_eq(stats_of(c).hits, n);
	ck_assert_uint_eq(stats_of(c).misses, n);
	free(hit);
	free(epochs);
	free(slots);
	ed_rowcache_free(c);
}
END_TEST

START_TEST(test_epochs)
{
	const uint32_t rb = 160;
	struct ed_rowcache *c = cache_new(rb, 1000 * (rb + OVERHEAD));
	uint64_t slot = (1ull << 40) + 5, dup[3] = {7, 7, 7};
	uint32_t e1 = 1, e2 = 2, dup_e[3] = {3, 9, 4};
	uint8_t junk[160], hit[3];
	const uint8_t *junk_row = junk;

	put_ref(c, rb, &slot, &e1, 1);
	ck_assert_int_eq(hit1(c, rb, slot, e1), 1);
	ck_assert_int_eq(hit1(c, rb, slot, e2), 0); /* another epoch is a miss */
	ck_assert_int_eq(hit1(c, rb, slot, UINT32_MAX), 0);
	ck_assert_int_eq(hit1(c, rb, slot - 1, e1), 0);
	/* a new epoch replaces the row in place */
	put_ref(c, rb, &slot, &e2, 1);
	ck_assert_int_eq(hit1(c, rb, slot, e2), 1);
	ck_assert_int_eq(hit1(c, rb, slot, e1), 0);
	ck_assert_uint_eq(stats_of(c).entries, 1);
	ck_assert_uint_eq(stats_of(c).inserts, 2);
	/* and the old epoch comes back the same way */
	put_ref(c, rb, &slot, &e1, 1);
	ck_assert_int_eq(hit1(c, rb, slot, e1), 1);
	/* the same epoch means the same bytes: a second put leaves the row */
	memset(junk, 0x5a, sizeof junk);
	ed_rowcache_put(c, &slot, &e1, 1, &junk_row);
	ck_assert_int_eq(hit1(c, rb, slot, e1), 1);
	ck_assert_uint_eq(stats_of(c).inserts, 3);
	/* duplicates in one call: the last epoch wins, one entry */
	put_ref(c, rb, dup, dup_e, 3);
	ck_assert_int_eq(hit1(c, rb, 7, 4), 1);
	ck_assert_int_eq(hit1(c, rb, 7, 3), 0);
	ck_assert_int_eq(hit1(c, rb, 7, 9), 0);
	ck_assert_uint_eq(stats_of(c).entries, 2);
	/* n = 0 touches nothing */
	ck_assert_uint_eq(ed_rowcache_get(c, dup, dup_e, 0, junk, hit), 0);
	ed_rowcache_put(c, dup, dup_e, 0, &junk_row);
	ck_assert_uint_eq(stats_of(c).entries, 2);
	ed_rowcache_free(c);
}
END_TEST

/* ---- the budget ------------------------------------------------------------ */

static const uint64_t budgets[] = {4096, 100000, 1 << 20, 3000017, 64ull << 20};

/* What the cache allocates stays within the budget and close to capacity *
 * (row_bytes + OVERHEAD), through many more inserts than it holds. */
START_TEST(test_budget)
{
	size_t nb = sizeof budgets / sizeof budgets[0];
	uint32_t rb = row_sizes[_i / nb];
	uint64_t budget = budgets[_i % nb], seed = _i, slack = 64 * 256;
	struct ed_rowcache *c = NULL;
	struct ed_rowcache_stats st;
	uint64_t slots[256];
	uint32_t epochs[256] = {0};

	struct mallinfo2 before = mallinfo2(), after;
	uint64_t seen;

	if (ed_rowcache_new(rb, budget, &c) == -EINVAL) {
		ck_assert_uint_lt(budget, ED_ROWCACHE_MIN_ROWS * (uint64_t)(rb + OVERHEAD) + slack);
		return;
	}
	st = stats_of(c);
	/* what malloc handed out agrees, give or take its headers and mmap's
	 * pages (sanitizers bring their own allocator: then malloc sees 0) */
	after = mallinfo2();
	seen = (after.uordblks + after.hblkhd) - (before.uordblks + before.hblkhd);
	if (seen) {
		ck_assert_uint_ge(seen, st.bytes);
		ck_assert_uint_le(seen, st.bytes + 66 * 4096);
	}
	ck_assert_uint_le(st.bytes, budget);
	ck_assert_uint_eq(st.bytes, ed_rowcache_bytes(c));
	ck_assert_uint_ge(st.bytes, st.capacity * (rb + 16)); /* at least the rows and keys */
	ck_assert_uint_le(st.bytes, st.capacity * (rb + OVERHEAD) + slack);
	/* the budget is used, not a fraction of it: under a row per shard left */
	ck_assert_uint_ge(st.capacity * (rb + OVERHEAD) + slack + 64 * (rb + OVERHEAD), budget);
	printf("budget %llu row_bytes %u: capacity %llu, %llu bytes, %.1f bytes per row beyond the row\n",
	       (unsigned long long)budget, rb, (unsigned long long)st.capacity,
	       (unsigned long long)st.bytes, (double)st.bytes / (double)st.capacity - rb);
	/* unique slots, 4x the capacity (bounded for the 64 KiB rows) */
	for (uint64_t done = 0; done < 4 * st.capacity && done < 40000; done += 256) {
		for (int i = 0; i < 256; i++)
			slots[i] = rnd(&seed);
		put_ref(c, rb, slots, epochs, 256);
		ck_assert_uint_le(stats_of(c).entries, st.capacity);
	}
	st = stats_of(c);
	ck_assert_uint_eq(st.bytes, ed_rowcache_bytes(c));
	ck_assert_uint_le(st.bytes, budget);
	if (st.inserts >= 2 * st.capacity)
		ck_assert_uint_eq(st.entries, st.capacity); /* a full cache stays full */
	ck_assert_uint_eq(st.evictions, st.inserts - st.entries);
	ed_rowcache_free(c);
}
END_TEST

/* A hot 160-byte row costs about 160-190 bytes, not a page. */
START_TEST(test_row_cost)
{
	struct ed_rowcache *c = cache_new(160, 256ull << 20);
	struct ed_rowcache_stats st = stats_of(c);
	double per_row = (double)st.bytes / (double)st.capacity;

	printf("160-byte rows in 256 MiB: %llu rows, %.2f bytes each\n",
	       (unsigned long long)st.capacity, per_row);
	ck_assert_double_le(per_row, 160 + OVERHEAD);
	ed_rowcache_free(c);
}
END_TEST

/* ---- the policy -------------------------------------------------------------- */

/* A plain FIFO of cap slots over keys 0 .. n-1: the reference to beat. */
struct fifo {
	uint64_t *ring;
	uint8_t *in;
	size_t cap, len, hand;
};

static int fifo_has(const struct fifo *f, uint64_t k)
{
	return f->in[k];
}

static void fifo_put(struct fifo *f, uint64_t k)
{
	if (f->in[k])
		return;
	if (f->len < f->cap) {
		f->ring[f->len++] = k;
	} else {
		f->in[f->ring[f->hand]] = 0;
		f->ring[f->hand] = k;
		f->hand = (f->hand + 1) % f->cap;
	}
	f->in[k] = 1;
}

/* Zipf(s = 1.0) ranks over n keys by the inverse of the cumulative sum. */
static double *zipf_cdf(size_t n)
{
	double *cdf = malloc(n * sizeof *cdf), sum = 0;

	ck_assert(cdf);
	for (size_t k = 0; k < n; k++)
		cdf[k] = sum += 1.0 / (double)(k + 1);
	for (size_t k = 0; k < n; k++)
		cdf[k] /= sum;
	return cdf;
}

static uint64_t zipf_draw(const double *cdf, size_t n, uint64_t *seed)
{
	double u = (double)(rnd(seed) >> 11) / 9007199254740992.0;
	size_t lo = 0, hi = n - 1;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

#define ZIPF_KEYS   50000u
#define ZIPF_BATCH  64u
#define ZIPF_WARM   100000u
#define ZIPF_COUNT  400000u

/* Slot of Zipf rank k: scattered over 2^40 (ranks are not slot order). */
static uint64_t rank_slot(uint64_t k)
{
	return (k * 0x9e3779b97f4a7c15ull) >> 24;
}

/* Requests come in batches of ZIPF_BATCH: get, then put the misses. The
 * FIFO model sees the same batches the same way. */
START_TEST(test_zipf_hit_ratio)
{
	const uint32_t rb = 16;
	struct ed_rowcache *c = cache_new(rb, ZIPF_KEYS / 4 * (uint64_t)(rb + OVERHEAD));
	uint64_t cap = stats_of(c).capacity, seed = 42, hits = 0, fifo_hits = 0, asked = 0;
	double *cdf = zipf_cdf(ZIPF_KEYS), bound, s3, fifo_ratio, hc = 0, hn = 0;
	struct fifo f = {calloc(cap, sizeof(uint64_t)), calloc(ZIPF_KEYS, 1), cap, 0, 0};
	uint64_t keys[ZIPF_BATCH], slots[ZIPF_BATCH], miss_slots[ZIPF_BATCH];
	uint32_t epochs[ZIPF_BATCH] = {0};
	uint8_t hit[ZIPF_BATCH], was_in[ZIPF_BATCH];

	ck_assert(f.ring && f.in);
	ck_assert_uint_le(cap, ZIPF_KEYS / 4);
	ck_assert_uint_ge(cap, ZIPF_KEYS / 5);
	for (uint64_t r = 0; r < ZIPF_WARM + ZIPF_COUNT; r += ZIPF_BATCH) {
		size_t h, m = 0;

		for (size_t i = 0; i < ZIPF_BATCH; i++) {
			keys[i] = zipf_draw(cdf, ZIPF_KEYS, &seed);
			slots[i] = rank_slot(keys[i]);
			was_in[i] = (uint8_t)fifo_has(&f, keys[i]);
		}
		h = get_check(c, rb, slots, epochs, ZIPF_BATCH, hit);
		for (size_t i = 0; i < ZIPF_BATCH; i++) {
			if (!was_in[i])
				fifo_put(&f, keys[i]);
			if (!hit[i])
				miss_slots[m++] = slots[i];
		}
		put_ref(c, rb, miss_slots, epochs, m);
		if (r >= ZIPF_WARM) {
			hits += h;
			for (size_t i = 0; i < ZIPF_BATCH; i++)
				fifo_hits += was_in[i];
			asked += ZIPF_BATCH;
		}
	}
	/* the best any cache of cap rows can do on an independent stream: hold
	 * the cap most popular keys */
	for (uint64_t k = 0; k < ZIPF_KEYS; k++) {
		hn += 1.0 / (double)(k + 1);
		if (k < cap)
			hc += 1.0 / (double)(k + 1);
	}
	bound = hc / hn;
	s3 = (double)hits / (double)asked;
	fifo_ratio = (double)fifo_hits / (double)asked;
	printf("zipf s=1.0, %u keys, capacity %llu: S3-FIFO hit ratio %.4f, FIFO %.4f, "
	       "ideal static %.4f\n", ZIPF_KEYS, (unsigned long long)cap, s3, fifo_ratio, bound);
	ck_assert_double_ge(s3, fifo_ratio + 0.04);
	ck_assert_double_ge(s3, bound - 0.035);
	ck_assert_double_le(s3, bound + 0.01);
	free(f.in);
	free(f.ring);
	free(cdf);
	ed_rowcache_free(c);
}
END_TEST

/* Puts n unique slots never used again, from *next on, in batches. */
static void put_cold(struct ed_rowcache *c, uint32_t rb, uint64_t *next, uint64_t n)
{
	uint64_t batch[128];
	uint32_t epochs[128] = {0};

	while (n) {
		size_t k = n < 128 ? n : 128;

		for (size_t i = 0; i < k; i++)
			batch[i] = (*next)++;
		put_ref(c, rb, batch, epochs, k);
		n -= k;
	}
}

/* Hot rows used twice survive a scan of ten times the capacity of rows seen
 * once (a prefill of cold rows). A FIFO or LRU would keep none of them. */
START_TEST(test_scan_keeps_hot_rows)
{
	const uint32_t rb = 32;
	struct ed_rowcache *c = cache_new(rb, 10000 * (uint64_t)(rb + OVERHEAD));
	uint64_t cap = stats_of(c).capacity, hot = cap / 2, batch[128], cold = 1ull << 32;
	uint32_t epochs[128] = {0};
	uint8_t hit[128];
	size_t hot_hits = 0;

	put_cold(c, rb, &cold, 2 * cap); /* full: hot rows must earn their place */
	for (uint64_t base = 0; base < hot; base += 128) {
		size_t n = hot - base < 128 ? hot - base : 128;

		for (size_t i = 0; i < n; i++)
			batch[i] = base + i;
		put_ref(c, rb, batch, epochs, n);
		ck_assert_uint_eq(get_check(c, rb, batch, epochs, n, hit), n);
		ck_assert_uint_eq(get_check(c, rb, batch, epochs, n, hit), n);
	}
	put_cold(c, rb, &cold, 10 * cap);
	for (uint64_t base = 0; base < hot; base += 128) {
		size_t n = hot - base < 128 ? hot - base : 128;

		for (size_t i = 0; i < n; i++)
			batch[i] = base + i;
		hot_hits += get_check(c, rb, batch, epochs, n, hit);
	}
	printf("scan of %llu cold rows: %zu of %llu hot rows still hit\n",
	       (unsigned long long)(10 * cap), hot_hits, (unsigned long long)hot);
	ck_assert_uint_ge(hot_hits, hot * 9 / 10);
	ed_rowcache_free(c);
}
END_TEST

/* A row dropped from the small queue unused and asked for again soon goes
 * to the main queue (the ghost remembered it), where a scan cannot reach. */
START_TEST(test_ghost_readmits)
{
	const uint32_t rb = 32, nkeys = 200;
	struct ed_rowcache *c = cache_new(rb, 10000 * (uint64_t)(rb + OVERHEAD));
	uint64_t cap = stats_of(c).capacity, cold = 1ull << 32, keys[200];
	uint32_t epochs[200] = {0};
	uint8_t hit[200];
	size_t hits;

	for (uint32_t i = 0; i < nkeys; i++)
		keys[i] = 1000 + 77 * (uint64_t)i;
	put_cold(c, rb, &cold, 2 * cap); /* the cache is full */
	put_ref(c, rb, keys, epochs, nkeys);
	put_cold(c, rb, &cold, cap / 5); /* pushes the keys out of the small queue */
	ck_assert_uint_eq(get_check(c, rb, keys, epochs, nkeys, hit), 0);
	put_ref(c, rb, keys, epochs, nkeys);
	put_cold(c, rb, &cold, 10 * cap);
	hits = get_check(c, rb, keys, epochs, nkeys, hit);
	printf("ghost: %zu of %u rows readmitted to main survived a scan of %llu\n", hits, nkeys,
	       (unsigned long long)(10 * cap));
	ck_assert_uint_ge(hits, nkeys * 9 / 10);
	ed_rowcache_free(c);
}
END_TEST

/* ---- threads ----------------------------------------------------------------- */

#define RACE_THREADS 4
#define RACE_KEYS    4000u /* about 4x the capacity: constant eviction */

struct racer {
	struct ed_rowcache *c;
	uint64_t seed, asked, hits;
};

/* Mixed gets and puts of overlapping slots, skewed toward small ones, most
 * asked at epoch 0, the rest at one of 3: replacement, eviction and
 * promotion all race; every hit is checked. */
static void *race(void *arg)
{
	struct racer *r = arg;
	const uint32_t rb = 40;
	size_t cap = ED_ROWCACHE_GROUP + 100;
	uint64_t *slots = malloc(cap * sizeof *slots);
	uint32_t *epochs = malloc(cap * sizeof *epochs);
	uint8_t *hit = malloc(cap);

	ck_assert(slots && epochs && hit);
	for (int it = 0; it < 2000; it++) {
		size_t n = it % 500 == 0 ? cap : 1 + rnd(&r->seed) % 64; /* now and then a big one */

		for (size_t i = 0; i < n; i++) {
			uint64_t skew = rnd(&r->seed) % RACE_KEYS + 1; /* small keys more often */

			slots[i] = rnd(&r->seed) % skew * 1000003;
			epochs[i] = rnd(&r->seed) % 4 ? 0 : (uint32_t)(rnd(&r->seed) % 3);
		}
		r->hits += get_check(r->c, rb, slots, epochs, n, hit);
		r->asked += n;
		put_ref(r->c, rb, slots, epochs, n);
	}
	free(hit);
	free(epochs);
	free(slots);
	return NULL;
}

START_TEST(test_threads)
{
	struct ed_rowcache *c = cache_new(40, 1000 * (40 + OVERHEAD));
	struct racer r[RACE_THREADS];
	pthread_t t[RACE_THREADS];
	struct ed_rowcache_stats st;
	uint64_t asked = 0, hits = 0;

	for (int i = 0; i < RACE_THREADS; i++) {
		r[i] = (struct racer){.c = c, .seed = 1000 + (uint64_t)i};
		ck_assert_int_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
	}
	for (int i = 0; i < RACE_THREADS; i++) {
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
		asked += r[i].asked;
		hits += r[i].hits;
	}
	st = stats_of(c);
	printf("threads: %llu rows asked, %llu hits\n", (unsigned long long)asked,
	       (unsigned long long)hits);
	ck_assert_uint_eq(st.hits, hits);
	ck_assert_uint_eq(st.hits + st.misses, asked);
	ck_assert_uint_gt(hits, 0);
	ck_assert_uint_le(st.entries, st.capacity);
	ck_assert_uint_le(st.bytes, 1000 * (40 + OVERHEAD));
	ed_rowcache_free(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("rowcache");
	TCase *tc = tcase_create("rowcache");
	TCase *policy = tcase_create("policy");
	int nrows = (int)(sizeof row_sizes / sizeof row_sizes[0]);
	int nbudgets = (int)(sizeof budgets / sizeof budgets[0]);

	tcase_add_test(tc, test_new_errors);
	tcase_add_loop_test(tc, test_exact_rows, 0, nrows);
	tcase_add_test(tc, test_epochs);
	tcase_add_loop_test(tc, test_budget, 0, nrows * nbudgets);
	tcase_add_test(tc, test_row_cost);
	/* long streams: allow for sanitizers on a loaded machine */
	tcase_set_timeout(policy, 300);
	tcase_add_test(policy, test_zipf_hit_ratio);
	tcase_add_test(policy, test_scan_keeps_hot_rows);
	tcase_add_test(policy, test_ghost_readmits);
	tcase_add_test(policy, test_threads);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, policy);
	return egt_run_suite(s);
}
