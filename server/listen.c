/* listen.c - listeners. Sockets are made here rather than by libuv so that
 * systemd's inherited sockets and ours are handled alike: the main loop polls
 * each for readability and accepts with accept4, and a worker loop adopts the
 * connected fd.
 *
 * At the open-file limit accept fails while the listener stays readable, so
 * polling on would spin: every listener then stops polling, and a timer
 * tries again a little later; clients wait in the backlog meanwhile. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "config.h"
#include "listen.h"
#include "log.h"

#define MAX_LISTENERS 32
#define RETRY_MS 100        /* accepting again after running out of fds */
#define LOG_EVERY_MS 1000   /* at most one line about it per second */

struct listener {
	uv_poll_t poll;
	int fd;
	char *unlink_path;   /* unix socket file we created, removed at exit */
};

static struct listener listeners[MAX_LISTENERS];
static size_t n_listeners;
static void (*hand)(int fd);
static uv_timer_t retry_timer;
static uint64_t last_log_ms;       /* uv_now of the last line about the limit */
static unsigned long unlogged;     /* failures since that line */

static void on_readable(uv_poll_t *p, int status, int events);

static void poll_all(int on)
{
	for (size_t i = 0; i < n_listeners; i++) {
		if (on)
			uv_poll_start(&listeners[i].poll, UV_READABLE, on_readable);
		else
			uv_poll_stop(&listeners[i].poll);
	}
}

static void on_retry(uv_timer_t *t)
{
	(void)t;
	poll_all(1);
}

/* Out of fds (or kernel memory): stop accepting for RETRY_MS, and say so
 * at most once a second. */
static void at_limit(int err)
{
	uint64_t now = uv_now(retry_timer.loop);
	struct rlimit rl = { 0 };

	poll_all(0);
	uv_timer_start(&retry_timer, on_retry, RETRY_MS, 0);
	if (last_log_ms && now - last_log_ms < LOG_EVERY_MS) {
		unlogged++;
		return;
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	ed_warn("accept: %s (open-file limit %llu); not accepting for %d ms (%lu more times "
	        "since the last message)", strerror(err), (unsigned long long)rl.rlim_cur, RETRY_MS,
	        unlogged);
	last_log_ms = now;
	unlogged = 0;
}

static void on_readable(uv_poll_t *p, int status, int events)
{
	struct listener *l = p->data;

	(void)events;
	if (status < 0)
		return;
	for (int i = 0; i < 64; i++) { /* bounded: other loop work waits too */
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				at_limit(errno);
			return;
		}
		hand(fd);
	}
}

/* Each connection is an fd: take the most the hard limit allows. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	unsigned long long was;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	was = (unsigned long long)rl.rlim_cur;
	if (rl.rlim_cur == rl.rlim_max) {
		ed_info("open-file limit: %llu (the hard limit)", was);
		return;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		ed_warn("cannot raise the open-file limit from %llu: %s", was, strerror(errno));
	else
		ed_info("raised the open-file limit from %llu to %llu", was,
		        (unsigned long long)rl.rlim_max);
}

static int open_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		ed_error("unix socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		/* stale unless a live daemon still answers on it */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			close(fd);
			ed_error("%s is in use by a running process", path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
		ed_info("removed stale socket %s", path);
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, ed_cfg.socket_mode) < 0 || listen(fd, SOMAXCONN) < 0) {
		ed_error("cannot listen on unix:%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int open_tcp(const char *hostport)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
	int fd = -1, one = 1, rc;
	size_t hl;

	if (!colon || colon == hostport || !colon[1]) {
		ed_error("tcp address wants tcp:HOST:PORT with an explicit host, got tcp:%s", hostport);
		return -1;
	}
	hl = (size_t)(colon - hostport);
	if (hostport[0] == '[' && colon[-1] == ']') { /* [v6]:port */
		hostport++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -1;
	memcpy(host, hostport, hl);
	host[hl] = '\0';
	rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc) {
		ed_error("tcp:%s: %s", hostport, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
		ed_error("cannot listen on tcp:%s: %s", hostport, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static int add(uv_loop_t *loop, int fd, const char *unlink_path, const char *what)
{
	struct listener *l;

	if (n_listeners == MAX_LISTENERS) {
		ed_error("too many listeners (max %d)", MAX_LISTENERS);
		close(fd);
		return -1;
	}
	l = &listeners[n_listeners];
	if (uv_poll_init(loop, &l->poll, fd) != 0) {
		close(fd);
		return -1;
	}
	l->fd = fd;
	l->poll.data = l;
	l->unlink_path = unlink_path ? strdup(unlink_path) : NULL;
	uv_poll_start(&l->poll, UV_READABLE, on_readable);
	n_listeners++;
	ed_info("listening on %s", what);
	return 0;
}

int ed_listen_open(uv_loop_t *loop, void (*on_fd)(int fd))
{
	int n = sd_listen_fds(1);

	hand = on_fd;
	raise_fd_limit();
	uv_timer_init(loop, &retry_timer);
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;

		if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			ed_warn("systemd fd %d is not a listening stream socket; ignored", fd);
			continue;
		}
		/* accept must never block the loop, even after a spurious wakeup */
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (add(loop, fd, NULL, "a systemd socket") < 0)
			return -1;
	}
	for (size_t i = 0; i < ed_cfg.n_listen; i++) {
		const char *a = ed_cfg.listen[i];
		int fd;

		if (strncmp(a, "unix:", 5) == 0) {
			fd = open_unix(a + 5);
			if (fd < 0 || add(loop, fd, a + 5, a) < 0)
				return -1;
		} else if (strncmp(a, "tcp:", 4) == 0) {
			fd = open_tcp(a + 4);
			if (fd < 0 || add(loop, fd, NULL, a) < 0)
				return -1;
		} else {
			ed_error("unknown listen address '%s': want unix:PATH or tcp:HOST:PORT", a);
			return -1;
		}
	}
	if (n_listeners == 0) {
		ed_error("nothing to listen on: give --listen unix:PATH or tcp:HOST:PORT");
		return -1;
	}
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	struct listener *l = h->data;

	close(l->fd);
	if (l->unlink_path) {
		unlink(l->unlink_path);
		free(l->unlink_path);
		l->unlink_path = NULL;
	}
}

void ed_listen_close(void)
{
	if (!uv_is_closing((uv_handle_t *)&retry_timer))
		uv_close((uv_handle_t *)&retry_timer, NULL);
	for (size_t i = 0; i < n_listeners; i++) {
		uv_poll_stop(&listeners[i].poll);
		uv_close((uv_handle_t *)&listeners[i].poll, on_closed);
	}
	n_listeners = 0;
}
