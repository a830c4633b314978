"""Helpers for the Python tests: a real engramd on a temporary socket,
tables made with the engram command, and a minimal framed protobuf client.

Run with Debian's /usr/bin/python3 (numpy, protobuf); tests/run.sh sets
PYTHONPATH so that engram_pb2 (generated from proto/engram.proto) imports.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import numpy as np

import engram_pb2 as pb

ENGRAM = os.environ.get("ENGRAM", "build/engram")
ENGRAMD = os.environ.get("ENGRAMD", "build/engramd")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def engram(*args, check=True):
    """Runs the engram command; returns CompletedProcess (text)."""
    p = subprocess.run([ENGRAM, *map(str, args)], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"engram {' '.join(map(str, args))}: {p.stderr.strip()}")
    return p


def import_rows(dir_, rows, name="t", generation=None, chunk_slots=None):
    """Imports a uint8 [n, row_bytes] array as a u8 table in dir_."""
    src = dir_ + ".src.npy"
    np.save(src, np.ascontiguousarray(rows, dtype=np.uint8))
    args = ["table", "import", dir_, "--from", src, "--name", name]
    if generation is not None:
        args += ["--generation", generation]
    if chunk_slots is not None:
        args += ["--chunk-slots", chunk_slots]
    engram(*args)
    os.unlink(src)


class Conn:
    """One connection speaking varint-delimited engram.v1 messages."""

    def __init__(self, addr, timeout=30.0):
        if addr.startswith("unix:"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(addr[5:])
            except OSError:
                self.sock.close()
                raise
        else:
            host, port = addr[4:].rsplit(":", 1)
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = bytearray()
        self.next_id = 1

    def close(self):
        self.sock.close()

    def send(self, req):
        body = req.SerializeToString()
        n, head = len(body), bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            head.append(b | (0x80 if n else 0))
            if not n:
                break
        self.sock.sendall(bytes(head) + body)

    def _fill(self, need):
        while len(self.buf) < need:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("daemon closed the connection")
            self.buf += chunk

    def recv(self):
        shift = length = pos = 0
        while True:
            self._fill(pos + 1)
            b = self.buf[pos]
            length |= (b & 0x7F) << shift
            pos += 1
            shift += 7
            if not b & 0x80:
                break
        self._fill(pos + length)
        resp = pb.Response()
        resp.ParseFromString(bytes(self.buf[pos:pos + length]))
        del self.buf[:pos + length]
        return resp

    def call(self, **body):
        req = pb.Request(id=self.next_id, **body)
        self.next_id += 1
        self.send(req)
        resp = self.recv()
        assert resp.id == req.id, (resp.id, req.id)
        return resp

    def lookup(self, table, slots):
        return self.call(lookup=pb.LookupRequest(table=table, slots=list(map(int, slots))))

    def reload(self, table=""):
        return self.call(reload=pb.ReloadRequest(table=table))


class Daemon:
    """engramd on a temporary unix socket; stop() checks a clean exit."""

    def __init__(self, tables, extra=(), workdir=None):
        self.dir = workdir or tempfile.mkdtemp(prefix="engramd-test-")
        self.sock = os.path.join(self.dir, "engramd.sock")
        self.addr = "unix:" + self.sock
        self.log_path = os.path.join(self.dir, "engramd.log")
        args = [ENGRAMD, "--listen", self.addr]
        for name, path in tables.items():
            args += ["--table", f"{name}={path}"]
        args += list(extra)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stderr=self.log, stdout=self.log)
        deadline = time.monotonic() + 30
        while True:
            c = None
            try:
                c = Conn(self.addr, timeout=5)
                c.call(ping=pb.PingRequest())
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("engramd did not start:\n" + self.logtext())
                time.sleep(0.05)
            finally:
                if c is not None:
                    c.close()

    def logtext(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        self.log.close()
        return rc

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
