"""Issue now, collect later: an *_async call only queues its request; an
I/O thread of the client sends it and reads the answer while the caller
does something else, so an answer far larger than the socket buffers is
complete before result() is called. Without the threads
(background=False, the old behaviour) the same answer does not move until
result(). A small answer (rows in the shared buffer) is read too, and its
value made by the reader once the table's layout is known.
Also: the threads end with their client, and blocking calls, futures and
threads mixed on one client all get their own rows.
"""
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from client_support import Daemon, import_table  # noqa: E402

import engram_client as ec  # noqa: E402

FIX = {}
ROWS, DIM = 40000, 24
BIG = 30000  # slots per lookup: ~2.9 MB of rows, far over the socket buffers


def setUpModule():
    d = FIX["dir"] = tempfile.mkdtemp(prefix="engram-overlap-")
    FIX["src"] = np.random.default_rng(3).standard_normal((ROWS, DIM)).astype(np.float32)
    tdir = os.path.join(d, "t")
    import_table(tdir, FIX["src"], "t", chunk_slots=4096)
    FIX["daemon"] = Daemon({"t": tdir}, workdir=os.path.join(d, "run"))


def tearDownModule():
    if FIX.get("daemon") is not None:
        FIX["daemon"].cleanup()
    shutil.rmtree(FIX.get("dir", "/nonexistent"), ignore_errors=True)


def readers():
    return sum(t.name == "engram-io" for t in threading.enumerate())


class TestOverlap(unittest.TestCase):
    def setUp(self):
        self.d = FIX["daemon"]
        self.rng = np.random.default_rng(4)

    def want(self, s):
        return FIX["src"][s.astype(np.int64)]

    def wait_done(self, fut, seconds):
        end = time.monotonic() + seconds
        while not fut.done() and time.monotonic() < end:
            time.sleep(0.01)  # the caller "computes": it never calls the client
        return fut.done()

    def test_answers_arrive_while_the_caller_computes(self):
        for addr in (self.d.unix, self.d.tcp):
            with ec.Client(addr, timeout=30) as c:
                c.ping()
                s = self.rng.integers(0, ROWS, BIG, dtype=np.uint64)
                futs = [c.lookup_async("t", s), c.lookup_async("t", s[::-1].copy())]
                for f in futs:
                    self.assertTrue(self.wait_done(f, 20), f"{addr}: not read in the background")
                np.testing.assert_array_equal(futs[0].result(), self.want(s))
                np.testing.assert_array_equal(futs[1].result(), self.want(s[::-1]))

    def test_a_small_answer_is_made_in_the_background(self):
        # an I/O thread reads every async answer and, with the table's
        # layout known, also makes its value: result() only hands it over
        with ec.Client(self.d.unix, timeout=30, shm_bytes=1 << 20) as c:
            s = self.rng.integers(0, ROWS, 1000, dtype=np.uint64)
            first = c.lookup_async("t", s, shm=True)  # layout not known yet:
            self.assertTrue(self.wait_done(first, 20))
            self.assertFalse(first._settled)  # made by result(), which asks info
            want = self.want(s)
            np.testing.assert_array_equal(first.result(), want)
            for kw, n in (({"shm": True}, 1000), ({}, 10)):  # 960 bytes over the socket
                fut = c.lookup_async("t", s[:n], **kw)
                self.assertTrue(self.wait_done(fut, 20), f"{kw}: not read in the background")
                self.assertTrue(fut._settled, f"{kw}: value not made by the reader")
                np.testing.assert_array_equal(fut.result(), want[:n])
                self.assertEqual(fut.generations, {"t": c.table("t").generation})

    def test_an_idle_thread_is_woken_for_each_request(self):
        # idle I/O threads wait up to a second between looks for work: a
        # request that wakes none would still be sent, a second late
        with ec.Client(self.d.unix, timeout=30) as c:
            c.lookup_async("t", [1]).result()  # the threads run
            for i in range(6):
                time.sleep(0.05 * (i % 3 + 1))  # both threads idle again
                s = self.rng.integers(0, ROWS, 10, dtype=np.uint64)
                t0 = time.monotonic()
                fut = c.lookup_async("t", s)
                self.assertTrue(self.wait_done(fut, 0.6), f"request {i}: no thread woken")
                self.assertLess(time.monotonic() - t0, 0.6)
                np.testing.assert_array_equal(fut.result(), self.want(s))

    def test_issuing_copies_the_slots(self):
        # the request goes out later, from an I/O thread: it must be
        # made of the slots as they were when issued
        with ec.Client(self.d.unix, timeout=30) as c:
            s = self.rng.integers(0, ROWS, BIG, dtype=np.uint64)
            keep = s.copy()
            futs = [c.lookup_async("t", s) for _ in range(3)]
            s[:] = 0
            for f in futs:
                np.testing.assert_array_equal(f.result(), self.want(keep))
            with self.assertRaises(ValueError):
                c.lookup_async("t", [-1])  # refused in the call, not later
            self.assertEqual(c.ping().protocol_version, 1)

    def test_without_the_reader_nothing_moves_until_result(self):
        with ec.Client(self.d.unix, timeout=30, background=False) as c:
            s = self.rng.integers(0, ROWS, BIG, dtype=np.uint64)
            fut = c.lookup_async("t", s)
            self.assertFalse(self.wait_done(fut, 0.5))
            np.testing.assert_array_equal(fut.result(), self.want(s))

    def no_readers_left(self):
        end = time.monotonic() + 10
        while readers() and time.monotonic() < end:
            gc.collect()
            time.sleep(0.05)
        return readers() == 0

    def test_the_reader_ends_with_its_client(self):
        self.assertTrue(self.no_readers_left())  # those of closed clients of other tests
        c = ec.Client(self.d.unix, timeout=30)
        c.lookup_async("t", [1, 2]).result()
        self.assertEqual(readers(), 2)
        c.close()
        self.assertTrue(self.no_readers_left())
        c2 = ec.Client(self.d.unix, timeout=30)
        c2.lookup_async("t", [3]).result()
        self.assertEqual(readers(), 2)
        del c2  # never closed: the thread must not keep it alive
        self.assertTrue(self.no_readers_left())

    def test_mixed_calls_and_threads(self):
        c = ec.Client(self.d.unix, timeout=30)
        self.addCleanup(c.close)
        errors = []

        def worker(seed):
            r = np.random.default_rng(seed)
            try:
                for i in range(20):
                    a = r.integers(0, ROWS, int(r.integers(1, 20000)), dtype=np.uint64)
                    b = r.integers(0, ROWS, 100, dtype=np.uint64)
                    fut = c.lookup_async("t", a)
                    np.testing.assert_array_equal(c.lookup("t", b), self.want(b))
                    if i % 3 == 0:
                        time.sleep(0.002)
                    np.testing.assert_array_equal(fut.result(), self.want(a))
            except Exception as e:  # reported below
                errors.append(e)
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(c.ping().protocol_version, 1)

    def test_timeout_while_the_reader_waits(self):
        c = ec.Client(self.d.unix, timeout=30)
        self.addCleanup(c.close)
        c.ping()
        self.d.pause()
        try:
            fut = c.lookup_async("t", [5])
            t0 = time.monotonic()
            with self.assertRaises(ec.EngramTimeout):
                fut.result(timeout=0.3)
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            self.d.resume()
        np.testing.assert_array_equal(c.lookup_async("t", [6]).result(), self.want(np.array([6])))


if __name__ == "__main__":
    unittest.main()
