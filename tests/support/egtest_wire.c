/* egtest_wire.c - the varint length prefix of engramd's framing, for the
 * tests and benches that speak the wire protocol by hand (they must not
 * lean on the client library whose framing they check). */
#include "egtest.h"

size_t egt_varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

int egt_frame_parse(const uint8_t *buf, size_t len, size_t *hdr, uint64_t *body)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len && i < 10; i++) {
		v |= (uint64_t)(buf[i] & 0x7f) << (7 * i);
		if (!(buf[i] & 0x80))
			break;
	}
	/* a prefix still arriving, or longer than any varint: no frame yet */
	if (i >= len || i >= 10 || len - i - 1 < v)
		return 0;
	*hdr = i + 1;
	*body = v;
	return 1;
}
