/* check_table_check.c - the table check (eg_table.h: eg_table_check*) on
 * real tables damaged by tests/support/lmdbfile.c the ways damaged files
 * come: each damage is refused with a description naming the chunk or
 * page, by the page walk in this process (it must never fault) and by the
 * isolated check (forked, and spawned as engramd does); good tables pass,
 * also while a writer commits; a chunk running past the end of the file is
 * refused by eg_snapshot_open even without the check; a child that crashes
 * or says nothing refuses the table.
 *
 * With EGT_SEED_DIR set, every damaged data.mdb is also copied there: that
 * is how tests/fuzz/corpus/fuzz_table/ was made. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "egtest.h"
#include "lmdbfile.h"
#include "table_int.h"

/* Two shapes: chunks of two overflow pages, and 400 one-row chunks kept
 * inside leaf pages (a rows tree of depth 2). */
static const struct shape {
	const char *name;
	uint64_t slots, chunk_slots;
	uint32_t row_bytes;
} shapes[] = {
	{ "overflow", 96, 32, 255 },
	{ "inline", 400, 1, 8 },
};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

struct heard {
	char text[8][600];
	unsigned n;
};

static void hear(void *arg, const char *problem)
{
	struct heard *h = arg;

	if (h->n < 8)
		snprintf(h->text[h->n], sizeof h->text[0], "%s", problem);
	h->n++;
}

/* Whether a heard problem names expect ("chunk 3" but not "chunk 31"). */
static int named(const struct heard *h, const char *expect)
{
	for (unsigned i = 0; i < h->n && i < 8; i++) {
		const char *p = strstr(h->text[i], expect);

		if (p && (p[strlen(expect)] < '0' || p[strlen(expect)] > '9'))
			return 1;
	}
	return 0;
}

static char *make(const struct shape *s, uint64_t seed)
{
	char *dir = egt_path(s->name);

	egt_make_table(dir, s->name, s->slots, s->row_bytes, s->chunk_slots, seed);
	return dir;
}

static void save_seed(const char *dir, const char *shape, const char *what)
{
	const char *out = getenv("EGT_SEED_DIR");
	char cmd[1200];

	if (!out)
		return;
	snprintf(cmd, sizeof cmd, "cp '%s/data.mdb' '%s/%s-%s.mdb'", dir, out, shape, what);
	ck_assert_int_eq(system(cmd), 0);
}

/* The page walk alone, in this process, as the fuzz harness runs it. */
static int walk_here(const char *dir, struct heard *h)
{
	struct eg__report r = { hear, h, 0 };
	char *data;
	int fd, rc;

	ck_assert(asprintf(&data, "%s/data.mdb", dir) > 0);
	fd = open(data, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	rc = eg__check_metas(fd, &r);
	if (rc == 0)
		rc = eg__check_trees(fd, 0, &r);
	close(fd);
	free(data);
	return rc;
}

START_TEST(test_good_tables_pass)
{
	for (size_t k = 0; k < NSHAPES; k++) {
		char *dir = make(&shapes[k], 1);
		struct heard h = { .n = 0 };

		ck_assert_int_eq(walk_here(dir, &h), 0);
		ck_assert_int_eq(eg_table_check(dir, EG_CHECK_CHECKSUMS, hear, &h), 0);
		ck_assert_int_eq(eg_table_check_isolated(dir, EG_CHECK_STRUCTURE, NULL, hear, &h), 0);
		ck_assert_int_eq(eg_table_check_isolated(dir, EG_CHECK_CHECKSUMS, NULL, hear, &h), 0);
		ck_assert_msg(h.n == 0, "%s: %s", shapes[k].name, h.text[0]);
		save_seed(dir, shapes[k].name, "good");
	}
}
END_TEST

/* Each damage, on each shape it fits: named, refused, never a crash. */
START_TEST(test_damage_refused)
{
	enum egt_damage kind = (enum egt_damage)_i;
	int tried = 0;

	for (size_t k = 0; k < NSHAPES; k++) {
		const struct shape *s = &shapes[k];
		uint64_t chunk = s->slots / s->chunk_slots / 2;
		struct heard h = { .n = 0 }, here = { .n = 0 }, light = { .n = 0 };
		char *dir = make(s, 1), expect[128];
		int sums_only = kind == EGT_CHUNK_GARBAGE, rc;

		if (!egt_damage_fits(dir, kind))
			continue;
		tried++;
		egt_damage(dir, kind, chunk, expect, sizeof expect);
		save_seed(dir, s->name, egt_damage_name(kind));

		rc = eg_table_check_isolated(dir, EG_CHECK_CHECKSUMS, NULL, hear, &h);
		ck_assert_msg(rc == (sums_only ? EG_ECHECKSUM : EG_ECORRUPT), "%s %s: %d %s",
		              s->name, egt_damage_name(kind), rc, eg_strerror(rc));
		ck_assert_msg(named(&h, expect), "%s %s: '%s' not in '%s'", s->name,
		              egt_damage_name(kind), expect, h.text[0]);
		ck_assert_msg(!strstr(h.text[0], "crashed"), "%s", h.text[0]);

		rc = walk_here(dir, &here);
		ck_assert_int_eq(rc, sums_only ? 0 : EG_ECORRUPT);
		if (!sums_only)
			ck_assert_msg(named(&here, expect), "walk: '%s' not in '%s'", expect,
			              here.text[0]);

		rc = eg_table_check_isolated(dir, EG_CHECK_STRUCTURE, NULL, hear, &light);
		ck_assert_int_eq(rc, sums_only ? 0 : EG_ECORRUPT);
	}
	ck_assert_int_gt(tried, 0);
}
END_TEST

/* The same through posix_spawn of engramd, as the daemon checks. */
START_TEST(test_spawned_like_the_daemon)
{
	const char *engramd = getenv("ENGRAMD");
	char *dir = make(&shapes[0], 2), expect[128], lvl[] = "2";
	char flag[] = "--check-table", lflag[] = "--level";
	char *argv[] = { (char *)(engramd ? engramd : "build/engramd"), flag, dir, lflag, lvl, NULL };
	struct heard h = { .n = 0 };

	ck_assert_int_eq(eg_table_check_isolated(dir, 2, argv, hear, &h), 0);
	ck_assert_uint_eq(h.n, 0);
	egt_damage(dir, EGT_CHUNK_PAST_EOF, 1, expect, sizeof expect);
	ck_assert_int_eq(eg_table_check_isolated(dir, 2, argv, hear, &h), EG_ECORRUPT);
	ck_assert_msg(named(&h, expect), "'%s' not in '%s'", expect, h.text[0]);
}
END_TEST

/* A child that dies or says nothing refuses the table, and says how. */
START_TEST(test_child_verdicts)
{
	char sh[] = "/bin/sh", c[] = "-c";
	char segv[] = "kill -SEGV $$", abrt[] = "echo 'mdb.c:42: Assertion failed'; kill -ABRT $$";
	char quiet[] = "exit 3", lies[] = "echo 'eg-check result 5'";
	char *argv[] = { sh, c, segv, NULL };
	char nothing[] = "/nonexistent/engramd";
	char *missing[] = { nothing, NULL };
	const char *dir = egt_tmpdir();
	struct heard h = { .n = 0 };

	ck_assert_int_eq(eg_table_check_isolated(dir, 1, argv, hear, &h), EG_ECORRUPT);
	ck_assert_msg(strstr(h.text[0], "the check crashed (signal 11"), "%s", h.text[0]);
	argv[2] = abrt;
	ck_assert_int_eq(eg_table_check_isolated(dir, 1, argv, hear, &h), EG_ECORRUPT);
	ck_assert_msg(strstr(h.text[1], "signal 6") && strstr(h.text[1], "Assertion failed"), "%s",
	              h.text[1]);
	argv[2] = quiet;
	ck_assert_int_eq(eg_table_check_isolated(dir, 1, argv, hear, &h), EG_ECORRUPT);
	ck_assert_msg(strstr(h.text[2], "exit status 3"), "%s", h.text[2]);
	argv[2] = lies; /* never a positive code out */
	ck_assert_int_eq(eg_table_check_isolated(dir, 1, argv, hear, &h), -5);
	ck_assert_int_eq(eg_table_check_isolated(dir, 1, missing, hear, &h), -ENOENT);
}
END_TEST

START_TEST(test_not_tables)
{
	char *junk = egt_path("junk"), *data, noise[65536];
	FILE *f;

	ck_assert_int_eq(eg_table_check("/nonexistent/engram", 1, NULL, NULL), -ENOENT);
	ck_assert_int_eq(eg_table_check(egt_tmpdir(), 1, NULL, NULL), EG_ENOTTABLE);
	ck_assert_int_eq(eg_table_check_isolated(egt_tmpdir(), 1, NULL, NULL, NULL), EG_ENOTTABLE);
	ck_assert_int_eq(mkdir(junk, 0755), 0);
	ck_assert(asprintf(&data, "%s/data.mdb", junk) > 0);
	for (size_t i = 0; i < sizeof noise; i++)
		noise[i] = (char)(i * 2654435761u >> 13);
	f = fopen(data, "wb");
	fwrite(noise, 1, sizeof noise, f);
	fclose(f);
	ck_assert_int_eq(eg_table_check(junk, 2, NULL, NULL), EG_ENOTTABLE);
	free(data);
}
END_TEST

/* Without the check, a chunk past the end of the file is refused when the
 * snapshot's directory is built, before any row pointer is used. */
START_TEST(test_snapshot_refuses_chunk_past_eof)
{
	char *dir = make(&shapes[0], 3), expect[128];
	struct heard h = { .n = 0 };
	eg_table *t;
	eg_snapshot *s = NULL;

	egt_damage(dir, EGT_CHUNK_PAST_EOF, 2, expect, sizeof expect);
	ck_assert_int_eq(eg_table_open(dir, &t), 0);
	ck_assert_int_eq(eg_snapshot_open_report(t, 0, hear, &h, &s), EG_EFORMAT);
	ck_assert_ptr_null(s);
	ck_assert_msg(named(&h, expect) && strstr(h.text[0], "outside the file"), "%s",
	              h.text[0]);
	ck_assert_int_eq(eg_snapshot_open(t, 1, &s), EG_EFORMAT);
	eg_table_close(t);
}
END_TEST

/* Many patches (free-list pages reused, old pages freed) never look like
 * damage, checked after them and while a writer commits. */
START_TEST(test_writer_never_looks_like_damage)
{
	const struct shape *s = &shapes[1];
	char *dir = make(s, 4);
	uint64_t slots[3] = { 0, 200, 399 };
	uint8_t rows[3 * 8];
	int status, rc, fails = 0;
	pid_t pid;

	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 3; i++)
			egt_row_bytes((uint64_t)round + 10, slots[i], 8, rows + i * 8);
		ck_assert_int_eq(eg_table_update(dir, slots, 3, rows, NULL, NULL), 0);
		ck_assert_int_eq(eg_table_check(dir, EG_CHECK_CHECKSUMS, NULL, NULL), 0);
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		for (int round = 0; round < 300; round++)
			if (eg_table_update(dir, slots, 3, rows, NULL, NULL))
				_exit(1);
		_exit(0);
	}
	for (int k = 0; k < 200; k++) {
		struct heard h = { .n = 0 };

		rc = eg_table_check(dir, EG_CHECK_CHECKSUMS, hear, &h);
		ck_assert_msg(rc == 0 || rc == -EAGAIN, "round %d: %d %s: %s", k, rc, eg_strerror(rc),
		              h.text[0]);
		fails += rc != 0;
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_lt(fails, 200);
	ck_assert_int_eq(eg_table_check(dir, EG_CHECK_CHECKSUMS, NULL, NULL), 0);
}
END_TEST

/* A build that commits many times through MDB_WRITEMAP, then patches
 * while another process pins the old pages (the free list grows instead of
 * being reused): still no problem found. */
START_TEST(test_large_build_and_pinned_patches_pass)
{
	char *dir = egt_path("big");
	uint64_t slots[4] = { 1, 999, 2500, 3999 };
	uint8_t rows[4 * 32];
	int ready[2], done[2], status;
	char c = 0;
	pid_t pid;

	eg__build_writemap_min = 0;
	eg__build_commit_bytes = 4096;
	egt_make_table(dir, "big", 4000, 32, 64, 5);
	ck_assert_int_eq(eg_table_check(dir, EG_CHECK_CHECKSUMS, NULL, NULL), 0);
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(done), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) { /* a reader holding generation 1 */
		eg_table *t;
		eg_snapshot *s;

		if (eg_table_open(dir, &t) || eg_snapshot_open(t, 0, &s) || write(ready[1], &c, 1) != 1)
			_exit(1);
		_exit(read(done[0], &c, 1) == 1 ? 0 : 1);
	}
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	for (int round = 0; round < 12; round++) {
		for (int i = 0; i < 4; i++)
			egt_row_bytes((uint64_t)round + 20, slots[i], 32, rows + i * 32);
		ck_assert_int_eq(eg_table_update(dir, slots, 4, rows, NULL, NULL), 0);
		ck_assert_int_eq(eg_table_check(dir, EG_CHECK_CHECKSUMS, NULL, NULL), 0);
	}
	ck_assert_int_eq(write(done[1], &c, 1), 1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(eg_table_update(dir, slots, 4, rows, NULL, NULL), 0);
	ck_assert_int_eq(eg_table_check(dir, EG_CHECK_CHECKSUMS, NULL, NULL), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("table_check");
	TCase *tc = tcase_create("table_check");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_good_tables_pass);
	tcase_add_loop_test(tc, test_damage_refused, 0, EGT_NDAMAGE);
	tcase_add_test(tc, test_spawned_like_the_daemon);
	tcase_add_test(tc, test_child_verdicts);
	tcase_add_test(tc, test_not_tables);
	tcase_add_test(tc, test_snapshot_refuses_chunk_past_eof);
	tcase_add_test(tc, test_writer_never_looks_like_damage);
	tcase_add_test(tc, test_large_build_and_pinned_patches_pass);
	suite_add_tcase(s, tc);
	return egt_run_suite(s);
}
