"""engram_client against the real engramd, over unix and TCP sockets.

Tables are built with `engram table import` from NumPy arrays; rows the
daemon sends are compared byte for byte with `engram table export` (rows read
in-process, no daemon) and with NumPy's own encodings of the source values
(f16, bf16 round-to-nearest-even, e4m3fn with ue8m0 block scales).
"""
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from client_support import Daemon, bf16_bits_rne, export_rows, import_table  # noqa: E402

import engram_client as ec  # noqa: E402
from engram_client import spec as specmod  # noqa: E402
from engram_client import wire  # noqa: E402
from engram_client._pb import pb  # noqa: E402

import engram_ref  # noqa: E402

FIXTURE = {}


# ---- NumPy references of the stored encodings --------------------------------

E4M3_POS = ec.rows.E4M3_TO_F32[:0x7F].astype(np.float64)  # codes 0x00..0x7E, ascending


def e4m3_rne(x):
    """float -> e4m3fn codes: nearest, ties to the even code, saturating at 448."""
    x = np.asarray(x, dtype=np.float64)
    a = np.minimum(np.abs(x), 448.0)
    hi = np.clip(np.searchsorted(E4M3_POS, a, side="left"), 0, 0x7E)
    lo = np.clip(hi - 1, 0, 0x7E)
    dlo, dhi = a - E4M3_POS[lo], E4M3_POS[hi] - a
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (hi % 2 == 0))
    code = np.where(pick_hi, hi, lo).astype(np.uint8)
    return code | np.where(np.signbit(x), 0x80, 0).astype(np.uint8)


def e4m3_blocks(f32, scale_block):
    """f32 [n, dim] -> the stored e4m3 row bytes [n, dim + dim/scale_block]."""
    n, dim = f32.shape
    blocks = f32.astype(np.float64).reshape(n, dim // scale_block, scale_block)
    amax = np.abs(blocks).max(axis=2)
    mant, exp = np.frexp(amax / 448.0)  # smallest k with amax <= 448 * 2^k
    k = np.where(mant == 0.5, exp - 1, exp)
    codes = e4m3_rne(blocks / np.exp2(k)[..., None]).reshape(n, dim)
    return np.concatenate([codes, (k + 127).astype(np.uint8)], axis=1)


# ---- fixture: tables and one daemon for the whole module ---------------------

def setUpModule():
    rng = np.random.default_rng(7)
    d = tempfile.mkdtemp(prefix="engram-pyclient-")
    FIXTURE["dir"] = d
    src, dirs = {}, {}

    def add(name, rows, **kw):
        src[name] = rows
        dirs[name] = os.path.join(d, name)
        import_table(dirs[name], rows, name, **kw)

    add("f32", rng.standard_normal((5000, 16)).astype(np.float32), chunk_slots=1024)
    add("f16", (rng.standard_normal((3000, 24)) * 100).astype(np.float32), dtype="f16",
        chunk_slots=512)
    bf = rng.standard_normal((3000, 32)).astype(np.float32)
    # exact ties at the bf16 rounding point, both parities, and subnormals
    bf.view(np.uint32)[:8, :4] = [[0x3F808000, 0x3F818000, 0xBF808000, 0x00018000]] * 8
    add("bf16", bf, dtype="bf16", chunk_slots=1024)
    e4 = (rng.standard_normal((2000, 64)) * np.exp2(rng.integers(-12, 12, (2000, 1)))
          ).astype(np.float32)
    add("e4m3s", e4, dtype="e4m3", scale_block=32, chunk_slots=256)
    add("e4m3", (rng.standard_normal((1000, 16)) * 150).astype(np.float32), dtype="e4m3",
        chunk_slots=256)  # no scales; values past 448 saturate
    add("u8", rng.integers(0, 256, (1000, 40), dtype=np.uint8), chunk_slots=256)

    specs = specmod.engram_v1_specs([997, 1009], 3, 2, [1, 15], seed=0, pad=2,
                                    vocab_size=5000)
    FIXTURE["specs"] = {}
    for layer, dim in ((1, 8), (15, 12)):
        name = f"layer{layer}"
        spec_path = os.path.join(d, name + ".json")
        with open(spec_path, "w") as f:
            json.dump(specs[layer], f)
        nslots = sum(sum(o) for o in specs[layer]["moduli"])
        add(name, rng.standard_normal((nslots, dim)).astype(np.float32), dtype="bf16",
            hash_spec=spec_path)
        FIXTURE["specs"][name] = specs[layer]
    FIXTURE["src"], FIXTURE["dirs"] = src, dirs
    FIXTURE["daemon"] = Daemon(dirs, workdir=os.path.join(d, "run"))


def tearDownModule():
    dmn = FIXTURE.get("daemon")
    if dmn is not None:
        dmn.cleanup()
    shutil.rmtree(FIXTURE.get("dir", "/nonexistent"), ignore_errors=True)


def daemon():
    return FIXTURE["daemon"]


class ClientCase(unittest.TestCase):
    def setUp(self):
        self.c = ec.Client(daemon().unix, timeout=20)
        self.t = ec.Client(daemon().tcp, timeout=20)
        self.rng = np.random.default_rng(self.id().__hash__() & 0xFFFF)

    def tearDown(self):
        self.c.close()
        self.t.close()

    def slots_of(self, table, n=2000):
        nslots = len(FIXTURE["src"][table])
        s = self.rng.integers(0, nslots, n, dtype=np.uint64)
        s[:3] = [0, nslots - 1, 0]  # both ends, and a duplicate
        return s


class TestBasics(ClientCase):
    def test_ping_info_stats(self):
        for c in (self.c, self.t):
            pong = c.ping()
            self.assertEqual(pong.protocol_version, 1)
            self.assertTrue(pong.server_version)
        info = {t.name: t for t in self.c.info()}
        self.assertEqual(set(info), set(FIXTURE["dirs"]))
        self.assertEqual((info["f32"].slots, info["f32"].dim, info["f32"].dtype,
                          info["f32"].row_bytes), (5000, 16, "f32", 64))
        self.assertEqual((info["e4m3s"].scale_block, info["e4m3s"].row_bytes), (32, 66))
        self.assertEqual((info["layer1"].hash_kind, info["layer1"].rows_per_token),
                         ("engram-v1", 4))
        self.assertEqual(info["f32"].rows_per_token, 0)
        self.assertEqual(self.c.table("u8").dim, 40)
        with self.assertRaises(ec.NotFound):
            self.c.table("nope")
        before = self.c.stats()
        self.c.lookup("f32", [1, 2, 3])
        after = self.c.stats()
        self.assertGreaterEqual(after.requests, before.requests + 1)
        self.assertGreaterEqual(after.rows, before.rows + 3)

    def test_reload_all_and_one(self):
        res = self.c.reload()
        self.assertEqual({r.table for r in res}, set(FIXTURE["dirs"]))
        self.assertTrue(all(not r.error for r in res))
        res = self.c.reload("f16")
        self.assertEqual([r.table for r in res], ["f16"])
        with self.assertRaises(ec.NotFound):
            self.c.reload("nope")

    def test_bad_addresses(self):
        for bad in ("", "unix:", "tcp:host", "tcp:host:port", "http://x", "tcp::80"):
            with self.assertRaises(ValueError, msg=bad):
                ec.Client(bad)
        with self.assertRaises(ec.EngramConnectionError) as cm:
            ec.Client("unix:" + os.path.join(FIXTURE["dir"], "no-such.sock"))
        self.assertIsNone(cm.exception.status)
        self.assertIn("no-such.sock", cm.exception.message)


class TestRows(ClientCase):
    def check_exact(self, table):
        slots = self.slots_of(table)
        want = export_rows(FIXTURE["dirs"][table], slots)
        for c in (self.c, self.t):
            got = c.lookup(table, slots)
            self.assertEqual(got.dtype, want.dtype)
            self.assertEqual(got.shape, want.shape)
            self.assertEqual(got.tobytes(), want.tobytes())
        return slots, got

    def test_a_recv_copies_a_bounded_piece(self):
        """A large answer (40000 f32 rows: 2.6 MB) is read at most
        transport._RECV_MAX bytes per recv (transport.py says why)."""
        from engram_client import transport
        c = ec.Client(daemon().unix, timeout=20, background=False)
        try:
            c.ping()
            sizes, real = [], c._conn.sock

            class Recording:
                def __getattr__(self, name):
                    return getattr(real, name)

                def recv_into(self, buf, *args):
                    sizes.append(len(buf))
                    return real.recv_into(buf, *args)

            c._conn.sock = Recording()
            slots = self.slots_of("f32", 40000)
            got = c.lookup("f32", slots)
            np.testing.assert_array_equal(got, FIXTURE["src"]["f32"][slots.astype(np.int64)])
            self.assertEqual(max(sizes), transport._RECV_MAX)
        finally:
            c.close()

    def test_f32_exact(self):
        slots, got = self.check_exact("f32")
        np.testing.assert_array_equal(got, FIXTURE["src"]["f32"][slots.astype(np.int64)])
        self.assertTrue(got.flags.aligned and got.flags.writeable)

    def test_f16(self):
        slots, got = self.check_exact("f16")
        want = FIXTURE["src"]["f16"][slots.astype(np.int64)].astype(np.float16)
        self.assertEqual(got.dtype, np.float16)
        self.assertEqual(got.view(np.uint16).tobytes(), want.view(np.uint16).tobytes())
        # decode=True leaves f16 as it is
        self.assertEqual(self.c.lookup("f16", slots, decode=True).dtype, np.float16)

    def test_bf16_rne(self):
        slots, bits = self.check_exact("bf16")
        src = FIXTURE["src"]["bf16"][slots.astype(np.int64)]
        self.assertEqual(bits.dtype, np.uint16)
        np.testing.assert_array_equal(bits, bf16_bits_rne(src))
        tie_rows = self.c.lookup("bf16", np.arange(8))[:, :4]
        np.testing.assert_array_equal(tie_rows[0], [0x3F80, 0x3F82, 0xBF80, 0x0002])
        dec = self.c.lookup("bf16", slots, decode=True)
        self.assertEqual(dec.dtype, np.float32)
        np.testing.assert_array_equal(dec.view(np.uint32), bits.astype(np.uint32) << 16)
        np.testing.assert_allclose(dec, src, rtol=2 ** -8, atol=1e-38)

    def test_e4m3_block_scales(self):
        slots, raw = self.check_exact("e4m3s")
        src = FIXTURE["src"]["e4m3s"][slots.astype(np.int64)]
        self.assertEqual(raw.shape, (len(slots), 66))
        np.testing.assert_array_equal(raw, e4m3_blocks(src, 32))
        dec = self.t.lookup("e4m3s", slots, decode=True)
        self.assertEqual((dec.dtype, dec.shape), (np.float32, (len(slots), 64)))
        scale = np.exp2(raw[:, 64:].astype(np.float64) - 127)
        want = ec.rows.E4M3_TO_F32[raw[:, :64]].astype(np.float64) * np.repeat(scale, 32, axis=1)
        np.testing.assert_array_equal(dec, want.astype(np.float32))
        # within half an e4m3 step: 2^-4 relative, or half the subnormal
        # spacing (2^-10 of the block scale) for values far below the block max
        err = np.abs(dec.astype(np.float64) - src)
        bound = np.abs(src) * 2 ** -4 + np.repeat(scale, 32, axis=1) * 2 ** -10
        self.assertTrue(np.all(err <= bound))

    def test_e4m3_without_scales(self):
        slots, raw = self.check_exact("e4m3")
        src = FIXTURE["src"]["e4m3"][slots.astype(np.int64)]
        self.assertEqual(raw.shape, (len(slots), 16))
        np.testing.assert_array_equal(raw, e4m3_rne(src))
        self.assertTrue(np.any(np.abs(src) > 448))
        dec = self.c.lookup("e4m3", slots, decode=True)
        np.testing.assert_array_equal(dec, ec.rows.E4M3_TO_F32[raw])
        self.assertEqual(float(np.abs(dec).max()), 448.0)

    def test_e4m3_decoder_table(self):
        t = ec.rows.E4M3_TO_F32
        self.assertEqual((t[0x00], t[0x01], t[0x08], t[0x38], t[0x7E], t[0xFE]),
                         (0.0, 2.0 ** -9, 2.0 ** -6, 1.0, 448.0, -448.0))
        self.assertTrue(np.isnan(t[0x7F]) and np.isnan(t[0xFF]))
        self.assertEqual(int(np.isnan(t).sum()), 2)
        self.assertEqual((ec.rows.UE8M0_TO_F32[127], ec.rows.UE8M0_TO_F32[130]), (1.0, 8.0))

    def test_u8_exact(self):
        slots, got = self.check_exact("u8")
        np.testing.assert_array_equal(got, FIXTURE["src"]["u8"][slots.astype(np.int64)])

    def test_slot_inputs(self):
        src = FIXTURE["src"]["f32"]
        for s in ([3, 1, 4], (3, 1, 4), np.array([3, 1, 4], dtype=np.uint32),
                  np.array([3, 1, 4], dtype=np.int64), range(3, 0, -2)):
            got = self.c.lookup("f32", s)
            want = src[np.asarray(list(s), dtype=np.int64)]
            self.assertEqual((got.dtype, got.shape), (np.float32, want.shape), repr(s))
            self.assertEqual(got.tobytes(), want.tobytes(), repr(s))
        empty = self.c.lookup("f32", [])
        self.assertEqual((empty.dtype, empty.shape), (np.float32, (0, 16)))
        with self.assertRaises(ValueError):
            self.c.lookup("f32", [-1])
        with self.assertRaises(TypeError):
            self.c.lookup("f32", [1.5])

    def test_big_batch(self):
        slots = self.rng.integers(0, 5000, 200000, dtype=np.uint64)
        got = self.c.lookup("f32", slots)
        np.testing.assert_array_equal(got, FIXTURE["src"]["f32"][slots.astype(np.int64)])

    def test_slots_as_words_once_the_daemon_says_it_reads_them(self):
        """A fresh connection sends varints; engramd's first rows answer says
        reads_fixed_slots, and the lookups after it send fixed_slots (blocking,
        async, strided slots) with the same rows; a new connection starts over."""
        src = FIXTURE["src"]["f32"]
        with ec.Client(daemon().unix, timeout=10) as c:
            s = self.rng.integers(0, 5000, 3000, dtype=np.uint64)
            self.assertFalse(c._conn.fixed_slots)
            np.testing.assert_array_equal(c.lookup("f32", s), src[s.astype(np.int64)])
            self.assertTrue(c._conn.fixed_slots, "engramd's answer did not say reads_fixed_slots")
            for got_slots in (s, s[::3], np.array([4999, 0, 17], dtype=np.uint64)):
                want = src[got_slots.astype(np.int64)]
                np.testing.assert_array_equal(c.lookup("f32", got_slots), want)
                np.testing.assert_array_equal(c.lookup_async("f32", got_slots).result(), want)
            with self.assertRaises(ec.OutOfRange) as cm:
                c.lookup("f32", [1, 5000])
            self.assertIn("slots[1] = 5000", str(cm.exception))
            c.close()
            c.ping()  # reconnects: not a rows answer
            self.assertFalse(c._conn.fixed_slots)
            c.lookup("f32", [1])
            self.assertTrue(c._conn.fixed_slots)


class TestTokens(ClientCase):
    def ref_rows(self, table, tokens, seq_lens, context=None):
        """The stored bf16 bits of the rows the tokens hash to: NumPy's
        rounding of the source rows at the NumPy reference's slots."""
        spec = FIXTURE["specs"][table]
        slots = engram_ref.slots(spec, tokens, seq_lens, context)
        return bf16_bits_rne(FIXTURE["src"][table][slots.astype(np.int64)])

    def test_one_table(self):
        toks = self.rng.integers(0, 5000, 50)
        got = self.c.tokens("layer1", toks)
        self.assertEqual(list(got), ["layer1"])
        self.assertEqual(got["layer1"].shape, (50, 4, 8))
        np.testing.assert_array_equal(got["layer1"], self.ref_rows("layer1", toks, [50]))

    def test_two_tables_sequences_context(self):
        toks = self.rng.integers(0, 5000, 60)
        seq_lens, context = [10, 30, 20], [0, 25, 3]
        got = self.t.tokens(["layer1", "layer15"], toks, seq_lens=seq_lens, context=context,
                            decode=True)
        self.assertEqual(list(got), ["layer1", "layer15"])
        for name, dim in (("layer1", 8), ("layer15", 12)):
            want = self.ref_rows(name, toks, seq_lens, context)
            self.assertEqual(got[name].shape, (32, 4, dim))
            np.testing.assert_array_equal(got[name], ec.decode_bf16(want))

    def test_2d_batch_and_async(self):
        toks = self.rng.integers(0, 5000, (3, 16))
        fut = self.c.tokens_async(["layer15"], toks)
        got = fut.result()["layer15"]
        self.assertEqual(got.shape, (48, 4, 12))
        np.testing.assert_array_equal(got, self.ref_rows("layer15", toks.reshape(-1), [16] * 3))
        self.assertEqual(set(fut.generations), {"layer15"})

    def test_token_errors(self):
        with self.assertRaises(ec.BadRequest) as cm:  # no hash spec
            self.c.tokens("f32", [1, 2, 3])
        self.assertIn("table 'f32' has no hash spec", cm.exception.message)
        with self.assertRaises(ec.BadRequest) as cm:  # lengths do not add up
            self.c.tokens("layer1", [1, 2, 3], seq_lens=[2])
        self.assertIn("add up to 2 but 3 tokens", cm.exception.message)
        with self.assertRaises(ec.NotFound) as cm:
            self.c.tokens(["layer1", "nope"], [1, 2, 3])
        self.assertIn("tables[1]: no table named 'nope'", cm.exception.message)
        # the connection is in step after the errors
        got = self.c.tokens("layer1", [4, 5])["layer1"]
        want = self.ref_rows("layer1", [4, 5], [2])
        self.assertEqual((got.dtype, got.shape), (want.dtype, (2, 4, 8)))
        self.assertEqual(got.tobytes(), want.tobytes())


class TestErrors(ClientCase):
    def test_status_exceptions(self):
        with self.assertRaises(ec.NotFound) as cm:
            self.c.lookup("nope", [1])
        e = cm.exception
        self.assertEqual(e.status, pb.NOT_FOUND)
        self.assertIn("nope", e.message)
        self.assertIsInstance(e, ec.EngramError)
        with self.assertRaises(ec.OutOfRange) as cm:
            self.t.lookup("f32", [0, 5000])
        self.assertEqual(cm.exception.status, pb.OUT_OF_RANGE)
        self.assertIn("5000", str(cm.exception))
        # the connection stays usable after an error response
        want = FIXTURE["src"]["f32"][[1]]
        self.assertEqual(self.c.lookup("f32", [1]).tobytes(), want.tobytes())
        self.assertEqual(self.t.lookup("f32", [1]).tobytes(), want.tobytes())

    def test_error_in_a_pipeline(self):
        futs = [self.c.lookup_async("f32", [i]) for i in range(5)]
        futs[2] = self.c.lookup_async("f32", [99999])
        futs.append(self.c.lookup_async("f32", [7]))
        with self.assertRaises(ec.OutOfRange):
            futs[2].result()
        np.testing.assert_array_equal(futs[-1].result()[0], FIXTURE["src"]["f32"][7])
        np.testing.assert_array_equal(futs[0].result()[0], FIXTURE["src"]["f32"][0])

    def test_too_large(self):
        with self.assertRaises(ec.TooLarge):
            self.c.lookup("f32", np.zeros(5_000_000, dtype=np.uint64))  # > --max-rows
        self.assertEqual(self.c.lookup("f32", [2]).tobytes(), FIXTURE["src"]["f32"][[2]].tobytes())


class TestPipelining(ClientCase):
    def test_many_outstanding_collected_out_of_order(self):
        src = FIXTURE["src"]["f32"]
        reqs = [self.rng.integers(0, 5000, int(n), dtype=np.uint64)
                for n in self.rng.integers(1, 3000, 300)]
        futs = [self.c.lookup_async("f32", s) for s in reqs]
        order = self.rng.permutation(len(futs))
        for i in order:
            np.testing.assert_array_equal(futs[i].result(), src[reqs[i].astype(np.int64)])
        self.assertTrue(all(f.done() for f in futs))

    def test_mixed_kinds_in_flight(self):
        a = self.t.lookup_async("u8", [5, 6])
        b = self.t.lookup_async("e4m3s", [1], decode=True)
        p = self.t.ping()  # blocking call collects a and b on the way
        self.assertEqual(p.protocol_version, 1)
        self.assertTrue(a.done() and b.done())
        want_a = FIXTURE["src"]["u8"][[5, 6]]
        self.assertEqual((a.result().dtype, a.result().shape), (np.uint8, (2, 40)))
        self.assertEqual(a.result().tobytes(), want_a.tobytes())
        # decoded e4m3: the stored codes (NumPy's encoding of the source)
        # times their block scales
        raw = e4m3_blocks(FIXTURE["src"]["e4m3s"][[1]], 32)
        scale = np.repeat(np.exp2(raw[:, 64:].astype(np.float64) - 127), 32, axis=1)
        want_b = (ec.rows.E4M3_TO_F32[raw[:, :64]].astype(np.float64) * scale).astype(np.float32)
        self.assertEqual((b.result().dtype, b.result().shape), (np.float32, (1, 64)))
        self.assertEqual(b.result().tobytes(), want_b.tobytes())
        self.assertEqual(b.generations, {"e4m3s": 1})


class TestConnection(unittest.TestCase):
    """A daemon of their own: these tests stop, pause and restart it."""

    def setUp(self):
        self.daemon = Daemon({"f32": FIXTURE["dirs"]["f32"], "u8": FIXTURE["dirs"]["u8"]},
                             extra=["--max-output", "1M", "--max-frame", "1M"])
        self.src = FIXTURE["src"]["f32"]

    def tearDown(self):
        self.daemon.cleanup()

    def answered_by_old_daemon(self, c, slot):
        """lookup_async of slot on c, returned once the daemon has answered
        it (its stats count answers; the stats calls made here are taken
        off), so that a restart right after finds it answered."""
        with ec.Client(self.daemon.unix, timeout=10) as o:
            base = o.stats().requests
            fut = c.lookup_async("f32", [slot])
            for k in range(1, 2000):
                if o.stats().requests - base - k >= 1:
                    return fut
                time.sleep(0.005)
        self.fail("engramd did not answer a lookup")

    def test_reconnect_after_restart(self):
        for addr in (self.daemon.unix, self.daemon.tcp):
            c = ec.Client(addr, timeout=10)
            self.addCleanup(c.close)
            np.testing.assert_array_equal(c.lookup("f32", [1])[0], self.src[1])
            self.daemon.restart()
            # an idle connection to the old daemon is replaced transparently
            np.testing.assert_array_equal(c.lookup("f32", [3])[0], self.src[3])
            # answered by the old daemon, collected after it has gone (a
            # request it never read fails: test_outstanding_fail_when_daemon_dies)
            fut = self.answered_by_old_daemon(c, 4)
            self.daemon.restart()
            np.testing.assert_array_equal(fut.result()[0], self.src[4])
            np.testing.assert_array_equal(c.lookup("f32", [5])[0], self.src[5])

    def test_outstanding_fail_when_daemon_dies(self):
        c = ec.Client(self.daemon.unix, timeout=10)
        self.addCleanup(c.close)
        c.ping()
        self.daemon.pause()
        futs = [c.lookup_async("f32", [i]) for i in range(3)]
        self.daemon.proc.kill()
        self.daemon.proc.wait()
        self.daemon.proc = None
        for f in futs:
            with self.assertRaises(ec.EngramConnectionError) as cm:
                f.result()
            self.assertIsNone(cm.exception.status)
        with self.assertRaises(ec.EngramConnectionError):
            c.ping()  # reconnect is tried once, and fails
        self.daemon.start()
        self.assertEqual(c.ping().protocol_version, 1)

    def test_timeout_then_recover(self):
        c = ec.Client(self.daemon.tcp, timeout=0.3)
        self.addCleanup(c.close)
        c.ping()
        self.daemon.pause()
        try:
            with self.assertRaises(ec.EngramTimeout) as cm:
                c.lookup("f32", [1])
            self.assertIsInstance(cm.exception, TimeoutError)
            fut = c.lookup_async("f32", [2])
            with self.assertRaises(ec.EngramTimeout):
                fut.result(timeout=0.1)
        finally:
            self.daemon.resume()
        c.timeout = 10
        np.testing.assert_array_equal(c.lookup("f32", [2])[0], self.src[2])

    def test_frame_over_limit_closes_then_reconnects(self):
        c = ec.Client(self.daemon.unix, timeout=10)
        self.addCleanup(c.close)
        before = c.lookup_async("f32", [1])
        with self.assertRaises(ec.TooLarge) as cm:  # ~1.3 MB frame > --max-frame 1M
            c.lookup("f32", np.full(600000, 4999, dtype=np.uint64))
        self.assertEqual(cm.exception.status, pb.TOO_LARGE)
        np.testing.assert_array_equal(before.result()[0], self.src[1])
        np.testing.assert_array_equal(c.lookup("f32", [6])[0], self.src[6])

    def test_backpressure_large_pipeline(self):
        # Far more response bytes in flight than --max-output (1M): the
        # daemon stops reading, and the client must keep draining responses
        # while it is still sending requests.
        c = ec.Client(self.daemon.unix, timeout=60)
        self.addCleanup(c.close)
        rng = np.random.default_rng(3)
        reqs = [rng.integers(0, 5000, 30000, dtype=np.uint64) for _ in range(60)]
        futs = [c.lookup_async("f32", s) for s in reqs]
        for s, f in zip(reqs, futs):
            np.testing.assert_array_equal(f.result(), self.src[s.astype(np.int64)])

    def test_threads_share_a_client(self):
        import threading
        c = ec.Client(self.daemon.tcp, timeout=30)
        self.addCleanup(c.close)
        errors = []

        def worker(seed):
            r = np.random.default_rng(seed)
            try:
                for _ in range(50):
                    s = r.integers(0, 5000, 100)
                    np.testing.assert_array_equal(c.lookup("f32", s), self.src[s])
            except Exception as e:  # reported below
                errors.append(e)
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])


class TestWire(unittest.TestCase):
    """protobuf reads the hand-made encodings as the messages meant; the
    scanner agrees with it."""

    def test_requests_match_protobuf(self):
        rng = np.random.default_rng(1)
        for hi in (0, 1, 127, 128, 16383, 16384, 1 << 32, 1 << 56, (1 << 64) - 1):
            s = rng.integers(0, hi, 300, dtype=np.uint64, endpoint=True)
            s[0] = 0  # the shortest value next to the longest
            data = wire.request(9, wire.REQ_LOOKUP, wire.lookup_body("tab", s))
            length, pos = wire.read_varint(data, 0, len(data))
            self.assertEqual(length, len(data) - pos)
            got = pb.Request.FromString(data[pos:])
            self.assertEqual((got.id, got.lookup.table, list(got.lookup.slots)),
                             (9, "tab", s.tolist()), f"slots up to {hi}")
            # one width for all: the widest value's
            width = max(1, (int(s.max()).bit_length() + 6) // 7)
            self.assertEqual(len(wire.packed_varints(s)), 300 * width)
        toks = rng.integers(-(1 << 63), (1 << 63) - 1, 100)
        want = pb.TokensRequest(tables=["a", "bb"], tokens=toks.tolist(), seq_lens=[40, 60],
                                context=[0, 7])
        got = pb.TokensRequest.FromString(
            wire.tokens_body(["a", "bb"], toks, [40, 60], [0, 7]))
        self.assertEqual(got, want)
        self.assertEqual(wire.lookup_body("", []), b"")
        self.assertEqual(wire.packed_varints([300, 1]), b"\xac\x02\x81\x00")
        s = rng.integers(0, 1 << 64, 300, dtype=np.uint64, endpoint=False)
        got = pb.LookupRequest.FromString(wire.lookup_body("tab", s[::2], 64, 3, fixed=True))
        self.assertEqual((got.table, list(got.slots), list(got.fixed_slots), got.shm_offset,
                          got.min_generation), ("tab", [], s[::2].tolist(), 64, 3))
        # framed into a connection's buffer: the same bytes, the buffer grown
        # when short and reused when not
        buf = bytearray(16)
        for fixed in (True, False, True):
            for sl in (s, s[::3], s[:1]):
                parts = wire.lookup_parts("tab", sl, 8, 0, fixed=fixed)
                buf2, mv = wire.request_into(buf, 7, wire.REQ_LOOKUP, parts)
                self.assertEqual(bytes(mv), wire.request(7, wire.REQ_LOOKUP,
                                                         wire.lookup_body("tab", sl, 8, 0,
                                                                          fixed=fixed)))
                self.assertTrue(buf2 is buf or len(buf) < len(mv))
                buf = buf2

    def test_response_scanner(self):
        rng = np.random.default_rng(2)
        for _ in range(300):
            r = pb.Response(id=int(rng.integers(0, 1 << 62)), status=int(rng.integers(0, 7)),
                            error="e" * int(rng.integers(0, 3)),
                            tokens=int(rng.integers(0, 1000)),
                            rows_per_token=int(rng.integers(0, 20)),
                            reads_fixed_slots=bool(rng.random() < 0.5))
            for b in range(int(rng.integers(0, 3))):
                r.blocks.add(table=f"t{b}", generation=int(rng.integers(0, 1 << 40)),
                             row_bytes=int(rng.integers(0, 300)),
                             count=int(rng.integers(0, 1 << 20)),
                             data=rng.bytes(int(rng.integers(0, 300))))
            if rng.random() < 0.3:
                r.pong.protocol_version = 1
            raw = r.SerializeToString()
            h = wire.parse_response(memoryview(raw), 0, len(raw))
            self.assertEqual((h.id, h.status, h.error, h.tokens, h.rows_per_token, h.has_body,
                              h.reads_fixed_slots),
                             (r.id, r.status, r.error, r.tokens, r.rows_per_token,
                              r.HasField("pong"), r.reads_fixed_slots))
            self.assertEqual(len(h.blocks), len(r.blocks))
            for a, b in zip(h.blocks, r.blocks):
                self.assertEqual((a.table, a.generation, a.row_bytes, a.count),
                                 (b.table, b.generation, b.row_bytes, b.count))
                self.assertEqual(raw[a.data_off:a.data_off + a.data_len], b.data)
            if r.blocks and r.blocks[0].data:
                self.assertEqual(wire.first_data(raw, 0, len(raw)),
                                 (h.blocks[0].data_off, h.blocks[0].data_len))
        with self.assertRaises(ec.ProtocolError):
            wire.parse_response(memoryview(b"\x42\x05ab"), 0, 4)  # block runs past the end


if __name__ == "__main__":
    unittest.main()
