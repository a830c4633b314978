/* gather.c - pieces of a response: sort rows into in memory and cold, read
 * the cold ones with the I/O thread, copy everything into place. */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gather.h"
#include "handlers.h"
#include "io.h"
#include "log.h"
#include "pager.h"
#include "pool.h"
#include "registry.h"
#include "rowcache.h"
#include "stats.h"

/* A piece is small enough that a decode step waiting behind one (per
 * thread) waits for a fraction of a millisecond when rows are warm. */
#define PIECE_BYTES (256u << 10)
#define PIECE_ROWS 8192u
/* Largest read; neighbouring cold rows merge into one read up to this. */
#define MAX_READ ED_GATHER_MAX_READ
/* Rows larger than this are paged in through the map (no read fits them). */
#define MAX_COLD_ROW (MAX_READ - 2 * 4096u)
#define PUT_BATCH 64

struct miss {
	uint64_t off;    /* file offset of the row */
	uint32_t row;    /* index in the piece */
};

struct piece {
	struct ed_task task;
	struct ed_io_batch io;
	struct ed_req *req;
	const struct ed_snap *snap;
	const uint64_t *slots;
	size_t n;
	uint8_t *dst;
	size_t end;           /* frame offset past this piece's rows; 0 for shm */
	int done;             /* loop: piece finished */
	int rc;               /* gather thread: error */
	atomic_int io_rc;     /* I/O thread: first failed read */
	atomic_int parts;     /* the copy pass and the reads still running */
	uint8_t *hit;         /* per row: in memory */
	uint32_t *epochs;     /* row-cache mode: per row */
	struct miss *miss;    /* cold rows by file offset */
	size_t n_miss;
	struct ed_io_read *reads;
	uint32_t *first;      /* reads[k] serves miss[first[k] .. first[k + 1]) */
	size_t n_reads;
};

/* The pieces of one response, in frame order (req->jobs). */
struct gather_set {
	size_t n, next;       /* pieces[0..next) are done */
	struct piece pieces[];
};

static void gather_failed(struct ed_req *req, int rc)
{
	Engram__V1__Request *m = req->msg;

	ed_req_failf(req, m->id, ENGRAM__V1__STATUS__INTERNAL, "gathering rows failed: %s",
	             eg_strerror(rc));
}

static int miss_cmp(const void *a, const void *b)
{
	const struct miss *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

static void free_scratch(struct piece *p)
{
	free(p->hit);
	free(p->epochs);
	free(p->miss);
	free(p->reads);
	free(p->first);
	p->hit = NULL;
	p->epochs = NULL;
	p->miss = NULL;
	p->reads = NULL;
	p->first = NULL;
}

/* Whether the row at file offset off lies on pages known to be resident
 * (ed_pager_test also marks them used, for the budget's clock). */
static int row_resident(const struct ed_snap *s, uint64_t off)
{
	unsigned sh = ed_pager_shift(s->pager);
	uint64_t a = off >> sh, z = (off + s->dir.row_bytes - 1) >> sh;

	return ed_pager_test(s->pager, a) && (a == z || ed_pager_test(s->pager, z));
}

/* Whether the rows of s go through the I/O path, each counted warm or
 * cold: an I/O thread, a map, rows it may read, and page residency (or a
 * row cache with its direct descriptor). */
static int tracked(const struct ed_snap *s)
{
	if (!ed_io_running() || !s->dir.map || s->dir.row_bytes > MAX_COLD_ROW)
		return 0;
	return s->cache ? s->direct_fd >= 0 : s->pager != NULL;
}

/* Sorts rows into p->hit; lists the cold ones in p->miss. Row-cache mode
 * copies the cached rows on the way. Returns 0 or -ENOMEM. */
static int classify(struct piece *p)
{
	const struct ed_snap *s = p->snap;
	const eg_rowdir *d = &s->dir;

	p->hit = malloc(p->n);
	p->miss = malloc(p->n * sizeof(*p->miss));
	if (!p->hit || !p->miss)
		return -ENOMEM;
	if (s->cache) {
		p->epochs = malloc(p->n * sizeof(*p->epochs));
		if (!p->epochs)
			return -ENOMEM;
		for (size_t i = 0; i < p->n; i++)
			p->epochs[i] = s->epochs[p->slots[i] >> d->shift];
		ed_rowcache_get(s->cache, p->slots, p->epochs, p->n, p->dst, p->hit);
	} else {
		for (size_t i = 0; i < p->n; i++)
			p->hit[i] = (uint8_t)row_resident(s, eg_rowdir_offset(d, p->slots[i]));
	}
	p->n_miss = 0;
	for (size_t i = 0; i < p->n; i++) {
		if (!p->hit[i]) {
			p->miss[p->n_miss].off = eg_rowdir_offset(d, p->slots[i]);
			p->miss[p->n_miss++].row = (uint32_t)i;
		}
	}
	return 0;
}

/* One read per run of cold rows whose aligned ranges touch, up to MAX_READ. */
static int plan_reads(struct piece *p, uint64_t align)
{
	const uint32_t rb = p->snap->dir.row_bytes;
	size_t k = 0;

	qsort(p->miss, p->n_miss, sizeof(*p->miss), miss_cmp);
	p->reads = malloc(p->n_miss * sizeof(*p->reads));
	p->first = malloc((p->n_miss + 1) * sizeof(*p->first));
	if (!p->reads || !p->first)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_miss; i++) {
		uint64_t a = p->miss[i].off / align * align;
		uint64_t z = (p->miss[i].off + rb + align - 1) / align * align;

		if (k > 0) {
			struct ed_io_read *r = &p->reads[k - 1];
			uint64_t end = r->off + r->len;

			if (a <= end && (z > end ? z : end) - r->off <= MAX_READ) {
				if (z > end)
					r->len = (uint32_t)(z - r->off);
				continue;
			}
		}
		p->reads[k].off = a;
		p->reads[k].len = (uint32_t)(z - a);
		p->first[k++] = (uint32_t)i;
	}
	p->first[k] = (uint32_t)p->n_miss;
	p->n_reads = k;
	return 0;
}

/* I/O thread: read k landed; copy its rows out, remember them. */
static void on_read(struct ed_io_batch *b, size_t k, const uint8_t *data, int res)
{
	struct piece *p = (struct piece *)((char *)b - offsetof(struct piece, io));
	const struct ed_snap *s = p->snap;
	const struct ed_io_read *r = &p->reads[k];
	const uint32_t rb = s->dir.row_bytes;
	uint64_t slots[PUT_BATCH];
	uint32_t epochs[PUT_BATCH];
	const uint8_t *rows[PUT_BATCH];
	size_t n_put = 0;

	for (uint32_t i = p->first[k]; i < p->first[k + 1]; i++) {
		const struct miss *m = &p->miss[i];
		uint8_t *to = p->dst + (size_t)m->row * rb;

		if (res < 0 || (uint64_t)res < m->off + rb - r->off) {
			int expected = 0;

			atomic_compare_exchange_strong(&p->io_rc, &expected, res < 0 ? res : -EIO);
			continue;
		}
		memcpy(to, data + (m->off - r->off), rb);
		if (!s->cache)
			continue;
		slots[n_put] = p->slots[m->row];
		epochs[n_put] = p->epochs[m->row];
		rows[n_put++] = to;
		if (n_put == PUT_BATCH) {
			ed_rowcache_put(s->cache, slots, epochs, n_put, rows);
			n_put = 0;
		}
	}
	if (n_put)
		ed_rowcache_put(s->cache, slots, epochs, n_put, rows);
	if (!s->cache && res > 0) {
		unsigned sh = ed_pager_shift(s->pager);

		ed_pager_mark(s->pager, r->off >> sh, ((uint64_t)res + (1u << sh) - 1) >> sh, s->dir.map);
	}
}

static void on_reads_done(struct ed_io_batch *b)
{
	struct piece *p = (struct piece *)((char *)b - offsetof(struct piece, io));

	if (atomic_fetch_sub(&p->parts, 1) == 1)
		ed_task_finish(&p->task);
}

/* Copies the in-memory rows of a page-cache piece through the map. */
static void copy_resident(struct piece *p)
{
	const eg_rowdir *d = &p->snap->dir;
	const uint32_t rb = d->row_bytes;

	for (size_t i = 0; i < p->n; i++)
		if (p->hit[i])
			memcpy(p->dst + i * rb, d->map + eg_rowdir_offset(d, p->slots[i]), rb);
}

/* Gather thread. */
static int piece_work(struct ed_task *t)
{
	struct piece *p = (struct piece *)t;
	const struct ed_snap *s = p->snap;
	int cached = s->cache != NULL, track = tracked(s);

	/* no I/O path or rows too big, or a table known to be wholly resident:
	 * copied through the map without looking */
	if (!track || (!cached && ed_pager_complete(s->pager))) {
		if (track)
			ed_stat_add(warm_rows, p->n);
		p->rc = eg_snapshot_gather(s->snap, p->slots, p->n, p->dst, NULL);
		return ED_TASK_DONE;
	}
	if (classify(p) || (p->n_miss && plan_reads(p, cached ? s->dio_align :
	                                                      1u << ed_pager_shift(s->pager)))) {
		/* no memory to plan with: through the map */
		free_scratch(p);
		p->rc = eg_snapshot_gather(s->snap, p->slots, p->n, p->dst, NULL);
		return ED_TASK_DONE;
	}
	ed_stat_add(cold_rows, p->n_miss);
	ed_stat_add(warm_rows, p->n - p->n_miss);
	if (p->n_miss == 0) {
		if (!cached)
			p->rc = eg_snapshot_gather(s->snap, p->slots, p->n, p->dst, NULL);
		return ED_TASK_DONE;
	}
	atomic_store(&p->parts, 2);
	p->io.fd = cached ? s->direct_fd : ed_pager_fd(s->pager);
	p->io.urgent = t->lane == ED_LANE_URGENT;
	p->io.reads = p->reads;
	p->io.n = p->n_reads;
	p->io.got = on_read;
	p->io.done = on_reads_done;
	ed_io_submit(&p->io);
	if (!cached)
		copy_resident(p);
	return atomic_fetch_sub(&p->parts, 1) == 1 ? ED_TASK_DONE : ED_TASK_PARKED;
}

/* The loop: one piece is back. */
static void piece_done(struct ed_task *t)
{
	struct piece *p = (struct piece *)t;
	struct ed_req *req = p->req;
	struct gather_set *set = req->jobs;
	int rc = p->rc ? p->rc : atomic_load(&p->io_rc);

	free_scratch(p);
	if (rc && !req->job_rc)
		req->job_rc = rc;
	p->done = 1;
	while (set->next < set->n && set->pieces[set->next].done)
		set->next++;
	if (--req->pending > 0) {
		if (!req->job_rc && set->next > 0 && set->pieces[set->next - 1].end) {
			req->ready = set->pieces[set->next - 1].end;
			if (req->progress)
				req->progress(req);
		}
		return;
	}
	/* every piece is back: only now may the frame be replaced */
	if (req->job_rc) {
		ed_error("gather failed: %s", eg_strerror(req->job_rc));
		if (req->sent) {
			ed_req_abandon(req); /* its head is out already: no error frame fits */
			return;
		}
		gather_failed(req, req->job_rc);
	}
	ed_req_finish(req);
}

static size_t piece_rows(uint32_t rb)
{
	size_t rows = PIECE_BYTES / rb;

	return rows == 0 ? 1 : rows > PIECE_ROWS ? PIECE_ROWS : rows;
}

/* Whether the rows of f lie on pages known to be resident: the table is,
 * or (a table partly in memory, the rows a small decode step asks for)
 * each of them is; then adds them to *warm where the pieces would count
 * them. The per-row loop stops at the first row that is not. */
static int fill_resident(const struct ed_fill *f, uint64_t *warm)
{
	const struct ed_snap *s = f->s;

	if (!tracked(s)) /* not counted, as the pieces do not count these */
		return !s->pager || ed_pager_complete(s->pager);
	if (ed_pager_complete(s->pager)) {
		*warm += f->n;
		return 1;
	}
	for (size_t i = 0; i < f->n; i++)
		if (!row_resident(s, eg_rowdir_offset(&s->dir, f->slots[i])))
			return 0;
	*warm += f->n;
	return 1;
}

/* Whether a small response may be copied on the loop right away: every
 * row is known to be in memory. */
static int loop_may_copy(const struct ed_fill *f, size_t n, size_t total, int shm)
{
	uint64_t warm = 0;

	if (total > (shm ? 2 * (size_t)ED_GATHER_ASYNC_BYTES : ED_GATHER_ASYNC_BYTES))
		return 0;
	if (!ed_io_running())
		return 1;
	for (size_t i = 0; i < n; i++)
		if (f[i].s->cache)
			return 0;
	for (size_t i = 0; i < n; i++)
		if (!fill_resident(&f[i], &warm))
			return 0;
	if (warm)
		ed_stat_add(warm_rows, warm); /* as the pieces count them */
	return 1;
}

static void gather_sync(struct ed_req *req, const struct ed_fill *f, const struct ed_block *b,
                        size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = eg_snapshot_gather(f[i].s->snap, f[i].slots, f[i].n, b[i].rows, NULL);

		if (rc) {
			gather_failed(req, rc);
			return;
		}
	}
}

void ed_gather(struct ed_req *req, const struct ed_fill *f, const struct ed_block *b, size_t n,
               int shm)
{
	size_t total = 0, rows = 0, n_pieces = 0, k = 0;
	struct gather_set *set;
	enum ed_lane lane;

	for (size_t i = 0; i < n; i++) {
		total += f[i].n * b[i].row_bytes;
		rows += f[i].n;
		n_pieces += (f[i].n + piece_rows(b[i].row_bytes) - 1) / piece_rows(b[i].row_bytes);
	}
	lane = rows <= ed_cfg.urgent_rows ? ED_LANE_URGENT : ED_LANE_BULK;
	if (lane == ED_LANE_URGENT && !req->urgent) {
		req->urgent = 1; /* released by ed_req_free */
		ed_pool_urgent_hold();
	}
	if (n_pieces == 0 || loop_may_copy(f, n, total, shm) || !req->mailbox) {
		gather_sync(req, f, b, n);
		return;
	}
	set = calloc(1, sizeof(*set) + n_pieces * sizeof(set->pieces[0]));
	if (!set) {
		gather_sync(req, f, b, n); /* slower, still correct */
		return;
	}
	set->n = n_pieces;
	req->jobs = set;
	for (size_t i = 0; i < n; i++) {
		size_t per = piece_rows(b[i].row_bytes);

		for (size_t off = 0; off < f[i].n; off += per, k++) {
			struct piece *p = &set->pieces[k];

			p->task.work = piece_work;
			p->task.done = piece_done;
			p->task.home = req->mailbox;
			p->task.lane = lane;
			p->req = req;
			p->snap = f[i].s;
			p->slots = f[i].slots + off;
			p->n = f[i].n - off < per ? f[i].n - off : per;
			p->dst = b[i].rows + off * b[i].row_bytes;
			p->end = shm ? 0 : (size_t)(p->dst - req->out.data) + p->n * b[i].row_bytes;
			req->pending++;
		}
	}
	ed__req_to(req, ED_REQ_PENDING);
	/* submitted only now: a piece may finish before the next is set up */
	for (k = 0; k < n_pieces; k++)
		ed_pool_submit(&set->pieces[k].task);
}
