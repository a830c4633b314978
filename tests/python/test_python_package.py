"""The Python package as a user installs it: a new venv made with
--system-site-packages (NumPy and protobuf from Debian), `pip install
--no-build-isolation --no-index ./client/python` (no network; engram_pb2
generated into the package by its build), then, in that venv and away from
the source tree, `import engram_client` and a lookup against a real engramd.
Also: the CLI's default address is the installed service's socket.
"""
import os
import shutil
import subprocess
import tempfile
import textwrap
import unittest

import numpy as np

import daemon_support as ds

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
with open(os.path.join(ROOT, "VERSION")) as f:
    VERSION = f.read().strip()
DEFAULT = "unix:/run/engramd/engramd.sock"


class PipInstall(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="engram-venv-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_venv_install_and_lookup(self):
        venv = os.path.join(self.dir, "venv")
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv],
                       check=True, timeout=120)
        py = os.path.join(venv, "bin", "python")
        # nothing of the tree on the path: the venv must find its own copy
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        p = subprocess.run([py, "-m", "pip", "install", "-q", "--no-build-isolation",
                            "--no-index", os.path.join(ROOT, "client", "python")],
                           capture_output=True, text=True, env=env, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        rows = np.arange(64 * 8, dtype=np.uint8).reshape(64, 8)
        table = os.path.join(self.dir, "t")
        ds.import_rows(table, rows)
        d = ds.Daemon({"t": table})
        try:
            script = textwrap.dedent(f"""
                import sys, engram_client
                assert engram_client.__file__.startswith({venv!r}), engram_client.__file__
                assert engram_client.__version__ == {VERSION!r}, engram_client.__version__
                assert engram_client.DEFAULT_ADDRESS == {DEFAULT!r}
                assert engram_client.Client(connect=False).addr == {DEFAULT!r}
                with engram_client.Client({d.addr!r}, timeout=10) as c:
                    r = c.lookup("t", [0, 5, 63])
                sys.stdout.write(r.tobytes().hex())
            """)
            p = subprocess.run([py, "-c", script], capture_output=True, text=True, env=env,
                               cwd=self.dir, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(bytes.fromhex(p.stdout), rows[[0, 5, 63]].tobytes())
            self.assertEqual(d.stop(), 0)
        finally:
            d.cleanup()


class DefaultAddress(unittest.TestCase):
    def test_cli_without_address_uses_the_service_socket(self):
        env = {k: v for k, v in os.environ.items() if k != "ENGRAM_CONNECT"}
        p = subprocess.run([ds.ENGRAM, "ping", "--timeout", "2000"], capture_output=True,
                           text=True, env=env, timeout=60)
        if p.returncode == 0:  # a service of this host answers there
            self.assertIn(f"pong from {DEFAULT}", p.stdout)
        else:
            self.assertIn(f"cannot connect to {DEFAULT}", p.stderr)
        self.assertIn(DEFAULT, subprocess.run([ds.ENGRAM, "--help"], capture_output=True,
                                              text=True, check=True).stdout)

    def test_given_address_wins(self):
        rows = np.full((4, 8), 7, dtype=np.uint8)
        work = tempfile.mkdtemp(prefix="engram-addr-")
        try:
            ds.import_rows(os.path.join(work, "t"), rows)
            d = ds.Daemon({"t": os.path.join(work, "t")})
            try:
                env = dict(os.environ, ENGRAM_CONNECT=d.addr)
                p = subprocess.run([ds.ENGRAM, "ping"], capture_output=True, text=True, env=env,
                                   timeout=60)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn(f"pong from {d.addr}", p.stdout)
                self.assertEqual(d.stop(), 0)
            finally:
                d.cleanup()
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
