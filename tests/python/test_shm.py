"""The same-host fast path from Python: Client(shm_bytes=...) / attach_shm,
lookup(shm=True) and tokens(shm=True) returning views of the shared buffer,
byte for byte the source rows the tables were imported from (token rows at
the slots of the NumPy reference, engram_ref.py), the plain socket path and
`engram table export`.
"""
import array
import os
import shutil
import socket
import sys
import tempfile
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from client_support import Daemon, export_rows, import_spec_table, import_table  # noqa: E402
import engram_ref  # noqa: E402

import engram_client as ec  # noqa: E402
from engram_client import wire  # noqa: E402
from engram_client._pb import pb  # noqa: E402

FIX = {}


def setUpModule():
    d = FIX["dir"] = tempfile.mkdtemp(prefix="engram-shm-py-")
    rng = np.random.default_rng(5)
    dirs = {}
    FIX["f32"] = rng.standard_normal((5000, 24)).astype(np.float32)
    dirs["f32"] = os.path.join(d, "f32")
    import_table(dirs["f32"], FIX["f32"], "f32", chunk_slots=512)
    dirs["layer1"], FIX["spec"], FIX["layer1"] = import_spec_table(d, "layer1", rng)
    FIX["dirs"] = dirs
    FIX["daemon"] = Daemon(dirs, extra=["--max-shm", "64M"], workdir=os.path.join(d, "run"))


def tearDownModule():
    if FIX.get("daemon") is not None:
        FIX["daemon"].cleanup()
    shutil.rmtree(FIX.get("dir", "/nonexistent"), ignore_errors=True)


class ShmCase(unittest.TestCase):
    def setUp(self):
        self.d = FIX["daemon"]
        self.rng = np.random.default_rng(1)

    def test_lookup_views_the_shared_buffer(self):
        with ec.Client(self.d.unix, timeout=20, shm_bytes=8 << 20) as c:
            self.assertEqual(len(c.shm), 8 << 20)
            for n, off in ((1, 0), (3000, 4096), (5000, 1 << 20)):
                slots = self.rng.integers(0, 5000, n, dtype=np.uint64)
                got = c.lookup("f32", slots, shm=True, shm_offset=off)
                self.assertEqual(got.shape, (n, 24))
                # a view of the mapping, not a copy
                self.assertTrue(np.shares_memory(got, c.shm))
                np.testing.assert_array_equal(got.view(np.uint32),
                                              FIX["f32"][slots].view(np.uint32))
                np.testing.assert_array_equal(got, c.lookup("f32", slots))
                np.testing.assert_array_equal(got, export_rows(FIX["dirs"]["f32"], slots))
            # pipelined into disjoint ranges
            a = c.lookup_async("f32", [1, 2], shm=True, shm_offset=0)
            b = c.lookup_async("f32", [3], shm=True, shm_offset=1 << 16)
            np.testing.assert_array_equal(b.result(), FIX["f32"][[3]])
            np.testing.assert_array_equal(a.result(), FIX["f32"][[1, 2]])
            with self.assertRaises(ec.OutOfRange):
                c.lookup("f32", [1, 2], shm=True, shm_offset=(8 << 20) - 24 * 4)
            self.assertEqual(c.ping().protocol_version, 1)

    def test_tokens_through_shm(self):
        ids = self.rng.integers(0, 5000, (4, 300))
        slots = engram_ref.slots(FIX["spec"], ids.reshape(-1), [300] * 4)
        want = FIX["layer1"][slots.astype(np.int64)]
        with ec.Client(self.d.unix, timeout=20) as c:
            c.attach_shm(1 << 20)
            got = c.tokens(["layer1"], ids, shm=True, shm_offset=128)["layer1"]
            self.assertTrue(np.shares_memory(got, c.shm))
            self.assertEqual((got.dtype, got.shape), (np.float32, (1200, 4, 16)))
            self.assertEqual(got.tobytes(), want.tobytes())
            self.assertEqual(c.tokens(["layer1"], ids)["layer1"].tobytes(), want.tobytes())

    def test_errors(self):
        with ec.Client(self.d.unix, timeout=20) as c:
            with self.assertRaises(ec.EngramError) as cm:
                c.lookup("f32", [1], shm=True)  # nothing attached: refused here
            self.assertIs(type(cm.exception), ec.EngramError)
            self.assertIn("call attach_shm first", str(cm.exception))
            with self.assertRaises(ec.TooLarge) as cm:
                c.attach_shm(128 << 20)  # over --max-shm
            self.assertEqual(cm.exception.status, pb.TOO_LARGE)
            self.assertIn("--max-shm", cm.exception.message)
            self.assertEqual(c.ping().protocol_version, 1)
        with self.assertRaises(ValueError) as cm:
            ec.Client(self.d.tcp, timeout=20, shm_bytes=4096)
        self.assertIs(type(cm.exception), ValueError)
        # the daemon refuses a shm lookup on a connection without a buffer
        with ec.Client(self.d.unix, timeout=20) as c:
            body = wire.lookup_body("f32", [1], shm_offset=0)
            with self.assertRaises(ec.BadRequest) as cm:
                c._call("lookup", wire.REQ_LOOKUP, body, ("f32", False, 1, 0))
            self.assertIn("attach_shm", cm.exception.message)
        # a non-memfd fd (a socket) is refused, the daemon goes on
        a, b = socket.socketpair()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(self.d.unix[5:])
        data = wire.request(5, wire.REQ_ATTACH_SHM,
                            pb.AttachShmRequest(size=4096).SerializeToString())
        s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [a.fileno()]))])
        buf = b""
        while True:
            data = s.recv(4096)
            self.assertTrue(data, "the daemon closed the connection without an answer")
            buf += data
            try:
                n, pos = wire.read_varint(buf, 0, len(buf))
            except ec.ProtocolError:
                continue  # the length prefix is still arriving
            if len(buf) >= pos + n:
                break
        r = pb.Response.FromString(buf[pos:pos + n])
        self.assertEqual(r.status, pb.BAD_REQUEST)
        self.assertIn("memfd", r.error)
        for x in (s, a, b):
            x.close()
        with ec.Client(self.d.unix, timeout=20, shm_bytes=4096) as c:
            np.testing.assert_array_equal(c.lookup("f32", [7], shm=True), FIX["f32"][[7]])

    def test_slots_go_in_the_shared_buffer(self):
        """Once the table's layout is known the slots of a shm lookup wait in
        the buffer (the request's own rows range): with --max-frame 2048 a
        4096-slot lookup gets through only that way. A second request in
        flight over the same range (the caller's mistake) sends its slots in
        the frame, so that its own rows stay right."""
        d = Daemon({"f32": FIX["dirs"]["f32"]}, extra=["--max-frame", "2048"],
                   workdir=os.path.join(FIX["dir"], "run-frame"))
        try:
            with ec.Client(d.unix, timeout=20, shm_bytes=4 << 20) as c:
                c.lookup("f32", [1], shm=True)  # learns the layout
                for n, off in ((4096, 64), (5000, (4 << 20) - 5000 * 96)):
                    slots = self.rng.integers(0, 5000, n, dtype=np.uint64)
                    got = c.lookup("f32", slots, shm=True, shm_offset=off)
                    np.testing.assert_array_equal(got, FIX["f32"][slots])
                    fut = c.lookup_async("f32", slots[::-1], shm=True, shm_offset=off)
                    np.testing.assert_array_equal(fut.result(), FIX["f32"][slots[::-1]])
                # slots the caller wrote into the buffer itself: in place at
                # the rows' offset (not copied), or elsewhere in it (copied)
                ids = c.shm[64:64 + 8 * 4096].view("<u8")
                for off in (64, 64 + 8 * 4096, 8):
                    slots = self.rng.integers(0, 5000, 4096, dtype=np.uint64)
                    ids[:] = slots
                    fut = c.lookup_async("f32", ids, shm=True, shm_offset=off)
                    np.testing.assert_array_equal(fut.result(), FIX["f32"][slots])
                    ids[:] = slots[::-1]
                    got = c.lookup("f32", ids[1:], shm=True, shm_offset=off + 8)
                    np.testing.assert_array_equal(got, FIX["f32"][slots[::-1][1:]])
                # the client remembers where a view lies: another view, passed
                # with the offset the first one lies at, is still copied there,
                # as is a strided view starting there
                other = c.shm[64 + 8 * 4096:64 + 16 * 4096].view("<u8")
                strided = c.shm[64:64 + 16 * 4096].view("<u8")[::2]
                for view in (ids, other, strided):
                    slots = self.rng.integers(0, 5000, 4096, dtype=np.uint64)
                    view[:] = slots
                    got = c.lookup_async("f32", view, shm=True, shm_offset=64).result()
                    np.testing.assert_array_equal(got, FIX["f32"][slots])
                sa, sb = (self.rng.integers(0, 5000, 100, dtype=np.uint64) for _ in range(2))
                d.pause()  # neither request is read before both are sent
                try:
                    fa = c.lookup_async("f32", sa, shm=True)
                    fb = c.lookup_async("f32", sb, shm=True)
                    time.sleep(0.05)  # the I/O thread sends both
                finally:
                    d.resume()
                np.testing.assert_array_equal(fb.result(), FIX["f32"][sb])
                fa.result()
        finally:
            d.cleanup()

    def test_reattach_after_restart(self):
        with ec.Client(self.d.unix, timeout=20, shm_bytes=1 << 16) as c:
            np.testing.assert_array_equal(c.lookup("f32", [9], shm=True), FIX["f32"][[9]])
            self.d.restart()
            np.testing.assert_array_equal(c.lookup("f32", [10, 11], shm=True),
                                          FIX["f32"][[10, 11]])


if __name__ == "__main__":
    unittest.main()
