"""The Python client against a server that lies.

A fake engramd in this process (a thread on a real unix socket, the real
framing, answers built with the generated protobuf code) tells the truth
to every request but one kind, which gets the lie of the case: no row
block, one row for four slots, another table's block, a wrong id, a layout
that cannot be, a truncated, 2^40-byte or endless frame, shm rows outside
the shared buffer, ... The client must raise ProtocolError naming the
mismatch (EngramTimeout for the endless frame, within its timeout), and
the next call must work. A truthful case per kind shows the fake server is
believed when it tells the truth.
"""
import os
import shutil
import socket
import tempfile
import threading
import time
import unittest

import numpy as np

import engram_client as ec
from engram_client import wire
from engram_client._pb import pb

ROW_A, ROW_H, RPT_H = 16, 8, 4
SLOTS = [3, 1, 4, 1]


def pattern(slot):
    return bytes((slot * 31 + j + 1) & 0xFF for j in range(ROW_A))


def frame(resp):
    body = resp.SerializeToString()
    return wire.varint(len(body)) + body


class Liar:
    """The fake server: answers request kind `target` once with `lie`."""

    def __init__(self, lie, target):
        self.lie, self.target, self.told = lie, target, False
        self.lookups = []  # (slots, fixed_slots) counts of each lookup received
        self.dir = tempfile.mkdtemp(prefix="engram-liar-")
        self.addr = "unix:" + os.path.join(self.dir, "liar.sock")
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(self.addr[5:])
        self.lsock.listen(8)
        self.lsock.settimeout(0.1)
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def close(self):
        self.stop = True
        self.thread.join(10)
        self.lsock.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _run(self):
        while not self.stop:
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(0.1)
                self._serve(conn)

    def _serve(self, conn):
        buf = b""
        while not self.stop:
            try:
                data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
            except socket.timeout:
                continue
            except OSError:
                return
            for fd in fds:
                os.close(fd)
            if not data:
                return
            buf += data
            while True:
                try:
                    n, pos = wire.read_varint(buf, 0, len(buf))
                except ec.ProtocolError:
                    break
                if len(buf) < pos + n:
                    break
                req = pb.Request.FromString(buf[pos:pos + n])
                buf = buf[pos + n:]
                if not self._reply(conn, req):
                    return

    def _send(self, conn, data, endless=0):
        try:
            conn.sendall(data)
            zeros = bytes(1 << 16)
            while endless > 0 and not self.stop:
                try:  # ~64 MB/s: the client buffers what comes until it refuses
                    endless -= conn.send(zeros[:min(endless, len(zeros))])
                except socket.timeout:
                    continue
                time.sleep(0.001)
        except OSError:
            return False
        return True

    def _reply(self, conn, req):
        kind = req.WhichOneof("body")
        lie = "truth"
        if kind == self.target and not self.told:
            lie, self.told = self.lie, True
        raw = self._raw_lie(req.id, lie)
        if raw is not None:
            data, endless, close = raw
            return self._send(conn, data, endless) and not close
        if kind == "attach_shm":
            resp = pb.Response(id=req.id)
        elif kind == "info":
            resp = self._info(req.id, lie)
        elif kind == "lookup":
            self.lookups.append((len(req.lookup.slots), len(req.lookup.fixed_slots)))
            resp = self._lookup(req.id, req.lookup, lie)
        elif kind == "tokens":
            resp = self._tokens(req.id, req.tokens, lie)
        elif kind == "stats":
            resp = pb.Response(id=req.id, stats=pb.StatsResponse(requests=7))
        elif lie == "wrong_body":
            resp = pb.Response(id=req.id, stats=pb.StatsResponse())
        else:
            resp = pb.Response(id=req.id, pong=pb.Pong(protocol_version=1))
        return self._send(conn, frame(resp))

    @staticmethod
    def _raw_lie(rid, lie):
        """(bytes, endless zero bytes after, close) of lies that are no Response."""
        if lie == "truncated":
            return wire.varint(40) + b"\x08" + bytes((rid,)) + b"\x42", 0, True
        if lie == "huge_frame":
            return wire.varint(1 << 40) + b"\x08" + bytes((rid,)), 1 << 40, False
        if lie == "big_frame":  # 1 MiB of error text: no stats answer is that long
            head = b"\x08" + bytes((rid,)) + b"\x1a" + wire.varint((1 << 20) - 1)
            return wire.varint(len(head) + (1 << 20) - 1) + head, (1 << 20) - 1, False
        if lie == "endless":  # 2^34 bytes (the client's max_frame): 65536 rows could be
            blk = b"\x0a\x01a\x18\x10\x20" + wire.varint(65536) + b"\x2a"
            blen = (1 << 34) - (2 + len(wire.varint(rid)) + 5)
            dlen = blen - len(blk) - 5
            assert len(wire.varint(blen)) == len(wire.varint(dlen)) == 5
            head = (b"\x08" + wire.varint(rid) + b"\x42" + wire.varint(blen) + blk +
                    wire.varint(dlen))
            return wire.varint(1 << 34) + head, dlen, False
        return None

    @staticmethod
    def _info(rid, lie):
        tables = [pb.TableInfo(name="a", slots=100, dim=ROW_A, dtype="u8", row_bytes=ROW_A,
                               generation=1, chunk_slots=1024, path="/nowhere")]
        for name in ("h", "h2"):
            tables.append(pb.TableInfo(name=name, slots=4062, dim=ROW_H, dtype="u8",
                                       row_bytes=ROW_H, generation=1, chunk_slots=1024,
                                       hash_kind="engram-v1", rows_per_token=RPT_H))
        a = tables[0]
        if lie == "info_huge_row":
            a.dim = a.row_bytes = (1 << 32) - 1
        elif lie == "info_layout":
            a.dtype = "f32"  # 16 values of f32 are 64 bytes, not 16
        elif lie == "info_hashless_rpt":
            a.rows_per_token = 16
        return pb.Response(id=rid, info=pb.InfoResponse(tables=tables))

    @staticmethod
    def _lookup(rid, lr, lie):
        n = len(lr.slots)
        b = pb.RowBlock(table=lr.table, generation=1, row_bytes=ROW_A, count=n)
        if lr.shm:
            b.shm, b.shm_offset = True, lr.shm_offset
        else:
            b.data = b"".join(pattern(s) for s in lr.slots)
        blocks = [b]
        if lie == "no_block":
            blocks = []
        elif lie == "short_count":
            b.count, b.data = 1, pattern(lr.slots[0])
        elif lie == "extra_block":
            blocks = [b, b]
        elif lie == "wrong_table":
            b.table = "b"
        elif lie == "wrong_id":
            rid += 98
        elif lie == "short_data":
            b.data = b.data[:2 * ROW_A]
        elif lie == "huge_row":
            b.row_bytes, b.data = (1 << 32) - 1, b""
        elif lie == "row_bytes_changed":
            b.row_bytes, b.data = ROW_A // 2, b.data[:n * ROW_A // 2]
        elif lie == "in_shm":
            b.shm, b.data = True, b""
        elif lie == "shm_elsewhere":
            b.shm_offset = 1 << 40
        elif lie == "shm_with_data":
            b.data = bytes(n * ROW_A)
        elif lie == "not_shm":
            b.shm, b.shm_offset, b.data = False, 0, bytes(n * ROW_A)
        return pb.Response(id=rid, blocks=blocks)

    @staticmethod
    def _tokens(rid, tr, lie):
        ntok = len(tr.tokens) - sum(tr.context)
        off, blocks = tr.shm_offset, []
        for i, t in enumerate(tr.tables):
            b = pb.RowBlock(table=t, generation=1, row_bytes=ROW_H, count=ntok * RPT_H)
            if tr.shm:
                b.shm, b.shm_offset = True, off
                off += ntok * RPT_H * ROW_H
            else:
                b.data = bytes((i + 1,)) * (ntok * RPT_H * ROW_H)
            blocks.append(b)
        if lie == "no_block":
            blocks.pop()
        elif lie == "tokens_count":
            ntok -= 1
        elif lie == "block_count":
            blocks[1].count += 1
            blocks[1].data += bytes(ROW_H)
        elif lie == "swapped":
            blocks[0].table, blocks[1].table = blocks[1].table, blocks[0].table
        return pb.Response(id=rid, tokens=ntok, rows_per_token=RPT_H, blocks=blocks)


def lookup(c):
    rows = c.lookup("a", SLOTS)
    assert rows.shape == (4, ROW_A)
    assert bytes(rows[2]) == pattern(4)


def lookup_shm(offset):
    def run(c):
        c.attach_shm(4096)
        for _ in range(2):  # the second with the layout known: an attach answer
            # without a body (a daemon before shm_slots) keeps the slots in the frame
            rows = c.lookup("a", SLOTS, shm=True, shm_offset=offset)
            assert rows.shape == (4, ROW_A)
    return run


def tokens(seq_lens):
    def run(c):
        out = c.tokens(["h", "h2"], [5, 9, 2, 7], seq_lens=seq_lens, context=[1, 0])
        assert out["h"].shape == (3, RPT_H, ROW_H)
        assert out["h2"][0, 0, 0] == 2
    return run


def lookup_async(c):
    c.info()  # layouts known: the I/O thread makes (and checks) the rows
    lookup(_Collected(c.lookup_async))


def tokens_async(c):
    c.info()
    tokens([2, 2])(_Collected(c.tokens_async, "tokens"))


class _Collected:
    """A client stand-in whose lookup (or tokens) is an *_async call collected."""

    def __init__(self, call, name="lookup"):
        setattr(self, name, lambda *a, **kw: call(*a, **kw).result())


def lookup_big(c):
    c.timeout = 0.3
    try:
        c.lookup("a", np.zeros(65536, dtype=np.uint64))
    finally:
        c.timeout = 5


# (name, request, kind the lie targets, lie, error class, what its message says)
CASES = [
    ("lookup_truth", lookup, "lookup", "truth", None, ""),
    ("no_block", lookup, "lookup", "no_block", ec.ProtocolError, "0 row blocks for 1 table"),
    ("one_row_for_four", lookup, "lookup", "short_count", ec.ProtocolError,
     "holds 1 rows; the request asked for 4"),
    ("extra_block", lookup, "lookup", "extra_block", ec.ProtocolError,
     "2 row blocks for 1 table"),
    ("wrong_table", lookup, "lookup", "wrong_table", ec.ProtocolError,
     "block 0 is for table 'b'; the request asked for 'a'"),
    ("wrong_id", lookup, "lookup", "wrong_id", ec.ProtocolError, "response id 99"),
    ("short_data", lookup, "lookup", "short_data", ec.ProtocolError,
     "32 bytes of data for 4 rows of 16 bytes"),
    ("huge_row", lookup, "lookup", "huge_row", ec.ProtocolError,
     "row_bytes 4294967295 is not a real row size"),
    ("row_bytes_changed", lookup, "lookup", "row_bytes_changed", ec.ProtocolError,
     "rows of 8 bytes, info says 16"),
    ("in_shm", lookup, "lookup", "in_shm", ec.ProtocolError,
     "says its rows are in the shared buffer"),
    ("truncated", lookup, "lookup", "truncated", ec.ProtocolError, "truncated frame"),
    ("huge_frame", lookup, "lookup", "huge_frame", ec.ProtocolError,
     "announced a response of 1099511627776 bytes"),
    ("endless_frame", lookup_big, "lookup", "endless", ec.EngramTimeout, "timed out"),
    ("info_truth", lambda c: c.info(), "info", "truth", None, ""),
    ("info_huge_row", lambda c: c.info(), "info", "info_huge_row", ec.ProtocolError,
     "row_bytes 4294967295 is not a real row size"),
    ("info_layout", lambda c: c.info(), "info", "info_layout", ec.ProtocolError,
     "does not match its layout (f32, dim 16"),
    ("info_hashless_rpt", lambda c: c.info(), "info", "info_hashless_rpt", ec.ProtocolError,
     "16 rows per token with hash kind ''"),
    ("info_huge_frame", lambda c: c.info(), "info", "huge_frame", ec.ProtocolError,
     "announced a response of 1099511627776 bytes"),
    ("info_for_lookup", lookup, "info", "info_huge_row", ec.ProtocolError,
     "row_bytes 4294967295 is not a real row size"),
    ("stats_big_frame", lambda c: c.stats(), "stats", "big_frame", ec.ProtocolError,
     "announced a response of 1048581 bytes"),
    ("ping_wrong_body", lambda c: c.ping(), "ping", "wrong_body", ec.ProtocolError,
     "wrong kind of response"),
    ("tokens_truth", tokens([2, 2]), "tokens", "truth", None, ""),
    ("tokens_no_block", tokens([2, 2]), "tokens", "no_block", ec.ProtocolError,
     "1 row blocks for 2 tables"),
    ("tokens_count", tokens([2, 2]), "tokens", "tokens_count", ec.ProtocolError,
     "returned 2 tokens; the request returns 3"),
    ("tokens_block_count", tokens([2, 2]), "tokens", "block_count", ec.ProtocolError,
     "holds 13 rows; the request asked for 12"),
    ("tokens_swapped", tokens([2, 2]), "tokens", "swapped", ec.ProtocolError,
     "block 0 is for table 'h2'; the request asked for 'h'"),
    ("tokens_bad_seq_accepted", tokens([2, 3]), "tokens", "truth", ec.ProtocolError,
     "seq_lens and context do not add up"),
    ("shm_truth", lookup_shm(64), "lookup", "truth", None, ""),
    ("shm_elsewhere", lookup_shm(64), "lookup", "shm_elsewhere", ec.ProtocolError,
     "is at shm_offset 1099511627776; the request puts it at 64"),
    ("shm_with_data", lookup_shm(64), "lookup", "shm_with_data", ec.ProtocolError,
     "carries 64 bytes of data"),
    ("shm_not_shm", lookup_shm(64), "lookup", "not_shm", ec.ProtocolError,
     "is not in the shared buffer"),
    ("shm_outside", lookup_shm(4096 - 32), "lookup", "truth", ec.ProtocolError,
     "64 bytes at shm_offset 4064 lie outside the shared buffer of 4096 bytes"),
]

# the same lies told to *_async calls, whose answers the I/O thread checks
CASES += [("async_" + name, lookup_async if kind == "lookup" else tokens_async, kind, *rest)
          for name, _, kind, *rest in list(CASES)
          if name in ("lookup_truth", "one_row_for_four", "wrong_table", "short_data",
                      "row_bytes_changed", "in_shm", "tokens_truth", "tokens_count",
                      "tokens_block_count")]


class LyingServerCase(unittest.TestCase):
    def check(self, run, target, lie, err, says):
        liar = Liar(lie, target)
        self.addCleanup(liar.close)
        c = ec.Client(liar.addr, timeout=5)
        self.addCleanup(c.close)
        t0 = time.monotonic()
        if err is None:
            run(c)
        else:
            with self.assertRaises(err) as cm:
                run(c)
            self.assertIn(says, str(cm.exception))
        self.assertLess(time.monotonic() - t0, 3.0, "refused, not waited out")
        self.assertEqual(c.ping().protocol_version, 1)  # and the client goes on


    def test_slots_stay_varints_for_a_daemon_that_does_not_read_words(self):
        """This server never says reads_fixed_slots (as engramd before that
        field): every lookup keeps its slots in the varint field."""
        liar = Liar("truth", "lookup")
        self.addCleanup(liar.close)
        c = ec.Client(liar.addr, timeout=5)
        self.addCleanup(c.close)
        for _ in range(3):
            lookup(c)
        lookup_async(c)
        self.assertEqual(liar.lookups, [(4, 0)] * 4)


def _case(run, target, lie, err, says):
    return lambda self: self.check(run, target, lie, err, says)


for _name, *_args in CASES:
    setattr(LyingServerCase, "test_" + _name, _case(*_args))


if __name__ == "__main__":
    unittest.main()
