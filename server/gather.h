/* gather.h - copying a response's rows into place, cold rows included.
 *
 * A response's rows are cut into pieces of at most PIECE_BYTES. Each piece
 * runs on a gather thread (pool.h), in the urgent lane when the whole
 * request is small (--urgent-rows). A piece first sorts its rows into those
 * in memory and those that are not:
 *   - page-cache mode: a row is in memory when its pages are known resident
 *     (pager.h); the others' pages are read by the I/O thread (io.h) with
 *     buffered reads, which also fills the page cache;
 *   - row-cache mode (the table has a row cache): a row is in memory when
 *     the cache holds it for the snapshot's epoch of its chunk; the others
 *     are read with O_DIRECT reads of their aligned sectors, then offered
 *     to the cache.
 * Rows in memory are copied while the reads are in flight; read rows are
 * copied out of the I/O thread's buffers as each read lands. Rows never
 * come from any snapshot but the one the request pinned.
 *
 * A small request whose rows are all in memory (page-cache mode) is copied
 * at once on the loop. */
#ifndef ED_GATHER_H
#define ED_GATHER_H

#include <stddef.h>
#include <stdint.h>

#include "dispatch.h"
#include "encode.h"

struct ed_snap;

/* Longest read the gather asks of the I/O thread (ed_io_start). */
#define ED_GATHER_MAX_READ (64u << 10)

/* One block to fill: the rows of slots[0..n-1] of snapshot s (pinned by
 * the request; every slot checked < slots). */
struct ed_fill {
	struct ed_snap *s;
	const uint64_t *slots;
	size_t n;
};

/* Fills b[i].rows from f[i] for i < n, at once (req stays NEW, or an
 * error answer makes it DONE), or in pieces: req is then PENDING and is
 * finished through req->finish on req->loop. shm: the blocks point into
 * the client's shared buffer (no part of the frame may leave early). */
void ed_gather(struct ed_req *req, const struct ed_fill *f, const struct ed_block *b, size_t n,
               int shm);

#endif
