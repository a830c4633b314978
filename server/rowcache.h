/* rowcache.h - a bounded DRAM cache of the fixed-size rows of one table.
 *
 * For tables much larger than RAM: a hot row costs its row_bytes plus about
 * 24 bytes of bookkeeping, instead of the 4 KiB page the page cache would
 * keep for it. Rows are keyed by (slot, epoch). The caller derives epochs so
 * that an equal epoch means equal bytes (e.g. from the snapshot generation
 * that served the row): a lookup hits only on the epoch it asks for, so a
 * patched or published version never gets a row of another one. An entry of
 * another epoch is a miss and is replaced by the next put of that slot.
 *
 * Policy: S3-FIFO (small FIFO, main CLOCK with 2-bit counters, ghost of
 * recent small-queue evictions); rowcache.c says why it suits n-gram traffic.
 *
 * Memory: everything is allocated by ed_rowcache_new, sized to the budget;
 * get and put never allocate. Row memory is calloc'd, so pages the cache has
 * not yet filled cost address space only.
 *
 * Threads: every function may be called from any number of threads at once,
 * except ed_rowcache_free. The cache is split into up to 64 shards by a hash
 * of the slot, each with its own mutex; a batch call groups its rows by shard
 * and takes each shard's lock once per ED_ROWCACHE_GROUP rows, copying rows
 * in or out under it.
 *
 * Errors: ed_rowcache_new returns 0 or a negative errno; nothing else fails. */
#ifndef ED_ROWCACHE_H
#define ED_ROWCACHE_H

#include <stddef.h>
#include <stdint.h>

#define ED_ROWCACHE_MAX_ROW   65536u /* largest row_bytes */
#define ED_ROWCACHE_MIN_ROWS  16u    /* smallest capacity a budget must buy */
#define ED_ROWCACHE_GROUP     4096u  /* rows grouped by shard at a time */

struct ed_rowcache;

/* Creates a cache of rows of row_bytes bytes (1 .. ED_ROWCACHE_MAX_ROW)
 * holding as many rows as fit in budget_bytes, counting everything it
 * allocates. On success *out is owned by the caller (ed_rowcache_free).
 * Errors: -EINVAL (row_bytes out of range, or the budget buys fewer than
 * ED_ROWCACHE_MIN_ROWS rows), -ENOMEM. */
int ed_rowcache_new(uint32_t row_bytes, uint64_t budget_bytes, struct ed_rowcache **out);

/* Frees c and all its memory. No call on c may be running or follow. NULL is
 * ignored. */
void ed_rowcache_free(struct ed_rowcache *c);

/* Looks up rows (slots[i], epochs[i]) for i in 0 .. n-1. On a hit copies the
 * row to dst + i * row_bytes and sets hit[i] = 1; on a miss sets hit[i] = 0
 * and leaves that row of dst untouched. dst (n * row_bytes bytes) and hit
 * (n bytes) are the caller's. A hit counts as a use for the policy. Returns
 * the number of hits. */
size_t ed_rowcache_get(struct ed_rowcache *c, const uint64_t *slots, const uint32_t *epochs,
                       size_t n, uint8_t *dst, uint8_t *hit);

/* Offers rows[i] (row_bytes bytes each, the caller's, read during the call
 * only) as the row of (slots[i], epochs[i]) for i in 0 .. n-1. A slot held
 * with another epoch is overwritten in place (keeping its use count); a slot
 * held with the same epoch is left as it is (equal epoch means equal bytes).
 * Otherwise the row is admitted to the small queue, or to the main queue
 * when the slot was evicted from the small queue recently, evicting another
 * row if needed. Duplicate slots within one call are applied in call order,
 * so the last epoch given for a slot wins. Never fails. */
void ed_rowcache_put(struct ed_rowcache *c, const uint64_t *slots, const uint32_t *epochs,
                     size_t n, const uint8_t *const *rows);

struct ed_rowcache_stats {
	uint64_t hits, misses;  /* rows asked of ed_rowcache_get */
	uint64_t inserts;       /* rows written by ed_rowcache_put (new or replaced) */
	uint64_t evictions;     /* rows dropped to make room */
	uint64_t entries;       /* rows held now */
	uint64_t capacity;      /* rows the cache can hold */
	uint64_t bytes;         /* ed_rowcache_bytes() */
};

/* Fills *out. Counters are summed shard by shard, each consistent on its
 * own. */
void ed_rowcache_stats(const struct ed_rowcache *c, struct ed_rowcache_stats *out);

/* Bytes c allocated (all of it, from ed_rowcache_new; constant until free);
 * never more than the budget it was created with. */
uint64_t ed_rowcache_bytes(const struct ed_rowcache *c);

#endif
