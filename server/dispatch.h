/* dispatch.h - one request from its frame to its response frame.
 *
 * A request's life (enum ed_req_state; ed__req_to in dispatch.c is the one
 * place it changes):
 *
 *   NEW --answered at once--> DONE
 *   NEW --thread-pool work queued--> PENDING --last job back--> DONE
 *   PENDING --a job failed after out's head was sent--> ABANDONED
 *   NEW --the owner's reserve hook said "not now"--> WAIT
 *
 * ed_dispatch answers most requests at once. Large gathers run on libuv's
 * thread pool in pieces and a Reload runs there too; the request is then
 * PENDING until its last piece is back, and the connection keeps later
 * responses behind it so that responses leave in request order.
 *
 * While the pieces of a large response come back in order, req->ready grows
 * and req->progress lets the owner start sending the frame's head, so the
 * client receives while the rest is gathered.
 *
 * Before a lookup or tokens request allocates what is sized by its rows
 * (the response frame, hashed slots), it asks the owner's reserve hook for
 * the bytes it will hold. One over --max-output-total, which could never be
 * held, is answered TOO_LARGE without asking.
 *
 * Nothing here knows connections: the owner of a request (conn_*.c, or the
 * fuzz harness) sets loop and finish and writes out wherever it likes. */
#ifndef ED_DISPATCH_H
#define ED_DISPATCH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "encode.h"

struct ed_snap;
struct ed_mailbox;

enum ed_req_state {
	ED_REQ_NEW,       /* being dispatched */
	ED_REQ_WAIT,      /* not admitted: the owner frees it (ed_req_free) and
	                     dispatches the same frame again later */
	ED_REQ_PENDING,   /* thread-pool jobs run (pending counts them) */
	ED_REQ_DONE,      /* out is final */
	ED_REQ_ABANDONED, /* the rest failed after out's head was sent: no answer
	                     fits any more; the owner closes the connection */
};

struct ed_req {
	struct ed_req *next;         /* the owner's queue, in request order */
	void *owner;                 /* the connection; not used here */
	uv_loop_t *loop;             /* where thread-pool work is queued and finishes */
	struct ed_mailbox *mailbox;  /* where gather pieces finish (on loop); NULL:
	                                gather on the loop */
	void (*finish)(struct ed_req *req); /* called on loop when a PENDING request
	                                 became DONE or ABANDONED */
	void (*progress)(struct ed_req *req); /* optional: called on loop while
	                                 PENDING, when ready grows */
	/* Optional, the owner's: asked on the loop during ed_dispatch, before
	 * the handler allocates what its answer needs; bytes = the response
	 * frame plus 8 per slot or token id held while answering. Returns 0
	 * when the owner counts them (until it frees req), or -EAGAIN to make
	 * req WAIT. */
	int (*reserve)(struct ed_req *req, uint64_t bytes);
	enum ed_req_state state;
	struct ed_frame out;         /* the response frame once DONE */
	size_t ready;                /* while PENDING: out.data[0..ready) is final and may be sent */
	size_t sent;                 /* bytes of out the owner has already sent */
	int status;                  /* Engram__V1__Status of the answer (not OK: failed) */
	int rows_request;            /* a lookup or tokens request: timed (latency metric) */
	int tokens_request;          /* ... and of these, a tokens request */
	uint64_t t_start;            /* uv_hrtime() when the frame was complete */
	uint64_t charge;             /* the owner's: bytes it counts for req */
	unsigned pending;            /* thread-pool jobs still running */
	int job_rc;                  /* first error of a job */
	uint64_t rows;               /* rows in the response, for stats */
	int urgent;                  /* a small request: holds ed_pool_urgent_hold until freed */
	struct ed_snap **pins;       /* released once the response is written */
	size_t n_pins;
	uint64_t **slot_bufs;        /* hashed slots of a tokens request, per table */
	size_t n_slot_bufs;
	void *jobs;                  /* thread-pool jobs of this request */
	void *msg;                   /* the unpacked Request */
	/* Same-host fast path, set by the owner: the connection's shared
	 * buffer (NULL when none is attached), which outlives the request and
	 * its jobs; and the hook that answers an AttachShmRequest (NULL when
	 * the transport cannot pass a memfd). The hook returns an
	 * Engram__V1__Status and, when not OK, a message in msg. */
	uint8_t *shm;
	size_t shm_size;
	int (*attach_shm)(struct ed_req *req, uint64_t size, char *msg, size_t msg_len);
};

/* Handles the request in frame (len bytes; not kept) on a NEW req. On return
 * req is DONE, WAIT or PENDING; a PENDING req's finish(req) is called on
 * req->loop when its last job ends (then DONE or ABANDONED). */
void ed_dispatch(struct ed_req *req, const uint8_t *frame, size_t len);

/* Answers a NEW req that came from no frame (a framing error its owner
 * found) with an error of id 0: req is DONE. */
void ed_dispatch_refuse(struct ed_req *req, Engram__V1__Status status, const char *msg);

/* Frees everything req holds, releasing its pins. Never while PENDING. */
void ed_req_free(struct ed_req *req);

/* Frames above this many bytes of rows are gathered off the loop. */
#define ED_GATHER_ASYNC_BYTES (512u << 10)

#endif
