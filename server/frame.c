/* frame.c - varint length-prefixed frames. */
#include "frame.h"

/* Parses a varint length at p[0..n): >0 bytes used, 0 incomplete, -1 bad. */
static int parse_len(const uint8_t *p, size_t n, uint64_t *len)
{
	uint64_t v = 0;

	for (size_t i = 0; i < 10; i++) {
		if (i == n)
			return 0;
		if (i == 9 && p[i] > 1)
			return -1; /* over 64 bits */
		v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*len = v;
			return (int)i + 1;
		}
	}
	return -1;
}

enum ed_split ed_frame_split(const uint8_t *p, size_t n, uint64_t max_frame, size_t *hdr,
                             uint64_t *body)
{
	uint64_t len;
	int hl = parse_len(p, n, &len);

	if (hl < 0)
		return ED_SPLIT_BAD_LENGTH;
	if (hl == 0)
		return ED_SPLIT_MORE;
	*body = len;
	if (len > max_frame)
		return ED_SPLIT_TOO_LARGE;
	if (n - (size_t)hl < len)
		return ED_SPLIT_MORE;
	*hdr = (size_t)hl;
	return ED_SPLIT_FRAME;
}
