/* handlers.h - the request kinds ed_dispatch hands a request to, and the
 * answering helpers they share. Internal to dispatch.c, lookup.c, info.c
 * and reload.c. Each handler either answers req at once (out set; the
 * dispatch makes it DONE) or makes it PENDING with thread-pool work that
 * finishes it. */
#ifndef ED_HANDLERS_H
#define ED_HANDLERS_H

#include "dispatch.h"
#include "engram.pb-c.h"

struct ed_snap;

void ed_do_lookup(struct ed_req *req, uint64_t id, const Engram__V1__LookupRequest *lr);
void ed_do_tokens(struct ed_req *req, uint64_t id, const Engram__V1__TokensRequest *tr);
void ed_do_info(struct ed_req *req, uint64_t id);
void ed_do_stats(struct ed_req *req, uint64_t id);
void ed_do_ping(struct ed_req *req, uint64_t id);
void ed_do_reload(struct ed_req *req, uint64_t id, const Engram__V1__ReloadRequest *rq);

/* Moves req to state to; a transition dispatch.h does not draw is a bug
 * and aborts. */
void ed__req_to(struct ed_req *req, enum ed_req_state to);

/* Answers req with an error, replacing any frame it had. When even that
 * frame cannot be allocated, req is left with none (out.data NULL), and its
 * connection closes when it comes to write it (conn_out.c). */
void ed_req_fail(struct ed_req *req, uint64_t id, Engram__V1__Status status, const char *msg);
void ed_req_failf(struct ed_req *req, uint64_t id, Engram__V1__Status status,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Frames msg as req's answer; when there is no memory for it, an INTERNAL
 * error instead (as ed_req_fail). */
void ed_req_answer(struct ed_req *req, const Engram__V1__Response *msg);

/* Keeps s pinned until req is freed; on failure unpins s, returns -ENOMEM. */
int ed_req_add_pin(struct ed_req *req, struct ed_snap *s);

/* A PENDING request is DONE (or ABANDONED: its head was sent, then a job
 * failed) and goes back to its owner (req->finish). */
void ed_req_finish(struct ed_req *req);
void ed_req_abandon(struct ed_req *req);

#endif
