/* dispatch.c - request entry: unpack the frame, hand it to its handler;
 * and the answering helpers every handler shares. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "handlers.h"
#include "log.h"
#include "pool.h"
#include "registry.h"

void ed__req_to(struct ed_req *req, enum ed_req_state to)
{
	static const unsigned next[] = {
		[ED_REQ_NEW] = 1u << ED_REQ_PENDING | 1u << ED_REQ_DONE | 1u << ED_REQ_WAIT,
		[ED_REQ_WAIT] = 0,
		[ED_REQ_PENDING] = 1u << ED_REQ_DONE | 1u << ED_REQ_ABANDONED,
		[ED_REQ_DONE] = 0,
		[ED_REQ_ABANDONED] = 0,
	};

	if (!(next[req->state] & (1u << to))) {
		/* a bug: the owner would free or send a request still being written */
		ed_error("request state %d cannot become %d", (int)req->state, (int)to);
		abort();
	}
	req->state = to;
}

void ed_req_fail(struct ed_req *req, uint64_t id, Engram__V1__Status status, const char *msg)
{
	free(req->out.data);
	ed_encode_error(&req->out, id, status, "%s", msg);
	req->status = (int)status;
}

void ed_req_failf(struct ed_req *req, uint64_t id, Engram__V1__Status status,
                  const char *fmt, ...)
{
	char msg[480];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ed_req_fail(req, id, status, msg);
}

void ed_req_answer(struct ed_req *req, const Engram__V1__Response *msg)
{
	if (ed_encode_msg(msg, &req->out) < 0) { /* a shorter answer may still fit */
		ed_req_fail(req, msg->id, ENGRAM__V1__STATUS__INTERNAL,
		            "out of memory framing the answer; try again");
		return;
	}
	req->status = (int)msg->status;
}

int ed_req_add_pin(struct ed_req *req, struct ed_snap *s)
{
	struct ed_snap **p = realloc(req->pins, (req->n_pins + 1) * sizeof(*p));

	if (!p) {
		ed_snap_unpin(s);
		return -ENOMEM;
	}
	req->pins = p;
	req->pins[req->n_pins++] = s;
	return 0;
}

void ed_req_finish(struct ed_req *req)
{
	ed__req_to(req, ED_REQ_DONE);
	req->finish(req);
}

void ed_req_abandon(struct ed_req *req)
{
	ed__req_to(req, ED_REQ_ABANDONED);
	req->finish(req);
}

void ed_dispatch_refuse(struct ed_req *req, Engram__V1__Status status, const char *msg)
{
	ed_req_fail(req, 0, status, msg);
	ed__req_to(req, ED_REQ_DONE);
}

void ed_req_free(struct ed_req *req)
{
	for (size_t i = 0; i < req->n_pins; i++)
		ed_snap_unpin(req->pins[i]);
	for (size_t i = 0; i < req->n_slot_bufs; i++)
		free(req->slot_bufs[i]);
	free(req->slot_bufs);
	free(req->pins);
	free(req->jobs);
	free(req->out.data);
	if (req->urgent)
		ed_pool_urgent_release();
	if (req->msg)
		engram__v1__request__free_unpacked(req->msg, NULL);
	free(req);
}

static void do_attach_shm(struct ed_req *req, uint64_t id, const Engram__V1__AttachShmRequest *a)
{
	Engram__V1__Response r = ENGRAM__V1__RESPONSE__INIT;
	Engram__V1__AttachShmResponse ok = ENGRAM__V1__ATTACH_SHM_RESPONSE__INIT;
	char msg[400];
	int st;

	if (!req->attach_shm) {
		ed_req_fail(req, id, ENGRAM__V1__STATUS__BAD_REQUEST,
		            "attach_shm works only on a unix socket connection");
		return;
	}
	msg[0] = '\0';
	st = req->attach_shm(req, a->size, msg, sizeof(msg));
	if (st != ENGRAM__V1__STATUS__OK) {
		ed_req_fail(req, id, (Engram__V1__Status)st, msg);
		return;
	}
	ok.reads_slots = 1; /* LookupRequest.shm_slots */
	r.id = id;
	r.body_case = ENGRAM__V1__RESPONSE__BODY_ATTACH_SHM;
	r.attach_shm = &ok;
	ed_req_answer(req, &r);
}

/* Hands m to its handler, which answers it or queues work. */
static void run(struct ed_req *req, const Engram__V1__Request *m)
{
	switch (m->body_case) {
	case ENGRAM__V1__REQUEST__BODY_LOOKUP:
		req->rows_request = 1;
		ed_do_lookup(req, m->id, m->lookup);
		break;
	case ENGRAM__V1__REQUEST__BODY_TOKENS:
		req->rows_request = req->tokens_request = 1;
		ed_do_tokens(req, m->id, m->tokens);
		break;
	case ENGRAM__V1__REQUEST__BODY_INFO:
		ed_do_info(req, m->id);
		break;
	case ENGRAM__V1__REQUEST__BODY_STATS:
		ed_do_stats(req, m->id);
		break;
	case ENGRAM__V1__REQUEST__BODY_PING:
		ed_do_ping(req, m->id);
		break;
	case ENGRAM__V1__REQUEST__BODY_RELOAD:
		ed_do_reload(req, m->id, m->reload);
		break;
	case ENGRAM__V1__REQUEST__BODY_ATTACH_SHM:
		do_attach_shm(req, m->id, m->attach_shm);
		break;
	default:
		ed_req_failf(req, m->id, ENGRAM__V1__STATUS__BAD_REQUEST,
		             "request %llu has no body this daemon knows (protocol %d): set one of "
		             "info, lookup, stats, ping, tokens, reload, attach_shm",
		             (unsigned long long)m->id, ED_PROTOCOL_VERSION);
		break;
	}
}

void ed_dispatch(struct ed_req *req, const uint8_t *frame, size_t len)
{
	Engram__V1__Request *m = engram__v1__request__unpack(NULL, len, frame);

	if (!m) {
		ed_req_failf(req, 0, ENGRAM__V1__STATUS__BAD_REQUEST,
		             "frame of %zu bytes is not a valid engram.v1.Request", len);
	} else {
		req->msg = m;
		run(req, m);
	}
	if (req->state == ED_REQ_NEW)
		ed__req_to(req, ED_REQ_DONE); /* answered at once */
}
