/* http.h - the optional HTTP port (--http HOST:PORT), served by
 * libmicrohttpd on its own thread, apart from the request loops:
 *   GET /metrics  Prometheus text
 *   GET /livez    200 while every event loop answers its heartbeat; 503
 *                 naming the loop that stopped answering (restart it)
 *   GET /readyz   200 when every table is loaded and engramd is not
 *                 draining (SIGTERM); 503 while starting or draining
 *   GET /healthz  both: 200 only when live and ready (for load balancers) */
#ifndef ED_HTTP_H
#define ED_HTTP_H

/* Listens on addr ("HOST:PORT", "[V6]:PORT"). Returns 0, or -1 (logged). */
int ed_http_start(const char *addr);
/* From now on /healthz answers 503 (draining). Any thread. */
void ed_http_set_stopping(void);
/* Closes the port and waits for its thread; no-op when not started. */
void ed_http_stop(void);

#endif
