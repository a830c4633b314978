/* fleet_rows.c - lookups over several daemons: fan-out and retries.
 *
 * A fleet ticket keeps a copy of its request, so that it can be sent again
 * to another replica, and is cut into parts, one per group of replicas
 * holding some of its tables (a token lookup over tables on different hosts
 * asks each group for its tables, in the order asked). Every part is sent
 * before any is waited for, so the groups work in parallel. A part whose
 * replica fails is sent again to the next one (fleet.c chooses), into the
 * same caller buffers, until it is answered or the deadline passes; its
 * blocks are also held against the client's generation floors as they are
 * when it is collected (an answer of an older generation than one already
 * returned is asked again elsewhere). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "egc_fleet.h"

struct egc_part {
	size_t group;
	size_t n;            /* tables of the request the group serves ... */
	size_t *idx;         /* ... their places in it, */
	const char **tables; /* names */
	void **outs;         /* and buffers */
	size_t *sizes;
	size_t rep;          /* the replica it went to, */
	uint64_t sub;        /* and its ticket there */
	int sent;
};

struct egc_fticket {
	uint64_t id;
	int tokens;          /* a token lookup (else by slots) */
	char **tables;
	size_t ntables;
	uint64_t *slots;
	size_t nslots;
	int64_t *toks;
	size_t ntoks;
	uint32_t *seq_lens, *context;
	size_t nseq;
	struct egc_part *parts;
	size_t nparts;
};

static void ticket_free(struct egc_fticket *ft)
{
	if (!ft)
		return;
	for (size_t i = 0; i < ft->nparts; i++) {
		free(ft->parts[i].idx);
		free(ft->parts[i].tables);
		free(ft->parts[i].outs);
		free(ft->parts[i].sizes);
	}
	for (size_t i = 0; i < ft->ntables; i++)
		free(ft->tables[i]);
	free(ft->tables);
	free(ft->parts);
	free(ft->slots);
	free(ft->toks);
	free(ft->seq_lens);
	free(ft->context);
	free(ft);
}

static void *dup_array(const void *p, size_t n, size_t size)
{
	void *d = malloc(n ? n * size : 1);

	if (d && n)
		memcpy(d, p, n * size);
	return d;
}

/* The part of ft for group, made on first use; NULL when out of memory. */
static struct egc_part *part_for(struct egc_fticket *ft, size_t group)
{
	struct egc_part *p;

	for (size_t i = 0; i < ft->nparts; i++)
		if (ft->parts[i].group == group)
			return &ft->parts[i];
	p = &ft->parts[ft->nparts];
	p->group = group;
	p->idx = calloc(ft->ntables, sizeof(*p->idx));
	p->tables = calloc(ft->ntables, sizeof(*p->tables));
	p->outs = calloc(ft->ntables, sizeof(*p->outs));
	p->sizes = calloc(ft->ntables, sizeof(*p->sizes));
	ft->nparts++;
	return p->idx && p->tables && p->outs && p->sizes ? p : NULL;
}

/* Routes every table of ft to its group's part; EGC_ENOTFOUND for a table
 * no group serves. */
static int route(eg_client *c, struct egc_fticket *ft, void *const *outs, const size_t *sizes)
{
	for (size_t i = 0; i < ft->ntables; i++) {
		long g = egc__fleet_group_of(c, ft->tables[i]);
		struct egc_part *p;

		if (g < 0) {
			egc__set_msg(c, "no route for table '%s': the address spec names no group "
			             "for it and none for the other tables", ft->tables[i]);
			return EGC_ENOTFOUND;
		}
		p = part_for(ft, (size_t)g);
		if (!p)
			return -ENOMEM;
		p->idx[p->n] = i;
		p->tables[p->n] = ft->tables[i];
		p->outs[p->n] = outs[i];
		p->sizes[p->n] = sizes[i];
		p->n++;
	}
	return 0;
}

/* A ticket holding a copy of the request, cut into parts. */
static int ticket_new(eg_client *c, const struct egc_rows_req *rq, struct egc_fticket **out)
{
	struct egc_fticket *ft = calloc(1, sizeof(*ft));
	int err = -ENOMEM;

	if (!ft)
		goto fail;
	ft->id = c->next_id++;
	ft->tokens = rq->tokens;
	ft->tables = calloc(rq->ntables, sizeof(*ft->tables));
	ft->parts = calloc(rq->ntables, sizeof(*ft->parts));
	if (!ft->tables || !ft->parts)
		goto fail;
	for (; ft->ntables < rq->ntables; ft->ntables++)
		if (!(ft->tables[ft->ntables] = strdup(rq->tables[ft->ntables])))
			goto fail;
	ft->nslots = rq->nslots;
	ft->ntoks = rq->ntoks;
	ft->nseq = rq->nseq;
	if ((!rq->tokens && !(ft->slots = dup_array(rq->slots, rq->nslots, sizeof(*rq->slots)))) ||
	    (rq->tokens && !(ft->toks = dup_array(rq->toks, rq->ntoks, sizeof(*rq->toks)))) ||
	    (rq->seq_lens && !(ft->seq_lens = dup_array(rq->seq_lens, rq->nseq, 4))) ||
	    (rq->context && !(ft->context = dup_array(rq->context, rq->nseq, 4))))
		goto fail;
	err = route(c, ft, rq->outs, rq->sizes);
	if (err < 0)
		goto fail;
	*out = ft;
	return 0;
fail:
	if (err == -ENOMEM)
		egc__set_msg(c, "out of memory copying a request");
	ticket_free(ft);
	return err;
}

/* ---- one part on one replica ----------------------------------------------- */

static int send_on(eg_client *c, eg_client *m, struct egc_fticket *ft, struct egc_part *p)
{
	int err;

	for (size_t i = 0; i < p->n; i++)
		if ((err = eg_client_set_min_generation(m, p->tables[i], egc__floor(c, p->tables[i]))))
			return err;
	if (!ft->tokens)
		return egc__send_lookup(m, p->tables[0], ft->slots, ft->nslots, p->outs[0],
		                        p->sizes[0], 0, 0, &p->sub);
	return egc__send_tokens(m, p->tables, p->n, ft->toks, ft->ntoks, ft->seq_lens,
	                        ft->context, ft->nseq, p->outs, p->sizes, 0, 0, &p->sub);
}

/* Sends p to a replica of its group. With nowait, a part no replica can
 * take now (all backing off) stays unsent for the wait to send. */
static int send_part(eg_client *c, struct egc_fticket *ft, struct egc_part *p,
                     int64_t deadline, int nowait)
{
	struct egc_group *g = &c->fleet->groups[p->group];
	size_t r, tries = 0;
	eg_client *m;
	int err;

	for (;;) {
		err = egc__fleet_pick(c, g, deadline, nowait, &r);
		if (err == -EAGAIN)
			return 0;
		if (err < 0)
			return err;
		err = egc__fleet_member(c, &g->reps[r], deadline, &m);
		if (err == 0 && (err = send_on(c, m, ft, p)) == 0) {
			p->rep = r;
			p->sent = 1;
			return 0;
		}
		if (!egc__fleet_failed(c, &g->reps[r], err))
			return err;
		if (egc__fleet_tries_over(g, deadline, &tries))
			return nowait ? 0 : err;
	}
}

/* The blocks of an answer must be no older than the floors are now. */
static int check_floors(eg_client *c, const struct egc_part *p, const eg_client_rows *rows,
                        eg_client *m)
{
	for (size_t i = 0; i < p->n; i++) {
		uint64_t floor = egc__floor(c, p->tables[i]);

		if (rows[i].generation < floor) {
			egc__set_msg(m, "table '%s' came at generation %llu, below the generation %llu "
			             "already returned", p->tables[i],
			             (unsigned long long)rows[i].generation, (unsigned long long)floor);
			return EGC_EUNAVAILABLE;
		}
	}
	return 0;
}

/* Collects p into rows[0..p->n), sending it again after each failure
 * another replica may not have. */
static int wait_part(eg_client *c, struct egc_fticket *ft, struct egc_part *p,
                     eg_client_rows *rows, int64_t deadline)
{
	struct egc_group *g = &c->fleet->groups[p->group];
	struct egc_replica *r;
	size_t tries = 0;
	int err;

	for (;;) {
		if (!p->sent && (err = send_part(c, ft, p, deadline, 0)) < 0)
			return err;
		r = &g->reps[p->rep];
		eg_client_set_timeout(r->conn, egc__fleet_try_ms(c, deadline));
		err = eg_client_wait_blocks(r->conn, p->sub, rows, p->n);
		if (err == -ETIMEDOUT)
			egc__fleet_cancel(r->conn, p->sub); /* it may still come: not into rows */
		p->sent = 0;
		if (err == 0)
			err = check_floors(c, p, rows, r->conn);
		if (err == 0) {
			egc__fleet_ok(r);
			return 0;
		}
		if (!egc__fleet_failed(c, r, err) || egc__fleet_tries_over(g, deadline, &tries))
			return err;
	}
}

/* A part given up (another failed): waited for a moment, then forgotten,
 * so that nothing is written to the caller's buffers afterwards. */
static void settle(eg_client *c, struct egc_part *p)
{
	eg_client *m = c->fleet->groups[p->group].reps[p->rep].conn;

	if (!p->sent)
		return;
	eg_client_set_timeout(m, 1);
	if (eg_client_wait_blocks(m, p->sub, NULL, 0) == -ETIMEDOUT)
		egc__fleet_cancel(m, p->sub);
	p->sent = 0;
}

/* Collects every part of ft into blocks[0..nblocks). */
static int wait_ticket(eg_client *c, struct egc_fticket *ft, eg_client_rows *blocks,
                       size_t nblocks, int64_t deadline)
{
	eg_client_rows *rows = calloc(ft->ntables, sizeof(*rows) * 2);
	size_t i, k;
	int err = 0;

	if (!rows) {
		egc__set_msg(c, "out of memory");
		err = -ENOMEM;
	}
	for (i = 0; err == 0 && i < ft->nparts; i++) {
		struct egc_part *p = &ft->parts[i];

		err = wait_part(c, ft, p, rows + ft->ntables, deadline);
		for (k = 0; err == 0 && k < p->n; k++)
			rows[p->idx[k]] = rows[ft->ntables + k];
	}
	for (i = 0; i < ft->nparts; i++)
		settle(c, &ft->parts[i]);
	for (i = 0; err == 0 && i < nblocks; i++) {
		if (i < ft->ntables) {
			blocks[i] = rows[i];
			if (c->flags & EGC_MONOTONIC)
				egc__floor_raise(c, ft->tables[i], rows[i].generation);
		} else {
			memset(&blocks[i], 0, sizeof(blocks[i]));
		}
	}
	free(rows);
	return err;
}

/* ---- the public calls --------------------------------------------------------- */

/* Makes ft and sends every part now (a part no replica takes now is sent
 * by the wait). */
static int start(eg_client *c, const struct egc_rows_req *rq, int64_t deadline,
                 struct egc_fticket **out)
{
	struct egc_fticket *ft = NULL;
	int err;

	err = ticket_new(c, rq, &ft);
	for (size_t i = 0; err == 0 && i < ft->nparts; i++)
		err = send_part(c, ft, &ft->parts[i], deadline, 1);
	if (err < 0) {
		for (size_t i = 0; ft && i < ft->nparts; i++)
			settle(c, &ft->parts[i]);
		ticket_free(ft);
		return err;
	}
	*out = ft;
	return 0;
}

int egc__fleet_send(eg_client *c, const struct egc_rows_req *rq, uint64_t *ticket)
{
	struct egc_fleet *f = c->fleet;
	struct egc_fticket *ft, **grown;
	int err;

	if (f->qlen == f->qcap) {
		grown = realloc(f->q, (f->qcap ? 2 * f->qcap : 16) * sizeof(*grown));
		if (!grown) {
			egc__set_msg(c, "out of memory queueing a request");
			return -ENOMEM;
		}
		f->q = grown;
		f->qcap = f->qcap ? 2 * f->qcap : 16;
	}
	err = start(c, rq, egc__fleet_deadline(c), &ft);
	if (err < 0)
		return err;
	f->q[f->qlen++] = ft;
	*ticket = ft->id;
	return 0;
}

int egc__fleet_wait(eg_client *c, uint64_t ticket, eg_client_rows *blocks, size_t nblocks)
{
	struct egc_fleet *f = c->fleet;
	struct egc_fticket *ft = NULL;
	int err;

	for (size_t i = 0; i < f->qlen; i++) {
		if (f->q[i]->id == ticket) {
			ft = f->q[i];
			memmove(f->q + i, f->q + i + 1, (f->qlen - i - 1) * sizeof(*f->q));
			f->qlen--;
			break;
		}
	}
	if (!ft) {
		egc__set_msg(c, "ticket %llu is unknown or was already collected",
		             (unsigned long long)ticket);
		return EGC_ETICKET;
	}
	err = wait_ticket(c, ft, blocks, nblocks, egc__fleet_deadline(c));
	ticket_free(ft);
	return err;
}

/* Send and wait within one deadline. */
int egc__fleet_lookup(eg_client *c, const struct egc_rows_req *rq, eg_client_rows *rows)
{
	int64_t deadline = egc__fleet_deadline(c);
	struct egc_fticket *ft;
	int err;

	err = start(c, rq, deadline, &ft);
	if (err < 0)
		return err;
	err = wait_ticket(c, ft, rows, rows ? 1 : 0, deadline);
	ticket_free(ft);
	return err;
}

void egc__fleet_tickets_free(eg_client *c)
{
	struct egc_fleet *f = c->fleet;

	for (size_t i = 0; i < f->qlen; i++)
		ticket_free(f->q[i]);
	free(f->q);
	f->q = NULL;
	f->qlen = f->qcap = 0;
}
