/* notify.c - sd_notify READY/RELOADING/STOPPING, start-up extensions and
 * WATCHDOG pings that vouch for every loop. */
#include <pthread.h>
#include <stdint.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "beat.h"
#include "config.h"
#include "log.h"
#include "notify.h"
#include "registry.h"
#include "stats.h"

/* While the tables load: every second, more start time, and where it is. */
#define EXTEND_EVERY_MS 1000
#define EXTEND_BY_USEC 10000000ull

static uv_timer_t watchdog;
static int watchdog_on, watchdog_silent;
static pthread_t starter;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cond = PTHREAD_COND_INITIALIZER;
static int start_running, start_done;

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

static void *start_main(void *arg)
{
	struct timespec until;

	(void)arg;
	pthread_setname_np(pthread_self(), "engramd-notify");
	pthread_mutex_lock(&start_lock);
	clock_gettime(CLOCK_REALTIME, &until);
	while (!start_done) {
		until.tv_sec += EXTEND_EVERY_MS / 1000;
		if (pthread_cond_timedwait(&start_cond, &start_lock, &until) == 0 || start_done)
			continue;
		sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu\nSTATUS=loading tables: %zu of %zu loaded",
		           EXTEND_BY_USEC, ed_registry_loaded(), ed_registry_configured());
	}
	pthread_mutex_unlock(&start_lock);
	return NULL;
}

void ed_notify_start_begin(void)
{
	if (sd_notify(0, "STATUS=loading tables") <= 0)
		return; /* not run by systemd */
	start_done = 0;
	start_running = pthread_create(&starter, NULL, start_main, NULL) == 0;
}

void ed_notify_start_end(void)
{
	if (!start_running)
		return;
	pthread_mutex_lock(&start_lock);
	start_done = 1;
	pthread_cond_signal(&start_cond);
	pthread_mutex_unlock(&start_lock);
	pthread_join(starter, NULL);
	start_running = 0;
}

/* Pings only while every loop answers its heartbeat: this timer runs on the
 * acceptor, the beats say that the workers run too. */
static void on_watchdog(uv_timer_t *t)
{
	uint64_t age = 0;
	char name[24];

	(void)t;
	if (ed_beat_hung(name, sizeof(name), &age)) {
		if (!watchdog_silent)
			ed_error("watchdog: %s has not answered for %llu ms; not pinging systemd",
			         name, (unsigned long long)age);
		watchdog_silent = 1;
		return;
	}
	if (watchdog_silent)
		ed_warn("watchdog: every loop answers again; pinging systemd");
	watchdog_silent = 0;
	sd_notify(0, "WATCHDOG=1");
}

uint64_t ed_notify_watchdog_usec(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
}

void ed_notify_watchdog_start(uv_loop_t *loop)
{
	uint64_t usec = ed_notify_watchdog_usec();

	if (usec == 0)
		return;
	uv_timer_init(loop, &watchdog);
	/* ping at a third of the period: a busy loop still gets one in */
	uv_timer_start(&watchdog, on_watchdog, 0, usec / 3000 ? usec / 3000 : 1);
	watchdog_on = 1;
	ed_info("systemd watchdog every %llu ms, while every loop answers within %llu ms",
	        (unsigned long long)(usec / 3000), (unsigned long long)(ED_BEAT_HUNG_INTERVALS * ed_beat_interval()));
}

void ed_notify_watchdog_stop(void)
{
	if (watchdog_on) {
		uv_close((uv_handle_t *)&watchdog, NULL);
		watchdog_on = 0;
	}
}
