/* reference.c - what correct answers hold, computed without the code under
 * test: the deterministic row fill the test tables are built from, and the
 * published engram-v1 formula for EGT_HASH_SPEC. Daemon and client tests
 * compare with these, never with eg_snapshot_gather or eg_hash_slots. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "egtest.h"

/* splitmix64: a cheap stream seeded by the hash of (seed, slot) */
static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

void egt_row_bytes(uint64_t seed, uint64_t slot, uint32_t row_bytes, void *out)
{
	uint8_t key[16], *o = out;
	uint64_t st;

	for (int i = 0; i < 8; i++) {
		key[i] = (uint8_t)(seed >> (8 * i));
		key[8 + i] = (uint8_t)(slot >> (8 * i));
	}
	st = XXH64(key, sizeof key, 0);
	while (row_bytes >= 8) {
		uint64_t v = splitmix(&st);

		memcpy(o, &v, 8);
		o += 8;
		row_bytes -= 8;
	}
	if (row_bytes) {
		uint64_t v = splitmix(&st);

		memcpy(o, &v, row_bytes);
	}
}


uint8_t *egt_rows(uint64_t seed, const uint64_t *slots, size_t n, uint32_t row_bytes)
{
	uint8_t *out = malloc(n * row_bytes + 1);

	ck_assert_ptr_nonnull(out);
	for (size_t i = 0; i < n; i++)
		egt_row_bytes(seed, slots[i], row_bytes, out + i * row_bytes);
	return out;
}

/* EGT_HASH_SPEC, field by field */
static const int64_t spec_mult[3] = { 1000003, 998244353, 7340033 };
static const int64_t spec_mod[2][2] = { { 1009, 1013 }, { 1019, 1021 } };

/* engram-v1 (DeepSeek's NgramHashMapping): x_k is the token k back, pad (0)
 * before the sequence; mix_n = x_0*m_0 ^ ... ^ x_{n-1}*m_{n-1}, wrapping in
 * int64; slot = offset(n,h) + mix_n mod p(n,h), the modulus non-negative,
 * offset the running sum of the moduli in the order (n=2: h0, h1; n=3: ...). */
size_t egt_hash_spec_slots(const int64_t *tokens, const uint32_t *lens, const uint32_t *ctx,
                           size_t nseq, uint64_t *out)
{
	size_t k = 0, at = 0;

	for (size_t s = 0; s < nseq; at += lens[s], s++) {
		for (uint32_t t = ctx ? ctx[s] : 0; t < lens[s]; t++) {
			int64_t x[3];
			uint64_t offset = 0, mix;

			for (uint32_t j = 0; j < 3; j++)
				x[j] = t >= j ? tokens[at + t - j] : 0; /* pad */
			mix = (uint64_t)x[0] * (uint64_t)spec_mult[0];
			for (int n = 2; n <= 3; n++) {
				mix ^= (uint64_t)x[n - 1] * (uint64_t)spec_mult[n - 1];
				for (int h = 0; h < 2; h++) {
					int64_t p = spec_mod[n - 2][h], r = (int64_t)mix % p;

					out[k++] = offset + (uint64_t)(r < 0 ? r + p : r);
					offset += (uint64_t)p;
				}
			}
		}
	}
	return k;
}
