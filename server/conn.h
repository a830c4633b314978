/* conn.h - one client connection: framing, ordered responses, backpressure.
 *
 * A connection belongs to one worker loop and is touched only from it.
 * Frames are varint length + Request. Responses leave in request order;
 * reading pauses while the unsent output passes --max-output. */
#ifndef ED_CONN_H
#define ED_CONN_H

#include <uv.h>

struct ed_worker;

/* Takes over the connected socket fd (unix or TCP) on w's loop. On failure
 * fd is closed. */
void ed_conn_open(struct ed_worker *w, int fd);

/* Stop reading new requests; close once what was received is answered. */
void ed_conn_drain(uv_handle_t *h);
/* Close now (drain timeout). */
void ed_conn_abort(uv_handle_t *h);

#endif
