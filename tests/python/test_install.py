"""make install PREFIX=/usr/local DESTDIR=...: every installed file, checked
one by one against the expected list; the generated units name PREFIX's
paths; the installed config (which names no table) starts the installed
engramd, which serves nothing until a table is added; a second install keeps
an operator's config; make uninstall removes the rest. Also: the versions
everywhere equal the file VERSION, and the man pages render without a
warning.
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import daemon_support as ds
import engram_pb2 as pb

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD", "build")
with open(os.path.join(ROOT, "VERSION")) as f:
    VERSION = f.read().strip()

EXPECTED = """
etc/engramd/engramd.conf
usr/local/bin/engram
usr/local/bin/engramd
usr/local/include/engram.h
usr/local/lib/libengram.a
usr/local/lib/libengram.so
usr/local/lib/libengram.so.1
usr/local/lib/pkgconfig/engram.pc
usr/local/lib/systemd/system/engramd.service
usr/local/lib/systemd/system/engramd.socket
usr/local/lib/sysusers.d/engramd.conf
usr/local/lib/tmpfiles.d/engramd.conf
usr/local/share/doc/engramd/ARCHITECTURE.md
usr/local/share/doc/engramd/DEPLOYMENT.md
usr/local/share/doc/engramd/FORMAT.md
usr/local/share/doc/engramd/OPERATIONS.md
usr/local/share/doc/engramd/PROTOCOL.md
usr/local/share/doc/engramd/README.md
usr/local/share/doc/engramd/RELIABILITY.md
usr/local/share/man/man1/engram.1
usr/local/share/man/man8/engramd.8
""".split()


def make(*args):
    # a make run by a test is not part of the outer make's job server
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    # with the outer build's sanitizers, so nothing is rebuilt without them
    san = [f"SANITIZE={os.environ['SANITIZE']}"] if os.environ.get("SANITIZE") else []
    p = subprocess.run(["make", "--no-print-directory", "-C", ROOT, f"BUILD={BUILD}", *san, *args],
                       capture_output=True, text=True, env=env, timeout=600)
    if p.returncode != 0:
        raise AssertionError(f"make {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p


def tree(root):
    """Every file and symlink under root, relative, sorted."""
    out = []
    for d, dirs, files in os.walk(root):
        for name in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            out.append(os.path.relpath(os.path.join(d, name), root))
    return sorted(out)


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dest = tempfile.mkdtemp(prefix="engram-install-")
        make("install", "PREFIX=/usr/local", f"DESTDIR={cls.dest}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dest, ignore_errors=True)

    def path(self, rel):
        return os.path.join(self.dest, rel)

    def test_files_one_by_one(self):
        got = tree(self.dest)
        for rel in EXPECTED:
            self.assertIn(rel, got, "not installed")
        for rel in got:
            self.assertIn(rel, EXPECTED, "installed but not expected")
        self.assertEqual(os.readlink(self.path("usr/local/lib/libengram.so")), "libengram.so.1")
        for rel in ("usr/local/bin/engram", "usr/local/bin/engramd"):
            self.assertTrue(os.access(self.path(rel), os.X_OK), rel)
        # the shared library carries its soname
        p = subprocess.run(["objdump", "-p", self.path("usr/local/lib/libengram.so.1")],
                           capture_output=True, text=True, check=True)
        self.assertRegex(p.stdout, r"SONAME\s+libengram\.so\.1")

    def test_units_name_prefix_paths(self):
        with open(self.path("usr/local/lib/systemd/system/engramd.service")) as f:
            unit = f.read()
        self.assertNotRegex(unit, r"@[A-Z]+@")  # every template path filled in
        self.assertEqual(re.findall(r"^ExecStart=(.*)$", unit, re.M),
                         ["/usr/local/bin/engramd --config /etc/engramd/engramd.conf"])
        # a reload checks the config first, then signals
        self.assertEqual(re.findall(r"^ExecReload=(.*)$", unit, re.M),
                         ["/usr/local/bin/engramd --check-config /etc/engramd/engramd.conf",
                          "/bin/kill -HUP $MAINPID"])
        self.assertIn("Documentation=man:engramd(8) file:///usr/local/share/doc/engramd/README.md",
                      unit)
        with open(self.path("usr/local/lib/systemd/system/engramd.socket")) as f:
            self.assertIn("ListenStream=/run/engramd/engramd.sock\n", f.read())
        with open(self.path("usr/local/lib/sysusers.d/engramd.conf")) as f:
            self.assertRegex(f.read(), r"(?m)^u engramd - .* /var/lib/engramd$")
        with open(self.path("usr/local/lib/tmpfiles.d/engramd.conf")) as f:
            self.assertIn("d /var/lib/engramd 0750 engramd engramd -\n", f.read())
        with open(self.path("usr/local/lib/pkgconfig/engram.pc")) as f:
            pc = f.read()
        self.assertIn("libdir=/usr/local/lib\n", pc)
        self.assertIn(f"Version: {VERSION}\n", pc)

    def test_installed_config_starts_and_serves_nothing(self):
        conf = self.path("etc/engramd/engramd.conf")
        with open(conf) as f:
            active = [l for l in f if l.strip() and not l.lstrip().startswith("#")]
        self.assertFalse([l for l in active if l.startswith("table")], active)
        # the file as installed passes the daemon's own check
        p = subprocess.run([self.path("usr/local/bin/engramd"), "--check-config", conf],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # the installed binary, the installed config, a socket of our own
        old = ds.ENGRAMD
        ds.ENGRAMD = self.path("usr/local/bin/engramd")
        try:
            d = ds.Daemon({}, extra=["--config", conf, "--threads", "1"])
        finally:
            ds.ENGRAMD = old
        try:
            c = ds.Conn(d.addr)
            info = c.call(info=pb.InfoRequest()).info
            self.assertEqual(len(info.tables), 0)
            r = c.lookup("layer1", [0])
            self.assertEqual(r.status, pb.NOT_FOUND, r)
            c.close()
            self.assertIn("no table configured", d.logtext())
            self.assertEqual(d.stop(), 0)
        finally:
            d.cleanup()

    def test_reinstall_keeps_config_and_uninstall_removes_the_rest(self):
        dest = tempfile.mkdtemp(prefix="engram-install-")
        try:
            make("install", "PREFIX=/usr/local", f"DESTDIR={dest}")
            conf = os.path.join(dest, "etc/engramd/engramd.conf")
            with open(conf, "a") as f:
                f.write("table = mine=/var/lib/engramd/mine\n")
            make("install", "PREFIX=/usr/local", f"DESTDIR={dest}")
            with open(conf) as f:
                self.assertIn("table = mine=", f.read())
            make("uninstall", "PREFIX=/usr/local", f"DESTDIR={dest}")
            self.assertEqual(tree(dest), ["etc/engramd/engramd.conf"])
        finally:
            shutil.rmtree(dest, ignore_errors=True)


class Versions(unittest.TestCase):
    def test_binaries_debian_and_man_pages_say_VERSION(self):
        p = subprocess.run([ds.ENGRAMD, "--version"], capture_output=True, text=True, check=True)
        self.assertEqual(p.stdout.split()[:2], ["engramd", VERSION])
        p = subprocess.run([ds.ENGRAM, "--version"], capture_output=True, text=True, check=True)
        self.assertEqual(p.stdout, f"engram {VERSION}\n")
        with open(os.path.join(ROOT, "debian", "changelog")) as f:
            self.assertEqual(re.match(r"engramd \(([^)]*)\)", f.readline()).group(1), VERSION)
        for page in ("engramd.8", "engram.1"):
            with open(os.path.join(ROOT, "man", page)) as f:
                self.assertIn(f'"engramd {VERSION}"', f.readline(), page)

    def test_man_pages_render_without_warnings(self):
        for page in ("engramd.8", "engram.1"):
            path = os.path.join(ROOT, "man", page)
            p = subprocess.run(["groff", "-man", "-ww", "-z", path], capture_output=True, text=True)
            self.assertEqual((p.returncode, p.stderr), (0, ""), page)
            p = subprocess.run(["man", "--warnings", "-l", path], capture_output=True, text=True,
                               env=dict(os.environ, MANWIDTH="80"))
            self.assertEqual((p.returncode, p.stderr), (0, ""), page)
            self.assertIn("EXIT STATUS", p.stdout)


if __name__ == "__main__":
    unittest.main()
