/* bench_pageout.c - see bench_pageout.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench_pageout.h"
#include "bench_util.h"

void bu_pageout_open(bu_pageout *po, pid_t pid, const char *path)
{
	char maps[64], line[1024], real[PATH_MAX];
	struct stat st;
	FILE *f;

	memset(po, 0, sizeof(*po));
	if (!realpath(path, real) || stat(real, &st))
		bu_die("pageout: cannot stat %s: %s", path, strerror(errno));
	po->file_pages = (uint64_t)st.st_size / 4096;
	snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)pid);
	if (!(f = fopen(maps, "r")))
		bu_die("pageout: cannot read %s: %s", maps, strerror(errno));
	while (fgets(line, sizeof(line), f) && po->n_maps < 4) {
		unsigned long lo, hi, off;
		char *name = strchr(line, '/');

		if (!name || sscanf(line, "%lx-%lx %*s %lx", &lo, &hi, &off) != 3 || off != 0)
			continue;
		name[strcspn(name, "\n")] = '\0';
		if (strcmp(name, real))
			continue;
		po->lo[po->n_maps] = lo;
		po->len[po->n_maps++] = hi - lo;
	}
	fclose(f);
	if (!po->n_maps)
		bu_die("pageout: process %d does not map %s", (int)pid, real);
	if ((po->pidfd = pidfd_open(pid, 0)) < 0)
		bu_die("pageout: pidfd_open: %s", strerror(errno));
}

uint64_t bu_pageout_random(bu_pageout *po, unsigned n, uint64_t *seed)
{
	struct iovec iov[64];
	uint64_t took = 0;

	while (n) {
		unsigned k = 0, pages = 0;

		/* each page out of every mapping: a page stays cached while one maps it */
		for (; pages < n && k + po->n_maps <= 64; pages++) {
			uint64_t pg = bu_rand(seed) % po->file_pages;

			for (unsigned m = 0; m < po->n_maps; m++) {
				if (pg * 4096 >= po->len[m])
					continue;
				iov[k].iov_base = (void *)(uintptr_t)(po->lo[m] + pg * 4096);
				iov[k++].iov_len = 4096;
			}
		}
		if (k && process_madvise(po->pidfd, iov, k, MADV_PAGEOUT, 0) < 0)
			bu_die("pageout: process_madvise: %s", strerror(errno));
		took += pages;
		n -= pages;
	}
	po->done += took;
	return took;
}

void bu_pageout_close(bu_pageout *po)
{
	if (po->pidfd > 0)
		close(po->pidfd);
	po->pidfd = -1;
}
