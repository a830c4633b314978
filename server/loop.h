/* loop.h - the worker event loops that own the connections. */
#ifndef ED_LOOP_H
#define ED_LOOP_H

#include <uv.h>

struct ed_worker;

/* Starts n worker threads, each running its own loop. */
int ed_workers_start(unsigned n);
/* Hands a connected socket to the next worker (round robin). Any thread. */
void ed_workers_hand(int fd);
/* Asks every worker to drain its connections and stop; returns at once. */
void ed_workers_stop(void);
/* Waits for every worker thread to end. */
void ed_workers_join(void);
/* Test fault hook (fault.c): blocks worker i's loop for ms, as a hung
 * callback would, so that its heartbeat (beat.h) stops. Any thread. */
void ed_worker_wedge(unsigned i, unsigned ms);

/* For conn.c: the worker's loop, and (un)registering a connection so that a
 * stop can reach it. */
uv_loop_t *ed_worker_loop(struct ed_worker *w);
/* Where gather pieces of this loop's requests come back (pool.h). */
struct ed_mailbox *ed_worker_mailbox(struct ed_worker *w);
int ed_worker_stopping(const struct ed_worker *w);
/* The answer of a small request (a decode step's, at most --urgent-rows
 * rows) was written on w: with --busy-poll, its loop polls on without
 * sleeping for that long (spin.h). Loop thread. */
void ed_worker_active(struct ed_worker *w);
void ed_worker_conn_add(struct ed_worker *w, uv_handle_t *h);
void ed_worker_conn_del(struct ed_worker *w, uv_handle_t *h);

/* For budget.c: marks w as having a connection that waits for room in the
 * output budget (any thread); and wakes every marked worker, which then
 * retries its waiting connections (ed_conn_retry) on its loop. */
void ed_worker_budget_wait(struct ed_worker *w);
void ed_workers_budget_wake(void);

#endif
