"""Cloud Optimized GeoTIFF export of a cube (:func:`export_cog`).

How it is written
-----------------
GDAL's COG driver only copies a finished dataset, and rasterio buffers a direct ``driver="COG"``
write in memory (the whole raster). So the cube is first written window by window (the
store's shards or chunks) into an uncompressed, tiled, band-interleaved GeoTIFF beside the
output (GDAL computes the average overviews of a pixel-interleaved one several times slower),
which GDAL then copies into the COG (ZSTD with the floating-point predictor, ``average``
overviews, BigTIFF when needed) and which is deleted afterwards. Memory stays at one window,
GDAL's block cache (capped at :data:`GDAL_CACHE_BYTES`) and GDAL's overview buffers (a few
rows of tiles across all bands), whatever the cube's height, at the cost of a temporary file
as large as the raster.

Values
------
Every band is float32: float32 cubes bit for bit, float16 cubes widened exactly, and int8
cubes decoded (``code * scale_factor``, -128 as NaN), as :func:`~xsatclip.open_cube` gives
them. Storing int8 codes with GDAL scale/offset tags would be 4x smaller before compression,
but most GDAL-based readers (``rasterio.read``, numpy pipelines) ignore those tags and would
silently see codes, and GDAL's ``average`` overviews of integer bands round every level to
whole codes. NaN is the nodata value. Band ``i`` is described as ``embedding_iii`` (its
index along the embedding dim); the model's provenance goes into the dataset tags.

Tiles hold all bands of their pixels (GDAL's COG layout is pixel-interleaved), so one
location's vector is one tile read: 128 x 128 pixels x 256 bands is 16 MiB of float32 before
compression. GDAL makes overviews until the raster fits in one tile, so a smaller
``blocksize`` gives more overview levels.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InvalidOptionError, OutputExistsError
from .source import EMBEDDING_DIM, CubeLike, EmbeddingSource, grid_transform, open_source

DEFAULT_BLOCKSIZE = 128
GDAL_CACHE_BYTES = 256 * 2**20  # GDAL's block cache while writing (default: 5% of the RAM)
TAG_PREFIXES = ("model_", "xsatclip_", "geoemb:")


def export_cog(cube: CubeLike, out: str | os.PathLike, *, bands: Sequence[int] | None = None,
               overviews: bool = True, blocksize: int = DEFAULT_BLOCKSIZE,
               overwrite: bool = False, storage_options: dict | None = None) -> Path:
    """Write the embeddings of ``cube`` as a Cloud Optimized GeoTIFF.

    Parameters
    ----------
    cube : a store (local path or fsspec URL), or a Dataset/DataArray with an ``embedding``
        dim and lat/lon (or projected x/y with a CRS) coordinates, in any dim order.
    out : local path of the ``.tif`` to write.
    bands : positions along the embedding dim to export, in this order (default: all).
    overviews : add ``average`` overviews (NaN-aware) down to one tile.
    blocksize : tile side in pixels, a multiple of 16.
    overwrite : replace an existing ``out``.
    storage_options : for fsspec URLs.

    Returns
    -------
    The path written. The COG is float32, band-interleaved by pixel, north-up, in the cube's
    CRS, with nodata NaN (module doc: why int8 cubes are written decoded).
    """
    source = open_source(cube, storage_options)
    out = Path(out).expanduser()
    if "://" in str(out):
        raise InvalidOptionError(f"out={out}: the COG is written to a local path")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    if blocksize < 16 or blocksize % 16:
        raise InvalidOptionError(f"blocksize must be a positive multiple of 16, got {blocksize}")
    positions = _band_positions(bands, source.shape[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        staging = Path(tmp) / "staging.tif"
        _write_staging(source, positions, staging, blocksize)
        _copy_to_cog(staging, out, blocksize, overviews)
    return out


def _band_positions(bands: Sequence[int] | None, count: int) -> np.ndarray:
    if bands is None:
        return np.arange(count)
    positions = np.asarray(list(bands))
    if positions.size == 0 or positions.dtype.kind not in "iu":
        raise InvalidOptionError(f"bands must be a non-empty list of integers, got {bands!r}")
    bad = positions[(positions < 0) | (positions >= count)]
    if bad.size:
        raise InvalidOptionError(f"bands {bad.tolist()} are outside the embedding dim "
                                 f"(0 .. {count - 1})")
    return positions


def _write_staging(source: EmbeddingSource, positions: np.ndarray, path: Path,
                   blocksize: int) -> None:
    """The raster as an uncompressed tiled GeoTIFF, north-up, written window by window."""
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    y, x = source.y, source.x
    flip = y.size > 1 and y[-1] > y[0]  # stored south-up: written north-up
    transform = grid_transform(y[::-1] if flip else y, x)
    _, ny, nx = source.shape
    labels = (source.array[EMBEDDING_DIM].values if EMBEDDING_DIM in source.array.coords
              else np.arange(source.shape[0]))
    width = max(3, len(str(int(np.max(labels)))))
    profile = dict(driver="GTiff", width=nx, height=ny, count=positions.size, dtype="float32",
                   crs=source.crs.to_wkt(), transform=Affine(*transform), nodata=np.nan,
                   tiled=True, blockxsize=blocksize, blockysize=blocksize,
                   interleave="band", BIGTIFF="IF_NEEDED")
    whole = positions.size == source.shape[0] and np.array_equal(positions,
                                                                 np.arange(positions.size))
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), rasterio.open(path, "w", **profile) as dst:
        for rows, cols in source.windows():
            values = source.read(rows, cols, None if whole else positions)
            out_rows = slice(ny - rows.stop, ny - rows.start) if flip else rows
            if flip:
                values = values[:, ::-1]
            dst.write(values, window=Window(cols.start, out_rows.start,
                                            cols.stop - cols.start,
                                            out_rows.stop - out_rows.start))
        for band, position in enumerate(positions, start=1):
            dst.set_band_description(band, f"embedding_{int(labels[position]):0{width}d}")
        dst.update_tags(**_tags(source))


def _tags(source: EmbeddingSource) -> dict[str, str]:
    tags = {k: str(v) for k, v in source.attrs.items()
            if k.startswith(TAG_PREFIXES) and isinstance(v, (str, int, float))}
    if source.scale is not None:
        tags["xsatclip_export_values"] = (f"float32 decoded from int8 codes: code * "
                                          f"{source.scale!r}, code {source.fill:g} -> NaN")
    return tags


def _copy_to_cog(staging: Path, out: Path, blocksize: int, overviews: bool) -> None:
    import rasterio
    import rasterio.shutil

    if out.exists():
        out.unlink()
    options = dict(COMPRESS="ZSTD", PREDICTOR="FLOATING_POINT", BLOCKSIZE=str(blocksize),
                   OVERVIEWS="AUTO" if overviews else "NONE", OVERVIEW_RESAMPLING="AVERAGE",
                   BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS")
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            rasterio.shutil.copy(staging, out, driver="COG", **options)
    except BaseException:
        with contextlib.suppress(OSError):
            out.unlink()
        raise
