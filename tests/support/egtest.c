/* egtest.c - shared test helpers: suites in fork mode, temporary
 * directories, and tables built from the reference rows (reference.c). The
 * daemon helpers (egt_daemon_*) live in daemon.c. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include "egtest.h"
#include "eg_hash.h"

int egt_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int egt_exit_status(const char *cmd)
{
	int st = system(cmd);

	ck_assert_msg(st != -1 && WIFEXITED(st), "%s: did not exit (status %d)", cmd, st);
	return WEXITSTATUS(st);
}

/* Directories made by this process; removed at its exit only (a forked
 * child that calls exit() must not remove its parent's). */
static struct tmpdir {
	char *path;
	pid_t owner;
	struct tmpdir *next;
} *tmpdirs;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void cleanup(void)
{
	if (getenv("EGT_KEEP"))
		return;
	for (struct tmpdir *d = tmpdirs; d; d = d->next)
		if (d->owner == getpid())
			nftw(d->path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *egt_tmpdir(void)
{
	static int registered;
	const char *base = getenv("TMPDIR");
	struct tmpdir *d;
	char *path;

	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&path, "%s/egt-XXXXXX", base) < 0)
		abort();
	if (!mkdtemp(path)) {
		fprintf(stderr, "egt_tmpdir: mkdtemp %s: %s\n", path, strerror(errno));
		abort();
	}
	d = malloc(sizeof *d);
	if (!d)
		abort();
	d->path = path;
	d->owner = getpid();
	d->next = tmpdirs;
	tmpdirs = d;
	if (!registered) {
		registered = 1;
		atexit(cleanup);
	}
	return path;
}

/* Paths handed out; kept reachable so leak checkers stay quiet about the
 * strings the callers never free (by contract). */
static struct held_path {
	char *path;
	struct held_path *next;
} *held_paths;

char *egt_path(const char *name)
{
	struct held_path *h = malloc(sizeof *h);

	if (!h || asprintf(&h->path, "%s/%s", egt_tmpdir(), name) < 0)
		abort();
	h->next = held_paths;
	held_paths = h;
	return h->path;
}

/* Builds the u8 table m describes in dir, row of slot s egt_row_bytes(seed, s). */
static void fill_table(const char *dir, eg_meta *m, uint64_t seed)
{
	eg_builder *b;
	uint64_t slot = 0;
	int rc;

	m->dtype = EG_DTYPE_U8;
	if (m->chunk_slots == 0)
		m->chunk_slots = EG_DEFAULT_CHUNK_SLOTS;
	rc = eg_builder_open(dir, m, &b);
	ck_assert_msg(rc == 0, "eg_builder_open %s: %s", dir, eg_strerror(rc));
	for (uint64_t c = 0; c < eg_builder_chunks(b); c++) {
		uint64_t rows = eg_builder_chunk_rows(b, c);
		uint8_t *p;

		rc = eg_builder_next_chunk(b, (void **)&p);
		ck_assert_msg(rc == 0, "eg_builder_next_chunk: %s", eg_strerror(rc));
		for (uint64_t r = 0; r < rows; r++, slot++)
			egt_row_bytes(seed, slot, m->dim, p + r * m->dim);
	}
	rc = eg_builder_finish(b);
	ck_assert_msg(rc == 0, "eg_builder_finish: %s", eg_strerror(rc));
}

void egt_make_table_gen(const char *dir, const char *name, uint64_t slots, uint32_t row_bytes,
                        uint64_t chunk_slots, uint64_t seed, uint64_t generation)
{
	eg_meta m = { 0 };

	snprintf(m.name, sizeof m.name, "%s", name);
	m.slots = slots;
	m.dim = row_bytes;
	m.chunk_slots = chunk_slots;
	m.generation = generation;
	fill_table(dir, &m, seed);
}

void egt_make_table(const char *dir, const char *name, uint64_t slots,
                    uint32_t row_bytes, uint64_t chunk_slots, uint64_t seed)
{
	egt_make_table_gen(dir, name, slots, row_bytes, chunk_slots, seed, 0);
}

void egt_skip(const char *name, const char *why)
{
	const char *skips = getenv("EGT_SKIPS");
	const char *prog = program_invocation_short_name;
	FILE *f;

	fprintf(stderr, "%s/%s: SKIPPED: %s\n", prog, name, why);
	if (!skips || !*skips)
		return;
	f = fopen(skips, "a");
	if (f) {
		fprintf(f, "%s/%s\t%s\n", prog, name, why);
		fclose(f);
	}
}

void egt_make_spec_table(const char *dir, const char *name, const char *spec,
                         uint32_t row_bytes, uint64_t chunk_slots, uint64_t seed)
{
	eg_meta m = { 0 };
	eg_hash *h;
	char err[200];

	ck_assert_msg(eg_hash_parse(spec, NULL, &h, err, sizeof(err)) == 0, "%s", err);
	snprintf(m.name, sizeof(m.name), "%s", name);
	m.slots = eg_hash_table_slots(h);
	eg_hash_free(h);
	m.dim = row_bytes;
	m.chunk_slots = chunk_slots;
	m.hash_spec = (char *)spec;
	fill_table(dir, &m, seed);
}

void egt_make_hash_table(const char *dir, const char *name, uint32_t row_bytes,
                         uint64_t seed, struct eg_hash **hash)
{
	egt_make_spec_table(dir, name, EGT_HASH_SPEC, row_bytes, 1024, seed);
	if (hash)
		ck_assert_int_eq(eg_hash_parse(EGT_HASH_SPEC, NULL, hash, NULL, 0), 0);
}

double egt_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double egt_now_ms(void)
{
	return egt_now() * 1e3;
}

static uint64_t rng_state = 88172645463325252ull;

uint64_t egt_rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}
