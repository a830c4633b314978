"""The connection under a Client: sending requests in order, reading
responses, and threads that do both while the caller computes.

Requests go out in the order of the pending queue: every request is queued
(with its future) under the client's lock, and whoever holds the send lock
sends the queue's head: the caller of a blocking call, which sends what is
queued before its own request, or, for the *_async calls, one of the
client's two I/O threads, so issuing a lookup costs the caller only queueing
it and waking that thread (the request is encoded and written meanwhile).
Responses come back in request order, so the next frame on the wire always
belongs to the oldest pending future. Whoever holds the *read role* reads
it: a caller waiting in result(), a sender whose socket is full (the daemon
may be waiting for us to read before it reads more), or, while a future of
an *_async call waits, an I/O thread, which receives rows while the caller
computes (socket waits release the GIL): the thread that sent the request
reads on, so one wake-up serves the whole fetch, and the other thread is
there to send the next request meanwhile. The reader of an *_async answer
also turns it into result()'s value (checks, array views, decoding) when
that asks the daemon nothing (the table's layout is known), so result()
only hands the value over (for a 4096-row decode batch through the
shared buffer, making it was a third of the whole fetch). The
role is a flag under the client's lock; only its holder touches the
socket's receive side and the read-ahead buffer, and it does so without
holding the lock, so other threads can send meanwhile. Senders take a
second lock of their own, so that requests reach the wire in the order of
the pending queue.

A connection that breaks is shut down at once (waking a reader blocked on
it) and closed by the last thread using it, so no descriptor is closed
under a thread still polling it. Every pending future then fails with the
error, and the next call reconnects.
"""
import array
import collections
import queue
import select
import socket
import threading
import time
import weakref

import numpy as np

from . import check, wire
from ._pb import pb
from .errors import EngramConnectionError, EngramError, EngramTimeout, ProtocolError, from_status

# Row data is placed at this alignment in memory (first block of a frame).
_ALIGN = 64
_READ_AHEAD = 1 << 16
# A frame whose length is bounded only by what no table can exceed (its
# tables' layouts not known yet) starts in a buffer this big.
_GROW_FROM = 64 << 20
# Bytes one recv may copy: a Unix socket's recv goes on copying while the
# sender keeps its queue filled, and a kernel without preemption switches
# to no other thread inside a system call (next to a client receiving
# 160 MB answers, a decode step waited up to 33 - 40 ms with whole-answer
# recvs in libengram, 21 - 28 ms with capped ones).
_RECV_MAX = 1 << 20
# A sender waiting for room re-checks this often whether it must read.
_SEND_SLICE_MS = 20
# I/O threads of a client: one can send while the other reads.
_IO_THREADS = 2
# An idle I/O thread checks this often whether its client still exists.
_IDLE_S = 1.0
_POLLIN = select.POLLIN | select.POLLHUP | select.POLLERR
_POLLOUT = select.POLLOUT


def aligned(n, off):
    """A uint8 array of n bytes whose byte off (None: any) is 64-byte aligned."""
    buf = np.empty(n + _ALIGN, dtype=np.uint8)
    shift = 0 if off is None else -(buf.ctypes.data + off) % _ALIGN
    return buf[shift:shift + n]


class Future:
    """A request sent and not yet collected. result() waits for it."""

    __slots__ = ("_client", "id", "kind", "_args", "_frame", "_header", "_exc",
                 "_done", "_retryable", "generations", "_queued", "_background", "_out",
                 "_direct", "_wrap", "_settled", "_value")

    def __init__(self, client, req_id, kind, args, out=None, wrap=None, queued=False):
        self._client, self.id, self.kind, self._args = client, req_id, kind, args
        self._frame = self._header = self._exc = None
        self._done = False
        self._retryable = False
        self._queued = queued     # an *_async call's: an I/O thread sends it
        self._background = False  # read and turned into its value by an I/O thread
        self._settled = False     # _value is result()'s value (made by whoever read it)
        self._value = None
        self._out = out           # lookup(out=...): uint8 view of the caller's buffer
        self._direct = None       # frame offset of the rows received into _out
        self._wrap = wrap         # turns the rows into what result() returns
        # {table: generation} of the rows, filled by result().
        self.generations = None

    def done(self):
        """True when the response has been read (result() will not block)."""
        return self._done

    def result(self, timeout=None):
        """The call's value; raises its EngramError. timeout (seconds) bounds
        this wait (default: the client's timeout)."""
        if self._done and self._settled and self._exc is None:
            return self._value  # made by the I/O thread that read it: no lock, no wait
        return self._client._collect(self, timeout)


class _Conn:
    """One connection: its socket (non-blocking), a poller for the reader,
    two for the sender and one for the idle check (each never used by two
    threads at once), the read-ahead buffer, and how many threads use it now."""

    __slots__ = ("sock", "rpoll", "wpoll", "opoll", "ipoll", "rbuf", "rpos", "rend", "refs",
                 "dead", "reading", "reads_slots", "fixed_slots", "wbuf")

    def __init__(self, sock):
        self.sock = sock
        fd = sock.fileno()
        self.rpoll, self.wpoll, self.opoll = select.poll(), select.poll(), select.poll()
        self.rpoll.register(fd, _POLLIN)
        self.wpoll.register(fd, _POLLIN | _POLLOUT)
        self.opoll.register(fd, _POLLOUT)
        self.ipoll = select.poll()  # the idle check's, under the client's lock
        self.ipoll.register(fd, _POLLIN)
        self.rbuf = bytearray(_READ_AHEAD)
        self.rpos = self.rend = 0
        self.refs = 0
        self.dead = False
        self.reading = False  # a thread holds the read role
        self.reads_slots = False  # the daemon reads shm_slots (its attach answer)
        self.fixed_slots = False  # it reads fixed_slots (said in its rows answers)
        # requests are framed here (send lock held); it keeps the size of
        # the largest request sent on the connection, as libengram's does
        self.wbuf = bytearray()


def _poll_ms(left):
    return None if left is None else max(1, int(left * 1000))


def _io_main(ref):
    """One of a client's I/O threads: sends queued requests, and reads
    answers while a background future waits. The thread that wrote a
    request, awake already, goes on to read its answer: waking another for
    it would cost more than the read (and on a VM a woken thread can wait
    hundreds of microseconds for a core). With nothing to do, the thread
    joins the client's idle list (in the same hold of the lock as its look
    for work, so no wake-up is lost) and waits on its own queue; a waker
    takes the thread that went idle last (its caches are the warmest; with
    a queue shared by both threads they took turns). Holds its client only
    while working, so a client nobody keeps is freed (and the threads end
    within _IDLE_S)."""
    kick = queue.SimpleQueue()  # put() by whoever wakes this thread
    while True:
        c = ref()
        if c is None:
            return
        role = None
        with c._lock:
            send = bool(c._unsent)
            if not send:
                if c._conn is None:
                    c._io_threads -= 1
                    return
                if not c._conn.reading and any(f._background for f in c._pending):
                    role = c._take_role()
                else:
                    c._idle.append(kick)
        if send:
            c._flush(None)
        elif role is not None:
            c._read_with_role(role, None, wake=False)
        idle = c._idle
        del c
        if not send and role is None:
            try:
                kick.get(timeout=_IDLE_S)
            except queue.Empty:
                pass
            # still listed after a timeout, or after the late put() of a
            # waker that took this queue as the wait timed out
            if kick in idle:
                try:
                    idle.remove(kick)
                except ValueError:  # a waker took it just now: its put() wakes us next time
                    pass


class Transport:
    """Connection machinery of Client (client.py): see the module doc."""

    def _init_transport(self, background):
        self._background_reads = background
        self._lock = threading.RLock()   # state: queue, connection, role
        self._cv = threading.Condition(self._lock)
        # the queues of idle I/O threads, the last one idle at the end: a
        # put() on one wakes it in one futex call, made outside the lock (a
        # Condition's notify would wake it into the lock held)
        self._idle = []
        self._wlock = threading.Lock()   # the send side, in queue order
        self._conn = None
        self._io_threads = 0  # running _io_main
        self._next_id = 1
        self._pending = collections.deque()
        self._unsent = collections.deque()  # (future, field, body, connection)

    # ---- timing --------------------------------------------------------------

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

    # ---- the connection --------------------------------------------------------

    def _connect(self):
        """Opens a connection (lock and send lock held)."""
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
        s.setblocking(False)
        self._conn = _Conn(s)
        # another daemon may serve other layouts: learn them again
        self._layouts, self._rpts = {}, {}
        if self._shm_fd is not None:
            self._send_attach()

    def _send_attach(self):
        """Attaches the shared buffer: the first frame of the connection,
        with the memfd as SCM_RIGHTS; its answer is read here."""
        conn = self._conn
        req_id = self._next_id
        self._next_id += 1
        fut = Future(self, req_id, "attach", None)
        self._pending.append(fut)
        body = pb.AttachShmRequest(size=len(self._shm)).SerializeToString()
        data = wire.request(req_id, wire.REQ_ATTACH_SHM, body)
        deadline = self._deadline(None)
        role = self._take_role()
        try:
            sent = self._sendmsg_fd(conn, data, deadline)
            if sent < len(data):
                self._send(conn, data[sent:], deadline)
            while not fut._done:
                self._read_one(conn, deadline)
        except EngramError as e:
            self._break(e)
        finally:
            self._drop_role(role)
        if fut._exc is not None:
            self._break(fut._exc)
            raise fut._exc
        try:
            msg = pb.Response.FromString(fut._frame.tobytes())
        except Exception as e:  # protobuf's DecodeError, or worse
            exc = ProtocolError(f"malformed answer to attach_shm from {self.addr}: {e}")
            self._break(exc)
            raise exc from None
        # a daemon that predates shm_slots answers with no body
        conn.reads_slots = msg.WhichOneof("body") == "attach_shm" and msg.attach_shm.reads_slots

    def _sendmsg_fd(self, conn, data, deadline):
        fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [self._shm_fd]))]
        while True:
            try:
                return conn.sock.sendmsg([data], fds)
            except BlockingIOError:
                if not conn.opoll.poll(_poll_ms(self._remaining(deadline))):
                    raise EngramTimeout(f"timed out sending to {self.addr}") from None
            except OSError as e:
                raise self._conn_error("attaching a shared buffer on", e) from None

    def _ensure_connected(self):
        """Connects when needed (both locks held); True when the connection
        is new. An idle connection the daemon has closed is replaced."""
        if self._conn is not None and not self._pending:
            if self._idle_connection_dead():
                self._break(EngramConnectionError("daemon closed the connection"))
        if self._conn is None:
            self._connect()
            return True
        return False

    def _idle_connection_dead(self):
        conn = self._conn
        if conn.rend > conn.rpos:
            return True  # bytes nobody asked for: the stream is out of step
        # Readable while idle: either EOF (the daemon went away) or bytes
        # nobody asked for; both mean this connection is done.
        return bool(conn.ipoll.poll(0))

    def _break(self, exc):
        """Drops the connection (lock held); every pending future fails
        with exc. A thread still using the socket closes it when done."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.dead = True
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if conn.refs == 0:
                conn.sock.close()
        while self._pending:
            fut = self._pending.popleft()
            fut._exc, fut._done = exc, True
        self._unsent.clear()
        self._cv.notify_all()
        while self._idle:
            self._wake_one()

    def _release(self, conn):
        """One thread is done with conn (lock held)."""
        conn.refs -= 1
        if conn.dead and conn.refs == 0:
            conn.sock.close()

    def _conn_error(self, what, e):
        if isinstance(e, socket.timeout):
            return EngramTimeout(f"timed out waiting for {self.addr}")
        return EngramConnectionError(f"{what} {self.addr}: {e.strerror or e}")

    # ---- the read role -----------------------------------------------------------

    def _take_role(self):
        """Takes the read role of the connection (lock held, role free)."""
        conn = self._conn
        conn.reading = True
        conn.refs += 1
        return conn

    def _drop_role(self, conn, wake=True):
        """Lets the read role go. wake: an I/O thread is woken to take it
        when a background future still waits (an I/O thread dropping it
        takes it again itself)."""
        with self._lock:
            conn.reading = False
            self._release(conn)
            self._cv.notify_all()
            wake = wake and self._io_threads and any(f._background for f in self._pending)
        if wake:
            self._wake_one()

    def _wake_one(self):
        """Wakes the I/O thread idle the shortest time, if one is idle (a
        busy one looks for work before it waits)."""
        idle = self._idle
        if idle:
            try:
                idle.pop().put(None)
            except IndexError:  # another waker took the last one meanwhile
                pass

    def _read_with_role(self, conn, deadline, wake=True):
        """Reads one response with the role held, then lets the role go
        (wake: see _drop_role); a failure breaks the connection (its
        futures get the error)."""
        try:
            self._read_one(conn, deadline)
        except EngramError as e:
            with self._lock:
                if conn is self._conn:
                    self._break(e)
        finally:
            self._drop_role(conn, wake)

    def _start_threads(self):
        """Starts the I/O threads unless they run (lock held)."""
        if not self._background_reads:
            return
        while self._io_threads < _IO_THREADS:
            threading.Thread(target=_io_main, args=(weakref.ref(self),),
                             name="engram-io", daemon=True).start()
            self._io_threads += 1

    # ---- sending -------------------------------------------------------------------

    def _submit(self, kind, field, body, args=None, out=None, wrap=None, queued=False):
        """The future of a request (kind, args, out, wrap: see Future),
        queued with its body (bytes, or a function making them, called when
        it is sent) and sent, or when queued (an *_async call's) left to an
        I/O thread to send and read the answer of. A failure to send fails
        it (and whatever else is pending) rather than raising."""
        fut = Future(self, None, kind, args, out, wrap, queued)
        threads = fut._background = queued and self._background_reads
        while True:
            with self._lock:
                if self._conn is not None and (self._pending or
                                               not self._idle_connection_dead()):
                    self._queue(fut, field, body, False, threads)
                    break
            with self._wlock, self._lock:
                if self._conn is not None and not self._pending and \
                        self._idle_connection_dead():
                    self._break(EngramConnectionError("daemon closed the connection"))
                if self._conn is None:
                    self._connect()
                    self._queue(fut, field, body, True, threads)
                    break
        if threads:
            self._wake_one()
            return fut
        self._flush(fut)
        return fut

    def _queue(self, fut, field, body, fresh, threads):
        """(lock held, connected) fut joins the pending and unsent queues;
        threads: the I/O threads are started unless they run."""
        if threads:
            self._start_threads()
        fut.id = self._next_id
        self._next_id += 1
        # A request that alone met a connection opened before it may be
        # resent once on a new one if that connection turns out dead.
        fut._retryable = not fresh and not self._pending
        self._pending.append(fut)
        self._unsent.append((fut, field, body, self._conn))

    def _flush(self, until):
        """Sends queued requests (taking the send lock) up to and including
        until's, or all of them when until is None."""
        with self._wlock:
            while True:
                with self._lock:
                    item = self._unsent.popleft() if self._unsent else None
                if item is None:
                    return
                self._send_item(*item)
                if item[0] is until:
                    return

    def _send_item(self, fut, field, body, conn):
        """Writes one queued request (send lock held)."""
        with self._lock:
            if conn is not self._conn:
                return  # broken meanwhile: fut has failed already
            conn.refs += 1
        deadline = self._deadline(None)
        try:
            parts = body(conn) if callable(body) else [body]
            conn.wbuf, data = wire.request_into(conn.wbuf, fut.id, field, parts)
            self._send(conn, data, deadline)
        except EngramError as e:
            if isinstance(e, EngramConnectionError):
                self._drain(conn, deadline)
            # fails whatever is still outstanding, this request included
            # unless a response (an error for it) already arrived
            with self._lock:
                if conn is self._conn:
                    self._break(e)
        except Exception as e:  # encoding it failed: the queue is out of step
            with self._lock:
                if conn is self._conn:
                    self._break(EngramError(f"encoding request {fut.id}: {e}"))
        finally:
            with self._lock:
                self._release(conn)

    def _send(self, conn, data, deadline):
        """Writes data (send lock held). While the socket is full it reads
        responses when nobody else does, so a daemon that stops reading
        until we drain its output cannot wedge us."""
        mv = memoryview(data)
        off, total = 0, len(data)
        while off < total:
            try:
                off += conn.sock.send(mv[off:])
                continue
            except BlockingIOError:
                pass
            except OSError as e:
                raise self._conn_error("sending to", e) from None
            with self._lock:
                mine = conn is self._conn and not conn.reading and bool(self._pending)
                if mine:
                    self._take_role()
            if not mine:
                left = self._remaining(deadline)
                conn.opoll.poll(min(_SEND_SLICE_MS, _poll_ms(left) or _SEND_SLICE_MS))
                continue
            try:
                events = conn.wpoll.poll(_poll_ms(self._remaining(deadline)))
                if not events:
                    raise EngramTimeout(f"timed out sending to {self.addr}")
                if events[0][1] & _POLLIN:
                    self._read_one(conn, deadline)
            finally:
                self._drop_role(conn)

    def _drain(self, conn, deadline):
        """After a failed send: the daemon may have answered (e.g. TOO_LARGE
        for a frame over its limit) and then closed; read what it sent."""
        with self._lock:
            try:
                while conn is self._conn and conn.reading:
                    self._cv.wait(self._remaining(deadline))
            except EngramTimeout:
                return
            if conn is not self._conn or not self._pending:
                return
            self._take_role()
        try:
            while True:
                with self._lock:
                    if conn is not self._conn or not self._pending:
                        return
                self._read_one(conn, deadline)
        except EngramError:
            pass
        finally:
            self._drop_role(conn)

    # ---- receiving -------------------------------------------------------------------

    def _collect(self, fut, timeout):
        """Waits until fut is answered, reading when nobody else does."""
        deadline = self._deadline(timeout)
        while True:
            with self._lock:
                conn = self._wait_role(fut, deadline)
            if conn is None:
                break
            self._read_with_role(conn, deadline)
        if fut._exc is not None:
            raise fut._exc
        return fut._value if fut._settled else self._finish(fut)

    def _wait_role(self, fut, deadline):
        """(lock held) None once fut is done; else the connection, with the
        read role taken. A deadline that passes breaks the connection."""
        while not fut._done:
            if self._conn is None or not self._pending:
                raise ProtocolError("future is not outstanding on this client")
            if not self._conn.reading:
                return self._take_role()
            try:
                self._cv.wait(self._remaining(deadline))
            except EngramTimeout as e:
                self._break(e)
        return None

    def _recv_into(self, conn, mv, deadline, wait=False):
        """Bytes received into mv (at least one). wait: poll first, as
        nothing is expected yet (a recv that finds nothing raises, and an
        exception costs more than the poll)."""
        while True:
            if wait and not conn.rpoll.poll(_poll_ms(self._remaining(deadline))):
                raise EngramTimeout(f"timed out waiting for {self.addr}")
            try:
                n = conn.sock.recv_into(mv[:_RECV_MAX] if len(mv) > _RECV_MAX else mv)
            except BlockingIOError:
                wait = True
                continue
            except OSError as e:
                raise self._conn_error("reading from", e) from None
            if n == 0:
                raise EngramConnectionError(f"{self.addr} closed the connection")
            return n

    def _fill(self, conn, deadline, wait=False):
        """Reads more into the read-ahead buffer (wait: see _recv_into)."""
        if conn.rpos:
            n = conn.rend - conn.rpos
            conn.rbuf[:n] = conn.rbuf[conn.rpos:conn.rend]
            conn.rpos, conn.rend = 0, n
        conn.rend += self._recv_into(conn, memoryview(conn.rbuf)[conn.rend:], deadline, wait)

    def _read_into(self, conn, dst, deadline):
        """Fills the uint8 array dst from the stream: read-ahead bytes
        first, the rest straight from the socket."""
        n = len(dst)
        k = min(conn.rend - conn.rpos, n)
        if k:
            dst[:k] = np.frombuffer(conn.rbuf, np.uint8, k, conn.rpos)
            conn.rpos += k
            if conn.rpos == conn.rend:
                conn.rpos = conn.rend = 0
        mv = memoryview(dst)
        while k < n:
            k += self._recv_into(conn, mv[k:], deadline)

    def _read_frame(self, conn, fut, deadline):
        """One response frame as a fresh writable uint8 array whose first
        row block (if any: a shm request's answer has none) starts at a
        64-byte aligned address."""
        if conn.rpos == conn.rend:  # the usual case: wait for the frame
            self._fill(conn, deadline, wait=True)
        while True:
            try:
                length, pos = wire.read_varint(conn.rbuf, conn.rpos, conn.rend)
                break
            except ProtocolError:
                if conn.rend - conn.rpos >= 10:
                    raise
                self._fill(conn, deadline)
        limit, exact = check.frame_limit(fut.kind, fut._args, self._layouts, self._rpts)
        limit = min(self.max_frame, limit)
        if length > limit:
            raise ProtocolError(f"daemon announced a response of {length} bytes to request "
                                f"{fut.id}; a true answer has at most {limit}")
        conn.rpos = pos
        try:
            # a length only bounded loosely is not allocated at once
            return self._read_body(conn, fut, length, deadline, length if exact else _GROW_FROM)
        except EngramConnectionError:
            raise ProtocolError(f"{self.addr} closed the connection in the middle of a "
                                f"response (a truncated frame)") from None

    def _read_body(self, conn, fut, length, deadline, room):
        """The length bytes of a frame whose length prefix is read, in a
        buffer of room bytes at first, doubled as the bytes come. The rows
        of a lookup with out= go straight into the caller's buffer when the
        frame says they fit it exactly (the frame's bytes there stay unset)."""
        want = min(length, 256)
        while conn.rend - conn.rpos < want:
            self._fill(conn, deadline)
        if length == want and fut._args is not None and fut._args[3] is not None:
            # the whole answer of a shm request (its rows are in the shared
            # buffer): no row data to place, so one slice of the bytes (less
            # CPU than an array filled by _read_into, measured)
            frame = np.frombuffer(conn.rbuf[conn.rpos:conn.rpos + length], np.uint8)
            conn.rpos += length
            if conn.rpos == conn.rend:
                conn.rpos = conn.rend = 0
            return frame
        take = min(conn.rend - conn.rpos, length)
        off, dlen = wire.first_data(conn.rbuf, conn.rpos, conn.rpos + take)
        out = fut._out
        if out is not None and off is not None and dlen == len(out) and room >= length \
                and off + dlen <= length:
            frame = aligned(length, off)
            self._read_into(conn, frame[:off], deadline)
            self._read_into(conn, out, deadline)
            self._read_into(conn, frame[off + dlen:], deadline)
            fut._direct = off
            return frame
        frame = aligned(min(length, max(room, take)), off)
        self._read_into(conn, frame[:take], deadline)
        got = take
        while got < length:
            if got == len(frame):
                bigger = aligned(min(length, 2 * got), off)
                bigger[:got] = frame
                frame = bigger
            got += self._recv_into(conn, memoryview(frame)[got:], deadline)
        return frame

    def _read_one(self, conn, deadline):
        """Reads the next response (read role held, lock not) and completes
        the oldest future with it."""
        with self._lock:
            if conn is not self._conn:
                raise EngramConnectionError("the connection was closed")
            if not self._pending:
                raise ProtocolError("daemon sent a response nobody asked for")
            fut = self._pending[0]
        frame = self._read_frame(conn, fut, deadline)
        hdr = wire.parse_response(memoryview(frame), 0, len(frame))
        if hdr.id != fut.id and not (hdr.id == 0 and hdr.status != 0):
            raise ProtocolError(f"response id {hdr.id} does not match request {fut.id}")
        if hdr.reads_fixed_slots:
            conn.fixed_slots = True  # later lookups on conn send their slots as words
        exc = from_status(hdr.status, hdr.error) if hdr.status != 0 else None
        if exc is None:
            fut._frame, fut._header = frame, hdr  # read only once fut is done
            if fut._background and self._settles_early(fut, hdr):
                # the value is made here, while the caller computes: result()
                # then only returns it (its checks' errors are raised there)
                try:
                    fut._value = self._finish(fut)
                    fut._settled = True
                except Exception as e:  # noqa: BLE001 - raised by result()
                    exc = e
        with self._lock:
            if conn is not self._conn or not self._pending or self._pending[0] is not fut:
                return  # broken meanwhile: fut has failed already
            self._pending.popleft()
            fut._exc = exc
            fut._done = True
            self._cv.notify_all()
