"""Rows of a table's layout as NumPy arrays (storage/eg_dtype.h layouts).

Row layouts: f32, f16 and bf16 are dim little-endian values; e4m3 is dim
fp8 e4m3fn bytes followed, when scale_block > 0, by dim / scale_block ue8m0
scale bytes (block b of the row is multiplied by 2^(scale[b] - 127)); u8 is
dim opaque bytes.

Without decoding, f32 and f16 come back as float32/float16 [n, dim], bf16 as
its raw bits (uint16 [n, dim]), e4m3 and u8 as the raw row bytes
(uint8 [n, row_bytes], scales included). With decode=True, bf16 and e4m3 are
turned into float32 [n, dim] with array operations (no per-row Python work);
f32, f16 and u8 are unchanged.
"""
import numpy as np


def _e4m3_table():
    """float32 value of every e4m3fn byte (0x7F/0xFF are NaN; no infinities)."""
    b = np.arange(256, dtype=np.int64)
    sign = np.where(b & 0x80, -1.0, 1.0)
    exp = (b >> 3) & 0xF
    man = (b & 0x7).astype(np.float64)
    val = np.where(exp == 0, man / 8.0 * 2.0 ** -6, (1.0 + man / 8.0) * np.exp2(exp - 7.0))
    val = sign * val
    val[(b & 0x7F) == 0x7F] = np.nan
    return val.astype(np.float32)


def _ue8m0_table():
    """float32 value of every ue8m0 scale byte: 2^(e-127); 0xFF is NaN."""
    e = np.arange(256, dtype=np.float64)
    val = np.exp2(e - 127.0)
    val[255] = np.nan
    return val.astype(np.float32)


E4M3_TO_F32 = _e4m3_table()
UE8M0_TO_F32 = _ue8m0_table()

DTYPES = ("f32", "f16", "bf16", "e4m3", "u8")


class Layout:
    """A table's row layout (from TableInfo)."""

    __slots__ = ("dtype", "dim", "scale_block", "row_bytes")

    def __init__(self, dtype, dim, scale_block=0, row_bytes=None):
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}")
        self.dtype, self.dim, self.scale_block = dtype, int(dim), int(scale_block)
        self.row_bytes = int(row_bytes) if row_bytes is not None else self.expected_row_bytes()

    def expected_row_bytes(self):
        width = {"f32": 4, "f16": 2, "bf16": 2, "e4m3": 1, "u8": 1}[self.dtype]
        scales = self.dim // self.scale_block if self.scale_block else 0
        return self.dim * width + scales

    def __repr__(self):
        return (f"Layout({self.dtype!r}, dim={self.dim}, scale_block={self.scale_block}, "
                f"row_bytes={self.row_bytes})")


def decode_bf16(bits):
    """bfloat16 bits (uint16 array) -> float32 array of the same shape."""
    bits = np.asarray(bits, dtype=np.uint16)
    out = np.zeros(bits.shape + (2,), dtype=np.uint16)
    out[..., 1] = bits  # little-endian: the bf16 bits are the high half
    return out.view(np.float32).reshape(bits.shape)


def decode_e4m3(raw, dim, scale_block=0):
    """e4m3 rows (uint8 [..., row_bytes], scales after the dim values) ->
    float32 [..., dim], each value times its block's ue8m0 scale."""
    raw = np.asarray(raw, dtype=np.uint8)
    vals = E4M3_TO_F32[raw[..., :dim]]
    if not scale_block:
        return vals
    nblk = dim // scale_block
    scales = UE8M0_TO_F32[raw[..., dim:dim + nblk]]
    shaped = vals.reshape(vals.shape[:-1] + (nblk, scale_block))
    shaped *= scales[..., None]
    return vals


def _aligned(buf, itemsize):
    """buf itself when its address suits itemsize, else an aligned copy."""
    if buf.ctypes.data % itemsize:
        return buf.copy()
    return buf


def rows_array(buf, count, layout, decode=False):
    """Array of count rows from buf (uint8, exactly count*row_bytes bytes),
    shaped [count, dim] (or [count, row_bytes] for raw e4m3/u8). Views buf
    without copying wherever the layout allows."""
    dt, dim = layout.dtype, layout.dim
    if dt == "f32":
        return _aligned(buf, 4).view("<f4").reshape(count, dim)
    if dt == "f16":
        return _aligned(buf, 2).view("<f2").reshape(count, dim)
    if dt == "bf16":
        bits = _aligned(buf, 2).view("<u2").reshape(count, dim)
        return decode_bf16(bits) if decode else bits
    raw = buf.reshape(count, layout.row_bytes)
    if dt == "e4m3" and decode:
        return decode_e4m3(raw, dim, layout.scale_block)
    return raw
