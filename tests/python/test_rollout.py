"""scripts/rollout.sh across two replicas ("hosts": two directories, two
engramd on 127.0.0.1) while clients read.

A new version reaches both replicas, one after the other; a client that
asks for monotonic generations never returns rows of the old version after
rows of the new one, also when the replica it reads from dies between the
two steps and it fails over to the one still behind (a client without
min_generation does go back there: the control). A corrupt version is
refused by the first replica's own check, and the rollout stops there with
that replica serving the old version; a version the second replica refuses
rolls the first one back.
"""
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from engram_client import Fleet
from fleet_support import Host, Reader, make_version

ENGRAM = os.environ.get("ENGRAM", "build/engram")
TIMEOUT = 5.0


class Rollout(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="engram-rollout-")
        self.hosts = []
        self.readers = []

    def tearDown(self):
        for r in self.readers:
            r.stop.set()
            r.join(30)
        for h in self.hosts:
            h.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)

    def rollout(self, version, hosts):
        replicas = os.path.join(self.root, "replicas")
        with open(replicas, "w") as f:
            f.write("# host  link  staging  address\n")
            for h in hosts:
                f.write(f"local {h.link} {h.staging} {h.unix}\n")
        return subprocess.run(["sh", "scripts/rollout.sh", "--table", "t", "--engram", ENGRAM,
                               "--wait", "20", version, replicas],
                              capture_output=True, text=True, timeout=120)

    def read(self, monotonic, seed, phase, first=0):
        """A reader whose client starts on hosts[first]."""
        spec = ",".join(h.tcp for h in self.hosts)

        def client():
            f = Fleet(spec, timeout=TIMEOUT, monotonic=monotonic)
            f._groups[0].cur = first  # where this test wants it to start
            return f
        r = Reader(client, TIMEOUT, seed, phase, pipelined=seed % 2 == 1)
        self.readers.append(r)
        r.start()
        return r

    def test_new_version_while_reading(self):
        a, b = self.hosts = [Host(self.root, "a", drain_delay=0),
                             Host(self.root, "b", drain_delay=0)]
        v2 = make_version(os.path.join(self.root, "v2"), 2)
        phase = [0]
        readers = [self.read(True, seed, phase) for seed in range(2)]
        control = self.read(False, 9, phase)
        for r in self.readers:
            r.wait_answers(0, 20)
        p = self.rollout(v2, [a])
        self.assertEqual(p.returncode, 0, p.stderr)
        deadline = time.monotonic() + 10
        while not all(r.generations and r.generations[-1] == 2 for r in self.readers):
            self.assertLess(time.monotonic(), deadline, "the readers did not see generation 2")
            time.sleep(0.01)
        # the replica with the new version dies: its clients fail over to
        # the one still on the old version
        phase[0] = 1
        a.kill()
        time.sleep(0.3)
        a.start()
        for r in self.readers:
            r.wait_answers(1, 20)
        p = self.rollout(v2, [a, b])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("already at generation 2", p.stderr)
        phase[0] = 2
        for r in self.readers:
            r.wait_answers(2, 20)
            r.stop.set()
            r.join(30)
        self.assertEqual([a.generation(), b.generation()], [2, 2])
        for r in readers:
            self.assertEqual(r.wrong, 0)
            self.assertEqual(r.early, [])
            self.assertEqual(r.backwards, 0, "rows of generation 1 after rows of generation 2")
        self.assertEqual(control.wrong, 0)
        self.assertGreater(control.backwards, 0,
                           "the control never read the replica behind: the test proves nothing")

    def test_corrupt_version_stops_at_first_replica(self):
        a, b = self.hosts = [Host(self.root, "a", drain_delay=0),
                             Host(self.root, "b", drain_delay=0)]
        bad = make_version(os.path.join(self.root, "v2"), 2, flip_row=3000)
        phase = [0]
        readers = [self.read(True, seed, phase, first=seed) for seed in range(2)]
        for r in readers:
            r.wait_answers(0, 20)
        p = self.rollout(bad, [a, b])
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("the daemon refused generation 2", p.stderr)
        self.assertIn("every replica serves the version it served before", p.stderr)
        self.assertEqual([a.generation(), b.generation()], [1, 1])
        self.assertEqual(os.path.realpath(a.link), os.path.realpath(a.first))
        self.assertFalse(os.path.exists(os.path.join(b.staging, "v2")), "went past replica a")
        for r in readers:
            r.wait_answers(0, r.ok[0] + 20)
            r.stop.set()
            r.join(30)
            self.assertEqual(r.wrong, 0)
            self.assertEqual(r.early, [])
            self.assertEqual(set(r.generations), {1})

    def test_refusal_on_second_replica_rolls_back_the_first(self):
        # b serves the table with wider rows: it refuses the new layout
        a, b = self.hosts = [Host(self.root, "a", drain_delay=0),
                             Host(self.root, "b", drain_delay=0, width=32)]
        v2 = make_version(os.path.join(self.root, "v2"), 2)
        p = self.rollout(v2, [a, b])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"local:{a.link}: serves generation 2 (was 1)", p.stderr)
        self.assertIn("rolling t back to generation 1", p.stderr)
        self.assertEqual([a.generation(), b.generation()], [1, 1])
        self.assertEqual(os.path.realpath(a.link), os.path.realpath(a.first))
        self.assertEqual(os.path.realpath(b.link), os.path.realpath(b.first))


if __name__ == "__main__":
    unittest.main()
