/* beat.h - heartbeats of the event loops (the acceptor and every worker).
 *
 * Each loop runs a timer that stamps "still answering" every interval. A
 * loop whose stamp is older than four intervals is hung: a callback blocks
 * it (a stuck syscall, a lock, a bug). The watchdog (notify.c) pings systemd
 * only while no loop is hung, and /healthz and /livez (http.c) answer 503
 * naming the loop. */
#ifndef ED_BEAT_H
#define ED_BEAT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* One loop's heartbeat; the caller owns the memory, which must stay valid
 * until the close callback of ed_beat_stop has run (its loop ends). */
struct ed_beat {
	uv_timer_t timer;
	atomic_uint_fast64_t last_ns;   /* CLOCK_MONOTONIC of the last stamp */
	char name[24];                  /* "acceptor", "worker 3" */
	struct ed_beat *next;           /* the list of running beats; under its lock */
};

/* Interval of every beat started from now on (default 500 ms); call before
 * the loops start. The watchdog shortens it to fit its period. */
void ed_beat_set_interval(uint64_t ms);
/* A loop is hung after this many intervals without a stamp. */
#define ED_BEAT_HUNG_INTERVALS 4
uint64_t ed_beat_interval(void);

/* Starts b's timer on loop (which must be b's loop's thread, or before the
 * loop runs) and lists it as running. The timer is unref'd: it never keeps
 * the loop alive. Returns 0 or a libuv error. */
int ed_beat_start(struct ed_beat *b, uv_loop_t *loop, const char *name);
/* Unlists b and closes its timer; on b's loop. A stopped beat is never hung. */
void ed_beat_stop(struct ed_beat *b);

/* The running loop whose beat is oldest, when it is older than four
 * intervals: 1, its name in name and its silence in *age_ms. 0 when every
 * loop answers. Any thread. */
int ed_beat_hung(char *name, size_t len, uint64_t *age_ms);

#endif
