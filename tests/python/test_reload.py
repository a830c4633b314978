"""Hot reload under load: patches and new versions while clients read.

Every table version is built so that each row names its generation
(row = [generation u64][slot u64], little-endian). Clients check that every
response is entirely from the one generation it reports (no torn batch), that
no request fails, and that the generations each client sees never go back.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import numpy as np

import engram_pb2 as pb
from client_support import export_rows
from daemon_support import Conn, Daemon, engram, import_rows

SLOTS = 65536
CHUNK = 4096
LOAD_SECONDS = float(os.environ.get("RELOAD_LOAD_SECONDS", "30"))


def rows_of(generation, slots=SLOTS):
    rows = np.empty((slots, 2), dtype="<u8")
    rows[:, 0] = generation
    rows[:, 1] = np.arange(slots, dtype="<u8")
    return rows.view(np.uint8).reshape(slots, 16)


def generation_of(dir_):
    out = engram("table", "info", dir_).stdout
    for line in out.splitlines():
        k, _, v = line.partition(":")
        if k.strip() == "generation":
            return int(v)
    raise AssertionError("no generation in info:\n" + out)


class Reader(threading.Thread):
    def __init__(self, addr, seed):
        super().__init__(daemon=True)
        self.addr, self.rng = addr, np.random.default_rng(seed)
        self.stop = threading.Event()
        self.requests = self.failures = self.torn = self.backwards = 0
        self.generations = set()
        self.errors = []

    def run(self):
        conn = Conn(self.addr)
        last = 0
        while not self.stop.is_set():
            slots = self.rng.integers(0, SLOTS, 512)
            resp = conn.lookup("t", slots)
            self.requests += 1
            if resp.status != 0:
                self.failures += 1
                self.errors.append(resp.error)
                continue
            block = resp.blocks[0]
            rows = np.frombuffer(block.data, dtype="<u8").reshape(-1, 2)
            if not (rows[:, 0] == block.generation).all() or \
                    not (rows[:, 1] == slots).all():
                self.torn += 1
            if block.generation < last:
                self.backwards += 1
            last = block.generation
            self.generations.add(block.generation)
        conn.close()


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="engram-reload-")
        self.link = os.path.join(self.dir, "live")
        v1 = os.path.join(self.dir, "v1")
        import_rows(v1, rows_of(1), generation=1, chunk_slots=CHUNK)
        engram("table", "publish", self.link, v1)
        self.daemon = Daemon({"t": self.link})

    def tearDown(self):
        self.daemon.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def expect_generation(self, conn, gen):
        resp = conn.lookup("t", [0, SLOTS - 1])
        self.assertEqual(resp.status, 0, resp.error)
        rows = np.frombuffer(resp.blocks[0].data, dtype="<u8").reshape(-1, 2)
        self.assertEqual(resp.blocks[0].generation, gen)
        self.assertEqual(rows[:, 0].tolist(), [gen, gen])

    def publish_version(self, gen, rows=None):
        d = os.path.join(self.dir, f"v{gen}")
        import_rows(d, rows_of(gen) if rows is None else rows, generation=gen,
                    chunk_slots=CHUNK)
        engram("table", "publish", self.link, d)
        return d

    def test_patches_and_versions_under_load(self):
        readers = [Reader(self.daemon.addr, seed) for seed in range(4)]
        for r in readers:
            r.start()
        conn = Conn(self.daemon.addr)
        gen, reloads, patches, versions = 1, 0, 0, 0
        all_slots = os.path.join(self.dir, "all.npy")
        np.save(all_slots, np.arange(SLOTS, dtype="<i8"))
        deadline = time.monotonic() + LOAD_SECONDS
        while time.monotonic() < deadline:
            gen += 1
            if gen % 5 == 0:
                self.publish_version(gen)
                versions += 1
            else:
                rows = os.path.join(self.dir, "rows.npy")
                np.save(rows, rows_of(gen))
                engram("table", "update", self.link, "--slots", all_slots, "--rows", rows)
                patches += 1
                self.assertEqual(generation_of(self.link), gen)
            if gen % 3 == 0:
                self.daemon.signal(signal.SIGHUP)
                for _ in range(200):  # SIGHUP is asynchronous: wait for it
                    if conn.lookup("t", [0]).blocks[0].generation == gen:
                        break
                    time.sleep(0.01)
            else:
                resp = conn.reload("t")
                self.assertEqual(resp.status, 0, resp.error)
                res = resp.reload.results[0]
                self.assertTrue(res.reloaded, res.error)
                self.assertEqual(res.new_generation, gen)
            self.expect_generation(conn, gen)
            reloads += 1
        for r in readers:
            r.stop.set()
        for r in readers:
            r.join(30)
        total = sum(r.requests for r in readers)
        print(f"\nreload load: {LOAD_SECONDS:.0f}s, {reloads} reloads "
              f"({patches} patches, {versions} new versions), {total} requests, "
              f"generations seen per client: {[len(r.generations) for r in readers]}")
        self.assertGreaterEqual(reloads, 24)
        for r in readers:
            self.assertGreater(r.requests, 0)
            self.assertEqual(r.failures, 0, r.errors[:3])
            self.assertEqual(r.torn, 0)
            self.assertEqual(r.backwards, 0)
            self.assertGreater(len(r.generations), 2)
        # a second client is still served after all that, and the daemon exits cleanly
        self.expect_generation(conn, gen)
        conn.close()
        self.assertEqual(self.daemon.stop(), 0)

    def swap_link(self, target):
        """Points the link at target by atomic rename, the way any deploy tool
        might (engram table publish itself refuses a version that is not a
        valid table, so a bad one is put in place by hand here)."""
        tmp = self.link + ".tmp"
        os.symlink(target, tmp)
        os.replace(tmp, self.link)

    def refuse(self, bad_dir):
        """Puts bad_dir live, checks the reload is refused and v1 serves on."""
        conn = Conn(self.daemon.addr)
        good = os.readlink(self.link)
        self.swap_link(bad_dir)
        resp = conn.reload("t")
        self.assertEqual(resp.status, 0, resp.error)
        res = resp.reload.results[0]
        self.assertFalse(res.reloaded)
        self.assertTrue(res.error)
        self.expect_generation(conn, 1)
        stats = conn.call(stats=pb.StatsRequest())
        self.assertGreaterEqual(stats.stats.reload_failures, 1)
        self.swap_link(good)
        self.expect_generation(conn, 1)
        conn.close()

    def test_refuses_truncated_version(self):
        bad = os.path.join(self.dir, "truncated")
        shutil.copytree(os.path.realpath(self.link), bad)
        data = os.path.join(bad, "data.mdb")
        os.truncate(data, os.path.getsize(data) // 2)
        self.refuse(bad)

    def test_refuses_flipped_byte(self):
        bad = os.path.join(self.dir, "flipped")
        rows = rows_of(7)
        import_rows(bad, rows, generation=7, chunk_slots=CHUNK)
        data = os.path.join(bad, "data.mdb")
        with open(data, "r+b") as f:
            blob = f.read()
            needle = rows[3000].tobytes()  # a row inside chunk 0
            at = blob.find(needle)
            self.assertGreater(at, 0)
            f.seek(at + 12)
            f.write(bytes([blob[at + 12] ^ 0xFF]))
        self.assertNotEqual(engram("table", "verify", bad, check=False).returncode, 0)
        self.refuse(bad)

    def test_refuses_different_dim(self):
        bad = os.path.join(self.dir, "wide")
        import_rows(bad, np.zeros((SLOTS, 32), np.uint8), generation=9, chunk_slots=CHUNK)
        self.refuse(bad)

    def test_rollback_restores_old_rows(self):
        conn = Conn(self.daemon.addr)
        self.publish_version(2)
        self.assertTrue(conn.reload("t").reload.results[0].reloaded)
        self.expect_generation(conn, 2)
        engram("table", "rollback", self.link)
        self.assertTrue(conn.reload("t").reload.results[0].reloaded)
        self.expect_generation(conn, 1)
        conn.close()

    def test_writer_killed_mid_update_leaves_old_generation(self):
        """A writer killed mid-update leaves the old generation, whole; one
        killed after its commit (it may still be closing the table when the
        kill comes) leaves the new one, whole. Never a mix."""
        big = os.path.join(self.dir, "big")
        n = 1 << 22  # 64 MiB of rows: the update takes a while
        import_rows(big, rows_of(1, n), generation=1, chunk_slots=CHUNK)
        slots = os.path.join(self.dir, "big-slots.npy")
        rows = os.path.join(self.dir, "big-rows.npy")
        np.save(slots, np.arange(n, dtype="<i8"))
        np.save(rows, rows_of(2, n))
        sample = np.concatenate([np.arange(0, n, 4093), [n - 1]])
        killed_running = 0
        for delay in (0.05, 0.15, 0.3):
            p = subprocess.Popen([os.environ.get("ENGRAM", "build/engram"), "table", "update",
                                  big, "--slots", slots, "--rows", rows],
                                 stderr=subprocess.DEVNULL)
            time.sleep(delay)
            if p.poll() is not None:
                self.assertEqual(p.returncode, 0)
                break
            p.send_signal(signal.SIGKILL)
            p.wait()
            engram("table", "verify", big)
            generation = generation_of(big)
            self.assertIn(generation, (1, 2))
            np.testing.assert_array_equal(export_rows(big, sample),
                                          rows_of(generation, n)[sample])
            if generation == 2:
                break  # the kill came after the commit
            killed_running += 1
        self.assertGreater(killed_running, 0, "update finished before any kill")

if __name__ == "__main__":
    unittest.main()
