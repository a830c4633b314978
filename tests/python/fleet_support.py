"""Shared by the fleet and rollout tests: "hosts" (a directory each, with
the table's versions, and an engramd on 127.0.0.1), rows that name their
generation and slot, readers that check every row against that formula,
and HAProxy running examples/haproxy/haproxy.cfg itself.
"""
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import numpy as np

from client_support import Daemon, engram, free_tcp_port
from daemon_support import import_rows
from engram_client import EngramError

SLOTS = 8192
CHUNK = 1024
PHASES = 6


def versioned_rows(generation, slots=SLOTS):
    """Row s of generation g: [g u64][s u64], little-endian."""
    rows = np.empty((slots, 2), dtype="<u8")
    rows[:, 0] = generation
    rows[:, 1] = np.arange(slots, dtype="<u8")
    return rows.view(np.uint8).reshape(slots, 16)


def make_version(path, generation, flip_row=None, width=16):
    """A table version of versioned_rows(generation) (zero-padded to width
    bytes a row); with flip_row, one byte of that row flipped in data.mdb (a
    checksum catches it, the page walk does not)."""
    rows = np.zeros((SLOTS, width), np.uint8)
    rows[:, :16] = versioned_rows(generation)
    import_rows(path, rows, generation=generation, chunk_slots=CHUNK)
    if flip_row is not None:
        data = os.path.join(path, "data.mdb")
        with open(data, "r+b") as f:
            blob = f.read()
            at = blob.find(rows[flip_row].tobytes())
            assert at > 0, "row not found in data.mdb"
            f.seek(at + 12)
            f.write(bytes([blob[at + 12] ^ 0xFF]))
    return path


class Host:
    """One replica: dir/live -> dir/v<gen>, versions shipped to dir/versions,
    engramd on unix and TCP with /healthz on its own port."""

    def __init__(self, root, name, generation=1, drain_delay=1, width=16):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.link = os.path.join(self.dir, "live")
        self.staging = os.path.join(self.dir, "versions")
        self.first = make_version(os.path.join(self.dir, f"v{generation}"), generation,
                                  width=width)
        engram("table", "publish", self.link, self.first)
        self.http = free_tcp_port()
        self.daemon = Daemon({"t": self.link},
                             extra=["--http", f"127.0.0.1:{self.http}",
                                    "--drain-delay", str(drain_delay)],
                             workdir=os.path.join(self.dir, "run"))
        self.tcp, self.unix = self.daemon.tcp, self.daemon.unix
        self.port = int(self.tcp.rsplit(":", 1)[1])

    def kill(self):
        self.daemon.proc.send_signal(signal.SIGKILL)
        self.daemon.proc.wait()
        self.daemon.proc = None

    def term(self):
        self.daemon.proc.send_signal(signal.SIGTERM)

    def wait(self):
        """Waits for the exit (no further signal: a second SIGTERM cuts the
        drain short); its status."""
        rc = self.daemon.proc.wait(timeout=60)
        self.daemon.proc = None
        return rc

    def start(self):
        self.daemon.start()

    def alive(self):
        return self.daemon.proc is not None and self.daemon.proc.poll() is None

    def accepts(self):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def healthz(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/healthz",
                                        timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def generation(self):
        out = engram("info", "--connect", self.unix)
        for line in out.splitlines():
            if line.startswith("t: "):
                return int(line.split("generation=")[1].split()[0])
        raise AssertionError("no table t in:\n" + out)

    def cleanup(self):
        self.daemon.cleanup()


class Reader(threading.Thread):
    """Reads random slots of t through make_client() until stopped, every
    row checked against versioned_rows; counts answers per phase, wrong
    rows, generations that went back, and failures before the deadline."""

    def __init__(self, make_client, timeout, seed, phase, pipelined=False):
        super().__init__(daemon=True)
        self.make_client, self.timeout, self.phase = make_client, timeout, phase
        self.pipelined = pipelined
        self.rng = np.random.default_rng(seed)
        self.stop = threading.Event()
        self.ok = [0] * PHASES
        self.wrong = self.backwards = self.failures = 0
        self.early = []      # failures before the deadline
        self.generations = []
        self.client = None

    def _check(self, fut, slots, phase):
        t0 = time.monotonic()  # result() has the whole timeout from here
        try:
            rows = fut.result()
        except EngramError as e:
            self.failures += 1
            if time.monotonic() - t0 < self.timeout - 0.001:
                self.early.append(f"{type(e).__name__}: {e} after "
                                  f"{time.monotonic() - t0:.3f} s")
            return
        gen = fut.generations["t"]
        words = np.asarray(rows).view("<u8").reshape(-1, 2)
        self.wrong += int(((words[:, 0] != gen) | (words[:, 1] != slots)).sum())
        self.wrong += abs(len(words) - len(slots))
        if self.generations and gen < max(self.generations):
            self.backwards += 1
        self.generations.append(gen)
        self.ok[phase] += 1

    def run(self):
        self.client = c = self.make_client()
        try:
            while not self.stop.is_set():
                phase = self.phase[0]
                batch = []
                for _ in range(2 if self.pipelined else 1):
                    slots = self.rng.integers(0, SLOTS, 256).astype(np.uint64)
                    try:
                        batch.append((c.lookup_async("t", slots), slots))
                    except EngramError as e:  # sending never waits for a replica
                        self.failures += 1
                        self.early.append(f"send: {e}")
                for fut, slots in batch:
                    self._check(fut, slots, phase)
        finally:
            c.close()

    def wait_answers(self, phase, n, seconds=15):
        deadline = time.monotonic() + seconds
        while self.ok[phase] < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.ok[phase]} answers in phase {phase} after "
                                     f"{seconds} s; early failures: {self.early[:3]}")
            time.sleep(0.01)


def haproxy_bin():
    if os.environ.get("HAPROXY"):
        return os.environ["HAPROXY"] if os.access(os.environ["HAPROXY"], os.X_OK) else None
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)),
        None)


class HAProxy:
    """haproxy -f examples/haproxy/haproxy.cfg in front of hosts[0..1]."""

    def __init__(self, root, hosts):
        self.port = free_tcp_port()
        self.addr = f"tcp:127.0.0.1:{self.port}"
        self.stats = os.path.join(root, "haproxy.sock")
        env = dict(os.environ, ENGRAM_LB_BIND=f"127.0.0.1:{self.port}",
                   ENGRAM_LB_STATS=self.stats)
        for i, h in enumerate(hosts[:2], 1):
            env[f"ENGRAM_R{i}"] = h.tcp[4:]
            env[f"ENGRAM_R{i}_HTTP_PORT"] = str(h.http)
        self.log = open(os.path.join(root, "haproxy.log"), "w")
        self.proc = subprocess.Popen([haproxy_bin(), "-f", "examples/haproxy/haproxy.cfg", "-db"],
                                     env=env, stdout=self.log, stderr=self.log)
        self.wait_state("r1", "UP")
        self.wait_state("r2", "UP")

    def status(self, server):
        """The state HAProxy reports for server ('UP', 'DOWN', 'UP 1/2', ...)."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(self.stats)
                s.sendall(b"show stat\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        except OSError:
            return None
        for line in data.decode().splitlines():
            f = line.split(",")
            if f[:2] == ["engramd", server]:
                return f[17]
        return None

    def wait_state(self, server, want, seconds=10):
        deadline = time.monotonic() + seconds
        while self.status(server) != want:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"haproxy: {server} is {self.status(server)!r}, "
                                     f"not {want} (log {self.log.name})")
            time.sleep(0.01)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()
