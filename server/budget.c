/* budget.c - the daemon-wide count of answer bytes in memory.
 *
 * Taking is one compare-and-swap. A loop that found no room marks itself
 * waiting, then looks again; a giver subtracts, then wakes whoever is
 * marked. With sequentially consistent atomics one of the two sees the
 * other, so no wake-up is lost. */
#include <errno.h>
#include <stdatomic.h>

#include "budget.h"
#include "config.h"
#include "loop.h"

static atomic_uint_fast64_t used;
static atomic_int someone_waits;

static int try_take(uint64_t n)
{
	uint_fast64_t u = atomic_load(&used);

	do {
		if (n > ed_cfg.max_output_total || u > ed_cfg.max_output_total - n)
			return -EAGAIN;
	} while (!atomic_compare_exchange_weak(&used, &u, u + n));
	return 0;
}

static int room(uint64_t n)
{
	uint_fast64_t u = atomic_load(&used);

	return n <= ed_cfg.max_output_total && u <= ed_cfg.max_output_total - n;
}

static void wait_for_room(struct ed_worker *w)
{
	ed_worker_budget_wait(w);
	atomic_store(&someone_waits, 1);
}

int ed_budget_take(uint64_t n, struct ed_worker *w)
{
	if (try_take(n) == 0)
		return 0;
	wait_for_room(w);
	return try_take(n); /* a give may have come before the mark */
}

int ed_budget_fits(uint64_t n, struct ed_worker *w)
{
	if (room(n))
		return 1;
	wait_for_room(w);
	return room(n);
}

void ed_budget_force(uint64_t n)
{
	atomic_fetch_add(&used, n);
}

void ed_budget_give(uint64_t n)
{
	if (n == 0)
		return;
	atomic_fetch_sub(&used, n);
	/* the load first: no write to the shared line when nobody waits */
	if (atomic_load(&someone_waits) && atomic_exchange(&someone_waits, 0))
		ed_workers_budget_wake();
}

uint64_t ed_budget_used(void)
{
	return atomic_load_explicit(&used, memory_order_relaxed);
}
