/* encode.h - response frames: varint length + Response.
 *
 * Row responses are laid out by hand so that rows are gathered straight into
 * the frame: the Response header (id, status, tokens, rows_per_token,
 * reads_fixed_slots) packed
 * by protobuf-c, then per block field 8 (tag, length, the RowBlock header
 * packed by protobuf-c, then field 5's tag and length) followed by room for
 * the rows, which the caller fills. */
#ifndef ED_ENCODE_H
#define ED_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "engram.pb-c.h"

/* A response frame; data is malloc'd. */
struct ed_frame {
	uint8_t *data;
	size_t len;
};

/* Frames msg. Returns 0, or -ENOMEM (logged) when the frame cannot be
 * allocated: then out->data is NULL and out->len 0. */
int ed_encode_msg(const Engram__V1__Response *msg, struct ed_frame *out);

/* Frames an error response (id, status, printf-style message); returns as
 * ed_encode_msg. */
int ed_encode_error(struct ed_frame *out, uint64_t id, Engram__V1__Status status,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

struct ed_block {
	const char *table;
	uint64_t generation;
	uint32_t row_bytes;
	uint64_t count;
	uint8_t *rows;   /* set by ed_encode_rows: where count * row_bytes bytes go */
	int shm;         /* rows go to the shared buffer at shm_offset: the block
	                    has no data and ed_encode_rows leaves rows alone */
	uint64_t shm_offset;
};

/* Lays out a rows response (Lookup: tokens = rpt = 0) with room for every
 * block's rows and points blocks[i].rows there (shm blocks: no room, rows
 * untouched). Returns 0, or -ENOMEM when
 * the frame cannot be allocated, or -E2BIG when its size overflows. */
int ed_encode_rows(struct ed_frame *out, uint64_t id, uint64_t tokens, uint32_t rpt,
                   struct ed_block *blocks, size_t n);

/* The bytes ed_encode_rows would allocate for these blocks (their count,
 * row_bytes and shm set), or 0 when the size overflows. */
size_t ed_encode_rows_size(uint64_t id, uint64_t tokens, uint32_t rpt,
                           const struct ed_block *blocks, size_t n);

/* Bytes of v as a varint, and writing it (returns bytes written). */
size_t ed_varint_size(uint64_t v);
size_t ed_varint_put(uint8_t *p, uint64_t v);

#endif
