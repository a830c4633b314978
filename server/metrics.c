/* metrics.c - Prometheus text exposition of ed_stats and the tables. */
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget.h"
#include "config.h"
#include "metrics.h"
#include "pager.h"
#include "pool.h"
#include "registry.h"
#include "rowcache.h"
#include "stats.h"

struct text {
	char *p;
	size_t len, cap;
	int oom;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = 1;
			return;
		}
		if ((size_t)n < t->cap - t->len)
			break;
		char *q = realloc(t->p, t->cap * 2 + (size_t)n);
		if (!q) {
			t->oom = 1;
			return;
		}
		t->p = q;
		t->cap = t->cap * 2 + (size_t)n;
	}
	t->len += (size_t)n;
}

static void header(struct text *t, const char *name, const char *type, const char *help)
{
	put(t, "# HELP engramd_%s %s\n# TYPE engramd_%s %s\n", name, help, name, type);
}

static void scalar(struct text *t, const char *name, const char *type, const char *help,
                   unsigned long long v)
{
	header(t, name, type, help);
	put(t, "engramd_%s %llu\n", name, v);
}

/* A label value with \, " and newline escaped, as the format asks. */
static void label(struct text *t, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			put(t, "\\%c", *s);
		else if (*s == '\n')
			put(t, "\\n");
		else
			put(t, "%c", *s);
	}
}

static const char *const status_names[ED_STATUS_COUNT] = {
	"ok", "bad_request", "not_found", "out_of_range", "too_large", "unavailable",
	"internal", "other",
};

static void requests(struct text *t)
{
	header(t, "requests_total", "counter", "Requests answered, by response status.");
	for (unsigned i = 0; i < ED_STATUS_COUNT; i++)
		put(t, "engramd_requests_total{status=\"%s\"} %llu\n", status_names[i],
		    (unsigned long long)ed_stat_get(by_status[i]));
	scalar(t, "errors_total", "counter", "Requests answered with a status other than ok.",
	       ed_stat_get(errors));
}

/* One histogram series; labels is "" or `name="value",` (note the comma). */
static void series(struct text *t, const char *name, const char *labels,
                   const atomic_uint_fast64_t *counts, const atomic_uint_fast64_t *sum_ns)
{
	unsigned long long cum = 0;
	size_t ll = strlen(labels);

	for (unsigned i = 0; i < ED_LATENCY_BUCKETS; i++) {
		cum += atomic_load_explicit(&counts[i], memory_order_relaxed);
		if (i < ED_LATENCY_BUCKETS - 1)
			put(t, "engramd_%s_bucket{%sle=\"%g\"} %llu\n", name, labels,
			    (double)ed_latency_bounds_us[i] * 1e-6, cum);
		else
			put(t, "engramd_%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, cum);
	}
	/* the same labels without the trailing comma, in braces */
	put(t, "engramd_%s_sum%s%.*s%s %.9f\n", name, ll ? "{" : "", ll ? (int)ll - 1 : 0, labels,
	    ll ? "}" : "", (double)atomic_load_explicit(sum_ns, memory_order_relaxed) * 1e-9);
	put(t, "engramd_%s_count%s%.*s%s %llu\n", name, ll ? "{" : "", ll ? (int)ll - 1 : 0,
	    labels, ll ? "}" : "", cum);
}

static void latency(struct text *t)
{
	header(t, "lookup_latency_seconds", "histogram",
	       "Lookup (kind=slots) and tokens (kind=tokens) requests, from the complete request "
	       "frame to the response written.");
	series(t, "lookup_latency_seconds", "kind=\"slots\",", ed_stats.latency[ED_LATENCY_SLOTS],
	       &ed_stats.latency_sum_ns[ED_LATENCY_SLOTS]);
	series(t, "lookup_latency_seconds", "kind=\"tokens\",",
	       ed_stats.latency[ED_LATENCY_TOKENS], &ed_stats.latency_sum_ns[ED_LATENCY_TOKENS]);
}

/* The I/O path: rows found in memory or read first, the disk reads. */
static void io(struct text *t)
{
	unsigned long q[ED_LANES];

	scalar(t, "rows_warm_total", "counter",
	       "Rows found in memory (resident pages, or the row cache) when gathered.",
	       ed_stat_get(warm_rows));
	scalar(t, "rows_cold_total", "counter", "Rows read from disk before they were gathered.",
	       ed_stat_get(cold_rows));
	scalar(t, "disk_reads_total", "counter", "Reads of table files by the I/O thread.",
	       ed_stat_get(disk_reads));
	scalar(t, "disk_read_bytes_total", "counter", "Bytes read from table files by the I/O thread.",
	       ed_stat_get(disk_read_bytes));
	scalar(t, "disk_reads_inflight", "gauge", "Reads in the kernel now (at most --io-depth).",
	       ed_stat_get(io_inflight));
	header(t, "disk_read_latency_seconds", "histogram",
	       "One read of cold rows, from submission to completion.");
	series(t, "disk_read_latency_seconds", "", ed_stats.io_latency, &ed_stats.io_latency_sum_ns);
	ed_pool_queued(q);
	header(t, "gather_queue", "gauge", "Pieces of responses waiting for a gather thread, by lane.");
	put(t, "engramd_gather_queue{lane=\"urgent\"} %lu\n", q[ED_LANE_URGENT]);
	put(t, "engramd_gather_queue{lane=\"bulk\"} %lu\n", q[ED_LANE_BULK]);
}

/* What the per-table series show of one loaded table, read once per scrape
 * so that the series of a table agree with each other. */
enum table_kind { ANY_TABLE, ROW_CACHE, PAGE_CACHE };

struct table_values {
	const char *name;            /* the table's; the registry list holds it */
	enum table_kind kind;        /* ANY_TABLE: neither cache nor pager */
	uint64_t generation, slots, row_bytes;
	struct ed_rowcache_stats cache;  /* kind ROW_CACHE */
	struct ed_pager_stats pager;     /* kind PAGE_CACHE */
};

#define VALUE(field) offsetof(struct table_values, field)

/* One series per table of the kind it names: its value is the uint64_t at
 * offset `at` of that table's struct table_values. */
static const struct table_series {
	const char *name, *type, *help;
	enum table_kind kind;
	size_t at;
} table_series[] = {
	{ "table_generation", "gauge", "Generation of the snapshot served.", ANY_TABLE,
	  VALUE(generation) },
	{ "table_slots", "gauge", "Slots (rows) of the snapshot served.", ANY_TABLE, VALUE(slots) },
	{ "table_row_bytes", "gauge", "Bytes per row.", ANY_TABLE, VALUE(row_bytes) },
	{ "cache_hits_total", "counter", "Row cache hits.", ROW_CACHE, VALUE(cache.hits) },
	{ "cache_misses_total", "counter", "Row cache misses.", ROW_CACHE, VALUE(cache.misses) },
	{ "cache_evictions_total", "counter", "Rows the row cache dropped to make room.", ROW_CACHE,
	  VALUE(cache.evictions) },
	{ "cache_rows", "gauge", "Rows held by the row cache.", ROW_CACHE, VALUE(cache.entries) },
	{ "cache_memory_bytes", "gauge",
	  "DRAM the row cache allocated (its budget, bookkeeping included).", ROW_CACHE,
	  VALUE(cache.bytes) },
	{ "resident_pages", "gauge", "Page-cache mode: pages of the data file known to be resident.",
	  PAGE_CACHE, VALUE(pager.resident_pages) },
	{ "page_evictions_total", "counter",
	  "Page-cache mode: pages dropped to stay within --page-budget.", PAGE_CACHE,
	  VALUE(pager.evicted_pages) },
	{ "used_pages", "gauge",
	  "Page-cache mode: pages of the data file its newest version uses "
	  "(once all are resident, lookups skip the per-row check).", PAGE_CACHE,
	  VALUE(pager.used_pages) },
};

/* Fills *v from the snapshot tb serves; 0 when it serves none (removed
 * meanwhile). */
static int read_table(struct ed_table *tb, struct table_values *v)
{
	struct ed_snap *s = ed_table_pin(tb);

	if (!s)
		return 0;
	memset(v, 0, sizeof *v);
	v->name = ed_table_name(tb);
	v->generation = s->meta->generation;
	v->slots = s->meta->slots;
	v->row_bytes = s->meta->row_bytes;
	if (s->cache) {
		v->kind = ROW_CACHE;
		ed_rowcache_stats(s->cache, &v->cache);
	} else if (s->pager) {
		v->kind = PAGE_CACHE;
		ed_pager_stats(s->pager, &v->pager);
	}
	ed_snap_unpin(s);
	return 1;
}

static void per_table(struct text *t, const struct table_values *v, size_t n)
{
	for (size_t i = 0; i < sizeof table_series / sizeof table_series[0]; i++) {
		const struct table_series *ts = &table_series[i];

		header(t, ts->name, ts->type, ts->help);
		for (size_t j = 0; j < n; j++) {
			uint64_t value;

			if (ts->kind != ANY_TABLE && ts->kind != v[j].kind)
				continue;
			memcpy(&value, (const char *)&v[j] + ts->at, sizeof value);
			put(t, "engramd_%s{table=\"", ts->name);
			label(t, v[j].name);
			put(t, "\"} %llu\n", (unsigned long long)value);
		}
	}
}

static void tables(struct text *t)
{
	struct ed_table **l;
	size_t n = ed_registry_list(&l), loaded = 0;
	struct table_values *v = calloc(n ? n : 1, sizeof *v);

	if (!v) {
		t->oom = 1;
		ed_registry_list_put(l, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		loaded += (size_t)read_table(l[i], &v[loaded]);
	scalar(t, "tables_configured", "gauge", "Tables engramd is configured to serve.",
	       ed_registry_configured());
	scalar(t, "tables_loaded", "gauge", "Tables with a snapshot being served.", n);
	per_table(t, v, loaded);
	free(v);
	ed_registry_list_put(l, n);
}

/* The process: when it started, what it is, what its malloc holds. */
static void process(struct text *t, uint64_t now)
{
	struct mallinfo2 mi = mallinfo2();

	put(t, "# HELP process_start_time_seconds Start time of the process since unix epoch in "
	       "seconds.\n# TYPE process_start_time_seconds gauge\n"
	       "process_start_time_seconds %llu\n", (unsigned long long)ed_stats.started);
	header(t, "build_info", "gauge", "Always 1; the labels name engramd's version and protocol.");
	put(t, "engramd_build_info{version=\"");
	label(t, ED_VERSION);
	put(t, "\",protocol=\"%d\"} 1\n", ED_PROTOCOL_VERSION);
	scalar(t, "uptime_seconds", "gauge", "Seconds since engramd started.",
	       now > ed_stats.started ? now - ed_stats.started : 0);
	/* glibc's mallinfo2() over every arena: what malloc_stats() prints as
	 * "Total (incl. mmap)". Freed response memory stays in the arenas by
	 * design (main.c), so in_use, not arena, is the figure to watch. */
	scalar(t, "malloc_in_use_bytes", "gauge",
	       "Bytes malloc has handed out and not got back (mallinfo2 uordblks + hblkhd).",
	       (unsigned long long)(mi.uordblks + mi.hblkhd));
	scalar(t, "malloc_arena_bytes", "gauge",
	       "Bytes malloc holds from the system, free ones included (mallinfo2 arena + hblkhd).",
	       (unsigned long long)(mi.arena + mi.hblkhd));
}

char *ed_metrics_render(size_t *len)
{
	struct text t = { .cap = 4096 };
	uint64_t now = (uint64_t)time(NULL);

	t.p = malloc(t.cap);
	if (!t.p)
		return NULL;
	process(&t, now);
	scalar(&t, "connections", "gauge", "Client connections open now.",
	       ed_stat_get(connections));
	scalar(&t, "connections_total", "counter", "Client connections accepted since start.",
	       ed_stat_get(connections_total));
	requests(&t);
	scalar(&t, "output_bytes", "gauge",
	       "Answer bytes in memory (being gathered, queued or written), counted against --max-output-total.",
	       ed_budget_used());
	scalar(&t, "output_limit_bytes", "gauge", "--max-output-total: the bound on output_bytes.",
	       ed_cfg.max_output_total);
	scalar(&t, "rows_total", "counter", "Rows returned.", ed_stat_get(rows));
	scalar(&t, "response_bytes_total", "counter", "Response bytes written to clients.",
	       ed_stat_get(bytes_out));
	scalar(&t, "reloads_total", "counter", "Snapshots swapped in by a reload.",
	       ed_stat_get(reloads));
	scalar(&t, "reload_failures_total", "counter",
	       "Table versions a reload refused (the old one kept serving).",
	       ed_stat_get(reload_failures));
	latency(&t);
	io(&t);
	tables(&t);
	if (t.oom) {
		free(t.p);
		return NULL;
	}
	*len = t.len;
	return t.p;
}
