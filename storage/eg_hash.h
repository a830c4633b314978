/* eg_hash.h - token n-grams to table slots, as a table's hash spec says.
 *
 * Two kinds, both with max_ngram N (>= 2) and H heads, yielding (N-1)*H
 * slots per token in the order (n=2: heads 0..H-1, n=3: heads 0..H-1, ...):
 *
 * "engram-v1" - DeepSeek's published Engram hashing. Raw token ids go through
 *   the optional vocabulary map (raw id -> compressed id); x_k is the
 *   compressed token k positions back, or pad before the sequence start;
 *   mix_n = (x_0*m_0) ^ (x_1*m_1) ^ ... ^ (x_{n-1}*m_{n-1}) in int64
 *   arithmetic (wrapping); slot = offset(n,h) + (mix_n mod p(n,h)) with the
 *   non-negative (Python/NumPy) modulus, offset = running sum of the moduli.
 * "xxh3" - slot = offset(n,h) + XXH3_64(x_{n-1}..x_0 as little-endian int64,
 *   oldest first, seed + index) mod rows(n,h), index = (n-2)*H + h.
 *
 * The spec is JSON (see docs/FORMAT.md):
 *   {"kind":"engram-v1","max_ngram":3,"heads":8,"pad":2,
 *    "multipliers":[...N ints...],"moduli":[[H primes],[H primes]],
 *    "vocab_map":[...] or "vocab_map":"file.npy"}
 *   {"kind":"xxh3","max_ngram":3,"heads":8,"pad":0,"seed":0,"rows":[[...],[...]]}
 * In a stored spec the vocabulary map is always inline (a list).
 */
#ifndef EG_HASH_H
#define EG_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct eg_hash eg_hash;

/* Parses spec JSON text. base_dir resolves a relative "vocab_map" file name
 * (.npy of int32/int64); may be NULL. On error returns EG_EHASH and, when
 * errbuf is not NULL, writes a one-line reason (errlen bytes max).
 * *out is freed with eg_hash_free(). */
int eg_hash_parse(const char *json, const char *base_dir, eg_hash **out,
                  char *errbuf, size_t errlen);

void eg_hash_free(eg_hash *h);

/* The spec as canonical JSON with the vocabulary map inline (malloc'd, the
 * caller frees it), for storing in a table; NULL on allocation failure. */
char *eg_hash_to_json(const eg_hash *h);

/* Slots per token ((max_ngram-1)*heads) and the total slot count the table
 * must have (sum of the moduli / rows). */
uint32_t eg_hash_rows_per_token(const eg_hash *h);
uint64_t eg_hash_table_slots(const eg_hash *h);
/* "engram-v1" or "xxh3". */
const char *eg_hash_kind(const eg_hash *h);

/* Hashes nseq sequences. tokens holds all sequences back to back (sum of
 * seq_lens ids). For sequence i the first context[i] tokens (context may be
 * NULL = none) are history only: they are hashed as the n-gram tails of the
 * later tokens but produce no slots. Writes rows_per_token slots for each
 * returned token into out (caller-owned, sized by eg_hash_count_out).
 * Errors: EG_EINVAL (context[i] > seq_lens[i]), EG_ETOKEN (a raw id outside
 * the vocabulary map; *bad = its index in tokens). */
int eg_hash_slots(const eg_hash *h, const int64_t *tokens,
                  const uint32_t *seq_lens, const uint32_t *context,
                  size_t nseq, uint64_t *out, size_t *bad);

/* Number of returned tokens (sum of seq_lens[i] - context[i]); EG_EINVAL as
 * a negative value when a context exceeds its sequence. */
int64_t eg_hash_count_out(const uint32_t *seq_lens, const uint32_t *context,
                          size_t nseq);

#endif
