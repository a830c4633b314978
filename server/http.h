/* http.h - the optional HTTP port (--http HOST:PORT): GET /metrics
 * (Prometheus text) and GET /healthz (200 when every table is loaded and
 * engramd is not stopping, else 503). Served by libmicrohttpd on its own
 * thread, apart from the request loops. */
#ifndef ED_HTTP_H
#define ED_HTTP_H

/* Listens on addr ("HOST:PORT", "[V6]:PORT"). Returns 0, or -1 (logged). */
int ed_http_start(const char *addr);
/* From now on /healthz answers 503 (draining). Any thread. */
void ed_http_set_stopping(void);
/* Closes the port and waits for its thread; no-op when not started. */
void ed_http_stop(void);

#endif
