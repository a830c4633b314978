/* encode.c - request frames (varint length + Request) in c->wbuf.
 *
 * Lookups are encoded by hand: protobuf-c walks a packed field twice (size,
 * then pack) and writes each varint as short as it can be, which costs a
 * visible share of a large lookup. Here every slot of a request takes the
 * width of the widest (a shorter one gets 0x80 groups, zero bits with the
 * continuation bit, which protobuf parsers read as the same number), so the
 * loop has no data-dependent branch: twice as fast on random slots. Once
 * the daemon said it reads them (Response.reads_fixed_slots), the slots go
 * as fixed_slots instead: one copy, and the daemon's parse is one too.
 * Every other request goes through protobuf-c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "egc_int.h"

/* Room for n bytes at the start of c->wbuf. */
static unsigned char *wbuf(eg_client *c, size_t n)
{
	unsigned char *w;

	if (n > c->wcap) {
		w = realloc(c->wbuf, n);
		if (!w)
			return NULL;
		c->wbuf = w;
		c->wcap = n;
	}
	return c->wbuf;
}

static inline unsigned char *put_varint(unsigned char *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	*p++ = (unsigned char)v;
	return p;
}

int egc__encode_msg(eg_client *c, Engram__V1__Request *req, const unsigned char **frame,
                    size_t *len)
{
	size_t body = protobuf_c_message_get_packed_size(&req->base);
	unsigned char *w, *p;

	if (body > SIZE_MAX - 10 || !(w = wbuf(c, body + 10)))
		return -ENOMEM;
	p = put_varint(w, body);
	protobuf_c_message_pack(&req->base, p);
	*frame = w;
	*len = (size_t)(p - w) + body;
	return 0;
}

/* v in exactly w groups of 7 bits (w >= the groups v needs). */
static inline unsigned char *put_varint_wide(unsigned char *p, uint64_t v, unsigned w)
{
	for (unsigned k = 1; k < w; k++) {
		*p++ = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	*p++ = (unsigned char)v;
	return p;
}

static size_t varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Request{ 1: id, 3: LookupRequest{ 1: table, 2: packed slots or 7: packed
 * fixed_slots[, 3: shm, 4: shm_offset][, 5: min_generation][, 6: shm_slots]
 * } }. The slots are written first (varints all at one width, or the words
 * as they are on a little-endian host) after room for the longest header;
 * the header then goes just before them, so the frame is contiguous. */
int egc__encode_lookup(eg_client *c, uint64_t id, const char *table, const uint64_t *slots,
                          size_t n, int shm, uint64_t shm_offset, uint64_t min_generation,
                          uint64_t shm_slots, const unsigned char **frame, size_t *len)
{
	size_t tlen = strlen(table), room = 64 + tlen, pbytes, lookup, body, hl, tail = 0;
	int fixed = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ &&
	            __atomic_load_n(&c->reads_fixed_slots, __ATOMIC_RELAXED);
	uint64_t bits = 0;
	unsigned char *w, *p, *h;
	unsigned width = sizeof(uint64_t);

	if (!fixed) {
		for (size_t i = 0; i < n; i++)
			bits |= slots[i]; /* as many bits as the largest slot */
		width = (unsigned)varint_size(bits);
	}
	if (n > (SIZE_MAX - room - 48) / width || !(w = wbuf(c, room + n * width + 48)))
		return -ENOMEM;
	p = w + room;
	if (fixed) {
		if (n)
			memcpy(p, slots, n * sizeof(*slots));
		p += n * sizeof(*slots);
	} else {
		for (size_t i = 0; i < n; i++)
			p = put_varint_wide(p, slots[i], width);
	}
	pbytes = (size_t)(p - (w + room));
	if (shm) {
		*p++ = 3 << 3 | 0;
		*p++ = 1;
		*p++ = 4 << 3 | 0;
		p = put_varint(p, shm_offset);
		tail = 3 + varint_size(shm_offset);
	}
	if (min_generation) {
		*p++ = 5 << 3 | 0;
		p = put_varint(p, min_generation);
		tail += 1 + varint_size(min_generation);
	}
	if (shm_slots) {
		*p++ = 6 << 3 | 0;
		p = put_varint(p, shm_slots);
		tail += 1 + varint_size(shm_slots);
	}
	lookup = 1 + varint_size(tlen) + tlen + 1 + varint_size(pbytes) + pbytes + tail;
	body = 1 + varint_size(id) + 1 + varint_size(lookup) + lookup;
	hl = varint_size(body) + body - pbytes - tail;
	h = w + room - hl;
	*frame = h;
	*len = hl + pbytes + tail;
	h = put_varint(h, body);
	*h++ = 1 << 3 | 0;
	h = put_varint(h, id);
	*h++ = 3 << 3 | 2;
	h = put_varint(h, lookup);
	*h++ = 1 << 3 | 2;
	h = put_varint(h, tlen);
	memcpy(h, table, tlen);
	h += tlen;
	*h++ = (fixed ? 7 : 2) << 3 | 2;
	put_varint(h, pbytes);
	return 0;
}
