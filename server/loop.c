/* loop.c - worker threads, one libuv loop each. The acceptor (main loop)
 * hands connected sockets over through a locked queue and a uv_async; a
 * connection then lives on that worker only. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "beat.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "spin.h"

struct ed_worker {
	pthread_t thread;
	uv_loop_t loop;
	uv_async_t wake;
	uv_timer_t drain_timer;
	struct ed_beat beat;       /* "still answering", for the watchdog */
	struct ed_mailbox mailbox;
	struct ed_spin spin;       /* --busy-poll */
	pthread_mutex_t lock;      /* guards fds, stop_asked and the budget flags */
	int *fds;
	size_t n_fds, cap_fds;
	int stop_asked;
	int budget_wait;           /* a connection here waits for budget room */
	int budget_kick;           /* room came: retry the waiting connections */
	int wake_closed;           /* the wake handle is closing: send nothing */
	unsigned wedge_ms;         /* test fault hook: block the loop this long */
	int stopping;              /* loop thread's view */
	size_t conns;
	unsigned index;
};

static struct ed_worker *workers;
static unsigned n_workers;
static unsigned next_worker;   /* acceptor thread only */

uv_loop_t *ed_worker_loop(struct ed_worker *w)
{
	return &w->loop;
}

struct ed_mailbox *ed_worker_mailbox(struct ed_worker *w)
{
	return &w->mailbox;
}

int ed_worker_stopping(const struct ed_worker *w)
{
	return w->stopping;
}

static void maybe_finish(struct ed_worker *w)
{
	if (!w->stopping || w->conns > 0)
		return;
	pthread_mutex_lock(&w->lock);
	w->wake_closed = 1;
	pthread_mutex_unlock(&w->lock);
	if (!uv_is_closing((uv_handle_t *)&w->wake))
		uv_close((uv_handle_t *)&w->wake, NULL);
	if (!uv_is_closing((uv_handle_t *)&w->drain_timer))
		uv_close((uv_handle_t *)&w->drain_timer, NULL);
	ed_spin_close(&w->spin);
	ed_beat_stop(&w->beat);
	/* no connection is left, so no request has a piece out */
	ed_mailbox_close(&w->mailbox);
}

void ed_worker_active(struct ed_worker *w)
{
	ed_spin_touch(&w->spin);
}

void ed_worker_conn_add(struct ed_worker *w, uv_handle_t *h)
{
	(void)h;
	w->conns++;
}

void ed_worker_conn_del(struct ed_worker *w, uv_handle_t *h)
{
	(void)h;
	w->conns--;
	maybe_finish(w);
}

static int is_conn(uv_handle_t *h)
{
	return (h->type == UV_NAMED_PIPE || h->type == UV_TCP) && !uv_is_closing(h);
}

static void walk_drain(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (is_conn(h))
		ed_conn_drain(h);
}

static void walk_retry(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (is_conn(h))
		ed_conn_retry(h);
}

static void walk_abort(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (is_conn(h))
		ed_conn_abort(h);
}

static void on_drain_timeout(uv_timer_t *t)
{
	struct ed_worker *w = t->data;

	if (w->conns)
		ed_warn("worker %u: %zu connections still busy after %us; closing them",
		        w->index, w->conns, ed_cfg.drain_timeout);
	uv_walk(&w->loop, walk_abort, NULL);
}

static void on_wake(uv_async_t *a)
{
	struct ed_worker *w = a->data;
	int *fds, stop, kick;
	unsigned wedge;
	size_t n;

	pthread_mutex_lock(&w->lock);
	wedge = w->wedge_ms;
	w->wedge_ms = 0;
	fds = w->fds;
	n = w->n_fds;
	w->fds = NULL;
	w->n_fds = w->cap_fds = 0;
	stop = w->stop_asked;
	kick = w->budget_kick;
	w->budget_kick = 0;
	pthread_mutex_unlock(&w->lock);

	if (wedge) {
		ed_warn("worker %u: blocking its loop for %u ms (fault hook)", w->index, wedge);
		usleep(wedge * 1000u);
	}
	if (stop && !w->stopping) {
		w->stopping = 1;
		uv_timer_start(&w->drain_timer, on_drain_timeout, ed_cfg.drain_timeout * 1000u, 0);
	}
	if (kick)
		uv_walk(&w->loop, walk_retry, NULL);
	for (size_t i = 0; i < n; i++)
		ed_conn_open(w, fds[i]); /* closes at once when stopping */
	free(fds);
	if (w->stopping) {
		uv_walk(&w->loop, walk_drain, NULL);
		maybe_finish(w);
	}
}

static void *worker_main(void *arg)
{
	struct ed_worker *w = arg;
	char name[16];

	snprintf(name, sizeof(name), "engramd-loop%u", w->index);
	pthread_setname_np(pthread_self(), name); /* top -H, perf, gdb */
	uv_run(&w->loop, UV_RUN_DEFAULT);
	return NULL;
}

int ed_workers_start(unsigned n)
{
	workers = calloc(n, sizeof(*workers));
	if (!workers)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		struct ed_worker *w = &workers[i];
		char name[24];
		int rc;

		w->index = i;
		snprintf(name, sizeof(name), "worker %u", i);
		pthread_mutex_init(&w->lock, NULL);
		if ((rc = uv_loop_init(&w->loop)) ||
		    (rc = uv_async_init(&w->loop, &w->wake, on_wake)) ||
		    (rc = uv_timer_init(&w->loop, &w->drain_timer)) ||
		    (rc = ed_mailbox_init(&w->loop, &w->mailbox)) ||
		    (rc = ed_spin_init(&w->spin, &w->loop, ed_cfg.busy_poll)) ||
		    (rc = ed_beat_start(&w->beat, &w->loop, name))) {
			ed_error("worker %u: %s", i, uv_strerror(rc));
			return -1;
		}
		w->wake.data = w->drain_timer.data = w;
		if (pthread_create(&w->thread, NULL, worker_main, w)) {
			ed_error("cannot start worker thread %u", i);
			return -1;
		}
		n_workers = i + 1;
	}
	return 0;
}

void ed_workers_hand(int fd)
{
	struct ed_worker *w = &workers[next_worker++ % n_workers];

	pthread_mutex_lock(&w->lock);
	if (w->n_fds == w->cap_fds) {
		size_t cap = w->cap_fds ? 2 * w->cap_fds : 16;
		int *p = realloc(w->fds, cap * sizeof(int));

		if (!p) {
			pthread_mutex_unlock(&w->lock);
			close(fd);
			return;
		}
		w->fds = p;
		w->cap_fds = cap;
	}
	w->fds[w->n_fds++] = fd;
	pthread_mutex_unlock(&w->lock);
	uv_async_send(&w->wake);
}

void ed_workers_stop(void)
{
	for (unsigned i = 0; i < n_workers; i++) {
		pthread_mutex_lock(&workers[i].lock);
		workers[i].stop_asked = 1;
		pthread_mutex_unlock(&workers[i].lock);
		uv_async_send(&workers[i].wake);
	}
}

void ed_worker_wedge(unsigned i, unsigned ms)
{
	struct ed_worker *w;

	if (i >= n_workers)
		return;
	w = &workers[i];
	pthread_mutex_lock(&w->lock);
	if (!w->wake_closed) {
		w->wedge_ms = ms;
		uv_async_send(&w->wake);
	}
	pthread_mutex_unlock(&w->lock);
}

void ed_worker_budget_wait(struct ed_worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->budget_wait = 1;
	pthread_mutex_unlock(&w->lock);
}

void ed_workers_budget_wake(void)
{
	for (unsigned i = 0; i < n_workers; i++) {
		struct ed_worker *w = &workers[i];

		pthread_mutex_lock(&w->lock);
		if (w->budget_wait && !w->wake_closed) {
			w->budget_wait = 0;
			w->budget_kick = 1;
			uv_async_send(&w->wake);
		}
		pthread_mutex_unlock(&w->lock);
	}
}

void ed_workers_join(void)
{
	/* every thread first: a worker still draining may wake the others */
	for (unsigned i = 0; i < n_workers; i++)
		pthread_join(workers[i].thread, NULL);
	for (unsigned i = 0; i < n_workers; i++) {
		uv_loop_close(&workers[i].loop);
		pthread_mutex_destroy(&workers[i].lock);
	}
	free(workers);
	workers = NULL;
	n_workers = 0;
}
