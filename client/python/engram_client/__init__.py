"""engram_client: Python client for engramd (protobuf + numpy).

    from engram_client import Client
    with Client(timeout=5) as c:      # unix:/run/engramd/engramd.sock
        rows = c.lookup("layer1", [0, 17, 42])        # ndarray [3, dim]
        fut = c.tokens_async(["layer1"], token_ids)    # sent now
        blocks = fut.result()                          # {table: [T, rows, dim]}

Several daemons (replicas, tables routed to hosts, failover behind a load
balancer): Fleet, or connect(spec), which returns a Client for one address
and a Fleet otherwise (fleet.py).

engram_client.spec writes hash specs for tables and engram_client.torch
turns rows into torch.Tensors without a copy (each imported on its own:
`from engram_client import spec`; the torch module needs PyTorch).
"""
try:
    from ._version import version as __version__  # written by setup.py
except ImportError:  # used from the source tree: the repository's VERSION
    import os as _os
    with open(_os.path.join(_os.path.dirname(__file__), "..", "..", "..", "VERSION")) as _f:
        __version__ = _f.read().strip()
from .client import DEFAULT_ADDRESS, Client, Future, Pong, ReloadResult, Stats, TableInfo, parse_address
from .fleet import Fleet, FleetFuture, connect
from .errors import (BadRequest, EngramConnectionError, EngramError, EngramTimeout, Internal,
                     NotFound, OutOfRange, ProtocolError, TooLarge, Unavailable)
from .rows import Layout, decode_bf16, decode_e4m3, rows_array

__all__ = [
    "DEFAULT_ADDRESS", "Client", "Future", "Fleet", "FleetFuture", "connect", "Pong", "ReloadResult", "Stats",
    "TableInfo", "parse_address",
    "EngramError", "BadRequest", "NotFound", "OutOfRange", "TooLarge", "Unavailable",
    "Internal", "EngramConnectionError", "EngramTimeout", "ProtocolError",
    "Layout", "decode_bf16", "decode_e4m3", "rows_array",
]
