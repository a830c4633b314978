/* beat.c - loop heartbeats: one timer per loop, one list to check them. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "beat.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct ed_beat *beats;
static atomic_uint_fast64_t interval_ms = 500;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ed_beat_set_interval(uint64_t ms)
{
	atomic_store(&interval_ms, ms ? ms : 1);
}

uint64_t ed_beat_interval(void)
{
	return atomic_load(&interval_ms);
}

static void on_beat(uv_timer_t *t)
{
	struct ed_beat *b = t->data;

	atomic_store_explicit(&b->last_ns, now_ns(), memory_order_relaxed);
}

int ed_beat_start(struct ed_beat *b, uv_loop_t *loop, const char *name)
{
	uint64_t ms = ed_beat_interval();
	int rc;

	snprintf(b->name, sizeof(b->name), "%s", name);
	atomic_init(&b->last_ns, now_ns());
	if ((rc = uv_timer_init(loop, &b->timer)))
		return rc;
	b->timer.data = b;
	uv_timer_start(&b->timer, on_beat, ms, ms);
	uv_unref((uv_handle_t *)&b->timer);
	pthread_mutex_lock(&lock);
	b->next = beats;
	beats = b;
	pthread_mutex_unlock(&lock);
	return 0;
}

void ed_beat_stop(struct ed_beat *b)
{
	struct ed_beat **p;

	pthread_mutex_lock(&lock);
	for (p = &beats; *p && *p != b; p = &(*p)->next)
		;
	if (*p)
		*p = b->next;
	pthread_mutex_unlock(&lock);
	if (!uv_is_closing((uv_handle_t *)&b->timer))
		uv_close((uv_handle_t *)&b->timer, NULL);
}

int ed_beat_hung(char *name, size_t len, uint64_t *age_ms)
{
	uint64_t now = now_ns(), limit = ED_BEAT_HUNG_INTERVALS * ed_beat_interval() * 1000000u, worst = 0;
	int hung = 0;

	pthread_mutex_lock(&lock);
	for (struct ed_beat *b = beats; b; b = b->next) {
		uint64_t last = atomic_load_explicit(&b->last_ns, memory_order_relaxed);
		uint64_t age = now > last ? now - last : 0;

		if (age > limit && age > worst) {
			worst = age;
			hung = 1;
			snprintf(name, len, "%s", b->name);
		}
	}
	pthread_mutex_unlock(&lock);
	if (hung)
		*age_ms = worst / 1000000u;
	return hung;
}
