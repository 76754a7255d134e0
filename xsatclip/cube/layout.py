"""The cube's layout: variable and marker paths, chunking and storage dtypes.

Shards and inner chunks
-----------------------
The embeddings are a Zarr v3 array with sharding: a *shard* (one object, one file) is a
spatial tile of up to 128 x 128 cells holding the full embedding dimension, and the unit of
work of ``precompute``: one task computes one whole shard and writes it in one put, so no
shard is ever partially rewritten or read back, and a marker per shard says it is complete.
By default each axis is tiled exactly where it can be (:func:`default_chunk`: 120 for the
720 and 1440 cells of a 0.25 degree globe, 90 x 120 at 1 degree), since Zarr stores an
edge shard whole. A 120 x 120 float32 shard is 14 MiB: large enough that object stores see
few, large objects (72 for a 0.25 degree globe), small enough that each thread holds two.

Inside a shard, *inner chunks* of (embedding, 2, 2) cells (4 KiB of float32; see
:func:`inner_chunk` for other shard sizes) are the unit of reading. Each carries a crc32c
checksum, as does the shard's index, so a corrupted chunk raises on read. A point lookup
reads the shard index (once per shard) and one inner chunk by byte range. The inner size is
a measured trade-off (benchmarks/README.md): 10,000 random points touch ~10,000 inner
chunks, whose every byte is checksummed, so 16 x 16 chunks (256 KiB) read 2.5 GB, 4 x 4
160 MB and 2 x 2 40 MB; smaller chunks cost zarr-python more per whole-shard read (~150 us
an inner chunk: 3,600 of them make a 120 x 120 shard ~0.55 s), which ``open_cube`` avoids
by reading shards whole itself (~30 ms).

Storage dtypes
--------------
``float32``
    The model's output, bit for bit.
``float16``
    ``|x - x16| <= 2**-11 |x|`` (round to nearest; ``<= 2**-25`` below ``2**-14``).
``int8``
    Symmetric linear quantisation with one global scale, CF style: ``code = round(x / s)``
    in [-127, 127], stored with the attribute ``scale_factor = s`` (float32) and
    ``_FillValue = -128`` (cells never written), so ``xr.open_zarr`` decodes automatically
    (to float64, as CF decoding with a JSON attribute does; :func:`open_cube` decodes to
    float32). ``s = 1.25 * A / 127`` where ``A`` is the largest ``|x|`` of the model over
    16384 points of a Fibonacci lattice on the sphere: it depends on the model only, so
    every cube of a model shares it. Bound: ``|x - code * s| <= s / 2`` for every value with
    ``|x| <= 127 s``; larger values (beyond 1.25 times the lattice maximum) would saturate
    at +-127 and the chunk is flagged (marker 2, counted as ``chunks_clipped`` by
    :func:`info`), so the bound never fails silently.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from ..errors import InvalidOptionError
from ..raster import SpatialCoords, grid
from ..raster.coords import VARIABLE  # noqa: F401  (the cube's variable; re-exported)

DONE_PATH = "_xsatclip/done"
FORMAT_VERSION = 2  # 1: (lat, lon, embedding); 2: band-first (embedding, lat, lon)
DEFAULT_CHUNK = 128  # largest default shard side (cells)
INNER_SIDE = 2  # preferred inner chunk side (cells)
INNER_BYTES = 256 * 1024  # largest inner chunk, as float32
STORAGE_DTYPES = ("float32", "float16", "int8")
StorageDType = Literal["float32", "float16", "int8"]
INT8_FILL = -128
INT8_MAX = 127
INT8_MARGIN = 1.25
INT8_SAMPLE_POINTS = 16384
DONE, DONE_CLIPPED = 1, 2


def template_grid(resolution: float | None, template: xr.Dataset | xr.DataArray | None,
                  bbox: tuple[float, float, float, float] | None) -> xr.Dataset:
    """The grid of a cube: ``template`` as a Dataset, or a :func:`~xsatclip.grid` of
    ``resolution`` degrees over ``bbox``."""
    if template is None:
        if resolution is None:
            raise InvalidOptionError("precompute needs resolution= (degrees) or template=")
        return grid(resolution, bbox=bbox)
    if resolution is not None or bbox is not None:
        raise InvalidOptionError("pass either template= or resolution=/bbox=, not both")
    if isinstance(template, xr.DataArray):
        template = template.to_dataset(name=template.name or "template")
    return template


def grid_definition(template: xr.Dataset, spatial: SpatialCoords) -> str:
    """A one-line description of the grid, recorded in the cube's attrs."""
    if "xsatclip_grid" in template.attrs:
        return str(template.attrs["xsatclip_grid"])
    parts = []
    for name in (spatial.y, spatial.x):
        values = np.asarray(template[name].values)
        parts.append(f"{name}: {values.size} values {values.min():g} .. {values.max():g}")
    return f"template ({spatial.kind}): " + ", ".join(parts)


def default_chunk(size: int) -> int:
    """Default chunk length along an axis of ``size`` cells: the whole axis up to 128 cells,
    else the largest divisor of ``size`` from 64 to 128 (the axis is tiled exactly), else 128
    (the last chunk is padded)."""
    if size <= DEFAULT_CHUNK:
        return size
    divisors = (c for c in range(DEFAULT_CHUNK, DEFAULT_CHUNK // 2 - 1, -1) if size % c == 0)
    return next(divisors, DEFAULT_CHUNK)


def inner_chunk(shard: int, embed_dim: int, preferred: int = INNER_SIDE) -> int:
    """Inner chunk side along an axis of shards of ``shard`` cells: the divisor of ``shard``
    nearest ``preferred`` (the larger on a tie: zarr-python pays per chunk) whose chunk of
    ``embed_dim`` float32 channels fits in :data:`INNER_BYTES`."""
    fits = [d for d in range(1, shard + 1)
            if shard % d == 0 and embed_dim * d * d * 4 <= INNER_BYTES]
    return min(fits or [1], key=lambda d: (abs(d - preferred), -d))
