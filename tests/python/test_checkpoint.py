"""`engram table import --from CKPT --tensor ...` and `engram table export
... --out X.safetensors`: a sharded safetensors checkpoint written here by
its own writer (stdlib json + struct, not the project's code) imports tensor
by tensor, exports byte for byte, round-trips, and every broken file or
wrong option is one error line that leaves no table.
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_cli_table import TableCase, bf16_bits, run  # noqa: E402

ROWS, DIM, BLOCK = 3000, 64, 32


def write_safetensors(path, tensors, metadata=None, pad=True):
    """tensors: [(name, dtype, shape, bytes)], laid out back to back."""
    header, off = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [off, off + len(data)]}
        off += len(data)
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, data in tensors:
            f.write(data)


def read_safetensors(path):
    """{name: (dtype, shape, bytes)} and the metadata, read independently."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        out[name] = (t["dtype"], tuple(t["shape"]), blob[8 + n + b:8 + n + e])
    return out, meta, n


def pow2_bytes(exps):
    """ue8m0 bytes of scales 2^exps, computed from the exponents."""
    return (np.asarray(exps) + 127).astype(np.uint8)


class Checkpoint(TableCase):
    """A two-shard checkpoint with an index, as model repositories ship it."""

    def setUp(self):
        super().setUp()
        rng = self.rng
        self.ckpt = self.path("ckpt")
        os.mkdir(self.ckpt)
        self.bf16 = bf16_bits(rng.standard_normal((ROWS, DIM)).astype(np.float32))
        self.f32 = (rng.standard_normal((ROWS, DIM)) * 4).astype(np.float32)
        self.fp8 = rng.integers(0, 256, (ROWS, DIM), dtype=np.uint8)
        self.e8m0 = rng.integers(100, 150, (ROWS, DIM // BLOCK), dtype=np.uint8)
        self.exps = rng.integers(-40, 40, (ROWS, DIM // BLOCK))
        self.exps[0, 0], self.exps[1, 1] = -127, 127  # the ends: 2^-127 is an f32 subnormal
        f32_scales = np.ldexp(np.float32(1), self.exps).astype(np.float32)
        bad = f32_scales.copy()
        bad[7, 1] = 0.3
        bf16_exps = rng.integers(-100, 100, (ROWS, DIM // BLOCK))
        self.bf16_exps = bf16_exps
        shard1 = [
            ("model.layers.1.engram.embedding.weight", "BF16", (ROWS, DIM), self.bf16.tobytes()),
            ("model.layers.2.engram.embedding.weight", "F32", (ROWS, DIM), self.f32.tobytes()),
            ("model.layers.9.cube", "F32", (2, 3, 4), bytes(96)),
            ("model.layers.9.future", "F4_E2M1", (10, 4), bytes(20)),
            ("model.layers.9.ints", "I32", (10, 4), bytes(160)),
        ]
        shard2 = [
            ("model.layers.3.engram.embedding.weight", "F8_E4M3", (ROWS, DIM), self.fp8.tobytes()),
            ("model.layers.3.engram.embedding.scale", "F8_E8M0", (ROWS, DIM // BLOCK),
             self.e8m0.tobytes()),
            ("model.layers.4.engram.embedding.weight_scale_inv", "F32", (ROWS, DIM // BLOCK),
             f32_scales.tobytes()),
            ("model.layers.4.engram.bad_scale", "F32", (ROWS, DIM // BLOCK), bad.tobytes()),
            ("model.layers.4.engram.bf16_scale", "BF16", (ROWS, DIM // BLOCK),
             bf16_bits(np.ldexp(np.float32(1), bf16_exps).astype(np.float32)).tobytes()),
            ("model.layers.4.engram.short_scale", "F32", (ROWS - 1, DIM // BLOCK),
             f32_scales[1:].tobytes()),
        ]
        names = {"model-00001-of-00002.safetensors": shard1,
                 "model-00002-of-00002.safetensors": shard2}
        weight_map = {}
        for fname, tensors in names.items():
            write_safetensors(os.path.join(self.ckpt, fname), tensors, {"format": "pt"})
            weight_map.update({t[0]: fname for t in tensors})
        self.index = os.path.join(self.ckpt, "model.safetensors.index.json")
        with open(self.index, "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)

    def export_st(self, table, *extra):
        out = self.path("export-%d.safetensors" % len(os.listdir(self.tmp)))
        run("table", "export", table, "--all", "--out", out, *extra)
        return read_safetensors(out)[0]

    def table_sum(self, table):
        out = self.path("all-%d.npy" % len(os.listdir(self.tmp)))
        run("table", "export", table, "--all", "--out", out)
        with open(out, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def imp(self, dst, tensor, *extra, src=None):
        return run("table", "import", dst, "--from", src or self.ckpt, "--tensor", tensor,
                   *extra)


class TestImport(Checkpoint):
    def test_bf16_byte_exact(self):
        t = self.path("l1")
        self.imp(t, "model.layers.1.engram.embedding.weight", "--chunk-slots", 1024)
        info = self.info(t)
        self.assertEqual((info["dtype"], info["slots"], info["dim"]), ("bf16", str(ROWS), str(DIM)))
        got = self.export_st(t, "--tensor", "w")
        self.assertEqual(list(got), ["w"])
        self.assertEqual(got["w"][:2], ("BF16", (ROWS, DIM)))
        self.assertEqual(got["w"][2], self.bf16.tobytes())
        slots = self.rng.integers(0, ROWS, 100)
        np.testing.assert_array_equal(self.export(t, slots), self.bf16[slots])

    def test_f32_to_bf16_rounds_to_nearest_even(self):
        t = self.path("l2")
        self.imp(t, "model.layers.2.engram.embedding.weight", "--dtype", "bf16",
                 src=self.index)
        got = self.export_st(t)
        self.assertEqual(got["l2"][:2], ("BF16", (ROWS, DIM)))
        self.assertEqual(got["l2"][2], bf16_bits(self.f32).tobytes())
        # f32 stays f32, bit for bit
        self.imp(self.path("l2f"), "model.layers.2.engram.embedding.weight")
        self.assertEqual(self.export_st(self.path("l2f"))["l2f"][2], self.f32.tobytes())

    def check_fp8(self, t, scales):
        info = self.info(t)
        self.assertEqual((info["dtype"], info["scale_block"], info["row_bytes"]),
                         ("e4m3", str(BLOCK), str(DIM + DIM // BLOCK)))
        got = self.export_st(t, "--tensor", "v", "--scale-tensor", "s")
        self.assertEqual(got["v"], ("F8_E4M3", (ROWS, DIM), self.fp8.tobytes()))
        self.assertEqual(got["s"], ("F8_E8M0", (ROWS, DIM // BLOCK), scales.tobytes()))
        slots = self.rng.integers(0, ROWS, 50)
        np.testing.assert_array_equal(self.export(t, slots),
                                      np.hstack([self.fp8, scales])[slots])

    def test_fp8_with_e8m0_scales(self):
        t = self.path("l3")
        self.imp(t, "model.layers.3.engram.embedding.weight",
                 "--scale-tensor", "model.layers.3.engram.embedding.scale")
        self.check_fp8(t, self.e8m0)

    def test_fp8_with_power_of_two_f32_and_bf16_scales(self):
        t = self.path("l4")
        self.imp(t, "model.layers.3.engram.embedding.weight", "--scale-block", BLOCK,
                 "--scale-tensor", "model.layers.4.engram.embedding.weight_scale_inv")
        self.check_fp8(t, pow2_bytes(self.exps))
        t = self.path("l4b")
        self.imp(t, "model.layers.3.engram.embedding.weight",
                 "--scale-tensor", "model.layers.4.engram.bf16_scale")
        self.check_fp8(t, pow2_bytes(self.bf16_exps))

    def test_round_trip_through_safetensors(self):
        pairs = [("l1", ["model.layers.1.engram.embedding.weight"], []),
                 ("l3", ["model.layers.3.engram.embedding.weight", "--scale-tensor",
                         "model.layers.3.engram.embedding.scale"], ["--scale-tensor", "s"])]
        for name, src, scale in pairs:
            t, again = self.path(name), self.path(name + "-again")
            self.imp(t, *src, "--chunk-slots", 512)
            out = self.path(name + ".safetensors")
            run("table", "export", t, "--all", "--out", out, "--tensor", "v", *scale)
            run("table", "import", again, "--from", out, "--tensor", "v", "--chunk-slots", 512,
                *scale)
            self.assertEqual(self.table_sum(t), self.table_sum(again))
            run("table", "verify", again)
        # a u8 table too, and the file's own order of chunks does not matter
        u8 = self.path("u8")
        run("table", "create", u8, "--slots", 5000, "--dim", 40, "--dtype", "u8", "--fill",
            "random:3", "--chunk-slots", 1024)
        out = self.path("u8.safetensors")
        run("table", "export", u8, "--all", "--out", out)
        self.assertEqual(read_safetensors(out)[0]["u8"][:2], ("U8", (5000, 40)))
        run("table", "import", self.path("u8b"), "--from", out, "--tensor", "u8",
            "--chunk-slots", 4096)
        self.assertEqual(self.table_sum(u8), self.table_sum(self.path("u8b")))

    def test_export_chosen_slots_to_safetensors(self):
        t = self.path("l1")
        self.imp(t, "model.layers.1.engram.embedding.weight")
        out = self.path("rows.safetensors")
        run("table", "export", t, "--slots", "5,0,2999,5", "--out", out)
        got, meta, n = read_safetensors(out)
        self.assertEqual(n % 8, 0)
        self.assertEqual(meta.get("format"), "pt")
        self.assertEqual(got["l1"], ("BF16", (4, DIM), self.bf16[[5, 0, 2999, 5]].tobytes()))

    def test_hash_spec_slot_count(self):
        spec = {"kind": "xxh3", "max_ngram": 3, "heads": 2, "pad": 0, "seed": 1,
                "rows": [[1000, 1000], [500, 499]]}
        path = self.path("spec.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        t = self.path("h")
        err = self.assert_fails("table", "import", t, "--from", self.ckpt, "--tensor",
                                "model.layers.1.engram.embedding.weight", "--hash", path)
        self.assertIn("needs 2999 slots (the sum of its 4 per-head moduli), but tensor "
                      "'model.layers.1.engram.embedding.weight' has 3000", err)
        self.assertFalse(os.path.exists(t))
        spec["rows"][1][1] = 500
        with open(path, "w") as f:
            json.dump(spec, f)
        self.imp(t, "model.layers.1.engram.embedding.weight", "--hash", path)
        self.assertEqual(self.info(t)["hash"], "xxh3")

    @unittest.skipIf(os.environ.get("BUILD", "build") != "build",
                     "a sanitizer build's shadow memory grows with every byte the "
                     "import touches, so its peak RSS says nothing of the import's own")
    def test_import_memory_stays_small(self):
        # 192 MiB of BF16 rows: the import maps the file and writes into the
        # table's map, and lets go of both as it goes
        rows, dim = 393216, 256
        src = self.path("big.safetensors")
        data = np.random.default_rng(5).integers(0, 1 << 16, rows * dim, dtype=np.uint16)
        write_safetensors(src, [("w", "BF16", (rows, dim), data.tobytes())])
        del data
        # a vfork()ed child would inherit this process's peak RSS: fork it
        # (preexec_fn), so it starts from what this process holds now
        with open("/proc/self/status") as f:
            mine = int(next(ln for ln in f if ln.startswith("VmRSS:")).split()[1])
        p = subprocess.Popen([os.environ.get("ENGRAM", "build/engram"), "table", "import",
                              self.path("big"), "--from", src, "--tensor", "w",
                              "--chunk-slots", "8192"], stdout=subprocess.DEVNULL,
                             preexec_fn=lambda: None)
        _, status, ru = os.wait4(p.pid, 0)
        self.assertEqual(status, 0)
        tensor_kib = rows * dim * 2 // 1024
        self.assertLess(ru.ru_maxrss, mine + tensor_kib // 2,
                        f"peak RSS {ru.ru_maxrss} KiB for a {tensor_kib} KiB tensor "
                        f"({mine} KiB of it this process's)")
        self.assertEqual(self.export_st(self.path("big"), "--tensor", "w")["w"][2],
                         read_safetensors(src)[0]["w"][2])

class TestRefusals(Checkpoint):
    def refused(self, want, *args, dst=None):
        dst = dst or self.path("bad")
        err = self.assert_fails("table", "import", dst, *map(str, args), code=1)
        self.assertIn(want, err)
        self.assert_not_table(dst)
        return dst

    def test_non_power_of_two_scale_names_row_and_column(self):
        dst = self.refused("scale tensor 'model.layers.4.engram.bad_scale': row 7, column 1 "
                           "is 0.300000012, not a power of two",
                           "--from", self.ckpt, "--tensor", "model.layers.3.engram.embedding.weight",
                           "--scale-tensor", "model.layers.4.engram.bad_scale")
        self.assertFalse(os.path.exists(dst))
        # into a directory that already exists: it stays, holding no table
        os.mkdir(self.path("there"))
        self.refused("row 7, column 1", "--from", self.ckpt, "--tensor",
                     "model.layers.3.engram.embedding.weight", "--scale-tensor",
                     "model.layers.4.engram.bad_scale", dst=self.path("there"))
        self.assertEqual(os.listdir(self.path("there")), [])

    def test_broken_files(self):
        src = os.path.join(self.ckpt, "model-00001-of-00002.safetensors")
        with open(src, "rb") as f:
            blob = f.read()
        trunc = self.path("trunc.safetensors")
        with open(trunc, "wb") as f:
            f.write(blob[:-100])
        self.refused("run past the end of the data section", "--from", trunc,
                     "--tensor", "model.layers.1.engram.embedding.weight")
        with open(trunc, "wb") as f:
            f.write(blob[:100])  # inside the header
        self.refused("header length", "--from", trunc,
                     "--tensor", "model.layers.1.engram.embedding.weight")
        lie = self.path("lie.safetensors")
        write_safetensors(lie, [("w", "BF16", (10, 8), bytes(100))])
        self.refused("'w': data_offsets [0, 100] hold 100 bytes, but BF16 of 80 elements "
                     "needs 160", "--from", lie, "--tensor", "w")
        with open(lie, "wb") as f:
            text = json.dumps({"a": {"dtype": "U8", "shape": [4, 4], "data_offsets": [0, 16]},
                               "b": {"dtype": "U8", "shape": [4, 4], "data_offsets": [8, 24]}})
            f.write(struct.pack("<Q", len(text)) + text.encode() + bytes(24))
        self.refused("'a' [0, 16] and 'b' [8, 24] overlap", "--from", lie, "--tensor", "a")
        with open(lie, "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
        self.refused("does not start with '{'", "--from", lie, "--tensor", "a")

    def test_wrong_tensors(self):
        self.refused("'model.layers.9.future' is F4_E2M1; engram imports BF16, F16, F32, U8 "
                     "and F8_E4M3", "--from", self.ckpt, "--tensor", "model.layers.9.future")
        self.refused("'model.layers.9.ints' is I32", "--from", self.ckpt,
                     "--tensor", "model.layers.9.ints")
        self.refused("tensor 'model.layers.9.cube' is 3-D; a table is a 2-D tensor", "--from",
                     self.ckpt, "--tensor", "model.layers.9.cube")
        self.refused("tensor 'nope' is not in the index's weight_map (11 tensors)",
                     "--from", self.ckpt, "--tensor", "nope")
        shard = os.path.join(self.ckpt, "model-00001-of-00002.safetensors")
        self.refused("no tensor 'nope' (it holds 5:", "--from", shard, "--tensor", "nope")
        self.refused("scale tensor 'model.layers.4.engram.short_scale' has 2999 rows, values "
                     "'model.layers.3.engram.embedding.weight' have 3000", "--from", self.ckpt,
                     "--tensor", "model.layers.3.engram.embedding.weight",
                     "--scale-tensor", "model.layers.4.engram.short_scale")
        self.refused("has 2 columns, which is not dim 64 / scale block 16", "--from", self.ckpt,
                     "--tensor", "model.layers.3.engram.embedding.weight", "--scale-block", 16,
                     "--scale-tensor", "model.layers.3.engram.embedding.scale")
        self.refused("scale tensor 'model.layers.9.ints' is I32; block scales must be F8_E8M0, "
                     "or F32 or BF16 powers of two", "--from", self.ckpt, "--tensor",
                     "model.layers.3.engram.embedding.weight", "--scale-tensor",
                     "model.layers.9.ints")
        self.refused("F8_E4M3: it imports into an e4m3 table only (not --dtype bf16)", "--from",
                     self.ckpt, "--tensor", "model.layers.3.engram.embedding.weight",
                     "--dtype", "bf16")
        self.refused("--scale-tensor is for F8_E4M3 values", "--from", self.ckpt, "--tensor",
                     "model.layers.1.engram.embedding.weight", "--scale-tensor",
                     "model.layers.3.engram.embedding.scale")
        self.refused("--scale-block 32 needs --scale-tensor", "--from", self.ckpt, "--tensor",
                     "model.layers.3.engram.embedding.weight", "--scale-block", BLOCK)
        err = self.assert_fails("table", "import", self.path("x"), "--from", self.ckpt, code=2)
        self.assertIn("--tensor NAME is required", err)
        os.unlink(self.index)
        self.refused("holds 2 .safetensors files and no model.safetensors.index.json",
                     "--from", self.ckpt, "--tensor", "w")


if __name__ == "__main__":
    unittest.main()
