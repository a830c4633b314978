/* notify.h - systemd service notifications (Type=notify) and the watchdog.
 * Each call is a no-op when not run by systemd (no NOTIFY_SOCKET). */
#ifndef ED_NOTIFY_H
#define ED_NOTIFY_H

#include <stdint.h>
#include <uv.h>

void ed_notify_ready(void);
void ed_notify_reloading(void);
void ed_notify_stopping(void);
/* Around the tables' first load: a thread sends EXTEND_TIMEOUT_USEC and a
 * STATUS= with the progress every second until ed_notify_start_end, so that
 * a long start (--verify all on a large table) outlives TimeoutStartSec. */
void ed_notify_start_begin(void);
void ed_notify_start_end(void);
/* WATCHDOG_USEC for this process (WatchdogSec=), or 0. */
uint64_t ed_notify_watchdog_usec(void);
/* Pings the watchdog from loop (the acceptor) at a third of its period, as
 * long as every loop's heartbeat is fresh (beat.h). */
void ed_notify_watchdog_start(uv_loop_t *loop);
void ed_notify_watchdog_stop(void);

#endif
