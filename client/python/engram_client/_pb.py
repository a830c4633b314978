"""The generated engram_pb2 module: the copy installed inside this package
(make install-python), else the one generated into the build tree
($BUILD/gen/python, on PYTHONPATH for tests)."""
try:
    from . import engram_pb2 as pb  # noqa: F401
except ImportError:
    try:
        import engram_pb2 as pb  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "engram_pb2 not found: run `make proto-python` and put "
            "$BUILD/gen/python on PYTHONPATH, or `make install-python`") from e
