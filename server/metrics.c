/* metrics.c - Prometheus text exposition of ed_stats and the tables. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget.h"
#include "config.h"
#include "metrics.h"
#include "registry.h"
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

static void latency(struct text *t)
{
	unsigned long long cum = 0;

	header(t, "lookup_latency_seconds", "histogram",
	       "Lookup and tokens requests, from the complete request frame to the response written.");
	for (unsigned i = 0; i < ED_LATENCY_BUCKETS; i++) {
		cum += ed_stat_get(latency[i]);
		if (i < ED_LATENCY_BUCKETS - 1)
			put(t, "engramd_lookup_latency_seconds_bucket{le=\"%g\"} %llu\n",
			    (double)ed_latency_bounds_us[i] * 1e-6, cum);
		else
			put(t, "engramd_lookup_latency_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
	}
	put(t, "engramd_lookup_latency_seconds_sum %.9f\n",
	    (double)ed_stat_get(latency_sum_ns) * 1e-9);
	put(t, "engramd_lookup_latency_seconds_count %llu\n", cum);
}

/* One gauge per loaded table. */
static void per_table(struct text *t, size_t loaded, const char *name, const char *help,
                      int which)
{
	header(t, name, "gauge", help);
	for (size_t i = 0; i < loaded; i++) {
		struct ed_table *tb = ed_registry_at(i);
		struct ed_snap *s = ed_table_pin(tb);
		unsigned long long v = which == 0 ? s->meta->generation
		                     : which == 1 ? s->meta->slots : s->meta->row_bytes;

		put(t, "engramd_%s{table=\"", name);
		label(t, ed_table_name(tb));
		put(t, "\"} %llu\n", v);
		ed_snap_unpin(s);
	}
}

static void tables(struct text *t)
{
	size_t loaded = ed_registry_loaded();

	scalar(t, "tables_configured", "gauge", "Tables engramd is configured to serve.",
	       ed_cfg.n_tables);
	scalar(t, "tables_loaded", "gauge", "Tables with a snapshot being served.", loaded);
	per_table(t, loaded, "table_generation", "Generation of the snapshot served.", 0);
	per_table(t, loaded, "table_slots", "Slots (rows) of the snapshot served.", 1);
	per_table(t, loaded, "table_row_bytes", "Bytes per row.", 2);
}

char *ed_metrics_render(size_t *len)
{
	struct text t = { .cap = 4096 };
	uint64_t now = (uint64_t)time(NULL);

	t.p = malloc(t.cap);
	if (!t.p)
		return NULL;
	scalar(&t, "uptime_seconds", "gauge", "Seconds since engramd started.",
	       now > ed_stats.started ? now - ed_stats.started : 0);
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
	scalar(&t, "bytes_out_total", "counter", "Response bytes written to clients.",
	       ed_stat_get(bytes_out));
	scalar(&t, "reloads_total", "counter", "Snapshots swapped in by a reload.",
	       ed_stat_get(reloads));
	scalar(&t, "reload_failures_total", "counter",
	       "Table versions a reload refused (the old one kept serving).",
	       ed_stat_get(reload_failures));
	latency(&t);
	tables(&t);
	if (t.oom) {
		free(t.p);
		return NULL;
	}
	*len = t.len;
	return t.p;
}
