"""The Python client over several daemons (engram_client.Fleet).

Two "hosts" are two directories and two engramd on 127.0.0.1. Readers check
every row against the rows' formula (each row names its generation and
slot) while one replica is SIGKILLed and restarted and the other drained
with SIGTERM: with the client's own address list, and through HAProxy
running examples/haproxy/haproxy.cfg. Routes fan a token lookup out to the
hosts holding each table; min_generation keeps a client off a replica that
is behind; /healthz says 503 while a replica drains.
"""
import json
import os
import shutil
import signal
import tempfile
import time
import unittest

import numpy as np

from client_support import Daemon, engram
from engram_client import Client, Fleet, NotFound, Unavailable, connect
from fleet_support import HAProxy, Host, Reader, haproxy_bin, versioned_rows

TIMEOUT = 2.0
SPEC = {"kind": "engram-v1", "max_ngram": 3, "heads": 2, "pad": 0,
        "multipliers": [1000003, 998244353, 7340033], "moduli": [[1009, 1013], [1019, 1021]]}


class Failover(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="engram-fleet-")
        self.hosts = []

    def tearDown(self):
        for h in self.hosts:
            h.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)

    def kill_and_drain(self, make_client, lb=None):
        """Host 0 SIGKILLed and restarted, host 1 drained and restarted,
        host 0 (where every client is now) SIGKILLed again; each phase must
        answer, every answer be right, and no call fail before its deadline."""
        a, b = self.hosts
        phase = [0]
        readers = [Reader(make_client, TIMEOUT, seed, phase, pipelined=seed == 1)
                   for seed in range(2)]
        for r in readers:
            r.start()

        def step(n):
            phase[0] = n
            for r in readers:
                r.wait_answers(n, 20)

        def restart(h, server):
            h.start()
            if lb:
                lb.wait_state(server, "UP")

        step(0)
        a.kill()
        step(1)
        restart(a, "r1")
        b.term()
        if lb:
            lb.wait_state("r2", "DOWN")
            self.assertTrue(b.alive() and b.accepts(),
                            "haproxy marked the draining replica down only after it closed")
        self.assertEqual(b.wait(), 0)
        step(2)
        restart(b, "r2")
        a.kill()
        step(3)
        restart(a, "r1")
        step(4)
        for r in readers:
            r.stop.set()
            r.join(30)
            self.assertEqual(r.wrong, 0)
            self.assertEqual(r.early, [], f"{len(r.early)} of {r.failures} failures "
                                          f"came before the deadline")

    def test_address_list(self):
        self.hosts = [Host(self.root, "h1"), Host(self.root, "h2")]
        spec = ",".join(h.tcp for h in self.hosts)
        self.kill_and_drain(lambda: connect(spec, timeout=TIMEOUT))

    def test_haproxy(self):
        if not haproxy_bin():
            self.skipTest("haproxy is not installed (scripts/deps.sh installs it)")
        self.hosts = [Host(self.root, "h1", drain_delay=3), Host(self.root, "h2", drain_delay=3)]
        lb = HAProxy(self.root, self.hosts)
        try:
            self.kill_and_drain(lambda: connect(lb.addr, timeout=TIMEOUT, failover=True), lb)
        finally:
            lb.stop()


class Routes(unittest.TestCase):
    """layer l1 on one host, l2 on another; a token lookup over both is
    what one daemon of both returns."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="engram-routes-")
        spec = os.path.join(cls.root, "spec.json")
        with open(spec, "w") as f:
            json.dump(SPEC, f)
        dirs = {}
        for name, seed in (("l1", 1), ("l2", 2)):
            dirs[name] = os.path.join(cls.root, name)
            engram("table", "create", dirs[name], "--dim", 8, "--dtype", "u8", "--hash", spec,
                   "--fill", f"random:{seed}", "--name", name, "--generation", seed + 4)
        cls.h1 = Daemon({"l1": dirs["l1"]}, workdir=os.path.join(cls.root, "h1"))
        cls.h2 = Daemon({"l2": dirs["l2"]}, workdir=os.path.join(cls.root, "h2"))
        cls.both = Daemon(dirs, workdir=os.path.join(cls.root, "both"))

    @classmethod
    def tearDownClass(cls):
        for d in (cls.h1, cls.h2, cls.both):
            d.cleanup()
        shutil.rmtree(cls.root, ignore_errors=True)

    def same_as_one_daemon(self, spec):
        tok = np.array([5, 17, 3, 9000, 42, 7, 7, 123])
        with Fleet(spec, timeout=5) as f, Client(self.both.unix, timeout=5) as one:
            for tables in (["l1", "l2"], ["l2", "l1"]):
                fut = f.tokens_async(tables, tok, seq_lens=[5, 3], context=[2, 0])
                got = fut.result()
                ref = one.tokens_async(tables, tok, seq_lens=[5, 3], context=[2, 0])
                want = ref.result()
                self.assertEqual(list(got), tables)
                for t in tables:
                    np.testing.assert_array_equal(got[t], want[t])
                self.assertEqual(fut.generations, ref.generations)
                self.assertEqual(fut.generations, {"l1": 5, "l2": 6} if tables[0] == "l1"
                                 else {"l2": 6, "l1": 5})
            np.testing.assert_array_equal(f.lookup("l2", [3, 4000]), one.lookup("l2", [3, 4000]))
            self.assertEqual(sorted(t.name for t in f.info()), ["l1", "l2"])

    def test_string_routes(self):
        self.same_as_one_daemon(f"l1={self.h1.unix};l2={self.h2.unix}")

    def test_default_group(self):
        self.same_as_one_daemon(f"l1={self.h1.tcp};{self.h2.unix}")

    def test_json_file_and_dict(self):
        routes = {"tables": {"l1": [self.h1.unix], "l2": self.h2.tcp}}
        path = os.path.join(self.root, "routes.json")
        with open(path, "w") as f:
            json.dump(routes, f)
        self.same_as_one_daemon("@" + path)
        self.same_as_one_daemon(routes)

    def test_unrouted_table(self):
        with Fleet(f"l1={self.h1.unix}", timeout=5) as f:
            with self.assertRaisesRegex(NotFound, "no route for table 'l2'"):
                f.lookup("l2", [1])

    def test_bad_specs(self):
        for spec, why in (("l1=tcp:a:1;l1=tcp:b:1", "routed twice"),
                          ("unix:/a;unix:/b", "more than one group"),
                          ("l1,=tcp:a:1", "empty table name"),
                          ("layer1=", "expected unix:PATH")):
            with self.assertRaisesRegex(ValueError, why):
                Fleet(spec)
        self.assertIsInstance(connect(self.h1.unix, timeout=5), Client)


class Generations(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="engram-gen-")
        self.old = Host(self.root, "old", generation=1, drain_delay=0)
        self.new = Host(self.root, "new", generation=2, drain_delay=0)

    def tearDown(self):
        self.old.cleanup()
        self.new.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)

    def test_client_floor(self):
        with Client(self.old.tcp, timeout=5) as c:
            c.min_generation["t"] = 2
            with self.assertRaisesRegex(Unavailable, "at generation 1 here, below the "
                                                     "min_generation 2"):
                c.lookup("t", [1])
            del c.min_generation["t"]
            c.lookup("t", [1])
        with Client(self.old.tcp, timeout=5, monotonic=True) as c:
            c.lookup("t", [1])
            self.assertEqual(c.min_generation, {"t": 1})

    def test_fleet_floor_and_monotonic(self):
        spec = f"{self.old.tcp},{self.new.tcp}"
        with Fleet(spec, timeout=5) as f:
            f.min_generation["t"] = 2
            for _ in range(20):
                fut = f.lookup_async("t", [1, 2])
                rows = fut.result().view("<u8").reshape(-1, 2)
                self.assertEqual(fut.generations, {"t": 2})
                self.assertEqual(rows[:, 0].tolist(), [2, 2])
        with Fleet(spec, timeout=0.6, monotonic=True) as f:
            self.old.kill()
            f.lookup("t", [1])
            self.assertEqual(f.min_generation, {"t": 2})
            self.old.start()
            self.new.kill()
            t0 = time.monotonic()
            with self.assertRaisesRegex(Exception, "no replica answered within 0.6 s.*"
                                                   "min_generation 2"):
                f.lookup("t", [1])
            self.assertGreaterEqual(time.monotonic() - t0, 0.599)
            self.new.start()
            self.assertEqual(f.lookup("t", [7]).view("<u8").tolist(), [[2, 7]])


class LocalFirst(unittest.TestCase):
    def test_unix_replica_first_and_again_once_back(self):
        root = tempfile.mkdtemp(prefix="engram-local-")
        local = Host(root, "local", generation=5, drain_delay=0)
        remote = Host(root, "remote", generation=3, drain_delay=0)
        spec = f"{remote.tcp},{local.unix}"

        def gen(f):
            fut = f.lookup_async("t", [1])
            fut.result()
            return fut.generations["t"]
        try:
            for _ in range(8):  # whatever replica a client starts at
                with Fleet(spec, timeout=2) as f:
                    self.assertEqual([gen(f) for _ in range(5)], [5] * 5)
            with Fleet(spec, timeout=2) as f:
                local.kill()
                self.assertEqual([gen(f) for _ in range(20)], [3] * 20)
                local.start()
                deadline = time.monotonic() + 3
                while gen(f) == 3:
                    self.assertLess(time.monotonic(), deadline, "still on the remote replica")
        finally:
            local.cleanup()
            remote.cleanup()
            shutil.rmtree(root, ignore_errors=True)


class Drain(unittest.TestCase):
    def test_healthz_503_while_serving_on(self):
        root = tempfile.mkdtemp(prefix="engram-drain-")
        h = Host(root, "h", drain_delay=2)
        try:
            self.assertEqual(h.healthz(), 200)
            with Client(h.unix, timeout=5) as c:
                h.term()
                deadline = time.monotonic() + 5
                while h.healthz() != 503:
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.01)
                # still serving, on this connection and on new ones
                np.testing.assert_array_equal(c.lookup("t", [9]), versioned_rows(1)[[9]])
                with Client(h.unix, timeout=5) as c2:
                    c2.ping()
                self.assertTrue(h.alive())
            self.assertEqual(h.wait(), 0)
        finally:
            h.cleanup()
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
