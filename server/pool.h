/* pool.h - the gather threads, with a lane for small requests, and the
 * mailboxes that bring finished work back to an event loop.
 *
 * libuv's own thread pool runs jobs first come, first served: a decode step
 * (a few thousand rows) queued behind the pieces of a prefill (a million
 * rows) waits for all of them. Here a task names its lane, and each lane
 * has threads of its own: urgent threads run only URGENT tasks, so a small
 * request never waits for a piece of a large one, not even a running one;
 * bulk threads run BULK tasks (and URGENT ones first, when there are any),
 * at a lower CPU priority (nice ED_BULK_NICE), so that on a busy host the
 * decode steps and the event loops get the cores first while prefills still
 * progress. Nice alone is not enough: the kernel's scheduler (EEVDF) lets a
 * running bulk thread finish its slice before a decode step's thread it
 * woke, so on busy cores a decode step waited milliseconds behind bulk
 * gathers. While a small request is being answered (ed_pool_urgent_hold
 * until ed_pool_urgent_release, whether its rows are gathered here or on
 * its loop), a bulk thread yields its core after each task (a piece of at
 * most 256 KiB of rows); with none in flight it runs unhindered. Reloads
 * still use libuv's pool: they are rare and must not hold up gathers.
 *
 * A task runs its work on a pool thread, then its done on the loop that
 * owns its mailbox. work may instead park the task (ED_TASK_PARKED) when
 * something else (the I/O thread) will finish it: that code then calls
 * ed_task_finish() or resubmits it. */
#ifndef ED_POOL_H
#define ED_POOL_H

#include <uv.h>

enum ed_lane { ED_LANE_URGENT, ED_LANE_BULK, ED_LANES };

enum { ED_TASK_DONE, ED_TASK_PARKED };

struct ed_mailbox;

struct ed_task {
	struct ed_task *next;             /* queue link; owned by the pool or mailbox */
	int (*work)(struct ed_task *t);   /* pool thread: ED_TASK_DONE or ED_TASK_PARKED */
	void (*done)(struct ed_task *t);  /* the mailbox's loop, after work */
	struct ed_mailbox *home;          /* where done runs */
	enum ed_lane lane;
};

#define ED_BULK_NICE 5

/* Starts n urgent and n bulk threads (n >= 1). Returns 0 or a negative
 * errno. */
int ed_pool_start(unsigned n);
/* Finishes queued tasks, then joins the threads. */
void ed_pool_stop(void);
/* Queues t (work, done, home, lane set) for a pool thread. Any thread;
 * never fails once the pool has started. */
void ed_pool_submit(struct ed_task *t);
/* A small request (of at most --urgent-rows rows) is being answered, from
 * its gather until its answer is freed: bulk threads yield after each task
 * until every hold is released. Any thread. */
void ed_pool_urgent_hold(void);
void ed_pool_urgent_release(void);
/* Tasks waiting in each lane now (for /metrics). */
void ed_pool_queued(unsigned long out[ED_LANES]);

/* A loop's inbox of finished tasks. Initialised on its loop's thread;
 * ed_task_finish may be called from any thread. */
struct ed_mailbox {
	uv_async_t async;
	uv_mutex_t lock;
	struct ed_task *head, *tail;
};

/* Returns 0 or a libuv error. The async handle keeps the loop alive until
 * ed_mailbox_close(). */
int ed_mailbox_init(uv_loop_t *loop, struct ed_mailbox *m);
/* Closes the handle; tasks still posted are dropped. On the loop. */
void ed_mailbox_close(struct ed_mailbox *m);
/* Runs t->done on t->home's loop soon. Any thread. */
void ed_task_finish(struct ed_task *t);

#endif
