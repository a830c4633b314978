"""engramd as systemd runs it, without systemd: started by
systemd-socket-activate (Debian's systemd package) on a socket it passes
(LISTEN_FDS), with a NOTIFY_SOCKET this test listens on. Checks every
notification engramd owes a Type=notify service: EXTEND_TIMEOUT_USEC while a
slow start loads, READY=1 with STATUS=, WATCHDOG=1 pings that stop while a
worker loop is wedged (the fault hook of engramd-faults) and come back,
RELOADING=1 with MONOTONIC_USEC then READY=1 on SIGHUP, STOPPING=1 on
SIGTERM. /livez, /readyz and /healthz follow the wedge and the drain. And
the journal's priority prefixes, when JOURNAL_STREAM names stderr."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import numpy as np

from daemon_support import ENGRAMD, Conn, free_port, import_rows

FAULTS = os.environ.get("ENGRAMD_FAULTS", os.path.join(os.path.dirname(ENGRAMD),
                                                        "engramd-faults"))
ACTIVATE = shutil.which("systemd-socket-activate")
WATCHDOG_S = 2.0      # WatchdogSec: pings every 0.67 s, a loop is hung after 1 s
WEDGE_S = 4.0         # how long the fault hook blocks worker 1
SLOW_START_S = 2.5    # the fault hook's delay before the tables load


def http(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Notifications(threading.Thread):
    """A NOTIFY_SOCKET: every datagram with its arrival (time.monotonic)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.msgs = []  # (time, {key: value})
        self.lock = threading.Lock()
        self.done = False
        self.start()

    def run(self):
        while not self.done:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            with self.lock:
                self.msgs.append((time.monotonic(), fields))

    def all(self, key=None, since=0.0):
        with self.lock:
            return [(t, m) for t, m in self.msgs if t >= since and (key is None or key in m)]

    def wait(self, key, since=0.0, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.all(key, since)
            if got:
                return got[0]
            time.sleep(0.02)
        raise AssertionError(f"no {key} notification; got {self.all(since=since)}")

    def close(self):
        self.done = True
        self.join()
        self.sock.close()


@unittest.skipIf(ACTIVATE is None, "systemd-socket-activate missing (scripts/deps.sh installs systemd)")
class SocketActivation(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="engram-systemd-")
        self.table = os.path.join(self.dir, "t")
        rows = np.arange(4096 * 16, dtype=np.uint64).astype(np.uint8).reshape(4096, 16)
        import_rows(self.table, rows)
        self.rows = rows
        self.sock = os.path.join(self.dir, "engramd.sock")
        self.notify = Notifications(os.path.join(self.dir, "notify"))
        self.port = free_port()
        self.log_path = os.path.join(self.dir, "engramd.log")
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.notify.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def start(self):
        env = {"NOTIFY_SOCKET": os.path.join(self.dir, "notify"),
               "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6)),
               "ENGRAMD_FAULT_WEDGE": f"1:{int(WEDGE_S * 1000)}",
               "ENGRAMD_FAULT_SLOW_START": str(int(SLOW_START_S * 1000))}
        args = [ACTIVATE, "-l", self.sock]
        for k, v in env.items():
            args += ["-E", f"{k}={v}"]
        # no --listen: the only socket is the one systemd-socket-activate passes
        args += [FAULTS, "--table", f"t={self.table}", "--threads", "2",
                 "--http", f"127.0.0.1:{self.port}"]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.sock):
            self.assertIsNone(self.proc.poll(), self.log())
            self.assertLess(time.monotonic(), deadline, "no socket from systemd-socket-activate")
            time.sleep(0.02)

    def test_socket_activation_and_notifications(self):
        self.start()
        t_conn = time.monotonic()
        # the first connection makes systemd-socket-activate exec engramd,
        # which then serves it on the passed socket
        conn = Conn("unix:" + self.sock, timeout=60)
        slots = [0, 7, 4095]
        r = conn.lookup("t", slots)
        self.assertEqual(r.status, 0, r.error)
        self.assertEqual(r.blocks[0].data, self.rows[slots].tobytes())
        self.assertIn("listening on a systemd socket", self.log())

        # a slow start: more time asked for every second, with its progress
        t_ready, ready = self.notify.wait("READY")
        self.assertEqual(ready["READY"], "1")
        self.assertTrue(ready.get("STATUS", "").startswith("serving"), ready)
        extends = [(t, m) for t, m in self.notify.all("EXTEND_TIMEOUT_USEC") if t < t_ready]
        self.assertGreaterEqual(len(extends), 2, self.notify.all())
        for _, m in extends:
            self.assertGreater(int(m["EXTEND_TIMEOUT_USEC"]), 1000000)
            self.assertTrue(m["STATUS"].startswith("loading tables"), m)
        self.assertGreater(t_ready - t_conn, SLOW_START_S - 0.5)

        # the watchdog, while every loop answers
        self.notify.wait("WATCHDOG", since=t_ready + 2.0)
        pings = self.notify.all("WATCHDOG", since=t_ready)
        self.assertGreaterEqual(len(pings), 3, pings)
        gaps = [b[0] - a[0] for a, b in zip(pings, pings[1:])]
        self.assertLess(max(gaps), WATCHDOG_S / 2, gaps)
        for path in ("/livez", "/readyz", "/healthz"):
            code, body = http(self.port, path)
            self.assertEqual(code, 200, (path, body))

        # worker 1 wedged: /livez and /healthz name it, the pings stop
        t_wedge = time.monotonic()
        self.proc.send_signal(signal.SIGUSR1)
        deadline = t_wedge + WEDGE_S - 0.5
        while http(self.port, "/livez")[0] == 200:
            self.assertLess(time.monotonic(), deadline, "/livez never saw the wedge")
            time.sleep(0.1)
        code, body = http(self.port, "/livez")
        self.assertEqual(code, 503)
        self.assertIn("worker 1", body)
        code, body = http(self.port, "/healthz")
        self.assertEqual(code, 503)
        self.assertIn("worker 1", body)
        self.assertEqual(http(self.port, "/readyz")[0], 200)
        # after it: the pings come back, and so does /livez
        t_back, _ = self.notify.wait("WATCHDOG", since=t_wedge + WEDGE_S, timeout=WEDGE_S + 10)
        silent = self.notify.all("WATCHDOG", since=t_wedge + 1.8)
        silent = [t for t, _ in silent if t < t_wedge + WEDGE_S]
        self.assertEqual(silent, [], "pinged while worker 1 was wedged")
        self.assertLess(t_back - (t_wedge + WEDGE_S), 3.0)
        deadline = time.monotonic() + 10
        while http(self.port, "/livez")[0] != 200:
            self.assertLess(time.monotonic(), deadline, "/livez did not recover")
            time.sleep(0.1)
        self.assertIn("worker 1 has not answered", self.log())

        # SIGHUP: RELOADING=1 with the monotonic time, then READY=1 again
        t_hup = time.monotonic()
        self.proc.send_signal(signal.SIGHUP)
        t_rel, rel = self.notify.wait("RELOADING", since=t_hup)
        self.assertEqual(rel["RELOADING"], "1")
        usec = int(rel["MONOTONIC_USEC"])  # CLOCK_MONOTONIC, as time.monotonic()
        self.assertLess(abs(usec / 1e6 - t_rel), 5.0, (usec, t_rel))
        self.assertTrue(rel["STATUS"].startswith("reloading"), rel)
        t_again, again = self.notify.wait("READY", since=t_rel)
        self.assertEqual(again["READY"], "1")
        # the same connection still serves
        self.assertEqual(conn.lookup("t", slots).status, 0)

        # SIGTERM: STOPPING=1, exit 0
        conn.close()
        t_term = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        _, stop = self.notify.wait("STOPPING", since=t_term)
        self.assertEqual(stop["STOPPING"], "1")
        self.assertEqual(self.proc.wait(timeout=60), 0, self.log())


class JournalPriorities(unittest.TestCase):
    """<N> prefixes only when JOURNAL_STREAM names stderr's device:inode."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="engram-journal-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_engramd(self, journal, *args):
        """engramd's stderr lines; journal: 'self' (stderr's dev:ino),
        'other' (another file's) or None (unset)."""
        err = os.path.join(self.dir, "stderr")
        with open(err, "w") as f:
            env = dict(os.environ)
            env.pop("JOURNAL_STREAM", None)
            if journal:
                st = os.fstat(f.fileno()) if journal == "self" else os.stat(self.dir)
                env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
            p = subprocess.run([ENGRAMD, *args], stderr=f, stdout=subprocess.DEVNULL, env=env,
                               timeout=60)
        with open(err) as f:
            return p.returncode, f.read().splitlines()

    def test_prefixes(self):
        table = os.path.join(self.dir, "t")
        import_rows(table, np.zeros((64, 16), dtype=np.uint8))
        missing = os.path.join(self.dir, "missing")
        # info lines from a table that opens, then an error from one that does not
        args = ("--listen", "unix:" + os.path.join(self.dir, "s"), "--log-level", "debug",
                "--table", f"t={table}", "--table", f"m={missing}")
        rc, lines = self.run_engramd("self", *args)
        self.assertEqual(rc, 1)
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^<[3467]>engramd\[\d+\]: (error|warn|info|debug): ")
        prio = {"error": "3", "warn": "4", "info": "6", "debug": "7"}
        for line in lines:
            level = line.split(": ")[1]
            self.assertEqual(line[1], prio[level], line)
        self.assertTrue(any(l.startswith("<6>") for l in lines), lines)
        self.assertTrue(any(l.startswith("<3>") and "cannot resolve" in l for l in lines), lines)
        for journal in ("other", None):
            rc, lines = self.run_engramd(journal, *args)
            self.assertEqual(rc, 1)
            self.assertTrue(lines)
            for line in lines:
                self.assertRegex(line, r"^engramd\[\d+\]: ", (journal, line))


if __name__ == "__main__":
    unittest.main()
