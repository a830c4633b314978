/* notify.c - sd_notify READY/RELOADING/STOPPING and WATCHDOG pings. */
#include <stdint.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "log.h"
#include "notify.h"
#include "stats.h"

static uv_timer_t watchdog;
static int watchdog_on;

void ed_notify_ready(void)
{
	sd_notifyf(0, "READY=1\nSTATUS=serving, %llu requests so far",
	           (unsigned long long)ed_stat_get(requests));
}

void ed_notify_reloading(void)
{
	struct timespec ts;

	/* Type=notify-reload wants the monotonic time with RELOADING=1 */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nSTATUS=reloading tables\nMONOTONIC_USEC=%llu",
	           (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
}

void ed_notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=draining connections");
}

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
	sd_notify(0, "WATCHDOG=1");
}

void ed_notify_watchdog_start(uv_loop_t *loop)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return;
	uv_timer_init(loop, &watchdog);
	/* ping at a third of the period: a busy loop still gets one in */
	uv_timer_start(&watchdog, on_watchdog, 0, usec / 3000 ? usec / 3000 : 1);
	watchdog_on = 1;
	ed_info("systemd watchdog every %llu ms", (unsigned long long)(usec / 3000));
}

void ed_notify_watchdog_stop(void)
{
	if (watchdog_on) {
		uv_close((uv_handle_t *)&watchdog, NULL);
		watchdog_on = 0;
	}
}
