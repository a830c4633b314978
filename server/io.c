/* io.c - the disk reader thread on io_uring (liburing).
 *
 * The thread keeps one read of an eventfd in the ring: ed_io_submit()
 * queues a batch and writes the eventfd, so one io_uring_submit_and_wait()
 * sleeps on both new work and finished reads. */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "stats.h"

#define EVENTFD_TAG 0
#define MAX_RETRIES 3

struct slot {
	struct ed_io_batch *b;
	size_t i;
	uint64_t t0;
	unsigned retries;
	uint8_t *buf;
};

static struct io_uring ring;
static pthread_t thread;
static int running, efd = -1;
static uint64_t efd_value;
static unsigned depth, bulk_depth, in_kernel;
static uint32_t max_read;
static struct slot *slots;
static unsigned *free_slots, n_free;
static uint8_t *buffers;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct ed_io_batch *incoming_head, *incoming_tail; /* under lock */
static int stop_asked;                                    /* under lock */
/* the I/O thread's own queues: batches with reads not yet in the kernel */
static struct ed_io_batch *queue_head[2], *queue_tail[2];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void arm_eventfd(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	io_uring_prep_read(sqe, efd, &efd_value, sizeof(efd_value), 0);
	io_uring_sqe_set_data64(sqe, EVENTFD_TAG);
}

static void prep(unsigned s)
{
	struct slot *sl = &slots[s];
	const struct ed_io_read *r = &sl->b->reads[sl->i];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	io_uring_prep_read(sqe, sl->b->fd, sl->buf, r->len, r->off);
	io_uring_sqe_set_data64(sqe, (uint64_t)s + 1);
	in_kernel++;
	ed_stat_add(io_inflight, 1);
}

static void enqueue(struct ed_io_batch *b)
{
	int q = b->urgent ? 0 : 1;

	b->next = NULL;
	if (queue_tail[q])
		queue_tail[q]->next = b;
	else
		queue_head[q] = b;
	queue_tail[q] = b;
}

/* Moves reads of queued batches into free slots: urgent first; bulk reads
 * only up to bulk_depth, so an urgent batch finds room at once. */
static void fill(void)
{
	for (int q = 0; q < 2; q++) {
		unsigned cap = q == 0 ? depth : bulk_depth;

		while (queue_head[q] && n_free > 0 && in_kernel < cap) {
			struct ed_io_batch *b = queue_head[q];
			unsigned s = free_slots[--n_free];

			slots[s].b = b;
			slots[s].i = b->next_read++;
			slots[s].t0 = now_ns();
			slots[s].retries = 0;
			b->in_kernel++;
			prep(s);
			if (b->next_read == b->n) {
				queue_head[q] = b->next;
				if (!queue_head[q])
					queue_tail[q] = NULL;
			}
		}
	}
}

static void complete(unsigned s, int res)
{
	struct slot *sl = &slots[s];
	struct ed_io_batch *b = sl->b;

	in_kernel--;
	ed_stat_add(io_inflight, (uint_fast64_t)-1);
	if ((res == -EAGAIN || res == -EINTR) && sl->retries < MAX_RETRIES) {
		sl->retries++;
		prep(s);
		return;
	}
	if (res > 0) {
		ed_stat_add(disk_reads, 1);
		ed_stat_add(disk_read_bytes, (uint64_t)res);
	}
	ed_stat_io_latency(now_ns() - sl->t0);
	b->got(b, sl->i, sl->buf, res);
	free_slots[n_free++] = s;
	if (--b->in_kernel == 0 && b->next_read == b->n)
		b->done(b);
}

static int take_incoming(void)
{
	struct ed_io_batch *b, *next;
	int stop;

	pthread_mutex_lock(&lock);
	b = incoming_head;
	incoming_head = incoming_tail = NULL;
	stop = stop_asked;
	pthread_mutex_unlock(&lock);
	for (; b; b = next) {
		next = b->next;
		enqueue(b);
	}
	return stop;
}

static void *io_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "engramd-io");
	arm_eventfd();
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int stop = take_incoming(), rc;

		fill();
		if (stop && in_kernel == 0 && !queue_head[0] && !queue_head[1])
			break;
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			ed_error("io_uring: %s", strerror(-rc));
			break;
		}
		io_uring_for_each_cqe(&ring, head, cqe) {
			uint64_t tag = io_uring_cqe_get_data64(cqe);

			seen++;
			if (tag == EVENTFD_TAG)
				arm_eventfd();
			else
				complete((unsigned)(tag - 1), cqe->res);
		}
		io_uring_cq_advance(&ring, seen);
	}
	return NULL;
}

static void release(void)
{
	io_uring_queue_exit(&ring);
	close(efd);
	efd = -1;
	free(slots);
	free(free_slots);
	free(buffers);
	slots = NULL;
	free_slots = NULL;
	buffers = NULL;
}

int ed_io_start(unsigned d, uint32_t max)
{
	int rc;

	depth = d ? d : 1;
	bulk_depth = depth - depth / 4;
	max_read = max;
	efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0)
		return -errno;
	if ((rc = io_uring_queue_init(depth + 1, &ring, 0)) < 0) {
		close(efd);
		efd = -1;
		return rc;
	}
	slots = calloc(depth, sizeof(*slots));
	free_slots = calloc(depth, sizeof(*free_slots));
	buffers = aligned_alloc(4096, (size_t)depth * ((max_read + 4095) & ~4095u));
	if (!slots || !free_slots || !buffers) {
		rc = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < depth; i++) {
		slots[i].buf = buffers + (size_t)i * ((max_read + 4095) & ~4095u);
		free_slots[i] = depth - 1 - i;
	}
	n_free = depth;
	if ((rc = pthread_create(&thread, NULL, io_main, NULL))) {
		rc = -rc;
		goto fail;
	}
	running = 1;
	return 0;
fail:
	release();
	return rc;
}

static void wake_thread(void)
{
	uint64_t one = 1;

	while (write(efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

void ed_io_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&lock);
	stop_asked = 1;
	pthread_mutex_unlock(&lock);
	wake_thread();
	pthread_join(thread, NULL);
	release();
	running = 0;
	stop_asked = 0;
}

int ed_io_running(void)
{
	return running;
}

void ed_io_submit(struct ed_io_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		if (b->reads[i].len > max_read || b->reads[i].len == 0) {
			ed_error("bug: a read of %u bytes (limit %u)", b->reads[i].len, max_read);
			abort();
		}
	}
	b->next = NULL;
	b->next_read = b->in_kernel = 0;
	pthread_mutex_lock(&lock);
	if (incoming_tail)
		incoming_tail->next = b;
	else
		incoming_head = b;
	incoming_tail = b;
	pthread_mutex_unlock(&lock);
	wake_thread();
}
