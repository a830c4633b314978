"""Client: one connection to engramd, blocking calls and pipelined futures.

    c = Client("unix:/run/engramd.sock", timeout=5.0)
    rows = c.lookup("layer1", slots)               # ndarray [n, dim]
    fut = c.tokens_async(["layer1", "layer15"], ids)  # sent now ...
    ...                                            # ... compute meanwhile
    blocks = fut.result()                          # {table: [T, rows, dim]}

Responses come back in request order per connection; a future's result()
reads (and keeps) the responses of earlier requests on the way. A Client is
safe to share between threads (one lock around the connection), but one
client per thread pipelines better.

Same-host fast path (unix sockets): Client(addr, shm_bytes=N) or
client.attach_shm(N) hands the daemon a shared buffer (a sealed memfd); then
lookup(..., shm=True) / tokens(..., shm=True) have the daemon write the rows
straight into it and return numpy views of the mapping, no row bytes on the
socket. Such a view is valid until the next shm call whose range overlaps it
(by default every shm call writes at offset 0): copy what must outlive that.

Failures raise EngramError subclasses (errors.py). When the connection
breaks or a wait times out, every outstanding future fails and the next call
reconnects to the same address; a blocking call that finds its connection
dead (the daemon restarted) reconnects and retries once by itself.

Generations: client.min_generation ({table: generation}) is sent with every
lookup of those tables; a daemon still on an older version answers
Unavailable (and so is an older answer of a daemon that ignores the field).
With monotonic=True every answer raises its tables' entries, so the client
never returns a table's rows of an older generation than it did before.
Several daemons (replicas, routes, failover): fleet.py.
"""
import array
import collections
import fcntl
import mmap
import os
import select
import socket
import threading
import time

import numpy as np

from . import check, wire
from ._pb import pb
from .errors import (EngramConnectionError, EngramError, EngramTimeout, NotFound,
                     ProtocolError, Unavailable, from_status)
from .rows import DTYPES, Layout, rows_array

TableInfo = collections.namedtuple(
    "TableInfo", "name slots dim dtype scale_block row_bytes generation hash_kind "
                 "rows_per_token path chunk_slots")
Stats = collections.namedtuple(
    "Stats", "uptime_seconds connections requests errors rows bytes_out reloads "
             "reload_failures")
Pong = collections.namedtuple("Pong", "protocol_version server_version")
ReloadResult = collections.namedtuple(
    "ReloadResult", "table old_generation new_generation reloaded error path")

# Largest response frame accepted whatever the request (each request also
# bounds its answer: check.frame_limit).
DEFAULT_MAX_FRAME = 1 << 34
# Row data is placed at this alignment in memory (first block of a frame).
_ALIGN = 64
_READ_AHEAD = 1 << 16
# A frame whose length is bounded only by what no table can exceed (its
# tables' layouts not known yet) starts in a buffer this big.
_GROW_FROM = 64 << 20

_POLLIN = select.POLLIN | select.POLLHUP | select.POLLERR
_POLLOUT = select.POLLOUT


def _aligned(n, off):
    """A uint8 array of n bytes whose byte off (None: any) is 64-byte aligned."""
    buf = np.empty(n + _ALIGN, dtype=np.uint8)
    shift = 0 if off is None else -(buf.ctypes.data + off) % _ALIGN
    return buf[shift:shift + n]


def parse_address(addr):
    """("unix", path) or ("tcp", (host, port)) for an engramd address."""
    if addr.startswith("unix:") and len(addr) > 5:
        return "unix", addr[5:]
    if addr.startswith("tcp:"):
        host, sep, port = addr[4:].rpartition(":")
        if sep and host and port.isdigit():
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
            return "tcp", (host, int(port))
    raise ValueError(f"address {addr!r} is not unix:PATH or tcp:HOST:PORT")


class Future:
    """A request sent and not yet collected. result() waits for it."""

    __slots__ = ("_client", "id", "kind", "_args", "_frame", "_header", "_exc",
                 "_done", "_retryable", "generations")

    def __init__(self, client, req_id, kind, args):
        self._client, self.id, self.kind, self._args = client, req_id, kind, args
        self._frame = self._header = self._exc = None
        self._done = False
        self._retryable = False
        # {table: generation} of the rows, filled by result().
        self.generations = None

    def done(self):
        """True when the response has been read (result() will not block)."""
        return self._done

    def result(self, timeout=None):
        """The call's value; raises its EngramError. timeout (seconds) bounds
        this wait (default: the client's timeout)."""
        return self._client._collect(self, timeout)


class Client:
    """A connection to engramd at addr ("unix:/path" or "tcp:host:port").

    timeout (seconds, None = no limit) bounds connecting and every wait.
    The connection is opened here; a failure raises EngramConnectionError.
    """

    def __init__(self, addr, timeout=None, max_frame=DEFAULT_MAX_FRAME, connect=True,
                 shm_bytes=None, monotonic=False):
        self.addr = addr
        self.min_generation = {}  # {table: oldest generation accepted}
        self.monotonic = monotonic
        self._family, self._target = parse_address(addr)
        self.timeout = timeout
        self.max_frame = max_frame
        self._sock = None
        self._poll = None
        self._next_id = 1
        self._pending = collections.deque()
        self._rbuf = bytearray(_READ_AHEAD)
        self._rmv = memoryview(self._rbuf)
        self._rpos = self._rend = 0
        self._layouts = {}      # {table: Layout} and {table: rows per token},
        self._rpts = {}         # from info on the current connection
        self._lock = threading.RLock()
        self._shm_fd = None     # the shared buffer's memfd, once attached
        self._shm_map = None    # its mmap, and a uint8 array over it
        self._shm = None
        if shm_bytes and self._family != "unix":
            raise ValueError("a shared buffer needs a unix:PATH address")
        if connect:
            with self._lock:
                self._connect()
        if shm_bytes:
            self.attach_shm(shm_bytes)

    # ---- public calls ------------------------------------------------------

    def info(self):
        """[TableInfo] of every served table."""
        return self._call("info", wire.REQ_INFO, pb.InfoRequest().SerializeToString())

    def table(self, name):
        """TableInfo of one table (NotFound when it is not served)."""
        for t in self.info():
            if t.name == name:
                return t
        raise NotFound(f"no table named {name!r} is served")

    def stats(self):
        """Stats: the daemon's counters."""
        return self._call("stats", wire.REQ_STATS, b"")

    def ping(self):
        """Pong(protocol_version, server_version)."""
        return self._call("ping", wire.REQ_PING, b"")

    def reload(self, table=None):
        """Asks the daemon to reload table (None = all): [ReloadResult]."""
        body = pb.ReloadRequest(table=table or "").SerializeToString()
        return self._call("reload", wire.REQ_RELOAD, body)

    def attach_shm(self, nbytes):
        """Creates a shared buffer of nbytes (a memfd sealed against
        shrinking), maps it and hands it to the daemon with SCM_RIGHTS on a
        fresh connection (unix addresses only). Reconnects attach it again.
        Returns the buffer as a uint8 ndarray over the mapping."""
        nbytes = int(nbytes)
        if self._family != "unix":
            raise ValueError("a shared buffer needs a unix:PATH address")
        if nbytes <= 0:
            raise ValueError("shm_bytes must be positive")
        with self._lock:
            if self._shm_fd is not None:
                raise EngramError("a shared buffer is already attached")
            if self._pending:
                raise EngramError("collect every outstanding future before attach_shm")
            fd = os.memfd_create("engram-shm", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            try:
                os.ftruncate(fd, nbytes)
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
                m = mmap.mmap(fd, nbytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            except BaseException:
                os.close(fd)
                raise
            self._shm_fd, self._shm_map = fd, m
            self._shm = np.frombuffer(m, dtype=np.uint8)
            # the attach must be the first frame of a connection
            self._break(EngramConnectionError("reconnecting to attach a shared buffer"))
            try:
                self._connect()
            except BaseException:
                self._shm = self._shm_map = None
                os.close(fd)
                self._shm_fd = None
                raise
            return self._shm

    @property
    def shm(self):
        """The attached shared buffer (uint8 ndarray), or None."""
        return self._shm

    def lookup(self, table, slots, decode=False, shm=False, shm_offset=0):
        """Rows of slots (any integer sequence/array) of table: ndarray
        [n, dim] (see rows.py for dtypes and decode). With shm=True (after
        attach_shm) the daemon writes the rows into the shared buffer at
        shm_offset and the result is a view of it, valid until the next shm
        call writing over that range."""
        return self._call("lookup", wire.REQ_LOOKUP,
                          *self._lookup_args(table, slots, decode, shm, shm_offset))

    def lookup_async(self, table, slots, decode=False, shm=False, shm_offset=0):
        """Sends a lookup now; Future whose result() is lookup()'s value."""
        return self._submit("lookup", wire.REQ_LOOKUP,
                            *self._lookup_args(table, slots, decode, shm, shm_offset))

    def _lookup_args(self, table, slots, decode, shm, shm_offset):
        offset = self._shm_offset(shm, shm_offset)
        slots = np.asarray(slots)  # once: lists of millions are slow to convert
        body = wire.lookup_body(table, slots, offset, self.min_generation.get(table, 0))
        return body, (table, decode, int(slots.size), offset)

    def _shm_offset(self, shm, offset):
        if not shm:
            return None
        if self._shm is None:
            raise EngramError("shm=True needs a shared buffer: call attach_shm first")
        return int(offset)

    def tokens(self, tables, token_ids, seq_lens=None, context=None, decode=False,
               shm=False, shm_offset=0):
        """Rows of every returned token for each table, hashed by the daemon
        with the table's hash spec: {table: ndarray [T, rows_per_token, dim]}.

        token_ids: raw ids of all sequences back to back, or a 2-D array of
        equal-length sequences (then seq_lens defaults to its rows). context:
        per sequence, leading tokens that are history only (no rows).
        shm=True: the blocks go into the shared buffer back to back from
        shm_offset; the arrays are views of it (see lookup)."""
        args = self._tokens_args(tables, token_ids, seq_lens, context, decode,
                                 self._shm_offset(shm, shm_offset), self.min_generation)
        return self._call("tokens", wire.REQ_TOKENS, args[0], args[1])

    def tokens_async(self, tables, token_ids, seq_lens=None, context=None, decode=False,
                     shm=False, shm_offset=0):
        """Sends a token lookup now; Future whose result() is tokens()'s value."""
        args = self._tokens_args(tables, token_ids, seq_lens, context, decode,
                                 self._shm_offset(shm, shm_offset), self.min_generation)
        return self._submit("tokens", wire.REQ_TOKENS, args[0], args[1])

    def close(self):
        """Closes the connection; outstanding futures fail."""
        with self._lock:
            self._break(EngramConnectionError("client closed"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- requests ----------------------------------------------------------

    @staticmethod
    def _tokens_args(tables, token_ids, seq_lens, context, decode, shm_offset=None,
                     floors=None):
        if isinstance(tables, str):
            tables = [tables]
        tables = list(tables)
        ids = np.asarray(token_ids)
        if ids.ndim == 2 and seq_lens is None:
            seq_lens = [ids.shape[1]] * ids.shape[0]
        mins = [floors.get(t, 0) for t in tables] if floors else None
        body = wire.tokens_body(tables, ids.reshape(-1), seq_lens, context, shm_offset, mins)
        ntok = check.tokens_out(int(ids.size), seq_lens, context)
        return body, (tables, decode, ntok, shm_offset)

    def _call(self, kind, field, body, args=None):
        fut = self._submit(kind, field, body, args)
        try:
            return fut.result()
        except EngramConnectionError:
            if not fut._retryable:
                raise
        return self._submit(kind, field, body, args).result()

    def _submit(self, kind, field, body, args=None):
        with self._lock:
            fresh = self._ensure_connected()
            req_id = self._next_id
            self._next_id += 1
            fut = Future(self, req_id, kind, args)
            # A request that alone met a connection opened before it may be
            # resent once on a new one if that connection turns out dead.
            fut._retryable = not fresh and not self._pending
            self._pending.append(fut)
            data = wire.request(req_id, field, body)
            deadline = self._deadline(None)
            try:
                self._send(data, deadline)
            except EngramError as e:
                if isinstance(e, EngramConnectionError):
                    self._drain(deadline)
                # fails whatever is still outstanding, this request included
                # unless a response (an error for it) already arrived
                self._break(e)
            return fut

    def _deadline(self, timeout):
        t = self.timeout if timeout is None else timeout
        return None if t is None else time.monotonic() + t

    @staticmethod
    def _remaining(deadline):
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise EngramTimeout("timed out waiting for engramd")
        return left

    # ---- connection ----------------------------------------------------------

    def _connect(self):
        timeout = self.timeout
        try:
            if self._family == "unix":
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.settimeout(timeout)
                    s.connect(self._target)
                except BaseException:
                    s.close()
                    raise
            else:
                s = socket.create_connection(self._target, timeout=timeout)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except socket.timeout:
            raise EngramTimeout(f"connecting to {self.addr}: timed out") from None
        except OSError as e:
            raise EngramConnectionError(f"connecting to {self.addr}: {e.strerror or e}") from None
        self._sock = s
        # another daemon may serve other layouts: learn them again
        self._layouts, self._rpts = {}, {}
        self._poll = select.poll()
        self._poll.register(s.fileno(), _POLLIN | _POLLOUT)
        self._rpos = self._rend = 0
        if self._shm_fd is not None:
            self._send_attach()

    def _send_attach(self):
        """Attaches the shared buffer: the first frame of the connection,
        with the memfd as SCM_RIGHTS."""
        req_id = self._next_id
        self._next_id += 1
        fut = Future(self, req_id, "attach", None)
        self._pending.append(fut)
        body = pb.AttachShmRequest(size=len(self._shm)).SerializeToString()
        data = wire.request(req_id, wire.REQ_ATTACH_SHM, body)
        deadline = self._deadline(None)
        try:
            self._sock.settimeout(self.timeout)
            sent = self._sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                array.array("i", [self._shm_fd]))])
            if sent < len(data):
                self._send(data[sent:], deadline)
            while not fut._done:
                self._read_one(deadline)
        except OSError as e:
            self._break(self._conn_error("attaching a shared buffer on", e))
        except EngramError as e:
            self._break(e)
        if fut._exc is not None:
            self._break(fut._exc)
            raise fut._exc
    def _ensure_connected(self):
        """Connects when needed; True when the connection is new. An idle
        connection the daemon has closed (restart) is replaced."""
        if self._sock is not None and not self._pending:
            if self._idle_connection_dead():
                self._break(EngramConnectionError("daemon closed the connection"))
        if self._sock is None:
            self._connect()
            return True
        return False

    def _idle_connection_dead(self):
        if self._rend > self._rpos:
            return True  # bytes nobody asked for: the stream is out of step
        # Readable while idle: either EOF (the daemon went away) or bytes
        # nobody asked for; both mean this connection is done.
        p = select.poll()
        p.register(self._sock.fileno(), _POLLIN)
        return bool(p.poll(0))

    def _break(self, exc):
        """Drops the connection; every outstanding future fails with exc."""
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = self._poll = None
        self._rpos = self._rend = 0
        while self._pending:
            fut = self._pending.popleft()
            fut._exc, fut._done = exc, True

    def _send(self, data, deadline):
        """Writes data; while the socket is full, reads responses (so a
        daemon that stops reading until we drain its output cannot wedge)."""
        mv = memoryview(data)
        off, total = 0, len(data)
        sock = self._sock
        while off < total:
            try:
                sock.settimeout(0.0)  # never block in send (reads set a timeout)
                off += sock.send(mv[off:])
                continue
            except BlockingIOError:
                pass
            except OSError as e:
                raise self._conn_error("sending to", e) from None
            left = self._remaining(deadline)
            events = self._poll.poll(None if left is None else max(1, int(left * 1000)))
            if not events:
                raise EngramTimeout(f"timed out sending to {self.addr}")
            if events[0][1] & _POLLIN:
                self._read_one(deadline)

    def _drain(self, deadline):
        """After a failed send: the daemon may have answered (e.g. TOO_LARGE
        for a frame over its limit) and then closed; read what it sent."""
        try:
            while self._pending:
                self._read_one(deadline)
        except EngramError:
            pass

    def _conn_error(self, what, e):
        if isinstance(e, socket.timeout):
            return EngramTimeout(f"timed out waiting for {self.addr}")
        return EngramConnectionError(f"{what} {self.addr}: {e.strerror or e}")

    # ---- receiving -----------------------------------------------------------

    def _collect(self, fut, timeout):
        with self._lock:
            deadline = self._deadline(timeout)
            while not fut._done:
                if self._sock is None or not self._pending:
                    raise ProtocolError("future is not outstanding on this client")
                try:
                    self._read_one(deadline)
                except EngramError as e:
                    self._break(e)
            if fut._exc is not None:
                raise fut._exc
            return self._finish(fut)

    def _recv_into(self, mv, deadline):
        sock = self._sock
        try:
            sock.settimeout(self._remaining(deadline))
            n = sock.recv_into(mv)
        except OSError as e:
            raise self._conn_error("reading from", e) from None
        if n == 0:
            raise EngramConnectionError(f"{self.addr} closed the connection")
        return n

    def _fill(self, deadline):
        """Reads more into the read-ahead buffer."""
        if self._rpos:
            n = self._rend - self._rpos
            self._rbuf[:n] = self._rbuf[self._rpos:self._rend]
            self._rpos, self._rend = 0, n
        self._rend += self._recv_into(self._rmv[self._rend:], deadline)

    def _read_frame(self, deadline):
        """One response frame as a fresh writable uint8 array whose first
        row block (if any) starts at a 64-byte aligned address."""
        while True:
            try:
                length, pos = wire.read_varint(self._rbuf, self._rpos, self._rend)
                break
            except ProtocolError:
                if self._rend - self._rpos >= 10:
                    raise
                self._fill(deadline)
        fut = self._pending[0]
        limit, exact = check.frame_limit(fut.kind, fut._args, self._layouts, self._rpts)
        limit = min(self.max_frame, limit)
        if length > limit:
            raise ProtocolError(f"daemon announced a response of {length} bytes to request "
                                f"{fut.id}; a true answer has at most {limit}")
        self._rpos = pos
        try:
            # a length only bounded loosely is not allocated at once
            return self._read_body(length, deadline, length if exact else _GROW_FROM)
        except EngramConnectionError:
            raise ProtocolError(f"{self.addr} closed the connection in the middle of a "
                                f"response (a truncated frame)") from None

    def _read_body(self, length, deadline, room):
        """The length bytes of a frame whose length prefix is read, in a
        buffer of room bytes at first, doubled as the bytes come."""
        want = min(length, 256)
        while self._rend - self._rpos < want:
            self._fill(deadline)
        take = min(self._rend - self._rpos, length)
        off = wire.first_data_offset(self._rbuf, self._rpos, self._rpos + take)
        frame = _aligned(min(length, max(room, take)), off)
        frame[:take] = np.frombuffer(self._rbuf, np.uint8, take, self._rpos)
        self._rpos += take
        if self._rpos == self._rend:
            self._rpos = self._rend = 0
        got = take
        while got < length:
            if got == len(frame):
                bigger = _aligned(min(length, 2 * got), off)
                bigger[:got] = frame
                frame = bigger
            got += self._recv_into(memoryview(frame)[got:], deadline)
        return frame

    def _read_one(self, deadline):
        """Reads the next response and completes the oldest future with it."""
        frame = self._read_frame(deadline)
        hdr = wire.parse_response(memoryview(frame), 0, len(frame))
        fut = self._pending[0]
        if hdr.id != fut.id and not (hdr.id == 0 and hdr.status != 0):
            raise ProtocolError(f"response id {hdr.id} does not match request {fut.id}")
        self._pending.popleft()
        if hdr.status != 0:
            fut._exc = from_status(hdr.status, hdr.error)
        else:
            fut._frame, fut._header = frame, hdr
        fut._done = True

    # ---- turning responses into values --------------------------------------

    def _finish(self, fut):
        frame, hdr, kind = fut._frame, fut._header, fut.kind
        if kind == "attach":
            return None
        if kind == "lookup":
            table, decode, nslots, shm_offset = fut._args
            check.block_list(hdr.blocks, [table])
            blk = hdr.blocks[0]
            lay = self._layout(table, blk.row_bytes)
            check.block_rows(0, blk, nslots, shm_offset, self._shm_size())
            fut.generations = {table: blk.generation}
            self._check_generations(fut.generations)
            return self._block_rows(frame, blk, lay, decode)
        if kind == "tokens":
            return self._token_rows(fut, frame, hdr)
        try:
            msg = pb.Response.FromString(frame.tobytes())
        except Exception as e:  # protobuf's DecodeError, or worse
            raise ProtocolError(f"malformed response from {self.addr}: {e}") from None
        body = {"info": "info", "stats": "stats", "ping": "pong", "reload": "reload"}.get(kind)
        if body is not None and msg.WhichOneof("body") != body:
            raise ProtocolError("daemon answered with the wrong kind of response")
        if kind == "info":
            check.info_tables(msg.info.tables)
            tables = [TableInfo(t.name, t.slots, t.dim, t.dtype, t.scale_block, t.row_bytes,
                                t.generation, t.hash_kind, t.rows_per_token, t.path,
                                t.chunk_slots) for t in msg.info.tables]
            self._layouts = {t.name: Layout(t.dtype, t.dim, t.scale_block, t.row_bytes)
                             for t in tables if t.dtype in DTYPES}
            self._rpts = {t.name: t.rows_per_token for t in tables}
            return tables
        if kind == "stats":
            s = msg.stats
            return Stats(*(getattr(s, f) for f in Stats._fields))
        if kind == "ping":
            return Pong(msg.pong.protocol_version, msg.pong.server_version)
        if kind == "reload":
            return [ReloadResult(r.table, r.old_generation, r.new_generation, r.reloaded,
                                 r.error, r.path) for r in msg.reload.results]
        raise ProtocolError(f"unknown request kind {kind}")

    def _layout(self, table, row_bytes):
        """The layout of table; row_bytes (None = any) must match it."""
        lay = self._layouts.get(table)
        if lay is None or row_bytes not in (None, lay.row_bytes):
            self.info()  # new table or a version with another layout
            lay = self._layouts.get(table)
        if lay is None:
            raise ProtocolError(f"table {table!r} is missing from the daemon's info")
        if row_bytes not in (None, lay.row_bytes):
            raise ProtocolError(f"table {table!r}: rows of {row_bytes} bytes, "
                                f"info says {lay.row_bytes}")
        return lay

    def _token_rows(self, fut, frame, hdr):
        """{table: [tokens, rows_per_token, ...]} of a checked token answer."""
        tables, decode, ntok, shm_offset = fut._args
        if ntok is None:
            raise ProtocolError("daemon accepted a token request whose seq_lens and "
                                "context do not add up")
        check.block_list(hdr.blocks, tables)
        if hdr.tokens != ntok:
            raise ProtocolError(f"daemon returned {hdr.tokens} tokens; the request "
                                f"returns {ntok}")
        out, gens = {}, {}
        for i, (table, blk) in enumerate(zip(tables, hdr.blocks)):
            lay = self._layout(table, blk.row_bytes)
            per = self._rpts.get(table, 0)
            if i == 0 and hdr.rows_per_token != per:
                raise ProtocolError(f"daemon says {hdr.rows_per_token} rows per token, "
                                    f"table {table!r} has {per}")
            shm_offset = check.block_rows(i, blk, ntok * per, shm_offset, self._shm_size())
            rows = self._block_rows(frame, blk, lay, decode)
            out[table] = rows.reshape((ntok, per) + rows.shape[1:])
            gens[table] = blk.generation
        fut.generations = gens
        self._check_generations(gens)
        return out

    def _check_generations(self, gens):
        """Answers older than min_generation are refused (a daemon that
        ignores the field); with monotonic, the others raise it."""
        for table, gen in gens.items():
            floor = self.min_generation.get(table, 0)
            if gen < floor:
                raise Unavailable(f"table {table!r} came at generation {gen}, below the "
                                  f"min_generation {floor} asked")
        if self.monotonic:
            for table, gen in gens.items():
                if gen > self.min_generation.get(table, 0):
                    self.min_generation[table] = gen

    def _shm_size(self):
        return 0 if self._shm is None else len(self._shm)

    def _block_rows(self, frame, blk, lay, decode):
        """The rows of a checked block: a view of the shared buffer or of
        the frame."""
        size = blk.count * blk.row_bytes
        if blk.shm:
            data = self._shm[blk.shm_offset:blk.shm_offset + size]
        else:
            data = frame[blk.data_off:blk.data_off + size]
        return rows_array(data, blk.count, lay, decode)
