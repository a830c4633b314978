"""The soak's tables and what every row of them must hold, computed from a
formula alone (no engram code): the expectation the answers are checked
against.

A table version owns the generations [k * SPAN, (k + 1) * SPAN): it is
built at k * SPAN with every row base(k * SPAN, slot), and each patch in
place bumps the generation by one. The patch that makes generation g
rewrites the slots whose key (slot // width) % PERIOD equals g % PERIOD with
rows formula(g, slot). So the row of slot s served at generation G is
formula(g', s), g' the largest patch generation of G's version at or below
G whose residue is key(s), or formula(version base, s) when no patch of the
version has touched s yet.

Token rows: slots from the independent NumPy hashing of
tests/python/engram_ref.py, rows from the same formula.
"""
import json

import numpy as np

import engram_ref

SPAN = 1_000_000
PERIOD = 97
U64 = np.uint64
_GOLDEN = U64(0x9E3779B97F4A7C15)


def _splitmix(z):
    z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
    return z ^ (z >> U64(31))


def formula(tid, gens, slots, row_bytes):
    """Rows [n, row_bytes] (uint8) of slots at their generations gens:
    word 0 = generation | table id << 56, word 1 = slot, then hash words
    (so a wrong row can be named by what it holds)."""
    g = np.asarray(gens, dtype=np.int64).astype(U64)
    s = np.asarray(slots, dtype=np.int64).astype(U64)
    words = row_bytes // 8
    out = np.empty((s.size, words), dtype="<u8")
    with np.errstate(over="ignore"):
        out[:, 0] = g | (U64(tid) << U64(56))
        out[:, 1] = s
        x = (g * _GOLDEN) ^ (s * U64(0xD6E8FEB86659FD93)) ^ U64(tid)
        for j in range(2, words):
            out[:, j] = _splitmix(x + U64(j) * _GOLDEN)
    return out.view(np.uint8).reshape(s.size, row_bytes)


def primes_from(start, count):
    out, c = [], start
    while len(out) < count:
        if all(c % d for d in range(2, int(c ** 0.5) + 1)):
            out.append(c)
        c += 1
    return out


class Table:
    """One served table: its layout, patch pattern and hash spec (or None)."""

    def __init__(self, name, tid, row_bytes, chunk_slots, width, slots=None, spec=None):
        self.name, self.tid, self.row_bytes = name, tid, row_bytes
        self.chunk_slots, self.width, self.spec = chunk_slots, width, spec
        self.slots = slots if spec is None else sum(map(sum, spec["moduli"]))

    def key(self, slots):
        return (np.asarray(slots, dtype=np.int64) // self.width) % PERIOD

    def effective(self, gen, slots):
        """Generation whose formula slots hold when gen is served."""
        base = gen // SPAN * SPAN
        g = gen - (gen - self.key(slots)) % PERIOD
        return np.where(g > base, g, base)

    def expected(self, gen, slots):
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        return formula(self.tid, self.effective(gen, slots), slots, self.row_bytes)

    def patch(self, gen):
        """(slots, rows) the patch making generation gen writes."""
        s = np.arange(self.slots, dtype=np.int64)
        s = s[self.key(s) == gen % PERIOD]
        return s, formula(self.tid, np.full(s.size, gen), s, self.row_bytes)

    def base(self, gen):
        """Every row of a version built at generation gen."""
        s = np.arange(self.slots, dtype=np.int64)
        return formula(self.tid, np.full(s.size, gen), s, self.row_bytes)

    def token_slots(self, tokens, seq_lens, context):
        return engram_ref.slots(self.spec, tokens, seq_lens, context)


def token_spec():
    """An engram-v1 spec written here (not by engram_client.spec): 3-grams,
    4 heads, distinct primes, a vocabulary map compressing 60000 ids."""
    rng = np.random.default_rng(4242)
    vocab_map = rng.integers(0, 45000, size=60000, dtype=np.int64)
    mult = rng.integers(0, 1 << 40, size=3, dtype=np.int64) * 2 + 1
    p = primes_from(30011, 8)
    return {"kind": "engram-v1", "max_ngram": 3, "heads": 4, "pad": 2,
            "multipliers": [int(m) for m in mult], "moduli": [p[:4], p[4:]],
            "vocab_map": [int(v) for v in vocab_map]}


VOCAB = 60000

# pc: page-cache mode, every patch touches every chunk; rc: row cache
# (--cache-bytes), a patch rewrites a few 700-slot runs that straddle chunks;
# tok: hashed by the daemon (and looked up by slot too).
TABLES = [
    Table("pc", 1, 32, 4096, 1, slots=262144),
    Table("rc", 2, 160, 1024, 700, slots=262144),
    Table("tok", 3, 64, 2048, 1, spec=token_spec()),
]
BY_NAME = {t.name: t for t in TABLES}


def write_spec(path, table):
    with open(path, "w") as f:
        json.dump(table.spec, f)


def _holds(row):
    w = row[:16].view("<u8")
    return f"(table {int(w[0]) >> 56}, generation {int(w[0]) & ((1 << 56) - 1)}, slot {int(w[1])})"


def wrong_rows(table, gen, slots, got):
    """None when got (uint8 [n, row_bytes]) is exactly the rows of slots at
    generation gen; else one line saying how many rows are wrong and what
    the first ones hold."""
    slots = np.asarray(slots, dtype=np.int64).reshape(-1)
    got = np.asarray(got).view(np.uint8)
    if got.size != slots.size * table.row_bytes:
        return f"{table.name}: {got.size} bytes of rows for {slots.size} slots"
    got = got.reshape(slots.size, table.row_bytes)
    exp = table.expected(gen, slots)
    bad = np.nonzero((got != exp).any(axis=1))[0]
    if not bad.size:
        return None
    eff = table.effective(gen, slots[bad[:3]])
    first = "; ".join(f"row {i} slot {slots[i]} wants generation {e}, holds {_holds(got[i])}"
                      for i, e in zip(bad[:3], eff))
    return f"{table.name} at generation {gen}: {bad.size} of {slots.size} rows wrong: {first}"
