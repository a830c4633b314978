"""Shared by the Python client tests, the gating test and bench_python.py:
tables built with the real `engram` command and a real engramd listening on
a temporary unix socket and a TCP port.

ENGRAM and ENGRAMD name the binaries (tests/run.sh sets both).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import numpy as np

ENGRAM = os.environ.get("ENGRAM", "build/engram")
ENGRAMD = os.environ.get("ENGRAMD", "build/engramd")


def engram(*args):
    """Runs the engram command; its stdout, or AssertionError with stderr."""
    p = subprocess.run([ENGRAM, *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"engram {' '.join(map(str, args))}: {p.stderr.strip()}")
    return p.stdout


def import_table(dir_, rows, name, dtype=None, scale_block=None, hash_spec=None,
                 chunk_slots=None):
    """Builds a table in dir_ from a NumPy array (f32/f16 values or u8 bytes)
    with `engram table import`."""
    src = dir_ + ".src.npy"
    np.save(src, rows)
    args = ["table", "import", dir_, "--from", src, "--name", name]
    if dtype:
        args += ["--dtype", dtype]
    if scale_block:
        args += ["--scale-block", scale_block]
    if hash_spec:
        args += ["--hash", hash_spec]
    if chunk_slots:
        args += ["--chunk-slots", chunk_slots]
    engram(*args)
    os.unlink(src)


def import_spec_table(workdir, name, rng, dim=16, dtype=None):
    """A table name in workdir with a small engram-v1 hash spec (orders 2-3,
    2 heads, layer 1, a 5000-token vocabulary) and random float32 rows,
    imported as dtype: (dir, spec, rows)."""
    from engram_client import spec as specmod
    spec = specmod.engram_v1_specs([997, 1009], 3, 2, [1], seed=0, pad=2, vocab_size=5000)[1]
    spec_path = os.path.join(workdir, name + ".json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    rows = rng.standard_normal((sum(sum(o) for o in spec["moduli"]), dim)).astype(np.float32)
    dir_ = os.path.join(workdir, name)
    import_table(dir_, rows, name, dtype=dtype, hash_spec=spec_path)
    return dir_, spec, rows


def export_rows(dir_, slots):
    """The stored rows of slots, read in-process by `engram table export`
    (no daemon): f32/f16 values, bf16 bits, or e4m3/u8 row bytes."""
    tmp = tempfile.mkdtemp(prefix="engram-export-")
    try:
        sf = os.path.join(tmp, "slots.npy")
        out = os.path.join(tmp, "rows.npy")
        np.save(sf, np.asarray(slots, dtype=np.uint64))
        engram("table", "export", dir_, "--slots-file", sf, "--out", out)
        return np.load(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bf16_bits_rne(f32):
    """float32 -> bf16 bits, round to nearest even (finite values): what a
    bf16 table imported from f32 rows stores, computed without the table tool."""
    u = np.asarray(f32, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF).astype(np.uint16)


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """engramd serving tables {name: dir} on unix:DIR/engramd.sock and
    tcp:127.0.0.1:PORT. restart() keeps both addresses."""

    def __init__(self, tables, extra=(), workdir=None):
        self.dir = workdir or tempfile.mkdtemp(prefix="engramd-py-")
        os.makedirs(self.dir, exist_ok=True)
        self.tables, self.extra = dict(tables), list(extra)
        self.unix = "unix:" + os.path.join(self.dir, "engramd.sock")
        self.proc = None
        self.log_path = os.path.join(self.dir, "engramd.log")
        for attempt in range(5):
            self.tcp = f"tcp:127.0.0.1:{free_tcp_port()}"
            try:
                self.start()
                return
            except AssertionError:
                if attempt == 4 or "ddress already in use" not in self.logtext():
                    raise

    def start(self):
        args = [ENGRAMD, "--listen", self.unix, "--listen", self.tcp]
        for name, path in self.tables.items():
            args += ["--table", f"{name}={path}"]
        args += self.extra
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("engramd did not start:\n" + self.logtext())
            time.sleep(0.02)

    def _answers(self):
        from engram_client import Client, EngramError
        try:
            with Client(self.unix, timeout=2) as c:
                c.ping()
            return True
        except EngramError:
            return False

    def logtext(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        return rc

    def pause(self):
        """SIGSTOP, returning once the daemon is really stopped (the signal
        is asynchronous: a request sent right after kill() may still be
        answered)."""
        self.proc.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                    return
            time.sleep(0.005)
        raise AssertionError("engramd did not stop on SIGSTOP")

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def restart(self):
        self.stop()
        self.start()

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
