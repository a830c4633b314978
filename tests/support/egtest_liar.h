/* egtest_liar.h - a fake engramd for the client tests and the response
 * fuzzer: a real unix socket and the real framing, but every answer is what
 * the test decides (true, lying, truncated, endless).
 *
 * One thread accepts connections one after the other and reads each
 * request frame (any fds passed with it are closed); for every frame it calls
 * the test's function, which appends the bytes to send, and then sends them.
 * Needs no Check: the fuzzer links it too. */
#ifndef EGTEST_LIAR_H
#define EGTEST_LIAR_H

#include <stddef.h>
#include <stdint.h>

#include "engram.pb-c.h"

/* What to send for one request. */
struct egt_reply {
	uint8_t *data;       /* bytes sent as they are (append with the helpers) */
	size_t len, cap;
	uint64_t endless;    /* then this many zero bytes, as fast as the peer reads */
	int close_after;     /* close the connection once sent */
};

/* req is NULL for a frame that is not a Request; conn counts connections
 * from 0, nreq the requests on this one. */
typedef void (*egt_liar_fn)(void *arg, unsigned conn, unsigned nreq,
                            const Engram__V1__Request *req, struct egt_reply *out);

typedef struct egt_liar egt_liar;

/* Listens on the unix socket path (a leading '@': abstract namespace) and
 * serves with fn(arg, ...) on its own thread. 0, or -errno. */
int egt_liar_start(egt_liar **out, const char *path, egt_liar_fn fn, void *arg);
/* Stops the thread, closes every socket, frees l. */
void egt_liar_stop(egt_liar *l);

/* Appends raw bytes / a varint / one framed Response. */
void egt_reply_raw(struct egt_reply *r, const void *p, size_t n);
void egt_reply_varint(struct egt_reply *r, uint64_t v);
void egt_reply_msg(struct egt_reply *r, const Engram__V1__Response *m);
/* Appends a framed OK Response with no body (the answer to attach_shm). */
void egt_reply_ok(struct egt_reply *r, uint64_t id);

#endif
