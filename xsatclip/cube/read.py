"""Reading cubes: :func:`open_cube`, a lazy Dataset (:func:`~.describe.info` summarises).

Besides cubes written by ``precompute``, :func:`open_cube` opens any Zarr store holding one
3-D variable with an ``embedding`` dim and geographic (lat/lon) or projected (x/y with a CRS)
coordinates (also when named ``embedding`` like its dim), and version 1 cubes (channels-last
``(lat, lon, embedding)``): the embeddings come back band-first as ``embeddings``, and
``xsatclip_unverified`` names what such a store cannot tell; ``xsatclip convert`` rewrites
any of them as a cube of this version. A store xarray cannot open is refused (StoreError).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import xarray as xr

from ..errors import InputNotFoundError, StoreError
from ..raster import find_spatial_coords
from ..raster.coords import EMBEDDING_DIM
from .codec import dequantize
from .layout import VARIABLE
from .points import PointReader, open_points
from .source import embedding_variable
from .store import StoreTarget, inspect_store, store_target

UNVERIFIED = ("provenance (not written by xsatclip precompute: model_* attrs as recorded, if "
              "any), completeness (no completion markers: unwritten chunks read as their fill "
              "value)")


def open_cube(store: str | os.PathLike, *, storage_options: dict | None = None,
              **kwargs: Any) -> xr.Dataset:
    """The cube as a lazy Dataset with ``embeddings`` ``(embedding, *spatial)``; int8 cubes
    decoded to float32 (``xr.open_zarr`` gives float64). Unwritten chunks read as NaN.

    Without ``kwargs``, a cube in the layout ``precompute`` writes is read a shard per Dask
    task by xsatclip's reader (the whole shard in one read, every inner chunk's crc32c
    checked; a failure names the shard and chunk). ``kwargs`` go to ``xr.open_zarr``, and
    zarr-python then reads the embeddings (inner chunk by inner chunk)."""
    target = store_target(store, storage_options)
    state, group = inspect_store(target)
    if state == "absent":
        raise InputNotFoundError(f"no cube at {target.url}")
    if state == "foreign" and group is not None:
        return _open_any(target, kwargs)
    if state != "complete":
        raise StoreError(f"{target.url} is not a complete xsatclip cube ({state})")
    array = group[VARIABLE]
    dims = getattr(array.metadata, "dimension_names", None)
    reader = None if kwargs else open_points(target.store(read_only=True), target.url)
    if array.shards is not None and dims is not None:
        # Dask chunks of whole shards: xarray would take the 2 x 2-cell inner chunks
        # (259,200 tasks at 0.25 degree; README, Storage).
        kwargs = {"chunks": dict(zip(dims, array.shards, strict=True)), **kwargs}
    ds = _open_zarr(target, kwargs)
    scale = group[VARIABLE].attrs.get("scale_factor")
    if reader is not None:
        ds[VARIABLE] = ds[VARIABLE].copy(data=_shard_array(reader))
    elif scale is not None and kwargs.get("mask_and_scale", True) and kwargs.get("decode_cf", True):
        raw = xr.open_zarr(target.store(read_only=True), mask_and_scale=False,
                           **{k: v for k, v in kwargs.items() if k != "mask_and_scale"})[VARIABLE]
        data = raw.data.map_blocks(dequantize, float(scale), dtype=np.float32)
        ds[VARIABLE] = ds[VARIABLE].copy(data=data)
    ds[VARIABLE] = ds[VARIABLE].transpose(EMBEDDING_DIM, ...)  # version 1: channels-last
    return ds


def _shard_array(reader: PointReader):
    """Dask array (embedding, y, x) of the cube, a task per shard, each read whole by
    ``reader`` (crc32c checked; int8 decoded to float32). zarr-python decodes a shard inner
    chunk by inner chunk (~150 us each: ~0.55 s for a 120 x 120 shard of 2 x 2-cell chunks);
    this reads it in ~30 ms."""
    import dask.array as da
    from dask.base import tokenize

    channels, height, width = reader.shape
    _, shard_y, shard_x = reader.shard
    dtype = np.dtype(np.float32) if reader.scale_factor is not None else reader.dtype
    chunks = ((channels,), _split(height, shard_y), _split(width, shard_x))
    token = tokenize(reader.url, reader.shape, reader.shard, reader.inner, str(reader.dtype),
                     reader.scale_factor)
    return da.map_blocks(_read_shard, reader, chunks=chunks, dtype=dtype,
                         meta=np.empty((0, 0, 0), dtype), name=f"{VARIABLE}-shards-{token}")


def _split(size: int, step: int) -> tuple[int, ...]:
    return tuple(min(step, size - start) for start in range(0, size, step))


def _read_shard(reader: PointReader, block_id=None) -> np.ndarray:
    values = reader.shard_values(block_id[1], block_id[2])
    return values if reader.scale_factor is None else dequantize(values, reader.scale_factor)


def _open_zarr(target: StoreTarget, kwargs: dict[str, Any]) -> xr.Dataset:
    try:
        return xr.open_zarr(target.store(read_only=True), **kwargs)
    except ValueError as exc:  # e.g. conflicting sizes of a dimension
        raise StoreError(f"xarray cannot open {target.url}: "
                         f"{' '.join(str(exc).split())}") from None


def _open_any(target: StoreTarget, kwargs: dict[str, Any]) -> xr.Dataset:
    """A store not written by xsatclip, its embedding variable renamed ``embeddings``."""
    ds = _open_zarr(target, kwargs)
    if EMBEDDING_DIM in ds.coords and ds[EMBEDDING_DIM].ndim == 3:  # named like its dim
        ds = ds.rename_vars({EMBEDDING_DIM: VARIABLE}).reset_coords(VARIABLE)
    name = embedding_variable(ds, target.url).name
    if name != VARIABLE:
        ds = ds.rename({name: VARIABLE})
    mapping = ds[VARIABLE].attrs.get("grid_mapping")
    if mapping in ds.data_vars:  # CF: the CRS variable is a coordinate of the data
        ds = ds.set_coords(mapping)
    find_spatial_coords(ds[VARIABLE])  # geographic or projected coordinates, else an error
    ds[VARIABLE] = ds[VARIABLE].transpose(EMBEDDING_DIM, ...)
    ds.attrs["xsatclip_unverified"] = UNVERIFIED
    return ds
