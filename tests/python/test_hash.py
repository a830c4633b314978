"""Hash specs on the Python side: the engram-v1 spec generator
(engram_client.spec) against the published Engram demo's parameters, and the
NumPy reference (engram_ref.py) against a plain per-token loop written from
the spec text and against XXH3 values from libxxhash.

The C library is compared with engram_ref.py slot for slot by
tests/unit/check_hash.c (it runs engram_ref.py --gen) and here end to end:
tables whose row r holds r, token lookups through the real engramd.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engram_ref  # noqa: E402
from engram_client import spec as gen  # noqa: E402

PYTHON = os.environ.get("PYTHON", "/usr/bin/python3")
CLIENT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "client", "python")

# deepseek-ai/Engram engram_demo_v1.py: engram_vocab_size [129280*5]*2, 8 heads,
# max_ngram 3, layers [1, 15], seed 0, pad 2.
DEMO = dict(engram_vocab_size=[646400, 646400], max_ngram=3, heads=8, layer_ids=[1, 15],
            seed=0, pad=2)


def primes_from(start, count):
    """The first count primes >= start, by trial division (independent of
    engram_client.spec.is_prime)."""
    out, c = [], start
    while len(out) < count:
        if c > 1 and all(c % d for d in range(2, int(c ** 0.5) + 1)):
            out.append(c)
        c += 1
    return out


class GeneratorTest(unittest.TestCase):
    def test_demo_moduli(self):
        specs = gen.engram_v1_specs(vocab_size=129280, **DEMO)
        l1, l15 = specs[1]["moduli"], specs[15]["moduli"]
        # the published demo's layer 1 and 15 tables
        self.assertEqual(l1[0][:3], [646403, 646411, 646421])
        self.assertEqual(l15[0][0], 646631)
        # both orders start from the same budget, so the layers take the
        # primes above 646399 in turn, none twice: l1 n=2, l1 n=3, l15 n=2, l15 n=3
        expect = primes_from(646400, 32)
        self.assertEqual(l1[0] + l1[1] + l15[0] + l15[1], expect)
        self.assertEqual(sum(map(sum, l1)), 10344164)

    def test_order_budgets_differ(self):
        specs = gen.engram_v1_specs([100, 50], 3, 2, [0, 1], 0, 0, vocab_size=10)
        self.assertEqual(specs[0]["moduli"], [[101, 103], [53, 59]])
        self.assertEqual(specs[1]["moduli"], [[107, 109], [61, 67]])

    def test_multipliers(self):
        specs = gen.engram_v1_specs(vocab_size=129280, **DEMO)
        # pinned: numpy default_rng(0 + 10007 * layer).integers(0, half, 3, int64) * 2 + 1
        self.assertEqual(specs[1]["multipliers"],
                         [58737837727525, 3709723095905, 27562777300965])
        self.assertEqual(specs[15]["multipliers"],
                         [22166238923025, 42939128327945, 41336139856257])
        half = ((2 ** 63 - 1) // 129280) // 2
        for layer in (1, 15):
            r = np.random.default_rng(10007 * layer).integers(0, half, size=3, dtype=np.int64)
            self.assertEqual(specs[layer]["multipliers"], [int(v) * 2 + 1 for v in r])
            for m in specs[layer]["multipliers"]:
                self.assertEqual(m % 2, 1)
                self.assertLess(m, 2 * half)
        # a huge vocabulary still gives a valid draw (bound at least 1)
        self.assertEqual(gen.layer_multipliers(2 ** 62, 3, 0, 0), [1, 1, 1])

    def test_vocab_map_and_pad(self):
        vmap = np.array([0, 0, 1, 2, 2, 3], dtype=np.int64)   # 4 compressed ids
        specs = gen.engram_v1_specs([20, 20], 3, 1, [2], 5, 4, vocab_map=vmap)
        s = specs[2]
        self.assertEqual(s["pad"], 2)                 # raw pad 4 -> compressed 2
        self.assertEqual(s["vocab_map"], vmap.tolist())
        self.assertEqual(s["multipliers"], gen.layer_multipliers(4, 3, 2, 5))
        with self.assertRaises(ValueError):
            gen.engram_v1_specs([20, 20], 3, 1, [2], 5, 6, vocab_map=vmap)
        with self.assertRaises(ValueError):
            gen.engram_v1_specs([20], 3, 1, [2], 5, 0, vocab_size=4)

    def test_is_prime(self):
        small = set(primes_from(0, 200))
        for n in range(-3, max(small) + 1):
            self.assertEqual(gen.is_prime(n), n in small, n)
        self.assertTrue(gen.is_prime(2 ** 61 - 1))
        self.assertFalse(gen.is_prime(3215031751))    # strong pseudoprime to 2, 3, 5, 7

    def test_command_line(self):
        with tempfile.TemporaryDirectory() as d:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                [CLIENT_DIR] + sys.path))  # the package imports engram_pb2 too
            out = os.path.join(d, "specs")
            p = subprocess.run([PYTHON, "-m", "engram_client.spec", "--vocab-size", "129280",
                                "--engram-vocab-size", "646400,646400", "--max-ngram", "3",
                                "--heads", "8", "--layers", "1,15", "--seed", "0", "--pad", "2",
                                "--out-dir", out], env=env, capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            want = gen.engram_v1_specs(vocab_size=129280, **DEMO)
            for layer in (1, 15):
                with open(os.path.join(out, f"layer_{layer}.json")) as f:
                    self.assertEqual(json.load(f), want[layer])

            np.save(os.path.join(d, "map.npy"), np.array([3, 1, 0, 2], dtype=np.int32))
            p = subprocess.run([PYTHON, "-m", "engram_client.spec", "--vocab-map",
                                os.path.join(d, "map.npy"), "--engram-vocab-size", "50",
                                "--max-ngram", "2", "--heads", "2", "--layers", "0",
                                "--pad", "1", "--out-dir", out], env=env,
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(out, "layer_0.json")) as f:
                s = json.load(f)
            self.assertEqual(s["vocab_map"], "../map.npy")   # relative to the spec's dir
            self.assertEqual(s["pad"], 1)
            self.assertEqual(s["moduli"], [[53, 59]])
            # the map is found through the relative path and applied:
            # raw 0, 3 -> compressed 3, 2
            got = engram_ref.slots(s, [0, 3], [2], base_dir=out)
            self.assertEqual(got.tolist(), slow_engram(s, [0, 3], [3, 1, 0, 2]))
            self.assertNotEqual(got.tolist(), slow_engram(s, [0, 3], None))

            p = subprocess.run([PYTHON, "-m", "engram_client.spec", "--vocab-size", "10",
                                "--engram-vocab-size", "50", "--max-ngram", "3",
                                "--layers", "0", "--pad", "1", "--out-dir", out],
                               env=env, capture_output=True, text=True)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("engram_vocab_size needs 2 entries", p.stderr)


def slow_engram(spec, seq, vmap):
    """engram-v1 for one sequence, token by token, straight from the text."""
    N, H, pad, m = spec["max_ngram"], spec["heads"], spec["pad"], spec["multipliers"]
    moduli = [p for order in spec["moduli"] for p in order]
    offsets = [sum(moduli[:i]) for i in range(len(moduli))]
    comp = [t if vmap is None or t < 0 else int(vmap[t]) for t in seq]

    def wrap(v):  # int64 wrapping
        return (v + 2 ** 63) % 2 ** 64 - 2 ** 63

    rows = []
    for t in range(len(comp)):
        x = [comp[t - k] if t - k >= 0 else pad for k in range(N)]
        row = []
        for n in range(2, N + 1):
            mix = 0
            for k in range(n):
                mix ^= wrap(x[k] * m[k])
            for h in range(H):
                i = (n - 2) * H + h
                row.append(offsets[i] + mix % moduli[i])   # Python %: non-negative
        rows.append(row)
    return rows


class ReferenceTest(unittest.TestCase):
    XXH3_GOLDEN = [  # XXH3_64bits_withSeed from libxxhash 0.8.1; seeds 0, 7, 2^64-1
        (2, [0x96e1bec7839ee8b5, 0x9e24a15aa3a73729, 0x892a19ca207fdb94]),
        (3, [0xe195a069cf3a7a83, 0x57df41c6e409c016, 0x443e062e6669fd1f]),
        (4, [0xd39aafd91e8bf148, 0x57f56e04eeb1f8e8, 0xa1ce4950300dc4b7]),
        (5, [0xd836ab12c4203c07, 0x27f0b0081b7ee658, 0xf4dd1fd8e763c6ec]),
        (9, [0x051a83bd36bc5ca0, 0xba69983654fbee5e, 0x9bfcef2a00ab013f]),
        (13, [0xfd41417cf26f275d, 0x7e4670e3cfb05510, 0x50f899fcc088b242]),
        (16, [0xbd919feb6c8f3dbb, 0x04f8b6eb19a3fb19, 0x4ba260f6738e91e5]),
    ]

    def test_xxh3_words(self):
        w = np.array([(i * 0x9E3779B97F4A7C15 ^ i) & (2 ** 64 - 1) for i in range(16)],
                     dtype=np.uint64)
        for n, want in self.XXH3_GOLDEN:
            for seed, h in zip([0, 7, 2 ** 64 - 1], want):
                got = engram_ref.xxh3_64_words(w[None, :n], seed)
                self.assertEqual(int(got[0]), h, f"n={n} seed={seed}")

    def test_engram_against_loop(self):
        rng = np.random.default_rng(7)
        for case in range(40):
            N, H = int(rng.integers(2, 6)), int(rng.integers(1, 5))
            vocab = int(rng.integers(1, 300))
            vmap = rng.integers(0, 100, size=vocab) if case % 2 else None
            spec = {"kind": "engram-v1", "max_ngram": N, "heads": H,
                    "pad": int(rng.integers(-5, 100)),
                    "multipliers": [int(v) for v in rng.integers(-2 ** 63, 2 ** 63 - 1, size=N,
                                                                 dtype=np.int64)],
                    "moduli": [[int(v) for v in rng.integers(1, 2 ** 40, size=H)]
                               for _ in range(N - 1)]}
            if vmap is not None:
                spec["vocab_map"] = [int(v) for v in vmap]
            lens = rng.integers(0, 12, size=3)
            ctx = [int(rng.integers(0, l + 1)) for l in lens]
            low = -3 if vmap is not None else -2 ** 40
            tokens = rng.integers(low, vocab, size=int(lens.sum()))
            want, at = [], 0
            for l, c in zip(lens, ctx):
                want += slow_engram(spec, tokens[at:at + l].tolist(), vmap)[c:]
                at += l
            got = engram_ref.slots(spec, tokens, lens, ctx)
            self.assertEqual(got.tolist(), want, f"case {case}")

    def test_token_outside_map(self):
        spec = {"kind": "engram-v1", "max_ngram": 2, "heads": 1, "pad": 0,
                "multipliers": [1, 1], "moduli": [[7]], "vocab_map": [0, 1, 2]}
        with self.assertRaises(engram_ref.TokenError) as e:
            engram_ref.slots(spec, [0, 2, 3, 1], [4])
        self.assertEqual(e.exception.index, 2)
        self.assertEqual(engram_ref.slots(spec, [-1, 2], [2]).tolist(), [[6], [4]])  # -1 ^ 0, 2 ^ -1

    def test_gen_cases_parse(self):
        with tempfile.TemporaryDirectory() as d:
            p = subprocess.run([PYTHON, engram_ref.__file__, "--gen", "3", "--cases", "20",
                                "--dir", d], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            lines = p.stdout.splitlines()
            self.assertEqual(len(lines), 80)
            for i in range(0, 80, 4):
                spec = json.loads(lines[i][len("spec "):])
                self.assertIn(spec["kind"], ("engram-v1", "xxh3"))
                n_slots = int(lines[i + 3].split()[1])
                rpt = (spec["max_ngram"] - 1) * spec["heads"]
                seqs = [int(v) for v in lines[i + 1].split()[2:]]
                returned = sum(seqs[0::2]) - sum(seqs[1::2])
                self.assertEqual(n_slots, returned * rpt)


class DaemonTokensTest(unittest.TestCase):
    """Token lookups through engramd: the daemon's hashing (storage/hash.c)
    must give exactly the reference's slots, for both kinds, with maps given
    inline and as .npy files, over several sequences with decode context."""

    @classmethod
    def setUpClass(cls):
        import daemon_support as ds
        cls.ds = ds
        cls.tmp = tempfile.mkdtemp(prefix="test-hash-")
        rng = np.random.default_rng(11)
        vmap = rng.integers(0, 700, size=1000)
        np.save(os.path.join(cls.tmp, "map.npy"), vmap.astype("<i4"))
        cls.specs = {
            "ev1": gen.engram_v1_specs([900, 700, 500], 4, 3, [0], 0, 5,
                                       vocab_map=vmap)[0],
            "xx": {"kind": "xxh3", "max_ngram": 3, "heads": 4, "pad": 3, "seed": 99,
                   "rows": [[101, 211, 307, 401], [503, 601, 701, 809]],
                   "vocab_map": "map.npy"},
        }
        cls.tables = {}
        for name, spec in cls.specs.items():
            sp = os.path.join(cls.tmp, name + ".json")
            with open(sp, "w") as f:
                json.dump(spec, f)
            n = sum(map(sum, spec.get("moduli") or spec["rows"]))
            rows = np.arange(n, dtype="<u8").view(np.uint8).reshape(n, 8)  # row r holds r
            src = os.path.join(cls.tmp, name + ".rows.npy")
            np.save(src, rows)
            cls.tables[name] = os.path.join(cls.tmp, name)
            ds.engram("table", "import", cls.tables[name], "--from", src, "--hash", sp,
                      "--chunk-slots", 1024, "--name", name)
        cls.daemon = ds.Daemon(cls.tables)

    @classmethod
    def tearDownClass(cls):
        rc = cls.daemon.stop()
        cls.daemon.cleanup()
        import shutil
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert rc == 0, rc

    def tokens(self, names, tokens, lens, ctx):
        c = self.ds.Conn(self.daemon.addr)
        try:
            return c.call(tokens=self.ds.pb.TokensRequest(
                tables=names, tokens=list(map(int, tokens)), seq_lens=list(map(int, lens)),
                context=list(map(int, ctx))))
        finally:
            c.close()

    def test_slots_match_reference(self):
        rng = np.random.default_rng(5)
        names = ["ev1", "xx"]
        for _ in range(5):
            lens = rng.integers(0, 50, size=4)
            ctx = np.array([rng.integers(0, l + 1) for l in lens])
            toks = rng.integers(-3, 1000, size=int(lens.sum()))
            r = self.tokens(names, toks, lens, ctx)
            self.assertEqual(r.status, self.ds.pb.OK, r.error)
            self.assertEqual(len(r.blocks), 2)
            for name, block in zip(names, r.blocks):
                want = engram_ref.slots(self.specs[name], toks, lens, ctx, base_dir=self.tmp)
                got = np.frombuffer(block.data, dtype="<u8").reshape(want.shape)
                np.testing.assert_array_equal(got, want, err_msg=name)

    def test_token_outside_map(self):
        r = self.tokens(["xx"], [1, 2, 1000, 4], [2, 2], [0, 1])
        self.assertEqual(r.status, self.ds.pb.BAD_REQUEST)
        self.assertIn("tokens[2] = 1000", r.error)
        r = self.tokens(["xx"], [1, 2], [2], [3])
        self.assertEqual(r.status, self.ds.pb.BAD_REQUEST)


if __name__ == "__main__":
    unittest.main()
