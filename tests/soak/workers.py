"""A soak client process: Python clients (engram_client) asking engramd for
rows and checking every row of every answer against model.py.

    workers.py KIND ADDR SEED RESULT.json [THREADS]

KIND: lookup (slot lookups, some pipelined), shm (lookups and token lookups
into a shared buffer), tokens (token lookups over the hashed table), victim
and victim-shm (pipelined large requests, forever: the soak SIGKILLs them;
they print "ready" once the first request is out). Runs until SIGTERM, then
writes RESULT.json: counts and every error seen. About one request in a
hundred is bad on purpose and must be refused with the status it deserves.
"""
import json
import os
import signal
import sys
import threading
import traceback

import numpy as np

import engram_client as ec
import model

STOP = threading.Event()
PARENT = os.getppid()  # a client outlives no soak: it stops when its parent is gone
TIMEOUT = 120
SHM_BYTES = 16 << 20
HOT = 20000  # slots of the Zipf-like hot set (about the row cache's size)


def batch_size(rng, top=65536):
    r = rng.random()
    if r < 0.05:
        return 1
    if r < 0.10:
        return top
    return min(top, int(2 ** rng.uniform(0, np.log2(top))))


def pick_slots(rng, table, n):
    """n slots: uniform, hot or a run. rc's cold rows are each a disk read
    (the row cache reads with O_DIRECT): few of them at a time there."""
    r = rng.random()
    if r < 0.5 and (table.name != "rc" or n <= 2048):
        return rng.integers(0, table.slots, n, dtype=np.int64)
    if r < 0.8:  # hot rows, hit again and again (the row cache keeps them)
        return (rng.zipf(1.3, n) % HOT * 7919) % table.slots
    start = int(rng.integers(0, table.slots - n + 1))
    return np.arange(start, start + n, dtype=np.int64)


def pick_tokens(rng, top=8192):
    """(ids, seq_lens, context) of a random token request."""
    total = batch_size(rng, top)
    ids = rng.integers(0, model.VOCAB, total, dtype=np.int64)
    neg = rng.random(total) < 0.001  # negative ids pass the map unchanged
    ids[neg] = -rng.integers(1, 6, int(neg.sum()))
    cuts = np.sort(rng.integers(0, total + 1, int(rng.integers(0, 8))))
    lens = np.diff(np.concatenate(([0], cuts, [total])))
    ctx = np.array([rng.integers(0, n + 1) if rng.random() < 0.5 else 0 for n in lens])
    return ids, lens.tolist(), ctx.tolist()


class Checker:
    """Counts and errors of one client thread; generations per table must
    never go back on one connection."""

    def __init__(self, name):
        self.name = name
        self.requests = self.rows = self.refused = 0
        self.errors = []
        self.more = 0  # errors past the first 200, counted only
        self.last = {}

    def error(self, text):
        if len(self.errors) < 200:
            self.errors.append(f"{self.name}: {text}")
        else:
            self.more += 1

    def rows_of(self, table, gen, slots, got):
        self.requests += 1
        self.rows += int(np.asarray(slots).size)
        if gen < self.last.get(table.name, 0):
            self.error(f"{table.name}: generation {gen} after {self.last[table.name]}")
        self.last[table.name] = gen
        bad = model.wrong_rows(table, gen, slots, got)
        if bad:
            self.error("WRONG ROWS " + bad)

    def refusal(self, call, want):
        """call() must raise want (an EngramError subclass)."""
        try:
            call()
        except want:
            self.refused += 1
            return
        except Exception as e:  # noqa: BLE001 - any other outcome is the finding
            self.error(f"bad request: {type(e).__name__}: {e} (want {want.__name__})")
            return
        self.error(f"bad request answered OK (want {want.__name__})")


def lookup_once(c, chk, rng, shm):
    table = model.TABLES[int(rng.integers(0, len(model.TABLES)))]
    if rng.random() < 0.01:
        slots = np.append(pick_slots(rng, table, batch_size(rng) - 1),
                          table.slots + int(rng.integers(0, 1000)))
        chk.refusal(lambda: c.lookup(table.name, slots, shm=shm), ec.OutOfRange)
        chk.refusal(lambda: c.lookup("nosuch", [0]), ec.NotFound)
        return
    k = 1 if rng.random() < 0.7 else int(rng.integers(2, 9))
    off, futs = 0, []
    for _ in range(k):
        slots = pick_slots(rng, table, batch_size(rng, 65536 // k if shm else 65536))
        futs.append((slots, c.lookup_async(table.name, slots, shm=shm, shm_offset=off)))
        off += (slots.size * table.row_bytes + 63) // 64 * 64
    for slots, f in futs:
        got = f.result()
        chk.rows_of(table, f.generations[table.name], slots, got)


def tokens_once(c, chk, rng, shm):
    table = model.BY_NAME["tok"]
    if rng.random() < 0.01:
        ids = pick_tokens(rng)[0]
        ids[int(rng.integers(0, ids.size))] = model.VOCAB + int(rng.integers(0, 1000))
        chk.refusal(lambda: c.tokens("tok", ids, shm=shm), ec.BadRequest)
        chk.refusal(lambda: c.tokens(["tok", "nosuch"], [1, 2, 3], shm=shm), ec.NotFound)
        if shm:
            chk.refusal(lambda: c.tokens("tok", [1, 2, 3], shm=True,
                                         shm_offset=SHM_BYTES - 64), ec.OutOfRange)
        return
    ids, lens, ctx = pick_tokens(rng)
    f = c.tokens_async(["tok"], ids, seq_lens=lens, context=ctx, shm=shm)
    got = f.result()["tok"]
    slots = table.token_slots(ids, lens, ctx).reshape(-1)
    chk.rows_of(table, f.generations["tok"], slots, got)


def run_client(kind, addr, seed, chk):
    rng = np.random.default_rng(seed)
    shm = kind == "shm"
    c = ec.Client(addr, timeout=TIMEOUT, shm_bytes=SHM_BYTES if shm else None)
    try:
        while not STOP.is_set() and os.getppid() == PARENT:
            try:
                if kind == "tokens" or (shm and rng.random() < 0.3):
                    tokens_once(c, chk, rng, shm)
                else:
                    lookup_once(c, chk, rng, shm)
            except ec.EngramError as e:
                chk.error(f"{type(e).__name__}: {e}")
    except Exception:  # noqa: BLE001 - reported, not raised: the summary must be written
        chk.error("crashed: " + traceback.format_exc())
    finally:
        c.close()


def run_victim(kind, addr, seed):
    rng = np.random.default_rng(seed)
    shm = kind == "victim-shm"
    c = ec.Client(addr, timeout=TIMEOUT, shm_bytes=SHM_BYTES if shm else None)
    table = model.BY_NAME["pc"]
    futs, first = [], True
    while os.getppid() == PARENT:
        for i in range(4 - len(futs)):
            slots = rng.integers(0, table.slots, 65536, dtype=np.int64)
            futs.append(c.lookup_async("pc", slots, shm=shm, shm_offset=i * (4 << 20)))
        if first:
            print("ready", flush=True)
            first = False
        futs.pop(0).result()


def main():
    kind, addr, seed, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    nthreads = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    if kind.startswith("victim"):
        run_victim(kind, addr, seed)
        return
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    checkers = [Checker(f"{kind}[{seed}.{i}]") for i in range(nthreads)]
    threads = [threading.Thread(target=run_client, args=(kind, addr, seed * 100 + i, chk))
               for i, chk in enumerate(checkers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(out, "w") as f:
        json.dump({"kind": kind, "requests": sum(c.requests for c in checkers),
                   "rows": sum(c.rows for c in checkers),
                   "refused": sum(c.refused for c in checkers),
                   "errors": [e for c in checkers for e in c.errors] +
                   [f"{c.name}: {c.more} more errors" for c in checkers if c.more]}, f)


if __name__ == "__main__":
    main()
