"""Hash specs for engram tables, derived from a model's Engram config.

engram-v1 reproduces the parameters of DeepSeek's published Engram module
(NgramHashMapping in engram_demo_v1.py):

* the pad id is a raw token id, put through the vocabulary compression map
  like any token (so the spec's "pad" is already compressed);
* per layer, multipliers = 2 * r + 1 with r drawn as
  numpy.random.default_rng(seed + 10007 * layer_id).integers(
      0, max(1, (INT64_MAX // compressed_vocab) // 2), size=max_ngram,
      dtype=int64)
  where compressed_vocab is the number of distinct compressed ids;
* moduli: for each layer in order, each order n = 2..max_ngram, each head,
  the smallest prime greater than the previous one (the search for an order
  starts above engram_vocab_size[n-2] - 1) that no earlier head of any
  layer took.

Command line (one JSON spec per layer, written to DIR/layer_<id>.json):

  /usr/bin/python3 -m engram_client.spec --vocab-size N \
      --engram-vocab-size 646400,646400 --max-ngram 3 --heads 8 \
      --layers 1,15 --seed 0 --pad 2 --out-dir DIR

With --vocab-map FILE.npy (raw id -> compressed id) instead of --vocab-size,
the compressed vocabulary size is taken from the map, the pad id is
compressed through it, and the spec names the file (relative to DIR, where
the table tools resolve it) unless --inline-map puts the map in the JSON.

Needs only numpy.
"""
import argparse
import json
import os
import sys

import numpy as np

INT64_MAX = (1 << 63) - 1
LAYER_SEED_STRIDE = 10007  # the published module's PRIME_1

# Deterministic Miller-Rabin bases: exact for every n < 3.3e24.
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)


def is_prime(n):
    """Exact primality for any n below 3.3e24 (deterministic Miller-Rabin)."""
    if n < 2:
        return False
    for p in _MR_BASES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def next_prime(after, taken):
    """Smallest prime > after that is not in taken."""
    c = after + 1
    while not (is_prime(c) and c not in taken):
        c += 1
    return c


def layer_multipliers(compressed_vocab, max_ngram, layer_id, seed):
    """The published per-layer odd multipliers, as Python ints."""
    if compressed_vocab < 1:
        raise ValueError("compressed vocabulary size must be >= 1")
    half_bound = max(1, (INT64_MAX // compressed_vocab) // 2)
    rng = np.random.default_rng(seed + LAYER_SEED_STRIDE * layer_id)
    r = rng.integers(low=0, high=half_bound, size=(max_ngram,), dtype=np.int64)
    return [int(v) for v in r * 2 + 1]


def layer_moduli(engram_vocab_size, max_ngram, heads, layer_ids):
    """{layer_id: [[p(2,0)..p(2,H-1)], ..., [p(N,0)..]]}; primes are never
    reused across heads, orders or layers (the published seen-primes set)."""
    if len(engram_vocab_size) != max_ngram - 1:
        raise ValueError(f"engram_vocab_size needs {max_ngram - 1} entries "
                         f"(one per order 2..{max_ngram}), got {len(engram_vocab_size)}")
    taken = set()
    out = {}
    for layer in layer_ids:
        orders = []
        for n in range(2, max_ngram + 1):
            start = engram_vocab_size[n - 2] - 1
            primes = []
            for _ in range(heads):
                p = next_prime(start, taken)
                taken.add(p)
                primes.append(p)
                start = p
            orders.append(primes)
        out[layer] = orders
    return out


def compressed_vocab_size(vocab_map):
    """Number of distinct compressed ids (the published len(new_tokens))."""
    return int(np.unique(np.asarray(vocab_map, dtype=np.int64)).size)


def compress_pad(pad, vocab_map):
    """The published module maps its raw pad id through the lookup table."""
    if vocab_map is None:
        return int(pad)
    vocab_map = np.asarray(vocab_map)
    if not 0 <= pad < vocab_map.size:
        raise ValueError(f"pad id {pad} is outside the vocabulary map (size {vocab_map.size})")
    return int(vocab_map[pad])


def engram_v1_specs(engram_vocab_size, max_ngram, heads, layer_ids, seed, pad,
                    vocab_size=None, vocab_map=None, vocab_map_ref=None):
    """One engram-v1 spec (a dict, JSON-ready) per layer id, in order.

    vocab_size is the compressed vocabulary size; with vocab_map (array, raw
    id -> compressed id) it is derived from the map instead. pad is a raw id
    (compressed through the map when there is one). vocab_map_ref is what
    the spec's "vocab_map" says: a file name, or None to inline the map
    (when a map is given), or omit it (when not).
    """
    if max_ngram < 2:
        raise ValueError("max_ngram must be >= 2")
    if heads < 1:
        raise ValueError("heads must be >= 1")
    if len(set(layer_ids)) != len(layer_ids):
        raise ValueError("layer ids repeat")
    if vocab_map is not None:
        vocab_map = np.asarray(vocab_map)
        if vocab_map.ndim != 1 or vocab_map.dtype.kind not in "iu":
            raise ValueError("vocabulary map must be a 1-D integer array")
        if vocab_size is None:
            vocab_size = compressed_vocab_size(vocab_map)
    if vocab_size is None:
        raise ValueError("give the compressed vocabulary size or the vocabulary map")
    cpad = compress_pad(pad, vocab_map)
    moduli = layer_moduli(list(engram_vocab_size), max_ngram, heads, layer_ids)
    specs = {}
    for layer in layer_ids:
        spec = {
            "kind": "engram-v1",
            "max_ngram": int(max_ngram),
            "heads": int(heads),
            "pad": cpad,
            "multipliers": layer_multipliers(vocab_size, max_ngram, layer, seed),
            "moduli": moduli[layer],
        }
        if vocab_map_ref is not None:
            spec["vocab_map"] = vocab_map_ref
        elif vocab_map is not None:
            spec["vocab_map"] = [int(v) for v in vocab_map]
        specs[layer] = spec
    return specs


def _int_list(text):
    return [int(v) for v in text.split(",") if v.strip() != ""]


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python3 -m engram_client.spec",
        description="Write engram-v1 hash specs (one JSON per layer) reproducing "
                    "DeepSeek's published Engram hashing parameters.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--vocab-size", type=int,
                     help="compressed vocabulary size (distinct compressed ids)")
    src.add_argument("--vocab-map", help=".npy of raw id -> compressed id (int32/int64)")
    ap.add_argument("--inline-map", action="store_true",
                    help="put the vocabulary map into the JSON instead of naming the file")
    ap.add_argument("--engram-vocab-size", type=_int_list, required=True,
                    help="comma-separated budget per order 2..max-ngram, e.g. 646400,646400")
    ap.add_argument("--max-ngram", type=int, default=3)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--layers", type=_int_list, required=True,
                    help="comma-separated layer ids, in the model's order, e.g. 1,15")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pad", type=int, required=True,
                    help="raw pad token id (compressed through the map when one is given)")
    ap.add_argument("--out-dir", required=True)
    a = ap.parse_args(argv)

    vocab_map = ref = None
    os.makedirs(a.out_dir, exist_ok=True)
    if a.vocab_map is not None:
        vocab_map = np.load(a.vocab_map, allow_pickle=False)
        if not a.inline_map:
            ref = os.path.relpath(os.path.abspath(a.vocab_map), os.path.abspath(a.out_dir))
    try:
        specs = engram_v1_specs(a.engram_vocab_size, a.max_ngram, a.heads, a.layers,
                                a.seed, a.pad, vocab_size=a.vocab_size,
                                vocab_map=vocab_map, vocab_map_ref=ref)
    except ValueError as e:
        print(f"engram_client.spec: {e}", file=sys.stderr)
        return 2
    for layer, spec in specs.items():
        path = os.path.join(a.out_dir, f"layer_{layer}.json")
        with open(path, "w") as f:
            json.dump(spec, f)
            f.write("\n")
        slots = sum(sum(o) for o in spec["moduli"])
        print(f"{path}: layer {layer}, {slots} slots, "
              f"{(a.max_ngram - 1) * a.heads} rows per token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
