/* conn_int.h - one client connection, shared by conn.c (its life),
 * conn_shm.c (a unix connection's first read), conn_in.c (framing and
 * dispatch) and conn_out.c (ordered writes, backpressure). Nothing outside
 * them includes this; the rest of the daemon sees conn.h.
 *
 * A connection's life is enum ed_conn_state; ed__conn_event in conn.c is
 * the one place that changes it:
 *
 *   FIRST_READ --bytes--> HANDOVER --pipe open--> OPEN
 *   OPEN --EOF or drain--> FINISHING
 *   OPEN, FINISHING --bad frame--> BROKEN
 *   FINISHING, BROKEN --every answer written--> CLOSING
 *   any --I/O error, drain timeout; FIRST_READ also EOF, drain--> CLOSING
 *
 * Events a state does not list leave it as it is (a drain of a BROKEN
 * connection, a second close). A CLOSING connection is freed once each of
 * its libuv handles has closed and no thread-pool job writes into one of
 * its requests. Whether the stream is read is not stored: it follows from
 * the state and the backpressure (ed__conn_set_reading). */
#ifndef ED_CONN_INT_H
#define ED_CONN_INT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "dispatch.h"

enum ed_conn_state {
	ED_CONN_FIRST_READ, /* unix: a uv_poll_t waits for the first bytes, read
	                       with recvmsg to keep a memfd passed along */
	ED_CONN_HANDOVER,   /* they are in; the poll handle is closing, then the
	                       pipe takes the fd */
	ED_CONN_OPEN,       /* reading (unless output backs up), framing, answering */
	ED_CONN_FINISHING,  /* input ended (EOF, or SIGTERM's drain): what was
	                       received is answered, then the connection closes */
	ED_CONN_BROKEN,     /* a frame error's answer is the last queued: nothing
	                       more is framed; closes once it is written */
	ED_CONN_CLOSING,    /* uv_close called */
};

enum ed_conn_ev {
	ED_CONN_EV_FIRST_BYTES, /* the first read brought bytes */
	ED_CONN_EV_PIPE_OPEN,   /* the pipe owns the socket */
	ED_CONN_EV_EOF,         /* the client closed its side */
	ED_CONN_EV_DRAIN,       /* the worker stops: read no more */
	ED_CONN_EV_BAD_FRAME,   /* a frame error was answered */
	ED_CONN_EV_ANSWERED,    /* nothing queued, nothing being written */
	ED_CONN_EV_CLOSE,       /* I/O error or drain timeout: close now */
};

struct ed_conn {
	union {
		uv_handle_t h;
		uv_stream_t s;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} u;
	enum ed_conn_state state;
	struct ed_worker *w;
	unsigned handles;            /* libuv handles not closed yet (stream, poll) */
	uint8_t *in;                 /* received bytes not yet framed */
	size_t in_len, in_cap;
	struct ed_req *head, *tail;  /* requests not yet handed to uv_write */
	size_t waiting;              /* in the queue */
	uint64_t mem;                /* bytes counted for its requests not yet freed
	                                (ed_req.charge), in the output budget too */
	uint64_t want;               /* bytes the next frame's request waits for, or 0 */
	uint64_t wait_start;         /* when that frame was complete (latency) */
	unsigned writes;             /* uv_write requests in flight */
	unsigned jobs;               /* requests with thread-pool work running */
	/* unix connections (conn_shm.c) */
	uv_poll_t poll;              /* the first read */
	int fd;                      /* the socket, or -1 (TCP); the pipe owns it
	                                once OPEN */
	int pass_fd;                 /* memfd received with the first bytes, or -1 */
	uint64_t frames;             /* request frames dispatched */
	uint8_t *shm;                /* attached shared buffer, or NULL */
	size_t shm_size;
};

/* conn.c */
/* Applies ev to c's state (see the top of this file); returns whether the
 * state changed. Entering HANDOVER or CLOSING closes handles. */
int ed__conn_event(struct ed_conn *c, enum ed_conn_ev ev);
/* Frees c when it is CLOSING, its handles have closed and no job runs. */
void ed__conn_free_if_idle(struct ed_conn *c);

/* conn_shm.c */
/* Starts the first read of a unix connection on fd (FIRST_READ); returns 0
 * or a libuv error (fd is then still the caller's). */
int ed__conn_first_read(struct ed_conn *c, uv_loop_t *loop, int fd);
/* Closes the poll handle of the first read (entering HANDOVER or CLOSING
 * from FIRST_READ); its close callback hands the socket to the pipe, or
 * closes it when CLOSING. */
void ed__conn_close_poll(struct ed_conn *c);
/* The hook that answers an AttachShmRequest (ed_req.attach_shm). */
int ed__conn_attach_shm(struct ed_req *req, uint64_t size, char *msg, size_t msg_len);

/* conn_in.c */
/* Starts or stops reading as the state and backpressure say. */
void ed__conn_set_reading(struct ed_conn *c);
/* Frames and dispatches what was received, writes what is answered, and
 * closes a FINISHING or BROKEN connection once all is written. */
void ed__conn_process(struct ed_conn *c);
/* The read buffer for the next bytes (libuv's alloc_cb shape). */
void ed__conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* conn_out.c */
/* Whether output backs up so far that no more requests are framed. */
int ed__conn_paused(const struct ed_conn *c);
/* Whether the request c->want waits for may be tried again now; if not for
 * the budget, the worker is woken when room comes. */
int ed__conn_room(struct ed_conn *c);
/* Whether the daemon has room for a small answer; if not, c waits for it
 * (c->want). Asked before every frame is dispatched. */
int ed__conn_may_frame(struct ed_conn *c);
/* req->reserve: counts bytes for req, or returns -EAGAIN (and sets
 * c->want) when the connection or the daemon holds too much already. */
int ed__conn_reserve(struct ed_req *req, uint64_t bytes);
/* Counts an answered request that reserved nothing (its frame's bytes). */
void ed__conn_charge(struct ed_conn *c, struct ed_req *req);
/* Gives back what req counted and frees it. */
void ed__conn_req_free(struct ed_conn *c, struct ed_req *req);
/* Hands every answered request at the head of the queue to uv_write. */
void ed__conn_flush(struct ed_conn *c);
/* req->progress: sends the gathered head of a PENDING response. */
void ed__conn_send_head(struct ed_req *req);

#endif
