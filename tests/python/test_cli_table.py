"""`engram table ...`: build, inspect, export, patch and publish real tables.

Runs the real `engram` binary ($ENGRAM) on LMDB tables in temporary
directories and checks the stored rows against independent NumPy encoders.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

ENGRAM = os.environ.get("ENGRAM") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "engram")


def run(*args, check=True):
    p = subprocess.run([ENGRAM] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("engram %s failed (%d): %s" %
                             (" ".join(map(str, args)), p.returncode, p.stderr))
    return p


# ---- independent reference encoders ---------------------------------------

def bf16_bits(a):
    """float32 -> bf16 bits, round to nearest even (no NaNs in our data)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def e4m3_decode_table():
    vals = np.zeros(256, dtype=np.float64)
    for c in range(256):
        s, e, m = c >> 7, (c >> 3) & 15, c & 7
        if e == 15 and m == 7:
            v = np.nan
        elif e == 0:
            v = m / 8.0 * 2.0 ** -6
        else:
            v = (1 + m / 8.0) * 2.0 ** (e - 7)
        vals[c] = -v if s else v
    return vals


E4M3 = e4m3_decode_table()
E4M3_POS = E4M3[:127]  # codes 0..126: 0 .. 448, increasing


def e4m3_encode(x):
    """float -> e4m3fn code: round to nearest, ties to even, saturate at 448."""
    x = np.asarray(x, dtype=np.float64).ravel()
    a = np.minimum(np.abs(x), 448.0)
    hi = np.clip(np.searchsorted(E4M3_POS, a), 0, 126)
    lo = np.clip(hi - 1, 0, 126)
    dlo, dhi = a - E4M3_POS[lo], E4M3_POS[hi] - a
    pick = np.where(dlo < dhi, lo, np.where(dhi < dlo, hi, np.where(lo % 2 == 0, lo, hi)))
    code = pick.astype(np.uint8)
    return np.where((x < 0) & (code != 0), code | 0x80, code).astype(np.uint8)


def e4m3_rows(a, block):
    """Rows of float32 -> stored bytes: dim codes, then one ue8m0 scale byte
    per block (the smallest power of two s with amax / s <= 448)."""
    n, dim = a.shape
    if not block:
        return e4m3_encode(a).reshape(n, dim)
    out = np.zeros((n, dim + dim // block), dtype=np.uint8)
    for i in range(n):
        for b in range(dim // block):
            v = a[i, b * block:(b + 1) * block].astype(np.float64)
            amax = np.abs(v).max()
            k = int(np.ceil(np.log2(amax / 448.0)))
            while amax / 2.0 ** k > 448.0:
                k += 1
            while amax / 2.0 ** (k - 1) <= 448.0:
                k -= 1
            out[i, b * block:(b + 1) * block] = e4m3_encode(v / 2.0 ** k)
            out[i, dim + b] = k + 127
    return out


def e4m3_rows_decode(raw, dim, block):
    vals = E4M3[raw[:, :dim]]
    if block:
        scales = 2.0 ** (raw[:, dim:].astype(np.float64) - 127)
        vals = vals * np.repeat(scales, block, axis=1)
    return vals


class TableCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="engram-cli-")
        self.rng = np.random.default_rng(1234)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def save(self, name, arr):
        p = self.path(name)
        np.save(p, arr)
        return p

    def export(self, table, slots):
        out = self.path("export-%d.npy" % len(os.listdir(self.tmp)))
        run("table", "export", table, "--slots", ",".join(map(str, slots)), "--out", out)
        return np.load(out)

    def info(self, table):
        p = run("table", "info", table)
        return dict(line.split(": ", 1) for line in p.stdout.splitlines())

    def assert_fails(self, *args, code=None):
        """Fails with exactly one error line on stderr."""
        p = run(*args, check=False)
        self.assertNotEqual(p.returncode, 0, "engram %s succeeded" % (args,))
        if code is not None:
            self.assertEqual(p.returncode, code, p.stderr)
        lines = p.stderr.splitlines()
        self.assertEqual(len(lines), 1, "stderr: %r" % p.stderr)
        self.assertTrue(lines[0].startswith("engram: "), lines[0])
        return lines[0]

    def assert_not_table(self, d):
        p = run("table", "info", d, check=False)
        self.assertNotEqual(p.returncode, 0, "%s looks like a table" % d)


class TestImportExport(TableCase):
    def test_f32_round_trip_over_chunks(self):
        arr = self.rng.standard_normal((1000, 16)).astype(np.float32)
        t = self.path("t")
        run("table", "import", t, "--from", self.save("rows.npy", arr), "--chunk-slots", 256)
        slots = self.rng.integers(0, 1000, 200)
        got = self.export(t, slots)
        self.assertEqual(got.dtype, np.float32)
        self.assertEqual(got.shape, (200, 16))
        np.testing.assert_array_equal(got, arr[slots])
        # slots from an .npy file, and a range list
        sf = self.save("slots.npy", slots.astype(np.int64))
        out = self.path("o.npy")
        run("table", "export", t, "--slots-file", sf, "--out", out)
        np.testing.assert_array_equal(np.load(out), arr[slots])
        np.testing.assert_array_equal(self.export(t, ["250-260"]), arr[250:261])
        # text output: one line per slot, exact floats
        p = run("table", "export", t, "--slots", "999,0")
        lines = p.stdout.splitlines()
        self.assertEqual(len(lines), 2)
        slot, vals = lines[0].split(":")
        self.assertEqual(int(slot), 999)
        np.testing.assert_array_equal(np.array(vals.split(), dtype=np.float32), arr[999])

    def test_npy_format_versions(self):
        arr = self.rng.standard_normal((50, 6)).astype(np.float32)
        for version in ((1, 0), (2, 0), (3, 0)):
            src = self.path("v%d.npy" % version[0])
            with open(src, "wb") as f:
                np.lib.format.write_array(f, arr, version=version)
            t = self.path("t%d" % version[0])
            run("table", "import", t, "--from", src)
            np.testing.assert_array_equal(self.export(t, range(50)), arr)

    def test_f16_and_bf16(self):
        arr = (self.rng.standard_normal((300, 12)) * 3).astype(np.float32)
        arr[0, :4] = [65504.0, 70000.0, 1e-8, -0.0]  # f16 max, overflow, underflow
        src = self.save("rows.npy", arr)
        slots = list(range(300))
        run("table", "import", self.path("h"), "--from", src, "--dtype", "f16", "--chunk-slots", 128)
        got = self.export(self.path("h"), slots)
        self.assertEqual(got.dtype, np.float16)
        with np.errstate(over="ignore"):
            half = arr.astype(np.float16)
        np.testing.assert_array_equal(got.view(np.uint16), half.view(np.uint16))
        run("table", "import", self.path("b"), "--from", src, "--dtype", "bf16")
        got = self.export(self.path("b"), slots)
        self.assertEqual(got.dtype, np.uint16)
        np.testing.assert_array_equal(got, bf16_bits(arr))
        # an f16 .npy imports as f16 by default, bit for bit
        run("table", "import", self.path("h2"), "--from", self.save("half.npy", half))
        self.assertEqual(self.info(self.path("h2"))["dtype"], "f16")
        np.testing.assert_array_equal(self.export(self.path("h2"), slots).view(np.uint16),
                                      half.view(np.uint16))
        # exported bf16 bits (<u2) import back as bf16 when told so
        bits = self.save("bits.npy", bf16_bits(arr))
        run("table", "import", self.path("b2"), "--from", bits, "--source-dtype", "bf16")
        np.testing.assert_array_equal(self.export(self.path("b2"), slots), bf16_bits(arr))

    def test_e4m3_without_and_with_scales(self):
        arr = (self.rng.standard_normal((64, 32)) * 50).astype(np.float32)
        arr[0, :3] = [1000.0, -1000.0, 0.001]  # saturate, subnormal
        src = self.save("rows.npy", arr)
        for block in (0, 8):
            t = self.path("e%d" % block)
            extra = ["--scale-block", block] if block else []
            run("table", "import", t, "--from", src, "--dtype", "e4m3", *extra)
            info = self.info(t)
            self.assertEqual(info["row_bytes"], str(32 + (32 // block if block else 0)))
            got = self.export(t, range(64))
            self.assertEqual(got.dtype, np.uint8)
            want = e4m3_rows(arr, block)
            np.testing.assert_array_equal(got, want)
            # and the decoded values are within fp8 precision of the input
            dec = e4m3_rows_decode(got, 32, block)
            ref = np.clip(arr, -448, 448) if not block else arr
            tol = np.abs(ref) * 2.0 ** -4 + (2.0 ** -10 if not block else 2.0 ** -6)
            self.assertTrue(np.all(np.abs(dec - ref) <= tol))
            # the stored bytes (export's |u1) import back unchanged
            raw = self.save("raw%d.npy" % block, got)
            t2 = t + "-again"
            run("table", "import", t2, "--from", raw, "--dtype", "e4m3", *extra)
            np.testing.assert_array_equal(self.export(t2, range(64)), got)

    def test_u8_raw_bin(self):
        data = self.rng.integers(0, 256, (500, 24), dtype=np.uint8)
        binp = self.path("rows.bin")
        data.tofile(binp)
        t = self.path("u")
        run("table", "import", t, "--from", binp, "--dim", 24, "--source-dtype", "u8",
            "--chunk-slots", 128)
        info = self.info(t)
        self.assertEqual((info["dtype"], info["slots"], info["dim"], info["chunks"]),
                         ("u8", "500", "24", "4"))
        got = self.export(t, range(500))
        self.assertEqual(got.dtype, np.uint8)
        np.testing.assert_array_equal(got, data)
        # raw f32 rows too
        f = self.rng.standard_normal((10, 4)).astype(np.float32)
        f.tofile(self.path("f.bin"))
        run("table", "import", self.path("f"), "--from", self.path("f.bin"), "--dim", 4,
            "--source-dtype", "f32")
        np.testing.assert_array_equal(self.export(self.path("f"), range(10)), f)

    def test_larger_table_several_chunks(self):
        arr = self.rng.standard_normal((20000, 64)).astype(np.float32)
        t = self.path("big")
        run("table", "import", t, "--from", self.save("rows.npy", arr),
            "--chunk-slots", 4096, "--dtype", "bf16")
        self.assertEqual(self.info(t)["chunks"], "5")
        run("table", "verify", t)
        slots = self.rng.integers(0, 20000, 1000)
        np.testing.assert_array_equal(self.export(t, slots), bf16_bits(arr[slots]))


class TestCreate(TableCase):
    def test_fill_random_is_deterministic(self):
        for name, chunk, seed in (("a", 64, 7), ("b", 256, 7), ("c", 64, 8)):
            run("table", "create", self.path(name), "--slots", 1000, "--dim", 32,
                "--chunk-slots", chunk, "--fill", "random:%d" % seed)
        every = range(1000)
        a, b, c = (self.export(self.path(n), every) for n in "abc")
        np.testing.assert_array_equal(a, b)  # same seed, other chunking
        self.assertFalse(np.array_equal(a, c))
        self.assertLess(abs(a.mean()), 0.05)
        self.assertLess(abs(a.std() - 1.0), 0.05)
        self.assertGreater(len(np.unique(a)), 20000)
        run("table", "create", self.path("z"), "--slots", 100, "--dim", 8)
        self.assertFalse(self.export(self.path("z"), range(100)).any())

    def test_fill_random_other_dtypes(self):
        run("table", "create", self.path("u"), "--slots", 300, "--dim", 16, "--dtype", "u8",
            "--fill", "random:1")
        u = self.export(self.path("u"), range(300))
        self.assertGreater(len(np.unique(u)), 200)
        run("table", "create", self.path("e"), "--slots", 300, "--dim", 16, "--dtype", "e4m3",
            "--scale-block", 16, "--fill", "random:1")
        e = self.export(self.path("e"), range(300))
        self.assertEqual(e.shape, (300, 17))
        dec = e4m3_rows_decode(e, 16, 16)
        self.assertLess(abs(dec.std() - 1.0), 0.1)

    def test_info_text_and_json(self):
        t = self.path("t")
        run("table", "create", t, "--slots", 1000, "--dim", 64, "--dtype", "e4m3",
            "--scale-block", 32, "--chunk-slots", 256, "--name", "engram.l2")
        info = self.info(t)
        self.assertEqual(info["name"], "engram.l2")
        self.assertEqual(info["slots"], "1000")
        self.assertEqual(info["dim"], "64")
        self.assertEqual(info["dtype"], "e4m3")
        self.assertEqual(info["scale_block"], "32")
        self.assertEqual(info["row_bytes"], "66")
        self.assertEqual(info["chunk_slots"], "256")
        self.assertEqual(info["chunks"], "4")
        self.assertEqual(info["generation"], "1")
        self.assertEqual(info["hash"], "none")
        self.assertEqual(info["rows_per_token"], "0")
        self.assertRegex(info["created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertGreater(int(info["bytes_on_disk"]), 66 * 1000)
        j = json.loads(run("table", "info", t, "--json").stdout)
        for key in ("name", "dtype", "created"):
            self.assertEqual(j[key], info[key])
        for key in ("slots", "dim", "scale_block", "row_bytes", "chunk_slots", "chunks",
                    "generation", "bytes_on_disk", "rows_per_token"):
            self.assertEqual(j[key], int(info[key]), key)
        self.assertIsNone(j["hash"])

    def test_hash_spec(self):
        spec = {"kind": "xxh3", "max_ngram": 3, "heads": 2, "pad": 0, "seed": 5,
                "rows": [[31, 37], [41, 43]]}
        sp = self.path("spec.json")
        with open(sp, "w") as f:
            json.dump(spec, f)
        t = self.path("t")
        run("table", "create", t, "--dim", 8, "--hash", sp)
        info = self.info(t)
        self.assertEqual((info["slots"], info["hash"], info["rows_per_token"]),
                         ("152", "xxh3", "4"))
        j = json.loads(run("table", "info", t, "--json").stdout)
        self.assertEqual(j["hash_spec"]["kind"], "xxh3")
        self.assertEqual(j["hash_spec"]["rows"], spec["rows"])
        # import: the rows must number what the spec says
        arr = np.ones((152, 8), dtype=np.float32)
        run("table", "import", self.path("i"), "--from", self.save("r.npy", arr), "--hash", sp)
        self.assertEqual(self.info(self.path("i"))["hash"], "xxh3")
        self.assert_fails("table", "create", self.path("bad"), "--slots", 150, "--dim", 8,
                          "--hash", sp)
        self.assert_not_table(self.path("bad"))
        self.assert_fails("table", "import", self.path("bad2"), "--from",
                          self.save("r2.npy", arr[:151]), "--hash", sp)
        self.assert_not_table(self.path("bad2"))
        with open(self.path("broken.json"), "w") as f:
            f.write('{"kind": "nope"}')
        self.assert_fails("table", "create", self.path("bad3"), "--slots", 10, "--dim", 8,
                          "--hash", self.path("broken.json"))
        self.assert_not_table(self.path("bad3"))


class TestVerifyUpdatePublish(TableCase):
    def test_verify_catches_a_flipped_byte(self):
        t = self.path("t")
        run("table", "create", t, "--slots", 1024, "--dim", 8, "--chunk-slots", 256,
            "--fill", "random:3")
        p = run("table", "verify", t)
        self.assertIn("ok", p.stdout)
        row = self.export(t, [300]).tobytes()  # chunk 1
        with open(os.path.join(t, "data.mdb"), "r+b") as f:
            data = f.read()
            self.assertEqual(data.count(row), 1)
            off = data.index(row) + 5
            f.seek(off)
            f.write(bytes([data[off] ^ 0x10]))
        p = run("table", "verify", t, check=False)
        self.assertEqual(p.returncode, 1)
        lines = p.stderr.splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertRegex(lines[0], r"^engram: .*chunk 1\b")

    def test_update_patches_rows_and_bumps_generation(self):
        t = self.path("t")
        run("table", "create", t, "--slots", 1000, "--dim", 8, "--chunk-slots", 128,
            "--fill", "random:1")
        before = self.export(t, range(1000))
        rows = self.rng.standard_normal((3, 8)).astype(np.float32)
        slots = np.array([5, 700, 999], dtype=np.int64)
        p = run("table", "update", t, "--slots", self.save("s.npy", slots),
                "--rows", self.save("r.npy", rows))
        self.assertIn("generation 2", p.stdout)
        after = self.export(t, range(1000))
        want = before.copy()
        want[slots] = rows
        np.testing.assert_array_equal(after, want)
        self.assertEqual(self.info(t)["generation"], "2")
        run("table", "verify", t)
        # a list of slots and raw rows in the table's layout
        raw = np.full((2, 8), 0.5, dtype=np.float32)
        raw.tofile(self.path("r.bin"))
        run("table", "update", t, "--slots", "1,2", "--rows", self.path("r.bin"))
        np.testing.assert_array_equal(self.export(t, [1, 2]), raw)
        self.assertEqual(self.info(t)["generation"], "3")
        # bad updates change nothing
        self.assert_fails("table", "update", t, "--slots", "1,1000", "--rows",
                          self.save("r2.npy", raw))
        self.assert_fails("table", "update", t, "--slots", "1,2,3", "--rows",
                          self.path("r2.npy"))
        self.assert_fails("table", "update", t, "--slots", "1,2", "--rows",
                          self.save("r3.npy", np.zeros((2, 9), np.float32)))
        self.assertEqual(self.info(t)["generation"], "3")

    def test_update_converts_to_the_table_dtype(self):
        t = self.path("t")
        run("table", "create", t, "--slots", 100, "--dim", 8, "--dtype", "bf16")
        rows = self.rng.standard_normal((2, 8)).astype(np.float32)
        run("table", "update", t, "--slots", "10,20", "--rows", self.save("r.npy", rows))
        np.testing.assert_array_equal(self.export(t, [10, 20]), bf16_bits(rows))

    def test_new_version_starts_at_a_given_generation(self):
        t = self.path("t")
        run("table", "create", t, "--slots", 10, "--dim", 4, "--generation", 5)
        self.assertEqual(self.info(t)["generation"], "5")
        run("table", "update", t, "--slots", "1", "--rows",
            self.save("one.npy", np.ones((1, 4), np.float32)))
        self.assertEqual(self.info(t)["generation"], "6")
        self.assert_fails("table", "create", self.path("g0"), "--slots", 10, "--dim", 4,
                          "--generation", 0, code=2)

    def test_publish_and_rollback(self):
        for v in ("v1", "v2"):
            run("table", "create", self.path(v), "--slots", 10, "--dim", 4, "--name", v)
        link = self.path("live")
        run("table", "publish", link, self.path("v1"))
        self.assertEqual(os.path.realpath(link), os.path.realpath(self.path("v1")))
        self.assertEqual(self.info(link)["name"], "v1")
        run("table", "publish", link, self.path("v2"))
        self.assertEqual(os.path.realpath(link), os.path.realpath(self.path("v2")))
        self.assertEqual(os.path.realpath(link + ".prev"), os.path.realpath(self.path("v1")))
        self.assertEqual(self.info(link)["name"], "v2")
        # update through the link patches the version it points at
        run("table", "update", link, "--slots", "3", "--rows",
            self.save("one.npy", np.full((1, 4), 2.0, np.float32)))
        self.assertEqual(self.info(self.path("v2"))["generation"], "2")
        self.assertEqual(self.info(self.path("v1"))["generation"], "1")
        run("table", "rollback", link)
        self.assertEqual(self.info(link)["name"], "v1")
        run("table", "rollback", link)  # undoes the rollback
        self.assertEqual(self.info(link)["name"], "v2")
        # the tree can move: links within one directory are relative
        self.assertEqual(os.readlink(link), "v2")
        # refusals leave the link alone
        os.mkdir(self.path("empty"))
        self.assert_fails("table", "publish", link, self.path("empty"))
        self.assert_fails("table", "publish", link, self.path("missing"))
        self.assertEqual(self.info(link)["name"], "v2")
        self.assert_fails("table", "publish", self.path("v1"), self.path("v2"))
        self.assert_fails("table", "rollback", self.path("nolink"))
        run("table", "publish", self.path("fresh"), self.path("v1"))
        self.assert_fails("table", "rollback", self.path("fresh"))
        # no temporary links left behind
        self.assertFalse([n for n in os.listdir(self.tmp) if ".tmp." in n])


class TestBadInput(TableCase):
    def bad_build(self, *args, code=None):
        d = self.path("bad-%d" % len(os.listdir(self.tmp)))
        self.assert_fails("table", args[0], d, *args[1:], code=code)
        self.assert_not_table(d)
        self.assertFalse(os.path.exists(d), "left %s behind" % d)

    def test_bad_imports(self):
        good = self.save("good.npy", np.ones((10, 4), np.float32))
        self.bad_build("import", "--from", self.save("3d.npy", np.ones((2, 3, 4), np.float32)))
        self.bad_build("import", "--from", self.save("1d.npy", np.ones(5, np.float32)))
        self.bad_build("import", "--from", self.save("fortran.npy",
                                                     np.asfortranarray(np.ones((5, 4), np.float32))))
        self.bad_build("import", "--from", self.save("f8.npy", np.ones((5, 4), np.float64)))
        self.bad_build("import", "--from", self.save("be.npy", np.ones((5, 4), ">f4")))
        with open(self.path("junk.npy"), "w") as f:
            f.write("this is not an array\n")
        self.bad_build("import", "--from", self.path("junk.npy"))
        with open(good, "rb") as f:
            head = f.read()
        with open(self.path("short.npy"), "wb") as f:
            f.write(head[:-10])
        self.bad_build("import", "--from", self.path("short.npy"))
        self.bad_build("import", "--from", self.path("missing.npy"))
        self.bad_build("import", "--from", good, "--dtype", "u8")  # float -> u8 refused
        self.bad_build("import", "--from", good, "--dtype", "e4m3", "--scale-block", 3)
        self.bad_build("import", "--from", good, "--dtype", "f64", code=2)
        self.bad_build("import", "--from", good, "--chunk-slots", 1000, code=2)
        self.bad_build("import", "--from", good, "--dim", 5)
        self.bad_build("import", code=2)
        with open(self.path("odd.bin"), "wb") as f:
            f.write(b"\0" * 30)
        self.bad_build("import", "--from", self.path("odd.bin"), "--dim", 4,
                       "--source-dtype", "f32")
        self.bad_build("import", "--from", self.path("odd.bin"), "--dim", 3, code=2)
        self.bad_build("import", "--from", self.save("u.npy", np.ones((5, 4), np.uint8)),
                       "--dtype", "f32")
        self.bad_build("import", "--from", self.save("i.npy", np.ones((5, 4), np.int64)))

    def test_bad_creates(self):
        self.bad_build("create", "--slots", 10, code=2)
        self.bad_build("create", "--slots", 0, "--dim", 4, code=2)
        self.bad_build("create", "--slots", 10, "--dim", 4, "--fill", "noise", code=2)
        self.bad_build("create", "--slots", 10, "--dim", 4, "--bogus", code=2)
        self.bad_build("create", "--slots", 10, "--dim", 4, "--scale-block", 2)  # f32
        self.bad_build("create", "--slots", "ten", "--dim", 4, code=2)
        self.bad_build("create", "--slots", 10, "--dim", 4, "--name", "x" * 64, code=2)
        # over an existing table: refused, the old one untouched
        t = self.path("t")
        run("table", "create", t, "--slots", 10, "--dim", 4, "--fill", "random")
        before = self.export(t, range(10))
        self.assert_fails("table", "create", t, "--slots", 20, "--dim", 4)
        self.assertEqual(self.info(t)["slots"], "10")
        np.testing.assert_array_equal(self.export(t, range(10)), before)

    def test_bad_reads(self):
        t = self.path("t")
        run("table", "create", t, "--slots", 10, "--dim", 4)
        self.assert_fails("table", "export", t, "--slots", "3,10")
        self.assert_fails("table", "export", t, "--slots", "3,x", code=2)
        self.assert_fails("table", "export", t, code=2)
        self.assert_fails("table", "export", t, "--slots-file",
                          self.save("fs.npy", np.ones(3, np.float32)))
        self.assert_fails("table", "export", t, "--slots-file",
                          self.save("neg.npy", np.array([1, -1])))
        self.assert_fails("table", "export", t, "--slots", "1", "--out", "/dev/full")
        os.mkdir(self.path("empty"))
        for d in (self.path("empty"), self.path("missing"), good_file(self)):
            self.assert_fails("table", "info", d)
            self.assert_fails("table", "verify", d)
            self.assert_fails("table", "export", d, "--slots", "1")
        self.assert_fails("table", "frobnicate", t, code=2)
        self.assert_fails("table", code=2)
        # a failed export leaves no file
        out = self.path("o.npy")
        self.assert_fails("table", "export", t, "--slots", "99", "--out", out)
        self.assertFalse(os.path.exists(out))


def good_file(case):
    p = case.path("file.txt")
    with open(p, "w") as f:
        f.write("hello\n")
    return p


if __name__ == "__main__":
    unittest.main()
