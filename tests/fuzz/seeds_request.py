#!/usr/bin/python3
"""Writes the seed corpus of fuzz_request: valid framed requests of every
kind (and a few pipelined streams) for the tables the harness serves.

usage: PYTHONPATH=$BUILD/gen/python tests/fuzz/seeds_request.py [OUTDIR]
"""
import os
import sys

import engram_pb2 as pb


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def frame(req):
    body = req.SerializeToString()
    return varint(len(body)) + body


def lookup(i, table, slots):
    return pb.Request(id=i, lookup=pb.LookupRequest(table=table, slots=slots))


def tokens(i, tables, toks, seq_lens=(), context=()):
    return pb.Request(id=i, tokens=pb.TokensRequest(
        tables=tables, tokens=toks, seq_lens=seq_lens, context=context))


SEEDS = {
    "ping": [pb.Request(id=1, ping=pb.PingRequest())],
    "info": [pb.Request(id=2, info=pb.InfoRequest())],
    "stats": [pb.Request(id=3, stats=pb.StatsRequest())],
    "reload_all": [pb.Request(id=4, reload=pb.ReloadRequest())],
    "reload_one": [pb.Request(id=5, reload=pb.ReloadRequest(table="hashed"))],
    "lookup": [lookup(6, "plain", [0, 1, 1023, 1024, 3000, 7, 7])],
    "lookup_range": [lookup(7, "plain", [5, 3001])],
    "lookup_unknown": [lookup(8, "nope", [1])],
    "tokens": [tokens(9, ["hashed"], [5, 9, 2, 7, 11, 3], [4, 2], [1, 0])],
    "tokens_two": [tokens(10, ["hashed", "xx"], [1, 2, 3, 4, 5])],
    "tokens_nohash": [tokens(11, ["plain"], [1, 2])],
    # 2 blocks x 2100 tokens x 4 rows x 64 B: gathered on the thread pool,
    # each block in two pieces
    "tokens_big": [tokens(12, ["hashed"] * 2, [i % 100 for i in range(2100)])],
    # the harness's shared buffer holds slot ids below 60, every 97th past every end
    "lookup_shm": [pb.Request(id=18, lookup=pb.LookupRequest(table="plain", slots=[3, 9],
                                                              shm=True, shm_offset=100))],
    "lookup_fixed": [pb.Request(id=22, lookup=pb.LookupRequest(
        table="xx", fixed_slots=[5, 0, 17, 5, 99]))],
    "lookup_shm_slots": [pb.Request(id=19, lookup=pb.LookupRequest(
        table="plain", shm=True, shm_offset=8, shm_slots=40))],
    "lookup_shm_slots_unaligned": [pb.Request(id=20, lookup=pb.LookupRequest(
        table="xx", shm=True, shm_offset=8 * 21 + 3, shm_slots=700))],
    "tokens_shm": [pb.Request(id=21, tokens=pb.TokensRequest(
        tables=["hashed", "xx"], tokens=[1, 2, 3, 4, 5], shm=True, shm_offset=640))],
    "pipeline": [pb.Request(id=13, ping=pb.PingRequest()),
                 lookup(14, "xx", [299, 0]),
                 tokens(15, ["xx"], [3, 1, 4, 1, 5], [2, 3], [0, 1]),
                 pb.Request(id=16, reload=pb.ReloadRequest()),
                 pb.Request(id=17, info=pb.InfoRequest())],
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_request")
    os.makedirs(out, exist_ok=True)
    for name, reqs in SEEDS.items():
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(b"".join(frame(r) for r in reqs))
    # framing edge cases: an empty body, and a partial frame at the end
    with open(os.path.join(out, "edges.bin"), "wb") as f:
        f.write(b"\x00" + frame(SEEDS["ping"][0]) + b"\x05\x08")


if __name__ == "__main__":
    main()
