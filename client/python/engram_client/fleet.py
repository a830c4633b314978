"""Fleet: a client of several engramd daemons, with failover.

    f = Fleet("tcp:h1:7070,tcp:h2:7070", timeout=2.0)       # replicas
    f = Fleet("layer1=tcp:h1:7070;layer14=tcp:h3:7070")    # routed tables
    f = Fleet("@routes.json")  or  Fleet(["tcp:a:1", ...])  # (routes.py)
    f = Fleet("tcp:haproxy:7070")       # one address behind a load balancer
    rows = f.lookup("layer1", slots)
    blocks = f.tokens(["layer1", "layer14"], ids)   # one request per host, at once

The same calls as Client, with libengram's rules (client/engram.h, "Several
daemons"): one Client per replica it has used; each request goes to a
replica of the group serving its table: a unix: one (on this host) whenever
it is not backing off, else the one in use while it answers, else the next
one not backing off (clients start at a random replica). A replica that
cannot be reached, breaks the connection, exceeds the try timeout
(try_timeout, default half of timeout), answers Unavailable (behind
min_generation), Internal (its disk failed) or a malformed frame backs off
(tried again at once after its first failure in a row, then not for 25 ms,
50 ms, ... up to 1 s or a quarter of timeout, with jitter), and lookups,
token lookups, info, stats and ping are sent to the next replica, until one
answers or the call's deadline (timeout) passes: then EngramTimeout names
each replica's last error. Errors no replica would answer differently
(BadRequest, NotFound, OutOfRange, TooLarge) are raised at once. Without a
timeout each replica is tried once per call. reload() is never sent twice
and needs a single group.

A token lookup over tables of several groups asks each group for its tables
at once and returns them as one dict in the order asked, the same arrays
and generations one daemon would return. min_generation and monotonic are
Client's (client.py), kept here across replicas: with monotonic=True an
answer older than one already returned is asked again elsewhere.
A Fleet is safe to share between threads (one lock).
"""
import random
import threading
import time

from . import routes
from .client import DEFAULT_ADDRESS, DEFAULT_MAX_FRAME, Client
from .errors import (BadRequest, EngramConnectionError, EngramError, EngramTimeout, Internal,
                     NotFound, ProtocolError, Unavailable)

_BACKOFF_FIRST = 0.025
_BACKOFF_MAX = 1.0
# errors another replica may not have
_RETRY = (EngramConnectionError, EngramTimeout, Unavailable, Internal, ProtocolError)


class _Replica:
    __slots__ = ("addr", "local", "client", "down_until", "fails", "why")

    def __init__(self, addr):
        self.addr, self.client = addr, None
        self.local = addr.startswith("unix:")  # on this host: chosen first
        self.down_until, self.fails, self.why = 0.0, 0, ""


class _Group:
    def __init__(self, g, rng):
        self.tables, self.dflt = set(g.tables), g.dflt
        self.reps = [_Replica(a) for a in g.addrs]
        self.cur = rng.randrange(len(self.reps))


class _Part:
    __slots__ = ("group", "tables", "rep", "fut")

    def __init__(self, group):
        self.group, self.tables, self.rep, self.fut = group, [], None, None


class FleetFuture:
    """A request sent to one or more groups; result() collects it (and
    sends it again where a replica failed)."""

    __slots__ = ("_fleet", "_send", "_tables", "_parts", "_done", "_value", "_exc",
                 "generations")

    def __init__(self, fleet, send, tables, parts):
        self._fleet, self._send, self._tables, self._parts = fleet, send, tables, parts
        self._done, self._value, self._exc = False, None, None
        self.generations = None  # {table: generation}, filled by result()

    def done(self):
        return self._done

    def result(self, timeout=None):
        return self._fleet._collect(self, timeout)


class Fleet:
    """A client of the daemons spec names (routes.py); connects to one
    replica of every group here."""

    def __init__(self, spec, timeout=None, try_timeout=None, monotonic=False,
                 max_frame=DEFAULT_MAX_FRAME):
        self.spec = spec
        self.timeout, self.try_timeout = timeout, try_timeout
        self.monotonic, self.max_frame = monotonic, max_frame
        self.min_generation = {}
        self._rng = random.Random()
        self._groups = [_Group(g, self._rng) for g in routes.parse(spec)]
        self._lock = threading.RLock()
        deadline = self._deadline(None)
        for g in self._groups:
            self._call(g, lambda m: m.ping(), deadline)

    # ---- choosing a replica ------------------------------------------------

    def _deadline(self, timeout):
        t = self.timeout if timeout is None else timeout
        return None if t is None else time.monotonic() + t

    def _try_s(self, deadline):
        t = self.try_timeout or (self.timeout / 2 if self.timeout else None)
        if deadline is None:
            return t
        left = max(0.001, deadline - time.monotonic())
        return left if t is None or t > left else t

    def _group(self, table):
        dflt = None
        for g in self._groups:
            if table in g.tables:
                return g
            if g.dflt:
                dflt = g
        if dflt is None:
            raise NotFound(f"no route for table {table!r}: the address spec names no group "
                           f"for it and none for the other tables")
        return dflt

    def _timed_out(self, g):
        whys = "; ".join(r.why for r in g.reps if r.why)
        return EngramTimeout(f"no replica answered within {self.timeout} s"
                             + (f": {whys}" if whys else ""))

    def _pick(self, g, deadline, nowait=False):
        """A local replica (unix:) not backing off, else the one in use
        while healthy, the next healthy one, the next not backing off that
        fails least; sleeps while all back off (None with nowait)."""
        n = len(g.reps)
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise self._timed_out(g)
            best = next((r for r in g.reps if r.local and r.down_until <= now), None)
            soonest = None
            for i in range(n if best is None else 0):
                r = g.reps[(g.cur + i) % n]
                if r.down_until > now:
                    soonest = r.down_until if soonest is None else min(soonest, r.down_until)
                    continue
                if r.fails == 0:
                    best = r
                    break
                if best is None or r.fails < best.fails or (
                        r.fails == best.fails and best is g.reps[g.cur]):
                    best = r
            if best is not None:
                g.cur = g.reps.index(best)
                return best
            if nowait:
                return None
            time.sleep(max(0.0, (soonest if deadline is None else min(soonest, deadline)) - now))

    def _member(self, r, deadline):
        if r.client is None:
            r.client = Client(r.addr, max_frame=self.max_frame, connect=False)
        r.client.timeout = self._try_s(deadline)
        return r.client

    def _failed(self, r, exc):
        """Notes exc of r; whether another replica may be asked (r backs off)."""
        msg = str(exc)
        r.why = msg if r.addr in msg else f"{r.addr}: {msg}"
        if not isinstance(exc, _RETRY):
            return False
        r.fails += 1
        delay = 0.0
        if r.fails > 1:
            # several tries fit in one call's deadline
            top = min(_BACKOFF_MAX, self.timeout / 4) if self.timeout else _BACKOFF_MAX
            delay = min(top, _BACKOFF_FIRST * 2 ** min(r.fails - 2, 6))
            delay *= 0.5 + self._rng.random() / 2
        r.down_until = time.monotonic() + delay
        return True

    @staticmethod
    def _ok(r):
        r.fails, r.down_until, r.why = 0, 0.0, ""

    @staticmethod
    def _tries_over(g, deadline, tries):
        return deadline is None and tries >= len(g.reps)

    def _call(self, g, fn, deadline, retry=True):
        """fn(member client) on a replica of g; with retry, on the next
        after a failure another may not have, until the deadline."""
        tries = 0
        with self._lock:
            while True:
                r = self._pick(g, deadline)
                try:
                    value = fn(self._member(r, deadline))
                except EngramError as e:
                    tries += 1
                    if not self._failed(r, e) or not retry or self._tries_over(g, deadline, tries):
                        raise
                    continue
                self._ok(r)
                return value

    # ---- calls that are not lookups ----------------------------------------

    def info(self):
        """[TableInfo] of every routed table, each from the group serving it."""
        deadline, out = self._deadline(None), []
        for g in self._groups:
            out += [t for t in self._call(g, lambda m: m.info(), deadline)
                    if self._group_or_none(t.name) is g]
        return out

    def _group_or_none(self, table):
        try:
            return self._group(table)
        except NotFound:
            return None

    def table(self, name):
        return self._call(self._group(name), lambda m: m.table(name), self._deadline(None))

    def stats(self):
        """Stats of the replica in use of the group without names (else the first)."""
        g = next((g for g in self._groups if g.dflt), self._groups[0])
        return self._call(g, lambda m: m.stats(), self._deadline(None))

    def ping(self):
        """Pong of one replica of every group (that of the last group)."""
        deadline = self._deadline(None)
        return [self._call(g, lambda m: m.ping(), deadline) for g in self._groups][-1]

    def reload(self, table=None):
        """Reload on the replica in use; never sent twice; one group only."""
        if len(self._groups) != 1:
            raise BadRequest("reload one daemon at a time: connect to its own address")
        return self._call(self._groups[0], lambda m: m.reload(table), self._deadline(None),
                          retry=False)

    # ---- lookups -------------------------------------------------------------

    def lookup(self, table, slots, decode=False):
        """As Client.lookup (no shared buffer)."""
        return self.lookup_async(table, slots, decode).result()

    def lookup_async(self, table, slots, decode=False):
        def send(m, tables):
            return m.lookup_async(tables[0], slots, decode)
        return self._submit(send, [table])

    def tokens(self, tables, token_ids, seq_lens=None, context=None, decode=False):
        """As Client.tokens: {table: ndarray}, each group asked at once."""
        return self.tokens_async(tables, token_ids, seq_lens, context, decode).result()

    def tokens_async(self, tables, token_ids, seq_lens=None, context=None, decode=False):
        def send(m, part_tables):
            return m.tokens_async(part_tables, token_ids, seq_lens, context, decode)
        return self._submit(send, [tables] if isinstance(tables, str) else list(tables))

    def _submit(self, send, tables):
        with self._lock:
            parts = {}
            for t in tables:
                g = self._group(t)
                parts.setdefault(id(g), _Part(g)).tables.append(t)
            fut = FleetFuture(self, send, tables, list(parts.values()))
            deadline = self._deadline(None)
            for p in fut._parts:
                self._send_part(fut, p, deadline, nowait=True)
            return fut

    def _send_part(self, fut, p, deadline, nowait):
        """Sends p to a replica of its group; with nowait, a part no replica
        takes now is left for result() to send."""
        tries = 0
        while True:
            r = self._pick(p.group, deadline, nowait)
            if r is None:
                return
            try:
                m = self._member(r, deadline)
                m.min_generation = dict(self.min_generation)
                p.fut, p.rep = fut._send(m, p.tables), r
                return
            except EngramError as e:
                tries += 1
                if not self._failed(r, e):
                    raise
                if self._tries_over(p.group, deadline, tries):
                    if nowait:
                        return
                    raise

    def _wait_part(self, fut, p, deadline):
        tries = 0
        while True:
            if p.fut is None:
                self._send_part(fut, p, deadline, nowait=False)
            mf, r, p.fut = p.fut, p.rep, None
            try:
                value = mf.result(timeout=self._try_s(deadline))
                self._check_floors(mf.generations)
            except EngramError as e:
                tries += 1
                if not self._failed(r, e) or self._tries_over(p.group, deadline, tries):
                    raise
                continue
            self._ok(r)
            return value, mf.generations

    def _check_floors(self, gens):
        for table, gen in gens.items():
            floor = self.min_generation.get(table, 0)
            if gen < floor:
                raise Unavailable(f"table {table!r} came at generation {gen}, below the "
                                  f"generation {floor} already returned")

    def _collect(self, fut, timeout):
        with self._lock:
            if not fut._done:
                try:
                    fut._value = self._gather(fut, self._deadline(timeout))
                except EngramError as e:
                    fut._exc = e
                fut._done = True
            if fut._exc is not None:
                raise fut._exc
            return fut._value

    def _gather(self, fut, deadline):
        values, gens = {}, {}
        for p in fut._parts:
            value, g = self._wait_part(fut, p, deadline)
            values.update(value if isinstance(value, dict) else {p.tables[0]: value})
            gens.update(g)
        if self.monotonic:
            for table, gen in gens.items():
                if gen > self.min_generation.get(table, 0):
                    self.min_generation[table] = gen
        fut.generations = {t: gens[t] for t in fut._tables}
        if len(fut._parts) == 1 and not isinstance(value, dict):
            return value
        return {t: values[t] for t in fut._tables}

    def close(self):
        with self._lock:
            for g in self._groups:
                for r in g.reps:
                    if r.client is not None:
                        r.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect(spec=None, timeout=None, failover=False, monotonic=False, **kw):
    """A Client for one address (a plain connection, as before), a Fleet for
    an address list, routes or (failover=True) one address behind a load
    balancer. No spec: DEFAULT_ADDRESS (unix:/run/engramd/engramd.sock)."""
    if spec is None:
        spec = DEFAULT_ADDRESS
    if failover or routes.is_fleet(spec):
        return Fleet(spec, timeout=timeout, monotonic=monotonic, **kw)
    return Client(spec, timeout=timeout, monotonic=monotonic, **kw)
