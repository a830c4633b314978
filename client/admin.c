/* admin.c - public calls of libengram that are not lookups: info, stats,
 * ping, reload. Each is one blocking request whose response is unpacked with
 * protobuf-c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egc_int.h"

/* Sends req and waits for its response (a frame of at most max_frame
 * bytes); on success *out holds the ticket (with t->resp) for the caller to
 * read and free. */
static int call(eg_client *c, Engram__V1__Request *req, Engram__V1__Response__BodyCase want,
                uint64_t max_frame, egc_ticket **out)
{
	const unsigned char *frame;
	egc_ticket *t;
	uint64_t id;
	size_t len;
	int err;

	if (!c)
		return -EINVAL;
	t = egc__ticket_new(c, EGC_KIND_MSG, 0, NULL);
	if (!t) {
		egc__set_msg(c, "out of memory");
		return -ENOMEM;
	}
	t->max_frame = max_frame;
	id = t->id;
	req->id = id;
	if (egc__encode_msg(c, req, &frame, &len) < 0) {
		egc__ticket_free(t);
		egc__set_msg(c, "out of memory encoding a request");
		return -ENOMEM;
	}
	egc__start_call(c);
	err = egc__send(c, t, frame, len);
	if (err < 0)
		return err;
	err = egc__collect(c, id, &t);
	if (err < 0) {
		/* timed out: its frame still comes and is read (and freed) on
		 * the way to a later response */
		for (size_t i = 0; i < c->qlen; i++)
			if (c->q[i]->id == id)
				c->q[i]->orphan = 1;
		return err;
	}
	if (t->err == 0 && (!t->resp || t->resp->body_case != want)) {
		t->err = EGC_EPROTOCOL;
		snprintf(t->msg, sizeof(t->msg), "daemon answered with the wrong kind of response");
	}
	err = t->err;
	if (err < 0) {
		egc__set_msg(c, "%s", t->msg);
		egc__ticket_free(t);
		return err;
	}
	*out = t;
	return 0;
}

static char *dup_str(const char *s)
{
	return strdup(s ? s : "");
}

void eg_client_info_free(eg_client_table *tables, size_t n)
{
	size_t i;

	if (!tables)
		return;
	for (i = 0; i < n; i++) {
		free(tables[i].name);
		free(tables[i].dtype);
		free(tables[i].hash_kind);
		free(tables[i].path);
	}
	free(tables);
}

static int info(eg_client *c, eg_client_table **tables, size_t *n)
{
	Engram__V1__InfoRequest ir = ENGRAM__V1__INFO_REQUEST__INIT;
	Engram__V1__Request req = ENGRAM__V1__REQUEST__INIT;
	Engram__V1__InfoResponse *info;
	eg_client_table *out;
	egc_ticket *t;
	size_t i, k;
	int err;

	if (!c || !tables || !n)
		return -EINVAL;
	if (c->fleet)
		return egc__fleet_info(c, tables, n);
	req.body_case = ENGRAM__V1__REQUEST__BODY_INFO;
	req.info = &ir;
	err = call(c, &req, ENGRAM__V1__RESPONSE__BODY_INFO, EGC_MSG_FRAME_MAX, &t);
	if (err < 0)
		return err;
	info = t->resp->info;
	err = egc__check_info(c, info);
	if (err < 0) {
		egc__ticket_free(t);
		return err;
	}
	k = info->n_tables;
	out = calloc(k ? k : 1, sizeof(*out));
	if (!out)
		goto nomem;
	for (i = 0; i < k; i++) {
		const Engram__V1__TableInfo *ti = info->tables[i];
		eg_client_table *o = &out[i];

		o->name = dup_str(ti->name);
		o->dtype = dup_str(ti->dtype);
		o->hash_kind = dup_str(ti->hash_kind);
		o->path = dup_str(ti->path);
		if (!o->name || !o->dtype || !o->hash_kind || !o->path) {
			eg_client_info_free(out, i + 1);
			goto nomem;
		}
		o->slots = ti->slots;
		o->dim = ti->dim;
		o->scale_block = ti->scale_block;
		o->row_bytes = ti->row_bytes;
		o->generation = ti->generation;
		o->rows_per_token = ti->rows_per_token;
		o->chunk_slots = ti->chunk_slots;
	}
	egc__ticket_free(t);
	*tables = out;
	*n = k;
	return 0;
nomem:
	egc__ticket_free(t);
	egc__set_msg(c, "out of memory copying the table list");
	return -ENOMEM;
}

/* The bucket bound below which a share q of the disk reads fall. */
static uint64_t quantile_us(const Engram__V1__StatsResponse *s, double q)
{
	uint64_t total = 0, cum = 0;

	for (size_t i = 0; i < s->n_disk_read_latency_counts; i++)
		total += s->disk_read_latency_counts[i];
	if (total == 0)
		return 0;
	for (size_t i = 0; i < s->n_disk_read_latency_counts; i++) {
		cum += s->disk_read_latency_counts[i];
		if ((double)cum >= q * (double)total)
			return i < s->n_disk_read_latency_le_us ? s->disk_read_latency_le_us[i]
			                                        : UINT64_MAX;
	}
	return UINT64_MAX;
}

static int stats_get(eg_client *c, eg_client_stats *out)
{
	Engram__V1__StatsRequest sr = ENGRAM__V1__STATS_REQUEST__INIT;
	Engram__V1__Request req = ENGRAM__V1__REQUEST__INIT;
	const Engram__V1__StatsResponse *s;
	egc_ticket *t;
	int err;

	if (!c || !out)
		return -EINVAL;
	if (c->fleet)
		return egc__fleet_stats(c, out);
	req.body_case = ENGRAM__V1__REQUEST__BODY_STATS;
	req.stats = &sr;
	err = call(c, &req, ENGRAM__V1__RESPONSE__BODY_STATS, EGC_SMALL_FRAME_MAX, &t);
	if (err < 0)
		return err;
	s = t->resp->stats;
	out->uptime_seconds = s->uptime_seconds;
	out->connections = s->connections;
	out->requests = s->requests;
	out->errors = s->errors;
	out->rows = s->rows;
	out->bytes_out = s->bytes_out;
	out->reloads = s->reloads;
	out->reload_failures = s->reload_failures;
	out->rows_warm = s->rows_warm;
	out->rows_cold = s->rows_cold;
	out->disk_reads = s->disk_reads;
	out->disk_read_bytes = s->disk_read_bytes;
	out->disk_reads_inflight = s->disk_reads_inflight;
	out->cache_hits = s->cache_hits;
	out->cache_misses = s->cache_misses;
	out->cache_evictions = s->cache_evictions;
	out->cache_rows = s->cache_rows;
	out->cache_bytes = s->cache_bytes;
	out->disk_read_p50_us = quantile_us(s, 0.50);
	out->disk_read_p99_us = quantile_us(s, 0.99);
	egc__ticket_free(t);
	return 0;
}

static int ping(eg_client *c)
{
	Engram__V1__PingRequest pr = ENGRAM__V1__PING_REQUEST__INIT;
	Engram__V1__Request req = ENGRAM__V1__REQUEST__INIT;
	egc_ticket *t;
	int err;

	if (c && c->fleet)
		return egc__fleet_ping(c);
	req.body_case = ENGRAM__V1__REQUEST__BODY_PING;
	req.ping = &pr;
	err = call(c, &req, ENGRAM__V1__RESPONSE__BODY_PONG, EGC_SMALL_FRAME_MAX, &t);
	if (err < 0)
		return err;
	egc__ticket_free(t);
	return 0;
}

static int reload_tables(eg_client *c, const char *table, eg_client_reload *res,
                         size_t nres, size_t *nout)
{
	Engram__V1__ReloadRequest rr = ENGRAM__V1__RELOAD_REQUEST__INIT;
	Engram__V1__Request req = ENGRAM__V1__REQUEST__INIT;
	const Engram__V1__ReloadResponse *r;
	egc_ticket *t;
	size_t i;
	int err;

	if (!c || (nres && !res))
		return -EINVAL;
	if (c->fleet)
		return egc__fleet_reload(c, table, res, nres, nout);
	rr.table = (char *)(table ? table : "");
	req.body_case = ENGRAM__V1__REQUEST__BODY_RELOAD;
	req.reload = &rr;
	err = call(c, &req, ENGRAM__V1__RESPONSE__BODY_RELOAD, EGC_MSG_FRAME_MAX, &t);
	if (err < 0)
		return err;
	r = t->resp->reload;
	for (i = 0; i < r->n_results && i < nres; i++) {
		const Engram__V1__ReloadResult *x = r->results[i];

		memset(&res[i], 0, sizeof(res[i]));
		snprintf(res[i].table, sizeof(res[i].table), "%s", x->table ? x->table : "");
		snprintf(res[i].error, sizeof(res[i].error), "%s", x->error ? x->error : "");
		res[i].old_generation = x->old_generation;
		res[i].new_generation = x->new_generation;
		res[i].reloaded = x->reloaded;
	}
	if (nout)
		*nout = r->n_results;
	egc__ticket_free(t);
	return 0;
}

/* ---- the public calls: each holds the client's lock (egc_int.h) ---------- */

int eg_client_info(eg_client *c, eg_client_table **tables, size_t *n)
{
	int err;

	if (!c || !tables || !n)
		return -EINVAL;
	egc__lock(c);
	err = info(c, tables, n);
	egc__unlock(c);
	return err;
}

int eg_client_stats_get(eg_client *c, eg_client_stats *out)
{
	int err;

	if (!c || !out)
		return -EINVAL;
	egc__lock(c);
	err = stats_get(c, out);
	egc__unlock(c);
	return err;
}

int eg_client_ping(eg_client *c)
{
	int err;

	if (!c)
		return -EINVAL;
	egc__lock(c);
	err = ping(c);
	egc__unlock(c);
	return err;
}

int eg_client_reload_tables(eg_client *c, const char *table, eg_client_reload *res,
                            size_t nres, size_t *nout)
{
	int err;

	if (!c || (nres && !res))
		return -EINVAL;
	egc__lock(c);
	err = reload_tables(c, table, res, nres, nout);
	egc__unlock(c);
	return err;
}
