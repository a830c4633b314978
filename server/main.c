/* main.c - engramd: start-up, signals, periodic reload checks, shutdown.
 *
 * The main thread runs the acceptor loop (listeners, signals, timers, the
 * SIGHUP/--watch reloads); connections live on the worker loops. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "beat.h"
#include "config.h"
#include "fault.h"
#include "gather.h"
#include "http.h"
#include "io.h"
#include "listen.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "pager.h"
#include "pool.h"
#include "reconfig.h"
#include "registry.h"
#include "stats.h"

static uv_loop_t *main_loop;
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t watch_timer, drain_timer;
static uv_work_t reload_work_req;
static int reload_running, reload_again, reload_quiet, stopping, delaying;
static struct ed_beat acceptor_beat;

/* SIGHUP (not quiet): the config file again, then every table; --watch
 * (quiet): every table. */
static void reload_work(uv_work_t *w)
{
	struct ed_reload_result res;
	size_t reloaded = 0, failed = 0, n;
	struct ed_table **tables;

	(void)w;
	if (!reload_quiet)
		ed_reconfig();
	n = ed_registry_list(&tables);
	for (size_t i = 0; i < n; i++) {
		ed_table_reload(tables[i], reload_quiet, &res);
		reloaded += (size_t)res.reloaded;
		failed += (size_t)res.failed;
	}
	ed_registry_list_put(tables, n);
	if (!reload_quiet || reloaded)
		ed_info("reload: %zu of %zu tables swapped, %zu refused", reloaded, n, failed);
}

static void start_reload(int quiet);

static void reload_done(uv_work_t *w, int status)
{
	(void)w;
	(void)status;
	reload_running = 0;
	if (!reload_quiet)
		ed_notify_ready();
	if (reload_again && !stopping) {
		reload_again = 0;
		start_reload(0);
	}
}

/* Reloads every table on the thread pool; one reload pass at a time. */
static void start_reload(int quiet)
{
	if (reload_running) {
		if (!quiet)
			reload_again = 1;
		return;
	}
	reload_quiet = quiet;
	if (!quiet)
		ed_notify_reloading();
	if (uv_queue_work(main_loop, &reload_work_req, reload_work, reload_done) == 0)
		reload_running = 1;
}

static void on_watch(uv_timer_t *t)
{
	(void)t;
	start_reload(1);
}

static void shutdown_begin(const char *why)
{
	if (stopping)
		return;
	stopping = 1;
	if (delaying)
		uv_close((uv_handle_t *)&drain_timer, NULL);
	ed_info("%s: no new connections; finishing requests in flight (a second SIGTERM or "
	        "SIGINT stops at once)", why);
	/* Finishing can wait on a wedged loop or a hung disk: from now on the
	 * default action of SIGTERM and SIGINT (libuv restores it once their
	 * handles stop) ends the process at once. Nothing is lost: the tables
	 * are mapped read-only. */
	uv_signal_stop(&sig_term);
	uv_signal_stop(&sig_int);
	ed_notify_stopping();
	ed_http_set_stopping();
	ed_listen_close();
	ed_notify_watchdog_stop();
	if (ed_cfg.watch)
		uv_close((uv_handle_t *)&watch_timer, NULL);
	ed_workers_stop();
	/* signal handles are unref'd: the loop ends once the rest is closed */
}

static void on_drain_delay(uv_timer_t *t)
{
	(void)t;
	shutdown_begin("drain delay over");
}

/* With --drain-delay, /healthz turns 503 while everything still serves, so
 * that a balancer marks this replica down and moves its clients before the
 * sockets close; a second signal stops at once. */
static void shutdown_request(const char *why)
{
	if (stopping || delaying || !ed_cfg.drain_delay) {
		shutdown_begin(why);
		return;
	}
	delaying = 1;
	ed_info("%s: /healthz says 503; serving on for %u s before draining", why,
	        ed_cfg.drain_delay);
	ed_http_set_stopping();
	uv_timer_init(main_loop, &drain_timer);
	uv_timer_start(&drain_timer, on_drain_delay, ed_cfg.drain_delay * 1000ull, 0);
}

static void on_signal(uv_signal_t *h, int signum)
{
	(void)h;
	if (signum == SIGHUP) {
		ed_info("SIGHUP: reloading %severy table", ed_cfg.config ? "the config and " : "");
		if (!stopping)
			start_reload(0);
		return;
	}
	shutdown_request(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* The gather threads (one per core: more only time-share the cores), the
 * disk reader and the residency refresh. Without io_uring (an old kernel,
 * or a seccomp filter) cold rows are paged in through the map, one fault at
 * a time: slower, still correct. */
static int io_start(unsigned threads)
{
	int rc = ed_io_start(ed_cfg.io_depth, ED_GATHER_MAX_READ);

	if (rc)
		ed_warn("no io_uring (%s): cold rows are read one page fault at a time",
		        strerror(-rc));
	else if ((rc = ed_pager_start())) {
		ed_error("cannot start the residency thread: %s", strerror(-rc));
		return -1;
	}
	if ((rc = ed_pool_start(threads))) {
		ed_error("cannot start the gather threads: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

static void io_stop(void)
{
	ed_pool_stop();
	ed_io_stop();
	ed_pager_stop();
}

static unsigned default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)n : 1;
}

static void signals_init(void)
{
	uv_signal_t *hs[] = { &sig_term, &sig_int, &sig_hup };
	int nums[] = { SIGTERM, SIGINT, SIGHUP };

	for (int i = 0; i < 3; i++) {
		uv_signal_init(main_loop, hs[i]);
		uv_signal_start(hs[i], on_signal, nums[i]);
		uv_unref((uv_handle_t *)hs[i]);
	}
}

/* Beats often enough that a hung loop stops the pings well within the
 * watchdog's period: hung = four intervals, at most half the period. */
static void beat_setup(void)
{
	uint64_t ms = ed_notify_watchdog_usec() / 8000;

	if (ms && ms < ed_beat_interval())
		ed_beat_set_interval(ms);
}

int main(int argc, char **argv)
{
	unsigned threads;
	int rc;

	/* the registry's table check, in a process of its own (registry.c) */
	if (argc == 5 && strcmp(argv[1], "--check-table") == 0 && strcmp(argv[3], "--level") == 0)
		return eg_table_check_child(argv[2], atoi(argv[4]), STDOUT_FILENO);
	/* checks a config file and opens nothing else */
	if (argc == 3 && strcmp(argv[1], "--check-config") == 0)
		return ed_config_check(argv[2]);
	ed_stats.started = (uint64_t)time(NULL);
	rc = ed_config_parse(argc, argv);
	if (rc)
		return rc > 0 ? 0 : 2;
	signal(SIGPIPE, SIG_IGN); /* a vanished client is a write error, not a death */
	/* Response frames are up to tens of MB and short-lived. By default glibc
	 * maps each one fresh and trims freed heap with MADV_DONTNEED, so every
	 * response pays its page faults again; keep that memory for reuse. */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	threads = ed_cfg.threads ? ed_cfg.threads : default_threads();
	/* libuv's pool only runs reloads now; gathers have their own threads */
	if (!getenv("UV_THREADPOOL_SIZE"))
		setenv("UV_THREADPOOL_SIZE", "2", 1);
	if (io_start(threads) < 0)
		return 1;
	/* before the tables load: /healthz says "starting" while they do */
	if (ed_cfg.http && ed_http_start(ed_cfg.http) < 0)
		return 1;
	beat_setup();
	ed_notify_start_begin();
	ed_fault_before_load();
	rc = ed_registry_open();
	ed_notify_start_end();
	if (rc < 0)
		goto fail;
	main_loop = uv_default_loop();
	if (ed_listen_open(main_loop, ed_workers_hand) < 0 || ed_workers_start(threads) < 0 ||
	    ed_beat_start(&acceptor_beat, main_loop, "acceptor") < 0)
		goto fail;
	signals_init();
	ed_fault_start(main_loop);
	if (ed_cfg.watch) {
		uv_timer_init(main_loop, &watch_timer);
		uv_timer_start(&watch_timer, on_watch, ed_cfg.watch * 1000ull, ed_cfg.watch * 1000ull);
	}
	ed_notify_watchdog_start(main_loop);
	ed_info("engramd %s ready: %zu tables, %u threads, max frame %llu, max rows %llu",
	        ED_VERSION, ed_registry_count(), threads, (unsigned long long)ed_cfg.max_frame,
	        (unsigned long long)ed_cfg.max_rows);
	ed_notify_ready();

	uv_run(main_loop, UV_RUN_DEFAULT);

	ed_workers_join();
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&sig_hup, NULL);
	ed_beat_stop(&acceptor_beat);
	ed_fault_stop();
	/* SIGTERM and SIGINT have had their default action since shutdown_begin
	 * stopped their handles (a drain stuck behind a loop ends at once); the
	 * requests are done now, and a signal during the clean-up left is
	 * ignored, so the exit stays 0 (the joins below wait for the pool, I/O
	 * and refresh threads; one stuck on a hung disk waits for SIGKILL) */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	uv_run(main_loop, UV_RUN_DEFAULT);
	uv_loop_close(main_loop);
	ed_http_stop();
	io_stop();
	ed_registry_close();
	ed_info("stopped");
	return 0;
fail:
	ed_http_stop();
	io_stop();
	return 1;
}
