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
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define DEFAULTS { \
	.max_frame = 64u << 20, \
	.max_rows = 1u << 22, \
	.max_output = 64u << 20, \
	.max_shm = 1u << 30, \
	.socket_mode = 0660, \
	.verify = ED_VERIFY_NEW, \
	.drain_timeout = 10, \
	.io_depth = 64, \
	.urgent_rows = 16384, \
	.log_level = -1, \
}

struct ed_config ed_cfg = DEFAULTS;
static const struct ed_config defaults = DEFAULTS;
/* where settings go: ed_cfg, or a configuration being read again */
static struct ed_config *cfg = &ed_cfg;
/* the config file line being read, for errors: "FILE:LINE: ..." */
static const char *at_file;
static unsigned at_line;
/* the command line, kept to read the configuration again (SIGHUP) */
static int saved_argc;
static char **saved_argv;

static void cfg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* An error, prefixed with the config file line it comes from. */
static void cfg_error(const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (at_file)
		ed_error("%s:%u: %s", at_file, at_line, msg);
	else
		ed_error("%s", msg);
}

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
		cfg_error("--table wants NAME=DIR (name of 1..63 bytes), got '%s'", arg);
		return -1;
	}
	for (size_t i = 0; i < cfg->n_tables; i++) {
		if (strlen(cfg->tables[i].name) == (size_t)(eq - arg) &&
		    memcmp(cfg->tables[i].name, arg, (size_t)(eq - arg)) == 0) {
			cfg_error("table name '%.*s' given twice", (int)(eq - arg), arg);
			return -1;
		}
	}
	cfg->tables = xrealloc(cfg->tables, (cfg->n_tables + 1) * sizeof(*t));
	t = &cfg->tables[cfg->n_tables++];
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
	cfg->listen = xrealloc(cfg->listen, (cfg->n_listen + 1) * sizeof(char *));
	cfg->listen[cfg->n_listen] = strdup(arg);
	if (!cfg->listen[cfg->n_listen++])
		exit(1);
	return 0;
}

static int set_log_level(const char *arg)
{
	enum ed_log_level level;

	if (ed_log_parse_level(arg, &level) < 0)
		return 1;
	cfg->log_level = (int)level; /* applied once the whole configuration is good */
	return 0;
}

/* --cache-bytes / --page-budget NAME=SIZE wait until every table is known. */
struct per_table {
	char *name;
	uint64_t v;
	int page;            /* --page-budget, else --cache-bytes */
	const char *file;    /* where it was given, for the error */
	unsigned line;
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
		*(page ? &cfg->page_budget : &cfg->cache_bytes) = v;
		return 0;
	}
	per_table = xrealloc(per_table, (n_per_table + 1) * sizeof(*per_table));
	per_table[n_per_table].name = strndup(val, (size_t)(eq - val));
	per_table[n_per_table].v = v;
	per_table[n_per_table].page = page;
	per_table[n_per_table].file = at_file;
	per_table[n_per_table].line = at_line;
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

/* report 0: only frees the list (the configuration already failed). */
static int apply_per_table(int report)
{
	int rc = report ? 0 : -1;

	for (size_t i = 0; i < n_per_table; i++) {
		struct per_table *p = &per_table[i];
		size_t k = 0;

		while (k < cfg->n_tables && strcmp(cfg->tables[k].name, p->name) != 0)
			k++;
		if (k == cfg->n_tables && !rc) {
			at_file = p->file;
			at_line = p->line;
			cfg_error("%s names no table: '%s'", p->page ? "page-budget" : "cache-bytes",
			          p->name);
			at_file = NULL;
			rc = -1;
		} else if (k < cfg->n_tables) {
			*(p->page ? &cfg->tables[k].page_budget : &cfg->tables[k].cache_bytes) = p->v;
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
	{ "busy-poll", "USEC", K_UINT, F(busy_poll), 0, 1000000,
	  .help = "after answering a small request (--urgent-rows), an event\n"
	          "loop polls on without sleeping for USEC microseconds, so a\n"
	          "decode loop's next step finds it awake (a core spins\n"
	          "meanwhile; default 0: never)" },
	{ "config", "FILE", K_FILE,
	  .help = "read `key = value` lines, keys as the flags above" },
	{ "log-level", "LEVEL", K_CALL, .call = set_log_level,
	  .help = "error, warn, info (default) or debug" },
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static void *field(const struct setting *s)
{
	return (char *)cfg + s->field;
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
		cfg_error("bad value for %s: '%s'", s->name, val);
	return rc ? -1 : 0;
}

/* A config file line: applies the setting called key. */
static int apply_key(const char *key, const char *val, int depth)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (strcmp(key, settings[i].name) == 0)
			return apply(&settings[i], val, depth);
	cfg_error("unknown setting '%s'", key);
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
	fputs("  --check-config FILE  check a config file (opening nothing else) and exit\n", f);
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

/* Paths of the config files read, kept for the errors that name them. */
static char **files;
static size_t n_files;

static const char *keep_path(const char *path)
{
	files = xrealloc(files, (n_files + 1) * sizeof(*files));
	if (!(files[n_files] = strdup(path)))
		exit(1);
	return files[n_files++];
}

static int read_file(const char *path, int depth)
{
	const char *up_file = at_file;
	unsigned up_line = at_line;
	char line[4096];
	int rc = 0;
	FILE *f;

	if (depth > 4) {
		cfg_error("%s: config files nest too deep", path);
		return -1;
	}
	f = fopen(path, "r");
	if (!f) {
		cfg_error("cannot read config %s: %s", path, strerror(errno));
		return -1;
	}
	if (!cfg->config)
		cfg->config = strdup(path);
	at_file = keep_path(path);
	at_line = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		char *key = line, *eq, *val;

		at_line++;
		if ((val = strchr(line, '#')))
			*val = '\0';
		key = trim(line);
		if (!*key)
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			cfg_error("expected key = value, got '%s'", key);
			rc = -1;
			break;
		}
		*eq = '\0';
		val = trim(eq + 1);
		key = trim(key);
		rc = apply_key(key, val, depth);
	}
	fclose(f);
	at_file = up_file;
	at_line = up_line;
	return rc;
}

/* Parses argv into cfg. 0 to run, 1 after help or version, -1 on an error
 * (logged). */
static int parse(int argc, char **argv)
{
	struct option opts[NSETTINGS + 3];
	int c;

	for (size_t i = 0; i < NSETTINGS; i++)
		opts[i] = (struct option){ settings[i].name, required_argument, NULL, 256 + (int)i };
	opts[NSETTINGS] = (struct option){ "help", no_argument, NULL, 'h' };
	opts[NSETTINGS + 1] = (struct option){ "version", no_argument, NULL, 'V' };
	opts[NSETTINGS + 2] = (struct option){ NULL, 0, NULL, 0 };
	optind = 0; /* glibc: start afresh, also when reading again */
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
	if (cfg->max_output_total == 0) {
		long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);

		cfg->max_output_total = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 4
		                                                 : 1ull << 30;
	}
	return 0;
}

/* parse() into c, the per-table sizes applied; the error state reset. */
static int parse_into(struct ed_config *c, int argc, char **argv)
{
	int rc;

	*c = defaults;
	cfg = c;
	at_file = NULL;
	rc = parse(argc, argv);
	if (apply_per_table(rc == 0) < 0 && rc == 0)
		rc = -1;
	cfg = &ed_cfg;
	for (size_t i = 0; i < n_files; i++)
		free(files[i]);
	free(files);
	files = NULL;
	n_files = 0;
	return rc;
}

int ed_config_parse(int argc, char **argv)
{
	int rc = parse_into(&ed_cfg, argc, argv);

	if (rc)
		return rc;
	if (ed_cfg.log_level >= 0)
		ed_log_set_level((enum ed_log_level)ed_cfg.log_level);
	saved_argc = argc;
	saved_argv = argv;
	return 0;
}

void ed_config_free(struct ed_config *c)
{
	for (size_t i = 0; i < c->n_tables; i++) {
		free(c->tables[i].name);
		free(c->tables[i].dir);
	}
	free(c->tables);
	for (size_t i = 0; i < c->n_listen; i++)
		free(c->listen[i]);
	free(c->listen);
	free(c->http);
	free(c->config);
	*c = defaults;
}

int ed_config_reread(struct ed_config *out)
{
	int rc = parse_into(out, saved_argc, saved_argv);

	if (rc)
		ed_config_free(out);
	return rc ? -1 : 0;
}

int ed_config_check(const char *path)
{
	char flag[] = "--config", *argv[] = { (char *)"engramd", flag, (char *)path, NULL };
	struct ed_config c;
	int rc = parse_into(&c, 3, argv);

	if (rc) {
		ed_config_free(&c);
		return 1;
	}
	printf("%s: ok: %zu table%s\n", path, c.n_tables, c.n_tables == 1 ? "" : "s");
	for (size_t i = 0; i < c.n_tables; i++) {
		struct stat st;

		printf("  table %s = %s%s\n", c.tables[i].name, c.tables[i].dir,
		       stat(c.tables[i].dir, &st) == 0 ? "" : " (does not exist yet)");
	}
	for (size_t i = 0; i < c.n_listen; i++)
		printf("  listen %s\n", c.listen[i]);
	if (!c.n_listen)
		printf("  listen: only on sockets systemd passes\n");
	printf("  threads %u%s, http %s, verify %s\n", c.threads, c.threads ? "" : " (one per core)",
	       c.http ? c.http : "off", verify_names[c.verify]);
	ed_config_free(&c);
	return 0;
}

/* Whether setting s differs between a and b. */
static int differs(const struct setting *s, const struct ed_config *a, const struct ed_config *b)
{
	const char *pa = (const char *)a + s->field, *pb = (const char *)b + s->field;

	switch (s->kind) {
	case K_SIZE:
		return *(const uint64_t *)pa != *(const uint64_t *)pb;
	case K_UINT:
		return *(const unsigned *)pa != *(const unsigned *)pb;
	case K_MODE:
		return *(const mode_t *)pa != *(const mode_t *)pb;
	case K_ENUM:
		return *(const int *)pa != *(const int *)pb;
	case K_STR: {
		const char *x = *(char *const *)pa, *y = *(char *const *)pb;

		return (x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0);
	}
	default:
		return 0;
	}
}

static int listen_differs(const struct ed_config *a, const struct ed_config *b)
{
	if (a->n_listen != b->n_listen)
		return 1;
	for (size_t i = 0; i < a->n_listen; i++)
		if (strcmp(a->listen[i], b->listen[i]) != 0)
			return 1;
	return 0;
}

/* A kept table whose own cache-bytes or page-budget changed. */
static const char *budget_differs(const struct ed_config *a, const struct ed_config *b)
{
	if (a->cache_bytes != b->cache_bytes || a->page_budget != b->page_budget)
		return "the shared cache-bytes or page-budget";
	for (size_t i = 0; i < a->n_tables; i++)
		for (size_t k = 0; k < b->n_tables; k++)
			if (strcmp(a->tables[i].name, b->tables[k].name) == 0 &&
			    (a->tables[i].cache_bytes != b->tables[k].cache_bytes ||
			     a->tables[i].page_budget != b->tables[k].page_budget))
				return "a table's cache-bytes or page-budget";
	return NULL;
}

size_t ed_config_restart_needed(const struct ed_config *now, const struct ed_config *next)
{
	const char *what;
	size_t n = 0;

	for (size_t i = 0; i < NSETTINGS; i++) {
		if (differs(&settings[i], now, next)) {
			ed_warn("config: %s changed; that needs a restart, ignored", settings[i].name);
			n++;
		}
	}
	if (listen_differs(now, next)) {
		ed_warn("config: listen changed; that needs a restart, ignored");
		n++;
	}
	if ((what = budget_differs(now, next))) {
		ed_warn("config: %s changed; that needs a restart, ignored", what);
		n++;
	}
	return n;
}

/* the rest of a lookup next to its slots: table name, fields, framing */
#define FIXED_SLOTS_ROOM (64u << 10)

int ed_cfg_fixed_slots_fit(void)
{
	return ed_cfg.max_frame > FIXED_SLOTS_ROOM &&
	       ed_cfg.max_rows <= (ed_cfg.max_frame - FIXED_SLOTS_ROOM) / sizeof(uint64_t);
}
