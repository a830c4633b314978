/* reload.c - the Reload request. It opens LMDB environments and builds chunk
 * directories, so it runs on the thread pool and answers when done. */
#include <stdlib.h>

#include "handlers.h"
#include "registry.h"

struct reload_job {
	uv_work_t work;
	struct ed_req *req;
	struct ed_table **tables; /* with a reference each */
	size_t n;
	struct ed_reload_result res[];
};

static struct ed_table *job_table(const struct reload_job *j, size_t i)
{
	return j->tables[i];
}

static void reload_work(uv_work_t *w)
{
	struct reload_job *j = w->data;

	for (size_t i = 0; i < j->n; i++)
		ed_table_reload(job_table(j, i), 0, &j->res[i]);
}

static void reload_done(uv_work_t *w, int status)
{
	struct reload_job *j = w->data;
	struct ed_req *req = j->req;
	Engram__V1__Request *m = req->msg;
	Engram__V1__ReloadResult *rr = calloc(j->n, sizeof(*rr));
	Engram__V1__ReloadResult **rp = calloc(j->n, sizeof(*rp));
	Engram__V1__ReloadResponse body = ENGRAM__V1__RELOAD_RESPONSE__INIT;
	Engram__V1__Response r = ENGRAM__V1__RESPONSE__INIT;

	req->pending--;
	if (status < 0 || !rr || !rp) {
		ed_req_fail(req, m->id, ENGRAM__V1__STATUS__INTERNAL, "reload could not run");
		goto out;
	}
	for (size_t i = 0; i < j->n; i++) {
		engram__v1__reload_result__init(&rr[i]);
		rr[i].table = (char *)ed_table_name(job_table(j, i));
		rr[i].old_generation = j->res[i].old_generation;
		rr[i].new_generation = j->res[i].new_generation;
		rr[i].reloaded = j->res[i].reloaded;
		rr[i].error = j->res[i].error;
		rr[i].path = j->res[i].path;
		rr[i].build_us = j->res[i].build_us;
		rr[i].swap_ns = j->res[i].swap_ns;
		rp[i] = &rr[i];
	}
	body.n_results = j->n;
	body.results = rp;
	r.id = m->id;
	r.body_case = ENGRAM__V1__RESPONSE__BODY_RELOAD;
	r.reload = &body;
	ed_req_answer(req, &r);
out:
	free(rr);
	free(rp);
	ed_registry_list_put(j->tables, j->n);
	j->tables = NULL;
	j->n = 0;
	ed_req_finish(req);
}

void ed_do_reload(struct ed_req *req, uint64_t id, const Engram__V1__ReloadRequest *rq)
{
	struct ed_table **tables, *only;
	struct reload_job *j;
	size_t n;

	if (rq->table[0]) {
		only = ed_registry_get(rq->table);
		if (!only) {
			ed_req_failf(req, id, ENGRAM__V1__STATUS__NOT_FOUND,
			             "no table named '%s' is served", rq->table);
			return;
		}
		n = 1;
		tables = malloc(sizeof(*tables));
		if (tables)
			tables[0] = only;
		else
			ed_table_put(only);
	} else {
		n = ed_registry_list(&tables);
	}
	j = tables ? calloc(1, sizeof(*j) + n * sizeof(j->res[0])) : NULL;
	if (!j) {
		ed_registry_list_put(tables, tables ? n : 0);
		ed_req_fail(req, id, ENGRAM__V1__STATUS__INTERNAL, "out of memory");
		return;
	}
	j->work.data = j;
	j->req = req;
	j->tables = tables;
	j->n = n;
	req->jobs = j;
	if (uv_queue_work(req->loop, &j->work, reload_work, reload_done) != 0) {
		ed_registry_list_put(j->tables, j->n);
		j->tables = NULL;
		j->n = 0;
		ed_req_fail(req, id, ENGRAM__V1__STATUS__INTERNAL, "cannot queue the reload");
		return;
	}
	req->pending = 1;
	ed__req_to(req, ED_REQ_PENDING);
}
