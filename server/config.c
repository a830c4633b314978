/* config.c - command-line flags and the `key = value` config file.
 *
 * A config file line mirrors a flag without its dashes ("table = a=/srv/a",
 * "max-rows = 1M"); '#' starts a comment. Entries apply where --config
 * appears, so later flags override earlier file values; table and listen
 * accumulate. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

struct ed_config ed_cfg = {
	.max_frame = 64u << 20,
	.max_rows = 1u << 22,
	.max_output = 64u << 20,
	.max_shm = 1u << 30,
	.socket_mode = 0660,
	.verify = ED_VERIFY_NEW,
	.drain_timeout = 10,
};

static const char usage[] =
	"usage: engramd --table NAME=DIR [--table NAME=DIR ...] [options]\n"
	"  --table NAME=DIR     serve the table in DIR (may be a symlink) as NAME\n"
	"  --listen ADDR        unix:PATH or tcp:HOST:PORT (repeatable); systemd\n"
	"                       socket activation adds its sockets\n"
	"  --threads N          event-loop threads (default: one per core)\n"
	"  --max-frame BYTES    largest request accepted (default 64M)\n"
	"  --max-rows N         rows per request (default 4M)\n"
	"  --max-output BYTES   answer bytes a connection may hold (being gathered or\n"
	"                       unsent) before it is not read (default 64M)\n"
	"  --max-output-total BYTES  answer bytes all connections together may hold, at\n"
	"                       least 1M; a larger answer gets TOO_LARGE (default: a\n"
	"                       quarter of RAM)\n"
	"  --max-shm BYTES      largest shared buffer a unix client may attach (default 1G)\n"
	"  --socket-mode OCTAL  mode of unix socket files (default 0660)\n"
	"  --watch SECONDS      poll tables for a new generation or symlink target\n"
	"  --verify MODE        check every chunk checksum before serving: 'new' (default:\n"
	"                       a newly published version directory), 'all' (also at\n"
	"                       start and after in-place patches) or 'none'\n"
	"  --drain-timeout SEC  how long SIGTERM waits for in-flight requests (default 10)\n"
	"  --http HOST:PORT     serve GET /metrics (Prometheus) and /healthz over HTTP\n"
	"  --config FILE        read `key = value` lines, keys as the flags above\n"
	"  --log-level LEVEL    error, warn, info (default) or debug\n"
	"  --version, --help\n";

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'B')
		end += *end == 'i' ? (end[1] == 'B' ? 2 : 1) : 1;
	if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_uint(const char *s, unsigned *out)
{
	uint64_t v;

	if (parse_size(s, &v) < 0 || v > 1000000)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		ed_error("out of memory reading the configuration");
		exit(1);
	}
	return p;
}

static int add_table(const char *arg)
{
	const char *eq = strchr(arg, '=');
	struct ed_table_arg *t;

	if (!eq || eq == arg || !eq[1] || eq - arg > 63) {
		ed_error("--table wants NAME=DIR (name of 1..63 bytes), got '%s'", arg);
		return -1;
	}
	for (size_t i = 0; i < ed_cfg.n_tables; i++) {
		if (strlen(ed_cfg.tables[i].name) == (size_t)(eq - arg) &&
		    memcmp(ed_cfg.tables[i].name, arg, (size_t)(eq - arg)) == 0) {
			ed_error("table name '%.*s' given twice", (int)(eq - arg), arg);
			return -1;
		}
	}
	ed_cfg.tables = xrealloc(ed_cfg.tables, (ed_cfg.n_tables + 1) * sizeof(*t));
	t = &ed_cfg.tables[ed_cfg.n_tables++];
	t->name = strndup(arg, (size_t)(eq - arg));
	t->dir = strdup(eq + 1);
	if (!t->name || !t->dir) {
		ed_error("out of memory reading the configuration");
		exit(1);
	}
	return 0;
}

static int read_file(const char *path, int depth);

/* Applies one setting by its long name; shared by flags and the file. */
static int apply(const char *key, const char *val, int depth)
{
	uint64_t v;
	enum ed_log_level level;

	if (strcmp(key, "table") == 0)
		return add_table(val);
	if (strcmp(key, "listen") == 0) {
		ed_cfg.listen = xrealloc(ed_cfg.listen, (ed_cfg.n_listen + 1) * sizeof(char *));
		ed_cfg.listen[ed_cfg.n_listen] = strdup(val);
		if (!ed_cfg.listen[ed_cfg.n_listen++])
			exit(1);
		return 0;
	}
	if (strcmp(key, "threads") == 0) {
		if (parse_uint(val, &ed_cfg.threads) < 0 || ed_cfg.threads > 1024)
			goto bad;
		return 0;
	}
	if (strcmp(key, "max-frame") == 0 || strcmp(key, "max-rows") == 0 ||
	    strcmp(key, "max-output") == 0) {
		if (parse_size(val, &v) < 0 || v == 0)
			goto bad;
		if (key[4] == 'f') {
			if (v > (1ull << 31)) /* inbuf sizes stay well inside size_t and int */
				goto bad;
			ed_cfg.max_frame = v;
		} else if (key[4] == 'r') {
			ed_cfg.max_rows = v;
		} else {
			ed_cfg.max_output = v;
		}
		return 0;
	}
	if (strcmp(key, "max-output-total") == 0) {
		if (parse_size(val, &v) < 0 || v < (1u << 20))
			goto bad;
		ed_cfg.max_output_total = v;
		return 0;
	}
	if (strcmp(key, "max-shm") == 0) {
		if (parse_size(val, &v) < 0 || v == 0)
			goto bad;
		ed_cfg.max_shm = v;
		return 0;
	}
	if (strcmp(key, "http") == 0) {
		free(ed_cfg.http);
		ed_cfg.http = strdup(val);
		if (!ed_cfg.http)
			exit(1);
		return 0;
	}
	if (strcmp(key, "watch") == 0)
		return parse_uint(val, &ed_cfg.watch) < 0 ? (ed_error("bad watch '%s'", val), -1) : 0;
	if (strcmp(key, "drain-timeout") == 0)
		return parse_uint(val, &ed_cfg.drain_timeout) < 0 ? (ed_error("bad drain-timeout '%s'", val), -1) : 0;
	if (strcmp(key, "socket-mode") == 0) {
		char *end;
		unsigned long m = strtoul(val, &end, 8);
		if (*end || end == val || m > 0777)
			goto bad;
		ed_cfg.socket_mode = (mode_t)m;
		return 0;
	}
	if (strcmp(key, "verify") == 0) {
		if (strcmp(val, "none") == 0)
			ed_cfg.verify = ED_VERIFY_NONE;
		else if (strcmp(val, "new") == 0)
			ed_cfg.verify = ED_VERIFY_NEW;
		else if (strcmp(val, "all") == 0)
			ed_cfg.verify = ED_VERIFY_ALL;
		else
			goto bad;
		return 0;
	}
	if (strcmp(key, "log-level") == 0) {
		if (ed_log_parse_level(val, &level) < 0)
			goto bad;
		ed_log_set_level(level);
		return 0;
	}
	if (strcmp(key, "config") == 0)
		return read_file(val, depth + 1);
	ed_error("unknown setting '%s'", key);
	return -1;
bad:
	ed_error("bad value for %s: '%s'", key, val);
	return -1;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int read_file(const char *path, int depth)
{
	char line[4096];
	unsigned lineno = 0;
	int rc = 0;
	FILE *f;

	if (depth > 4) {
		ed_error("%s: config files nest too deep", path);
		return -1;
	}
	f = fopen(path, "r");
	if (!f) {
		ed_error("cannot read config %s: %s", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		char *key = line, *eq, *val;

		lineno++;
		if ((val = strchr(line, '#')))
			*val = '\0';
		key = trim(line);
		if (!*key)
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			ed_error("%s:%u: expected key = value", path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		val = trim(eq + 1);
		key = trim(key);
		if (apply(key, val, depth) < 0) {
			ed_error("%s:%u: in this line", path, lineno);
			rc = -1;
		}
	}
	fclose(f);
	return rc;
}

int ed_config_parse(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "table", required_argument, NULL, 0 },
		{ "listen", required_argument, NULL, 0 },
		{ "threads", required_argument, NULL, 0 },
		{ "max-frame", required_argument, NULL, 0 },
		{ "max-rows", required_argument, NULL, 0 },
		{ "max-output", required_argument, NULL, 0 },
		{ "max-output-total", required_argument, NULL, 0 },
		{ "max-shm", required_argument, NULL, 0 },
		{ "socket-mode", required_argument, NULL, 0 },
		{ "watch", required_argument, NULL, 0 },
		{ "drain-timeout", required_argument, NULL, 0 },
		{ "http", required_argument, NULL, 0 },
		{ "config", required_argument, NULL, 0 },
		{ "log-level", required_argument, NULL, 0 },
		{ "verify", required_argument, NULL, 0 },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c, idx;

	while ((c = getopt_long(argc, argv, "hV", opts, &idx)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return 1;
		}
		if (c == 'V') {
			printf("engramd %s (protocol %d)\n", ED_VERSION, ED_PROTOCOL_VERSION);
			return 1;
		}
		if (c != 0) {
			fputs(usage, stderr);
			return -1;
		}
		if (apply(opts[idx].name, optarg ? optarg : "1", 0) < 0)
			return -1;
	}
	if (optind < argc) {
		ed_error("unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (ed_cfg.n_tables == 0) {
		ed_error("no table to serve: give --table NAME=DIR");
		return -1;
	}
	if (ed_cfg.max_output_total == 0) {
		long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);

		ed_cfg.max_output_total = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 4
		                                                 : 1ull << 30;
	}
	return 0;
}
