/* egtest.c - shared test helpers: suites in fork mode, temporary
 * directories, reference rows and tables built from them. The daemon
 * helpers (egt_daemon_*) live in daemon.c. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
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

/* splitmix64: a cheap stream seeded by the hash of (seed, slot) */
static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

void egt_row_bytes(uint64_t seed, uint64_t slot, uint32_t row_bytes, void *out)
{
	uint8_t key[16], *o = out;
	uint64_t st;

	for (int i = 0; i < 8; i++) {
		key[i] = (uint8_t)(seed >> (8 * i));
		key[8 + i] = (uint8_t)(slot >> (8 * i));
	}
	st = XXH64(key, sizeof key, 0);
	while (row_bytes >= 8) {
		uint64_t v = splitmix(&st);

		memcpy(o, &v, 8);
		o += 8;
		row_bytes -= 8;
	}
	if (row_bytes) {
		uint64_t v = splitmix(&st);

		memcpy(o, &v, row_bytes);
	}
}

void egt_make_table(const char *dir, const char *name, uint64_t slots,
                    uint32_t row_bytes, uint64_t chunk_slots, uint64_t seed)
{
	eg_meta m;
	eg_builder *b;
	int rc;

	memset(&m, 0, sizeof m);
	snprintf(m.name, sizeof m.name, "%s", name);
	m.slots = slots;
	m.dim = row_bytes;
	m.dtype = EG_DTYPE_U8;
	if (chunk_slots == 0)
		chunk_slots = EG_DEFAULT_CHUNK_SLOTS;
	m.chunk_slots = chunk_slots;
	rc = eg_builder_open(dir, &m, &b);
	ck_assert_msg(rc == 0, "eg_builder_open %s: %s", dir, eg_strerror(rc));
	for (uint64_t c = 0; c < eg_builder_chunks(b); c++) {
		uint64_t rows = eg_builder_chunk_rows(b, c), first = c * chunk_slots;
		uint8_t *p;

		rc = eg_builder_next_chunk(b, (void **)&p);
		ck_assert_msg(rc == 0, "eg_builder_next_chunk: %s", eg_strerror(rc));
		for (uint64_t r = 0; r < rows; r++)
			egt_row_bytes(seed, first + r, row_bytes, p + r * row_bytes);
	}
	rc = eg_builder_finish(b);
	ck_assert_msg(rc == 0, "eg_builder_finish: %s", eg_strerror(rc));
}

void egt_make_hash_table(const char *dir, const char *name, uint32_t row_bytes,
                         uint64_t seed, struct eg_hash **hash)
{
	eg_meta m = { 0 };
	eg_builder *b;
	char err[200];
	void *rows;
	uint64_t slot = 0;

	ck_assert_msg(eg_hash_parse(EGT_HASH_SPEC, NULL, hash, err, sizeof(err)) == 0, "%s", err);
	snprintf(m.name, sizeof(m.name), "%s", name);
	m.slots = eg_hash_table_slots(*hash);
	m.dim = row_bytes;
	m.dtype = EG_DTYPE_U8;
	m.chunk_slots = 1024;
	m.hash_spec = (char *)EGT_HASH_SPEC;
	ck_assert_int_eq(eg_builder_open(dir, &m, &b), 0);
	for (uint64_t ch = 0; ch < eg_builder_chunks(b); ch++) {
		uint64_t k = eg_builder_chunk_rows(b, ch);

		ck_assert_int_eq(eg_builder_next_chunk(b, &rows), 0);
		for (uint64_t i = 0; i < k; i++, slot++)
			egt_row_bytes(seed, slot, row_bytes, (unsigned char *)rows + i * row_bytes);
	}
	ck_assert_int_eq(eg_builder_finish(b), 0);
}
