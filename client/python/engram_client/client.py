"""Client: one connection to engramd, blocking calls and pipelined futures.

    c = Client(timeout=5.0)          # DEFAULT_ADDRESS, the installed service
    rows = c.lookup("layer1", slots)               # ndarray [n, dim]
    fut = c.tokens_async(["layer1", "layer15"], ids)  # sent now ...
    ...                                            # ... compute meanwhile
    blocks = fut.result()                          # {table: [T, rows, dim]}

Responses come back in request order per connection. The *_async calls
only queue their request: threads of the client send it and read the answer
as its bytes arrive, so the whole fetch goes on while the caller computes
(Client(background=False) sends in the call and leaves all reading to
result(), as blocking calls do). A Client is safe to
share between threads, but one client per thread pipelines better.

Rows land where the caller wants them: lookup(..., out=buf) receives them
into buf (a NumPy array, a CPU torch.Tensor or any writable buffer of
exactly n x row_bytes bytes) and returns buf, and as_torch=True returns
torch.Tensors sharing memory with the received rows (bf16 as
torch.bfloat16; see engram_client.torch).

Same-host fast path (unix sockets): Client(addr, shm_bytes=N) or
client.attach_shm(N) hands the daemon a shared buffer (a sealed memfd); then
lookup(..., shm=True) / tokens(..., shm=True) have the daemon write the rows
straight into it and return numpy views of the mapping, no row bytes on the
socket. Once the table's layout is known, a shm lookup's slots go through
the buffer too (into its rows' range, where the daemon reads them before it
writes the rows): only a few header bytes cross the socket. Such a view is
valid until the next shm call whose range overlaps it (by default every shm
call writes at offset 0): copy what must outlive that.
A lookup whose out= lies inside the shared buffer is written there by the
daemon directly, whatever shm says.

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
import collections
import functools
import fcntl
import mmap
import os
import sys

import numpy as np

from . import check, wire
from ._pb import pb
from .errors import EngramConnectionError, EngramError, NotFound, ProtocolError, Unavailable
from .rows import DTYPES, Layout, rows_array
from .transport import Future, Transport

_LITTLE_ENDIAN = sys.byteorder == "little"  # the order shm_slots are read in

TableInfo = collections.namedtuple(
    "TableInfo", "name slots dim dtype scale_block row_bytes generation hash_kind "
                 "rows_per_token path chunk_slots")
Stats = collections.namedtuple(
    "Stats", "uptime_seconds connections requests errors rows bytes_out reloads "
             "reload_failures")
Pong = collections.namedtuple("Pong", "protocol_version server_version")
ReloadResult = collections.namedtuple(
    "ReloadResult", "table old_generation new_generation reloaded error path")

# The socket of the daemon installed as a service (engramd.socket): the
# address a Client or connect() uses when given none.
DEFAULT_ADDRESS = "unix:/run/engramd/engramd.sock"

# Largest response frame accepted whatever the request (each request also
# bounds its answer: check.frame_limit).
DEFAULT_MAX_FRAME = 1 << 34


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


def _torch():
    try:
        from . import torch as et
    except ImportError:
        raise ImportError("as_torch=True and torch out= buffers need PyTorch "
                          "(Debian: python3-torch)") from None
    return et


def _out_bytes(out):
    """A flat writable uint8 view of the caller's buffer (no copy)."""
    if type(out).__module__.split(".")[0] == "torch":
        arr = _torch().as_numpy(out)
    elif isinstance(out, np.ndarray):
        arr = out
    else:
        arr = np.frombuffer(out, dtype=np.uint8)
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError("out= must be a writable, C-contiguous buffer")
    return arr.reshape(-1).view(np.uint8)


class Client(Transport):
    """A connection to engramd at addr ("unix:/path" or "tcp:host:port";
    None: DEFAULT_ADDRESS, unix:/run/engramd/engramd.sock).

    timeout (seconds, None = no limit) bounds connecting and every wait.
    The connection is opened here; a failure raises EngramConnectionError.
    background=False: no I/O threads; futures move only in
    the calls (a request is sent by its call, its answer read by result()).
    """

    def __init__(self, addr=None, timeout=None, max_frame=DEFAULT_MAX_FRAME, connect=True,
                 shm_bytes=None, monotonic=False, background=True):
        if addr is None:
            addr = DEFAULT_ADDRESS
        self.addr = addr
        self.min_generation = {}  # {table: oldest generation accepted}
        self.monotonic = monotonic
        self._family, self._target = parse_address(addr)
        self.timeout = timeout
        self.max_frame = max_frame
        self._init_transport(background)
        self._layouts = {}      # {table: Layout} and {table: rows per token},
        self._rpts = {}         # from info on the current connection
        self._shm_fd = None     # the shared buffer's memfd, once attached
        self._shm_map = None    # its mmap, and a uint8 array over it
        self._shm = self._shm_u64 = self._shm_addr = None
        self._placed_view = None  # (view of _shm, its offset): see _put_shm_slots
        if shm_bytes and self._family != "unix":
            raise ValueError("a shared buffer needs a unix:PATH address")
        if connect:
            with self._wlock, self._lock:
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
        with self._wlock, self._lock:
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
            self._shm_u64 = self._shm[:nbytes & ~7].view("<u8")  # slots placed there
            self._shm_addr = self._shm.__array_interface__["data"][0]
            # the attach must be the first frame of a connection
            self._break(EngramConnectionError("reconnecting to attach a shared buffer"))
            try:
                self._connect()
            except BaseException:
                self._shm = self._shm_u64 = self._shm_map = None
                os.close(fd)
                self._shm_fd = None
                raise
            return self._shm

    @property
    def shm(self):
        """The attached shared buffer (uint8 ndarray), or None."""
        return self._shm

    def lookup(self, table, slots, decode=False, shm=False, shm_offset=0, out=None,
               as_torch=False):
        """Rows of slots (any integer sequence/array) of table: ndarray
        [n, dim] (see rows.py for dtypes and decode). With shm=True (after
        attach_shm) the daemon writes the rows into the shared buffer at
        shm_offset and the result is a view of it, valid until the next shm
        call writing over that range (the range is the request's from the
        call on: its slots may wait there for the daemon). Slots that already
        lie there (client.shm[off:off + 8 * n].view("<u8") filled by the
        caller, e.g. by its hashing) are not copied; the rows then write
        over them. out=buf: the
        rows as stored go into buf (n x row_bytes bytes, no decode), which
        is returned; inside the shared buffer the daemon writes them there
        itself. as_torch=True: a torch.Tensor sharing the rows' memory."""
        wrap = self._wrapper(out, as_torch)
        # made again for a retry: slots in the shared buffer are put back
        return self._retried(lambda: self._submit(
            "lookup", wire.REQ_LOOKUP,
            *self._lookup_args(table, slots, decode, shm, shm_offset, out), wrap=wrap))

    def lookup_async(self, table, slots, decode=False, shm=False, shm_offset=0, out=None,
                     as_torch=False):
        """Sends a lookup now; Future whose result() is lookup()'s value.
        The rows are received as they arrive, while the caller computes."""
        wrap = self._wrapper(out, as_torch)
        body, args, ob = self._lookup_args(table, slots, decode, shm, shm_offset, out,
                                           self._background_reads)
        return self._submit("lookup", wire.REQ_LOOKUP, body, args, ob, wrap, True)

    def tokens(self, tables, token_ids, seq_lens=None, context=None, decode=False,
               shm=False, shm_offset=0, as_torch=False):
        """Rows of every returned token for each table, hashed by the daemon
        with the table's hash spec: {table: ndarray [T, rows_per_token, dim]}.

        token_ids: raw ids of all sequences back to back, or a 2-D array of
        equal-length sequences (then seq_lens defaults to its rows). context:
        per sequence, leading tokens that are history only (no rows).
        shm=True: the blocks go into the shared buffer back to back from
        shm_offset; the arrays are views of it (see lookup). as_torch=True:
        torch.Tensors sharing the rows' memory."""
        args = self._tokens_args(tables, token_ids, seq_lens, context, decode,
                                 self._shm_offset(shm, shm_offset), self.min_generation)
        return self._call("tokens", wire.REQ_TOKENS, args[0], args[1],
                          wrap=self._wrapper(None, as_torch))

    def tokens_async(self, tables, token_ids, seq_lens=None, context=None, decode=False,
                     shm=False, shm_offset=0, as_torch=False):
        """Sends a token lookup now; Future whose result() is tokens()'s value."""
        args = self._tokens_args(tables, token_ids, seq_lens, context, decode,
                                 self._shm_offset(shm, shm_offset), self.min_generation)
        return self._submit("tokens", wire.REQ_TOKENS, args[0], args[1],
                            wrap=self._wrapper(None, as_torch), queued=True)

    def close(self):
        """Closes the connection; outstanding futures fail."""
        with self._lock:
            self._break(EngramConnectionError("client closed"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- requests ----------------------------------------------------------

    def _lookup_args(self, table, slots, decode, shm, shm_offset, out, lazy=False):
        """(body, args, out bytes) of a lookup. lazy: the body is a function
        encoding a copy of the slots later (an I/O thread calls it), so
        issuing costs the caller a copy, and it may reuse its array."""
        slots = wire.slot_ids(slots)  # checked here, so errors raise in the caller
        n = slots.size
        offset = self._shm_offset(shm, shm_offset)
        ob = None
        if out is not None:
            if decode:
                raise ValueError("out= receives the rows as stored: not with decode=True")
            ob = _out_bytes(out)
            lay = self._layout(table, None)
            if len(ob) != n * lay.row_bytes:
                raise ValueError(f"out= holds {len(ob)} bytes; {n} rows of table {table!r} "
                                 f"are {n * lay.row_bytes}")
            inside = self._shm_place(ob)
            if inside is not None:
                offset = inside
        floor = self.min_generation.get(table, 0)  # as of the call
        if offset is not None and self._put_shm_slots(table, slots, n, offset):
            body = functools.partial(self._shm_slots_body, table, offset, n, floor)
        else:
            # encoded when sent, for its connection: as fixed_slots once that
            # daemon said it reads them (a lazy body keeps a copy of the slots)
            ids = slots.copy() if lazy else slots
            body = lambda conn: wire.lookup_parts(table, ids, offset, floor,  # noqa: E731
                                                  fixed=conn.fixed_slots)
        return body, (table, decode, n, offset), ob

    def _put_shm_slots(self, table, slots, n, offset):
        """Puts a shm lookup's slots where they wait for the daemon, when
        they can: in the request's own rows range, which no other request in
        flight may use (see docs/PROTOCOL.md), once the table's layout is
        known, a row is at least as long as a slot and the rows fit. Slots
        there already (a view the caller filled) are not copied: a view's
        offset is asked for once (that costs microseconds) and kept with it,
        as its memory stays put (NumPy's deprecated data assignment gives it
        another base). Whether they are there. One function: between decode
        steps the interpreter's caches are cold and a call costs 1-2 us."""
        lay = self._layouts.get(table)
        if not (n > 0 and lay is not None and lay.row_bytes >= 8 and _LITTLE_ENDIAN):
            return False
        end = offset + n * lay.row_bytes
        # nothing pending: nothing in flight (a request joins _pending before it is sent)
        if end > len(self._shm) or (self._pending and self._shm_in_use(offset, end)):
            return False
        if offset & 7:
            self._shm[offset:offset + 8 * n].view("<u8")[:] = slots
            return True
        if slots.base is self._shm and slots.strides == (8,):
            seen = self._placed_view
            if seen is None or seen[0] is not slots:
                seen = self._placed_view = (
                    slots, slots.__array_interface__["data"][0] - self._shm_addr)
            if seen[1] == offset:
                return True  # written there by the caller
        self._shm_u64[offset >> 3:(offset >> 3) + n] = slots
        return True

    def _shm_in_use(self, start, end):
        """Whether a request in flight may still have the daemon write rows
        into [start, end) of the shared buffer (two requests at one range is
        the caller's mistake; its slots are then sent in the frame, so that
        only the earlier request's rows are overwritten, as without
        shm_slots)."""
        with self._lock:
            pending = [f for f in self._pending if f.kind in ("lookup", "tokens")]
        for f in pending:
            off = f._args[3]
            if off is None:
                continue
            stop = len(self._shm)  # a token lookup's blocks, or a layout not known
            lay = self._layouts.get(f._args[0]) if f.kind == "lookup" else None
            if lay is not None:
                stop = off + f._args[2] * lay.row_bytes
            if off < end and start < stop:
                return True
        return False

    def _shm_slots_body(self, table, offset, n, floor, conn):
        """The body of a lookup whose n slots wait in the shared buffer at
        offset, made when it is sent on conn: only their count when the
        connection's daemon reads them there (its attach answer said so),
        else the slots read back into the frame (they stay put until the
        daemon has the request)."""
        if conn.reads_slots:
            return wire.lookup_parts(table, (), offset, floor, shm_slots=n)
        return wire.lookup_parts(table, self._shm[offset:offset + 8 * n].view("<u8"), offset,
                                 floor, fixed=conn.fixed_slots)

    def _shm_place(self, ob):
        """Offset of buffer ob in the shared buffer, or None when outside."""
        if self._shm is None or not len(ob):
            return None
        off = ob.__array_interface__["data"][0] - self._shm_addr
        return off if 0 <= off and off + len(ob) <= len(self._shm) else None

    def _shm_offset(self, shm, offset):
        if not shm:
            return None
        if self._shm is None:
            raise EngramError("shm=True needs a shared buffer: call attach_shm first")
        return int(offset)

    @staticmethod
    def _wrapper(out, as_torch):
        """What result() returns instead of the rows array(s), or None."""
        if out is not None:
            return lambda rows, lay: out
        if as_torch:
            et = _torch()
            return lambda rows, lay: et.as_tensor(rows, lay)
        return None

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

    def _call(self, kind, field, body, args=None, out=None, wrap=None):
        return self._retried(lambda: self._submit(kind, field, body, args, out, wrap))

    @staticmethod
    def _retried(submit):
        """submit().result(); submitted once more when the connection it met
        turned out dead before it was answered (Transport._queue)."""
        fut = submit()
        try:
            return fut.result()
        except EngramConnectionError:
            if not fut._retryable:
                raise
        return submit().result()

    # ---- turning responses into values --------------------------------------

    def _finish(self, fut):
        frame, hdr, kind = fut._frame, fut._header, fut.kind
        if kind == "lookup":
            table, decode, nslots, shm_offset = fut._args
            check.block_list(hdr.blocks, [table])
            blk = hdr.blocks[0]
            lay = self._layout(table, blk.row_bytes)
            check.block_rows(0, blk, nslots, shm_offset, self._shm_size())
            fut.generations = {table: blk.generation}
            self._check_generations(fut.generations)
            if fut._out is not None:
                self._place_out(fut, frame, blk)
                return fut._wrap(None, lay)
            rows = self._block_rows(frame, blk, lay, decode)
            return fut._wrap(rows, lay) if fut._wrap else rows
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

    def _settles_early(self, fut, hdr):
        """Whether the reader of fut's answer may make its value at once: a
        lookup or token lookup whose making asks the daemon nothing (each
        block's table has a known layout of the block's row size). Else
        result() makes it."""
        if fut.kind == "lookup":
            tables = (fut._args[0],)
        elif fut.kind == "tokens":
            tables = fut._args[0]
        else:
            return False
        for table, blk in zip(tables, hdr.blocks):
            lay = self._layouts.get(table)
            if lay is None or lay.row_bytes != blk.row_bytes:
                return False
        return True

    def _place_out(self, fut, frame, blk):
        """The rows of a checked lookup block into the caller's buffer: there
        already (received into it, or written by the daemon into it inside
        the shared buffer), else copied."""
        out, size = fut._out, blk.count * blk.row_bytes
        if len(out) != size:
            raise ProtocolError(f"the answer holds {size} bytes of rows; out= has {len(out)}")
        if blk.shm:
            src = self._shm[blk.shm_offset:blk.shm_offset + size]
        elif fut._direct is not None:
            if fut._direct != blk.data_off:
                raise ProtocolError(f"rows received at frame offset {fut._direct}, but the "
                                    f"answer puts them at {blk.data_off}")
            return
        else:
            src = frame[blk.data_off:blk.data_off + size]
        if size and src.ctypes.data != out.ctypes.data:
            out[:] = src

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
            rows = rows.reshape((ntok, per) + rows.shape[1:])
            out[table] = fut._wrap(rows, lay) if fut._wrap else rows
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
        if self.monotonic:  # an I/O thread and callers may raise it at once
            with self._lock:
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
