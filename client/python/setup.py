"""Build step of engram_client (pyproject.toml holds the metadata): the
version comes from the repository's VERSION file, and engram_pb2 is
generated into the package from proto/engram.proto with protoc (Debian's
protobuf-compiler), so a clean clone installs without running make first."""
import os
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def version():
    with open(os.path.join(ROOT, "VERSION")) as f:
        return f.read().strip()


class BuildPy(build_py):
    def run(self):
        super().run()
        out = os.path.join(self.build_lib, "engram_client")
        self.mkpath(out)
        subprocess.run(["protoc", "--proto_path", os.path.join(ROOT, "proto"),
                        "--python_out", out, "engram.proto"], check=True)
        with open(os.path.join(out, "_version.py"), "w") as f:
            f.write(f'version = "{version()}"\n')


setup(version=version(), cmdclass={"build_py": BuildPy})
