/* check_pool.c - the gather threads' lanes (server/pool.c): an urgent task
 * waits for no bulk task, neither queued nor running; bulk tasks run in
 * order; parked tasks are finished from another thread; every done runs on
 * the mailbox's loop; a bulk thread yields its core after each task while a
 * small request is held, and only then (sched_yield is wrapped at link
 * time, -Wl,--wrap=sched_yield, to count the calls of pool.c). */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <uv.h>

#include "egtest.h"
#include "pool.h"

#define N_BULK 20

struct probe {
	struct ed_task t;
	int id;
	int park;              /* work parks; finished by a helper thread */
};

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open, blocker_running;
static int order[64];
static atomic_int n_order;
static int done_ids[64], n_done;
static uv_thread_t loop_thread_id;
static int done_on_wrong_thread;
static uv_loop_t loop;
static struct ed_mailbox box;

static int probe_work(struct ed_task *t)
{
	struct probe *p = (struct probe *)t;

	if (p->id == 0 || p->id == 50) {
		/* blockers hold their thread until the test opens the gate */
		pthread_mutex_lock(&gate_lock);
		blocker_running++;
		pthread_cond_broadcast(&gate_cond);
		while (!gate_open)
			pthread_cond_wait(&gate_cond, &gate_lock);
		pthread_mutex_unlock(&gate_lock);
	}
	pthread_mutex_lock(&gate_lock);
	order[atomic_load(&n_order)] = p->id;
	atomic_fetch_add(&n_order, 1);
	pthread_mutex_unlock(&gate_lock);
	return p->park ? ED_TASK_PARKED : ED_TASK_DONE;
}

static void probe_done(struct ed_task *t)
{
	struct probe *p = (struct probe *)t;
	uv_thread_t self = uv_thread_self();

	if (!uv_thread_equal(&self, &loop_thread_id))
		done_on_wrong_thread = 1;
	done_ids[n_done++] = p->id;
	if (n_done == N_BULK + 3)
		ed_mailbox_close(&box);
}

static void *finisher(void *arg)
{
	ed_task_finish(arg);
	return NULL;
}

static void submit(struct probe *p, int id, enum ed_lane lane, int park)
{
	p->t.work = probe_work;
	p->t.done = probe_done;
	p->t.home = &box;
	p->t.lane = lane;
	p->id = id;
	p->park = park;
	ed_pool_submit(&p->t);
}

static void wait_blockers(int n)
{
	pthread_mutex_lock(&gate_lock);
	while (blocker_running < n)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
}

static void open_gate(void)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = 1;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

START_TEST(urgent_never_waits_for_bulk)
{
	static struct probe probes[N_BULK + 3];
	pthread_t fin;

	loop_thread_id = uv_thread_self();
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(ed_mailbox_init(&loop, &box), 0);
	ck_assert_int_eq(ed_pool_start(1), 0); /* one urgent, one bulk thread */
	submit(&probes[0], 0, ED_LANE_BULK, 0);
	wait_blockers(1);
	for (int i = 1; i <= N_BULK; i++)
		submit(&probes[i], i, ED_LANE_BULK, 0);
	submit(&probes[N_BULK + 1], 100, ED_LANE_URGENT, 0);
	submit(&probes[N_BULK + 2], 101, ED_LANE_URGENT, 1); /* parks */
	/* both urgent tasks run while a bulk piece holds its thread */
	while (atomic_load(&n_order) < 2)
		uv_run(&loop, UV_RUN_NOWAIT);
	pthread_mutex_lock(&gate_lock);
	ck_assert_int_eq(order[0], 100);
	ck_assert_int_eq(order[1], 101);
	pthread_mutex_unlock(&gate_lock);
	open_gate();
	while (atomic_load(&n_order) < N_BULK + 3)
		uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(pthread_create(&fin, NULL, finisher, &probes[N_BULK + 2].t), 0);
	pthread_join(fin, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	ed_pool_stop();
	uv_loop_close(&loop);

	/* then the running bulk task, then the others in the order queued */
	for (int i = 0; i <= N_BULK; i++)
		ck_assert_int_eq(order[2 + i], i);
	ck_assert_int_eq(n_done, N_BULK + 3);
	ck_assert_int_eq(done_on_wrong_thread, 0);
	/* the parked task's done ran last, once finished by the other thread */
	ck_assert_int_eq(done_ids[n_done - 1], 101);
}
END_TEST

static atomic_int yields, plain_done;

int __wrap_sched_yield(void);
int __real_sched_yield(void);
int __wrap_sched_yield(void)
{
	atomic_fetch_add(&yields, 1);
	return __real_sched_yield();
}

static int plain_work(struct ed_task *t)
{
	(void)t;
	return ED_TASK_DONE;
}

static void plain_done_cb(struct ed_task *t)
{
	(void)t;
	atomic_fetch_add(&plain_done, 1);
}

/* Runs n bulk tasks on a fresh pool of one thread per lane and stops it
 * (so every yield after a task has happened); the yields it took. */
static int bulk_round(int n)
{
	static struct ed_task tasks[8];
	int before = atomic_load(&yields);

	ck_assert_int_le(n, 8);
	atomic_store(&plain_done, 0);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(ed_mailbox_init(&loop, &box), 0);
	ck_assert_int_eq(ed_pool_start(1), 0);
	for (int i = 0; i < n; i++) {
		tasks[i] = (struct ed_task){ .work = plain_work, .done = plain_done_cb,
		                             .home = &box, .lane = ED_LANE_BULK };
		ed_pool_submit(&tasks[i]);
	}
	while (atomic_load(&plain_done) < n)
		uv_run(&loop, UV_RUN_ONCE);
	ed_pool_stop();
	ed_mailbox_close(&box);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return atomic_load(&yields) - before;
}

START_TEST(bulk_yields_only_while_urgent_held)
{
	ck_assert_int_eq(bulk_round(3), 0);
	ed_pool_urgent_hold();
	ed_pool_urgent_hold();
	ck_assert_int_eq(bulk_round(3), 3);
	ed_pool_urgent_release();
	ck_assert_int_eq(bulk_round(2), 2); /* one hold is left */
	ed_pool_urgent_release();
	ck_assert_int_eq(bulk_round(3), 0);
}
END_TEST

START_TEST(queue_counts_by_lane)
{
	static struct probe probes[5];
	unsigned long q[ED_LANES];

	loop_thread_id = uv_thread_self();
	gate_open = blocker_running = 0;
	atomic_store(&n_order, 0);
	n_done = 0;
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(ed_mailbox_init(&loop, &box), 0);
	ck_assert_int_eq(ed_pool_start(1), 0);
	submit(&probes[0], 0, ED_LANE_BULK, 0);
	/* the bulk thread holds task 0 before task 50 is queued: a bulk thread
	 * takes urgent work first, and would otherwise take 50 and leave 0 to
	 * nobody (the urgent thread runs nothing else) */
	wait_blockers(1);
	submit(&probes[1], 50, ED_LANE_URGENT, 0);
	wait_blockers(2); /* both threads held */
	submit(&probes[2], 1, ED_LANE_BULK, 0);
	submit(&probes[3], 2, ED_LANE_BULK, 0);
	submit(&probes[4], 3, ED_LANE_URGENT, 0);
	ed_pool_queued(q);
	ck_assert_uint_eq(q[ED_LANE_URGENT], 1);
	ck_assert_uint_eq(q[ED_LANE_BULK], 2);
	open_gate();
	while (n_done < 5)
		uv_run(&loop, UV_RUN_ONCE);
	ed_mailbox_close(&box);
	uv_run(&loop, UV_RUN_DEFAULT);
	ed_pool_stop();
	uv_loop_close(&loop);
	ed_pool_queued(q);
	ck_assert_uint_eq(q[ED_LANE_URGENT] + q[ED_LANE_BULK], 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("lanes");

	tcase_add_test(tc, urgent_never_waits_for_bulk);
	tcase_add_test(tc, queue_counts_by_lane);
	tcase_add_test(tc, bulk_yields_only_while_urgent_held);
	suite_add_tcase(s, tc);
	return egt_run_suite(s);
}
