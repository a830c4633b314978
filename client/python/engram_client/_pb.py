"""The generated engram_pb2 module: the copy generated inside the package
when pip installs it (setup.py), else the one generated into the build tree
($BUILD/gen/python, on PYTHONPATH for tests)."""
try:
    from . import engram_pb2 as pb  # noqa: F401
except ImportError:
    try:
        import engram_pb2 as pb  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "engram_pb2 not found: run `make proto-python` and put "
            "$BUILD/gen/python on PYTHONPATH, or pip install ./client/python") from e
