/* egtest_haproxy.h - haproxy in front of two engramd replicas, for the
 * tests and the benchmarks (haproxy.c). Functions report failure (-1 with
 * a message) rather than assert, so benchmarks can use them too. */
#ifndef EGTEST_HAPROXY_H
#define EGTEST_HAPROXY_H

#include <stddef.h>
#include <sys/types.h>

typedef struct egt_haproxy {
	pid_t pid;
	int port;            /* where clients connect, on 127.0.0.1 */
	char bind[32];       /* "127.0.0.1:<port>" */
	char stats[300];     /* its admin socket */
	char log[300];       /* its stdout and stderr */
} egt_haproxy;

/* The haproxy binary ($HAPROXY, else Debian's /usr/sbin/haproxy), or NULL
 * when none is installed. */
const char *egt_haproxy_bin(void);

/* Starts haproxy with examples/haproxy/haproxy.cfg ($EGT_HAPROXY_CFG
 * overrides) listening on 127.0.0.1:port, its admin socket and log in dir,
 * in front of servers r1 and r2 (engramd TCP "HOST:PORT", /healthz on
 * http_ports[i] of the same host); returns once it reports both UP. 0, or
 * -1 with why in err. */
int egt_haproxy_start(egt_haproxy *h, const char *dir, int port, const char *const servers[2],
                      const int http_ports[2], char *err, size_t errlen);

/* The state HAProxy reports for server ("r1", "r2"): "UP", "DOWN",
 * "UP 1/2" (going down), ...; -1 when it cannot be read. */
int egt_haproxy_status(const egt_haproxy *h, const char *server, char *out, size_t len);

void egt_haproxy_stop(egt_haproxy *h);

#endif
