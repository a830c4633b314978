/* pool.c - gather threads with an urgent and a bulk lane; mailboxes. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"

struct lane {
	struct ed_task *head, *tail;
	unsigned long n;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* urgent threads wait on wake[URGENT], bulk threads on wake[BULK] */
static pthread_cond_t wake[ED_LANES] = { PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER };
static unsigned idle[ED_LANES];
static struct lane lanes[ED_LANES];
static pthread_t *threads;
static unsigned n_threads;
static int stopping;
/* small requests being answered (ed_pool_urgent_hold) */
static atomic_uint urgent_held;

static void push(struct lane *l, struct ed_task *t)
{
	t->next = NULL;
	if (l->tail)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
	l->n++;
}

/* The next task a thread of lane `mine` may run: urgent first; urgent
 * threads run nothing else. */
static struct ed_task *pop(enum ed_lane mine)
{
	for (int i = 0; i <= (int)mine; i++) {
		struct lane *l = &lanes[i];
		struct ed_task *t = l->head;

		if (!t)
			continue;
		l->head = t->next;
		if (!l->head)
			l->tail = NULL;
		l->n--;
		return t;
	}
	return NULL;
}

static void *pool_main(void *arg)
{
	enum ed_lane mine = (enum ed_lane)(intptr_t)arg;

	pthread_setname_np(pthread_self(), mine == ED_LANE_BULK ? "engramd-bulk" : "engramd-urgent");
	/* lowering one's own priority needs no privilege */
	if (mine == ED_LANE_BULK)
		setpriority(PRIO_PROCESS, (id_t)gettid(), ED_BULK_NICE);
	pthread_mutex_lock(&lock);
	for (;;) {
		struct ed_task *t = pop(mine);

		if (!t) {
			if (stopping)
				break;
			idle[mine]++;
			pthread_cond_wait(&wake[mine], &lock);
			idle[mine]--;
			continue;
		}
		pthread_mutex_unlock(&lock);
		if (t->work(t) == ED_TASK_DONE)
			ed_task_finish(t);
		/* a decode step's threads, woken meanwhile, get this core now */
		if (mine == ED_LANE_BULK && atomic_load_explicit(&urgent_held, memory_order_relaxed))
			sched_yield();
		pthread_mutex_lock(&lock);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int ed_pool_start(unsigned n)
{
	threads = calloc(2 * n, sizeof(*threads));
	if (!threads)
		return -ENOMEM;
	for (unsigned i = 0; i < 2 * n; i++) {
		intptr_t lane = i < n ? ED_LANE_URGENT : ED_LANE_BULK;
		int rc = pthread_create(&threads[i], NULL, pool_main, (void *)lane);

		if (rc) {
			ed_error("cannot start gather thread %u: %s", i, strerror(rc));
			ed_pool_stop();
			return -rc;
		}
		n_threads = i + 1;
	}
	return 0;
}

void ed_pool_stop(void)
{
	pthread_mutex_lock(&lock);
	stopping = 1;
	pthread_cond_broadcast(&wake[ED_LANE_URGENT]);
	pthread_cond_broadcast(&wake[ED_LANE_BULK]);
	pthread_mutex_unlock(&lock);
	for (unsigned i = 0; i < n_threads; i++)
		pthread_join(threads[i], NULL);
	free(threads);
	threads = NULL;
	n_threads = 0;
	stopping = 0;
}

void ed_pool_submit(struct ed_task *t)
{
	enum ed_lane lane = t->lane == ED_LANE_URGENT ? ED_LANE_URGENT : ED_LANE_BULK;

	pthread_mutex_lock(&lock);
	push(&lanes[lane], t);
	/* an urgent task wakes an urgent thread, or else a bulk one */
	if (lane == ED_LANE_URGENT && !idle[ED_LANE_URGENT] && idle[ED_LANE_BULK])
		lane = ED_LANE_BULK;
	pthread_cond_signal(&wake[lane]);
	pthread_mutex_unlock(&lock);
}

void ed_pool_urgent_hold(void)
{
	atomic_fetch_add_explicit(&urgent_held, 1, memory_order_relaxed);
}

void ed_pool_urgent_release(void)
{
	atomic_fetch_sub_explicit(&urgent_held, 1, memory_order_relaxed);
}

void ed_pool_queued(unsigned long out[ED_LANES])
{
	pthread_mutex_lock(&lock);
	for (int i = 0; i < ED_LANES; i++)
		out[i] = lanes[i].n;
	pthread_mutex_unlock(&lock);
}

/* ---- mailboxes ---------------------------------------------------------- */

static void on_mail(uv_async_t *a)
{
	struct ed_mailbox *m = a->data;
	struct ed_task *t, *next;

	uv_mutex_lock(&m->lock);
	t = m->head;
	m->head = m->tail = NULL;
	uv_mutex_unlock(&m->lock);
	for (; t; t = next) {
		next = t->next; /* done may free t */
		t->done(t);
	}
}

int ed_mailbox_init(uv_loop_t *loop, struct ed_mailbox *m)
{
	int rc;

	m->head = m->tail = NULL;
	if ((rc = uv_mutex_init(&m->lock)))
		return rc;
	if ((rc = uv_async_init(loop, &m->async, on_mail))) {
		uv_mutex_destroy(&m->lock);
		return rc;
	}
	m->async.data = m;
	return 0;
}

static void on_mailbox_closed(uv_handle_t *h)
{
	struct ed_mailbox *m = h->data;

	uv_mutex_destroy(&m->lock);
}

void ed_mailbox_close(struct ed_mailbox *m)
{
	if (!uv_is_closing((uv_handle_t *)&m->async))
		uv_close((uv_handle_t *)&m->async, on_mailbox_closed);
}

void ed_task_finish(struct ed_task *t)
{
	struct ed_mailbox *m = t->home;

	t->next = NULL;
	uv_mutex_lock(&m->lock);
	if (m->tail)
		m->tail->next = t;
	else
		m->head = t;
	m->tail = t;
	uv_mutex_unlock(&m->lock);
	uv_async_send(&m->async);
}
