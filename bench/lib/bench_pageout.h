/* bench_pageout.h - pages of a file out of another process's memory, as a
 * proactive reclaimer (DAMON's pageout scheme, senpai) does on a busy host:
 * process_madvise(MADV_PAGEOUT) on the process's mappings of the file, so a
 * page it has mapped leaves the page cache too (posix_fadvise alone skips
 * mapped pages). Needs CAP_SYS_NICE and ptrace access to the process (root).
 */
#ifndef BENCH_PAGEOUT_H
#define BENCH_PAGEOUT_H

#include <stdint.h>
#include <sys/types.h>

typedef struct bu_pageout {
	int pidfd;
	uint64_t lo[4], len[4]; /* the process's mappings of the file */
	unsigned n_maps;
	uint64_t file_pages;    /* pages of the file when opened */
	uint64_t done;          /* pages asked out so far */
} bu_pageout;

/* Finds pid's mappings of path (from /proc/PID/maps). Dies with a message
 * when the process has none or the kernel refuses a pidfd. */
void bu_pageout_open(bu_pageout *po, pid_t pid, const char *path);
/* Asks n random pages of the file out of every mapping (seed: a bu_rand
 * state); a page not resident, or mapped by another process too, stays as
 * it is. Returns n; dies when process_madvise is refused. */
uint64_t bu_pageout_random(bu_pageout *po, unsigned n, uint64_t *seed);
void bu_pageout_close(bu_pageout *po);

#endif
