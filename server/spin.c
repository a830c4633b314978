/* spin.c - busy polling of a worker loop (spin.h). While the idle handle
 * is active, libuv polls for I/O with a zero timeout on every turn of the
 * loop instead of sleeping; its callback stops it once the window after
 * the last touch has passed, and until then gives the core to any other
 * thread waiting for it (sched_yield), so that a client's thread woken on
 * this core, or a gather thread, runs at once instead of behind the spin. */
#include <sched.h>

#include "spin.h"

static void on_idle(uv_idle_t *h)
{
	struct ed_spin *s = h->data;

	if (uv_hrtime() >= s->until_ns)
		uv_idle_stop(h);
	else
		sched_yield();
}

int ed_spin_init(struct ed_spin *s, uv_loop_t *loop, unsigned usec)
{
	s->window_ns = (uint64_t)usec * 1000u;
	s->until_ns = 0;
	s->idle.data = s;
	return uv_idle_init(loop, &s->idle);
}

void ed_spin_touch(struct ed_spin *s)
{
	if (!s->window_ns || uv_is_closing((uv_handle_t *)&s->idle))
		return;
	s->until_ns = uv_hrtime() + s->window_ns;
	if (!uv_is_active((uv_handle_t *)&s->idle))
		uv_idle_start(&s->idle, on_idle);
}

void ed_spin_close(struct ed_spin *s)
{
	if (!uv_is_closing((uv_handle_t *)&s->idle))
		uv_close((uv_handle_t *)&s->idle, NULL);
}
