/* rowcache.c - the row cache: S3-FIFO over fixed arrays, sharded by slot.
 *
 * Why S3-FIFO (Yang et al., "FIFO queues are all you need for cache
 * eviction", SOSP 2023) for n-gram traffic: row popularity follows a
 * Zipf-like law, so most distinct rows of a stream are rare n-grams seen
 * once. New rows enter a small FIFO (10% of the rows); only those used again
 * before they reach its end move to the main queue, so one-hit wonders never
 * displace the hot set, and a prefill that touches a million cold rows once
 * flushes the small queue only. A ghost set remembers the slots recently
 * dropped from the small queue: such a slot coming back was evicted too early
 * and goes straight to main. The main queue (the other 90%) is a CLOCK with
 * 2-bit use counters: a hit only bumps a counter in place (no list moves), so
 * readers hold a shard's lock for a hash probe and a copy.
 *
 * Layout per shard, all in one allocation: entries [0, scap) are the small
 * FIFO, [scap, scap + mcap) the main CLOCK, each a ring whose hand points at
 * its oldest entry; a new entry takes the place of the one evicted at the
 * hand, so neither ring ever has holes. The 10/90 split is fixed: where the
 * paper lets the small queue grow until the cache first fills, its oldest row
 * moves to main here while main has room, which fills the cache the same way.
 * rows[p] is entry p's row. A hash index of chains (bucket heads and entry
 * links hold position + 1, 0 ends a chain) finds a slot's entry; at most one
 * entry per slot exists. The ghost is a table of 8-way buckets of 32-bit
 * fingerprints, each bucket a FIFO, holding about as many as main.
 * Per cached row: 16 bytes of entry, 4 of bucket head, about 3.6 of ghost. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL /* one 8-byte key per row: the call would cost more than the hash */
#include <xxhash.h>

#include "rowcache.h"

#define MAX_SHARDS      64u
#define MIN_SHARD_ROWS  256u          /* fewer shards rather than smaller ones */
#define MAX_SHARD_ROWS  ((1u << 30) - 2) /* positions + 1 fit an entry's 30-bit link */
#define GHOST_WAYS      8u
#define FREQ_MAX        3u
#define CLOCK_PROBES    64u           /* bounds one eviction's sweep of the main ring */

struct entry {
	uint64_t slot;
	uint32_t epoch;
	uint32_t next : 30; /* next entry in the hash chain, position + 1; 0 = end */
	uint32_t freq : 2;  /* uses since admission, move to main, or the hand's last pass */
};

struct shard {
	pthread_mutex_t lock;
	struct entry *ent;
	uint32_t *bucket;   /* nbucket chain heads */
	uint32_t *ghost;    /* nghost * GHOST_WAYS fingerprints, newest first; 0 = empty */
	uint8_t *rows;
	uint32_t scap, mcap, nbucket, nghost;
	uint32_t slen, mlen;   /* filled so far; each ring fills once, then stays full */
	uint32_t shand, mhand; /* oldest entry of each ring, relative to its start */
	uint64_t hits, misses, inserts, evictions;
} __attribute__((aligned(64)));

struct ed_rowcache {
	struct shard *shards;
	uint32_t nshards;
	uint32_t row_bytes;
	uint64_t bytes;
};

/* Sizes of one shard's arrays for a capacity of cap rows. */
struct dims {
	uint32_t scap, mcap, nbucket, nghost;
	size_t ent_off, bucket_off, ghost_off, rows_off, total;
};

static void shard_dims(uint32_t cap, uint32_t row_bytes, struct dims *d)
{
	d->scap = cap / 10 ? cap / 10 : 1;
	d->mcap = cap - d->scap;
	d->nbucket = cap;
	d->nghost = (d->mcap + GHOST_WAYS - 1) / GHOST_WAYS; /* remembers about as many as main holds */
	d->ent_off = 0;
	d->bucket_off = d->ent_off + (size_t)cap * sizeof(struct entry);
	d->ghost_off = d->bucket_off + (size_t)d->nbucket * sizeof(uint32_t);
	d->rows_off = d->ghost_off + (size_t)d->nghost * GHOST_WAYS * sizeof(uint32_t);
	d->total = d->rows_off + (size_t)cap * row_bytes;
}

/* The most rows a shard of at most avail bytes holds. */
static uint32_t shard_capacity(uint64_t avail, uint32_t row_bytes)
{
	uint64_t lo = 0, hi = avail / (row_bytes + sizeof(struct entry)) + 1;
	struct dims d;

	if (hi > MAX_SHARD_ROWS)
		hi = MAX_SHARD_ROWS;
	while (lo < hi) { /* largest cap in [lo, hi] that fits */
		uint64_t mid = lo + (hi - lo + 1) / 2;

		shard_dims((uint32_t)mid, row_bytes, &d);
		if (d.total <= avail)
			lo = mid;
		else
			hi = mid - 1;
	}
	return (uint32_t)lo;
}

/* ---- hashing: shard, chain bucket, ghost bucket and fingerprint ---------- */

static inline uint64_t slot_hash(uint64_t slot)
{
	return XXH3_64bits(&slot, sizeof slot);
}

/* x * n / 2^32: maps 32 well-mixed bits onto 0 .. n-1 without a division. */
static inline uint32_t range32(uint32_t x, uint32_t n)
{
	return (uint32_t)(((uint64_t)x * n) >> 32);
}

/* Shards take the top bits of the hash, chains the low 32, the ghost the
 * bits between (bucket) and the low 32 (fingerprint). */
static inline uint32_t shard_of(const struct ed_rowcache *c, uint64_t h)
{
	return range32((uint32_t)(h >> 32), c->nshards);
}

static inline uint32_t *chain_head(struct shard *sh, uint64_t h)
{
	return &sh->bucket[range32((uint32_t)h, sh->nbucket)];
}

static inline uint8_t *row_at(const struct ed_rowcache *c, struct shard *sh, uint32_t p)
{
	return sh->rows + (size_t)p * c->row_bytes;
}

/* ---- index ------------------------------------------------------------- */

/* Position of slot's entry, or -1. */
static int64_t index_find(struct shard *sh, uint64_t h, uint64_t slot)
{
	for (uint32_t l = *chain_head(sh, h); l; l = sh->ent[l - 1].next)
		if (sh->ent[l - 1].slot == slot)
			return l - 1;
	return -1;
}

static void index_link(struct shard *sh, uint64_t h, uint32_t p)
{
	uint32_t *head = chain_head(sh, h);

	sh->ent[p].next = *head;
	*head = p + 1;
}

static void index_unlink(struct shard *sh, uint64_t h, uint32_t p)
{
	uint32_t *head = chain_head(sh, h), q;

	if (*head == p + 1) {
		*head = sh->ent[p].next;
		return;
	}
	for (q = *head - 1; sh->ent[q].next != p + 1; q = sh->ent[q].next - 1)
		;
	sh->ent[q].next = sh->ent[p].next;
}

/* ---- ghost ------------------------------------------------------------- */

static uint32_t *ghost_bucket(const struct ed_rowcache *c, struct shard *sh, uint64_t h,
                              uint32_t *fp)
{
	uint32_t below_shard = (uint32_t)(h >> 32) << __builtin_ctz(c->nshards);

	*fp = (uint32_t)h ? (uint32_t)h : 1;
	return sh->ghost + (size_t)range32(below_shard, sh->nghost) * GHOST_WAYS;
}

/* Remembers a slot dropped from the small queue, forgetting its bucket's oldest. */
static void ghost_add(const struct ed_rowcache *c, struct shard *sh, uint64_t h)
{
	uint32_t fp, *b = ghost_bucket(c, sh, h, &fp);

	memmove(b + 1, b, (GHOST_WAYS - 1) * sizeof *b);
	b[0] = fp;
}

/* Whether the slot was dropped from the small queue recently; forgets it. */
static int ghost_take(const struct ed_rowcache *c, struct shard *sh, uint64_t h)
{
	uint32_t fp, *b = ghost_bucket(c, sh, h, &fp);

	for (uint32_t i = 0; i < GHOST_WAYS; i++)
		if (b[i] == fp) {
			memmove(b + i, b + i + 1, (GHOST_WAYS - 1 - i) * sizeof *b);
			b[GHOST_WAYS - 1] = 0;
			return 1;
		}
	return 0;
}

/* ---- queues ------------------------------------------------------------ */

/* A free position in the main ring: the next unfilled one, or the first
 * entry at the hand with no use left (each passed entry loses one use),
 * which is evicted. After CLOCK_PROBES passes the entry at the hand goes
 * regardless, so no insert sweeps a whole ring under the lock. */
static uint32_t main_take(struct shard *sh)
{
	if (sh->mlen < sh->mcap)
		return sh->scap + sh->mlen++;
	for (uint32_t probes = 0;; probes++) {
		uint32_t p = sh->scap + sh->mhand;
		struct entry *e = &sh->ent[p];

		sh->mhand = sh->mhand + 1 == sh->mcap ? 0 : sh->mhand + 1;
		if (e->freq == 0 || probes == CLOCK_PROBES) {
			index_unlink(sh, slot_hash(e->slot), p);
			sh->evictions++;
			return p;
		}
		e->freq--;
	}
}

/* A free position in the small ring: the next unfilled one, or the oldest
 * entry's. The oldest moves to main when it was used since admission (or
 * main has not filled yet: no reason to drop a row while room is left), else
 * it is evicted and remembered in the ghost. */
static uint32_t small_take(const struct ed_rowcache *c, struct shard *sh)
{
	uint32_t p, q;
	uint64_t h;

	if (sh->slen < sh->scap)
		return sh->slen++;
	p = sh->shand;
	sh->shand = p + 1 == sh->scap ? 0 : p + 1;
	h = slot_hash(sh->ent[p].slot);
	index_unlink(sh, h, p);
	if (sh->ent[p].freq == 0 && sh->mlen == sh->mcap) {
		ghost_add(c, sh, h);
		sh->evictions++;
		return p;
	}
	q = main_take(sh);
	sh->ent[q] = sh->ent[p];
	sh->ent[q].freq = 0; /* main counts its own uses */
	memcpy(row_at(c, sh, q), row_at(c, sh, p), c->row_bytes);
	index_link(sh, h, q);
	return p;
}

/* ---- batches ----------------------------------------------------------- */

/* Rows base .. base + n - 1 of a call, in shard s at order[start[s] ..
 * start[s + 1]), in call order. Lives on the caller's stack (about 12 KiB). */
struct group {
	uint16_t start[MAX_SHARDS + 1];
	uint16_t order[ED_ROWCACHE_GROUP];
	uint8_t shard[ED_ROWCACHE_GROUP];
};

typedef void shard_fn(struct ed_rowcache *c, struct shard *sh, const uint16_t *order,
                      size_t k, size_t base, void *arg);

/* Calls fn once per shard with rows in each group of ED_ROWCACHE_GROUP rows,
 * under that shard's lock (a counting sort by shard, so rows of one shard
 * keep their call order). */
static void for_each_shard(struct ed_rowcache *c, const uint64_t *slots, size_t n,
                           shard_fn *fn, void *arg)
{
	struct group g;

	for (size_t base = 0; base < n; base += ED_ROWCACHE_GROUP) {
		size_t m = n - base < ED_ROWCACHE_GROUP ? n - base : ED_ROWCACHE_GROUP;
		uint16_t fill[MAX_SHARDS] = {0};

		memset(g.start, 0, sizeof g.start);
		for (size_t i = 0; i < m; i++) {
			g.shard[i] = (uint8_t)shard_of(c, slot_hash(slots[base + i]));
			g.start[g.shard[i] + 1]++;
		}
		for (uint32_t s = 0; s < c->nshards; s++)
			g.start[s + 1] += g.start[s];
		for (size_t i = 0; i < m; i++)
			g.order[g.start[g.shard[i]] + fill[g.shard[i]]++] = (uint16_t)i;
		for (uint32_t s = 0; s < c->nshards; s++) {
			struct shard *sh = &c->shards[s];
			size_t k = g.start[s + 1] - g.start[s];

			if (!k)
				continue;
			pthread_mutex_lock(&sh->lock);
			fn(c, sh, g.order + g.start[s], k, base, arg);
			pthread_mutex_unlock(&sh->lock);
		}
	}
}

struct get_args {
	const uint64_t *slots;
	const uint32_t *epochs;
	uint8_t *dst, *hit;
	size_t hits;
};

static void get_rows(struct ed_rowcache *c, struct shard *sh, const uint16_t *order,
                     size_t k, size_t base, void *arg)
{
	struct get_args *a = arg;
	size_t hits = 0;

	for (size_t j = 0; j < k; j++) {
		size_t i = base + order[j];
		int64_t p = index_find(sh, slot_hash(a->slots[i]), a->slots[i]);
		struct entry *e = p < 0 ? NULL : &sh->ent[p];

		a->hit[i] = e && e->epoch == a->epochs[i];
		if (!a->hit[i])
			continue;
		memcpy(a->dst + i * c->row_bytes, row_at(c, sh, (uint32_t)p), c->row_bytes);
		if (e->freq < FREQ_MAX)
			e->freq++;
		hits++;
	}
	sh->hits += hits;
	sh->misses += k - hits;
	a->hits += hits;
}

size_t ed_rowcache_get(struct ed_rowcache *c, const uint64_t *slots, const uint32_t *epochs,
                       size_t n, uint8_t *dst, uint8_t *hit)
{
	struct get_args a = {slots, epochs, dst, hit, 0};

	for_each_shard(c, slots, n, get_rows, &a);
	return a.hits;
}

struct put_args {
	const uint64_t *slots;
	const uint32_t *epochs;
	const uint8_t *const *rows;
};

static void put_rows(struct ed_rowcache *c, struct shard *sh, const uint16_t *order,
                     size_t k, size_t base, void *arg)
{
	struct put_args *a = arg;

	for (size_t j = 0; j < k; j++) {
		size_t i = base + order[j];
		uint64_t h = slot_hash(a->slots[i]);
		int64_t p = index_find(sh, h, a->slots[i]);
		uint32_t q;

		if (p >= 0) {
			if (sh->ent[p].epoch != a->epochs[i]) {
				sh->ent[p].epoch = a->epochs[i];
				memcpy(row_at(c, sh, (uint32_t)p), a->rows[i], c->row_bytes);
				sh->inserts++;
			}
			continue;
		}
		q = ghost_take(c, sh, h) ? main_take(sh) : small_take(c, sh);
		sh->ent[q] = (struct entry){.slot = a->slots[i], .epoch = a->epochs[i]};
		memcpy(row_at(c, sh, q), a->rows[i], c->row_bytes);
		index_link(sh, h, q);
		sh->inserts++;
	}
}

void ed_rowcache_put(struct ed_rowcache *c, const uint64_t *slots, const uint32_t *epochs,
                     size_t n, const uint8_t *const *rows)
{
	struct put_args a = {slots, epochs, rows};

	for_each_shard(c, slots, n, put_rows, &a);
}

/* ---- life and numbers ---------------------------------------------------- */

/* Picks the most shards (a power of two) that still leave each at least
 * MIN_SHARD_ROWS rows; *cap is the rows per shard. */
static uint32_t pick_shards(uint32_t row_bytes, uint64_t budget, uint32_t *cap)
{
	for (uint32_t n = MAX_SHARDS;; n /= 2) {
		uint64_t fixed = sizeof(struct ed_rowcache) + (uint64_t)n * sizeof(struct shard);

		*cap = budget > fixed ? shard_capacity((budget - fixed) / n, row_bytes) : 0;
		if (*cap >= MIN_SHARD_ROWS || n == 1)
			return n;
	}
}

int ed_rowcache_new(uint32_t row_bytes, uint64_t budget_bytes, struct ed_rowcache **out)
{
	struct ed_rowcache *c = NULL;
	uint32_t cap, n;
	struct dims d;

	*out = NULL;
	if (row_bytes == 0 || row_bytes > ED_ROWCACHE_MAX_ROW)
		return -EINVAL;
	n = pick_shards(row_bytes, budget_bytes, &cap);
	if ((uint64_t)cap * n < ED_ROWCACHE_MIN_ROWS)
		return -EINVAL;
	shard_dims(cap, row_bytes, &d);
	c = calloc(1, sizeof *c);
	if (!c)
		goto fail;
	c->shards = aligned_alloc(64, n * sizeof(struct shard));
	if (!c->shards)
		goto fail;
	memset(c->shards, 0, n * sizeof(struct shard));
	c->row_bytes = row_bytes;
	c->bytes = sizeof *c + (uint64_t)n * (sizeof(struct shard) + d.total);
	for (; c->nshards < n; c->nshards++) {
		struct shard *sh = &c->shards[c->nshards];
		uint8_t *mem = calloc(1, d.total);

		if (!mem)
			goto fail;
		pthread_mutex_init(&sh->lock, NULL);
		sh->ent = (struct entry *)(mem + d.ent_off);
		sh->bucket = (uint32_t *)(mem + d.bucket_off);
		sh->ghost = (uint32_t *)(mem + d.ghost_off);
		sh->rows = mem + d.rows_off;
		sh->scap = d.scap;
		sh->mcap = d.mcap;
		sh->nbucket = d.nbucket;
		sh->nghost = d.nghost;
	}
	*out = c;
	return 0;
fail:
	ed_rowcache_free(c);
	return -ENOMEM;
}

void ed_rowcache_free(struct ed_rowcache *c)
{
	if (!c)
		return;
	for (uint32_t i = 0; i < c->nshards; i++) {
		pthread_mutex_destroy(&c->shards[i].lock);
		free(c->shards[i].ent); /* the start of the shard's one allocation */
	}
	free(c->shards);
	free(c);
}

void ed_rowcache_stats(const struct ed_rowcache *c, struct ed_rowcache_stats *out)
{
	memset(out, 0, sizeof *out);
	for (uint32_t i = 0; i < c->nshards; i++) {
		struct shard *sh = &c->shards[i];

		pthread_mutex_lock(&sh->lock);
		out->hits += sh->hits;
		out->misses += sh->misses;
		out->inserts += sh->inserts;
		out->evictions += sh->evictions;
		out->entries += sh->slen + sh->mlen;
		out->capacity += sh->scap + sh->mcap;
		pthread_mutex_unlock(&sh->lock);
	}
	out->bytes = c->bytes;
}

uint64_t ed_rowcache_bytes(const struct ed_rowcache *c)
{
	return c->bytes;
}
