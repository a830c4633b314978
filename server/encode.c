/* encode.c - response frames; rows are laid out for an in-place gather. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "encode.h"
#include "fault.h"
#include "log.h"

#define TAG_BLOCKS ((8u << 3) | 2u)   /* Response.blocks, length-delimited */
#define TAG_DATA   ((5u << 3) | 2u)   /* RowBlock.data, length-delimited */

size_t ed_varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t ed_varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* Every response frame's memory: malloc, or NULL when it fails (or the
 * tests' fault hook says it does). */
static uint8_t *frame_alloc(size_t n)
{
	if (ed_fault_frame_nomem())
		return NULL;
	return malloc(n ? n : 1);
}

int ed_encode_msg(const Engram__V1__Response *msg, struct ed_frame *out)
{
	size_t body = engram__v1__response__get_packed_size(msg);
	size_t pre = ed_varint_size(body);

	out->data = frame_alloc(pre + body);
	if (!out->data) {
		ed_error("out of memory framing a response of %zu bytes", pre + body);
		out->len = 0;
		return -ENOMEM;
	}
	ed_varint_put(out->data, body);
	engram__v1__response__pack(msg, out->data + pre);
	out->len = pre + body;
	return 0;
}

int ed_encode_error(struct ed_frame *out, uint64_t id, Engram__V1__Status status,
                    const char *fmt, ...)
{
	Engram__V1__Response r = ENGRAM__V1__RESPONSE__INIT;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r.id = id;
	r.status = status;
	r.error = msg;
	return ed_encode_msg(&r, out);
}

/* A RowBlock without its data: the size pass and the packing pass of
 * ed_encode_rows must see the very same header. */
static void block_header(Engram__V1__RowBlock *b, const struct ed_block *blk)
{
	*b = (Engram__V1__RowBlock)ENGRAM__V1__ROW_BLOCK__INIT;
	b->table = (char *)blk->table;
	b->generation = blk->generation;
	b->row_bytes = blk->row_bytes;
	b->count = blk->count;
	b->shm = blk->shm != 0;
	b->shm_offset = blk->shm ? blk->shm_offset : 0;
}

/* Sets *out to the Response's bytes without the length prefix and, when
 * bl is not NULL, bl[i] to block i's field length. Returns 0, or -E2BIG
 * when the size would overflow. */
static int rows_body(const Engram__V1__Response *r, const struct ed_block *blocks, size_t n,
                     size_t *bl, size_t *out)
{
	size_t body = engram__v1__response__get_packed_size(r);

	for (size_t i = 0; i < n; i++) {
		Engram__V1__RowBlock b;
		size_t len, dl;

		block_header(&b, &blocks[i]);
		len = engram__v1__row_block__get_packed_size(&b);
		if (blocks[i].count > SIZE_MAX / 4 / (blocks[i].row_bytes ? blocks[i].row_bytes : 1))
			return -E2BIG;
		dl = (size_t)blocks[i].count * blocks[i].row_bytes;
		if (!blocks[i].shm)
			len += 1 + ed_varint_size(dl) + dl;
		if (len > SIZE_MAX / 4 - body)
			return -E2BIG;
		body += 1 + ed_varint_size(len) + len;
		if (bl)
			bl[i] = len;
	}
	*out = body;
	return 0;
}

static void rows_header(Engram__V1__Response *r, uint64_t id, uint64_t tokens, uint32_t rpt)
{
	*r = (Engram__V1__Response)ENGRAM__V1__RESPONSE__INIT;
	r->id = id;
	r->tokens = tokens;
	r->rows_per_token = rpt;
	r->reads_fixed_slots = ed_cfg_fixed_slots_fit(); /* LookupRequest.fixed_slots */
}

size_t ed_encode_rows_size(uint64_t id, uint64_t tokens, uint32_t rpt,
                           const struct ed_block *blocks, size_t n)
{
	Engram__V1__Response r;
	size_t body;

	rows_header(&r, id, tokens, rpt);
	if (rows_body(&r, blocks, n, NULL, &body) < 0)
		return 0;
	return ed_varint_size(body) + body;
}

int ed_encode_rows(struct ed_frame *out, uint64_t id, uint64_t tokens, uint32_t rpt,
                   struct ed_block *blocks, size_t n)
{
	Engram__V1__Response r;
	size_t body, *bl = calloc(n ? n : 1, sizeof(size_t));
	uint8_t *p;

	if (!bl)
		return -ENOMEM;
	rows_header(&r, id, tokens, rpt);
	if (rows_body(&r, blocks, n, bl, &body) < 0) {
		free(bl);
		return -E2BIG;
	}
	out->data = frame_alloc(ed_varint_size(body) + body);
	if (!out->data) {
		free(bl);
		return -ENOMEM;
	}
	p = out->data + ed_varint_put(out->data, body);
	p += engram__v1__response__pack(&r, p);
	for (size_t i = 0; i < n; i++) {
		Engram__V1__RowBlock b;

		block_header(&b, &blocks[i]);
		*p++ = TAG_BLOCKS;
		p += ed_varint_put(p, bl[i]);
		p += engram__v1__row_block__pack(&b, p);
		if (blocks[i].shm)
			continue;
		*p++ = TAG_DATA;
		p += ed_varint_put(p, (size_t)blocks[i].count * blocks[i].row_bytes);
		blocks[i].rows = p;
		p += (size_t)blocks[i].count * blocks[i].row_bytes;
	}
	out->len = (size_t)(p - out->data);
	free(bl);
	return 0;
}
