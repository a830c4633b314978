"""Connections that are not clients: random bytes, garbage and truncated
frames, oversized length prefixes, half-closes, slowloris partial frames and
connections that pipeline and never read. Where the daemon owes an answer
(a refusal, a close, the right rows) it is checked; the rest only must not
hurt anyone else, which the checking clients see.
"""
import os
import socket
import time

import numpy as np

import model
from engram_client import wire
from loop import repeat
from engram_client.errors import TOO_LARGE

MAX_FRAME = 64 << 20  # engramd's default --max-frame


def first_response(got):
    """The header of the first response frame in got (bytes)."""
    length, pos = wire.read_varint(got, 0, len(got))
    if pos + length > len(got):
        raise ValueError(f"a response of {length} bytes cut at {len(got) - pos}")
    return wire.parse_response(memoryview(got), pos, pos + length)


class Junk:
    def __init__(self, addrs, rng):
        self.addrs, self.rng = addrs, rng
        self.counts = {}
        self.errors = []

    def connect(self):
        addr = self.addrs[int(self.rng.integers(0, len(self.addrs)))]
        if addr.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(addr[5:])
        else:
            host, port = addr[4:].rsplit(":", 1)
            s = socket.create_connection((host, int(port)), timeout=10)
        return s

    def lookup_frame(self, table, slots, req_id=1):
        return wire.request(req_id, wire.REQ_LOOKUP, wire.lookup_body(table.name, slots))

    def _count(self, kind):
        self.counts[kind] = self.counts.get(kind, 0) + 1

    @staticmethod
    def read_all(s, limit):
        """What the daemon sends until it closes (None: it did not within limit s)."""
        out, deadline = bytearray(), time.monotonic() + limit
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(1 << 16)
            except socket.timeout:
                return None
            except ConnectionResetError:
                return bytes(out)
            if not chunk:
                return bytes(out)
            out += chunk

    def expect_close(self, s, kind, status=None):
        """The daemon must close s within 10 s, answering first with status
        when status is given."""
        got = self.read_all(s, 10)
        if got is None:
            self.errors.append(f"junk {kind}: the daemon kept the connection open for 10 s")
        elif status is not None and got:
            hdr = first_response(got)
            if hdr.status != status:
                self.errors.append(f"junk {kind}: status {hdr.status} ({hdr.error}), "
                                   f"want {status}")

    # ---- one junk connection each ------------------------------------------------

    def random_bytes(self, s):
        s.sendall(os.urandom(int(self.rng.integers(1, 4096))))
        self.read_all(s, 0.5)

    def garbage_frame(self, s):
        body = os.urandom(int(self.rng.integers(1, 2000)))
        s.sendall(wire.frame(body))
        self.read_all(s, 0.5)

    def oversized(self, s):
        n = int(self.rng.choice([MAX_FRAME + 1, 1 << 40, (1 << 63) + 5]))
        s.sendall(wire.varint(n) + os.urandom(16))
        self.expect_close(s, "oversized length prefix", TOO_LARGE)

    def truncated(self, s):
        t = model.BY_NAME["pc"]
        f = self.lookup_frame(t, self.rng.integers(0, t.slots, 1000))
        s.sendall(f[:int(self.rng.integers(1, len(f)))])
        if self.rng.random() < 0.5:
            s.shutdown(socket.SHUT_WR)  # half-closed mid-frame: the daemon must let go
            self.expect_close(s, "half-closed truncated frame")

    def idle(self, s):
        time.sleep(float(self.rng.uniform(0, 2)))

    def slowloris(self, s):
        """A valid lookup, a byte at a time; finished and checked, or dropped."""
        t = model.TABLES[int(self.rng.integers(0, len(model.TABLES)))]
        slots = self.rng.integers(0, t.slots, int(self.rng.integers(1, 200)))
        f = self.lookup_frame(t, slots)
        finish = self.rng.random() < 0.5
        upto = len(f) if finish else int(self.rng.integers(1, len(f)))
        deadline = time.monotonic() + 5
        for i in range(upto):
            s.sendall(f[i:i + 1])
            if time.monotonic() < deadline:
                time.sleep(float(self.rng.uniform(0.005, 0.05)))
        if finish:
            s.shutdown(socket.SHUT_WR)
            got = self.read_all(s, 30)
            if got is None:
                self.errors.append("slowloris: no answer within 30 s")
                return
            hdr = first_response(got)
            if hdr.status or len(hdr.blocks) != 1:
                self.errors.append(f"slowloris: status {hdr.status} {hdr.error}")
                return
            blk = hdr.blocks[0]
            rows = np.frombuffer(got, np.uint8, blk.count * blk.row_bytes, blk.data_off)
            bad = model.wrong_rows(t, blk.generation, slots, rows)
            if bad:
                self.errors.append("slowloris: WRONG ROWS " + bad)

    def never_reads(self, s):
        """Pipelines large lookups and never reads: the daemon stops reading
        it at --max-output, and lets go when it closes."""
        t = model.BY_NAME["pc"]
        f = b"".join(self.lookup_frame(t, self.rng.integers(0, t.slots, 65536), i + 1)
                     for i in range(int(self.rng.integers(20, 200))))
        s.setblocking(False)
        off, deadline = 0, time.monotonic() + 1
        while off < len(f) and time.monotonic() < deadline:
            try:
                off += s.send(f[off:])
            except BlockingIOError:
                time.sleep(0.01)
        time.sleep(float(self.rng.uniform(0.5, 4)))

    KINDS = ("random_bytes", "garbage_frame", "oversized", "truncated", "idle")

    def one(self, kind):
        self._count(kind)
        try:
            s = self.connect()
        except OSError as e:
            self.errors.append(f"junk {kind}: cannot connect: {e}")
            return
        try:
            getattr(self, kind)(s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon closed first: its right
        except Exception as e:  # noqa: BLE001 - reported at the end
            self.errors.append(f"junk {kind}: {type(e).__name__}: {e}")
        finally:
            s.close()

    def run(self, stop, kinds=KINDS):
        repeat(stop, lambda: self.one(kinds[int(self.rng.integers(0, len(kinds)))]),
               self.errors, "junk", lambda: float(self.rng.uniform(0, 0.2)))
