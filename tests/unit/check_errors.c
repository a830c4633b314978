/* check_errors.c - the storage error contract (eg_table.h): whatever LMDB
 * returns, a failure leaves storage/ as a negative errno, an MDB_* code or
 * an EG_E* code, never positive. LMDB reports a full disk as ENOSPC
 * (positive); the write seams (table_int.h) inject exactly that, and
 * MDB_MAP_FULL, at every write and commit of a build and of an update. */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include "egtest.h"
#include "table_int.h"

static int fail_at;   /* index of the seam call that fails */
static int calls;     /* seam calls so far */
static int fail_code; /* what the failing call returns, as LMDB would */

static int failing_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v, unsigned f)
{
	if (calls++ == fail_at)
		return fail_code;
	return mdb_put(txn, dbi, k, v, f);
}

static int failing_commit(MDB_txn *txn)
{
	if (calls++ == fail_at) {
		mdb_txn_abort(txn); /* a failed commit frees its transaction */
		return fail_code;
	}
	return mdb_txn_commit(txn);
}

static void arm(int use_commit, int at, int code)
{
	eg__put = use_commit ? mdb_put : failing_put;
	eg__commit = use_commit ? failing_commit : mdb_txn_commit;
	fail_at = at;
	fail_code = code;
	calls = 0;
}

static void disarm(void)
{
	eg__put = mdb_put;
	eg__commit = mdb_txn_commit;
}

static int build(const char *dir)
{
	eg_meta m = { .name = "e", .slots = 600, .dim = 16, .dtype = EG_DTYPE_U8,
	              .chunk_slots = 64 };
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
			egt_row_bytes(1, c * 64 + r, 16, p + r * 16);
	}
	return eg_builder_finish(b);
}

static uint64_t generation(const char *dir)
{
	eg_table *t;
	eg_snapshot *s;
	uint64_t g;

	ck_assert_int_eq(eg_table_open(dir, &t), 0);
	ck_assert_int_eq(eg_snapshot_open(t, 1, &s), 0);
	g = eg_snapshot_meta(s)->generation;
	eg_snapshot_close(s);
	eg_table_close(t);
	return g;
}

/* Fails the k-th seam call of a build for every k until a build gets
 * through; returns how many calls a build makes. */
static int fail_every_build_call(int use_commit, int code, int want)
{
	char *dir = egt_path("t");
	eg_table *t;
	int k, rc;

	/* the large-build path: writes into the map, commits every 4 KiB */
	eg__build_writemap_min = 0;
	eg__build_commit_bytes = 4096;
	for (k = 0;; k++) {
		arm(use_commit, k, code);
		rc = build(dir);
		disarm();
		if (rc == 0)
			break;
		ck_assert_msg(rc == want, "%s call %d failing with %d gave %d (%s)",
		              use_commit ? "commit" : "put", k, code, rc, eg_strerror(rc));
		ck_assert_int_eq(eg_table_open(dir, &t), EG_ENOTTABLE);
	}
	ck_assert_int_gt(k, 1);
	return k;
}

START_TEST(test_build_positive_errno)
{
	int puts = fail_every_build_call(0, ENOSPC, -ENOSPC);
	int commits = fail_every_build_call(1, ENOSPC, -ENOSPC);

	/* every chunk and every checksum is a put; several commits */
	ck_assert_int_ge(puts, 2 * 10);
	ck_assert_int_ge(commits, 3);
	fail_every_build_call(0, EIO, -EIO);
	fail_every_build_call(1, EIO, -EIO);
}
END_TEST

START_TEST(test_build_map_full)
{
	fail_every_build_call(0, MDB_MAP_FULL, MDB_MAP_FULL);
	fail_every_build_call(1, MDB_MAP_FULL, MDB_MAP_FULL);
}
END_TEST

/* The same for eg_table_update: every put (a chunk, its checksum, the
 * generation) and the commit; nothing is written by a failed update. */
static void fail_every_update_call(int use_commit, int code, int want)
{
	char *dir = egt_path("t");
	uint64_t slots[3] = { 5, 300, 599 }, gen = 0;
	uint8_t rows[3 * 16];
	int k, rc;

	ck_assert_int_eq(build(dir), 0);
	for (int i = 0; i < 3; i++)
		egt_row_bytes(2, slots[i], 16, rows + i * 16);
	for (k = 0;; k++) {
		arm(use_commit, k, code);
		rc = eg_table_update(dir, slots, 3, rows, NULL, &gen);
		disarm();
		if (rc == 0)
			break;
		ck_assert_msg(rc == want, "%s call %d failing with %d gave %d (%s)",
		              use_commit ? "commit" : "put", k, code, rc, eg_strerror(rc));
		ck_assert_uint_eq(generation(dir), 1);
	}
	ck_assert_int_eq(k, use_commit ? 1 : 2 * 3 + 1);
	ck_assert_uint_eq(gen, 2);
	ck_assert_uint_eq(generation(dir), 2);
}

START_TEST(test_update_positive_errno)
{
	fail_every_update_call(0, ENOSPC, -ENOSPC);
	fail_every_update_call(1, ENOSPC, -ENOSPC);
	fail_every_update_call(1, EIO, -EIO);
	fail_every_update_call(0, MDB_MAP_FULL, MDB_MAP_FULL);
	fail_every_update_call(1, MDB_MAP_FULL, MDB_MAP_FULL);
}
END_TEST

/* eg_strerror names what comes out: ENOSPC reads as the disk being full. */
START_TEST(test_strerror_of_normalised)
{
	ck_assert_str_eq(eg_strerror(eg__mdb(ENOSPC)), strerror(ENOSPC));
	ck_assert_int_eq(eg__mdb(ENOSPC), -ENOSPC);
	ck_assert_int_eq(eg__mdb(MDB_MAP_FULL), MDB_MAP_FULL);
	ck_assert_int_eq(eg__mdb(0), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("errors");
	TCase *tc = tcase_create("errors");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_build_positive_errno);
	tcase_add_test(tc, test_build_map_full);
	tcase_add_test(tc, test_update_positive_errno);
	tcase_add_test(tc, test_strerror_of_normalised);
	suite_add_tcase(s, tc);
	return egt_run_suite(s);
}
