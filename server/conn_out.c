/* conn_out.c - a connection's output: answers leave in request order, many
 * per writev; the head of a response still being gathered goes out early;
 * and what answers hold in memory is bounded (backpressure).
 *
 * Every request is counted (ed_req.charge) from the moment it may allocate
 * until it is freed after its last byte is written: a lookup or tokens
 * request for its frame and ids when admitted (ed__conn_reserve, before
 * anything is allocated), any other answer for its frame once made
 * (ed__conn_charge). The count goes into the connection's mem and the
 * daemon's budget. A connection holds at most --max-output, or one answer
 * alone whatever its size; the daemon at most --max-output-total, and no
 * frame is taken while less than SMALL_ANSWER is left, so small answers
 * made without asking pass it only by what the loops make at once. A
 * request that does not fit waits, and nothing after it is framed or read. */
#include <errno.h>
#include <stdlib.h>

#include "budget.h"
#include "config.h"
#include "conn_int.h"
#include "log.h"
#include "loop.h"
#include "stats.h"

#define MAX_WAITING 1024       /* requests answered or running, not yet written */
#define MAX_BATCH 64           /* responses per writev */
#define SMALL_ANSWER (64u << 10) /* room any request needs before it is framed */

struct write_batch {
	uv_write_t wr;
	struct ed_conn *c;
	size_t n;
	struct ed_req *reqs[MAX_BATCH];
	uv_buf_t bufs[MAX_BATCH];
};

/* The head of a response still being gathered, sent early. */
struct part_write {
	uv_write_t wr;
	struct ed_conn *c;
};

int ed__conn_paused(const struct ed_conn *c)
{
	return c->want > 0 || c->mem >= ed_cfg.max_output || c->waiting >= MAX_WAITING;
}

/* Whether bytes more may be held by c itself. */
static int conn_fits(const struct ed_conn *c, uint64_t bytes)
{
	return c->mem == 0 || (c->mem <= ed_cfg.max_output && bytes <= ed_cfg.max_output - c->mem);
}

int ed__conn_room(struct ed_conn *c)
{
	return conn_fits(c, c->want) && ed_budget_fits(c->want, c->w);
}

int ed__conn_may_frame(struct ed_conn *c)
{
	if (ed_budget_fits(SMALL_ANSWER, c->w))
		return 1;
	c->want = SMALL_ANSWER;
	return 0;
}

int ed__conn_reserve(struct ed_req *req, uint64_t bytes)
{
	struct ed_conn *c = req->owner;

	if (!conn_fits(c, bytes) || ed_budget_take(bytes, c->w) < 0) {
		c->want = bytes;
		return -EAGAIN;
	}
	req->charge = bytes;
	c->mem += bytes;
	return 0;
}

void ed__conn_charge(struct ed_conn *c, struct ed_req *req)
{
	if (req->charge)
		return;
	req->charge = req->out.len;
	c->mem += req->charge;
	ed_budget_force(req->charge);
}

void ed__conn_req_free(struct ed_conn *c, struct ed_req *req)
{
	c->mem -= req->charge;
	ed_budget_give(req->charge);
	ed_req_free(req);
}

static void on_write(uv_write_t *wr, int status)
{
	struct write_batch *b = wr->data;
	struct ed_conn *c = b->c;

	for (size_t i = 0; i < b->n; i++) {
		struct ed_req *r = b->reqs[i];

		if (r->urgent) /* a decode step's answer: its next one comes soon */
			ed_worker_active(c->w);
		if (status == 0) {
			ed_stat_add(bytes_out, r->out.len);
			ed_stat_add(rows, r->rows);
			if (r->rows_request)
				ed_stat_latency(r->tokens_request ? ED_LATENCY_TOKENS
				                                  : ED_LATENCY_SLOTS,
				                uv_hrtime() - r->t_start);
		}
		ed__conn_req_free(c, r);
	}
	c->writes--;
	free(b);
	if (c->state == ED_CONN_CLOSING)
		return;
	if (status < 0) {
		if (status != UV_EPIPE && status != UV_ECONNRESET)
			ed_debug("write failed: %s", uv_strerror(status));
		ed__conn_event(c, ED_CONN_EV_CLOSE);
		return;
	}
	ed__conn_process(c);
}

static void on_part_write(uv_write_t *wr, int status)
{
	struct part_write *p = wr->data;
	struct ed_conn *c = p->c;

	c->writes--;
	free(p);
	if (status < 0)
		ed__conn_event(c, ED_CONN_EV_CLOSE);
}

/* The gathered head of a PENDING response goes out now when it is next in
 * line, so the client reads while the rest is gathered. (libuv keeps writes
 * on a stream in order; the frame's memory lives until the write of its
 * tail completes, after this one.) */
void ed__conn_send_head(struct ed_req *req)
{
	struct ed_conn *c = req->owner;
	struct part_write *p;
	uv_buf_t buf;

	if (c->state == ED_CONN_CLOSING || c->head != req || req->ready <= req->sent)
		return;
	p = malloc(sizeof(*p));
	if (!p)
		return; /* it goes out whole when done */
	buf.base = (char *)req->out.data + req->sent;
	buf.len = req->ready - req->sent;
	p->wr.data = p;
	p->c = c;
	if (uv_write(&p->wr, &c->u.s, &buf, 1, on_part_write)) {
		free(p);
		ed__conn_event(c, ED_CONN_EV_CLOSE);
		return;
	}
	c->writes++;
	req->sent = req->ready;
}

/* Moves the DONE requests at the head of the queue into one batch. */
static void fill_batch(struct ed_conn *c, struct write_batch *b)
{
	while (c->head && c->head->state == ED_REQ_DONE && b->n < MAX_BATCH) {
		struct ed_req *r = c->head;

		c->head = r->next;
		if (!c->head)
			c->tail = NULL;
		c->waiting--;
		ed_stat_answered(r->status);
		b->reqs[b->n] = r;
		/* not uv_buf_init: its length is an unsigned int */
		b->bufs[b->n].base = (char *)r->out.data + r->sent;
		b->bufs[b->n].len = r->out.len - r->sent;
		b->n++;
	}
}

void ed__conn_flush(struct ed_conn *c)
{
	while (c->head && (c->head->state == ED_REQ_DONE || c->head->state == ED_REQ_ABANDONED) &&
	       c->state != ED_CONN_CLOSING) {
		struct write_batch *b;

		if (c->head->state == ED_REQ_ABANDONED) {
			ed_warn("a response failed after its head was sent; closing the connection");
			ed__conn_event(c, ED_CONN_EV_CLOSE);
			return;
		}
		if (!c->head->out.data) { /* not even an error answer could be framed */
			ed_warn("no memory for an answer; closing the connection");
			ed__conn_event(c, ED_CONN_EV_CLOSE);
			return;
		}
		b = calloc(1, sizeof(*b));
		if (!b) {
			ed_error("out of memory writing a response; closing the connection");
			ed__conn_event(c, ED_CONN_EV_CLOSE);
			return;
		}
		b->c = c;
		b->wr.data = b;
		fill_batch(c, b);
		if (uv_write(&b->wr, &c->u.s, b->bufs, (unsigned)b->n, on_write)) {
			for (size_t i = 0; i < b->n; i++)
				ed__conn_req_free(c, b->reqs[i]);
			free(b);
			ed__conn_event(c, ED_CONN_EV_CLOSE);
			return;
		}
		c->writes++;
	}
	if (c->head && c->head->state == ED_REQ_PENDING)
		ed__conn_send_head(c->head);
}
