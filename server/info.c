/* info.c - the small answers: table descriptions, counters, ping. */
#include <stdlib.h>
#include <time.h>

#include "config.h"
#include "handlers.h"
#include "registry.h"
#include "rowcache.h"
#include "stats.h"

void ed_do_info(struct ed_req *req, uint64_t id)
{
	struct ed_table **tables;
	size_t n = ed_registry_list(&tables), k = 0;
	Engram__V1__TableInfo *ti = calloc(n + 1, sizeof(*ti));
	Engram__V1__TableInfo **tp = calloc(n + 1, sizeof(*tp));
	struct ed_snap **pins = calloc(n + 1, sizeof(*pins));
	Engram__V1__InfoResponse info = ENGRAM__V1__INFO_RESPONSE__INIT;
	Engram__V1__Response r = ENGRAM__V1__RESPONSE__INIT;

	if (n && (!ti || !tp || !pins)) { /* calloc(0) may be NULL: no table */
		ed_req_fail(req, id, ENGRAM__V1__STATUS__INTERNAL, "out of memory");
		goto out;
	}
	for (size_t j = 0; j < n; j++) {
		struct ed_table *t = tables[j];
		struct ed_snap *s = ed_table_pin(t);
		const eg_meta *m;
		size_t i = k;

		if (!s)
			continue; /* removed meanwhile */
		pins[k++] = s;
		m = s->meta;
		engram__v1__table_info__init(&ti[i]);
		ti[i].name = (char *)ed_table_name(t);
		ti[i].slots = m->slots;
		ti[i].dim = m->dim;
		ti[i].dtype = (char *)(eg_dtype_name(m->dtype) ? eg_dtype_name(m->dtype) : "");
		ti[i].scale_block = m->scale_block;
		ti[i].row_bytes = m->row_bytes;
		ti[i].generation = m->generation;
		ti[i].hash_kind = (char *)(s->hash ? eg_hash_kind(s->hash) : "");
		ti[i].rows_per_token = s->rows_per_token;
		ti[i].path = (char *)s->path;
		ti[i].chunk_slots = m->chunk_slots;
		tp[i] = &ti[i];
	}
	info.n_tables = k;
	info.tables = tp;
	r.id = id;
	r.body_case = ENGRAM__V1__RESPONSE__BODY_INFO;
	r.info = &info;
	ed_req_answer(req, &r);
	for (size_t i = 0; i < k; i++)
		ed_snap_unpin(pins[i]);
out:
	ed_registry_list_put(tables, n);
	free(pins);
	free(tp);
	free(ti);
}

/* The I/O path's counters, and the row caches summed over the tables. */
static void io_stats(Engram__V1__StatsResponse *st, uint64_t *le, uint64_t *counts)
{
	struct ed_table **tables;
	size_t n = ed_registry_list(&tables);

	st->rows_warm = ed_stat_get(warm_rows);
	st->rows_cold = ed_stat_get(cold_rows);
	st->disk_reads = ed_stat_get(disk_reads);
	st->disk_read_bytes = ed_stat_get(disk_read_bytes);
	st->disk_reads_inflight = ed_stat_get(io_inflight);
	for (size_t i = 0; i < n; i++) {
		struct ed_rowcache *c = ed_table_cache(tables[i]);
		struct ed_rowcache_stats rs;

		if (!c)
			continue;
		ed_rowcache_stats(c, &rs);
		st->cache_hits += rs.hits;
		st->cache_misses += rs.misses;
		st->cache_evictions += rs.evictions;
		st->cache_rows += rs.entries;
		st->cache_bytes += rs.bytes;
	}
	ed_registry_list_put(tables, n);
	for (unsigned i = 0; i < ED_LATENCY_BUCKETS; i++) {
		le[i] = i < ED_LATENCY_BUCKETS - 1 ? ed_latency_bounds_us[i] : UINT64_MAX;
		counts[i] = ed_stat_get(io_latency[i]);
	}
	st->n_disk_read_latency_le_us = ED_LATENCY_BUCKETS - 1;
	st->disk_read_latency_le_us = le;
	st->n_disk_read_latency_counts = ED_LATENCY_BUCKETS;
	st->disk_read_latency_counts = counts;
}

void ed_do_stats(struct ed_req *req, uint64_t id)
{
	uint64_t le[ED_LATENCY_BUCKETS], counts[ED_LATENCY_BUCKETS];
	Engram__V1__StatsResponse st = ENGRAM__V1__STATS_RESPONSE__INIT;
	Engram__V1__Response r = ENGRAM__V1__RESPONSE__INIT;

	st.uptime_seconds = (uint64_t)time(NULL) - ed_stats.started;
	st.connections = ed_stat_get(connections);
	st.requests = ed_stat_get(requests);
	st.errors = ed_stat_get(errors);
	st.rows = ed_stat_get(rows);
	st.bytes_out = ed_stat_get(bytes_out);
	st.reloads = ed_stat_get(reloads);
	st.reload_failures = ed_stat_get(reload_failures);
	io_stats(&st, le, counts);
	r.id = id;
	r.body_case = ENGRAM__V1__RESPONSE__BODY_STATS;
	r.stats = &st;
	ed_req_answer(req, &r);
}

void ed_do_ping(struct ed_req *req, uint64_t id)
{
	Engram__V1__Pong pong = ENGRAM__V1__PONG__INIT;
	Engram__V1__Response r = ENGRAM__V1__RESPONSE__INIT;

	pong.protocol_version = ED_PROTOCOL_VERSION;
	pong.server_version = (char *)"engramd " ED_VERSION;
	r.id = id;
	r.body_case = ENGRAM__V1__RESPONSE__BODY_PONG;
	r.pong = &pong;
	ed_req_answer(req, &r);
}
