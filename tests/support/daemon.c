/* daemon.c - a real engramd for the tests: spawned on a temporary unix
 * socket (and a free TCP port when asked), ready once it answers a ping;
 * a connection to it spoken to by hand; and what a process holds, from
 * /proc (memory, descriptors). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "egtest.h"
#include "engram.pb-c.h"

int egt_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

long egt_proc_status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t flen = strlen(field);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	while (kb < 0 && fgets(line, sizeof(line), f))
		if (strncmp(line, field, flen) == 0 && line[flen] == ':')
			kb = strtol(line + flen + 1, NULL, 10);
	fclose(f);
	ck_assert_msg(kb >= 0, "%s has no %s", path, field);
	return kb;
}

int egt_fd_count_on(pid_t pid, const char *file)
{
	char path[64], link[600], to[600];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	ck_assert_msg(d != NULL, "%s: %s", path, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		ssize_t len;

		if (e->d_name[0] == '.')
			continue;
		if (!file) {
			n++;
			continue;
		}
		snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
		if ((len = readlink(link, to, sizeof(to) - 1)) > 0) {
			to[len] = 0;
			n += !strcmp(to, file);
		}
	}
	closedir(d);
	return n - (!file && pid == getpid()); /* opendir's own fd */
}

int egt_fd_count(pid_t pid)
{
	return egt_fd_count_on(pid, NULL);
}

/* SIGSTOP is delivered asynchronously: wait until every thread of pid is
 * really stopped, or a request sent next may still be answered. */
static int all_threads_stopped(pid_t pid)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int stopped = 1;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	ck_assert_ptr_nonnull(d = opendir(path));
	while (stopped && (e = readdir(d)) != NULL) {
		char stat_path[640], state = 0;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(stat_path, sizeof(stat_path), "%s/%s/stat", path, e->d_name);
		if ((f = fopen(stat_path, "r")) == NULL)
			continue; /* the thread just exited */
		if (fscanf(f, "%*d %*s %c", &state) != 1 || state != 'T')
			stopped = 0;
		fclose(f);
	}
	closedir(d);
	return stopped;
}

void egt_stop_process(pid_t pid)
{
	ck_assert_int_eq(kill(pid, SIGSTOP), 0);
	for (int i = 0; i < 5000 && !all_threads_stopped(pid); i++)
		usleep(1000);
	ck_assert(all_threads_stopped(pid));
}

/* One ping over a fresh connection; 0 when a Pong came back. */
static int ping(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	Engram__V1__Request req = ENGRAM__V1__REQUEST__INIT;
	Engram__V1__PingRequest pr = ENGRAM__V1__PING_REQUEST__INIT;
	Engram__V1__Response *resp;
	uint8_t buf[256];
	size_t n, got = 0;
	int fd, ok = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	req.id = 1;
	req.body_case = ENGRAM__V1__REQUEST__BODY_PING;
	req.ping = &pr;
	n = engram__v1__request__pack(&req, buf + 1);
	buf[0] = (uint8_t)n; /* < 128 */
	if (write(fd, buf, n + 1) != (ssize_t)(n + 1))
		goto out;
	while (got < 1 || got < 1u + buf[0]) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 2000) <= 0)
			goto out;
		r = read(fd, buf + got, sizeof(buf) - got);
		if (r <= 0 || buf[0] >= 128)
			goto out;
		got += (size_t)r;
	}
	resp = engram__v1__response__unpack(NULL, buf[0], buf + 1);
	if (resp && resp->body_case == ENGRAM__V1__RESPONSE__BODY_PONG)
		ok = 0;
	if (resp)
		engram__v1__response__free_unpacked(resp, NULL);
out:
	close(fd);
	return ok;
}

size_t egt_count_lines(const char *path, const char *needle)
{
	char line[1024];
	size_t n = 0;
	FILE *f = fopen(path, "r");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

/* Copies the log at path to stderr: all of it, or (report) only a
 * sanitizer's report in it, from its first line on, at most 200 lines (a
 * report makes the daemon exit non-zero, and the log goes with the test). */
static void dump_log(const char *path, int report)
{
	char line[512];
	int in = !report, n = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	while ((!report || n < 200) && fgets(line, sizeof(line), f)) {
		in = in || strstr(line, "Sanitizer") || strstr(line, "runtime error:");
		if (!in)
			continue;
		fprintf(stderr, "  | %s", line);
		n++;
	}
	fclose(f);
}

static void set_path(char *dst, size_t len, const char *name)
{
	char *p = egt_path(name);

	ck_assert_msg(strlen(p) < len, "temporary path too long: %s", p);
	memcpy(dst, p, strlen(p) + 1);
	free(p);
}

void egt_daemon_start(egt_daemon *d, int with_tcp, const char *const *args)
{
	egt_daemon_opts o = { .with_tcp = with_tcp };

	egt_daemon_start_with(d, &o, args);
}

void egt_daemon_start_with(egt_daemon *d, const egt_daemon_opts *o, const char *const *args)
{
	const char *bin = getenv("ENGRAMD");
	const char *argv[64];
	char unix_arg[300], tcp_arg[64];
	size_t n = 0;
	int status;
	double deadline;

	memset(d, 0, sizeof(*d));
	if (!bin)
		bin = "build/engramd";
	set_path(d->sock, sizeof(d->sock), "engramd.sock");
	set_path(d->log, sizeof(d->log), "engramd.log");
	snprintf(d->addr, sizeof(d->addr), "unix:%s", d->sock);
	snprintf(unix_arg, sizeof(unix_arg), "unix:%s", d->sock);
	argv[n++] = bin;
	argv[n++] = "--listen";
	argv[n++] = unix_arg;
	if (o->with_tcp) {
		snprintf(d->tcp_addr, sizeof(d->tcp_addr), "tcp:127.0.0.1:%d", egt_free_port());
		snprintf(tcp_arg, sizeof(tcp_arg), "%s", d->tcp_addr);
		argv[n++] = "--listen";
		argv[n++] = tcp_arg;
	}
	for (size_t i = 0; args && args[i]; i++) {
		ck_assert_msg(n < 62, "too many daemon arguments");
		argv[n++] = args[i];
	}
	argv[n] = NULL;

	{
		egt_spawn_opts so = { .log = d->log, .nofile_soft = o->nofile_soft,
		                      .nofile_hard = o->nofile_hard };

		d->pid = egt_spawn(argv, &so);
		ck_assert_msg(d->pid > 0, "spawning %s: %s", bin, strerror((int)-d->pid));
	}
	deadline = egt_now() + 10.0;
	while (ping(d->sock) != 0) {
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			dump_log(d->log, 0);
			d->pid = 0;
			ck_abort_msg("engramd exited during start-up (status %d); log above", status);
		}
		if (egt_now() > deadline) {
			char exe[300], link[64];
			ssize_t len;

			dump_log(d->log, 0);
			snprintf(link, sizeof(link), "/proc/%d/exe", (int)d->pid);
			len = readlink(link, exe, sizeof(exe) - 1);
			exe[len > 0 ? len : 0] = '\0';
			ck_abort_msg("engramd (pid %d, running %s) did not answer a ping on %s within 10 s",
			             (int)d->pid, exe, d->sock);
		}
		usleep(10000);
	}
}

int egt_daemon_stop(egt_daemon *d, int sig)
{
	double deadline = egt_now() + 20.0;
	int status;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, sig);
	for (;;) {
		pid_t r = waitpid(d->pid, &status, WNOHANG);

		if (r == d->pid)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
		if (egt_now() > deadline) {
			fprintf(stderr, "engramd %d did not exit after signal %d; killing it\n",
			        (int)d->pid, sig);
			dump_log(d->log, 0);
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &status, 0);
			d->pid = 0;
			return -1;
		}
		usleep(5000);
	}
	d->pid = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		dump_log(d->log, 1);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- a connection spoken to by hand -------------------------------------- */

void egt_conn_open(egt_conn *c, const egt_daemon *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(c, 0, sizeof(*c));
	ck_assert_uint_lt(strlen(d->sock), sizeof(sa.sun_path));
	memcpy(sa.sun_path, d->sock, strlen(d->sock) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(c->fd, 0);
	ck_assert_msg(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s: %s",
	              d->sock, strerror(errno));
}

void egt_conn_send(egt_conn *c, const Engram__V1__Request *r)
{
	size_t n = engram__v1__request__get_packed_size(r), off = 0, h;
	uint8_t *b = malloc(n + 10);

	ck_assert_ptr_nonnull(b);
	h = egt_varint_put(b, n);
	engram__v1__request__pack(r, b + h);
	while (off < h + n) {
		ssize_t w = send(c->fd, b + off, h + n - off, MSG_NOSIGNAL);

		ck_assert_msg(w > 0, "send: %s", strerror(errno));
		off += (size_t)w;
	}
	free(b);
}

/* Reads what came within timeout_ms; 0 at EOF or timeout, else 1. */
static int conn_fill(egt_conn *c, int timeout_ms)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	ssize_t n;

	if (c->cap - c->len < 65536) {
		c->cap = c->cap ? 2 * c->cap : 1 << 20;
		c->buf = realloc(c->buf, c->cap);
		ck_assert_ptr_nonnull(c->buf);
	}
	if (poll(&p, 1, timeout_ms) != 1)
		return 0;
	n = read(c->fd, c->buf + c->len, c->cap - c->len);
	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return 0;
	ck_assert_msg(n > 0, "read: %s", strerror(errno));
	c->len += (size_t)n;
	return 1;
}

int egt_conn_ready(egt_conn *c, int timeout_ms)
{
	double deadline = egt_now() + timeout_ms / 1000.0;
	uint64_t body;
	size_t h;

	while (!egt_frame_parse(c->buf, c->len, &h, &body)) {
		double left = deadline - egt_now();

		if (left <= 0 || !conn_fill(c, (int)(left * 1000) + 1))
			return 0;
	}
	return 1;
}

Engram__V1__Response *egt_conn_recv(egt_conn *c, int timeout_ms)
{
	Engram__V1__Response *r;
	uint64_t body;
	size_t h;

	if (!egt_conn_ready(c, timeout_ms)) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		char byte;

		/* EOF, or nothing in time */
		ck_assert_msg(poll(&p, 1, 0) == 1 && recv(c->fd, &byte, 1, MSG_PEEK) <= 0,
		              "no response within %d ms", timeout_ms);
		return NULL;
	}
	egt_frame_parse(c->buf, c->len, &h, &body);
	r = engram__v1__response__unpack(NULL, body, c->buf + h);
	ck_assert_msg(r != NULL, "a response frame does not unpack");
	memmove(c->buf, c->buf + h + body, c->len - h - body);
	c->len -= h + body;
	return r;
}

void egt_conn_close(egt_conn *c)
{
	close(c->fd);
	free(c->buf);
	c->buf = NULL;
	c->fd = -1;
}
