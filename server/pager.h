/* pager.h - which pages of a table's data file are in the page cache, so a
 * gather reads the missing ones with deep parallel I/O (io.h) before it
 * touches them through the map, instead of faulting them in one by one.
 *
 * One pager per open data file (LMDB environment). It keeps a bit per 4 KiB
 * page: set once the page is known to be resident (read by the I/O path, or
 * seen by mincore(2)). A background thread re-reads residency with mincore
 * a slice at a time, so pages the kernel evicted are noticed. A stale bit
 * costs one page fault on a gather thread, never a wrong row. Once every
 * page of the file is resident (a table that fits in RAM, warmed up),
 * ed_pager_complete() lets gathers skip the per-row check altogether. A
 * table without a budget that lost only a few pages (to a proactive
 * reclaimer: pages no lookup reads, such as B-tree pages, would otherwise
 * stay out for good) has them read back by the refresh thread, outside
 * the lock that ed_pager_new and ed_pager_free take: a read stuck on a
 * hung disk stalls that thread alone.
 *
 * With a budget (--page-budget), the pager also bounds the table's page
 * cache: beyond the budget it drops pages nobody asked for since the
 * clock hand last passed (MADV_DONTNEED on the map, POSIX_FADV_DONTNEED on
 * the file). That is the page-cache mode at a fixed DRAM cost, next to the
 * row cache (rowcache.h), which spends the same DRAM on rows instead.
 *
 * Thread-safety: every function may be called from any thread. */
#ifndef ED_PAGER_H
#define ED_PAGER_H

#include <stdint.h>

#include "eg_table.h"

struct ed_pager;

/* Opens t's data file anew (random access: no read-ahead), learns which
 * pages are resident now, and joins the background refresh. budget_bytes 0
 * means no budget. Returns 0 or a negative errno; *out is freed with
 * ed_pager_free(), before t is closed (p asks t which pages are in use). */
int ed_pager_new(eg_table *t, uint64_t budget_bytes, struct ed_pager **out);
void ed_pager_free(struct ed_pager *p);

/* Sets the budget (bytes of the table's pages kept resident; 0 = none). */
void ed_pager_set_budget(struct ed_pager *p, uint64_t budget_bytes);

/* The table is served from a row cache (rowcache.h), whose reads bypass
 * the page cache: its evicted pages are never read back, so the page cache
 * it holds stays whatever the kernel leaves it. */
void ed_pager_no_read_back(struct ed_pager *p);

/* The descriptor reads go to (buffered, owned by p). */
int ed_pager_fd(const struct ed_pager *p);
/* log2 of the page size the bits stand for (the system's page size). */
unsigned ed_pager_shift(const struct ed_pager *p);

/* Whether every page the newest version of the table uses is known
 * resident (room a writer set aside past them does not count). */
int ed_pager_complete(const struct ed_pager *p);

/* Whether page is known resident; counts it as used for the budget's clock. */
int ed_pager_test(struct ed_pager *p, uint64_t page);

/* Pages [first, first + n) were just read. map is the data file's mapping
 * (eg_rowdir.map) of a snapshot the caller holds open: evictions for the
 * budget drop its page table entries. */
void ed_pager_mark(struct ed_pager *p, uint64_t first, uint64_t n, const uint8_t *map);

/* Starts and stops the refresh thread (once per process). */
int ed_pager_start(void);
void ed_pager_stop(void);

struct ed_pager_stats {
	uint64_t resident_pages;  /* known resident now */
	uint64_t used_pages;      /* of the file, by its newest version */
	uint64_t evicted_pages;   /* dropped for the budget since start */
};
void ed_pager_stats(const struct ed_pager *p, struct ed_pager_stats *out);

#endif
