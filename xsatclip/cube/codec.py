"""Stored values from float32 model outputs and back (float32, float16, int8: see
:mod:`xsatclip.cube.layout`), and the bytes of a shard.

A shard's bytes are Zarr v3's ``sharding_indexed`` codec with inner codecs ``bytes``
(little endian) and ``crc32c``, and index codecs ``bytes`` and ``crc32c`` at the end:
every inner chunk in C order of the chunk grid, each its values in C order followed by the
crc32c of those bytes (4 bytes, little endian), then the index ((offset, length) uint64
little endian per inner chunk) and the index's crc32c. ``precompute`` builds them itself
(:func:`shard_bytes`, ~5 ms for 14 MiB) rather than through ``zarr.Array.__setitem__``
(~35 ms with 225 KiB inner chunks, ~220 ms with 16 KiB ones, as much as computing the shard).
No compressor: see benchmarks/README.md, *Codec chain*.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numba
import numpy as np
from zarr.codecs import Crc32cCodec

from ..model import Encoder
from ..raster.geometry import fibonacci_lattice
from .checksum import crc32c, crc32c_many
from .layout import (
    INNER_SIDE,
    INT8_FILL,
    INT8_MARGIN,
    INT8_MAX,
    INT8_SAMPLE_POINTS,
    inner_chunk,
)


@dataclasses.dataclass(frozen=True)
class Codec:
    """float32 model output -> stored values (and whether any value saturated)."""

    dtype: str
    scale: float | None = None  # int8: the float32 scale_factor, as a Python float
    inner_side: int = INNER_SIDE  # preferred inner chunk side (cells) of a new store

    def encode(self, block: np.ndarray) -> tuple[np.ndarray, bool]:
        if self.dtype == "float32":
            return np.asarray(block, np.float32), False
        if self.dtype == "float16":
            with np.errstate(over="ignore"):
                out = np.asarray(block, np.float16)
            return out, bool(np.isinf(out).any())
        assert self.scale is not None, "an int8 codec needs its scale"
        codes = np.rint(np.asarray(block, np.float64) / self.scale)
        clipped = bool((np.abs(codes) > INT8_MAX).any())
        np.clip(codes, -INT8_MAX, INT8_MAX, out=codes)
        return codes.astype(np.int8), clipped

    def encoding(self, shards: tuple[int, int, int]) -> dict[str, Any]:
        """``to_zarr`` encoding of the embeddings: ``shards`` (embedding, y, x) cells of
        inner chunks of :func:`~xsatclip.cube.layout.inner_chunk` cells, each inner chunk
        with a crc32c checksum, uncompressed."""
        channels, height, width = shards
        chunks = (channels, inner_chunk(height, channels, self.inner_side),
                  inner_chunk(width, channels, self.inner_side))
        enc: dict[str, Any] = {"chunks": chunks, "shards": shards, "dtype": self.dtype,
                               "compressors": [Crc32cCodec()]}
        if self.dtype == "int8":
            enc.update(scale_factor=np.float32(self.scale), _FillValue=np.int8(INT8_FILL),
                       fill_value=np.int8(INT8_FILL))
        else:
            enc.update(_FillValue=np.nan, fill_value=np.nan)
        return enc


def shard_bytes(values: np.ndarray, inner: tuple[int, int]) -> np.ndarray:
    """The bytes (uint8) of one shard from its stored ``values`` (embedding, y, x), y and x
    whole multiples of ``inner`` (y, x cells of an inner chunk); module doc for the layout."""
    channels, height, width = values.shape
    ny, nx = height // inner[0], width // inner[1]
    count = ny * nx
    size = channels * inner[0] * inner[1] * values.dtype.itemsize  # bytes of an inner chunk
    out = np.empty(count * (size + 4) + count * 16 + 4, np.uint8)
    words = np.dtype(f"<u{values.dtype.itemsize}")  # values copied as integers of a size
    stride = (size + 4) // values.dtype.itemsize
    points_major = np.moveaxis(values, 0, -1)  # the model's own (y, x, embedding) order
    if points_major.flags.c_contiguous:
        _tile_points_major(points_major.view(words), out[:count * (size + 4)].view(words),
                           inner[0], inner[1], stride)
    else:
        _tile(np.ascontiguousarray(values).view(words), out[:count * (size + 4)].view(words),
              inner[0], inner[1], stride)
    chunks = out[:count * (size + 4)].reshape(count, size + 4)
    crc = crc32c_many(out, np.arange(count, dtype=np.int64) * (size + 4), size)
    chunks[:, size:] = crc.astype("<u4").view(np.uint8).reshape(count, 4)
    index = out[count * (size + 4):-4]
    entries = index.view("<u8").reshape(count, 2)
    entries[:, 0] = np.arange(count, dtype=np.uint64) * np.uint64(size + 4)
    entries[:, 1] = size + 4
    out[-4:] = np.array([crc32c(index)], "<u4").view(np.uint8)
    return out


@numba.njit(nogil=True, cache=True)
def _tile(values, out, iy, ix, stride):  # pragma: no cover - compiled
    """(embedding, y, x) cells into inner chunks of ``iy`` x ``ix`` cells in C order, each
    starting ``stride`` words after the previous one: ``out[(ty * nx + tx) * stride +
    (e * iy + y) * ix + x] = values[e, ty * iy + y, tx * ix + x]``. Reads ``values`` row by
    row and writes each chunk's piece of the row in place (~1.4x faster than tiling into a
    contiguous array and copying that into the chunks)."""
    channels, height, width = values.shape
    nx = width // ix
    for ty in range(height // iy):
        for e in range(channels):
            for y in range(iy):
                row = ty * iy + y
                base = ty * nx * stride + (e * iy + y) * ix
                for tx in range(nx):
                    at = base + tx * stride
                    for x in range(ix):
                        out[at + x] = values[e, row, tx * ix + x]


@numba.njit(nogil=True, cache=True)
def _tile_points_major(values, out, iy, ix, stride):  # pragma: no cover - compiled
    """As :func:`_tile` from ``values`` (y, x, embedding), as the model returns them: each
    cell's embedding is read in one run and scattered through its inner chunk. ~5x faster
    than transposing to (embedding, y, x) first (3 ms against 15 + 6 ms for a
    256 x 120 x 120 float32 shard)."""
    height, width, channels = values.shape
    nx = width // ix
    for ty in range(height // iy):
        for tx in range(nx):
            base = (ty * nx + tx) * stride
            for y in range(iy):
                for x in range(ix):
                    at = base + y * ix + x
                    cell = values[ty * iy + y, tx * ix + x]
                    for e in range(channels):
                        out[at + e * iy * ix] = cell[e]


def int8_scale(model: Encoder) -> float:
    """The int8 ``scale_factor`` of ``model``'s cubes (module doc, *Storage dtypes*)."""
    amplitude = float(np.abs(model.encode(*fibonacci_lattice(INT8_SAMPLE_POINTS))).max())
    return float(np.float32(INT8_MARGIN * (amplitude or 1.0) / INT8_MAX))


def dequantize(codes, scale_factor: float) -> np.ndarray:
    """int8 codes -> float32 embeddings (``-128``, never written, -> NaN)."""
    codes = np.asarray(codes)
    values = codes * np.float32(scale_factor)
    return np.where(codes == INT8_FILL, np.float32(np.nan), values).astype(np.float32)


def quantization_formula(codec: Codec) -> str:
    """How stored values become embeddings, exactly (the ``xsatclip_quantization`` attr)."""
    if codec.dtype == "int8":
        return (f"int8 linear, symmetric, one global scale: value = float32(code) * "
                f"float32(scale_factor) + 0.0, scale_factor = {codec.scale!r}; codes in "
                f"[-127, 127], {INT8_FILL} (_FillValue) = not written; "
                f"|error| <= scale_factor / 2 = {(codec.scale or 0.0) / 2:.3g}")
    if codec.dtype == "float16":
        return ("float16 rounding of float32 outputs: value = float32(stored); "
                "|error| <= 2**-11 |value|")
    return "none (float32 model outputs)"
