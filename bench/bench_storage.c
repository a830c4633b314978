/* bench_storage.c - random gathers from a table snapshot against plain
 * memcpy from an anonymous mapping holding the same rows.
 *
 *   bench_storage [--slots N] [--row-bytes B] [--batch K] [--rows R]
 *                 [--rounds N] [--huge] [DIR]
 *
 * The table bench-<slots>x<bytes> is built in a fresh directory removed at
 * the end (under $BENCH_DIR, default /var/tmp), like every bench's; with
 * DIR it is built there once and reused by later runs. Both sides are
 * warmed, then timed alternately round by round so drift on a shared
 * machine hits both; the median round of each is reported. --huge asks for
 * transparent huge pages (MADV_HUGEPAGE) for the anonymous copy. Which
 * page sizes each side got is the kernel's choice: the huge-page share of
 * both mappings (AnonHugePages, FilePmdMapped of /proc/self/smaps_rollup)
 * is printed before the rounds. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "bench_util.h"
#include "eg_table.h"

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void progress(void *arg, uint64_t done, uint64_t total)
{
	(void)arg;
	if (done % 64 == 0 || done == total)
		fprintf(stderr, "\rbuilding: %lu/%lu chunks", (unsigned long)done,
		        (unsigned long)total);
}

static uint64_t rng(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static int build(const char *dir, uint64_t slots, uint32_t rb)
{
	eg_meta m = { .name = "bench", .slots = slots, .dim = rb, .dtype = EG_DTYPE_U8,
	              .chunk_slots = EG_DEFAULT_CHUNK_SLOTS };
	eg_builder *b;
	int rc;

	if ((rc = eg_builder_open(dir, &m, &b)))
		return rc;
	eg_builder_set_progress(b, progress, NULL);
	for (uint64_t c = 0; c < eg_builder_chunks(b); c++) {
		uint8_t *p;

		if ((rc = eg_builder_next_chunk(b, (void **)&p))) {
			eg_builder_abort(b);
			return rc;
		}
		uint64_t st = c, len = eg_builder_chunk_rows(b, c) * rb, i;

		/* any bytes do: the baseline copies them from the table */
		for (i = 0; i + 8 <= len; i += 8) {
			uint64_t v = rng(&st);

			memcpy(p + i, &v, 8);
		}
		for (; i < len; i++)
			p[i] = (uint8_t)rng(&st);
	}
	rc = eg_builder_finish(b);
	fprintf(stderr, "\n");
	return rc;
}

/* The baselines: what a process with the rows in its own memory would do,
 * plainly and with the same prefetching the table's gather does. */
static inline __attribute__((always_inline)) void
copy_rows(const uint8_t *base, const uint64_t *q, size_t n, uint8_t *out,
          const size_t rb, const int pf)
{
	size_t i = 0;

	if (pf) {
		for (; i + 8 < n; i++) {
			__builtin_prefetch(base + q[i + 8] * rb);
			__builtin_prefetch(base + q[i + 8] * rb + rb - 1);
			memcpy(out + i * rb, base + q[i] * rb, rb);
		}
	}
	for (; i < n; i++)
		memcpy(out + i * rb, base + q[i] * rb, rb);
}

static void memcpy_gather(const uint8_t *base, const uint64_t *q, size_t n,
                          uint8_t *out, size_t rb, int pf)
{
	switch (rb * 2 + !!pf) {
	case 128: copy_rows(base, q, n, out, 64, 0); break;
	case 129: copy_rows(base, q, n, out, 64, 1); break;
	case 256: copy_rows(base, q, n, out, 128, 0); break;
	case 257: copy_rows(base, q, n, out, 128, 1); break;
	case 512: copy_rows(base, q, n, out, 256, 0); break;
	case 513: copy_rows(base, q, n, out, 256, 1); break;
	default: copy_rows(base, q, n, out, rb, pf); break;
	}
}

/* Page sizes behind the two mappings explain much of a difference. */
static void print_mapping_sizes(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];

	if (!f)
		return;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "AnonHugePages:", 14) || !strncmp(line, "FilePmdMapped:", 14))
			fprintf(stderr, "%s", line);
	fclose(f);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	uint64_t slots = UINT64_C(16) << 20, rows = UINT64_C(4) << 20, seed = 7;
	uint32_t rb = 128, batch = 4096;
	int rounds = 5, huge = 0, rc;
	static const struct option opts[] = {
		{ "slots", 1, NULL, 's' }, { "row-bytes", 1, NULL, 'b' },
		{ "batch", 1, NULL, 'k' }, { "rows", 1, NULL, 'r' },
		{ "rounds", 1, NULL, 'n' }, { "huge", 0, NULL, 'H' }, { 0, 0, 0, 0 },
	};
	const char *base = NULL; /* DIR */
	char dir[4096];
	eg_table *t;
	eg_snapshot *s;
	uint8_t *anon, *out;
	uint64_t *q;
	double *tt, *tm, *tp, t0;

	for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
		switch (c) {
		case 's': slots = strtoull(optarg, NULL, 0); break;
		case 'b': rb = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'k': batch = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'r': rows = strtoull(optarg, NULL, 0); break;
		case 'n': rounds = atoi(optarg); break;
		case 'H': huge = 1; break;
		default: return 2;
		}
	}
	if (optind < argc)
		base = argv[optind];
	if (!base || !*base)
		base = bu_tmpdir(); /* removed at exit */
	if (!slots || !rb || !batch || rounds < 1) {
		fprintf(stderr, "bench_storage: bad arguments\n");
		return 2;
	}
	rows = (rows + batch - 1) / batch * batch;
	snprintf(dir, sizeof dir, "%s/bench-%lux%u", base, (unsigned long)slots, rb);

	rc = eg_table_open(dir, &t);
	if (rc == 0) {
		eg_snapshot *chk;

		if (eg_snapshot_open(t, 0, &chk) == 0) {
			const eg_meta *m = eg_snapshot_meta(chk);

			if (m->slots != slots || m->row_bytes != rb)
				rc = EG_EFORMAT;
			eg_snapshot_close(chk);
		}
		if (rc) {
			eg_table_close(t);
			fprintf(stderr, "%s holds another table\n", dir);
			return 1;
		}
		fprintf(stderr, "reusing %s\n", dir);
	} else {
		t0 = now();
		if ((rc = build(dir, slots, rb)) || (rc = eg_table_open(dir, &t))) {
			fprintf(stderr, "build %s: %s\n", dir, eg_strerror(rc));
			return 1;
		}
		fprintf(stderr, "built %s in %.1f s\n", dir, now() - t0);
	}
	if ((rc = eg_snapshot_open(t, 0, &s))) {
		fprintf(stderr, "snapshot: %s\n", eg_strerror(rc));
		return 1;
	}

	/* the same rows in anonymous memory */
	anon = mmap(NULL, slots * rb, PROT_READ | PROT_WRITE,
	            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	if (huge)
		madvise(anon, slots * rb, MADV_HUGEPAGE);
	t0 = now();
	for (uint64_t i = 0; i < slots; i++)
		memcpy(anon + i * rb, eg_snapshot_row(s, i), rb); /* warms the table too */
	fprintf(stderr, "warmed table and copy in %.1f s\n", now() - t0);

	q = malloc(rows * sizeof *q);
	out = malloc((size_t)batch * rb);
	tt = malloc(rounds * sizeof *tt);
	tm = malloc(rounds * sizeof *tm);
	tp = malloc(rounds * sizeof *tp);
	if (!q || !out || !tt || !tm || !tp)
		return 1;
	for (uint64_t i = 0; i < rows; i++)
		q[i] = rng(&seed) % slots;

	print_mapping_sizes();
	/* one untimed pass each, then alternate */
	for (int r = -1; r < rounds; r++) {
		t0 = now();
		for (uint64_t i = 0; i < rows; i += batch)
			if (eg_snapshot_gather(s, q + i, batch, out, NULL))
				return 1;
		if (r >= 0)
			tt[r] = now() - t0;
		t0 = now();
		for (uint64_t i = 0; i < rows; i += batch)
			memcpy_gather(anon, q + i, batch, out, rb, 0);
		if (r >= 0)
			tm[r] = now() - t0;
		t0 = now();
		for (uint64_t i = 0; i < rows; i += batch)
			memcpy_gather(anon, q + i, batch, out, rb, 1);
		if (r >= 0) {
			tp[r] = now() - t0;
			printf("round %d: table %.2f, memcpy %.2f, memcpy+prefetch %.2f M rows/s\n",
			       r, rows / tt[r] / 1e6, rows / tm[r] / 1e6, rows / tp[r] / 1e6);
		}
	}
	/* the gathered bytes must be the same rows */
	if (eg_snapshot_gather(s, q + rows - batch, batch, out, NULL))
		return 1;
	for (uint64_t i = 0; i < batch; i++)
		if (memcmp(anon + q[rows - batch + i] * rb, out + i * rb, rb))
			return 1;
	qsort(tt, rounds, sizeof *tt, cmp_double);
	qsort(tm, rounds, sizeof *tm, cmp_double);
	qsort(tp, rounds, sizeof *tp, cmp_double);
	{
		double mt = tt[rounds / 2], mm = tm[rounds / 2], mp = tp[rounds / 2];

		printf("%lu slots x %u B, batches of %u, %lu rows per round, %d rounds (median):\n",
		       (unsigned long)slots, rb, batch, (unsigned long)rows, rounds);
		printf("table            %7.2f M rows/s  %5.2f GB/s\n", rows / mt / 1e6,
		       rows * rb / mt / 1e9);
		printf("memcpy           %7.2f M rows/s  %5.2f GB/s  (anonymous mmap%s)\n",
		       rows / mm / 1e6, rows * rb / mm / 1e9,
		       huge ? ", MADV_HUGEPAGE" : ", no madvise");
		printf("memcpy+prefetch  %7.2f M rows/s  %5.2f GB/s\n", rows / mp / 1e6,
		       rows * rb / mp / 1e9);
		printf("ratio table/memcpy %.3f, table/memcpy+prefetch %.3f\n", mm / mt, mp / mt);
	}
	munmap(anon, slots * rb);
	eg_snapshot_close(s);
	eg_table_close(t);
	free(q);
	free(out);
	free(tt);
	free(tm);
	free(tp);
	return 0;
}
