/* rowdir.c - where a snapshot's rows are in the data file, for readers that
 * do their own I/O. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <unistd.h>
#include "eg_table.h"
#include "table_int.h"

/* Where the data file's mapping starts: LMDB does not say (me_mapaddr is
 * only set for MDB_FIXEDMAP), so look up the mapping that holds a row
 * pointer in /proc/self/maps and check it maps this very file. NULL when it
 * cannot be found; the caller then has no file offsets. */
static const uint8_t *map_base(int fd, const void *inside)
{
	uintptr_t p = (uintptr_t)inside;
	const uint8_t *base = NULL;
	struct stat st;
	char *line = NULL;
	size_t cap = 0;
	FILE *f;

	if (fstat(fd, &st) || !(f = fopen("/proc/self/maps", "re")))
		return NULL;
	while (getline(&line, &cap, f) > 0) {
		unsigned long lo, hi, off, ino;
		unsigned maj, min;

		if (sscanf(line, "%lx-%lx %*s %lx %x:%x %lu", &lo, &hi, &off, &maj, &min, &ino) != 6)
			continue;
		if (p < lo || p >= hi)
			continue;
		if (ino == st.st_ino && makedev(maj, min) == st.st_dev && lo >= off)
			base = (const uint8_t *)(lo - off);
		break;
	}
	free(line);
	fclose(f);
	return base;
}

void eg_snapshot_rowdir(const eg_snapshot *s, eg_rowdir *out)
{
	struct stat st;
	int fd;

	out->chunks = (const uint8_t *const *)s->dir;
	out->nchunks = s->nchunks;
	out->shift = s->shift;
	out->mask = s->mask;
	out->row_bytes = s->row_bytes;
	out->slots = s->meta.slots;
	out->map = NULL;
	out->file_bytes = 0;
	if (mdb_env_get_fd(s->t->env, &fd) == 0 && fstat(fd, &st) == 0) {
		out->file_bytes = (uint64_t)st.st_size;
		if (s->nchunks)
			out->map = map_base(fd, s->dir[0]);
	}
}

int eg_table_open_data(const eg_table *t, int flags)
{
	char *data = eg__join(t->path, "data.mdb");
	int fd;

	if (!data)
		return -ENOMEM;
	fd = open(data, O_RDONLY | O_CLOEXEC | flags);
	free(data);
	return fd < 0 ? -errno : fd;
}
