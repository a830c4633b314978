/* config.c - command-line flags and the `key = value` config file.
 *
 * One table, settings[], drives both and the usage text: a row per setting
 * (name, what its value is, where it goes, bounds, help). A config file line
 * mirrors a flag without its dashes ("table = a=/srv/a", "max-rows = 1M");
 * '#' starts a comment. Entries apply where --config appears, so later flags
 * override earlier file values; table and listen accumulate. Defaults are
 * the initial values of ed_cfg. */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
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
	.io_depth = 64,
	.urgent_rows = 16384,
};

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
	memset(t, 0, sizeof(*t));
	t->name = strndup(arg, (size_t)(eq - arg));
	t->dir = strdup(eq + 1);
	if (!t->name || !t->dir) {
		ed_error("out of memory reading the configuration");
		exit(1);
	}
	return 0;
}

static int add_listen(const char *arg)
{
	ed_cfg.listen = xrealloc(ed_cfg.listen, (ed_cfg.n_listen + 1) * sizeof(char *));
	ed_cfg.listen[ed_cfg.n_listen] = strdup(arg);
	if (!ed_cfg.listen[ed_cfg.n_listen++])
		exit(1);
	return 0;
}

static int set_log_level(const char *arg)
{
	enum ed_log_level level;

	if (ed_log_parse_level(arg, &level) < 0)
		return 1;
	ed_log_set_level(level);
	return 0;
}

/* --cache-bytes / --page-budget NAME=SIZE wait until every table is known. */
struct per_table {
	char *name;
	uint64_t v;
	int page;            /* --page-budget, else --cache-bytes */
};
static struct per_table *per_table;
static size_t n_per_table;

/* [NAME=]SIZE: a table's own budget, or the one shared by the others */
static int table_size(const char *val, int page)
{
	const char *eq = strchr(val, '=');
	uint64_t v;

	if (parse_size(eq ? eq + 1 : val, &v) < 0 || (eq && (v == 0 || eq == val)))
		return 1;
	if (!eq) {
		*(page ? &ed_cfg.page_budget : &ed_cfg.cache_bytes) = v;
		return 0;
	}
	per_table = xrealloc(per_table, (n_per_table + 1) * sizeof(*per_table));
	per_table[n_per_table].name = strndup(val, (size_t)(eq - val));
	per_table[n_per_table].v = v;
	per_table[n_per_table].page = page;
	if (!per_table[n_per_table++].name)
		exit(1);
	return 0;
}

static int set_cache_bytes(const char *val)
{
	return table_size(val, 0);
}

static int set_page_budget(const char *val)
{
	return table_size(val, 1);
}

static int apply_per_table(void)
{
	int rc = 0;

	for (size_t i = 0; i < n_per_table; i++) {
		struct per_table *p = &per_table[i];
		size_t k = 0;

		while (k < ed_cfg.n_tables && strcmp(ed_cfg.tables[k].name, p->name) != 0)
			k++;
		if (k == ed_cfg.n_tables && !rc) {
			ed_error("%s names no table: '%s'", p->page ? "page-budget" : "cache-bytes",
			         p->name);
			rc = -1;
		} else if (k < ed_cfg.n_tables) {
			*(p->page ? &ed_cfg.tables[k].page_budget : &ed_cfg.tables[k].cache_bytes) = p->v;
		}
		free(p->name);
	}
	free(per_table);
	per_table = NULL;
	n_per_table = 0;
	return rc;
}

static int read_file(const char *path, int depth);

/* How a setting's value is read. */
enum kind {
	K_SIZE,  /* uint64_t: a number with an optional K/M/G/T suffix, min..max */
	K_UINT,  /* unsigned: the same; max 0 stands for 1000000 */
	K_MODE,  /* mode_t: octal, at most max */
	K_ENUM,  /* int: the index of the value in names */
	K_STR,   /* char *: a copy; a later value replaces it */
	K_CALL,  /* call(value): 0, 1 for a bad value, -1 after its own error */
	K_FILE,  /* a config file read where it is named */
};

/* One daemon setting: the flag --NAME and the config file key NAME. */
struct setting {
	const char *name;
	const char *arg;          /* the value, as the usage text shows it */
	enum kind kind;
	size_t field;             /* offsetof(struct ed_config, ...) */
	uint64_t min, max;        /* K_SIZE, K_UINT, K_MODE */
	const char *const *names; /* K_ENUM, in the enum's order */
	int (*call)(const char *val);
	const char *help;         /* usage text; '\n' starts a continuation line */
};

#define F(field) offsetof(struct ed_config, field)

static const char *const verify_names[] = { "none", "new", "all", NULL };

static const struct setting settings[] = {
	{ "table", "NAME=DIR", K_CALL, .call = add_table,
	  .help = "serve the table in DIR (may be a symlink) as NAME" },
	{ "listen", "ADDR", K_CALL, .call = add_listen,
	  .help = "unix:PATH or tcp:HOST:PORT (repeatable); systemd\n"
	          "socket activation adds its sockets" },
	{ "threads", "N", K_UINT, F(threads), .max = 1024,
	  .help = "event-loop threads (default: one per core)" },
	/* inbuf sizes stay well inside size_t and int */
	{ "max-frame", "BYTES", K_SIZE, F(max_frame), 1, 1ull << 31,
	  .help = "largest request accepted (default 64M)" },
	{ "max-rows", "N", K_SIZE, F(max_rows), 1, UINT64_MAX,
	  .help = "rows per request (default 4M)" },
	{ "max-output", "BYTES", K_SIZE, F(max_output), 1, UINT64_MAX,
	  .help = "answer bytes a connection may hold (being gathered or\n"
	          "unsent) before it is not read (default 64M)" },
	{ "max-output-total", "BYTES", K_SIZE, F(max_output_total), 1u << 20, UINT64_MAX,
	  .help = "answer bytes all connections together may hold, at\n"
	          "least 1M; a larger answer gets TOO_LARGE (default: a\n"
	          "quarter of RAM)" },
	{ "max-shm", "BYTES", K_SIZE, F(max_shm), 1, UINT64_MAX,
	  .help = "largest shared buffer a unix client may attach (default 1G)" },
	{ "socket-mode", "OCTAL", K_MODE, F(socket_mode), 0, 0777,
	  .help = "mode of unix socket files (default 0660)" },
	{ "watch", "SECONDS", K_UINT, F(watch),
	  .help = "poll tables for a new generation or symlink target" },
	{ "verify", "MODE", K_ENUM, F(verify), .names = verify_names,
	  .help = "check every chunk checksum before serving: 'new' (default:\n"
	          "a newly published version directory), 'all' (also at\n"
	          "start and after in-place patches) or 'none'" },
	{ "drain-timeout", "SEC", K_UINT, F(drain_timeout),
	  .help = "how long SIGTERM waits for in-flight requests (default 10)" },
	{ "drain-delay", "SEC", K_UINT, F(drain_delay), 0, 3600,
	  .help = "on SIGTERM, first serve on this long with /healthz at 503,\n"
	          "so a load balancer stops sending before the sockets close\n"
	          "(default 0; set it above the balancer's check interval x fall)" },
	{ "http", "HOST:PORT", K_STR, F(http),
	  .help = "serve GET /metrics (Prometheus) and /healthz over HTTP" },
	{ "cache-bytes", "[NAME=]SIZE", K_CALL, .call = set_cache_bytes,
	  .help = "row cache: keep hot rows in SIZE of DRAM, filled by direct\n"
	          "reads (for tables much larger than RAM); without NAME=,\n"
	          "shared by the tables without their own, by size" },
	{ "page-budget", "[NAME=]SIZE", K_CALL, .call = set_page_budget,
	  .help = "page-cache mode: keep at most SIZE of a table's pages\n"
	          "resident (default: no limit, the kernel decides)" },
	{ "io-depth", "N", K_UINT, F(io_depth), 1, 4096,
	  .help = "disk reads in flight at once (default 64)" },
	{ "urgent-rows", "N", K_SIZE, F(urgent_rows), 0, UINT64_MAX,
	  .help = "requests of at most N rows go before larger ones (default 16384)" },
	{ "config", "FILE", K_FILE,
	  .help = "read `key = value` lines, keys as the flags above" },
	{ "log-level", "LEVEL", K_CALL, .call = set_log_level,
	  .help = "error, warn, info (default) or debug" },
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static void *field(const struct setting *s)
{
	return (char *)&ed_cfg + s->field;
}

static uint64_t max_of(const struct setting *s)
{
	if (s->max)
		return s->max;
	return s->kind == K_UINT ? 1000000 : UINT64_MAX;
}

/* Stores val in s's field; 0, or 1 when val is not a value of s's kind. */
static int store(const struct setting *s, const char *val)
{
	uint64_t v;
	char *end;

	switch (s->kind) {
	case K_SIZE:
	case K_UINT:
		if (parse_size(val, &v) < 0 || v < s->min || v > max_of(s))
			return 1;
		if (s->kind == K_SIZE)
			*(uint64_t *)field(s) = v;
		else
			*(unsigned *)field(s) = (unsigned)v;
		return 0;
	case K_MODE:
		v = strtoul(val, &end, 8);
		if (*end || end == val || v > max_of(s))
			return 1;
		*(mode_t *)field(s) = (mode_t)v;
		return 0;
	case K_ENUM:
		for (int i = 0; s->names[i]; i++) {
			if (strcmp(val, s->names[i]) == 0) {
				*(int *)field(s) = i;
				return 0;
			}
		}
		return 1;
	case K_STR:
		free(*(char **)field(s));
		*(char **)field(s) = strdup(val);
		if (!*(char **)field(s))
			exit(1);
		return 0;
	default:
		return 1; /* K_CALL and K_FILE have no field */
	}
}

/* Applies setting s; depth is how deep in config files it was read. */
static int apply(const struct setting *s, const char *val, int depth)
{
	int rc;

	if (s->kind == K_FILE)
		return read_file(val, depth + 1);
	rc = s->kind == K_CALL ? s->call(val) : store(s, val);
	if (rc > 0)
		ed_error("bad value for %s: '%s'", s->name, val);
	return rc ? -1 : 0;
}

/* A config file line: applies the setting called key. */
static int apply_key(const char *key, const char *val, int depth)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (strcmp(key, settings[i].name) == 0)
			return apply(&settings[i], val, depth);
	ed_error("unknown setting '%s'", key);
	return -1;
}

/* "--NAME ARG" of a setting into buf; its length. */
static int flag_of(const struct setting *s, char *buf, size_t len)
{
	return snprintf(buf, len, "--%s %s", s->name, s->arg);
}

static void usage(FILE *f)
{
	char flag[64];
	int width = 0;

	for (size_t i = 0; i < NSETTINGS; i++) {
		int n = flag_of(&settings[i], flag, sizeof(flag));

		width = n > width ? n : width;
	}
	fputs("usage: engramd [--table NAME=DIR ...] [options]   (no table: serves nothing)\n", f);
	for (size_t i = 0; i < NSETTINGS; i++) {
		const char *h = settings[i].help, *nl;

		flag_of(&settings[i], flag, sizeof(flag));
		fprintf(f, "  %-*s  ", width, flag);
		while ((nl = strchr(h, '\n'))) {
			fprintf(f, "%.*s\n%*s", (int)(nl - h), h, width + 4, "");
			h = nl + 1;
		}
		fprintf(f, "%s\n", h);
	}
	fputs("  --version, --help\n", f);
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
		if (apply_key(key, val, depth) < 0) {
			ed_error("%s:%u: in this line", path, lineno);
			rc = -1;
		}
	}
	fclose(f);
	return rc;
}

int ed_config_parse(int argc, char **argv)
{
	struct option opts[NSETTINGS + 3];
	int c;

	for (size_t i = 0; i < NSETTINGS; i++)
		opts[i] = (struct option){ settings[i].name, required_argument, NULL, 256 + (int)i };
	opts[NSETTINGS] = (struct option){ "help", no_argument, NULL, 'h' };
	opts[NSETTINGS + 1] = (struct option){ "version", no_argument, NULL, 'V' };
	opts[NSETTINGS + 2] = (struct option){ NULL, 0, NULL, 0 };
	while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 1;
		}
		if (c == 'V') {
			printf("engramd %s (protocol %d)\n", ED_VERSION, ED_PROTOCOL_VERSION);
			return 1;
		}
		if (c < 256) {
			usage(stderr);
			return -1;
		}
		if (apply(&settings[c - 256], optarg, 0) < 0)
			return -1;
	}
	if (optind < argc) {
		ed_error("unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (apply_per_table() < 0)
		return -1;
	if (ed_cfg.max_output_total == 0) {
		long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);

		ed_cfg.max_output_total = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 4
		                                                 : 1ull << 30;
	}
	return 0;
}
