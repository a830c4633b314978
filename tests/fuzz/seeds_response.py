#!/usr/bin/python3
"""Writes the seed corpus of fuzz_response: for each request kind of the
harness (its enum kind, the first byte of a seed), true answers as engramd
frames them, built with the generated protobuf code, plus a few lies.

usage: PYTHONPATH=$BUILD/gen/python tests/fuzz/seeds_response.py [OUTDIR]
"""
import os
import sys

import engram_pb2 as pb
from seeds_request import frame, varint  # the framing, whatever the message

(LOOKUP, LOOKUP_EMPTY, INFO_THEN_LOOKUP, TOKENS, SHM_LOOKUP, SHM_TOKENS, INFO, STATS,
 PING, RELOAD, PIPELINE, LOOKUP_SMALL) = range(12)
ROW = 16


def rows(i, table, count, row_bytes=ROW, **kw):
    return pb.Response(id=i, blocks=[pb.RowBlock(
        table=table, generation=1, row_bytes=row_bytes, count=count,
        data=bytes(range(count * row_bytes)) if "shm" not in kw else b"", **kw)])


def says_fixed(resp):
    resp.reads_fixed_slots = True  # as engramd's rows answers do
    return resp


def tokens(i, shm=False):
    # 3 returned tokens, 4 rows per token, 8-byte rows, tables h and h2
    blocks, off = [], 0
    for t in ("h", "h2"):
        b = pb.RowBlock(table=t, generation=2, row_bytes=8, count=12)
        if shm:
            b.shm, b.shm_offset = True, off
            off += 96
        else:
            b.data = bytes(96)
        blocks.append(b)
    return pb.Response(id=i, tokens=3, rows_per_token=4, blocks=blocks)


def table(name, row_bytes=ROW, **kw):
    return pb.TableInfo(name=name, slots=100, dim=row_bytes, dtype="u8", row_bytes=row_bytes,
                        generation=1, chunk_slots=64, path="/tables/" + name, **kw)


SEEDS = {
    "lookup": (LOOKUP, [rows(1, "a", 4)]),
    "lookup_error": (LOOKUP, [pb.Response(id=1, status=pb.OUT_OF_RANGE,
                                          error="slots[2] = 3001 is out of range")]),
    "lookup_short": (LOOKUP, [rows(1, "a", 1)]),
    "lookup_empty": (LOOKUP_EMPTY, [rows(1, "a", 0)]),
    "lookup_after_info": (INFO_THEN_LOOKUP, [rows(2, "a", 4)]),
    "lookup_small": (LOOKUP_SMALL, [rows(1, "a", 4)]),
    "tokens": (TOKENS, [tokens(1)]),
    "shm_lookup": (SHM_LOOKUP, [rows(2, "a", 4, shm=True, shm_offset=64)]),
    "shm_tokens": (SHM_TOKENS, [tokens(2, shm=True)]),
    "info": (INFO, [pb.Response(id=1, info=pb.InfoResponse(tables=[
        table("a"), table("h", 8, hash_kind="engram-v1", rows_per_token=4),
        pb.TableInfo(name="e", slots=7, dim=128, dtype="e4m3", scale_block=32,
                     row_bytes=132, generation=3, chunk_slots=1024)]))]),
    "stats": (STATS, [pb.Response(id=1, stats=pb.StatsResponse(
        uptime_seconds=5, connections=2, requests=100, rows=4000, bytes_out=1 << 20))]),
    "ping": (PING, [pb.Response(id=1, pong=pb.Pong(protocol_version=1, server_version="1.0"))]),
    "reload": (RELOAD, [pb.Response(id=1, reload=pb.ReloadResponse(results=[pb.ReloadResult(
        table="a", old_generation=1, new_generation=2, reloaded=True, path="/t/a2")]))]),
    "pipeline": (PIPELINE, [rows(1, "a", 2), rows(2, "a", 3)]),
    # engramd's answers say reads_fixed_slots; the second lookup then sends words
    "pipeline_fixed": (PIPELINE, [says_fixed(rows(1, "a", 2)), says_fixed(rows(2, "a", 3))]),
    "framing_error": (PING, [pb.Response(id=0, status=pb.BAD_REQUEST, error="not a varint")]),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_response")
    os.makedirs(out, exist_ok=True)
    for name, (kind, resps) in SEEDS.items():
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(bytes((kind,)) + b"".join(frame(r) for r in resps))
    # a frame cut short, and a length of 2^40
    with open(os.path.join(out, "truncated.bin"), "wb") as f:
        f.write(bytes((LOOKUP,)) + frame(rows(1, "a", 4))[:30])
    with open(os.path.join(out, "huge_frame.bin"), "wb") as f:
        f.write(bytes((LOOKUP,)) + varint(1 << 40) + b"\x08\x01")


if __name__ == "__main__":
    main()
