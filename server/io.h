/* io.h - the disk reader: one thread, one io_uring, a bounded queue depth.
 *
 * Cold rows are read with many reads in flight instead of one page fault at
 * a time: a caller describes a batch of reads (file, offsets, lengths) and
 * is called back, on the I/O thread, with each read's bytes and once the
 * whole batch is in. At most `depth` reads are in the kernel at once; reads
 * of urgent batches (small requests) go before bulk ones, and bulk reads
 * leave a quarter of the depth free for them. The event loops never wait on
 * the disk, and neither do the gather threads.
 *
 * The bytes passed to got() are the I/O thread's buffer, aligned for
 * O_DIRECT, valid only during the call: got() copies what it needs. */
#ifndef ED_IO_H
#define ED_IO_H

#include <stddef.h>
#include <stdint.h>

struct ed_io_read {
	uint64_t off;
	uint32_t len;        /* 1 .. the max_read given to ed_io_start (a longer
	                        read is a bug: the daemon aborts) */
};

struct ed_io_batch {
	int fd;
	int urgent;
	const struct ed_io_read *reads;   /* owned by the caller until done() */
	size_t n;                         /* >= 1 */
	/* I/O thread: read i finished; res is the byte count read (short at
	 * the end of the file) or a negative errno. */
	void (*got)(struct ed_io_batch *b, size_t i, const uint8_t *data, int res);
	/* I/O thread, after the batch's last got(); b may be freed here. */
	void (*done)(struct ed_io_batch *b);
	/* the engine's; callers leave them alone */
	struct ed_io_batch *next;
	size_t next_read, in_kernel;
};

/* Starts the I/O thread with room for depth reads of up to max_read bytes
 * each. Returns 0 or a negative errno (-ENOSYS: the kernel has no
 * io_uring; the caller may then read through the map instead). */
int ed_io_start(unsigned depth, uint32_t max_read);
/* Completes every batch already submitted, then joins the thread. */
void ed_io_stop(void);
/* Whether ed_io_start succeeded. */
int ed_io_running(void);
/* Queues b. Any thread; never fails while running. */
void ed_io_submit(struct ed_io_batch *b);

#endif
