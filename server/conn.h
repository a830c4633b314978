/* conn.h - one client connection: framing, ordered responses, backpressure.
 *
 * A connection belongs to one worker loop and is touched only from it.
 * Frames are varint length + Request. Responses leave in request order.
 * Its answers in memory (being gathered, queued or being written) stay
 * under --max-output, or are one answer alone, and count against the
 * daemon's --max-output-total; a request that does not fit now waits, and
 * the connection is not read meanwhile. */
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
/* Room came in the output budget: a request waiting for it tries again. */
void ed_conn_retry(uv_handle_t *h);

#endif
