/* hash_int.h - what hash_spec.c (parsing) and hash.c (hashing) share.
 * Internal to storage/. */
#ifndef EG_HASH_INT_H
#define EG_HASH_INT_H

#include <stddef.h>
#include <stdint.h>

#include "eg_hash.h"

#define MAX_NGRAM 16  /* keeps an n-gram within 128 bytes and the window on the stack */
#define MAX_HEADS 256

enum hash_kind { KIND_ENGRAM = 1, KIND_XXH3 = 2 };

/* One (order, head): its slot offset and its modulus as a divisor
 * (Granlund-Montgomery round-up method, valid for every 1 <= d < 2^64):
 * q = (t + ((u - t) >> sh1)) >> sh2 with t = mulhi(u, magic). */
struct head {
	uint64_t off;
	uint64_t d;
	uint64_t magic;
	uint64_t neg_fix; /* 2^64 mod d: turns u mod d into (u - 2^64) mod d */
	unsigned sh1, sh2;
};

struct eg_hash {
	enum hash_kind kind;
	uint32_t max_ngram, heads, rows_per_token;
	int64_t pad;
	int64_t mult[MAX_NGRAM]; /* engram-v1 */
	uint64_t seed;           /* xxh3 */
	uint64_t total;          /* sum of the moduli / rows */
	int64_t *vmap;           /* NULL: tokens are used as they are */
	size_t vmap_len;
	struct head *head;       /* rows_per_token entries, in slot order */
};

/* Fills hd's divisor for the modulus d (1 <= d < 2^63). */
void eg__hash_div_init(struct head *hd, uint64_t d);

#endif
