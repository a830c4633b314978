"""Rows into buffers the caller owns, and as torch.Tensors, from the real
engramd: lookup(..., out=buf) over the socket (received straight into buf)
and through the shared buffer (written there by the daemon), and
as_torch=True / engram_client.torch returning tensors equal to the NumPy
path that share memory with what was received, bf16 as torch.bfloat16.
"""
import os
import shutil
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from client_support import Daemon, export_rows, import_spec_table, import_table  # noqa: E402

import engram_client as ec  # noqa: E402

try:
    import torch
    from engram_client import torch as et
except ImportError:
    torch = et = None

FIX = {}
NEEDS_TORCH = "PyTorch (python3-torch) is not installed; scripts/deps.sh installs it"


def setUpModule():
    d = FIX["dir"] = tempfile.mkdtemp(prefix="engram-buffers-")
    rng = np.random.default_rng(11)
    dirs = {}
    FIX["f32"] = rng.standard_normal((6000, 24)).astype(np.float32)
    for name, dtype, kw in (("f32", None, {}), ("f16", "f16", {}), ("bf16", "bf16", {}),
                            ("e4m3", "e4m3", {"scale_block": 8})):
        dirs[name] = os.path.join(d, name)
        import_table(dirs[name], FIX["f32"], name, dtype=dtype, chunk_slots=1024, **kw)
    FIX["u8"] = rng.integers(0, 256, (3000, 40), dtype=np.uint8)
    dirs["u8"] = os.path.join(d, "u8")
    import_table(dirs["u8"], FIX["u8"], "u8")
    dirs["layer1"] = import_spec_table(d, "layer1", rng, dtype="bf16")[0]
    FIX["dirs"] = dirs
    FIX["daemon"] = Daemon(dirs, extra=["--max-shm", "64M"], workdir=os.path.join(d, "run"))


def tearDownModule():
    if FIX.get("daemon") is not None:
        FIX["daemon"].cleanup()
    shutil.rmtree(FIX.get("dir", "/nonexistent"), ignore_errors=True)


class Case(unittest.TestCase):
    def setUp(self):
        self.d = FIX["daemon"]
        self.rng = np.random.default_rng(2)

    def slots(self, n, table="f32"):
        return self.rng.integers(0, len(FIX["u8"] if table == "u8" else FIX["f32"]), n,
                                 dtype=np.uint64)


class TestOut(Case):
    def test_socket_rows_received_into_the_buffer(self):
        for addr in (self.d.unix, self.d.tcp):
            with ec.Client(addr, timeout=20) as c:
                for n in (1, 700, 6000):
                    s = self.slots(n)
                    out = np.full((n, 24), np.nan, dtype=np.float32)
                    fut = c.lookup_async("f32", s, out=out)
                    self.assertIs(fut.result(), out)
                    np.testing.assert_array_equal(out, FIX["f32"][s.astype(np.int64)])
                    # straight from the socket, not through a frame copy
                    self.assertIsNotNone(fut._direct)
                    self.assertIs(c.lookup("f32", s, out=out), out)
                raw = bytearray(5 * 40)
                c.lookup("u8", [0, 1, 2, 3, 4], out=raw)
                self.assertEqual(bytes(raw), FIX["u8"][:5].tobytes())

    def test_inside_the_shared_buffer_the_daemon_writes_it(self):
        with ec.Client(self.d.unix, timeout=20, shm_bytes=4 << 20) as c:
            s = self.slots(3000)
            out = c.shm[8192:8192 + 3000 * 96].view(np.float32).reshape(3000, 24)
            fut = c.lookup_async("f32", s, out=out)
            self.assertIs(fut.result(), out)
            self.assertEqual(fut._args[3], 8192)  # sent as a shared-buffer request
            np.testing.assert_array_equal(out, FIX["f32"][s.astype(np.int64)])
            # out elsewhere, shm=True: gathered into the shared buffer, then copied
            mine = np.zeros((3000, 24), dtype=np.float32)
            self.assertIs(c.lookup("f32", s, shm=True, shm_offset=1 << 20, out=mine), mine)
            np.testing.assert_array_equal(mine, out)
            self.assertFalse(np.shares_memory(mine, c.shm))

    def test_bad_buffers(self):
        with ec.Client(self.d.unix, timeout=20) as c:
            with self.assertRaises(ValueError) as cm:
                c.lookup("f32", [1, 2], out=np.zeros((3, 24), np.float32))
            self.assertIn("out= holds 288 bytes; 2 rows of table 'f32' are 192", str(cm.exception))
            with self.assertRaises(ValueError):
                c.lookup("f32", [1, 2], out=np.zeros((2, 48), np.float32)[:, ::2])
            with self.assertRaises(ValueError):
                c.lookup("f32", [1], out=bytes(96))  # read-only
            with self.assertRaises(ValueError):
                c.lookup("bf16", [1], out=np.zeros((1, 24), np.uint16), decode=True)
            self.assertEqual(c.ping().protocol_version, 1)


class TestTorch(Case):
    @classmethod
    def setUpClass(cls):
        if torch is None:
            raise unittest.SkipTest(NEEDS_TORCH)

    def test_tensors_equal_numpy_and_share_memory(self):
        with ec.Client(self.d.unix, timeout=20, shm_bytes=8 << 20) as c:
            s = self.slots(2000)
            want_dtypes = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16,
                           "e4m3": torch.uint8}
            for table, dtype in want_dtypes.items():
                ref = c.lookup(table, s)
                t = c.lookup(table, s, as_torch=True)
                self.assertIsInstance(t, torch.Tensor)
                self.assertEqual(t.dtype, dtype)
                self.assertEqual(tuple(t.shape), ref.shape)
                bits = t.view(torch.int16).numpy() if dtype == torch.bfloat16 else t.numpy()
                self.assertEqual(bits.tobytes(), ref.tobytes())
                self.assertEqual(bits.tobytes(), export_rows(FIX["dirs"][table], s).tobytes())
                # as_tensor is a view of the array it is given
                self.assertEqual(et.as_tensor(ref).data_ptr(), ref.ctypes.data)
                # a shared-buffer answer: a tensor over the mapping itself
                v = c.lookup(table, s, shm=True, shm_offset=4096, as_torch=True)
                self.assertEqual(v.data_ptr(), c.shm.ctypes.data + 4096)
                self.assertTrue(torch.equal(v, t))
            d = c.lookup("bf16", s, decode=True, as_torch=True)
            self.assertEqual(d.dtype, torch.float32)
            self.assertTrue(torch.equal(d, c.lookup("bf16", s, as_torch=True).float()))

    def test_tensors_as_out(self):
        with ec.Client(self.d.unix, timeout=20, shm_bytes=8 << 20) as c:
            s = self.slots(1500)
            ref = c.lookup("bf16", s)
            out = torch.empty((1500, 24), dtype=torch.bfloat16)
            self.assertIs(c.lookup("bf16", s, out=out), out)
            self.assertEqual(out.view(torch.int16).numpy().tobytes(), ref.tobytes())
            # a tensor over the shared buffer (memory a caller would pin):
            # the daemon writes the rows into it, nothing is copied
            buf = et.shm_tensor(c, 1500 * 48, offset=1 << 20, dtype=torch.bfloat16)
            self.assertEqual(buf.data_ptr(), c.shm.ctypes.data + (1 << 20))
            fut = c.lookup_async("bf16", s, out=buf.view(1500, 24))
            self.assertEqual(fut._args[3], 1 << 20)
            got = fut.result()
            self.assertEqual(got.data_ptr(), buf.data_ptr())
            self.assertTrue(np.shares_memory(et.as_numpy(got), c.shm))
            self.assertEqual(got.view(torch.int16).numpy().tobytes(), ref.tobytes())
            with self.assertRaises(ValueError):
                c.lookup("bf16", s, out=torch.empty((24, 1500), dtype=torch.bfloat16).t())

    def test_tokens_as_torch(self):
        ids = self.rng.integers(0, 5000, (3, 50))
        with ec.Client(self.d.unix, timeout=20, shm_bytes=1 << 20) as c:
            ref = c.tokens(["layer1"], ids)["layer1"]
            for shm in (False, True):
                got = c.tokens_async(["layer1"], ids, shm=shm, as_torch=True).result()["layer1"]
                self.assertEqual((got.dtype, tuple(got.shape)), (torch.bfloat16, ref.shape))
                self.assertEqual(got.view(torch.int16).numpy().tobytes(), ref.tobytes())
                if shm:
                    self.assertEqual(got.data_ptr(), c.shm.ctypes.data)

if __name__ == "__main__":
    unittest.main()
