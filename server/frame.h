/* frame.h - splitting a received byte stream into request frames.
 *
 * A frame is a protobuf varint length followed by that many bytes. This is
 * pure code (no I/O, no libuv): the connection calls it on its input buffer,
 * and the fuzz harness on arbitrary bytes. */
#ifndef ED_FRAME_H
#define ED_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum ed_split {
	ED_SPLIT_FRAME,      /* a whole frame: body at p + *hdr, *body bytes */
	ED_SPLIT_MORE,       /* incomplete: wait for more bytes */
	ED_SPLIT_BAD_LENGTH, /* the length is not a varint of at most 64 bits */
	ED_SPLIT_TOO_LARGE,  /* the length (in *body) is over max_frame */
};

/* Looks at the first frame of p[0..n). *hdr and *body are set for FRAME and
 * *body also for TOO_LARGE (known as soon as the length is complete, so an
 * oversized frame is refused before its bytes arrive). */
enum ed_split ed_frame_split(const uint8_t *p, size_t n, uint64_t max_frame, size_t *hdr,
                             uint64_t *body);

#endif
