"""Client processes the soak starts itself: `engram lookup` / `engram tokens`
(libengram) checked row by row, and victims SIGKILLed mid-request.

The files `engram` writes do not say which generation their rows are from,
so an answer is right when it is exactly the rows of one generation the
table may have been served at while the command ran (History.candidates).
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np

import model
import workers
from client_support import ENGRAM
from loop import repeat

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 120


class CliClient:
    """Loops `engram lookup` and `engram tokens` over unix and TCP."""

    def __init__(self, addrs, history, workdir, rng):
        self.addrs, self.history, self.dir, self.rng = addrs, history, workdir, rng
        self.requests = self.rows = 0
        self.errors = []

    def run_cli(self, args):
        t0 = time.monotonic()
        p = subprocess.run([ENGRAM, *map(str, args), "--timeout", str(TIMEOUT * 1000)],
                           capture_output=True, text=True, timeout=TIMEOUT + 10)
        if p.returncode != 0:
            self.errors.append(f"engram {args[0]}: exit {p.returncode}: {p.stderr.strip()}")
            return None
        return t0, time.monotonic()

    def check(self, table, slots, rows, t0, t1):
        self.requests += 1
        self.rows += int(slots.size)
        cands = self.history.candidates(table.name, t0, t1)
        for gen in cands:
            if model.wrong_rows(table, gen, slots, rows) is None:
                return
        why = model.wrong_rows(table, cands[0], slots, rows) if cands else "no candidates"
        self.errors.append(f"engram CLI: WRONG ROWS: no generation of {cands} gives them; "
                           f"against the newest: {why}")

    def lookup(self, addr):
        table = model.TABLES[int(self.rng.integers(0, len(model.TABLES)))]
        slots = workers.pick_slots(self.rng, table, workers.batch_size(self.rng))
        sf, out = os.path.join(self.dir, "cli.slots.npy"), os.path.join(self.dir, "cli.rows.npy")
        np.save(sf, slots.astype(np.uint64))
        t = self.run_cli(["lookup", "--connect", addr, "--table", table.name,
                          "--slots-file", sf, "--out", out])
        if t:
            self.check(table, slots, np.load(out), *t)

    def tokens(self, addr):
        table = model.BY_NAME["tok"]
        ids, lens, ctx = workers.pick_tokens(self.rng, 2048)
        prefix = os.path.join(self.dir, "cli.tokens")
        t = self.run_cli(["tokens", "--connect", addr, "--tables", "tok",
                          "--tokens", ",".join(map(str, ids.tolist())),
                          "--seq-lens", ",".join(map(str, lens)),
                          "--context", ",".join(map(str, ctx)), "--out", prefix])
        if t:
            slots = table.token_slots(ids, lens, ctx).reshape(-1)
            self.check(table, slots, np.load(prefix + ".tok.npy"), *t)

    def one(self):
        addr = self.addrs[int(self.rng.integers(0, len(self.addrs)))]
        (self.tokens if self.rng.random() < 0.3 else self.lookup)(addr)

    def run(self, stop):
        repeat(stop, self.one, self.errors, "engram CLI")


class Killer:
    """Every 1-4 s starts a client and SIGKILLs it while it waits for rows:
    `engram lookup` of a million rows, or a Python client with four large
    lookups in flight (socket or shared buffer)."""

    def __init__(self, unix, workdir, rng):
        self.unix, self.dir, self.rng = unix, workdir, rng
        self.kills = {}
        self.finished_first = 0
        self.errors = []
        # 16 requests of 65536 rows, 4 in flight: a few hundred ms of answers
        self.slots = os.path.join(workdir, "victim.slots.npy")
        np.save(self.slots, rng.integers(0, model.BY_NAME["pc"].slots, 1 << 20, dtype=np.uint64))

    def victim(self, kind):
        if kind == "cli":
            p = subprocess.Popen([ENGRAM, "lookup", "--connect", self.unix, "--table", "pc",
                                  "--slots-file", self.slots, "--out",
                                  os.path.join(self.dir, "victim.rows.npy")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(float(self.rng.uniform(0.02, 0.3)))
            return p
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "workers.py"), kind,
                              self.unix, str(int(self.rng.integers(1 << 30))), "-"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline()  # "ready": its first requests are out
        if line.strip() != "ready":
            p.kill()
            p.wait()
            self.errors.append(f"victim {kind} did not start: {line!r} {p.stderr.read()}")
            return None
        time.sleep(float(self.rng.uniform(0.01, 1.0)))
        return p

    def one(self):
        kind = ("cli", "victim", "victim-shm")[int(self.rng.integers(0, 3))]
        p = self.victim(kind)
        if p is None:
            return
        if p.poll() is not None:
            self.finished_first += 1
            if p.returncode != 0:
                err = p.stderr.read() if p.stderr else ""
                self.errors.append(f"victim {kind} failed by itself: exit {p.returncode} {err}")
        else:
            p.send_signal(signal.SIGKILL)
            self.kills[kind] = self.kills.get(kind, 0) + 1
        p.wait()
        for f in (p.stdout, p.stderr):
            if f:
                f.close()

    def run(self, stop):
        repeat(stop, self.one, self.errors, "killer", lambda: float(self.rng.uniform(1, 4)))
