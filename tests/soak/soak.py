"""engramd soak: one daemon, real sockets, real LMDB tables, everything at
once for SOAK_SECONDS (default 600), every row of every answer checked.

    SOAK_SECONDS=600 /usr/bin/python3 tests/soak/soak.py      (make soak)

Clients: Python lookups over unix (two threads) and TCP, shared-buffer
lookups and token lookups, token lookups over the hashed table, `engram
lookup` / `engram tokens` (libengram) over both. Meanwhile: patches in place
and publishes of new versions, reloads by SIGHUP, Reload requests and
`engram reload`, junk connections, and a client SIGKILLed mid-request every
few seconds. Rows are checked against model.py (a formula, and the NumPy
hashing reference for tokens).

The daemon's RSS, fds and threads are sampled at two quiet points (after a
warm-up, and at the end), each right after a fresh version of every table
was published and every row read once, and must be flat (probe.py says how
flat and why). Exit status 0 when nothing went wrong; every error is listed.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
_BUILD = os.path.join(REPO, os.environ.get("BUILD", "build"))
_PATHS = [os.path.join(_BUILD, "gen", "python"), os.path.join(REPO, "client", "python"),
          os.path.join(REPO, "tests", "python"), HERE]
sys.path[:0] = _PATHS
os.environ["PYTHONPATH"] = ":".join(_PATHS + [p for p in [os.environ.get("PYTHONPATH")] if p])
os.environ.setdefault("ENGRAM", os.path.join(_BUILD, "engram"))
os.environ.setdefault("ENGRAMD", os.path.join(_BUILD, "engramd"))

import numpy as np  # noqa: E402

import engram_client as ec  # noqa: E402
import model  # noqa: E402
import probe  # noqa: E402
import report  # noqa: E402
from clients import CliClient, Killer  # noqa: E402
from client_support import Daemon, free_tcp_port  # noqa: E402
from junk import Junk  # noqa: E402
from writer import History, Writer  # noqa: E402

# Python client processes: (kind, address key, threads)
WORKERS = [("lookup", "unix", 2), ("lookup", "tcp", 1), ("shm", "unix", 1),
           ("tokens", "unix", 1)]
CACHE = "rc=4M"


class Soak:
    def __init__(self, seconds, seed):
        self.seconds, self.seed = seconds, seed
        self.rng = np.random.default_rng(seed)
        self.dir = tempfile.mkdtemp(prefix="engram-soak-")
        self.t0 = time.monotonic()
        self.history = History()
        os.makedirs(os.path.join(self.dir, "tables"))
        self.writer = Writer(os.path.join(self.dir, "tables"), self.history, self.child_rng())
        self.errors = []
        self.worker_totals = {}
        self.checked = dict(requests=0, rows=0)

    def child_rng(self):
        return np.random.default_rng(int(self.rng.integers(1 << 62)))

    def say(self, text):
        print(f"[{time.monotonic() - self.t0:6.1f} s] {text}", flush=True)

    def start(self):
        links = {t.name: self.writer.create(t) for t in model.TABLES}
        self.http = f"127.0.0.1:{free_tcp_port()}"
        self.daemon = Daemon(links, extra=["--http", self.http, "--cache-bytes", CACHE],
                             workdir=os.path.join(self.dir, "run"))
        for t in model.TABLES:
            self.history.served(t.name, model.SPAN)
        self.writer.daemon = self.daemon
        d = self.daemon
        addrs = [d.unix, d.tcp]
        self.cli = CliClient(addrs, self.history, self.dir, self.child_rng())
        self.killer = Killer(d.unix, self.dir, self.child_rng())
        self.junk = [Junk(addrs, self.child_rng()) for _ in range(3)]
        self.say(f"engramd pid {d.proc.pid} on {d.unix}, {d.tcp}, http {self.http}, "
                 f"--cache-bytes {CACHE}")

    # ---- one stretch of load ------------------------------------------------------

    def phase(self, name, seconds, samples=0):
        stop = threading.Event()
        threads = [threading.Thread(target=self.writer.run, args=(stop,)),
                   threading.Thread(target=self.cli.run, args=(stop,)),
                   threading.Thread(target=self.killer.run, args=(stop,)),
                   threading.Thread(target=self.junk[0].run, args=(stop,)),
                   threading.Thread(target=self.junk[1].run, args=(stop, ("slowloris",))),
                   threading.Thread(target=self.junk[2].run, args=(stop, ("never_reads",)))]
        procs = self.spawn_workers(name)
        try:
            for t in threads:
                t.start()
            end, next_sample = time.monotonic() + seconds, time.monotonic()
            step = seconds / samples if samples else None
            while time.monotonic() < end and self.daemon.proc.poll() is None:
                if step and time.monotonic() >= next_sample:
                    self.say(f"{name}, under load: "
                             f"{probe.show(probe.proc(self.daemon.proc.pid))}")
                    next_sample += step
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        finally:
            stop.set()
            self.collect(procs)
            for t in threads:
                if t.ident is not None:
                    t.join()
        if self.daemon.proc.poll() is not None:
            self.errors.append(f"engramd died during {name}: exit {self.daemon.proc.returncode}")
        self.say(f"{name} done")

    def spawn_workers(self, name):
        procs = []
        for i, (kind, where, nthreads) in enumerate(WORKERS):
            addr = self.daemon.unix if where == "unix" else self.daemon.tcp
            out = os.path.join(self.dir, f"{name}.{i}.json")
            seed = int(self.rng.integers(1 << 30))
            p = subprocess.Popen([sys.executable, os.path.join(HERE, "workers.py"), kind, addr,
                                  str(seed), out, str(nthreads)])
            procs.append((f"{kind}-{where}", p, out))
        return procs

    def collect(self, procs):
        for _, p, _ in procs:
            p.send_signal(signal.SIGTERM)
        for name, p, out in procs:
            try:
                rc = p.wait(timeout=300)
            except Exception:  # noqa: BLE001 - a hung client is a finding
                p.kill()
                rc = p.wait()
                self.errors.append(f"client {name} did not stop within 300 s of SIGTERM")
            try:
                with open(out) as f:
                    res = json.load(f)
            except OSError:
                self.errors.append(f"client {name} exited {rc} without a result")
                continue
            tot = self.worker_totals.setdefault(name, dict(requests=0, rows=0, refused=0))
            for k in tot:
                tot[k] += res[k]
            self.errors += res["errors"]

    # ---- the quiet points --------------------------------------------------------

    def quiet_point(self, name):
        """Fresh versions of every table, every row read once and checked, no
        client connected: then the daemon's figures."""
        for t in model.TABLES:
            self.writer.publish(t)
        with ec.Client(self.daemon.unix, timeout=120) as c:
            for t in model.TABLES:
                want = self.history.latest(t.name)
                for first in range(0, t.slots, 65536):
                    slots = np.arange(first, min(t.slots, first + 65536))
                    f = c.lookup_async(t.name, slots)
                    got = f.result()
                    gen = f.generations[t.name]
                    bad = model.wrong_rows(t, gen, slots, got)
                    if gen != want or bad:
                        self.errors.append(f"{name}: {t.name} at {gen} (want {want}): {bad}")
                    self.checked["requests"] += 1
                    self.checked["rows"] += int(slots.size)
        deadline = time.monotonic() + 30
        while True:
            m = probe.metrics(self.http)
            if m["engramd_connections"] == 0 and m["engramd_output_bytes"] == 0:
                break
            if time.monotonic() > deadline:
                self.errors.append(f"{name}: after 30 s still {m['engramd_connections']:.0f} "
                                   f"connections, {m['engramd_output_bytes']:.0f} output bytes")
                break
            time.sleep(0.1)
        time.sleep(0.5)
        m = probe.metrics(self.http)  # the malloc figures, now quiet
        pid = self.daemon.proc.pid
        sample = probe.proc(pid)
        sample["sanitizer"] = probe.sanitizer(pid)
        heap, why = (None, None) if sample["sanitizer"] else probe.heap(m)
        if heap:
            sample["in_use"], sample["malloc_system"] = heap["in_use"], heap["system"]
            self.say(f"{name} (quiet): {probe.show(sample)}; malloc: "
                     f"{heap['in_use'] / probe.MiB:.1f} MiB in use of "
                     f"{heap['system'] / probe.MiB:.1f} MiB")
        else:
            if why:
                self.errors.append(f"{name}: the daemon's heap was not measured: {why}")
            self.say(f"{name} (quiet): {probe.show(sample)}")
        sample["metrics"] = m
        return sample

    def run(self):
        warm = max(3.0, min(60.0, self.seconds / 10))
        self.say(f"engramd soak: {self.seconds:.0f} s after a {warm:.0f} s warm-up, "
                 f"seed {self.seed}, {os.cpu_count()} cores, in {self.dir}")
        for t in model.TABLES:
            self.say(report.describe(t))
        start = end = None
        try:
            self.start()
            self.phase("warm-up", warm)
            start = self.quiet_point("start")
            self.phase("soak", self.seconds, samples=10)
            end = self.quiet_point("end")
        except Exception:  # noqa: BLE001 - e.g. the daemon died: reported with the rest
            self.errors.append("soak driver: " + traceback.format_exc())
        try:
            if getattr(self, "daemon", None) is None:
                print("".join(self.errors))
                return 1
            alive = self.daemon.proc is not None and self.daemon.proc.poll() is None
            rc = self.daemon.stop()
            if rc != 0:
                self.errors.append(f"engramd exited {rc} " +
                                   ("on SIGTERM (want 0)" if alive else "by itself (it died)"))
            return report.final(self, start, end)
        finally:
            if getattr(self, "daemon", None) is not None:
                self.daemon.cleanup()
            shutil.rmtree(self.dir, ignore_errors=True)


def main():
    seconds = float(os.environ.get("SOAK_SECONDS", "600"))
    seed = int(os.environ.get("SOAK_SEED", str(int(time.time()) % 100000)))
    return Soak(seconds, seed).run()


if __name__ == "__main__":
    sys.exit(main())
