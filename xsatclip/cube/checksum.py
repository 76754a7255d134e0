"""crc32c (Castagnoli) of byte ranges in compiled code, for the checksums of shards.

Zarr's ``crc32c`` codec follows each inner chunk and each shard index with the crc32c of
its bytes (4 bytes, little endian). Checking one range from Python costs a ~0.6 us call,
as much as the checksum of a 4 KiB chunk itself, and a compiled loop that calls a C library
through ctypes cannot be cached on disk (it would recompile, ~0.6 s, in every process). So
the kernels here are Numba functions, cached: on x86-64 with SSE 4.2 the ``crc32``
instruction (8 bytes a step, ~8 GB/s on one core, as fast as google-crc32c's C code), elsewhere
a byte-wise table (~0.5 GB/s). Both are tested against google-crc32c.
"""

from __future__ import annotations

import platform

import numba
import numpy as np
from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

POLYNOMIAL = 0x82F63B78  # crc32c, bit-reflected
RESIDUE = 0x48674BC7  # crc32c of any bytes followed by their own crc32c (little endian)


def _table() -> np.ndarray:
    """The 256-entry byte table of the reflected crc32c polynomial (uint32)."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(POLYNOMIAL), table >> 1)
    return table.astype(np.uint32)


TABLE = _table()
HARDWARE = (platform.machine().lower() in ("x86_64", "amd64")
            and bool(binding.get_host_cpu_features().get("sse4.2")))


def _x86_crc32(bits: int):
    """An intrinsic for SSE 4.2's ``crc32`` on ``bits``-bit words (64 or 8)."""
    crc_type = ir.IntType(64 if bits == 64 else 32)
    name = "llvm.x86.sse42.crc32.64.64" if bits == 64 else "llvm.x86.sse42.crc32.32.8"
    result = types.uint64 if bits == 64 else types.uint32
    word = types.uint64 if bits == 64 else types.uint8

    @intrinsic
    def crc32_step(typingctx, crc, value):
        def codegen(context, builder, signature, args):
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(crc_type, [crc_type, ir.IntType(bits)]), name)
            return builder.call(function, args)

        return result(result, word), codegen

    return crc32_step


_crc32_u64, _crc32_u8 = _x86_crc32(64), _x86_crc32(8)


@numba.njit(nogil=True, cache=True)
def crc32c_hardware(data):  # pragma: no cover - compiled
    """crc32c (uint32) of ``data`` (1-D contiguous uint8) with SSE 4.2's ``crc32``."""
    crc = np.uint64(0xFFFFFFFF)
    whole = data.size // 8
    words = data[:whole * 8].view(np.uint64)
    for i in range(whole):
        crc = _crc32_u64(crc, words[i])
    short = np.uint32(crc)
    for i in range(whole * 8, data.size):
        short = _crc32_u8(short, data[i])
    return short ^ np.uint32(0xFFFFFFFF)


@numba.njit(nogil=True, cache=True)
def crc32c_table(data):  # pragma: no cover - compiled
    """crc32c (uint32) of ``data`` (1-D uint8), a byte at a time through :data:`TABLE`."""
    crc = np.uint32(0xFFFFFFFF)
    for i in range(data.size):
        crc = TABLE[(crc ^ data[i]) & 0xFF] ^ (crc >> 8)
    return crc ^ np.uint32(0xFFFFFFFF)


crc32c = crc32c_hardware if HARDWARE else crc32c_table


@numba.njit(nogil=True, cache=True)
def _ranges(buffer, starts, size):  # pragma: no cover - compiled
    out = np.empty(starts.size, np.uint32)
    for i in range(starts.size):
        out[i] = crc32c(buffer[starts[i]:starts[i] + size])
    return out


def crc32c_many(buffer: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """crc32c (N,) uint32 of ``buffer[s:s + size]`` for each of the N ``starts`` (byte
    offsets into the uint8 ``buffer``); raises ValueError for a range outside it. A range
    followed by its own crc32c, checked as one (``size`` + 4 bytes), gives :data:`RESIDUE`."""
    starts = np.asarray(starts, np.int64)
    if starts.size and (starts.min() < 0 or starts.max() + size > buffer.size):
        raise ValueError(f"crc32c ranges of {size} bytes at offsets {starts.min()}.."
                         f"{starts.max()} fall outside a buffer of {buffer.size} bytes")
    return _ranges(np.ascontiguousarray(buffer).view(np.uint8), starts, int(size))
