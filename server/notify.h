/* notify.h - systemd service notifications (Type=notify) and the watchdog.
 * Each call is a no-op when not run by systemd. */
#ifndef ED_NOTIFY_H
#define ED_NOTIFY_H

#include <uv.h>

void ed_notify_ready(void);
void ed_notify_reloading(void);
void ed_notify_stopping(void);
/* Starts pinging the watchdog from loop when WatchdogSec= is set. */
void ed_notify_watchdog_start(uv_loop_t *loop);
void ed_notify_watchdog_stop(void);

#endif
