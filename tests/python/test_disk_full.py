"""A full disk never kills a build or an update: on a 100 MiB tmpfs made
here, `engram table create` / `import` of a table that does not fit exit 1
with one line naming ENOSPC and leave nothing behind (they used to die of
SIGBUS writing through a shared mapping of a sparse file, leaving the file
to hold the disk full), and `engram table update` on a full disk says "No
space left on device" (it used to say "Input/output error") and keeps the
table intact.

Needs root to mount the tmpfs; elsewhere it prints a line starting
"SKIP test_disk_full:" and skips.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

from daemon_support import ENGRAM, engram

ENOSPC_TEXT = os.strerror(28)  # "No space left on device"
FS_BYTES = 100 << 20


def skip(why):
    print(f"SKIP test_disk_full: {why}", flush=True)
    raise unittest.SkipTest(why)


def fill(path, leave):
    """Fills the filesystem of path with one file, then frees `leave` bytes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 65536, 4096):
            buf = b"x" * size
            while True:
                try:
                    if os.write(fd, buf) < size:
                        break
                except OSError:
                    break
        os.ftruncate(fd, max(0, os.lseek(fd, 0, os.SEEK_END) - leave))
    finally:
        os.close(fd)


class DiskFullTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            skip("mounting a tmpfs needs root")
        cls.tmp = tempfile.mkdtemp(prefix="engram-diskfull-")
        cls.mnt = os.path.join(cls.tmp, "fs")
        os.mkdir(cls.mnt)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", cls.mnt],
                           capture_output=True, text=True)
        if p.returncode != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            skip("cannot mount a tmpfs: " + (p.stderr.strip() or f"exit {p.returncode}"))

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["umount", "-l", cls.mnt])
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        for name in os.listdir(self.mnt):
            p = os.path.join(self.mnt, name)
            shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)

    def used(self):
        st = os.statvfs(self.mnt)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def expect_enospc(self, p, table_dir):
        # exit status 1, not a signal (SIGBUS was -7 here, 135 in a shell)
        self.assertEqual(p.returncode, 1, p.stderr)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn(ENOSPC_TEXT, lines[0])
        self.assertFalse(os.path.exists(table_dir), os.listdir(self.mnt))
        self.assertLess(self.used(), 1 << 20)  # the space is given back

    def test_create_bigger_than_the_disk(self):
        # 70 MiB of rows passes the command's free-space estimate, but every
        # 4081-byte chunk takes two pages (140 MiB): only writing finds out
        t = os.path.join(self.mnt, "big")
        p = subprocess.run([ENGRAM, "table", "create", t, "--slots", "17986", "--dim", "4081",
                            "--dtype", "u8", "--chunk-slots", "1"], capture_output=True, text=True)
        self.expect_enospc(p, t)

    def test_create_default_layout_too_big(self):
        t = os.path.join(self.mnt, "big")
        p = subprocess.run([ENGRAM, "table", "create", t, "--slots", str(150 << 14),
                            "--dim", "64", "--dtype", "u8"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertFalse(os.path.exists(t))

    def test_import_bigger_than_the_disk(self):
        src = os.path.join(self.tmp, "rows.npy")
        rows = np.zeros((17986, 4081), np.uint8)
        rows[:, 0] = np.arange(17986) % 251
        np.save(src, rows)
        try:
            t = os.path.join(self.mnt, "imp")
            p = subprocess.run([ENGRAM, "table", "import", t, "--from", src,
                                "--chunk-slots", "1"], capture_output=True, text=True)
            self.expect_enospc(p, t)
        finally:
            os.unlink(src)

    def test_update_on_a_full_disk(self):
        t = os.path.join(self.mnt, "t")
        engram("table", "create", t, "--slots", 4096, "--dim", 64, "--dtype", "u8",
               "--chunk-slots", 256, "--fill", "random:7")
        engram("table", "export", t, "--slots", "0-4095", "--out", os.path.join(self.tmp, "before.npy"))
        slots = os.path.join(self.tmp, "s.npy")
        rows = os.path.join(self.tmp, "r.npy")
        np.save(slots, np.array([1, 700, 4000], np.int64))
        np.save(rows, np.full((3, 64), 9, np.uint8))
        filler = os.path.join(self.mnt, "filler")
        # a few pages left: LMDB's commit would write part of a chunk and
        # report the short write as EIO
        for leave in (0, 8192, 65536):
            fill(filler, leave)
            p = engram("table", "update", t, "--slots", slots, "--rows", rows, check=False)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertIn(ENOSPC_TEXT, p.stderr)
            self.assertNotIn("Input/output error", p.stderr)
        os.unlink(filler)
        # nothing was written: generation 1, the same rows, checksums good
        self.assertIn("generation: 1\n", engram("table", "info", t).stdout)
        engram("table", "verify", t)
        engram("table", "export", t, "--slots", "0-4095", "--out", os.path.join(self.tmp, "after.npy"))
        self.assertTrue(np.array_equal(np.load(os.path.join(self.tmp, "before.npy")),
                                       np.load(os.path.join(self.tmp, "after.npy"))))
        # and with room again the update goes through
        engram("table", "update", t, "--slots", slots, "--rows", rows)
        self.assertIn("generation: 2\n", engram("table", "info", t).stdout)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
