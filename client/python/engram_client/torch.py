"""engram_client.torch: rows as torch.Tensors, without copying.

    from engram_client import Client
    rows = client.lookup("layer1", slots, as_torch=True)   # torch.bfloat16 [n, dim]
    buf = engram_client.torch.shm_tensor(client, n * row_bytes)
    client.lookup("layer1", slots, out=buf)                # written by engramd into buf

as_tensor() turns what Client returns into tensors sharing its memory:
f32 and f16 rows as float32/float16, bf16 rows (their raw bits) as
torch.bfloat16, e4m3 and u8 rows (raw row bytes, scales included) as uint8,
decoded rows as float32. shm_tensor() is a uint8 tensor over the client's
shared buffer: memory the caller may pin for GPU copies (e.g. with
cudaHostRegister) and pass, whole or sliced, as lookup's out=. Tensors over
received rows live as long as they are referenced; over the shared buffer,
until an shm request writes over them.

Needs PyTorch (Debian: python3-torch); importing this module without it
raises ImportError.
"""
import numpy as np
import torch


def as_tensor(rows, layout=None):
    """A tensor over the memory of a rows array (or of each array of a
    {table: array} dict); layout (rows.Layout, optional) tells bf16 bits
    apart. uint16 arrays are bf16 bits: no other row dtype is uint16."""
    if isinstance(rows, dict):
        return {k: as_tensor(v, layout) for k, v in rows.items()}
    if rows.dtype == np.uint16 and (layout is None or layout.dtype == "bf16"):
        return torch.from_numpy(rows.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(rows)


def as_numpy(t):
    """A NumPy array over the memory of a CPU tensor (bfloat16 as int16
    bits), for the client to receive rows into."""
    if t.device.type != "cpu":
        raise ValueError("out= must be a CPU tensor (copy to the GPU from it)")
    if not t.is_contiguous():
        raise ValueError("out= must be a contiguous tensor")
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy()


def shm_tensor(client, nbytes=None, offset=0, dtype=torch.uint8):
    """A tensor of dtype over nbytes (default: the rest) of the client's
    shared buffer from offset."""
    shm = client.shm
    if shm is None:
        raise ValueError("the client has no shared buffer: Client(..., shm_bytes=N)")
    end = len(shm) if nbytes is None else offset + nbytes
    if not 0 <= offset <= end <= len(shm):
        raise ValueError(f"bytes {offset}..{end} are outside the shared buffer of {len(shm)}")
    t = torch.from_numpy(shm[offset:end])
    return t if dtype == torch.uint8 else t.view(dtype)
