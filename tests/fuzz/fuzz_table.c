/* libFuzzer harness: opening and checking a damaged table. The input is a
 * table's data.mdb (the seeds are good and damaged tables written by
 * tests/unit/check_table_check.c). It runs the path that must never crash,
 * as the daemon and the engram command take it: the isolated check (a
 * forked child here) and, only when that passes, opening the table in this
 * process with checksums and reading every row. The page walk also runs in
 * this process on every input: it must not fault whatever the bytes, and
 * here libFuzzer sees its coverage (a child's it does not). */
// fuzz-sources: storage/*.c
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eg_table.h"
#include "table_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/fuzz-table-XXXXXX";
static char data_path[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!mkdtemp(dir))
		abort();
	snprintf(data_path, sizeof data_path, "%s/data.mdb", dir);
	atexit(cleanup);
	return 0;
}

/* Reads every row of every slot, as lookups would. */
static void read_all(const eg_snapshot *s)
{
	const eg_meta *m = eg_snapshot_meta(s);
	uint64_t slots[256], sum = 0;
	uint8_t *out = malloc(256 * (size_t)m->row_bytes);

	if (!out)
		abort();
	for (uint64_t first = 0; first < m->slots; first += 256) {
		size_t n = m->slots - first < 256 ? (size_t)(m->slots - first) : 256;

		for (size_t i = 0; i < n; i++)
			slots[i] = first + i;
		if (eg_snapshot_gather(s, slots, n, out, NULL))
			abort();
		for (size_t i = 0; i < n * m->row_bytes; i++)
			sum += out[i];
	}
	free(out);
	if (sum == 1) /* keeps the reads */
		fputc(0, stderr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct eg__report r = { NULL, NULL, 0 };
	eg_table *t;
	eg_snapshot *s;
	int fd = open(data_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	fd = open(data_path, O_RDONLY);
	if (fd < 0)
		abort();
	if (eg__check_metas(fd, &r) == 0)
		eg__check_trees(fd, 0, &r);
	close(fd);

	if (eg_table_check_isolated(dir, EG_CHECK_CHECKSUMS, NULL, NULL, NULL) != 0)
		return 0;
	/* passed: from here on nothing may fail, let alone fault */
	if (eg_table_open(dir, &t) != 0)
		abort();
	if (eg_snapshot_open(t, 1, &s) != 0)
		abort();
	read_all(s);
	eg_snapshot_close(s);
	eg_table_close(t);
	return 0;
}
