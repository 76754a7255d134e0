"""The crc32c kernels (SSE 4.2 instruction and byte table) against google-crc32c, at every
offset and length class (empty, under 8 bytes, unaligned, whole chunks)."""

from __future__ import annotations

import google_crc32c
import numpy as np
import pytest

from xsatclip.cube import checksum

DATA = np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8)
RANGES = [(start, size) for start in (0, 1, 3, 4, 8, 4100)
          for size in (0, 1, 7, 8, 9, 100, 4096, 4100)]


@pytest.mark.parametrize("kernel", ["crc32c_table", "crc32c_hardware"])
def test_kernels_equal_google_crc32c(kernel):
    if kernel == "crc32c_hardware" and not checksum.HARDWARE:
        pytest.skip("no SSE 4.2 crc32 instruction on this CPU (x86-64 only)")
    function = getattr(checksum, kernel)
    for start, size in RANGES:
        piece = DATA[start:start + size]
        assert function(piece) == google_crc32c.value(piece.tobytes()), (start, size)


def test_many_ranges_and_the_residue_of_a_checked_chunk():
    starts = np.array([0, 5, 4100, 15_000], np.int64)
    got = checksum.crc32c_many(DATA, starts, 4096)
    assert got.dtype == np.uint32
    assert got.tolist() == [google_crc32c.value(DATA[s:s + 4096].tobytes()) for s in starts]
    chunk = np.concatenate([DATA[:4096], got[:1].astype("<u4").view(np.uint8)])
    assert checksum.crc32c(chunk) == checksum.RESIDUE
    chunk[10] ^= 1
    assert checksum.crc32c(chunk) != checksum.RESIDUE
    assert checksum.crc32c_many(DATA, np.zeros(0, np.int64), 10).size == 0
    with pytest.raises(ValueError, match="outside a buffer of 20000 bytes"):
        checksum.crc32c_many(DATA, np.array([19_000]), 4096)
