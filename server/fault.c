/* fault.c - the tests' fault hooks (fault.h); empty without ED_FAULT_HOOKS. */
#include "fault.h"

#ifdef ED_FAULT_HOOKS
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

static uv_signal_t wedge_sig, nomem_sig;
static int wedge_on, nomem_on;
static unsigned wedge_worker, wedge_ms, nomem_n;
static atomic_uint nomem_left; /* frame allocations still to fail */

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

static void on_nomem(uv_signal_t *h, int signum)
{
	(void)h;
	(void)signum;
	ed_warn("fault hook: %u more response frames find no memory", nomem_n);
	atomic_fetch_add(&nomem_left, nomem_n);
}

int ed_fault_frame_nomem(void)
{
	unsigned left = atomic_load(&nomem_left);

	while (left && !atomic_compare_exchange_weak(&nomem_left, &left, left - 1))
		;
	return left != 0;
}

/* Starts sig's handler cb on loop; returns 1. */
static int arm(uv_loop_t *loop, uv_signal_t *sig, uv_signal_cb cb, int signum)
{
	uv_signal_init(loop, sig);
	uv_signal_start(sig, cb, signum);
	uv_unref((uv_handle_t *)sig);
	return 1;
}

void ed_fault_start(uv_loop_t *loop)
{
	const char *wedge = getenv("ENGRAMD_FAULT_WEDGE");
	const char *nomem = getenv("ENGRAMD_FAULT_FRAME_NOMEM");

	if (wedge && sscanf(wedge, "%u:%u", &wedge_worker, &wedge_ms) == 2)
		wedge_on = arm(loop, &wedge_sig, on_wedge, SIGUSR1);
	if (nomem && sscanf(nomem, "%u", &nomem_n) == 1)
		nomem_on = arm(loop, &nomem_sig, on_nomem, SIGUSR2);
}

void ed_fault_stop(void)
{
	if (wedge_on)
		uv_close((uv_handle_t *)&wedge_sig, NULL);
	if (nomem_on)
		uv_close((uv_handle_t *)&nomem_sig, NULL);
	wedge_on = nomem_on = 0;
}
#else
void ed_fault_before_load(void)
{
}

int ed_fault_frame_nomem(void)
{
	return 0;
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
