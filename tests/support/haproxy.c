/* haproxy.c - Debian's haproxy in front of two engramd replicas, run with
 * the example config itself (examples/haproxy/haproxy.cfg, addresses from
 * the environment), and its admin socket read for each server's state.
 * Used by the tests and the benchmarks, so it reports failures instead of
 * asserting. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "egtest.h"
#include "egtest_haproxy.h"

const char *egt_haproxy_bin(void)
{
	static const char *const where[] = { "/usr/sbin/haproxy", "/usr/local/sbin/haproxy",
	                                     "/usr/bin/haproxy" };
	const char *env = getenv("HAPROXY");

	if (env && *env)
		return access(env, X_OK) == 0 ? env : NULL;
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++)
		if (access(where[i], X_OK) == 0)
			return where[i];
	return NULL;
}

/* The answer to an admin command, into buf (NUL-terminated); -1 when the
 * socket cannot be reached. */
static int admin(const egt_haproxy *h, const char *cmd, char *buf, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t got = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(h->stats) >= sizeof(sa.sun_path))
		goto fail;
	memcpy(sa.sun_path, h->stats, strlen(h->stats) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
		goto fail;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 2000) != 1)
			goto fail;
		r = read(fd, buf + got, len - 1 - got);
		if (r < 0)
			goto fail;
		if (r == 0 || (got += (size_t)r) == len - 1)
			break;
	}
	buf[got] = '\0';
	close(fd);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

int egt_haproxy_status(const egt_haproxy *h, const char *server, char *out, size_t len)
{
	char buf[16384], key[64];
	const char *line;

	if (admin(h, "show stat\n", buf, sizeof(buf)) < 0)
		return -1;
	snprintf(key, sizeof(key), "engramd,%s,", server);
	for (line = buf; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		const char *f = line;

		if (strncmp(line, key, strlen(key)) != 0)
			continue;
		for (int i = 0; i < 17 && f; i++) /* "status" is field 18 of show stat */
			if ((f = strchr(f, ',')))
				f++;
		if (!f)
			return -1;
		snprintf(out, len, "%.*s", (int)strcspn(f, ",\n"), f);
		return 0;
	}
	return -1;
}

/* Starts haproxy on the example config, the addresses in its environment
 * (the config reads them as "${ENGRAM_R1}" and so on). */
static pid_t spawn_haproxy(const egt_haproxy *h, const char *cfg, const char *const servers[2],
                           const int http_ports[2])
{
	extern char **environ;
	char vars[6][400];
	char *env[512];
	const char *argv[] = { egt_haproxy_bin(), "-f", cfg, "-db", NULL };
	egt_spawn_opts so = { .log = h->log, .stdout_to_log = 1, .envp = env };
	size_t n = 0;

	snprintf(vars[0], sizeof(vars[0]), "ENGRAM_LB_BIND=%s", h->bind);
	snprintf(vars[1], sizeof(vars[1]), "ENGRAM_LB_STATS=%s", h->stats);
	snprintf(vars[2], sizeof(vars[2]), "ENGRAM_R1=%s", servers[0]);
	snprintf(vars[3], sizeof(vars[3]), "ENGRAM_R2=%s", servers[1]);
	snprintf(vars[4], sizeof(vars[4]), "ENGRAM_R1_HTTP_PORT=%d", http_ports[0]);
	snprintf(vars[5], sizeof(vars[5]), "ENGRAM_R2_HTTP_PORT=%d", http_ports[1]);
	for (size_t i = 0; i < 6; i++)
		env[n++] = vars[i];
	for (char **e = environ; *e && n + 1 < sizeof(env) / sizeof(env[0]); e++)
		if (strncmp(*e, "ENGRAM_", 7) != 0)
			env[n++] = *e;
	env[n] = NULL;
	return egt_spawn(argv, &so);
}

int egt_haproxy_start(egt_haproxy *h, const char *dir, int port, const char *const servers[2],
                      const int http_ports[2], char *err, size_t errlen)
{
	const char *cfg = getenv("EGT_HAPROXY_CFG");
	char st[2][32];
	double deadline;

	if (!cfg)
		cfg = "examples/haproxy/haproxy.cfg";
	memset(h, 0, sizeof(*h));
	h->port = port;
	snprintf(h->bind, sizeof(h->bind), "127.0.0.1:%d", port);
	snprintf(h->stats, sizeof(h->stats), "%s/haproxy.sock", dir);
	snprintf(h->log, sizeof(h->log), "%s/haproxy.log", dir);
	if (!egt_haproxy_bin()) {
		snprintf(err, errlen, "haproxy is not installed");
		return -1;
	}
	h->pid = spawn_haproxy(h, cfg, servers, http_ports);
	if (h->pid < 0) {
		snprintf(err, errlen, "spawning haproxy: %s", strerror((int)-h->pid));
		h->pid = 0;
		return -1;
	}
	/* both replicas healthy: HAProxy sends to either */
	deadline = egt_now() + 15;
	while (egt_haproxy_status(h, "r1", st[0], sizeof(st[0])) < 0 ||
	       egt_haproxy_status(h, "r2", st[1], sizeof(st[1])) < 0 ||
	       strcmp(st[0], "UP") != 0 || strcmp(st[1], "UP") != 0) {
		if (waitpid(h->pid, NULL, WNOHANG) == h->pid || egt_now() > deadline) {
			snprintf(err, errlen, "haproxy did not come up with both replicas UP "
			         "(log: %s)", h->log);
			egt_haproxy_stop(h);
			return -1;
		}
		usleep(20000);
	}
	return 0;
}

void egt_haproxy_stop(egt_haproxy *h)
{
	if (h->pid <= 0)
		return;
	kill(h->pid, SIGTERM);
	waitpid(h->pid, NULL, 0);
	h->pid = 0;
}
