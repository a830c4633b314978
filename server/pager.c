/* pager.c - page residency bits, their mincore refresh, and the budget's
 * clock. Bits are read and written with relaxed atomics from any thread:
 * a lost update only costs a needless read or one page fault. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"
#include "pager.h"

/* A refresh step looks at a hundredth of a table (a pass takes about five
 * seconds) but at least SLICE_MIN and at most SLICE_MAX pages: mincore
 * costs 5-15 ns a page here, and on a large table the passes slow down
 * (about 13 s for 32 GiB) rather than take more than a few percent of a
 * core. */
#define SLICE_MIN 8192
#define SLICE_MAX 32768
#define SLICE_PAGES SLICE_MAX    /* the buffer of one step */
#define REFRESH_MS 50            /* between refresh steps */
/* A table without a budget missing at most max(REFILL_MIN, used / 1024)
 * pages, and at most used / REFILL_PART, gets them read back, REFILL_STEP
 * at most a step (refill_pick()). */
#define REFILL_MIN 1024
#define REFILL_PART 8
#define REFILL_STEP 128

typedef _Atomic uint64_t word_t;

struct ed_pager {
	struct ed_pager *next;        /* the refresh list, under list_lock */
	uint64_t id;                  /* unique while the process lives (a refill's check) */
	eg_table *table;
	int fd;
	unsigned shift;
	uint8_t *probe;               /* our own mapping of the file, for mincore only */
	size_t probe_len;
	uint64_t words;               /* bitmap words: probe_len pages / 64 */
	word_t *res, *ref;            /* resident; used since the hand passed */
	atomic_uint_fast64_t resident;
	atomic_uint_fast64_t used_pages; /* of the file, by its newest version */
	atomic_uint_fast64_t evicted;
	_Atomic uint64_t budget;      /* pages; 0 = none */
	atomic_int no_read_back;      /* a row cache serves the table */
	pthread_mutex_t evict_lock;
	uint64_t hand;                /* word the clock looks at next */
	uint64_t cursor;              /* page the refresh looks at next */
};

static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t list_cond = PTHREAD_COND_INITIALIZER;
static struct ed_pager *pagers;
static uint64_t last_id;         /* under list_lock */
static pthread_t refresh_thread;
static int refresh_running, refresh_stop;
/* The pager whose file a refill reads with list_lock released (0: none),
 * and that file once the pager was freed meanwhile: the refresh thread
 * closes it then. Under list_lock. */
static uint64_t refill_id;
static int refill_orphan = -1;

/* Pages of the file that the newest version uses. Not the file's size: the
 * room a writer preallocated past them is never read, and counting it
 * would keep the table from ever being complete again after a patch. */
static uint64_t used_pages_now(const struct ed_pager *p)
{
	uint64_t used;

	if (eg_table_used_bytes(p->table, &used))
		return atomic_load_explicit(&p->used_pages, memory_order_relaxed);
	return (used + (1u << p->shift) - 1) >> p->shift;
}

/* Re-reads residency of pages [start, start + n) (word aligned, n at most
 * SLICE_PAGES) below page fp. */
static void refresh_range(struct ed_pager *p, uint64_t start, uint64_t n, uint64_t fp,
                          unsigned char *vec)
{
	if (start >= fp)
		return;
	if (start + n > fp)
		n = fp - start;
	if (mincore(p->probe + (start << p->shift), n << p->shift, vec))
		return;
	for (uint64_t w = start / 64; w * 64 < start + n; w++) {
		uint64_t nw = 0, old;

		for (unsigned b = 0; b < 64 && w * 64 + b < start + n; b++)
			nw |= (uint64_t)(vec[w * 64 + b - start] & 1) << b;
		old = atomic_exchange_explicit(&p->res[w], nw, memory_order_relaxed);
		atomic_fetch_add_explicit(&p->resident,
		                          (uint64_t)__builtin_popcountll(nw) -
		                                  (uint64_t)__builtin_popcountll(old),
		                          memory_order_relaxed);
	}
}

int ed_pager_new(eg_table *t, uint64_t budget_bytes, struct ed_pager **out)
{
	struct ed_pager *p = calloc(1, sizeof(*p));
	long psz = sysconf(_SC_PAGESIZE);
	unsigned char *vec = NULL;
	struct stat st;
	int rc;

	if (!p)
		return -ENOMEM;
	p->fd = -1;
	p->table = t;
	p->shift = (unsigned)__builtin_ctzl((unsigned long)(psz > 0 ? psz : 4096));
	pthread_mutex_init(&p->evict_lock, NULL);
	if ((p->fd = eg_table_open_data(t, 0)) < 0) {
		rc = p->fd;
		goto fail;
	}
	/* lookups are random: read exactly the pages asked for */
	posix_fadvise(p->fd, 0, 0, POSIX_FADV_RANDOM);
	if (fstat(p->fd, &st)) {
		rc = -errno;
		goto fail;
	}
	/* room for the file to grow, as the reader's LMDB map has */
	p->probe_len = ((size_t)st.st_size * 2 + (1u << 30)) >> p->shift << p->shift;
	p->probe = mmap(NULL, p->probe_len, PROT_READ, MAP_SHARED, p->fd, 0);
	if (p->probe == MAP_FAILED) {
		p->probe = NULL;
		rc = -errno;
		goto fail;
	}
	madvise(p->probe, p->probe_len, MADV_RANDOM);
	p->words = ((p->probe_len >> p->shift) + 63) / 64;
	p->res = calloc(p->words, sizeof(*p->res));
	p->ref = calloc(p->words, sizeof(*p->ref));
	vec = malloc(SLICE_PAGES);
	if (!p->res || !p->ref || !vec) {
		rc = -ENOMEM;
		goto fail;
	}
	p->budget = budget_bytes >> p->shift;
	atomic_store(&p->used_pages, used_pages_now(p));
	for (uint64_t pg = 0; pg < p->used_pages; pg += SLICE_PAGES)
		refresh_range(p, pg, SLICE_PAGES, p->used_pages, vec);
	free(vec);
	pthread_mutex_lock(&list_lock);
	p->id = ++last_id;
	p->next = pagers;
	pagers = p;
	pthread_mutex_unlock(&list_lock);
	*out = p;
	return 0;
fail:
	free(vec);
	ed_pager_free(p);
	return rc;
}

void ed_pager_free(struct ed_pager *p)
{
	struct ed_pager **pp;

	if (!p)
		return;
	pthread_mutex_lock(&list_lock);
	for (pp = &pagers; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (p->id && p->id == refill_id) {
		refill_orphan = p->fd;
		p->fd = -1;
	}
	pthread_mutex_unlock(&list_lock);
	if (p->probe)
		munmap(p->probe, p->probe_len);
	if (p->fd >= 0)
		close(p->fd);
	pthread_mutex_destroy(&p->evict_lock);
	free(p->res);
	free(p->ref);
	free(p);
}

void ed_pager_no_read_back(struct ed_pager *p)
{
	atomic_store(&p->no_read_back, 1);
}

void ed_pager_set_budget(struct ed_pager *p, uint64_t budget_bytes)
{
	atomic_store(&p->budget, budget_bytes >> p->shift);
}

int ed_pager_fd(const struct ed_pager *p)
{
	return p->fd;
}

unsigned ed_pager_shift(const struct ed_pager *p)
{
	return p->shift;
}

int ed_pager_complete(const struct ed_pager *p)
{
	return atomic_load_explicit(&p->resident, memory_order_relaxed) >=
	       atomic_load_explicit(&p->used_pages, memory_order_relaxed);
}

int ed_pager_test(struct ed_pager *p, uint64_t page)
{
	uint64_t w = page >> 6, bit = UINT64_C(1) << (page & 63);

	if (w >= p->words || !(atomic_load_explicit(&p->res[w], memory_order_relaxed) & bit))
		return 0;
	if (p->budget && !(atomic_load_explicit(&p->ref[w], memory_order_relaxed) & bit))
		atomic_fetch_or_explicit(&p->ref[w], bit, memory_order_relaxed);
	return 1;
}

/* Drops pages [page, page + n) from the map and the page cache. */
static void drop(struct ed_pager *p, uint64_t page, uint64_t n, const uint8_t *map)
{
	size_t off = page << p->shift, len = n << p->shift;

	madvise((void *)(map + off), len, MADV_DONTNEED);
	posix_fadvise(p->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
	atomic_fetch_add_explicit(&p->evicted, n, memory_order_relaxed);
}

/* The clock: one word of pages at a time, dropping the resident pages not
 * used since the hand last passed, until the table is back under budget
 * (less 1/64, so evictions come in batches). */
static void evict(struct ed_pager *p, const uint8_t *map)
{
	uint64_t target = p->budget - p->budget / 64;
	uint64_t words = (atomic_load_explicit(&p->used_pages, memory_order_relaxed) + 63) / 64;

	if (pthread_mutex_trylock(&p->evict_lock))
		return; /* another thread is at it */
	for (uint64_t step = 0; step < 2 * words &&
	     atomic_load_explicit(&p->resident, memory_order_relaxed) > target; step++) {
		uint64_t w = p->hand, used, cand;

		p->hand = (p->hand + 1) % words;
		used = atomic_exchange_explicit(&p->ref[w], 0, memory_order_relaxed);
		cand = atomic_load_explicit(&p->res[w], memory_order_relaxed) & ~used;
		if (!cand)
			continue;
		atomic_fetch_and_explicit(&p->res[w], ~cand, memory_order_relaxed);
		atomic_fetch_sub_explicit(&p->resident, (uint64_t)__builtin_popcountll(cand),
		                          memory_order_relaxed);
		while (cand) {
			unsigned b = (unsigned)__builtin_ctzll(cand), e = b;

			while (e < 64 && (cand >> e & 1))
				e++;
			drop(p, w * 64 + b, e - b, map);
			cand = e < 64 ? cand & (~UINT64_C(0) << e) : 0;
		}
	}
	pthread_mutex_unlock(&p->evict_lock);
}

/* Sets the bits of pages [first, first + n) (and their used bits, under a
 * budget); counts the pages that were not set. */
static void set_resident(struct ed_pager *p, uint64_t first, uint64_t n)
{
	uint64_t added = 0;

	for (uint64_t pg = first; pg < first + n; pg++) {
		uint64_t w = pg >> 6, bit = UINT64_C(1) << (pg & 63);

		if (w >= p->words)
			break;
		if (!(atomic_fetch_or_explicit(&p->res[w], bit, memory_order_relaxed) & bit))
			added++;
		if (p->budget)
			atomic_fetch_or_explicit(&p->ref[w], bit, memory_order_relaxed);
	}
	if (added)
		atomic_fetch_add_explicit(&p->resident, added, memory_order_relaxed);
}

void ed_pager_mark(struct ed_pager *p, uint64_t first, uint64_t n, const uint8_t *map)
{
	set_resident(p, first, n);
	if (p->budget && atomic_load_explicit(&p->resident, memory_order_relaxed) > p->budget)
		evict(p, map);
}

void ed_pager_stats(const struct ed_pager *p, struct ed_pager_stats *out)
{
	out->resident_pages = atomic_load_explicit(&p->resident, memory_order_relaxed);
	out->used_pages = atomic_load_explicit(&p->used_pages, memory_order_relaxed);
	out->evicted_pages = atomic_load_explicit(&p->evicted, memory_order_relaxed);
}

/* ---- the refresh thread -------------------------------------------------- */

/* A writer committed pages past [0, old): learn their residency (a commit
 * leaves them in the page cache) before counting them, so a table that was
 * complete stays so while it is patched. */
static void grow(struct ed_pager *p, uint64_t old, uint64_t fp, unsigned char *vec)
{
	for (uint64_t pg = old & ~(uint64_t)63; pg < fp; pg += SLICE_PAGES)
		refresh_range(p, pg, SLICE_PAGES, fp, vec);
}

/* Pages one refresh step reads back, with the list lock released: a slow
 * or hung disk then stalls this thread only, never a reload that adds or
 * frees a pager. fd is the pager's own file, which ed_pager_free() leaves
 * to this thread if it frees the pager meanwhile (not a dup: fcntl's
 * F_DUPFD is a call ThreadSanitizer does not see create a descriptor, and
 * libuv closes sockets with a raw syscall it does not see either, so a dup
 * that took a socket's old number read as a race); id finds the pager
 * again to mark what was read. */
struct refill {
	uint64_t id;
	int fd;
	unsigned shift, n;
	uint64_t pages[REFILL_STEP];
};

/* A table that fits in memory but lost a few pages (a proactive reclaimer
 * on the host takes pages that look idle, such as B-tree pages no lookup
 * reads, which would then never come back) gets the missing pages of
 * [start, start + n) picked to be read back, so it is known wholly
 * resident again and lookups skip the per-row test. Not with a budget (its
 * clock evicts on purpose), nor for a row cache's table (its rows do not
 * come from the page cache), nor when many pages are missing (the table
 * does not fit: the kernel evicts, and reading back would fight it), nor
 * when more than a REFILL_PART-th of a small table is (it is cold, not
 * nearly warm: its rows come in as lookups read them). One table a step. */
static void refill_pick(struct ed_pager *p, uint64_t start, uint64_t n, uint64_t fp,
                        struct refill *r)
{
	uint64_t res = atomic_load_explicit(&p->resident, memory_order_relaxed);
	uint64_t missing = fp > res ? fp - res : 0;
	uint64_t limit = fp / 1024 > REFILL_MIN ? fp / 1024 : REFILL_MIN;

	if (limit > fp / REFILL_PART)
		limit = fp / REFILL_PART;
	if (r->n || atomic_load(&p->budget) || atomic_load(&p->no_read_back) || !missing ||
	    missing > limit)
		return;
	for (uint64_t w = start / 64; w * 64 < start + n && w * 64 < fp && r->n < REFILL_STEP; w++) {
		uint64_t miss = ~atomic_load_explicit(&p->res[w], memory_order_relaxed);

		for (; miss && r->n < REFILL_STEP; miss &= miss - 1) {
			uint64_t pg = w * 64 + (unsigned)__builtin_ctzll(miss);

			if (pg >= start && pg < start + n && pg < fp)
				r->pages[r->n++] = pg;
		}
	}
	if (r->n) {
		r->id = refill_id = p->id;
		r->fd = p->fd;
		r->shift = p->shift;
	}
}

/* Reads the picked pages, a byte each (POSIX_FADV_RANDOM: that page only);
 * a page that failed is dropped from the list. Without the list lock. */
static void refill_read(struct refill *r)
{
	unsigned kept = 0;
	char byte;

	ed_fault_before_refill();
	for (unsigned i = 0; i < r->n; i++) {
		if (pread(r->fd, &byte, 1, (off_t)(r->pages[i] << r->shift)) == 1)
			r->pages[kept++] = r->pages[i];
	}
	r->n = kept;
}

/* Marks the pages read as resident, if their pager still lives, else
 * closes the file it left. */
static void refill_mark(const struct refill *r)
{
	refill_id = 0;
	if (refill_orphan >= 0) {
		close(refill_orphan);
		refill_orphan = -1;
		return;
	}
	for (struct ed_pager *p = pagers; p; p = p->next) {
		if (p->id != r->id)
			continue;
		for (unsigned i = 0; i < r->n; i++)
			set_resident(p, r->pages[i], 1);
		return;
	}
}

static void refresh_step(unsigned char *vec, struct refill *r)
{
	for (struct ed_pager *p = pagers; p; p = p->next) {
		uint64_t old = atomic_load_explicit(&p->used_pages, memory_order_relaxed);
		uint64_t fp = used_pages_now(p);

		if (fp > p->words * 64)
			fp = p->words * 64; /* grown past our map: the rest stays "missing" */
		if (fp > old)
			grow(p, old, fp, vec);
		atomic_store_explicit(&p->used_pages, fp, memory_order_relaxed);
		uint64_t n = fp / 100 < SLICE_MIN ? SLICE_MIN : fp / 100 > SLICE_MAX ? SLICE_MAX : fp / 100;

		n &= ~(uint64_t)63; /* refresh_range works on whole words */
		if (p->cursor >= fp)
			p->cursor = 0;
		refresh_range(p, p->cursor, n, fp, vec);
		refill_pick(p, p->cursor, n, fp, r);
		p->cursor += n;
	}
}

static void *refresh_main(void *arg)
{
	unsigned char *vec = arg;
	struct timespec until;

	pthread_setname_np(pthread_self(), "engramd-pager");
	pthread_mutex_lock(&list_lock);
	while (!refresh_stop) {
		struct refill r = { .n = 0 };

		refresh_step(vec, &r);
		if (r.n) {
			pthread_mutex_unlock(&list_lock);
			refill_read(&r);
			pthread_mutex_lock(&list_lock);
			refill_mark(&r);
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += REFRESH_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&list_cond, &list_lock, &until);
	}
	pthread_mutex_unlock(&list_lock);
	free(vec);
	return NULL;
}

int ed_pager_start(void)
{
	unsigned char *vec = malloc(SLICE_PAGES);
	int rc;

	if (!vec)
		return -ENOMEM;
	if ((rc = pthread_create(&refresh_thread, NULL, refresh_main, vec))) {
		free(vec);
		return -rc;
	}
	refresh_running = 1;
	return 0;
}

void ed_pager_stop(void)
{
	if (!refresh_running)
		return;
	pthread_mutex_lock(&list_lock);
	refresh_stop = 1;
	pthread_cond_signal(&list_cond);
	pthread_mutex_unlock(&list_lock);
	pthread_join(refresh_thread, NULL);
	refresh_running = 0;
	refresh_stop = 0;
}
