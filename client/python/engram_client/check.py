"""What an answer must match before its rows are trusted.

Whatever answers on the daemon's socket can send any bytes. A rows answer
must hold one block per table asked, in order, named as asked, with the
rows asked (slots, or tokens x the table's rows per token), count x
row_bytes bytes of data (or, for the shared buffer, the range the request
implies, inside the buffer), and a real row size; an info answer must
describe layouts that can be. A frame longer than any true answer to its
request is refused as soon as its length is read. Every refusal is a
ProtocolError naming what did not match. The limits are libengram's
(client/engram.h).
"""
from .errors import ProtocolError
from .rows import DTYPES, Layout

ROW_BYTES_MAX = 16 << 20        # bytes of one row
ROWS_PER_TOKEN_MAX = 15 * 256   # (max_ngram - 1) x heads
MSG_FRAME_MAX = 64 << 20        # an info or reload answer
SMALL_FRAME_MAX = 64 << 10      # stats, ping, attach
_FRAME_SLACK = 64 << 10         # top-level fields and an error text
_BLOCK_SLACK = 128              # a block's header besides its table name


def tokens_out(ntokens, seq_lens, context):
    """Tokens that return rows, or None when seq_lens/context do not add
    up (no OK answer can then be true)."""
    lens = [ntokens] if seq_lens is None else [int(x) for x in seq_lens]
    ctx = [0] * len(lens) if context is None else [int(x) for x in context]
    if sum(lens) != ntokens or len(ctx) != len(lens) or any(c > n for c, n in zip(ctx, lens)):
        return None
    return ntokens - sum(ctx)


def frame_limit(kind, args, layouts, rpts):
    """(longest frame a true answer to a request of kind can be, whether that
    bound is exact), by the layouts ({table: Layout}) and rows per token
    ({table: n}) known. Not exact: a table's layout is not known yet, so the
    bound is only what no table can exceed."""
    if kind in ("info", "reload"):
        return MSG_FRAME_MAX, True
    if kind == "lookup":
        table, _, nslots, shm_offset = args
        rows = [(table, nslots)]
    elif kind == "tokens":
        tables, _, ntok, shm_offset = args
        rows = [(t, 0 if ntok is None else ntok * rpts.get(t, ROWS_PER_TOKEN_MAX))
                for t in tables]
    else:
        return SMALL_FRAME_MAX, True
    total, exact = _FRAME_SLACK, True
    for table, n in rows:
        total += _BLOCK_SLACK + len(table.encode("utf-8"))
        if shm_offset is None:
            lay = layouts.get(table)
            exact = exact and lay is not None and (kind == "lookup" or table in rpts)
            total += n * (lay.row_bytes if lay else ROW_BYTES_MAX)
    return total, exact


def block_list(blocks, tables):
    """One block per table asked, in order, each with a real row size."""
    if len(blocks) != len(tables):
        n = len(tables)
        raise ProtocolError(f"daemon sent {len(blocks)} row blocks for {n} "
                            f"table{'' if n == 1 else 's'} asked")
    for i, (blk, table) in enumerate(zip(blocks, tables)):
        if blk.table != table:
            raise ProtocolError(f"block {i} is for table {blk.table!r}; the request "
                                f"asked for {table!r}")
        if not 1 <= blk.row_bytes <= ROW_BYTES_MAX:
            raise ProtocolError(f"block {i} (table {table!r}): row_bytes {blk.row_bytes} "
                                f"is not a real row size (1..{ROW_BYTES_MAX})")


def block_rows(i, blk, want_count, shm_offset, shm_size):
    """Block i holds want_count rows where the request put them: in the
    frame (shm_offset None) or in the shared buffer at shm_offset. Returns
    where the next block's rows go in the buffer."""
    table = blk.table
    if blk.count != want_count:
        raise ProtocolError(f"block {i} (table {table!r}) holds {blk.count} rows; "
                            f"the request asked for {want_count}")
    size = blk.count * blk.row_bytes
    if shm_offset is None:
        if blk.shm:
            raise ProtocolError(f"block {i} (table {table!r}) says its rows are in the "
                                f"shared buffer; the request asked for them in the response")
        if blk.data_len != size:
            raise ProtocolError(f"block {i} (table {table!r}) has {blk.data_len} bytes of "
                                f"data for {blk.count} rows of {blk.row_bytes} bytes")
        return None
    if not blk.shm:
        raise ProtocolError(f"block {i} (table {table!r}) is not in the shared buffer; "
                            f"the request asked for it there")
    if blk.data_len:
        raise ProtocolError(f"block {i} (table {table!r}) carries {blk.data_len} bytes of "
                            f"data besides its shared-buffer rows")
    if blk.shm_offset != shm_offset:
        raise ProtocolError(f"block {i} (table {table!r}) is at shm_offset "
                            f"{blk.shm_offset}; the request puts it at {shm_offset}")
    if shm_offset + size > shm_size:
        raise ProtocolError(f"block {i} (table {table!r}): {size} bytes at shm_offset "
                            f"{shm_offset} lie outside the shared buffer of {shm_size} bytes")
    return shm_offset + size


def info_tables(tables):
    """Every TableInfo of an info answer describes a table that can be."""
    for i, t in enumerate(tables):
        what = f"daemon's info: table {t.name!r}"
        if not t.name:
            raise ProtocolError(f"daemon's info: table {i} has no name")
        if not 1 <= t.row_bytes <= ROW_BYTES_MAX:
            raise ProtocolError(f"{what}: row_bytes {t.row_bytes} is not a real row size "
                                f"(1..{ROW_BYTES_MAX})")
        if t.dtype in DTYPES:
            valid = t.dim > 0 and (not t.scale_block or (t.dtype == "e4m3" and
                                                         t.dim % t.scale_block == 0))
            want = Layout(t.dtype, t.dim, t.scale_block).expected_row_bytes() if valid else 0
            if want != t.row_bytes:
                raise ProtocolError(f"{what}: row_bytes {t.row_bytes} does not match its "
                                    f"layout ({t.dtype}, dim {t.dim}, scale_block "
                                    f"{t.scale_block}: {want} bytes)")
        if t.slots == 0:
            raise ProtocolError(f"{what}: 0 slots")
        if t.rows_per_token > ROWS_PER_TOKEN_MAX or (not t.hash_kind) != (not t.rows_per_token):
            raise ProtocolError(f"{what}: {t.rows_per_token} rows per token with hash kind "
                                f"{t.hash_kind!r} (0 without a hash spec, else "
                                f"1..{ROWS_PER_TOKEN_MAX})")
        if t.chunk_slots & (t.chunk_slots - 1):
            raise ProtocolError(f"{what}: chunk_slots {t.chunk_slots} is not a power of two")
