/* check_storage.c - the table format on real LMDB environments: build,
 * gather, chunk edges, verify, patch in place, failed builds, junk input,
 * and a table of more than 2^32 slots. */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "egtest.h"
#include "eg_dtype.h"
#include "table_int.h"

#define OK(expr) do { int rc_ = (expr); \
	ck_assert_msg(rc_ == 0, "%s: %s (%d)", #expr, eg_strerror(rc_), rc_); } while (0)

static eg_snapshot *open_snap(const char *dir, eg_table **t, int verify)
{
	eg_snapshot *s;

	OK(eg_table_open(dir, t));
	OK(eg_snapshot_open(*t, verify, &s));
	return s;
}

/* Builds a table from encoded rows (n * row_bytes) with the builder. */
static void build_rows(const char *dir, const eg_meta *m, const uint8_t *rows)
{
	eg_builder *b;
	uint64_t cs = m->chunk_slots ? m->chunk_slots : EG_DEFAULT_CHUNK_SLOTS;
	uint32_t rb = eg_row_bytes(m->dtype, m->dim, m->scale_block);

	OK(eg_builder_open(dir, m, &b));
	for (uint64_t c = 0; c < eg_builder_chunks(b); c++) {
		void *p;

		OK(eg_builder_next_chunk(b, &p));
		memcpy(p, rows + c * cs * rb, eg_builder_chunk_rows(b, c) * rb);
	}
	OK(eg_builder_finish(b));
}

/* ---- every dtype through build and gather -------------------------------- */

/* Tricky floats with their f16 / bf16 bits, worked out apart from the code
 * under test (numpy astype(float16); exact rounding for bf16): ties,
 * subnormals, max, overflow, inf, NaN, negative zero. */
static const struct { uint32_t f; uint16_t f16, bf16; } tricky[] = {
	{ 0x80000000, 0x8000, 0x8000 }, { 0x3f801000, 0x3c00, 0x3f80 },
	{ 0x3f803000, 0x3c02, 0x3f80 }, { 0x3f808000, 0x3c04, 0x3f80 },
	{ 0x3f818000, 0x3c0c, 0x3f82 }, { 0x33000000, 0x0000, 0x3300 },
	{ 0x33c00000, 0x0002, 0x33c0 }, { 0x387fc000, 0x03ff, 0x3880 },
	{ 0x477fe000, 0x7bff, 0x4780 }, { 0x477ff000, 0x7c00, 0x4780 },
	{ 0x7f7f8000, 0x7c00, 0x7f80 }, { 0xff800000, 0xfc00, 0xff80 },
	{ 0x7fc00000, 0x7e00, 0x7fc0 }, { 0x00018000, 0x0000, 0x0002 },
	{ 0x3dcccccd, 0x2e66, 0x3dcd },
};
#define NTRICKY (sizeof tricky / sizeof tricky[0])

static const struct layout { eg_dtype dt; uint32_t dim, sb; } layouts[] = {
	{ EG_DTYPE_F32, 7, 0 }, { EG_DTYPE_F16, 5, 0 }, { EG_DTYPE_BF16, 80, 0 },
	{ EG_DTYPE_E4M3, 16, 0 }, { EG_DTYPE_E4M3, 32, 8 }, { EG_DTYPE_U8, 3, 0 },
};

START_TEST(test_roundtrip_dtypes)
{
	const struct layout *L = &layouts[_i];
	const uint64_t slots = 1000, cs = 64;
	uint32_t rb = eg_row_bytes(L->dt, L->dim, L->sb);
	float *vals = malloc(slots * L->dim * sizeof *vals);
	uint8_t *rows = malloc(slots * rb), *out = malloc(slots * rb);
	uint64_t *order = malloc(slots * sizeof *order);
	eg_meta m = { .slots = slots, .dim = L->dim, .dtype = L->dt,
	              .scale_block = L->sb, .chunk_slots = cs };
	eg_table *t;
	eg_snapshot *s;
	const eg_meta *got;
	char *dir = egt_path("t");

	for (uint64_t i = 0; i < slots * L->dim; i++) {
		uint32_t u = tricky[i % NTRICKY].f;

		memcpy(&vals[i], &u, 4);
		if (L->dt == EG_DTYPE_E4M3 || L->dt == EG_DTYPE_U8) /* finite, varied */
			vals[i] = (float)((int64_t)(i * 2654435761u % 2001) - 1000) / 7.0f;
	}
	OK(eg_rows_from_f32(L->dt, L->dim, L->sb, vals, slots, rows));
	if (L->dt == EG_DTYPE_F16 || L->dt == EG_DTYPE_BF16) {
		for (uint64_t i = 0; i < slots * L->dim; i++) {
			uint16_t want = L->dt == EG_DTYPE_F16 ? tricky[i % NTRICKY].f16
			                                      : tricky[i % NTRICKY].bf16, h;
			memcpy(&h, rows + 2 * i, 2);
			ck_assert_msg(h == want, "value %lu: 0x%04x want 0x%04x",
			              (unsigned long)i, h, want);
		}
	}
	snprintf(m.name, sizeof m.name, "%s", eg_dtype_name(L->dt));
	build_rows(dir, &m, rows);

	s = open_snap(dir, &t, 1);
	got = eg_snapshot_meta(s);
	ck_assert_uint_eq(got->format_version, EG_FORMAT_VERSION);
	ck_assert_str_eq(got->name, eg_dtype_name(L->dt));
	ck_assert_uint_eq(got->slots, slots);
	ck_assert_uint_eq(got->dim, L->dim);
	ck_assert_int_eq(got->dtype, L->dt);
	ck_assert_uint_eq(got->scale_block, L->sb);
	ck_assert_uint_eq(got->row_bytes, rb);
	ck_assert_uint_eq(got->chunk_slots, cs);
	ck_assert_uint_eq(got->generation, 1);
	ck_assert(got->created > 1600000000);
	ck_assert_ptr_null(got->hash_spec);
	for (uint64_t i = 0; i < slots; i++)
		order[i] = (i * 7919) % slots; /* every slot, scattered */
	OK(eg_snapshot_gather(s, order, slots, out, NULL));
	for (uint64_t i = 0; i < slots; i++)
		ck_assert_mem_eq(out + i * rb, rows + order[i] * rb, rb);
	eg_snapshot_close(s);
	eg_table_close(t);
	free(vals);
	free(rows);
	free(out);
	free(order);
}
END_TEST

/* ---- chunk edges ----------------------------------------------------------- */

static void check_all_edges(uint64_t slots, uint32_t rb, uint64_t cs)
{
	char *dir = egt_path("t");
	eg_table *t;
	eg_snapshot *s;
	uint8_t *want = malloc(rb), *got = malloc(rb * 3);
	uint64_t nch;

	egt_make_table(dir, "edges", slots, rb, cs, 42);
	if (cs == 0)
		cs = EG_DEFAULT_CHUNK_SLOTS;
	nch = (slots + cs - 1) / cs;
	s = open_snap(dir, &t, 1);
	for (uint64_t c = 0; c < nch; c++) {
		uint64_t first = c * cs, last = first + cs - 1 < slots - 1 ? first + cs - 1 : slots - 1;
		uint64_t q[3] = { first, last, (first + last) / 2 };

		OK(eg_snapshot_gather(s, q, 3, got, NULL));
		for (int k = 0; k < 3; k++) {
			egt_row_bytes(42, q[k], rb, want);
			ck_assert_msg(memcmp(got + k * rb, want, rb) == 0,
			              "slots %lu rb %u cs %lu: slot %lu", (unsigned long)slots,
			              rb, (unsigned long)cs, (unsigned long)q[k]);
			ck_assert_mem_eq(eg_snapshot_row(s, q[k]), want, rb);
		}
	}
	eg_snapshot_close(s);
	eg_table_close(t);
	free(want);
	free(got);
}

START_TEST(test_chunk_edges)
{
	check_all_edges(1, 8, 1);
	check_all_edges(5, 3, 1);          /* chunk_slots = 1 */
	check_all_edges(1000, 128, 64);    /* short last chunk */
	check_all_edges(1024, 130, 64);    /* exact chunks, odd row size */
	check_all_edges(300, 16, 512);     /* one chunk, shorter than chunk_slots */
	check_all_edges(4097, 1, 4096);    /* a one-row last chunk */
	check_all_edges(70000, 4, 0);      /* default chunk_slots */
	check_all_edges(37, 4096, 2);      /* rows bigger than a page */
	check_all_edges(200, 2, 8);        /* values kept inside leaf pages */
}
END_TEST

/* Every specialised row size of the gather, plus generic ones. */
START_TEST(test_gather_row_sizes)
{
	static const uint32_t sizes[] = { 2, 4, 8, 16, 32, 64, 128, 160, 256, 258,
	                                  264, 512, 5, 72, 1000 };
	const uint64_t slots = 300, n = 50;
	uint64_t q[50];

	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		uint32_t rb = sizes[k];
		char *dir = egt_path("t");
		uint8_t *out = malloc(n * rb), *want = malloc(rb);
		eg_table *t;
		eg_snapshot *s;

		egt_make_table(dir, "sizes", slots, rb, 16, k);
		s = open_snap(dir, &t, 0);
		for (uint64_t i = 0; i < n; i++)
			q[i] = (i * 97 + k) % slots;
		OK(eg_snapshot_gather(s, q, n, out, NULL));
		for (uint64_t i = 0; i < n; i++) {
			egt_row_bytes(k, q[i], rb, want);
			ck_assert_msg(memcmp(out + i * rb, want, rb) == 0, "rb %u i %lu", rb,
			              (unsigned long)i);
		}
		eg_snapshot_close(s);
		eg_table_close(t);
		free(out);
		free(want);
	}
}
END_TEST

START_TEST(test_out_of_range)
{
	char *dir = egt_path("t");
	eg_table *t;
	eg_snapshot *s;
	uint8_t out[6 * 8], ref[6 * 8];
	uint64_t q[6] = { 0, 1, 99, 100, 5, UINT64_MAX };
	size_t bad = 77;

	egt_make_table(dir, "r", 100, 8, 16, 1);
	s = open_snap(dir, &t, 0);
	memset(out, 0xaa, sizeof out);
	memcpy(ref, out, sizeof out);
	ck_assert_int_eq(eg_snapshot_gather(s, q, 6, out, &bad), EG_ERANGE);
	ck_assert_uint_eq(bad, 3);
	ck_assert_mem_eq(out, ref, sizeof out); /* nothing copied */
	q[3] = 3;
	ck_assert_int_eq(eg_snapshot_gather(s, q, 6, out, &bad), EG_ERANGE);
	ck_assert_uint_eq(bad, 5);
	ck_assert_int_eq(eg_snapshot_gather(s, q, 6, out, NULL), EG_ERANGE);
	OK(eg_snapshot_gather(s, q, 5, out, &bad));
	OK(eg_snapshot_gather(s, q, 0, out, &bad));
	eg_snapshot_close(s);
	eg_table_close(t);
}
END_TEST

/* ---- checksums ------------------------------------------------------------- */

static void note_chunk(void *arg, uint64_t chunk)
{
	uint64_t *seen = arg;

	seen[seen[0] + 1] = chunk;
	seen[0]++;
}

/* Flips one byte of slot's row inside data.mdb, found by its unique bytes. */
static void flip_row_byte(const char *dir, uint64_t seed, uint64_t slot, uint32_t rb)
{
	char *data;
	int fd;
	struct stat st;
	uint8_t *file, *row = malloc(rb), *hit, *again;

	ck_assert(asprintf(&data, "%s/data.mdb", dir) > 0);
	egt_row_bytes(seed, slot, rb, row);
	fd = open(data, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	file = malloc(st.st_size);
	ck_assert_int_eq(pread(fd, file, st.st_size, 0), st.st_size);
	hit = memmem(file, st.st_size, row, rb);
	ck_assert_ptr_nonnull(hit);
	again = memmem(hit + 1, st.st_size - (hit + 1 - file), row, rb);
	ck_assert_ptr_null(again);
	hit[rb / 2] ^= 0x10;
	ck_assert_int_eq(pwrite(fd, &hit[rb / 2], 1, hit + rb / 2 - file), 1);
	close(fd);
	free(file);
	free(row);
	free(data);
}

static void check_flip(uint64_t slots, uint32_t rb, uint64_t cs, uint64_t slot)
{
	char *dir = egt_path("t");
	eg_table *t;
	eg_snapshot *s;
	uint64_t seen[8] = { 0 };
	uint8_t *want = malloc(rb);

	egt_make_table(dir, "flip", slots, rb, cs, 9);
	flip_row_byte(dir, 9, slot, rb);
	s = open_snap(dir, &t, 0);
	/* the flipped byte is what a reader sees: the right bytes were hit */
	egt_row_bytes(9, slot, rb, want);
	want[rb / 2] ^= 0x10;
	ck_assert_mem_eq(eg_snapshot_row(s, slot), want, rb);
	ck_assert_int_eq(eg_snapshot_verify(s, note_chunk, seen), EG_ECHECKSUM);
	ck_assert_uint_eq(seen[0], 1);
	ck_assert_uint_eq(seen[1], slot / cs);
	ck_assert_int_eq(eg_snapshot_verify(s, NULL, NULL), EG_ECHECKSUM);
	eg_snapshot_close(s);
	ck_assert_int_eq(eg_snapshot_open(t, 1, &s), EG_ECHECKSUM);
	eg_table_close(t);
	free(want);
}

START_TEST(test_verify_flipped_byte)
{
	check_flip(4096, 64, 256, 5 * 256 + 17); /* chunks in overflow pages */
	check_flip(400, 16, 4, 123);              /* chunks inside leaf pages */
}
END_TEST

/* ---- more than 2^32 slots -------------------------------------------------- */

#define BIG_CS (UINT64_C(1) << 24)
#define BIG_SLOTS ((UINT64_C(1) << 32) + BIG_CS + 5)

/* Marked slots hold a non-zero byte; every other byte is zero. The test
 * writes only the marked bytes (and the short last chunk, which LMDB keeps
 * inside a leaf page): the overflow pages a large (MDB_WRITEMAP) build
 * reserves at the end of a fresh file are holes that read as zero, so the
 * 4.3 GB table stays sparse and the test fast. For that the builder must
 * not allocate the file's blocks first, as it does to survive a full disk
 * (eg__build_reserve; tests/python/test_disk_full.py tests that). */
static const uint64_t big_marked[] = {
	0, 1, BIG_CS - 1, BIG_CS, (UINT64_C(1) << 31) + 3, (UINT64_C(1) << 32) - 1,
	UINT64_C(1) << 32, (UINT64_C(1) << 32) + 1, (UINT64_C(1) << 32) + BIG_CS,
	BIG_SLOTS - 1,
};
#define NMARKED (sizeof big_marked / sizeof big_marked[0])

static uint8_t big_value(uint64_t slot)
{
	return (uint8_t)((slot * 131 + (slot >> 32) * 17 + 7) | 1);
}

START_TEST(test_more_than_4g_slots)
{
	char *dir = egt_path("big");
	eg_meta m = { .name = "big", .slots = BIG_SLOTS, .dim = 1, .dtype = EG_DTYPE_U8,
	              .chunk_slots = BIG_CS };
	eg_builder *b;
	eg_table *t;
	eg_snapshot *s;
	uint64_t q[NMARKED + 3], disk;
	uint8_t out[NMARKED + 3];
	size_t bad;

	eg__build_reserve = 0;
	OK(eg_builder_open(dir, &m, &b));
	ck_assert_uint_eq(eg_builder_chunks(b), 258);
	ck_assert_uint_eq(eg_builder_chunk_rows(b, 257), 5);
	for (uint64_t c = 0; c < eg_builder_chunks(b); c++) {
		uint8_t *p;

		OK(eg_builder_next_chunk(b, (void **)&p));
		if (eg_builder_chunk_rows(b, c) < BIG_CS) /* small: in a leaf page */
			memset(p, 0, eg_builder_chunk_rows(b, c));
		for (size_t k = 0; k < NMARKED; k++)
			if (big_marked[k] / BIG_CS == c)
				p[big_marked[k] % BIG_CS] = big_value(big_marked[k]);
	}
	OK(eg_builder_finish(b));

	s = open_snap(dir, &t, 0);
	ck_assert_uint_eq(eg_snapshot_meta(s)->slots, BIG_SLOTS);
	for (size_t k = 0; k < NMARKED; k++)
		q[k] = big_marked[NMARKED - 1 - k];
	q[NMARKED] = (UINT64_C(1) << 32) - 2; /* unmarked: zero */
	q[NMARKED + 1] = (UINT64_C(1) << 32) + 2;
	q[NMARKED + 2] = BIG_SLOTS - 2;
	OK(eg_snapshot_gather(s, q, NMARKED + 3, out, NULL));
	for (size_t k = 0; k < NMARKED; k++)
		ck_assert_msg(out[k] == big_value(q[k]), "slot %#lx", (unsigned long)q[k]);
	for (size_t k = NMARKED; k < NMARKED + 3; k++)
		ck_assert_msg(out[k] == 0, "slot %#lx: %u", (unsigned long)q[k], out[k]);
	ck_assert_uint_eq(*(const uint8_t *)eg_snapshot_row(s, BIG_SLOTS - 1),
	                  big_value(BIG_SLOTS - 1));
	q[1] = BIG_SLOTS;
	ck_assert_int_eq(eg_snapshot_gather(s, q, 3, out, &bad), EG_ERANGE);
	ck_assert_uint_eq(bad, 1);
	OK(eg_snapshot_verify(s, NULL, NULL));
	OK(eg_table_disk_bytes(t, &disk));
	ck_assert_msg(disk < BIG_SLOTS / 4, "table not sparse: %lu bytes on disk",
	              (unsigned long)disk);
	eg_snapshot_close(s);
	eg_table_close(t);
}
END_TEST

/* ---- patching in place ----------------------------------------------------- */

/* eg_table_update runs in another process, as `engram table update` does:
 * LMDB forbids one process opening an environment twice. */
struct upd_result {
	int rc;
	size_t bad;
	uint64_t gen;
};

static struct upd_result update_in_child(const char *dir, const uint64_t *slots,
                                         size_t n, const void *rows)
{
	struct upd_result r = { 0, (size_t)-1, 0 };
	int p[2], status;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		r.rc = eg_table_update(dir, slots, n, rows, &r.bad, &r.gen);
		_exit(write(p[1], &r, sizeof r) == sizeof r ? 0 : 1);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &r, sizeof r), sizeof r);
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return r;
}

static void expect_row(const eg_snapshot *s, uint64_t slot, uint64_t seed, uint32_t rb)
{
	uint8_t want[64];

	egt_row_bytes(seed, slot, rb, want);
	ck_assert_msg(memcmp(eg_snapshot_row(s, slot), want, rb) == 0,
	              "slot %lu is not seed %lu's row", (unsigned long)slot,
	              (unsigned long)seed);
}

START_TEST(test_update_in_place)
{
	const uint32_t rb = 24;
	char *dir = egt_path("t");
	uint64_t patch[5] = { 5, 1023, 1024, 9999, 5 };
	uint8_t rows[5 * 24];
	eg_table *t;
	eg_snapshot *s1, *s2, *s3;
	struct upd_result r;
	uint64_t seen[4] = { 0 };

	egt_make_table(dir, "upd", 10000, rb, 1024, 1);
	s1 = open_snap(dir, &t, 1);
	ck_assert_uint_eq(eg_snapshot_meta(s1)->generation, 1);
	for (int i = 0; i < 5; i++)
		egt_row_bytes(2, patch[i], rb, rows + i * rb);
	egt_row_bytes(3, 5, rb, rows + 4 * rb); /* the later duplicate wins */

	r = update_in_child(dir, patch, 5, rows);
	ck_assert_msg(r.rc == 0, "update: %s", eg_strerror(r.rc));
	ck_assert_uint_eq(r.gen, 2);

	/* the old snapshot keeps its rows */
	ck_assert_uint_eq(eg_snapshot_meta(s1)->generation, 1);
	for (int i = 0; i < 4; i++)
		expect_row(s1, patch[i], 1, rb);
	OK(eg_snapshot_verify(s1, NULL, NULL));

	OK(eg_snapshot_open(t, 1, &s2));
	ck_assert_uint_eq(eg_snapshot_meta(s2)->generation, 2);
	expect_row(s2, 5, 3, rb);
	expect_row(s2, 1023, 2, rb);
	expect_row(s2, 1024, 2, rb);
	expect_row(s2, 9999, 2, rb);
	expect_row(s2, 4, 1, rb);
	expect_row(s2, 6, 1, rb);
	expect_row(s2, 1025, 1, rb);
	expect_row(s2, 9998, 1, rb);
	ck_assert_int_eq(eg_snapshot_verify(s2, note_chunk, seen), 0);
	ck_assert_uint_eq(seen[0], 0);

	/* a bad slot: nothing written, generation unchanged */
	patch[2] = 10000;
	r = update_in_child(dir, patch, 5, rows);
	ck_assert_int_eq(r.rc, EG_ERANGE);
	ck_assert_uint_eq(r.bad, 2);
	OK(eg_snapshot_open(t, 1, &s3));
	ck_assert_uint_eq(eg_snapshot_meta(s3)->generation, 2);
	expect_row(s3, 1023, 2, rb);
	eg_snapshot_close(s3);

	eg_snapshot_close(s2);
	eg_snapshot_close(s1);
	eg_table_close(t);

	r = update_in_child(egt_tmpdir(), patch, 1, rows);
	ck_assert_int_eq(r.rc, EG_ENOTTABLE);
}
END_TEST

/* Many updates while an old snapshot pins every old page: the writer has to
 * grow the map; readers still see consistent rows. */
START_TEST(test_update_grows_map)
{
	const uint32_t rb = 64;
	const uint64_t slots = 512, cs = 64;
	char *dir = egt_path("t");
	uint64_t *all = malloc(slots * sizeof *all);
	uint8_t *rows = malloc(slots * rb);
	eg_table *t;
	eg_snapshot *s1, *s2;
	struct upd_result r;

	egt_make_table(dir, "grow", slots, rb, cs, 1);
	s1 = open_snap(dir, &t, 0);
	for (uint64_t i = 0; i < slots; i++)
		all[i] = i;
	for (int round = 0; round < 40; round++) {
		for (uint64_t i = 0; i < slots; i++)
			egt_row_bytes(100 + round, i, rb, rows + i * rb);
		r = update_in_child(dir, all, slots, rows);
		ck_assert_msg(r.rc == 0, "round %d: %s", round, eg_strerror(r.rc));
		ck_assert_uint_eq(r.gen, round + 2);
		if (round % 8 == 0) { /* pins this generation's pages too */
			OK(eg_snapshot_open(t, 1, &s2));
			expect_row(s2, slots - 1, 100 + round, rb);
			eg_snapshot_close(s2);
		}
	}
	OK(eg_snapshot_open(t, 1, &s2));
	ck_assert_uint_eq(eg_snapshot_meta(s2)->generation, 41);
	for (uint64_t i = 0; i < slots; i += 37)
		expect_row(s2, i, 139, rb);
	expect_row(s1, 7, 1, rb);
	OK(eg_snapshot_verify(s1, NULL, NULL));
	eg_snapshot_close(s2);
	eg_snapshot_close(s1);
	eg_table_close(t);
	free(all);
	free(rows);
}
END_TEST

/* ---- failed and interrupted builds ---------------------------------------- */

static int fail_after; /* calls of the seam left before it fails */
static int fail_code;

static int failing_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v, unsigned f)
{
	if (fail_after-- == 0)
		return fail_code;
	return mdb_put(txn, dbi, k, v, f);
}

static int failing_commit(MDB_txn *txn)
{
	if (fail_after-- == 0) {
		mdb_txn_abort(txn);
		return fail_code;
	}
	return mdb_txn_commit(txn);
}

/* Builds slots rows; returns the first error (the builder then aborted). */
static int try_build(const char *dir, uint64_t slots, uint64_t cs)
{
	eg_meta m = { .name = "f", .slots = slots, .dim = 32, .dtype = EG_DTYPE_U8,
	              .chunk_slots = cs };
	eg_builder *b;
	int rc;

	if ((rc = eg_builder_open(dir, &m, &b)))
		return rc;
	for (uint64_t c = 0; c < eg_builder_chunks(b); c++) {
		uint8_t *p;

		if ((rc = eg_builder_next_chunk(b, (void **)&p))) {
			eg_builder_abort(b);
			return rc;
		}
		for (uint64_t r = 0; r < eg_builder_chunk_rows(b, c); r++)
			egt_row_bytes(5, c * cs + r, 32, p + r * 32);
	}
	return eg_builder_finish(b);
}

static void expect_not_table(const char *dir)
{
	eg_table *t = NULL;

	ck_assert_int_eq(eg_table_open(dir, &t), EG_ENOTTABLE);
	ck_assert_ptr_null(t);
}

START_TEST(test_failing_build)
{
	char *dir = egt_path("t");

	/* large-build paths: map written directly, periodic commits */
	eg__build_writemap_min = 0;
	eg__build_commit_bytes = 4096;

	eg__put = failing_put;
	fail_code = -ENOSPC;
	fail_after = 25; /* a put after a few commits */
	ck_assert_int_eq(try_build(dir, 4000, 64), -ENOSPC);
	expect_not_table(dir);

	fail_code = MDB_MAP_FULL;
	fail_after = 3;
	ck_assert_int_eq(try_build(dir, 4000, 64), MDB_MAP_FULL);
	expect_not_table(dir);

	/* the metadata put of the final transaction */
	fail_after = 2 * 63 + 3;
	ck_assert_int_eq(try_build(dir, 4000, 64), MDB_MAP_FULL);
	expect_not_table(dir);
	eg__put = mdb_put;

	/* every commit, the last (the one with the metadata) included */
	eg__commit = failing_commit;
	for (int k = 0; k < 20; k++) {
		fail_after = k;
		fail_code = -ENOSPC;
		int rc = try_build(dir, 4000, 64);

		ck_assert_msg(rc == -ENOSPC || rc == 0, "k %d: %d", k, rc);
		if (rc == 0)
			break;
		expect_not_table(dir);
	}
	eg__commit = mdb_txn_commit;

	OK(try_build(dir, 4000, 64));
	{
		eg_table *t;
		eg_snapshot *s = open_snap(dir, &t, 1);

		expect_row(s, 3999, 5, 32);
		eg_snapshot_close(s);
		eg_table_close(t);
	}
	ck_assert_int_eq(try_build(dir, 10, 64), EG_EEXIST);
}
END_TEST

/* A builder killed after committing some chunks leaves no table, and the
 * next build in that directory replaces the dead one. */
START_TEST(test_interrupted_build)
{
	char *dir = egt_path("t");
	eg_meta m = { .name = "i", .slots = 4000, .dim = 32, .dtype = EG_DTYPE_U8,
	              .chunk_slots = 64 };
	int status;
	pid_t pid;
	eg_table *t;
	eg_snapshot *s;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		eg_builder *b;
		void *p;

		eg__build_writemap_min = 0;
		eg__build_commit_bytes = 8192;
		if (eg_builder_open(dir, &m, &b))
			_exit(1);
		for (int c = 0; c < 40; c++) {
			if (eg_builder_next_chunk(b, &p))
				_exit(1);
			memset(p, c, 64 * 32);
		}
		_exit(0); /* dies mid-build */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	expect_not_table(dir);
	{
		struct upd_result r = update_in_child(dir, (uint64_t[]){ 1 }, 1, &m);

		ck_assert_int_eq(r.rc, EG_ENOTTABLE);
	}
	egt_make_table(dir, "again", 100, 8, 16, 3);
	s = open_snap(dir, &t, 1);
	ck_assert_str_eq(eg_snapshot_meta(s)->name, "again");
	ck_assert_uint_eq(eg_snapshot_meta(s)->generation, 1);
	expect_row(s, 99, 3, 8);
	eg_snapshot_close(s);
	eg_table_close(t);
}
END_TEST

START_TEST(test_builder_misuse)
{
	char *dir = egt_path("t");
	eg_meta m = { .name = "m", .slots = 100, .dim = 4, .dtype = EG_DTYPE_BF16,
	              .chunk_slots = 32 };
	eg_meta bad;
	eg_builder *b;
	void *p;

	bad = m; bad.chunk_slots = 48;
	ck_assert_int_eq(eg_builder_open(dir, &bad, &b), EG_EINVAL);
	bad = m; bad.dim = 0;
	ck_assert_int_eq(eg_builder_open(dir, &bad, &b), EG_EINVAL);
	bad = m; bad.slots = 0;
	ck_assert_int_eq(eg_builder_open(dir, &bad, &b), EG_EINVAL);
	bad = m; bad.scale_block = 2;
	ck_assert_int_eq(eg_builder_open(dir, &bad, &b), EG_EINVAL);
	bad = m; bad.dtype = (eg_dtype)0;
	ck_assert_int_eq(eg_builder_open(dir, &bad, &b), EG_EINVAL);
	bad = m; bad.slots = UINT64_C(1) << 40; bad.chunk_slots = UINT64_C(1) << 32;
	ck_assert_int_eq(eg_builder_open(dir, &bad, &b), EG_EINVAL); /* 32 GiB values */
	bad = m; memset(bad.name, 'x', sizeof bad.name);
	ck_assert_int_eq(eg_builder_open(dir, &bad, &b), EG_EINVAL);

	/* finishing early fails and leaves no table */
	OK(eg_builder_open(dir, &m, &b));
	ck_assert_uint_eq(eg_builder_chunks(b), 4);
	ck_assert_uint_eq(eg_builder_chunk_rows(b, 3), 4);
	OK(eg_builder_next_chunk(b, &p));
	memset(p, 0, 32 * 8);
	ck_assert_int_eq(eg_builder_finish(b), EG_EINVAL);
	expect_not_table(dir);

	/* a chunk too many; abort drops everything */
	OK(eg_builder_open(dir, &m, &b));
	for (int c = 0; c < 4; c++) {
		OK(eg_builder_next_chunk(b, &p));
		memset(p, 0, eg_builder_chunk_rows(b, c) * 8);
	}
	ck_assert_int_eq(eg_builder_next_chunk(b, &p), EG_EINVAL);
	eg_builder_abort(b);
	expect_not_table(dir);
}
END_TEST

static void count_progress(void *arg, uint64_t done, uint64_t total)
{
	uint64_t *c = arg;

	ck_assert_uint_eq(done, c[0] + 1);
	ck_assert_uint_eq(total, 7);
	c[0] = done;
}

START_TEST(test_hash_spec_and_progress)
{
	const char *spec = "{\"kind\":\"xxh3\",\"max_ngram\":2,\"heads\":2,\"pad\":0,"
	                   "\"seed\":7,\"rows\":[[60,40]]}";
	eg_meta m = { .name = "h", .slots = 100, .dim = 2, .dtype = EG_DTYPE_F16,
	              .chunk_slots = 16 };
	char *dir = egt_path("t");
	eg_builder *b;
	eg_table *t;
	eg_snapshot *s;
	uint64_t progress[1] = { 0 };

	m.hash_spec = (char *)"{\"kind\":\"nope\"}";
	ck_assert_int_eq(eg_builder_open(dir, &m, &b), EG_EHASH);
	m.hash_spec = (char *)spec;
	m.slots = 101; /* the spec needs exactly 100 */
	ck_assert_int_eq(eg_builder_open(dir, &m, &b), EG_EHASH);
	m.slots = 100;
	m.generation = 5; /* a version published to replace generation 4 */
	OK(eg_builder_open(dir, &m, &b));
	eg_builder_set_progress(b, count_progress, progress);
	for (uint64_t c = 0; c < eg_builder_chunks(b); c++) {
		void *p;

		OK(eg_builder_next_chunk(b, &p));
		memset(p, 0x3c, eg_builder_chunk_rows(b, c) * 4);
	}
	OK(eg_builder_finish(b));
	ck_assert_uint_eq(progress[0], 7);
	s = open_snap(dir, &t, 1);
	ck_assert_uint_eq(eg_snapshot_meta(s)->generation, 5);
	ck_assert_ptr_nonnull(eg_snapshot_meta(s)->hash_spec);
	ck_assert_ptr_nonnull(strstr(eg_snapshot_meta(s)->hash_spec, "\"xxh3\""));
	ck_assert_ptr_nonnull(strstr(eg_snapshot_meta(s)->hash_spec, "60"));
	eg_snapshot_close(s);
	eg_table_close(t);
}
END_TEST

/* ---- junk ------------------------------------------------------------------ */

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

/* Rewrites one meta key of a finished table with raw LMDB. */
static void poke_meta(const char *dir, const char *key, const void *val, size_t len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { strlen(key), (void *)key }, v = { len, (void *)val };

	ck_assert_int_eq(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 4);
	ck_assert_int_eq(mdb_env_open(env, dir, 0, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static int open_rc(const char *dir)
{
	eg_table *t;
	int rc = eg_table_open(dir, &t);

	if (rc == 0)
		eg_table_close(t);
	return rc;
}

START_TEST(test_not_a_table)
{
	const char *empty = egt_tmpdir();
	char *junk = egt_path("junk"), *file = egt_path("f"), *lock, *data;
	uint8_t noise[65536];
	uint32_t v2 = 2;
	struct stat st;
	eg_meta m = { .name = "x", .slots = 10, .dim = 4, .dtype = EG_DTYPE_U8,
	              .chunk_slots = 4 };
	eg_builder *b;

	ck_assert_int_eq(open_rc("/nonexistent/engram"), -ENOENT);
	ck_assert_int_eq(open_rc(empty), EG_ENOTTABLE);
	ck_assert(asprintf(&lock, "%s/lock.mdb", empty) > 0);
	ck_assert_int_ne(stat(lock, &st), 0); /* left no lock.mdb behind */
	free(lock);
	write_file(file, "hello", 5);
	ck_assert_int_eq(open_rc(file), EG_ENOTTABLE);

	/* garbage data.mdb of several sizes */
	ck_assert_int_eq(mkdir(junk, 0755), 0);
	ck_assert(asprintf(&data, "%s/data.mdb", junk) > 0);
	for (size_t i = 0; i < sizeof noise; i++)
		noise[i] = (uint8_t)(i * 2654435761u >> 13);
	static const size_t sizes[] = { 0, 1, 100, 4096, 8192, 65536 };
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		write_file(data, noise, sizes[k]);
		int rc = open_rc(junk);

		ck_assert_msg(rc == EG_ENOTTABLE || rc == EG_EFORMAT, "size %zu: %d",
		              sizes[k], rc);
	}
	/* a builder does not clobber what it does not know */
	ck_assert_int_eq(eg_builder_open(junk, &m, &b), EG_EEXIST);
	ck_assert_int_eq(stat(data, &st), 0);
	ck_assert_int_eq(st.st_size, 65536);

	/* a foreign LMDB environment: not a table, and left alone */
	{
		char *other = egt_path("other");
		MDB_env *env;
		MDB_txn *txn;
		MDB_dbi dbi;
		MDB_val k = { 1, (void *)"k" }, v = { 1, (void *)"v" };

		ck_assert_int_eq(mkdir(other, 0755), 0);
		ck_assert_int_eq(mdb_env_create(&env), 0);
		ck_assert_int_eq(mdb_env_open(env, other, 0, 0644), 0);
		ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
		ck_assert_int_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
		ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
		ck_assert_int_eq(mdb_txn_commit(txn), 0);
		mdb_env_close(env);
		ck_assert_int_eq(open_rc(other), EG_ENOTTABLE);
		ck_assert_int_eq(eg_builder_open(other, &m, &b), EG_EEXIST);
	}

	/* a table with unknown format version or malformed keys */
	{
		char *dir = egt_path("t");

		egt_make_table(dir, "ok", 10, 4, 4, 1);
		ck_assert_int_eq(open_rc(dir), 0);
		poke_meta(dir, "format_version", &v2, 4);
		ck_assert_int_eq(open_rc(dir), EG_EFORMAT);
		v2 = 1;
		poke_meta(dir, "format_version", &v2, 4);
		ck_assert_int_eq(open_rc(dir), 0);
		poke_meta(dir, "slots", "\x0a\0\0", 3);
		ck_assert_int_eq(open_rc(dir), EG_EFORMAT);
		poke_meta(dir, "slots", "\x0b\0\0\0\0\0\0\0", 8); /* a chunk missing */
		{
			eg_table *t;
			eg_snapshot *s;

			OK(eg_table_open(dir, &t));
			ck_assert_int_eq(eg_snapshot_open(t, 0, &s), EG_EFORMAT);
			eg_table_close(t);
		}
		poke_meta(dir, "slots", "\x0a\0\0\0\0\0\0\0", 8);
		poke_meta(dir, "dtype", "f64", 3);
		ck_assert_int_eq(open_rc(dir), EG_EFORMAT);
		poke_meta(dir, "dtype", "u8", 2);
		poke_meta(dir, "row_bytes", "\x05\0\0\0", 4);
		ck_assert_int_eq(open_rc(dir), EG_EFORMAT);
		poke_meta(dir, "row_bytes", "\x04\0\0\0", 4);
		ck_assert_int_eq(open_rc(dir), 0);
		/* a truncated file */
		free(data);
		ck_assert(asprintf(&data, "%s/data.mdb", dir) > 0);
		ck_assert_int_eq(truncate(data, 100), 0);
		ck_assert_int_eq(open_rc(dir), EG_ENOTTABLE);
		free(data);
	}
}
END_TEST

START_TEST(test_symlink_and_disk_bytes)
{
	char *v1 = egt_path("v1"), *cur, *real;
	eg_table *t;
	uint64_t disk;

	egt_make_table(v1, "s", 1000, 128, 256, 1);
	ck_assert(asprintf(&cur, "%s/../cur", v1) > 0);
	ck_assert_int_eq(symlink(v1, cur), 0);
	OK(eg_table_open(cur, &t));
	real = realpath(v1, NULL);
	ck_assert_str_eq(eg_table_path(t), real);
	OK(eg_table_disk_bytes(t, &disk));
	ck_assert_uint_ge(disk, 1000 * 128);
	ck_assert_uint_lt(disk, 4 << 20);
	eg_table_close(t);
	free(real);
	free(cur);
}
END_TEST

struct gather_job {
	const eg_snapshot *s;
	unsigned seed;
	int ok;
};

static void *gather_thread(void *arg)
{
	struct gather_job *j = arg;
	uint64_t q[256];
	uint8_t out[256 * 32], want[32];

	j->ok = 1;
	for (int round = 0; round < 200; round++) {
		for (int i = 0; i < 256; i++)
			q[i] = (uint64_t)rand_r(&j->seed) % 20000;
		if (eg_snapshot_gather(j->s, q, 256, out, NULL))
			j->ok = 0;
		for (int i = 0; i < 256; i++) {
			egt_row_bytes(8, q[i], 32, want);
			if (memcmp(out + i * 32, want, 32))
				j->ok = 0;
		}
	}
	return NULL;
}

START_TEST(test_threads_share_snapshot)
{
	char *dir = egt_path("t");
	eg_table *t;
	eg_snapshot *s;
	pthread_t th[4];
	struct gather_job jobs[4];

	egt_make_table(dir, "th", 20000, 32, 1024, 8);
	s = open_snap(dir, &t, 0);
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct gather_job){ s, (unsigned)i + 1, 0 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, gather_thread, &jobs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert(jobs[i].ok);
	}
	eg_snapshot_close(s);
	eg_table_close(t);
}
END_TEST

START_TEST(test_strerror)
{
	static const int codes[] = { EG_ENOTTABLE, EG_EFORMAT, EG_ERANGE, EG_ECHECKSUM,
	                             EG_EINVAL, EG_EEXIST, EG_EHASH, EG_ETOKEN, EG_ECORRUPT };

	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
		for (size_t j = 0; j < i; j++)
			ck_assert_str_ne(eg_strerror(codes[i]), eg_strerror(codes[j]));
	ck_assert_str_eq(eg_strerror(-ENOENT), strerror(ENOENT));
	ck_assert_str_eq(eg_strerror(MDB_MAP_FULL), mdb_strerror(MDB_MAP_FULL));
	ck_assert_ptr_nonnull(eg_strerror(-39950));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("storage");
	TCase *tc = tcase_create("storage");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_roundtrip_dtypes, 0, sizeof layouts / sizeof layouts[0]);
	tcase_add_test(tc, test_chunk_edges);
	tcase_add_test(tc, test_gather_row_sizes);
	tcase_add_test(tc, test_out_of_range);
	tcase_add_test(tc, test_verify_flipped_byte);
	tcase_add_test(tc, test_update_in_place);
	tcase_add_test(tc, test_update_grows_map);
	tcase_add_test(tc, test_failing_build);
	tcase_add_test(tc, test_interrupted_build);
	tcase_add_test(tc, test_builder_misuse);
	tcase_add_test(tc, test_hash_spec_and_progress);
	tcase_add_test(tc, test_not_a_table);
	tcase_add_test(tc, test_symlink_and_disk_bytes);
	tcase_add_test(tc, test_threads_share_snapshot);
	tcase_add_test(tc, test_strerror);
	suite_add_tcase(s, tc);
	tc = tcase_create("big"); /* CK_RUN_CASE=big runs it alone */
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_more_than_4g_slots);
	suite_add_tcase(s, tc);
	return egt_run_suite(s);
}
