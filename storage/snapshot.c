/* snapshot.c - one read transaction, its chunk directory, and the gather
 * loop every lookup of the daemon runs through. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>
#include "eg_table.h"
#include "table_int.h"

/* Whether v lies wholly inside the file: a row pointer past its end would
 * fault (SIGBUS) when read. LMDB only checks that a value's first page is
 * in use, not where its bytes end. */
static int in_file(const eg_snapshot *s, const MDB_val *v)
{
	uintptr_t p = (uintptr_t)v->mv_data, base = (uintptr_t)s->map;

	return p >= base && p - base <= s->file_bytes && v->mv_size <= s->file_bytes - (p - base);
}

/* Learns where the file is mapped from the first pointer LMDB hands out;
 * kept in the table until a remap. */
static int find_map(eg_snapshot *s, const void *p)
{
	eg_table *t = s->t;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	if (!t->map)
		rc = eg__find_map(t->env, p, &t->map);
	s->map = t->map;
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* What is wrong with chunk i's value in rows (or sums), or NULL. */
static const char *bad_value(const eg_snapshot *s, int rows, uint64_t i, const MDB_val *v)
{
	if (v->mv_size != (rows ? eg__chunk_rows(&s->meta, i) * s->row_bytes : 8))
		return "is of the wrong size";
	if (!in_file(s, v))
		return "lies outside the file";
	return NULL;
}

/* Reads key/value of every chunk of rows (or sums) with one cursor walk
 * (no tree descent per chunk); chunk i must be key i with exactly its rows
 * (or an 8-byte checksum) inside the file. */
static int load(eg_snapshot *s, int rows, struct eg__report *r)
{
	const char *db = rows ? EG__DB_ROWS : EG__DB_SUMS, *why;
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t i = 0, key;
	int rc;

	if ((rc = eg__mdb(mdb_cursor_open(s->txn, rows ? s->t->rows : s->t->sums, &c))))
		return rc;
	for (rc = eg__mdb(mdb_cursor_get(c, &k, &v, MDB_FIRST)); rc == 0;
	     rc = eg__mdb(mdb_cursor_get(c, &k, &v, MDB_NEXT)), i++) {
		key = i + 1;
		if (k.mv_size == sizeof key)
			memcpy(&key, k.mv_data, sizeof key);
		if (key != i || i >= s->nchunks) {
			eg__problem(r, i >= s->nchunks ? "%s: more than the table's %llu chunks"
			                               : "%s: chunk %llu missing", db,
			            (unsigned long long)(i >= s->nchunks ? s->nchunks : i));
			break;
		}
		if (!s->map && (rc = find_map(s, v.mv_data))) {
			eg__problem(r, "cannot tell where LMDB mapped the file (/proc/self/maps)");
			break;
		}
		if ((why = bad_value(s, rows, i, &v))) {
			eg__problem(r, "chunk %llu: its %s (%zu bytes at file offset %lld) %s",
			            (unsigned long long)i, rows ? "rows" : "checksum", v.mv_size,
			            (long long)((const uint8_t *)v.mv_data - s->map), why);
			break;
		}
		if (rows)
			s->dir[i] = v.mv_data;
		else
			s->sums[i] = eg__get_le64(v.mv_data);
	}
	mdb_cursor_close(c);
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	if (rc == MDB_NOTFOUND && i < s->nchunks)
		eg__problem(r, "%s: chunks %llu..%llu missing", db, (unsigned long long)i,
		            (unsigned long long)s->nchunks - 1);
	return rc == MDB_NOTFOUND && i == s->nchunks ? 0 : EG_EFORMAT;
}

/* Begins the read transaction and notes how much of the map is file.
 * A writer that grew the file past our map makes LMDB answer
 * MDB_MAP_RESIZED; remapping moves every row pointer, so it is done only
 * when no other snapshot of t is open. */
static int begin(eg_snapshot *s)
{
	eg_table *t = s->t;
	MDB_envinfo info;
	uint64_t size;
	int rc = eg__mdb(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &s->txn));

	if (rc == MDB_MAP_RESIZED) {
		pthread_mutex_lock(&t->lock);
		if (t->live == 1 && (rc = eg__table_adopt_map(t)) == 0)
			rc = eg__mdb(mdb_txn_begin(t->env, NULL, MDB_RDONLY, &s->txn));
		pthread_mutex_unlock(&t->lock);
	}
	if (rc)
		return rc;
	if ((rc = eg__check_file_size(t->env, &size)) ||
	    (rc = eg__mdb(mdb_env_info(t->env, &info)))) {
		mdb_txn_abort(s->txn);
		s->txn = NULL;
		return rc;
	}
	s->file_bytes = size < info.me_mapsize ? size : info.me_mapsize;
	return 0;
}

static int same_layout(const eg_meta *a, const eg_meta *b)
{
	return a->slots == b->slots && a->dim == b->dim && a->dtype == b->dtype &&
	       a->scale_block == b->scale_block && a->chunk_slots == b->chunk_slots;
}

static void note_bad_sum(void *arg, uint64_t chunk)
{
	eg__problem(arg, "chunk %llu does not match its checksum", (unsigned long long)chunk);
}

int eg_snapshot_open(eg_table *t, int verify, eg_snapshot **out)
{
	return eg_snapshot_open_report(t, verify, NULL, NULL, out);
}

int eg_snapshot_open_report(eg_table *t, int verify, eg_check_fn problem, void *arg,
                            eg_snapshot **out)
{
	struct eg__report r = { problem, arg, 0 };
	eg_snapshot *s;
	int rc;

	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->t = t;
	pthread_mutex_lock(&t->lock);
	t->live++;
	pthread_mutex_unlock(&t->lock);
	if ((rc = begin(s)))
		goto fail;
	if ((rc = eg__meta_read(s->txn, t->meta_dbi, &s->meta)))
		goto fail;
	if (!same_layout(&s->meta, &t->meta)) {
		eg__problem(&r, "the table's layout changed since it was opened");
		rc = EG_EFORMAT;
		goto fail;
	}
	s->nchunks = eg__nchunks(&s->meta);
	s->mask = s->meta.chunk_slots - 1;
	s->shift = (unsigned)__builtin_ctzll(s->meta.chunk_slots);
	s->row_bytes = s->meta.row_bytes;
	s->dir = malloc(s->nchunks * sizeof *s->dir);
	s->sums = malloc(s->nchunks * sizeof *s->sums);
	if (!s->dir || !s->sums) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = load(s, 1, &r)) || (rc = load(s, 0, &r)))
		goto fail;
	if (verify && eg_snapshot_verify(s, note_bad_sum, &r)) {
		rc = EG_ECHECKSUM;
		goto fail;
	}
	*out = s;
	return 0;
fail:
	eg__report_end(&r);
	eg_snapshot_close(s);
	return rc;
}

void eg_snapshot_close(eg_snapshot *s)
{
	if (!s)
		return;
	if (s->txn)
		mdb_txn_abort(s->txn);
	pthread_mutex_lock(&s->t->lock);
	s->t->live--;
	pthread_mutex_unlock(&s->t->lock);
	eg_meta_clear(&s->meta);
	free(s->dir);
	free(s->sums);
	free(s);
}

const eg_meta *eg_snapshot_meta(const eg_snapshot *s)
{
	return &s->meta;
}

static inline const uint8_t *row_at(const eg_snapshot *s, uint64_t slot)
{
	return s->dir[slot >> s->shift] + (slot & s->mask) * s->row_bytes;
}

const void *eg_snapshot_row(const eg_snapshot *s, uint64_t slot)
{
	return row_at(s, slot);
}

/* How far ahead the gather prefetches: enough rows in flight to cover a
 * DRAM miss, few enough to stay in L1. */
#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 8
#endif

/* The copy loop; with rb a constant the memcpy becomes a few moves. */
static inline __attribute__((always_inline)) void
gather_rows(const eg_snapshot *s, const uint64_t *slots, size_t n,
            uint8_t *out, const size_t rb)
{
	const uint8_t *const *dir = (const uint8_t *const *)s->dir;
	const unsigned shift = s->shift;
	const uint64_t mask = s->mask;
	size_t i = 0;

	for (; i + PREFETCH_AHEAD < n; i++) {
		uint64_t f = slots[i + PREFETCH_AHEAD];
		const uint8_t *p = dir[f >> shift] + (f & mask) * rb;

		__builtin_prefetch(p);
		if (rb > 64)
			__builtin_prefetch(p + rb - 1);
		uint64_t x = slots[i];
		memcpy(out + i * rb, dir[x >> shift] + (x & mask) * rb, rb);
	}
	for (; i < n; i++) {
		uint64_t x = slots[i];
		memcpy(out + i * rb, dir[x >> shift] + (x & mask) * rb, rb);
	}
}

int eg_snapshot_gather(const eg_snapshot *s, const uint64_t *slots, size_t n,
                       void *out, size_t *bad)
{
	const uint64_t lim = s->meta.slots;
	uint64_t over = 0;

	/* branch-free first pass (vectorises); find the index only on failure */
	for (size_t i = 0; i < n; i++)
		over |= slots[i] >= lim;
	if (over) {
		for (size_t i = 0; i < n; i++) {
			if (slots[i] >= lim) {
				if (bad)
					*bad = i;
				return EG_ERANGE;
			}
		}
	}
	switch (s->row_bytes) {
	case 2: gather_rows(s, slots, n, out, 2); break;
	case 4: gather_rows(s, slots, n, out, 4); break;
	case 8: gather_rows(s, slots, n, out, 8); break;
	case 16: gather_rows(s, slots, n, out, 16); break;
	case 32: gather_rows(s, slots, n, out, 32); break;
	case 64: gather_rows(s, slots, n, out, 64); break;
	case 128: gather_rows(s, slots, n, out, 128); break;
	case 160: gather_rows(s, slots, n, out, 160); break;
	case 256: gather_rows(s, slots, n, out, 256); break;
	case 258: gather_rows(s, slots, n, out, 258); break;
	case 264: gather_rows(s, slots, n, out, 264); break;
	case 512: gather_rows(s, slots, n, out, 512); break;
	default: gather_rows(s, slots, n, out, s->row_bytes); break;
	}
	return 0;
}

/* Starts reading a chunk's pages: the map is MADV_RANDOM (lookups are
 * random), which would page a full pass in one page per fault. */
static void read_ahead(const eg_snapshot *s, uint64_t i)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a, end;

	if (i >= s->nchunks)
		return;
	a = (uintptr_t)s->dir[i] & ~(page - 1);
	end = (uintptr_t)s->dir[i] + eg__chunk_rows(&s->meta, i) * s->row_bytes;
	madvise((void *)a, end - a, MADV_WILLNEED);
}

int eg_snapshot_verify(const eg_snapshot *s,
                       void (*bad_chunk)(void *arg, uint64_t chunk), void *arg)
{
	int rc = 0;

	read_ahead(s, 0);
	for (uint64_t i = 0; i < s->nchunks; i++) {
		size_t len = eg__chunk_rows(&s->meta, i) * s->row_bytes;

		read_ahead(s, i + 1);

		if (XXH3_64bits(s->dir[i], len) != s->sums[i]) {
			rc = EG_ECHECKSUM;
			if (bad_chunk)
				bad_chunk(arg, i);
		}
	}
	return rc;
}
