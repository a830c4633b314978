"""Reference slot computation for engram table hash specs, in NumPy.

An implementation independent of storage/hash.c, written from the spec
text (storage/eg_hash.h, docs) and DeepSeek's published Engram hashing, and
vectorised over all tokens at once. The tests compare the C library with it
slot for slot.

  slots(spec, tokens, seq_lens, context=None, base_dir=None)
      -> uint64 array [returned tokens, rows per token]

As a program it writes random test cases for tests/unit/check_hash.c:

  engram_ref.py --gen SEED --cases K --dir DIR

prints K cases to stdout, one line each of
  spec <json on one line>
  seqs <nseq> <len_0> <ctx_0> ... <len_{nseq-1}> <ctx_{nseq-1}>
  tokens <n> <t_0> ...
  slots <m> <s_0> ...          (m = returned tokens * rows per token)
and stores the .npy vocabulary maps some specs name in DIR.
"""
import argparse
import json
import os
import sys

import numpy as np

U64 = np.uint64
M32 = U64(0xFFFFFFFF)

# XXH3 (xxHash 0.8) constants: the first 128 bytes of the default secret
# (all that inputs of at most 128 bytes use) and the avalanche multiplier.
_SECRET = bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
    "3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8"
    "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364")
_SW = np.frombuffer(_SECRET, dtype="<u8").astype(U64)  # secret as 16 LE words
_PRIME64_1 = U64(0x9E3779B185EBCA87)
_PRIME_MX1 = U64(0x165667919E3779F9)
MAX_NGRAM = 16  # 8 * 16 = 128 bytes: the XXH3 paths below cover 16..128


class TokenError(ValueError):
    def __init__(self, index, token):
        super().__init__(f"token {token} at index {index} is outside the vocabulary map")
        self.index = index


def _mul128_fold64(a, b):
    """(a * b) as 128 bits, low half XOR high half; uint64 arrays."""
    a_lo, a_hi = a & M32, a >> U64(32)
    b_lo, b_hi = b & M32, b >> U64(32)
    lo_lo, hi_lo = a_lo * b_lo, a_hi * b_lo
    lo_hi, hi_hi = a_lo * b_hi, a_hi * b_hi
    cross = (lo_lo >> U64(32)) + (hi_lo & M32) + lo_hi
    upper = (hi_lo >> U64(32)) + (cross >> U64(32)) + hi_hi
    lower = (cross << U64(32)) | (lo_lo & M32)
    return lower ^ upper


def _avalanche(h):
    h = h ^ (h >> U64(37))
    h = h * _PRIME_MX1
    return h ^ (h >> U64(32))


def xxh3_64_words(words, seed):
    """XXH3-64 of each row of words (uint64 [T, n], little-endian, 2 <= n <=
    16, i.e. 16..128 bytes) under seed (uint64 scalar)."""
    with np.errstate(over="ignore"):
        return _xxh3_64_words(np.asarray(words, dtype=U64), U64(seed))


def _xxh3_64_words(words, seed):
    n = words.shape[1]
    length = U64(8 * n)
    if not 2 <= n <= MAX_NGRAM:
        raise ValueError("xxh3 reference covers 16..128 byte inputs")
    if n == 2:  # 9..16 bytes
        flip1 = (_SW[3] ^ _SW[4]) + seed
        flip2 = (_SW[5] ^ _SW[6]) - seed
        lo = words[:, 0] ^ flip1
        hi = words[:, n - 1] ^ flip2
        acc = length + lo.byteswap() + hi + _mul128_fold64(lo, hi)
        return _avalanche(acc)
    # 17..128 bytes: pairs of 16-byte lanes from both ends, secret word 4i.
    def mix16(w, s):
        return _mul128_fold64(words[:, w] ^ (_SW[s] + seed),
                              words[:, w + 1] ^ (_SW[s + 1] - seed))
    acc = np.full(words.shape[0], length * _PRIME64_1, dtype=U64)
    rounds = 1 + (n > 4) + (n > 8) + (n > 12)
    for i in range(rounds):
        acc = acc + mix16(2 * i, 4 * i)
        acc = acc + mix16(n - 2 * (i + 1), 4 * i + 2)
    return _avalanche(acc)


def load_vocab_map(spec, base_dir=None):
    vm = spec.get("vocab_map")
    if vm is None:
        return None
    if isinstance(vm, str):
        path = vm if os.path.isabs(vm) or base_dir is None else os.path.join(base_dir, vm)
        return np.load(path, allow_pickle=False).astype(np.int64)
    return np.asarray(vm, dtype=np.int64)


def compress(tokens, vocab_map):
    """Raw -> compressed ids as the published module does: negative ids pass
    through unchanged, others index the map (out of range: TokenError)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if vocab_map is None:
        return tokens
    bad = np.nonzero(tokens >= vocab_map.size)[0]
    if bad.size:
        raise TokenError(int(bad[0]), int(tokens[bad[0]]))
    return np.where(tokens >= 0, vocab_map[np.clip(tokens, 0, None)], tokens)


def slots(spec, tokens, seq_lens, context=None, base_dir=None):
    kind = spec["kind"]
    N, H, pad = spec["max_ngram"], spec["heads"], spec["pad"]
    sizes = spec["moduli"] if kind == "engram-v1" else spec["rows"]
    sizes = [int(v) for order in sizes for v in order]
    offsets = np.cumsum([0] + sizes[:-1]).astype(U64)
    seq_lens = np.asarray(seq_lens, dtype=np.int64)
    context = np.zeros_like(seq_lens) if context is None else np.asarray(context, dtype=np.int64)
    if np.any(context > seq_lens):
        raise ValueError("context exceeds its sequence")

    comp = compress(tokens, load_vocab_map(spec, base_dir))
    total = comp.size
    starts = np.repeat(np.cumsum(seq_lens) - seq_lens, seq_lens)
    pos = np.arange(total) - starts            # position inside the sequence
    keep = pos >= np.repeat(context, seq_lens)
    idx = np.arange(total)
    # x[k] = compressed token k back, pad before the sequence start
    x = [np.where(pos >= k, comp[np.maximum(idx - k, 0)], np.int64(pad)) for k in range(N)]

    cols = []
    if kind == "engram-v1":
        mult = np.asarray(spec["multipliers"], dtype=np.int64)
        mix = x[0] * mult[0]
        for n in range(2, N + 1):
            mix = mix ^ (x[n - 1] * mult[n - 1])
            for h in range(H):
                i = (n - 2) * H + h
                cols.append(offsets[i] + np.mod(mix, np.int64(sizes[i])).astype(U64))
    elif kind == "xxh3":
        seed = spec["seed"]
        for n in range(2, N + 1):
            words = np.stack([x[k] for k in range(n - 1, -1, -1)], axis=1).view(U64)
            for h in range(H):
                i = (n - 2) * H + h
                hv = xxh3_64_words(words, (seed + i) & ((1 << 64) - 1))
                cols.append(offsets[i] + hv % U64(sizes[i]))
    else:
        raise ValueError(f"unknown kind {kind!r}")
    out = np.stack(cols, axis=1) if cols else np.zeros((total, 0), U64)
    return out[keep]


# ---- random cases for the C tests -----------------------------------------

def _rand_i64(rng, size):
    return rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, size=size,
                        dtype=np.int64, endpoint=True)


def _rand_sizes(rng, count, style):
    if style == 0:    # small, including 1 and powers of two
        return [int(v) for v in rng.choice([1, 2, 3, 4, 7, 8, 64, 97, 1 << 20], size=count)]
    if style == 1:    # Engram-like primes
        from_ = int(rng.integers(100, 1 << 30))
        return [from_ + 2 * j + 1 for j in range(count)]
    # huge, yet all of a spec's (<= 135) sizes sum below 2^63
    return [int(v) for v in rng.integers(1, 1 << 55, size=count)]


def random_case(rng, case_no, out_dir):
    kind = "engram-v1" if rng.integers(2) == 0 else "xxh3"
    N = int(rng.choice([2, 2, 3, 3, 3, 4, 5, MAX_NGRAM]))
    H = int(rng.integers(1, 10))
    style = int(rng.integers(3))
    spec = {"kind": kind, "max_ngram": N, "heads": H}
    vocab = int(rng.integers(1, 5000))
    map_style = int(rng.integers(4))   # none, inline, <i4 file, <i8 file
    vmap = None
    if map_style:
        vmap = rng.integers(0, max(1, vocab // 3), size=vocab, dtype=np.int64)
    spec["pad"] = int(rng.integers(-3, vocab))
    if kind == "engram-v1":
        spec["multipliers"] = [int(v) for v in _rand_i64(rng, N)] if rng.integers(2) \
            else [int(v) * 2 + 1 for v in rng.integers(0, 1 << 40, size=N)]
        spec["moduli"] = [_rand_sizes(rng, H, style) for _ in range(N - 1)]
    else:
        spec["seed"] = int(_rand_i64(rng, 1)[0]) if rng.integers(2) else 0
        spec["rows"] = [_rand_sizes(rng, H, style) for _ in range(N - 1)]
    if map_style == 1:
        spec["vocab_map"] = [int(v) for v in vmap]
    elif map_style > 1:
        name = f"map_{case_no}.npy"
        np.save(os.path.join(out_dir, name), vmap.astype("<i4" if map_style == 2 else "<i8"))
        spec["vocab_map"] = name

    nseq = int(rng.integers(1, 6))
    lens = rng.integers(0, 40, size=nseq)
    ctx = np.array([rng.integers(0, l + 1) for l in lens], dtype=np.int64)
    total = int(lens.sum())
    if vmap is not None:   # ids in the map, a few negative ones (passed through)
        tokens = rng.integers(-4, vocab, size=total, dtype=np.int64)
    elif rng.integers(2):
        tokens = _rand_i64(rng, total)
    else:
        tokens = rng.integers(0, 1000, size=total, dtype=np.int64)
    got = slots(spec, tokens, lens, ctx, base_dir=out_dir)
    return spec, lens, ctx, tokens, got


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gen", type=int, required=True, metavar="SEED")
    ap.add_argument("--cases", type=int, default=50)
    ap.add_argument("--dir", required=True, help="where .npy vocabulary maps go")
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.gen)
    w = sys.stdout.write
    for c in range(a.cases):
        spec, lens, ctx, tokens, got = random_case(rng, c, a.dir)
        w("spec " + json.dumps(spec, separators=(",", ":")) + "\n")
        w(f"seqs {len(lens)} " + " ".join(f"{l} {k}" for l, k in zip(lens, ctx)) + "\n")
        w(f"tokens {tokens.size} " + " ".join(map(str, tokens.tolist())) + "\n")
        w(f"slots {got.size} " + " ".join(map(str, got.ravel().tolist())) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
