/* http.c - /metrics, /healthz, /livez and /readyz over libmicrohttpd. */
#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "beat.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"

static struct MHD_Daemon *mhd;
static atomic_int stopping;

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type,
                             char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result rc;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	rc = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result text(struct MHD_Connection *conn, unsigned code, const char *msg)
{
	return reply(conn, code, "text/plain; charset=utf-8", (char *)msg, strlen(msg),
	             MHD_RESPMEM_MUST_COPY);
}

/* Liveness: every event loop answers its heartbeat (beat.h). This thread
 * is libmicrohttpd's, so it answers even while the loops hang. */
static int alive(char *msg, size_t len)
{
	uint64_t age;
	char name[24];

	if (!ed_beat_hung(name, sizeof(name), &age))
		return 1;
	snprintf(msg, len, "hung: %s loop has not answered for %llu ms\n", name,
	         (unsigned long long)age);
	return 0;
}

/* Readiness: every configured table loaded, and not draining. */
static int ready(char *msg, size_t len)
{
	size_t want = ed_registry_configured();

	if (atomic_load(&stopping)) {
		snprintf(msg, len, "stopping\n");
		return 0;
	}
	if (!ed_registry_ready()) {
		snprintf(msg, len, "starting: %zu of %zu tables loaded\n", ed_registry_loaded(), want);
		return 0;
	}
	snprintf(msg, len, "ok: %zu tables loaded\n", ed_registry_count());
	return 1;
}

/* which: 'l' /livez, 'r' /readyz, 'h' /healthz (both). */
static enum MHD_Result health(struct MHD_Connection *conn, int which)
{
	char msg[160];
	int ok = 1;

	if (which != 'r')
		ok = alive(msg, sizeof(msg));
	if (ok && which != 'l')
		ok = ready(msg, sizeof(msg));
	else if (ok)
		snprintf(msg, sizeof(msg), "ok: every loop answers\n");
	return text(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, msg);
}

static enum MHD_Result metrics(struct MHD_Connection *conn)
{
	size_t len;
	char *body = ed_metrics_render(&len);

	if (!body)
		return text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len,
	             MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **state)
{
	(void)cls;
	(void)version;
	(void)upload;
	(void)state;
	if (*upload_size) {
		*upload_size = 0; /* a request body is read and ignored */
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
	if (strcmp(url, "/metrics") == 0)
		return metrics(conn);
	if (strcmp(url, "/healthz") == 0)
		return health(conn, 'h');
	if (strcmp(url, "/livez") == 0)
		return health(conn, 'l');
	if (strcmp(url, "/readyz") == 0)
		return health(conn, 'r');
	return text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz, /livez or /readyz\n");
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	ed_warn("http: %s", line);
}

/* Splits "host:port" or "[v6]:port". */
static int split_addr(const char *addr, char *host, size_t hl, const char **port)
{
	const char *colon = strrchr(addr, ':');
	size_t n;

	if (!colon || !colon[1])
		return -1;
	n = (size_t)(colon - addr);
	if (addr[0] == '[') {
		if (n < 2 || addr[n - 1] != ']')
			return -1;
		addr++;
		n -= 2;
	}
	if (n == 0 || n >= hl)
		return -1;
	memcpy(host, addr, n);
	host[n] = '\0';
	*port = colon + 1;
	return 0;
}

int ed_http_start(const char *addr)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
	char host[256];
	const char *port;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
	int rc;

	if (split_addr(addr, host, sizeof(host), &port) < 0) {
		ed_error("--http wants HOST:PORT (e.g. 127.0.0.1:9100), got '%s'", addr);
		return -1;
	}
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		ed_error("--http %s: %s", addr, gai_strerror(rc));
		return -1;
	}
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* the port number is in the sockaddr; MHD's own port argument is ignored */
	mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL,
	                       MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	                       MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	                       MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
	                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
	                       MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!mhd) {
		ed_error("--http %s: cannot listen (address in use, or not local?)", addr);
		return -1;
	}
	ed_info("http: /metrics, /healthz, /livez and /readyz on %s", addr);
	return 0;
}

void ed_http_set_stopping(void)
{
	atomic_store(&stopping, 1);
}

void ed_http_stop(void)
{
	if (!mhd)
		return;
	MHD_stop_daemon(mhd);
	mhd = NULL;
}
