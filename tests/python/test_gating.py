"""examples/gating.py: Engram gating on rows fetched from the real engramd.

Its output must equal the same computation on the rows the tables were built
from (bf16-rounded by NumPy, at the slots tests/python/engram_ref.py hashes),
and its arithmetic must match a literal, one-value-at-a-time transcription of
the published module's gate and short convolution.
"""
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from client_support import Daemon, bf16_bits_rne, import_table  # noqa: E402

import engram_client as ec  # noqa: E402
from engram_client import spec as specmod  # noqa: E402

import engram_ref  # noqa: E402

GATING_PY = os.path.join(HERE, "..", "..", "examples", "gating.py")
_spec = importlib.util.spec_from_file_location("gating", GATING_PY)
gating = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gating)

FIX = {}
TABLES = ["layer1", "layer15"]


def setUpModule():
    rng = np.random.default_rng(11)
    d = tempfile.mkdtemp(prefix="engram-gating-")
    FIX["dir"], FIX["dirs"], FIX["specs"], FIX["src"] = d, {}, {}, {}
    specs = specmod.engram_v1_specs([499, 503], 3, 2, [1, 15], seed=0, pad=2,
                                    vocab_size=1000)
    for layer, name, dim in ((1, "layer1", 8), (15, "layer15", 16)):
        path = os.path.join(d, name + ".json")
        with open(path, "w") as f:
            json.dump(specs[layer], f)
        nslots = sum(sum(o) for o in specs[layer]["moduli"])
        FIX["dirs"][name] = os.path.join(d, name)
        FIX["src"][name] = rng.standard_normal((nslots, dim)).astype(np.float32)
        import_table(FIX["dirs"][name], FIX["src"][name], name, dtype="bf16", hash_spec=path)
        FIX["specs"][name] = specs[layer]
    FIX["daemon"] = Daemon(FIX["dirs"], workdir=os.path.join(d, "run"))


def tearDownModule():
    if "daemon" in FIX:
        FIX["daemon"].cleanup()
    shutil.rmtree(FIX["dir"], ignore_errors=True)


def literal_forward(p, hidden, rows):
    """The published Engram forward written out value by value (no NumPy
    broadcasting), for small shapes."""
    B, L, G, D = hidden.shape
    out = np.zeros((B, L, G, D))
    gates = np.zeros((B, L, G))
    value = np.zeros((B, L, G, D))

    def rms(vec, w, eps):
        ms = sum(v * v for v in vec) / len(vec)
        return [v / math.sqrt(ms + eps) * wi for v, wi in zip(vec, w)]

    for b in range(B):
        for t in range(L):
            e = [float(v) for v in rows[b, t].reshape(-1)]  # heads concatenated
            proj = [sum(p.w_value[i, j] * e[j] for j in range(len(e))) + p.b_value[i]
                    for i in range(D)]
            for g in range(G):
                key = [sum(p.w_key[g, i, j] * e[j] for j in range(len(e))) + p.b_key[g, i]
                       for i in range(D)]
                k = rms(key, p.norm_key[g], gating.GATE_NORM_EPS)
                q = rms([float(v) for v in hidden[b, t, g]], p.norm_query[g],
                        gating.GATE_NORM_EPS)
                s = sum(ki * qi for ki, qi in zip(k, q)) / math.sqrt(D)
                s = math.copysign(math.sqrt(max(abs(s), 1e-6)), s) if s != 0 else 0.0
                gate = 1 / (1 + math.exp(-s))
                gates[b, t, g] = gate
                value[b, t, g] = [gate * v for v in proj]
    for b in range(B):
        normed = np.zeros((L, G * D))
        for t in range(L):
            for g in range(G):
                normed[t, g * D:(g + 1) * D] = rms(list(value[b, t, g]), p.norm_conv[g],
                                                   gating.CONV_NORM_EPS)
        for t in range(L):
            for g in range(G):
                for i in range(D):
                    c = g * D + i
                    acc = 0.0
                    for j in range(p.kernel):  # torch Conv1d, left padding, cut to L
                        src = t + j * p.dilation - (p.kernel - 1) * p.dilation
                        if src >= 0:
                            acc += p.w_conv[c, j] * normed[src, c]
                    silu = acc / (1 + math.exp(-acc))
                    out[b, t, g, i] = value[b, t, g, i] + silu
    return out, gates


class TestGating(unittest.TestCase):
    def setUp(self):
        self.client = ec.Client(FIX["daemon"].unix, timeout=20)
        self.addCleanup(self.client.close)

    def test_matches_literal_published_arithmetic(self):
        rng = np.random.default_rng(5)
        p = gating.LayerParams(rng, engram_dim=6, hidden=4, hc_mult=2, kernel=3, dilation=2)
        hidden = rng.standard_normal((2, 7, 2, 4)).astype(np.float32)
        rows = rng.standard_normal((2, 7, 3, 2)).astype(np.float32)
        out, gates = gating.engram_forward(p, hidden, rows, backend="numpy")
        want_out, want_gates = literal_forward(p, hidden, rows)
        np.testing.assert_allclose(gates, want_gates, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out, want_out, rtol=1e-4, atol=1e-5)
        self.assertTrue(np.all((gates > 0) & (gates < 1)))

    def test_daemon_rows_equal_in_process_rows(self):
        rng = np.random.default_rng(9)
        B, L = 2, 12
        tokens = rng.integers(0, 1000, (B, L))
        params = gating.layer_params(self.client, TABLES, 32, 4, 4, 3, seed=0)
        hidden = rng.standard_normal((B, L, 4, 32)).astype(np.float32)
        fetched = gating.fetch(self.client, TABLES, tokens)()
        for name in TABLES:
            slots = engram_ref.slots(FIX["specs"][name], tokens.reshape(-1), [L] * B)
            raw = bf16_bits_rne(FIX["src"][name][slots.reshape(-1).astype(np.int64)])
            local = ec.decode_bf16(raw).reshape(B, L, slots.shape[1], -1)
            np.testing.assert_array_equal(fetched[name], local)
            out, gates = gating.engram_forward(params[name], hidden, fetched[name])
            want_out, want_gates = gating.engram_forward(params[name], hidden, local)
            self.assertEqual(out.shape, (B, L, 4, 32))
            self.assertEqual(gates.shape, (B, L, 4))
            np.testing.assert_array_equal(out, want_out)
            np.testing.assert_array_equal(gates, want_gates)

    def test_program(self):
        env = dict(os.environ)
        for args in (["--tables", "layer1,layer15", "--batch", "2", "--seq-len", "16"],
                     ["--tokens", "5,17,9,123,5,17", "--tables", "layer15"],
                     []):
            p = subprocess.run([sys.executable, GATING_PY, "--connect", FIX["daemon"].tcp,
                                "--hidden-dim", "32", "--seed", "1", "--backend", "numpy",
                                *args], capture_output=True, text=True, env=env, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("fetch", p.stdout)
            layers = [ln for ln in p.stdout.splitlines() if ln.startswith("layer ")]
            self.assertEqual(len(layers), 1 if "layer15" in args[-1:] else 2, p.stdout)
            for ln in layers:
                mean = float(ln.split("gate mean ")[1].split()[0])
                self.assertTrue(0 < mean < 1, ln)
        p = subprocess.run([sys.executable, GATING_PY, "--connect", FIX["daemon"].unix,
                            "--tables", "nope"], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("not served", p.stderr)


class TestGatingTorch(unittest.TestCase):
    """The torch path of the example: tensors over the received rows."""

    @classmethod
    def setUpClass(cls):
        if gating.torch is None:
            raise unittest.SkipTest("PyTorch (python3-torch) is not installed; "
                                    "scripts/deps.sh installs it")

    def setUp(self):
        self.client = ec.Client(FIX["daemon"].unix, timeout=20)
        self.addCleanup(self.client.close)

    def test_torch_rows_and_forward_match_numpy(self):
        torch = gating.torch
        rng = np.random.default_rng(10)
        B, L = 2, 9
        tokens = rng.integers(0, 1000, (B, L))
        params = gating.layer_params(self.client, TABLES, 32, 4, 4, 3, seed=0)
        hidden = rng.standard_normal((B, L, 4, 32)).astype(np.float32)
        ref = gating.fetch(self.client, TABLES, tokens)()
        got = gating.fetch(self.client, TABLES, tokens, as_torch=True, decode=False)()
        for name in TABLES:
            t = got[name]
            self.assertEqual((t.dtype, tuple(t.shape)), (torch.bfloat16, ref[name].shape))
            np.testing.assert_array_equal(t.float().numpy(), ref[name])
            out, gates = gating.engram_forward(params[name], hidden, t, backend="torch")
            want_out, want_gates = gating.engram_forward(params[name], hidden, ref[name])
            np.testing.assert_allclose(gates, want_gates, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(out, want_out, rtol=1e-3, atol=1e-4)

    def test_program_with_torch(self):
        p = subprocess.run([sys.executable, GATING_PY, "--connect", FIX["daemon"].unix,
                            "--hidden-dim", "32", "--batch", "2", "--seq-len", "8",
                            "--backend", "torch"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("backend torch", p.stdout)
        self.assertEqual(len([ln for ln in p.stdout.splitlines() if ln.startswith("layer ")]), 2)


if __name__ == "__main__":
    unittest.main()
