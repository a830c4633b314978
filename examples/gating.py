#!/usr/bin/python3
"""gating.py - a model process that takes its Engram memory from engramd.

DeepSeek's Engram module (engram_demo_v1.py, "Conditional Memory via
Scalable Lookup") runs at a few early layers. For every token it looks up
(max_ngram - 1) x heads hashed n-gram embeddings, concatenates them into one
vector e per token, and mixes e into the residual stream through a gate per
hyper-connection branch g (hc_mult branches of hidden size D):

    key_g   = RMSNorm_g(W_k[g] e + b_k[g])          (E -> D)
    query_g = RMSNorm'_g(h[:, g])
    s_g     = <key_g, query_g> / sqrt(D)
    gate_g  = sigmoid(sign(s_g) * sqrt(max(|s_g|, 1e-6)))
    value   = gate_g * (W_v e + b_v)                (one W_v for all branches)
    out     = value + ShortConv(value)

ShortConv: per-branch RMSNorm (eps 1e-5), a depthwise causal convolution over
the sequence (kernel 4, dilation max_ngram) and SiLU. The RMSNorms of key and
query use the float32 machine epsilon (torch.nn.RMSNorm's default).

Here the embeddings come from engramd: the daemon hashes the token ids with
each table's hash spec and returns the rows of both layers' tables in one
request, sent before the "earlier layers" run so the fetch overlaps them.
Weights and hidden states are random (seeded): this shows the data path and
the gate arithmetic, not a trained model.

    gating.py [--connect unix:/run/engramd/engramd.sock] [--tables layer1,layer15]
              [--tokens 5,17,9,... | --tokens random] [--batch 2 --seq-len 64]
              [--hidden-dim 256] [--hc-mult 4] [--seed 0] [--backend auto]

Uses PyTorch when it can be imported (--backend auto), else NumPy. With
PyTorch the rows arrive as torch.Tensors over the received bytes (no copy;
bf16 tables as torch.bfloat16) and go to the device from there.
"""
import argparse
import math
import os
import sys
import time

import numpy as np

try:
    from engram_client import Client
except ImportError:  # running from a source tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "client", "python"))
    from engram_client import Client

try:
    import torch
except ImportError:
    torch = None

SIGNED_SQRT_FLOOR = 1e-6
CONV_NORM_EPS = 1e-5
GATE_NORM_EPS = float(np.finfo(np.float32).eps)


class LayerParams:
    """Weights of one Engram layer. E = rows_per_token * dim (engram vector),
    D = hidden size, G = hyper-connection branches, K = conv kernel."""

    def __init__(self, rng, engram_dim, hidden, hc_mult=4, kernel=4, dilation=3):
        E, D, G = engram_dim, hidden, hc_mult
        f32 = np.float32
        self.hidden, self.hc_mult, self.kernel, self.dilation = D, G, kernel, dilation
        self.w_key = (rng.standard_normal((G, D, E)) / math.sqrt(E)).astype(f32)
        self.b_key = (rng.standard_normal((G, D)) * 0.02).astype(f32)
        self.w_value = (rng.standard_normal((D, E)) / math.sqrt(E)).astype(f32)
        self.b_value = (rng.standard_normal(D) * 0.02).astype(f32)
        self.norm_key = (1 + 0.1 * rng.standard_normal((G, D))).astype(f32)
        self.norm_query = (1 + 0.1 * rng.standard_normal((G, D))).astype(f32)
        self.norm_conv = (1 + 0.1 * rng.standard_normal((G, D))).astype(f32)
        self.w_conv = (rng.standard_normal((G * D, kernel)) / math.sqrt(kernel)).astype(f32)


# ---- NumPy ------------------------------------------------------------------

def _rmsnorm(x, weight, eps):
    ms = np.mean(np.square(x), axis=-1, keepdims=True, dtype=np.float32)
    return (x / np.sqrt(ms + np.float32(eps))) * weight


def _short_conv(p, value):
    """value [B, L, G, D] -> SiLU(causal depthwise conv(RMSNorm per branch))."""
    B, L, G, D = value.shape
    x = np.stack([_rmsnorm(value[:, :, g, :], p.norm_conv[g], CONV_NORM_EPS)
                  for g in range(G)], axis=2).reshape(B, L, G * D)
    y = np.zeros_like(x)
    for j in range(p.kernel):
        shift = (p.kernel - 1 - j) * p.dilation  # tap j reads token t - shift
        if shift < L:
            y[:, shift:, :] += x[:, :L - shift, :] * p.w_conv[:, j]
    y = y / (1 + np.exp(-y))  # SiLU
    return y.reshape(B, L, G, D)


def forward_numpy(p, hidden, rows):
    """hidden [B, L, G, D], rows [B, L, R, dim] (float32) -> (output
    [B, L, G, D], gates [B, L, G])."""
    B, L = rows.shape[:2]
    e = rows.reshape(B, L, -1).astype(np.float32, copy=False)  # heads concatenated
    gates = np.empty((B, L, p.hc_mult), dtype=np.float32)
    for g in range(p.hc_mult):
        key = _rmsnorm(e @ p.w_key[g].T + p.b_key[g], p.norm_key[g], GATE_NORM_EPS)
        query = _rmsnorm(hidden[:, :, g, :], p.norm_query[g], GATE_NORM_EPS)
        s = np.sum(key * query, axis=-1) / np.float32(math.sqrt(p.hidden))
        s = np.sign(s) * np.sqrt(np.maximum(np.abs(s), np.float32(SIGNED_SQRT_FLOOR)))
        gates[:, :, g] = 1 / (1 + np.exp(-s))
    value = gates[..., None] * (e @ p.w_value.T + p.b_value)[:, :, None, :]
    return value + _short_conv(p, value), gates


# ---- PyTorch (same arithmetic) ----------------------------------------------

def forward_torch(p, hidden, rows):
    """forward_numpy() in PyTorch (CPU, or CUDA when available); rows may be
    a tensor (of any float dtype) or an array; returns NumPy arrays."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    T = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)  # noqa: E731

    def rms(x, w, eps):
        return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps) * w

    B, L = rows.shape[:2]
    e = (rows.to(dev) if torch.is_tensor(rows) else T(rows)).reshape(B, L, -1).float()
    h = T(hidden)
    gates = []
    for g in range(p.hc_mult):
        key = rms(e @ T(p.w_key[g]).T + T(p.b_key[g]), T(p.norm_key[g]), GATE_NORM_EPS)
        query = rms(h[:, :, g, :], T(p.norm_query[g]), GATE_NORM_EPS)
        s = (key * query).sum(-1) / math.sqrt(p.hidden)
        s = s.abs().clamp_min(SIGNED_SQRT_FLOOR).sqrt() * s.sign()
        gates.append(s.sigmoid())
    gates = torch.stack(gates, dim=2)
    value = gates.unsqueeze(-1) * (e @ T(p.w_value).T + T(p.b_value)).unsqueeze(2)
    G, D = p.hc_mult, p.hidden
    x = torch.cat([rms(value[:, :, g, :], T(p.norm_conv[g]), CONV_NORM_EPS)
                   for g in range(G)], dim=-1)
    w = T(p.w_conv).unsqueeze(1)  # [G*D, 1, K] depthwise
    pad = (p.kernel - 1) * p.dilation
    y = torch.nn.functional.conv1d(x.transpose(1, 2), w, padding=pad,
                                   dilation=p.dilation, groups=G * D)[..., :L]
    y = torch.nn.functional.silu(y).transpose(1, 2).reshape(B, L, G, D)
    out = value + y
    return out.cpu().numpy(), gates.cpu().numpy()


def pick_backend(name):
    if name == "torch" or (name == "auto" and torch is not None):
        if torch is None:
            raise SystemExit("gating.py: --backend torch, but torch cannot be imported")
        return "torch", forward_torch
    return "numpy", forward_numpy


def engram_forward(p, hidden, rows, backend="numpy"):
    """Engram output and gates for hidden states and fetched rows (see
    forward_numpy for shapes); rows may be f16/f32 or decoded bf16/e4m3,
    or for the torch backend a tensor."""
    if torch is None or not torch.is_tensor(rows):
        rows = np.asarray(rows).astype(np.float32, copy=False)
    return pick_backend(backend)[1](p, hidden, rows)


# ---- the model process ------------------------------------------------------

def fetch(client, tables, tokens, as_torch=False, decode=True):
    """Sends one token lookup for all tables; returns a function that
    collects it as {table: float32 [B, L, R, dim]}, or with as_torch as
    {table: torch.Tensor [B, L, R, dim]} over the received rows (decoded to
    float32 only with decode, as e4m3 rows need)."""
    B, L = tokens.shape
    fut = client.tokens_async(tables, tokens.reshape(-1), seq_lens=[L] * B,
                              decode=decode or not as_torch, as_torch=as_torch)

    def collect():
        blocks = fut.result()
        if as_torch:
            return {t: a.view(B, L, a.shape[1], a.shape[2]) for t, a in blocks.items()}
        return {t: np.asarray(a, dtype=np.float32).reshape(B, L, a.shape[1], a.shape[2])
                for t, a in blocks.items()}
    return collect


def layer_params(client, tables, hidden, hc_mult, kernel, dilation, seed):
    """Seeded random weights per table, shaped by the table's info."""
    info = {t.name: t for t in client.info()}
    params = {}
    for i, name in enumerate(tables):
        t = info.get(name)
        if t is None:
            raise SystemExit(f"gating.py: table {name!r} is not served")
        if not t.rows_per_token:
            raise SystemExit(f"gating.py: table {name!r} has no hash spec (no token lookups)")
        if t.dtype == "u8":
            raise SystemExit(f"gating.py: table {name!r} holds opaque bytes (u8), not embeddings")
        rng = np.random.default_rng([seed, i])
        params[name] = LayerParams(rng, t.rows_per_token * t.dim, hidden, hc_mult, kernel,
                                   dilation)
        params[name].raw_dtype = t.dtype
    return params


def _tokens_arg(text, batch, seq_len, vocab, rng):
    if text == "random":
        return rng.integers(0, vocab, size=(batch, seq_len), dtype=np.int64)
    ids = np.array([int(v) for v in text.replace(" ", "").split(",") if v], dtype=np.int64)
    return ids.reshape(1, -1)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Engram gating on rows fetched from engramd.")
    ap.add_argument("--connect", default=None,
                    help="unix:/path or tcp:host:port (default unix:/run/engramd/engramd.sock)")
    ap.add_argument("--tables", help="comma-separated tables, one per Engram layer "
                    "(default: the first two with a hash spec)")
    ap.add_argument("--tokens", default="random", help="comma-separated token ids or 'random'")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=129280, help="range of random token ids")
    ap.add_argument("--hidden-dim", type=int, default=256)
    ap.add_argument("--hc-mult", type=int, default=4)
    ap.add_argument("--kernel-size", type=int, default=4)
    ap.add_argument("--max-ngram", type=int, default=3, help="conv dilation, as published")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", choices=("auto", "numpy", "torch"), default="auto")
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args(argv)
    backend, forward = pick_backend(a.backend)
    rng = np.random.default_rng(a.seed)

    with Client(a.connect, timeout=a.timeout) as client:
        if a.tables:
            tables = [t for t in a.tables.split(",") if t]
        else:
            tables = [t.name for t in client.info() if t.rows_per_token][:2]
            if not tables:
                raise SystemExit("gating.py: no served table has a hash spec")
        params = layer_params(client, tables, a.hidden_dim, a.hc_mult, a.kernel_size,
                              a.max_ngram, a.seed)
        tokens = _tokens_arg(a.tokens, a.batch, a.seq_len, a.vocab, rng)
        B, L = tokens.shape

        t0 = time.perf_counter()
        # in flight while earlier layers run; torch: tensors over the rows as received
        collect = fetch(client, tables, tokens, as_torch=backend == "torch",
                        decode=any(params[t].raw_dtype not in ("f32", "f16", "bf16")
                                   for t in tables))
        hidden = rng.standard_normal((B, L, a.hc_mult, a.hidden_dim)).astype(np.float32)
        t1 = time.perf_counter()
        rows = collect()
        t2 = time.perf_counter()

        print(f"backend {backend}; tokens [{B}, {L}]; hidden [{B}, {L}, {a.hc_mult}, "
              f"{a.hidden_dim}]; fetch {1e3 * (t2 - t0):.2f} ms "
              f"({1e3 * (t2 - t1):.2f} ms waited after the overlapped work)")
        for name in tables:
            r = rows[name]
            t3 = time.perf_counter()
            out, gates = forward(params[name], hidden, r)
            t4 = time.perf_counter()
            print(f"layer {name}: rows {list(r.shape)} -> e [{B}, {L}, {r.shape[2] * r.shape[3]}]; "
                  f"output {list(out.shape)}; gate mean {gates.mean():.4f} "
                  f"min {gates.min():.4f} max {gates.max():.4f}; "
                  f"compute {1e3 * (t4 - t3):.2f} ms")
            hidden = hidden + out  # the residual stream feeds the next Engram layer
    return 0


if __name__ == "__main__":
    sys.exit(main())
