/* encode.c - response frames; rows are laid out for an in-place gather. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
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

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		ed_error("out of memory allocating %zu bytes for a response", n);
		abort();
	}
	return p;
}

void ed_encode_msg(const Engram__V1__Response *msg, struct ed_frame *out)
{
	size_t body = engram__v1__response__get_packed_size(msg);
	size_t pre = ed_varint_size(body);

	out->data = xmalloc(pre + body);
	ed_varint_put(out->data, body);
	engram__v1__response__pack(msg, out->data + pre);
	out->len = pre + body;
}

void ed_encode_error(struct ed_frame *out, uint64_t id, Engram__V1__Status status,
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
	ed_encode_msg(&r, out);
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

int ed_encode_rows(struct ed_frame *out, uint64_t id, uint64_t tokens, uint32_t rpt,
                   struct ed_block *blocks, size_t n)
{
	Engram__V1__Response r = ENGRAM__V1__RESPONSE__INIT;
	size_t hdr, body, pre, *bh, *bl, *dl;
	uint8_t *p;
	size_t i;

	r.id = id;
	r.tokens = tokens;
	r.rows_per_token = rpt;
	hdr = engram__v1__response__get_packed_size(&r);
	/* three sizes per block: header, block length, data length */
	bh = calloc(n ? 3 * n : 1, sizeof(size_t));
	if (!bh)
		return -ENOMEM;
	bl = bh + n;
	dl = bl + n;
	body = hdr;
	for (i = 0; i < n; i++) {
		Engram__V1__RowBlock b;

		block_header(&b, &blocks[i]);
		bh[i] = engram__v1__row_block__get_packed_size(&b);
		if (blocks[i].count > SIZE_MAX / 4 / (blocks[i].row_bytes ? blocks[i].row_bytes : 1))
			goto too_big;
		dl[i] = (size_t)blocks[i].count * blocks[i].row_bytes;
		if (blocks[i].shm)
			bl[i] = bh[i];
		else
			bl[i] = bh[i] + 1 + ed_varint_size(dl[i]) + dl[i];
		if (bl[i] > SIZE_MAX / 4 - body)
			goto too_big;
		body += 1 + ed_varint_size(bl[i]) + bl[i];
	}
	pre = ed_varint_size(body);
	out->data = malloc(pre + body);
	if (!out->data) {
		free(bh);
		return -ENOMEM;
	}
	p = out->data + ed_varint_put(out->data, body);
	p += engram__v1__response__pack(&r, p);
	for (i = 0; i < n; i++) {
		Engram__V1__RowBlock b;

		block_header(&b, &blocks[i]);
		*p++ = TAG_BLOCKS;
		p += ed_varint_put(p, bl[i]);
		p += engram__v1__row_block__pack(&b, p);
		if (blocks[i].shm)
			continue;
		*p++ = TAG_DATA;
		p += ed_varint_put(p, dl[i]);
		blocks[i].rows = p;
		p += dl[i];
	}
	out->len = (size_t)(p - out->data);
	free(bh);
	return 0;
too_big:
	free(bh);
	return -E2BIG;
}
