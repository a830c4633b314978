/* eg_hash.h - token n-grams to table slots, as a table's hash spec says.
 *
 * Two kinds, both with max_ngram N (2..16) and H heads (1..256), yielding
 * (N-1)*H slots per token in the order (n=2: heads 0..H-1, n=3: heads
 * 0..H-1, ...):
 *
 * "engram-v1" - DeepSeek's published Engram hashing (NgramHashMapping in
 *   deepseek-ai/Engram's engram_demo_v1.py), bit for bit. Raw token ids go
 *   through the optional vocabulary map (raw id -> compressed id); as in the
 *   published code a negative id is not looked up but used as it is, and an
 *   id >= the map's length is an error (EG_ETOKEN). x_k is the compressed
 *   token k positions back (x_0 the current one), or pad (already
 *   compressed) before the start of the sequence;
 *   mix_n = (x_0*m_0) ^ (x_1*m_1) ^ ... ^ (x_{n-1}*m_{n-1}) in int64
 *   arithmetic (wrapping); slot = offset(n,h) + (mix_n mod p(n,h)) with the
 *   non-negative (Python/NumPy) modulus, offset = running sum of the moduli.
 *   The published module derives m (odd, per layer) and p (distinct primes)
 *   from its config; client/python/engram_client/spec.py writes that spec.
 *   Here any int64 multipliers and any positive moduli are accepted.
 * "xxh3" - slot = offset(n,h) + XXH3_64(x_{n-1}..x_0 as little-endian int64,
 *   oldest first, seed + index) mod rows(n,h), index = (n-2)*H + h, with
 *   the same vocabulary map and pad rules.
 *
 * The spec is JSON (see docs/FORMAT.md):
 *   {"kind":"engram-v1","max_ngram":3,"heads":8,"pad":2,
 *    "multipliers":[...N ints...],"moduli":[[H primes],[H primes]],
 *    "vocab_map":[...] or "vocab_map":"file.npy"}
 *   {"kind":"xxh3","max_ngram":3,"heads":8,"pad":0,"seed":0,"rows":[[...],[...]]}
 * Every field but "vocab_map" is required; unknown or repeated fields are
 * errors. Moduli / rows are positive and sum to at most 2^63-1. A .npy map
 * is 1-D little-endian int64 or int32. In a stored spec the vocabulary map
 * is always inline (a list).
 *
 * Threads: an eg_hash is read-only after eg_hash_parse; any number of
 * threads may call eg_hash_slots on it at once.
 */
#ifndef EG_HASH_H
#define EG_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eg_hash eg_hash;

/* Parses spec JSON text. base_dir resolves a relative "vocab_map" file name
 * (.npy of int32/int64); may be NULL (the current directory). On any error,
 * out of memory included, returns EG_EHASH, sets *out NULL and, when errbuf
 * is not NULL, writes a one-line reason starting "hash spec: " (errlen
 * bytes max, truncated). *out is freed with eg_hash_free(). */
int eg_hash_parse(const char *json, const char *base_dir, eg_hash **out,
                  char *errbuf, size_t errlen);

/* Frees h; NULL is a no-op. */
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
 * Every token is checked, context ones too. Errors: EG_EINVAL (context[i] >
 * seq_lens[i]; nothing written), EG_ETOKEN (a raw id >= the vocabulary
 * map's length; *bad = its index in tokens when bad is not NULL; out holds
 * garbage). No allocation; costs a few ns per slot. */
int eg_hash_slots(const eg_hash *h, const int64_t *tokens,
                  const uint32_t *seq_lens, const uint32_t *context,
                  size_t nseq, uint64_t *out, size_t *bad);

/* Number of returned tokens (sum of seq_lens[i] - context[i]); EG_EINVAL as
 * a negative value when a context exceeds its sequence. */
int64_t eg_hash_count_out(const uint32_t *seq_lens, const uint32_t *context,
                          size_t nseq);

#ifdef __cplusplus
}
#endif
#endif
