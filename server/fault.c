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

/* Sleeps the milliseconds $var names, if set, and logs "what: MS ms". */
static void wait_env(const char *var, const char *what)
{
	const char *v = getenv(var);

	if (v) {
		ed_warn("fault hook: %s: %s ms", what, v);
		usleep((useconds_t)atoi(v) * 1000u);
	}
}

void ed_fault_before_load(void)
{
	wait_env("ENGRAMD_FAULT_SLOW_START", "the tables load late");
}

void ed_fault_before_refill(void)
{
	wait_env("ENGRAMD_FAULT_SLOW_REFILL", "a read-back waits");
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
