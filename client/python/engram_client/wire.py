"""The engram.v1 wire format, done by hand where speed matters.

Frames are varint-length-prefixed protobuf messages (proto/engram.proto).
Lookup and token requests carry up to millions of ids and their responses
megabytes of rows, so this module

* encodes LookupRequest/TokensRequest with NumPy (the packed varints of all
  ids at once, or a lookup's slots as fixed_slots words, uncopied until
  they are framed into the connection's buffer) instead of filling a
  repeated field one Python int at a time;
* scans a Response's top-level fields and its RowBlocks in place, returning
  where each block's data lies inside the received frame, so rows are mapped
  into arrays without a copy (protobuf would copy them twice).

Everything else (info, stats, ...) is small and goes through the generated
engram_pb2 code. protobuf parses the encodings into the messages meant (fields
in number order, proto3 defaults omitted; packed ids at one width per field,
see packed_varints); tests/python/test_client.py checks it.
"""
import numpy as np

from .errors import ProtocolError

_U64 = (1 << 64) - 1

# Request body field numbers (the oneof in Request).
REQ_INFO, REQ_LOOKUP, REQ_STATS, REQ_PING, REQ_TOKENS, REQ_RELOAD = 2, 3, 4, 5, 6, 7
REQ_ATTACH_SHM = 8


_ONE_BYTE = [bytes((i,)) for i in range(0x80)]
# packed_varints encodes this many values or fewer in a Python loop
_FEW = 8


def varint(n):
    """Encodes one non-negative int (< 2^64) as a varint."""
    if n < 0x80:
        return _ONE_BYTE[n]
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def packed_varints(values):
    """The varints of a uint64 array back to back, all as long as the
    largest one's: a shorter value carries extra 0x80 groups (zero bits
    with the continuation bit), which every protobuf parser reads as the
    same number (engramd's protobuf-c, Python's protobuf: test_client.py).
    A fixed width makes the encoding one shift and one OR per byte column,
    a sixth of the time of the shortest form."""
    a = np.ascontiguousarray(values, dtype=np.uint64).reshape(-1)
    if a.size == 0:
        return b""
    if a.size <= _FEW:  # NumPy's per-call cost is more than the loop's
        vals = a.tolist()
        width = max(1, (max(vals).bit_length() + 6) // 7)
        out = bytearray()
        for v in vals:
            for _ in range(width - 1):
                out.append(v & 0x7F | 0x80)
                v >>= 7
            out.append(v)
        return bytes(out)
    top = int(a.max())
    width = max(1, (top.bit_length() + 6) // 7)
    if top <= 0xFFFFFFFF:
        a = a.astype(np.uint32)  # narrower shifts: faster, same bits
    groups = np.empty((a.size, width), dtype=np.uint8)
    # the uint8 column keeps the low 8 bits: 7 bits of the value and the
    # continuation bit; the last group of the widest value fits 7 bits
    for k in range(width - 1):
        np.bitwise_or(a >> (7 * k) if k else a, 0x80, out=groups[:, k], casting="unsafe")
    np.right_shift(a, 7 * (width - 1), out=groups[:, width - 1], casting="unsafe")
    return groups.tobytes()


U64_DTYPE = np.dtype(np.uint64)  # slots and ids on the wire


def _as_u64(values, what):
    """uint64 array of non-negative ids (slot numbers)."""
    if type(values) is np.ndarray and values.dtype == U64_DTYPE and values.ndim == 1:
        return values  # the common case, in one test
    a = np.asarray(values)
    if a.size == 0:
        return np.empty(0, dtype=np.uint64)
    if a.dtype.kind == "O":
        try:
            a = np.array(values, dtype=np.int64)
        except OverflowError:
            a = np.array(values, dtype=np.uint64)
    if a.dtype.kind == "u":
        return a.astype(np.uint64, copy=False).reshape(-1)
    if a.dtype.kind == "i":
        a = a.astype(np.int64, copy=False).reshape(-1)
        if int(a.min()) < 0:
            raise ValueError(f"{what} must be >= 0")
        return a.view(np.uint64)
    raise TypeError(f"{what} must be integers, not {a.dtype}")


def slot_ids(values):
    """Slots as a flat uint64 array (a view when they already are one);
    TypeError or ValueError for what cannot be slots."""
    return _as_u64(values, "slots")


def _field_bytes(tag, payload):
    return bytes((tag,)) + varint(len(payload)) + payload


def frame(body):
    """A message with its varint length prefix."""
    return varint(len(body)) + body


def _request_head(req_id, field, n):
    """A framed Request's bytes before its body field's n bytes."""
    head = b"\x08" + varint(req_id) + bytes(((field << 3) | 2,)) + varint(n)
    return varint(len(head) + n) + head


def request(req_id, field, body):
    """A framed Request with the given body field (already encoded)."""
    return _request_head(req_id, field, len(body)) + body


def request_into(buf, req_id, field, parts):
    """request() of the body the buffers in parts make (bytes, contiguous
    arrays), written into buf (a bytearray; a larger one when it is too
    short): (buf, memoryview of the frame in it). A lookup's slots are
    copied once, into memory its connection keeps: a fresh bytes object of
    that size costs its page faults on every request."""
    views = [memoryview(p).cast("B") for p in parts]
    n = sum(v.nbytes for v in views)
    head = _request_head(req_id, field, n)
    views.insert(0, memoryview(head))
    total = len(head) + n
    if len(buf) < total:
        buf = bytearray(max(total, 2 * len(buf)))
    out, pos = memoryview(buf), 0
    for v in views:
        out[pos:pos + v.nbytes] = v
        pos += v.nbytes
    return buf, out[:total]


def _shm_fields(flag_tag, offset):
    """shm = true and shm_offset (fields flag_tag >> 3 and the next one)."""
    return bytes((flag_tag, 1, flag_tag + 8)) + varint(int(offset))


def lookup_body(table, slots, shm_offset=None, min_generation=0, shm_slots=0, fixed=False):
    """LookupRequest bytes: table name and packed slot ids (fixed: as
    fixed_slots, little-endian words, for a daemon that said it reads them);
    with shm_offset, the rows go to the connection's shared buffer there;
    min_generation (when not 0) is the oldest generation the client accepts;
    shm_slots (when not 0, with shm_offset and no slots): that many slots
    wait in the shared buffer at shm_offset."""
    return b"".join(lookup_parts(table, slots, shm_offset, min_generation, shm_slots, fixed))


def lookup_parts(table, slots, shm_offset=None, min_generation=0, shm_slots=0, fixed=False):
    """lookup_body() as a list of buffers (for request_into): fixed slots
    stay in their (contiguous) array, uncopied."""
    parts = []
    name = table.encode("utf-8")
    if name:
        parts.append(_field_bytes(0x0A, name))
    if len(slots):  # none when they wait in the shared buffer
        ids = _as_u64(slots, "slots")
        if fixed:
            tag, packed = b"\x3a", np.ascontiguousarray(ids, dtype="<u8").view(np.uint8)
        else:
            tag, packed = b"\x12", packed_varints(ids)
        parts += (tag + varint(len(packed)), packed)
    if shm_offset is not None:
        parts.append(_shm_fields(0x18, shm_offset))
    if min_generation:
        parts.append(b"\x28" + varint(int(min_generation)))
    if shm_slots:
        parts.append(b"\x30" + varint(int(shm_slots)))
    return parts


def tokens_body(tables, tokens, seq_lens=None, context=None, shm_offset=None,
                min_generation=None):
    """TokensRequest bytes. tokens are int64 (negative ids are sent as the
    protobuf int64 encoding, ten bytes, for the daemon to refuse).
    min_generation: None, or one oldest accepted generation per table."""
    parts = [_field_bytes(0x0A, t.encode("utf-8")) for t in tables]
    tok = np.asarray(tokens)
    if tok.size and tok.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, not {tok.dtype}")
    packed = packed_varints(tok.astype(np.int64, copy=False).reshape(-1).view(np.uint64))
    if packed:
        parts.append(b"\x12" + varint(len(packed)) + packed)
    for tag, vals, what in ((0x1A, seq_lens, "seq_lens"), (0x22, context, "context")):
        if vals is None:
            continue
        a = _as_u64(vals, what)
        if a.size and int(a.max()) > 0xFFFFFFFF:
            raise ValueError(f"{what} must fit in 32 bits")
        packed = packed_varints(a)
        if packed:
            parts.append(bytes((tag,)) + varint(len(packed)) + packed)
    if shm_offset is not None:
        parts.append(_shm_fields(0x28, shm_offset))
    if min_generation is not None and any(min_generation):
        packed = packed_varints(_as_u64(min_generation, "min_generation"))
        parts.append(b"\x3a" + varint(len(packed)) + packed)
    return b"".join(parts)


def read_varint(mv, pos, end):
    """(value, next pos) of the varint at mv[pos]; ProtocolError when it runs
    past end or over ten bytes. mv indexes to ints (bytes/memoryview 'B').
    The parsers below read a one-byte varint (field keys, small values)
    in line and call this for the rest: a call per field costs more than
    the parsing in CPython."""
    result = shift = 0
    while True:
        if pos >= end:
            raise ProtocolError("truncated varint in a response")
        b = mv[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result & _U64, pos
        shift += 7
        if shift >= 70:
            raise ProtocolError("varint longer than ten bytes in a response")


def _skip(mv, pos, end, wire):
    if wire == 0:
        if pos < end and mv[pos] < 0x80:
            return pos + 1
        return read_varint(mv, pos, end)[1]
    if wire == 1:
        pos += 8
    elif wire == 5:
        pos += 4
    elif wire == 2:
        if pos < end and mv[pos] < 0x80:
            n, pos = mv[pos], pos + 1
        else:
            n, pos = read_varint(mv, pos, end)
        pos += n
    else:
        raise ProtocolError(f"unsupported wire type {wire} in a response")
    if pos > end:
        raise ProtocolError("truncated field in a response")
    return pos


class Block:
    """One RowBlock of a response: where its rows lie in the frame."""

    __slots__ = ("table", "generation", "row_bytes", "count", "data_off", "data_len",
                 "shm", "shm_offset")

    def __init__(self):
        self.table = ""
        self.generation = self.row_bytes = self.count = 0
        self.data_off = self.data_len = 0
        self.shm, self.shm_offset = False, 0


def _parse_block(mv, pos, end):
    blk = Block()
    blk.data_off = pos
    while pos < end:
        key = mv[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = read_varint(mv, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 2 and field in (1, 5):
            if pos < end and mv[pos] < 0x80:
                n, pos = mv[pos], pos + 1
            else:
                n, pos = read_varint(mv, pos, end)
            if pos + n > end:
                raise ProtocolError("truncated row block in a response")
            if field == 1:
                blk.table = bytes(mv[pos:pos + n]).decode("utf-8", "replace")
            else:
                blk.data_off, blk.data_len = pos, n
            pos += n
        elif wire == 0 and field in (2, 3, 4, 6, 7):
            if pos < end and mv[pos] < 0x80:
                v, pos = mv[pos], pos + 1
            else:
                v, pos = read_varint(mv, pos, end)
            if field == 6:
                blk.shm = bool(v)
            elif field == 7:
                blk.shm_offset = v
            elif field == 2:
                blk.generation = v
            elif field == 3:
                blk.row_bytes = v & 0xFFFFFFFF
            else:
                blk.count = v
        else:
            pos = _skip(mv, pos, end, wire)
    return blk


class Header:
    """The top-level fields of a Response (body messages are left to
    protobuf: has_body says whether one is present)."""

    __slots__ = ("id", "status", "error", "blocks", "tokens", "rows_per_token", "has_body",
                 "reads_fixed_slots")

    def __init__(self):
        self.id = self.status = self.tokens = self.rows_per_token = 0
        self.error = ""
        self.blocks = []
        self.has_body = False
        self.reads_fixed_slots = False


def parse_response(mv, start, end):
    """Scans the Response in mv[start:end]. Block offsets are absolute
    indexes into mv."""
    h = Header()
    pos = start
    while pos < end:
        key = mv[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = read_varint(mv, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0 and field in (1, 2, 9, 10, 12):
            if pos < end and mv[pos] < 0x80:
                v, pos = mv[pos], pos + 1
            else:
                v, pos = read_varint(mv, pos, end)
            if field == 1:
                h.id = v
            elif field == 2:
                v &= 0xFFFFFFFF
                h.status = v - (1 << 32) if v >= 1 << 31 else v
            elif field == 9:
                h.tokens = v
            elif field == 10:
                h.rows_per_token = v & 0xFFFFFFFF
            else:
                h.reads_fixed_slots = v != 0
        elif wire == 2 and field in (3, 8):
            if pos < end and mv[pos] < 0x80:
                n, pos = mv[pos], pos + 1
            else:
                n, pos = read_varint(mv, pos, end)
            if pos + n > end:
                raise ProtocolError("truncated field in a response")
            if field == 3:
                h.error = bytes(mv[pos:pos + n]).decode("utf-8", "replace")
            else:
                h.blocks.append(_parse_block(mv, pos, pos + n))
            pos += n
        else:
            if wire == 2 and 4 <= field <= 7:
                h.has_body = True
            pos = _skip(mv, pos, end, wire)
    if pos != end:
        raise ProtocolError("a field runs past the end of a response")
    return h


def first_data(mv, start, end):
    """(offset from start, length) of the first block's data in a Response
    of which only mv[start:end] has arrived, or (None, 0) when it is not in
    that part. Used to place a frame in memory so the first block's rows
    are aligned, or to receive them into a caller's buffer."""
    pos = start
    try:
        while pos < end:
            key = mv[pos]
            if key < 0x80:
                pos += 1
            else:
                key, pos = read_varint(mv, pos, end)
            field, wire = key >> 3, key & 7
            if wire == 2 and field == 8:
                n, pos = read_varint(mv, pos, end)
                stop = min(end, pos + n)
                while pos < stop:
                    key = mv[pos]
                    if key < 0x80:
                        pos += 1
                    else:
                        key, pos = read_varint(mv, pos, stop)
                    if key == (5 << 3) | 2:
                        dlen, pos = read_varint(mv, pos, stop)
                        return pos - start, dlen
                    pos = _skip(mv, pos, stop, key & 7)
                return None, 0
            pos = _skip(mv, pos, end, wire)
    except ProtocolError:
        return None, 0
    return None, 0
