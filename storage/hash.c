/* hash.c - token n-grams to table slots; see eg_hash.h.
 *
 * The hot path is eg_hash_slots: per sequence a rolling window of the last
 * max_ngram compressed tokens, no allocation, and for every (order, head)
 * a precomputed divisor so that "mix mod p" is a multiply-high and a shift
 * instead of a hardware division (16 of them per token dominate otherwise).
 */
#include <stdint.h>
#include <string.h>

#define XXH_INLINE_ALL /* n-grams are 16..128 bytes: the call would cost more than the hash */
#include <xxhash.h>

#include "eg_table.h"
#include "hash_int.h"

/* ---- division by a constant --------------------------------------------- */

void eg__hash_div_init(struct head *hd, uint64_t d)
{
	unsigned l = d == 1 ? 0 : 64 - (unsigned)__builtin_clzll(d - 1); /* ceil(log2 d) */

	hd->d = d;
	/* d < 2^63 here, so l <= 63 and (2^l - d) < d keeps the quotient in 64 bits */
	hd->magic = (uint64_t)((((unsigned __int128)((1ULL << l) - d)) << 64) / d) + 1;
	hd->sh1 = l > 0 ? 1 : 0;
	hd->sh2 = l > 0 ? l - 1 : 0;
	hd->neg_fix = (UINT64_MAX % d + 1) % d;
}

static inline uint64_t div_umod(const struct head *hd, uint64_t u)
{
	uint64_t t = (uint64_t)(((unsigned __int128)u * hd->magic) >> 64);
	uint64_t q = (t + ((u - t) >> hd->sh1)) >> hd->sh2;

	return u - q * hd->d;
}

/* The floor (Python/NumPy) modulus of the int64 whose bits are u. */
static inline uint64_t div_smod(const struct head *hd, uint64_t u)
{
	uint64_t r = div_umod(hd, u);
	uint64_t fix = hd->neg_fix & (0 - (u >> 63));
	uint64_t s = r - fix;

	return r < fix ? s + hd->d : s;
}

/* ---- hashing ---------------------------------------------------------------------- */

int64_t eg_hash_count_out(const uint32_t *seq_lens, const uint32_t *context, size_t nseq)
{
	int64_t n = 0;

	for (size_t i = 0; i < nseq; i++) {
		uint32_t c = context != NULL ? context[i] : 0;

		if (c > seq_lens[i])
			return EG_EINVAL;
		n += seq_lens[i] - c;
	}
	return n;
}

/* Raw id -> compressed id. As in the published module, negative ids are not
 * looked up but passed through; ids past the end of the map are errors. */
static inline int compress(const eg_hash *h, int64_t t, int64_t *out)
{
	if (h->vmap == NULL || t < 0) {
		*out = t;
		return 0;
	}
	if ((uint64_t)t >= h->vmap_len)
		return EG_ETOKEN;
	*out = h->vmap[t];
	return 0;
}

static inline uint64_t to_le64(uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return __builtin_bswap64(v);
#else
	return v;
#endif
}

/* cur points at the current token in the window; cur[-k] is the compressed
 * token k back (host order). */
static inline void engram_rows(const eg_hash *h, const uint64_t *cur, uint64_t *out)
{
	const struct head *hd = h->head;
	uint32_t H = h->heads;
	/* unsigned arithmetic: the same bits as wrapping int64, without UB */
	uint64_t mix = cur[0] * (uint64_t)h->mult[0];

	for (uint32_t n = 1; n < h->max_ngram; n++) {
		mix ^= cur[-(ptrdiff_t)n] * (uint64_t)h->mult[n];
		for (uint32_t j = 0; j < H; j++, hd++)
			*out++ = hd->off + div_smod(hd, mix);
	}
}

/* As above with tokens stored little-endian: the n-gram of order n is the n
 * words ending at cur, oldest first. */
static inline void xxh3_rows(const eg_hash *h, const uint64_t *cur, uint64_t *out)
{
	const struct head *hd = h->head;
	uint32_t N = h->max_ngram, H = h->heads, idx = 0;

	for (uint32_t n = 2; n <= N; n++)
		for (uint32_t j = 0; j < H; j++, hd++, idx++) {
			uint64_t v = XXH3_64bits_withSeed(cur - (n - 1), 8 * (size_t)n, h->seed + idx);

			*out++ = hd->off + div_umod(hd, v);
		}
}

int eg_hash_slots(const eg_hash *h, const int64_t *tokens, const uint32_t *seq_lens,
                  const uint32_t *context, size_t nseq, uint64_t *out, size_t *bad)
{
	uint32_t rpt = h->rows_per_token;
	int xxh3 = h->kind == KIND_XXH3;
	size_t base = 0;
	/* The window: token t is stored at i = t % MAX_NGRAM and again at
	 * i + MAX_NGRAM, so the last MAX_NGRAM tokens always lie contiguous,
	 * oldest first, ending at win[i + MAX_NGRAM] - nothing shifts per token. */
	uint64_t win[2 * MAX_NGRAM];

	if (eg_hash_count_out(seq_lens, context, nseq) < 0)
		return EG_EINVAL;
	for (size_t s = 0; s < nseq; s++) {
		uint32_t len = seq_lens[s], ctx = context != NULL ? context[s] : 0;
		uint64_t pad = xxh3 ? to_le64((uint64_t)h->pad) : (uint64_t)h->pad;

		for (size_t k = 0; k < 2 * MAX_NGRAM; k++)
			win[k] = pad;
		for (uint32_t t = 0; t < len; t++) {
			uint32_t i = t % MAX_NGRAM;
			int64_t c;

			if (compress(h, tokens[base + t], &c) != 0) {
				if (bad != NULL)
					*bad = base + t;
				return EG_ETOKEN;
			}
			win[i] = win[i + MAX_NGRAM] = xxh3 ? to_le64((uint64_t)c) : (uint64_t)c;
			if (t < ctx)
				continue;
			if (xxh3)
				xxh3_rows(h, win + i + MAX_NGRAM, out);
			else
				engram_rows(h, win + i + MAX_NGRAM, out);
			out += rpt;
		}
		base += len;
	}
	return 0;
}
