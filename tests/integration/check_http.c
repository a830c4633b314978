/* check_http.c - engramd's HTTP port: /metrics in the Prometheus text format
 * counting real lookups, /healthz, /livez and /readyz (200 serving; 503
 * draining but for /livez), the port from the config file, and errors
 * (404, 405, a port already taken). Plain HTTP/1.0 over a TCP socket, no
 * HTTP library. */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "egtest.h"
#include "engram.pb-c.h"

static char table_dir[256];
static char table_arg[300];

static void make_table(void)
{
	char *p = egt_path("t");

	snprintf(table_dir, sizeof(table_dir), "%s", p);
	free(p);
	egt_make_table(table_dir, "t", 10000, 16, 1024, 5);
	snprintf(table_arg, sizeof(table_arg), "t=%s", table_dir);
}

/* One HTTP/1.0 request; returns the status code and the body (malloc'd). */
static int http(int port, const char *method, const char *path, char **body)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap), req[256], *eoh;
	int fd = socket(AF_INET, SOCK_STREAM, 0), code = -1, n;

	ck_assert_int_ge(fd, 0);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s",
	              strerror(errno));
	n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: localhost\r\n\r\n", method, path);
	ck_assert_int_eq(write(fd, req, (size_t)n), n);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		ck_assert_msg(poll(&p, 1, 10000) == 1, "no HTTP answer within 10 s");
		if (len + 1 == cap)
			buf = realloc(buf, cap *= 2);
		r = read(fd, buf + len, cap - len - 1);
		ck_assert_msg(r >= 0, "read: %s", strerror(errno));
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	ck_assert_msg(sscanf(buf, "HTTP/1.%*d %d", &code) == 1, "not an HTTP answer: %.80s", buf);
	eoh = strstr(buf, "\r\n\r\n");
	ck_assert_ptr_nonnull(eoh);
	*body = strdup(eoh + 4);
	free(buf);
	return code;
}

/* The value of the sample named exactly `series` (name plus labels). */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	}
	ck_abort_msg("no sample %s in:\n%s", series, text);
	return -1;
}

/* Sends one lookup over the daemon's unix socket and reads its answer. */
static void lookup(const egt_daemon *d, uint64_t *slots, size_t n, int want_status)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	Engram__V1__Request r = ENGRAM__V1__REQUEST__INIT;
	Engram__V1__LookupRequest lr = ENGRAM__V1__LOOKUP_REQUEST__INIT;
	Engram__V1__Response *resp;
	uint8_t out[1024], in[1 << 16];
	size_t len, got = 0, hl = 0;
	uint64_t body = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	ck_assert_uint_lt(strlen(d->sock), sizeof(sa.sun_path));
	memcpy(sa.sun_path, d->sock, strlen(d->sock) + 1);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	lr.table = (char *)"t";
	lr.slots = slots;
	lr.n_slots = n;
	r.id = 7;
	r.body_case = ENGRAM__V1__REQUEST__BODY_LOOKUP;
	r.lookup = &lr;
	len = engram__v1__request__pack(&r, out + 2);
	ck_assert_uint_lt(len, 1 << 14);
	out[0] = (uint8_t)(len | 0x80);
	out[1] = (uint8_t)(len >> 7);
	ck_assert_int_eq(write(fd, out, len + 2), (ssize_t)(len + 2));
	for (;;) {
		ssize_t k = read(fd, in + got, sizeof(in) - got);

		ck_assert_int_gt(k, 0);
		got += (size_t)k;
		if (egt_frame_parse(in, got, &hl, &body))
			break;
	}
	resp = engram__v1__response__unpack(NULL, body, in + hl);
	ck_assert_ptr_nonnull(resp);
	ck_assert_int_eq(resp->status, want_status);
	engram__v1__response__free_unpacked(resp, NULL);
	close(fd);
}

static int start(egt_daemon *d, const char *extra1, const char *extra2)
{
	static char http_arg[64];
	const char *args[] = { "--table", table_arg, "--http", http_arg, extra1, extra2, NULL };
	int port = egt_free_port();

	make_table();
	snprintf(http_arg, sizeof(http_arg), "127.0.0.1:%d", port);
	egt_daemon_start(d, 0, args);
	return port;
}

/* Sends sig (0: none, it is stopping already) and expects exit status 0;
 * shows the daemon's log if not. */
static void stop_ok(egt_daemon *d, int sig)
{
	char log[sizeof(d->log)], line[512];
	int rc;
	FILE *f;

	memcpy(log, d->log, sizeof(log));
	rc = egt_daemon_stop(d, sig);
	if (rc != 0 && (f = fopen(log, "r"))) {
		while (fgets(line, sizeof(line), f))
			fprintf(stderr, "  | %s", line);
		fclose(f);
	}
	ck_assert_msg(rc == 0, "engramd exit status %d (-1: killed by a signal); log above", rc);
}

START_TEST(metrics_count_requests)
{
	egt_daemon d;
	int port = start(&d, NULL, NULL);
	uint64_t slots[64], bad = 10000;
	char *body;

	for (size_t i = 0; i < 64; i++)
		slots[i] = i * 151 % 10000;
	lookup(&d, slots, 64, ENGRAM__V1__STATUS__OK);
	lookup(&d, slots, 10, ENGRAM__V1__STATUS__OK);
	lookup(&d, &bad, 1, ENGRAM__V1__STATUS__OUT_OF_RANGE);

	/* counted once the write completes, a moment after the client has read */
	for (int i = 0;; i++) {
		ck_assert_int_eq(http(port, "GET", "/metrics", &body), 200);
		if (sample(body, "engramd_lookup_latency_seconds_count{kind=\"slots\"}") == 3 ||
		    i == 200)
			break;
		free(body);
		usleep(10000);
	}
	ck_assert_ptr_nonnull(strstr(body, "# TYPE engramd_requests_total counter"));
	ck_assert_ptr_nonnull(strstr(body, "# TYPE engramd_lookup_latency_seconds histogram"));
	/* at least the three lookups (plus start-up pings) */
	ck_assert(sample(body, "engramd_requests_total{status=\"ok\"}") >= 2);
	ck_assert(sample(body, "engramd_requests_total{status=\"out_of_range\"}") == 1);
	ck_assert(sample(body, "engramd_errors_total") == 1);
	ck_assert(sample(body, "engramd_rows_total") == 74);
	ck_assert(sample(body, "engramd_response_bytes_total") >= 74 * 16);
	ck_assert(sample(body, "engramd_lookup_latency_seconds_count{kind=\"slots\"}") == 3);
	ck_assert(sample(body, "engramd_lookup_latency_seconds_bucket{kind=\"slots\",le=\"+Inf\"}") ==
	          3);
	ck_assert(sample(body, "engramd_lookup_latency_seconds_sum{kind=\"slots\"}") > 0);
	/* slot lookups are not counted as token requests */
	ck_assert(sample(body, "engramd_lookup_latency_seconds_count{kind=\"tokens\"}") == 0);
	ck_assert_ptr_null(strstr(body, "engramd_bytes_out_total"));
	ck_assert(sample(body, "engramd_build_info{version=\"" ENGRAM_VERSION "\",protocol=\"1\"}") ==
	          1);
	ck_assert(sample(body, "process_start_time_seconds") > 1.5e9);
	ck_assert(sample(body, "process_start_time_seconds") <= (double)time(NULL));
	ck_assert(sample(body, "engramd_malloc_in_use_bytes") >= 0);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	/* glibc's figures, not zeros (a sanitizer's own malloc bypasses glibc's) */
	ck_assert(sample(body, "engramd_malloc_in_use_bytes") > 0);
#endif
	ck_assert(sample(body, "engramd_malloc_arena_bytes") >= sample(body, "engramd_malloc_in_use_bytes"));
	ck_assert(sample(body, "engramd_table_generation{table=\"t\"}") == 1);
	ck_assert(sample(body, "engramd_table_slots{table=\"t\"}") == 10000);
	ck_assert(sample(body, "engramd_tables_loaded") == 1);
	ck_assert(sample(body, "engramd_connections_total") >= 3);
	ck_assert(sample(body, "engramd_reloads_total") == 0);
	ck_assert(sample(body, "engramd_uptime_seconds") >= 0);
	free(body);

	/* a patch and SIGHUP: the generation and the reload counter move */
	{
		uint8_t row[16] = { 1 };
		uint64_t slot = 3, gen = 0;

		ck_assert_int_eq(eg_table_update(table_dir, &slot, 1, row, NULL, &gen), 0);
		ck_assert_uint_eq(gen, 2);
		kill(d.pid, SIGHUP);
		for (int i = 0; i < 500; i++) {
			ck_assert_int_eq(http(port, "GET", "/metrics", &body), 200);
			if (sample(body, "engramd_reloads_total") == 1)
				break;
			free(body);
			body = NULL;
			usleep(10000);
		}
		ck_assert_ptr_nonnull(body);
		ck_assert(sample(body, "engramd_table_generation{table=\"t\"}") == 2);
		free(body);
	}
	stop_ok(&d, SIGTERM);
}
END_TEST

START_TEST(healthz_and_errors)
{
	egt_daemon d;
	int port = start(&d, NULL, NULL);
	char *body;

	ck_assert_int_eq(http(port, "GET", "/healthz", &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "ok"));
	free(body);
	ck_assert_int_eq(http(port, "GET", "/livez", &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "every loop answers"));
	free(body);
	ck_assert_int_eq(http(port, "GET", "/readyz", &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "ok: 1 tables loaded"));
	free(body);
	ck_assert_int_eq(http(port, "GET", "/nope", &body), 404);
	free(body);
	ck_assert_int_eq(http(port, "POST", "/metrics", &body), 405);
	free(body);
	stop_ok(&d, SIGTERM);
}
END_TEST

/* While SIGTERM drains a connection that does not read its answers,
 * /healthz says 503 so that a balancer stops sending work. Over TCP with a
 * tiny receive buffer: a Unix socket would swallow megabytes of answers. */
START_TEST(healthz_503_while_draining)
{
	enum { ROWS = 65536 }; /* 1 MiB answers */
	static char http_arg[64];
	const char *args[] = { "--table", table_arg, "--http", http_arg, "--max-output=64K",
	                       "--drain-timeout=30", NULL };
	int port = egt_free_port(), rcvbuf = 4096, fd, code = 0;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	Engram__V1__Request r = ENGRAM__V1__REQUEST__INIT;
	Engram__V1__LookupRequest lr = ENGRAM__V1__LOOKUP_REQUEST__INIT;
	static uint64_t slots[ROWS];
	static uint8_t frame[4 * ROWS];
	size_t len, h, sent = 0;
	egt_daemon d;
	char *body;

	make_table();
	snprintf(http_arg, sizeof(http_arg), "127.0.0.1:%d", port);
	egt_daemon_start(&d, 1, args);
	for (size_t i = 0; i < ROWS; i++)
		slots[i] = i % 10000;
	lr.table = (char *)"t";
	lr.slots = slots;
	lr.n_slots = ROWS;
	r.body_case = ENGRAM__V1__REQUEST__BODY_LOOKUP;
	r.lookup = &lr;
	len = engram__v1__request__get_packed_size(&r);
	h = egt_varint_put(frame, len);
	ck_assert_uint_le(h + len, sizeof(frame));
	engram__v1__request__pack(&r, frame + h);

	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
	sa.sin_port = htons((uint16_t)atoi(strrchr(d.tcp_addr, ':') + 1));
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* 16 requests, 16 MiB of answers this client never reads; sent without
	 * blocking, as far as the buffers take them */
	for (int i = 0; i < 16; i++) {
		ssize_t w = send(fd, frame, h + len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w <= 0)
			break;
		sent += (size_t)w;
	}
	ck_assert_uint_ge(sent, 8 * (h + len)); /* more than the buffers hold back */
	usleep(300000);
	kill(d.pid, SIGTERM);
	for (int i = 0; i < 200 && code != 503; i++) {
		code = http(port, "GET", "/healthz", &body);
		free(body);
		if (code != 503)
			usleep(10000);
	}
	ck_assert_int_eq(code, 503);
	ck_assert_int_eq(kill(d.pid, 0), 0); /* still draining */
	/* not ready, but alive: the loops answer while they drain */
	ck_assert_int_eq(http(port, "GET", "/readyz", &body), 503);
	ck_assert_ptr_nonnull(strstr(body, "stopping"));
	free(body);
	ck_assert_int_eq(http(port, "GET", "/livez", &body), 200);
	free(body);
	close(fd); /* the pending writes fail: the drain ends well before 30 s */
	stop_ok(&d, 0); /* a second SIGTERM could land after the handlers are gone */
}
END_TEST

START_TEST(http_from_config_file)
{
	static char *conf;
	char arg[300], *body;
	const char *args[] = { "--config", arg, NULL };
	int port = egt_free_port();
	egt_daemon d;
	FILE *f;

	make_table();
	conf = egt_path("engramd.conf");
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "table = %s\nhttp = 127.0.0.1:%d\n", table_arg, port);
	fclose(f);
	snprintf(arg, sizeof(arg), "%s", conf);
	egt_daemon_start(&d, 0, args);
	ck_assert_int_eq(http(port, "GET", "/healthz", &body), 200);
	free(body);
	stop_ok(&d, SIGTERM);
}
END_TEST

/* A port in use or a bad address: engramd refuses to start. */
START_TEST(http_port_taken)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char cmd[1024], *sock = egt_path("x.sock");

	make_table();
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(cmd, sizeof(cmd), "%s --table %s --listen unix:%s --http 127.0.0.1:%d 2>/dev/null",
	         getenv("ENGRAMD"), table_arg, sock, ntohs(sa.sin_port));
	ck_assert_int_eq(egt_exit_status(cmd), 1); /* cannot serve as asked */
	snprintf(cmd, sizeof(cmd), "%s --table %s --listen unix:%s --http nocolon 2>/dev/null",
	         getenv("ENGRAMD"), table_arg, sock);
	ck_assert_int_eq(egt_exit_status(cmd), 1); /* checked when it starts listening */
	close(fd);
	free(sock);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http");
	TCase *t = tcase_create("http");

	tcase_set_timeout(t, 60);
	tcase_add_test(t, metrics_count_requests);
	tcase_add_test(t, healthz_and_errors);
	tcase_add_test(t, healthz_503_while_draining);
	tcase_add_test(t, http_from_config_file);
	tcase_add_test(t, http_port_taken);
	suite_add_tcase(s, t);
	return egt_run_suite(s);
}
