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
from .source import embedding_variable
from .store import StoreTarget, inspect_store, store_target

UNVERIFIED = ("provenance (not written by xsatclip precompute: model_* attrs as recorded, if "
              "any), completeness (no completion markers: unwritten chunks read as their fill "
              "value)")


def open_cube(store: str | os.PathLike, *, storage_options: dict | None = None,
              **kwargs: Any) -> xr.Dataset:
    """The cube as a lazy Dataset with ``embeddings`` ``(embedding, *spatial)``; int8 cubes
    decoded to float32 (``xr.open_zarr`` gives float64). Unwritten chunks read as NaN.
    ``kwargs`` go to ``xr.open_zarr``."""
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
    if array.shards is not None and dims is not None:
        # Dask chunks of whole shards: xarray would take the 4 x 4-cell inner chunks
        # (64,800 tasks at 0.25 degree, ~8x slower to read; README, Storage).
        kwargs = {"chunks": dict(zip(dims, array.shards, strict=True)), **kwargs}
    ds = _open_zarr(target, kwargs)
    scale = group[VARIABLE].attrs.get("scale_factor")
    if scale is not None and kwargs.get("mask_and_scale", True) and kwargs.get("decode_cf", True):
        raw = xr.open_zarr(target.store(read_only=True), mask_and_scale=False,
                           **{k: v for k, v in kwargs.items() if k != "mask_and_scale"})[VARIABLE]
        data = raw.data.map_blocks(dequantize, float(scale), dtype=np.float32)
        ds[VARIABLE] = ds[VARIABLE].copy(data=data)
    ds[VARIABLE] = ds[VARIABLE].transpose(EMBEDDING_DIM, ...)  # version 1: channels-last
    return ds


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
