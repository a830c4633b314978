/* fault.c - the tests' fault hooks (fault.h); empty without ED_FAULT_HOOKS. */
#include "fault.h"

#ifdef ED_FAULT_HOOKS
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

static uv_signal_t wedge_sig;
static int wedge_on;
static unsigned wedge_worker, wedge_ms;

void ed_fault_before_load(void)
{
	const char *v = getenv("ENGRAMD_FAULT_SLOW_START");

	if (v) {
		ed_warn("fault hook: the tables load %s ms late", v);
		usleep((useconds_t)atoi(v) * 1000u);
	}
}

void ed_fault_before_refill(void)
{
	const char *v = getenv("ENGRAMD_FAULT_SLOW_REFILL");

	if (v) {
		ed_warn("fault hook: a read-back waits %s ms", v);
		usleep((useconds_t)atoi(v) * 1000u);
	}
}

static void on_wedge(uv_signal_t *h, int signum)
{
	(void)h;
	(void)signum;
	ed_worker_wedge(wedge_worker, wedge_ms);
}

void ed_fault_start(uv_loop_t *loop)
{
	const char *v = getenv("ENGRAMD_FAULT_WEDGE");

	if (!v || sscanf(v, "%u:%u", &wedge_worker, &wedge_ms) != 2)
		return;
	uv_signal_init(loop, &wedge_sig);
	uv_signal_start(&wedge_sig, on_wedge, SIGUSR1);
	uv_unref((uv_handle_t *)&wedge_sig);
	wedge_on = 1;
}

void ed_fault_stop(void)
{
	if (wedge_on)
		uv_close((uv_handle_t *)&wedge_sig, NULL);
	wedge_on = 0;
}
#else
void ed_fault_before_load(void)
{
}

void ed_fault_before_refill(void)
{
}

void ed_fault_start(uv_loop_t *loop)
{
	(void)loop;
}

void ed_fault_stop(void)
{
}
#endif
