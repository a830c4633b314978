/* rowdir.c - where a snapshot's rows are in the data file, for readers that
 * do their own I/O. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include "eg_table.h"
#include "table_int.h"

void eg_snapshot_rowdir(const eg_snapshot *s, eg_rowdir *out)
{
	out->chunks = (const uint8_t *const *)s->dir;
	out->nchunks = s->nchunks;
	out->shift = s->shift;
	out->mask = s->mask;
	out->row_bytes = s->row_bytes;
	out->slots = s->meta.slots;
	out->map = s->map;  /* found and every chunk checked against the file at open */
	out->file_bytes = s->file_bytes;
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
