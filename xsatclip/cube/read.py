"""Reading cubes: :func:`open_cube` (a lazy Dataset) and :func:`info` (a summary)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import xarray as xr
import zarr

from ..errors import InputNotFoundError, StoreError
from .codec import dequantize
from .layout import DONE_CLIPPED, DONE_PATH, VARIABLE
from .store import inspect_store, store_target


def open_cube(store: str | os.PathLike, *, storage_options: dict | None = None,
              **kwargs: Any) -> xr.Dataset:
    """The cube as a lazy Dataset; int8 cubes decoded to float32 (``xr.open_zarr`` gives
    float64). Unwritten chunks read as NaN. ``kwargs`` go to ``xr.open_zarr``."""
    target = store_target(store, storage_options)
    state, group = inspect_store(target)
    if state == "absent":
        raise InputNotFoundError(f"no cube at {target.url}")
    if state != "complete":
        raise StoreError(f"{target.url} is not a complete xsatclip cube ({state})")
    ds = xr.open_zarr(target.store(read_only=True), **kwargs)
    scale = group[VARIABLE].attrs.get("scale_factor")
    if scale is not None and kwargs.get("mask_and_scale", True) and kwargs.get("decode_cf", True):
        raw = xr.open_zarr(target.store(read_only=True), mask_and_scale=False,
                           **{k: v for k, v in kwargs.items() if k != "mask_and_scale"})[VARIABLE]
        data = raw.data.map_blocks(dequantize, float(scale), dtype=np.float32)
        ds[VARIABLE] = ds[VARIABLE].copy(data=data)
    return ds


def info(store: str | os.PathLike, *, storage_options: dict | None = None) -> dict[str, Any]:
    """Grid, model, dtype and completeness of a cube, as a plain dict."""
    target = store_target(store, storage_options)
    state, group = inspect_store(target)
    if state == "absent":
        raise InputNotFoundError(f"no cube at {target.url}")
    if state in ("foreign", "unreadable"):
        raise StoreError(f"{target.url} is not an xsatclip cube ({state})")
    attrs = dict(group.attrs)
    if state == "incomplete" or VARIABLE not in group:
        return {"store": target.url, "state": "incomplete", "complete_metadata": False,
                "chunks_done": 0, "chunks_total": None, "model": {}, "created": None,
                "xsatclip_version": attrs.get("xsatclip_version")}
    array = group[VARIABLE]
    done = np.asarray(zarr.open_array(target.store(read_only=True), path=DONE_PATH,
                                      mode="r")[...])
    out = {
        "store": target.url,
        "state": state,
        "complete_metadata": True,
        "dims": dict(zip(array.metadata.dimension_names, array.shape, strict=True)),
        "grid": attrs.get("xsatclip_grid"),
        "dtype": attrs.get("xsatclip_dtype"),
        "scale_factor": array.attrs.get("scale_factor"),
        "quantization": attrs.get("xsatclip_quantization"),
        "chunks": list(array.shards or array.chunks),  # shards: the unit of chunks_done
        "inner_chunks": list(array.chunks),
        "chunks_done": int(np.count_nonzero(done)),
        "chunks_total": int(done.size),
        "chunks_clipped": int(np.count_nonzero(done == DONE_CLIPPED)),
        "model": {k[len("model_"):]: v for k, v in attrs.items() if k.startswith("model_")},
        "xsatclip_version": attrs.get("xsatclip_version"),
        "created": attrs.get("created"),
    }
    for dim in array.metadata.dimension_names[:2]:
        values = np.asarray(group[dim][...]) if dim in group else np.zeros(0)
        if values.size:
            out[f"{dim}_range"] = [float(values.min()), float(values.max())]
    return out
