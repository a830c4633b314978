"""The wire protocol as docs/PROTOCOL.md describes it, spoken by a client
written from that page and proto/engram.proto alone (python3-protobuf for
the messages, hand-written varint framing), against a real engramd.

Tables are made with `engram table import` from NumPy arrays, so the
expected rows are the arrays themselves.
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import numpy as np

import engram_pb2 as pb
from daemon_support import free_port

ENGRAM = os.environ.get("ENGRAM", "build/engram")
ENGRAMD = os.environ.get("ENGRAMD", "build/engramd")


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class Client:
    """Varint-length-delimited engram.v1 messages over one stream socket."""

    def __init__(self, addr):
        if addr.startswith("unix:"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(addr[5:])
            except OSError:
                self.sock.close()
                raise
        else:
            host, port = addr[4:].rsplit(":", 1)
            self.sock = socket.create_connection((host, int(port)))
        self.sock.settimeout(20)
        self.buf = bytearray()

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, req):
        body = req.SerializeToString()
        self.sock.sendall(varint(len(body)) + body)

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError
        self.buf += data

    def recv(self):
        """The next Response; EOFError when the daemon closed the stream."""
        while True:
            n = shift = 0
            for i, b in enumerate(self.buf[:10]):
                n |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    if len(self.buf) >= i + 1 + n:
                        msg = pb.Response.FromString(bytes(self.buf[i + 1:i + 1 + n]))
                        del self.buf[:i + 1 + n]
                        return msg
                    break
            self._fill()

    def call(self, **body):
        req = pb.Request(id=random.getrandbits(63), **body)
        self.send(req)
        resp = self.recv()
        assert resp.id == req.id, (resp.id, req.id)
        return resp

    def lookup(self, table, slots):
        return self.call(lookup=pb.LookupRequest(table=table, slots=list(slots)))


def import_table(path, rows, chunk_slots=1024):
    """engram table import from a uint8 array (AssertionError when it fails:
    without tables there is nothing to test, which is a failure, not a skip)."""
    src = path + ".npy"
    np.save(src, rows)
    p = subprocess.run([ENGRAM, "table", "import", path, "--from", src,
                        "--chunk-slots", str(chunk_slots)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"engram table import failed: {p.stderr.strip()}")


class ProtocolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="egproto-")
        rng = np.random.default_rng(7)
        cls.rows_a = rng.integers(0, 256, size=(20000, 48), dtype=np.uint8)
        cls.rows_b = rng.integers(0, 256, size=(777, 8), dtype=np.uint8)
        try:
            import_table(os.path.join(cls.tmp, "a"), cls.rows_a)
            import_table(os.path.join(cls.tmp, "b"), cls.rows_b, chunk_slots=64)
        except BaseException:
            shutil.rmtree(cls.tmp)
            raise
        cls.sock = os.path.join(cls.tmp, "d.sock")
        cls.unix = "unix:" + cls.sock
        cls.tcp = f"tcp:127.0.0.1:{free_port()}"
        cls.log = open(os.path.join(cls.tmp, "engramd.log"), "wb")
        cls.proc = subprocess.Popen(
            [ENGRAMD, "--table", "a=" + os.path.join(cls.tmp, "a"),
             "--table", "b=" + os.path.join(cls.tmp, "b"),
             "--listen", cls.unix, "--listen", cls.tcp, "--max-rows", "5000",
             "--max-frame", "1M"],
            stderr=cls.log, stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                c = Client(cls.unix)
                c.call(ping=pb.PingRequest())
                c.close()
                break
            except (OSError, EOFError):
                if cls.proc.poll() is not None or time.time() > deadline:
                    cls.tearDownClass()
                    raise
                time.sleep(0.02)

    @classmethod
    def tearDownClass(cls):
        if cls.proc.poll() is None:
            cls.proc.send_signal(signal.SIGTERM)
            cls.proc.wait(20)
        cls.log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def assert_rows(self, resp, table, rows, slots):
        self.assertEqual(resp.status, pb.OK, resp.error)
        self.assertEqual(len(resp.blocks), 1)
        blk = resp.blocks[0]
        self.assertEqual(blk.table, table)
        self.assertEqual(blk.count, len(slots))
        self.assertEqual(blk.row_bytes, rows.shape[1])
        self.assertEqual(blk.generation, 1)
        got = np.frombuffer(blk.data, dtype=np.uint8).reshape(len(slots), rows.shape[1])
        np.testing.assert_array_equal(got, rows[np.asarray(slots, dtype=np.int64)])

    def test_random_rows_unix_and_tcp(self):
        rng = random.Random(3)
        for addr in (self.unix, self.tcp):
            c = Client(addr)
            for table, rows in (("a", self.rows_a), ("b", self.rows_b)):
                for n in (1, 10, 4999):
                    slots = [rng.randrange(len(rows)) for _ in range(n)]
                    slots[-1] = len(rows) - 1
                    self.assert_rows(c.lookup(table, slots), table, rows, slots)
            c.close()

    def test_pipelined_answers_in_order(self):
        c = Client(self.unix)
        reqs = []
        for i in range(100):
            slots = [(i * 131 + k) % len(self.rows_a) for k in range(i + 1)]
            reqs.append(slots)
            c.send(pb.Request(id=i, lookup=pb.LookupRequest(table="a", slots=slots)))
        for i, slots in enumerate(reqs):
            r = c.recv()
            self.assertEqual(r.id, i)
            self.assert_rows(r, "a", self.rows_a, slots)
        c.close()

    def test_info_ping_stats(self):
        c = Client(self.tcp)
        pong = c.call(ping=pb.PingRequest())
        self.assertEqual(pong.pong.protocol_version, 1)
        info = c.call(info=pb.InfoRequest()).info
        by_name = {t.name: t for t in info.tables}
        self.assertEqual(by_name["a"].slots, 20000)
        self.assertEqual(by_name["a"].row_bytes, 48)
        self.assertEqual(by_name["b"].dtype, "u8")
        self.assertEqual(by_name["b"].chunk_slots, 64)
        self.assertEqual(by_name["b"].hash_kind, "")
        stats = c.call(stats=pb.StatsRequest()).stats
        self.assertGreaterEqual(stats.requests, 2)
        self.assertGreaterEqual(stats.connections, 1)
        c.close()

    def test_error_statuses(self):
        c = Client(self.unix)
        r = c.lookup("missing", [0])
        self.assertEqual(r.status, pb.NOT_FOUND)
        self.assertIn("missing", r.error)
        r = c.lookup("b", [0, 777, 1])
        self.assertEqual(r.status, pb.OUT_OF_RANGE)
        self.assertIn("slots[1] = 777", r.error)
        r = c.lookup("a", range(5001))
        self.assertEqual(r.status, pb.TOO_LARGE)
        r = c.call()  # no body
        self.assertEqual(r.status, pb.BAD_REQUEST)
        r = c.call(tokens=pb.TokensRequest(tables=["a"], tokens=[1, 2]))
        self.assertEqual(r.status, pb.BAD_REQUEST)
        self.assertIn("hash spec", r.error)
        # bytes that do not parse: BAD_REQUEST with id 0, connection stays
        c.send_raw(b"\x03\xff\xff\xff")
        r = c.recv()
        self.assertEqual((r.id, r.status), (0, pb.BAD_REQUEST))
        self.assert_rows(c.lookup("b", [5]), "b", self.rows_b, [5])
        c.close()

    def test_oversized_frame_closes(self):
        c = Client(self.unix)
        c.send_raw(varint(2 << 20))
        r = c.recv()
        self.assertEqual((r.id, r.status), (0, pb.TOO_LARGE))
        with self.assertRaises(EOFError):
            c.recv()
        c.close()
        other = Client(self.tcp)
        self.assert_rows(other.lookup("a", [1, 2]), "a", self.rows_a, [1, 2])
        other.close()


if __name__ == "__main__":
    unittest.main()
