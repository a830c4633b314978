"""SIGHUP reads the config file again: tables added, removed and re-pointed
while a client connection stays open; an invalid file changes nothing and is
logged with its line; settings that need a restart are logged and ignored;
requests in flight on a removed table finish or get NOT_FOUND. And
`engramd --check-config FILE`."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import numpy as np

import engram_pb2 as pb
from daemon_support import ENGRAMD, Conn, Daemon, import_rows

SLOTS = 4096
OK, NOT_FOUND = pb.Status.Value("OK"), pb.Status.Value("NOT_FOUND")


def rows_of(tag):
    """Row i = [tag u64][i u64]: a row names the table version it is from."""
    rows = np.empty((SLOTS, 2), dtype="<u8")
    rows[:, 0] = tag
    rows[:, 1] = np.arange(SLOTS, dtype="<u8")
    return rows.view(np.uint8).reshape(SLOTS, 16)


def tag_of(resp, slots):
    rows = np.frombuffer(resp.blocks[0].data, dtype="<u8").reshape(-1, 2)
    assert (rows[:, 1] == slots).all(), "rows of other slots"
    tags = set(rows[:, 0].tolist())
    assert len(tags) == 1, f"a torn answer: {tags}"
    return tags.pop()


class ConfigReload(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="engram-reconfig-")
        self.dirs = {}
        for name, tag in (("a", 1), ("b", 2), ("c", 3), ("a2", 11)):
            self.dirs[name] = os.path.join(self.dir, name)
            import_rows(self.dirs[name], rows_of(tag), name=name)
        self.conf = os.path.join(self.dir, "engramd.conf")
        self.daemon = None

    def tearDown(self):
        if self.daemon:
            self.daemon.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, *lines):
        with open(self.conf + ".new", "w") as f:
            f.write("# engramd test config\n" + "".join(l + "\n" for l in lines))
        os.rename(self.conf + ".new", self.conf)

    def hup(self, done="config: applied"):
        """SIGHUP; waits for the reload pass to end, which logs `done` first."""
        log = self.daemon.logtext()
        before, passes = log.count(done), log.count(": reload: ")
        self.daemon.signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while self.daemon.logtext().count(": reload: ") == passes:
            self.assertLess(time.monotonic(), deadline, "no reload:\n" + self.daemon.logtext())
            time.sleep(0.05)
        self.assertEqual(self.daemon.logtext().count(done), before + 1, self.daemon.logtext())

    def lookup(self, conn, table, want_tag=None, want_status=OK):
        slots = np.random.default_rng().integers(0, SLOTS, 256)
        r = conn.lookup(table, slots)
        self.assertEqual(r.status, want_status, f"{table}: {r.error}")
        if want_status == OK:
            self.assertEqual(tag_of(r, slots), want_tag, table)
        return r

    def test_add_remove_repoint_invalid_restart(self):
        d = self.dirs
        self.write(f"table = a={d['a']}", f"table = b={d['b']}", "max-rows = 1M")
        self.daemon = Daemon({}, extra=["--config", self.conf])
        conn = Conn(self.daemon.addr)
        self.lookup(conn, "a", 1)
        self.lookup(conn, "b", 2)
        self.lookup(conn, "c", want_status=NOT_FOUND)

        # add c
        self.write(f"table = a={d['a']}", f"table = b={d['b']}", f"table = c={d['c']}",
                   "max-rows = 1M")
        self.hup()
        self.lookup(conn, "c", 3)
        self.assertEqual([t.name for t in conn.call(info=pb.InfoRequest()).info.tables],
                         ["a", "b", "c"])

        # remove b
        self.write(f"table = a={d['a']}", f"table = c={d['c']}", "max-rows = 1M")
        self.hup()
        r = self.lookup(conn, "b", want_status=NOT_FOUND)
        self.assertIn("no table named 'b'", r.error)
        self.lookup(conn, "a", 1)
        self.assertIn("table b: removed", self.daemon.logtext())

        # re-point a at another directory
        self.write(f"table = a={d['a2']}", f"table = c={d['c']}", "max-rows = 1M")
        self.hup()
        self.lookup(conn, "a", 11)
        self.assertEqual(next(t.path for t in conn.call(info=pb.InfoRequest()).info.tables
                              if t.name == "a"), os.path.realpath(d["a2"]))

        # an invalid file: logged with its line, nothing changes
        self.write(f"table = a={d['a']}", "max-rows = banana", f"table = b={d['b']}")
        self.hup(done="config: not applied")
        self.assertIn(f"{self.conf}:3: bad value for max-rows: 'banana'", self.daemon.logtext())
        self.lookup(conn, "a", 11)
        self.lookup(conn, "c", 3)
        self.lookup(conn, "b", want_status=NOT_FOUND)

        # settings that need a restart: logged and ignored; the tables apply
        self.write(f"table = a={d['a']}", f"table = c={d['c']}", "max-rows = 2M",
                   "threads = 3", "listen = unix:" + os.path.join(self.dir, "other.sock"))
        self.hup()
        log = self.daemon.logtext()
        for what in ("max-rows", "threads", "listen"):
            self.assertIn(f"config: {what} changed; that needs a restart, ignored", log)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "other.sock")))
        self.lookup(conn, "a", 1)
        # max-rows stayed 1M: 1M + 1 slots are too many
        r = conn.lookup("a", np.zeros((1 << 20) + 1, dtype=np.uint64))
        self.assertEqual(r.status, pb.Status.Value("TOO_LARGE"), r.error)

        # the one connection served every step
        self.assertEqual(conn.call(ping=pb.PingRequest()).pong.protocol_version, 1)
        conn.close()
        self.assertEqual(self.daemon.stop(), 0)

    def test_requests_in_flight_on_a_removed_table(self):
        d = self.dirs
        self.write(f"table = a={d['a']}", f"table = c={d['c']}")
        self.daemon = Daemon({}, extra=["--config", self.conf])
        conn = Conn(self.daemon.addr)
        slots = np.arange(SLOTS, dtype=np.uint64)
        n = 300
        for _ in range(n):
            conn.send(pb.Request(id=conn.next_id, lookup=pb.LookupRequest(table="c",
                                                                         slots=slots)))
            conn.next_id += 1
        self.write(f"table = a={d['a']}")
        self.daemon.signal(signal.SIGHUP)
        statuses = []
        for i in range(n):
            r = conn.recv()
            self.assertEqual(r.id, i + 1)
            if r.status == OK:
                self.assertEqual(tag_of(r, slots), 3)
            else:
                self.assertEqual(r.status, NOT_FOUND, r.error)
                self.assertIn("no table named 'c'", r.error)
            statuses.append(r.status)
        # once not found, never found again
        if NOT_FOUND in statuses:
            self.assertNotIn(OK, statuses[statuses.index(NOT_FOUND):])
        deadline = time.monotonic() + 30
        while "table c: removed" not in self.daemon.logtext():
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        self.lookup(conn, "c", want_status=NOT_FOUND)
        self.lookup(conn, "a", 1)
        conn.close()
        self.assertEqual(self.daemon.stop(), 0)


class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="engram-checkconf-")
        self.table = os.path.join(self.dir, "t")
        import_rows(self.table, rows_of(1))
        self.conf = os.path.join(self.dir, "engramd.conf")
        self.sock = os.path.join(self.dir, "engramd.sock")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def check(self, *lines):
        with open(self.conf, "w") as f:
            f.write("".join(l + "\n" for l in lines))
        return subprocess.run([ENGRAMD, "--check-config", self.conf], capture_output=True,
                              text=True, timeout=60)

    def test_good_file(self):
        p = self.check("# a comment", f"table = t={self.table}",
                       f"table = later={self.dir}/not-yet", f"listen = unix:{self.sock}",
                       "http = 127.0.0.1:1", "threads = 2")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"{self.conf}: ok: 2 tables", p.stdout)
        self.assertIn(f"table t = {self.table}\n", p.stdout)
        self.assertIn("(does not exist yet)", p.stdout)
        self.assertIn(f"listen unix:{self.sock}", p.stdout)
        # it bound nothing: no socket file
        self.assertFalse(os.path.exists(self.sock))

    def test_errors_name_the_line(self):
        cases = [
            (("# first", f"table = t={self.table}", "max-rows = banana"),
             ":3: bad value for max-rows: 'banana'"),
            ((f"table = t={self.table}", "no-such-setting = 1"), ":2: unknown setting"),
            (("just words",), ":1: expected key = value"),
            ((f"table = t={self.table}", f"table = t={self.table}"), ":2: table name 't' given twice"),
            ((f"table = t={self.table}", "cache-bytes = nope=1M"),
             ":2: cache-bytes names no table: 'nope'"),
        ]
        for lines, want in cases:
            p = self.check(*lines)
            self.assertEqual(p.returncode, 1, (lines, p.stdout, p.stderr))
            self.assertIn(self.conf + want, p.stderr, lines)
        os.unlink(self.conf)
        p = subprocess.run([ENGRAMD, "--check-config", self.conf], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot read config", p.stderr)


if __name__ == "__main__":
    unittest.main()
