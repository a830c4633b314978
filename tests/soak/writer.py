"""The soak's table writer: patches in place (`engram table update`),
publishes of freshly built versions (`engram table publish`) and reloads
(SIGHUP, Reload requests from Python and from `engram reload`), and the
record of which generations each table had on disk and was served at, for
answers that do not name their generation (the `engram` command's files).
"""
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import numpy as np

import engram_client as ec
import model
from client_support import ENGRAM, engram
from loop import repeat

TIMEOUT = 120


class History:
    """Per table: every generation made on disk (in order) and when each
    served generation was last confirmed, so the generations an answer
    between t0 and t1 may come from are known."""

    def __init__(self):
        self.lock = threading.Lock()
        self.disk = {}       # name -> [(time made, generation)]
        self.confirmed = {}  # name -> [(time confirmed, generation served)]

    def made(self, name, gen):
        with self.lock:
            self.disk.setdefault(name, []).append((time.monotonic(), gen))

    def served(self, name, gen):
        with self.lock:
            self.confirmed.setdefault(name, []).append((time.monotonic(), gen))

    def latest(self, name):
        with self.lock:
            return self.disk[name][-1][1]

    def candidates(self, name, t0, t1):
        """Generations served at some time in [t0, t1], newest first: from
        the last one confirmed before t0 to the last one made before t1."""
        with self.lock:
            low = max((g for t, g in self.confirmed[name] if t <= t0), default=0)
            return [g for t, g in reversed(self.disk[name]) if low <= g and t <= t1]


class Writer:
    """Changes the tables under root/NAME (a symlink to root/NAME.vK)."""

    def __init__(self, root, history, rng):
        self.root, self.history, self.rng = root, history, rng
        self.daemon = None
        self.counts = dict(patches=0, publishes=0, sighups=0, reload_requests=0,
                           cli_reloads=0, deferred_reloads=0)
        self.errors = []

    def link(self, table):
        return os.path.join(self.root, table.name)

    def create(self, table):
        """Version 1 of table, published at its link; returns the link."""
        self.publish(table, reload=False)
        return self.link(table)

    def _import(self, table, gen, dir_):
        src = dir_ + ".src.npy"
        np.save(src, table.base(gen))
        args = ["table", "import", dir_, "--from", src, "--name", table.name,
                "--generation", gen, "--chunk-slots", table.chunk_slots]
        if table.spec is not None:
            spec = dir_ + ".spec.json"
            model.write_spec(spec, table)
            args += ["--hash", spec]
        engram(*args)
        os.unlink(src)
        if table.spec is not None:
            os.unlink(spec)

    def publish(self, table, reload=True):
        gen = (self.history.latest(table.name) // model.SPAN + 1) * model.SPAN \
            if table.name in self.history.disk else model.SPAN
        dir_ = os.path.join(self.root, f"{table.name}.v{gen // model.SPAN}")
        self._import(table, gen, dir_)
        engram("table", "publish", self.link(table), dir_)
        self.history.made(table.name, gen)
        self.counts["publishes"] += reload
        if reload:
            self.reload_all()
        # versions older than the previous one are served by no one now
        for old in range(1, gen // model.SPAN - 1):
            shutil.rmtree(os.path.join(self.root, f"{table.name}.v{old}"), ignore_errors=True)

    def patch(self, table):
        gen = self.history.latest(table.name) + 1
        slots, rows = table.patch(gen)
        base = os.path.join(self.root, f"{table.name}.patch")
        np.save(base + ".slots.npy", slots)
        np.save(base + ".rows.npy", rows)
        out = engram("table", "update", self.link(table), "--slots", base + ".slots.npy",
                     "--rows", base + ".rows.npy")
        m = re.search(r"generation (\d+)", out)
        if not m or int(m.group(1)) != gen:
            self.errors.append(f"update of {table.name}: want generation {gen}, said: {out!r}")
        self.history.made(table.name, gen)
        self.counts["patches"] += 1

    # ---- reloads -------------------------------------------------------------

    def reload_all(self):
        """SIGHUP or a Reload request of every table, confirmed."""
        if self.rng.random() < 0.5:
            self.sighup()
        else:
            self.request(None)

    def sighup(self):
        self.daemon.proc.send_signal(signal.SIGHUP)
        self.counts["sighups"] += 1
        want = {t.name: self.history.latest(t.name) for t in model.TABLES}
        deadline = time.monotonic() + TIMEOUT
        with ec.Client(self.daemon.unix, timeout=TIMEOUT) as c:
            while True:  # SIGHUP is asynchronous: wait until it took effect
                got = {t.name: t.generation for t in c.info()}
                if all(got.get(n) == g for n, g in want.items()):
                    break
                if time.monotonic() > deadline:
                    self.errors.append(f"SIGHUP: still serving {got}, want {want}")
                    return
                time.sleep(0.01)
        for n, g in want.items():
            self.history.served(n, g)

    def request(self, table):
        """A Reload request of table (None: all) from Python or `engram reload`."""
        names = [table.name] if table else [t.name for t in model.TABLES]
        want = {n: self.history.latest(n) for n in names}
        if table and self.rng.random() < 0.3:
            p = subprocess.run([ENGRAM, "reload", "--connect", self.daemon.unix, "--table",
                                table.name], capture_output=True, text=True, timeout=TIMEOUT)
            self.counts["cli_reloads"] += 1
            ok = p.returncode == 0 and f"-> {want[table.name]}" in p.stdout
            if not ok:
                self.errors.append(f"engram reload {table.name}: want generation "
                                   f"{want[table.name]}: {p.stdout.strip()} {p.stderr.strip()}")
                return
        else:
            with ec.Client(self.daemon.unix, timeout=TIMEOUT) as c:
                res = c.reload(table.name if table else None)
            self.counts["reload_requests"] += 1
            got = {r.table: r.new_generation for r in res}
            if any(got.get(n) != g for n, g in want.items()):
                self.errors.append(f"reload: answered {res}, want generations {want}")
                return
        for n, g in want.items():
            self.history.served(n, g)

    # ---- the loop ----------------------------------------------------------------

    def step(self):
        table = model.TABLES[int(self.rng.integers(0, len(model.TABLES)))]
        if self.rng.random() < 0.12:
            self.publish(table)
            return
        self.patch(table)
        r = self.rng.random()
        if r < 0.35:
            self.request(table)
        elif r < 0.55:
            self.request(None)
        elif r < 0.8:
            self.sighup()
        else:
            self.counts["deferred_reloads"] += 1  # served later, by some other reload

    def run(self, stop):
        repeat(stop, self.step, self.errors, "writer", lambda: float(self.rng.uniform(0.1, 0.8)))
