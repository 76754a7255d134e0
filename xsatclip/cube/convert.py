"""``xsatclip convert OLD NEW``: rewrite an embedding store as a cube of this version.

OLD is a version 1 cube (channels-last ``(lat, lon, embedding)``), a cube of this version, or
any store :func:`~xsatclip.open_cube` opens (one 3-D variable with an ``embedding`` dim,
geographic or projected coordinates). NEW gets this version's layout (band-first
``embeddings``, shards and inner chunks, CF ``grid_mapping``, the ``geoemb:``/``proj:``/
``spatial:`` conventions, completion markers), the values of OLD unchanged (int8 codes and
their scale kept; float64 stored as float32) and OLD's provenance attrs (``model_*``,
``created``), with ``xsatclip_converted_from`` naming OLD. The shards are written by the
precompute writer, so a converted cube is crash safe like a computed one (a killed convert
is rerun with ``overwrite=True``).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

from ..errors import StoreError
from ..raster import find_crs, find_spatial_coords, with_grid_mapping
from ..raster.coords import EMBEDDING_DIM, WGS84
from .codec import Codec, quantization_formula
from .describe import info
from .durable import check_replaceable
from .layout import FORMAT_VERSION, VARIABLE, default_chunk
from .lock import store_lock
from .metadata import cube_conventions, point_attrs
from .read import open_cube
from .store import create_store, inspect_store, store_target
from .writer import compute_chunks


def convert(old: str | os.PathLike, new: str | os.PathLike, *, overwrite: bool = False,
            progress: bool = False, storage_options: dict | None = None) -> str:
    """Write the embeddings of the store ``old`` as a cube of this version at ``new``
    (paths or fsspec URLs; ``storage_options`` apply to both); returns NEW's path or URL.

    Raises :class:`StoreError` when NEW exists (unless ``overwrite``) or OLD is a cube with
    chunks not yet computed (finish it with the xsatclip that wrote it first)."""
    summary = info(old, storage_options=storage_options)
    if summary["state"] != "foreign" and summary["chunks_done"] != summary["chunks_total"]:
        raise StoreError(f"{summary['store']} is incomplete ({summary['chunks_done']}/"
                         f"{summary['chunks_total']} chunks): finish it before converting")
    ds = open_cube(old, storage_options=storage_options, mask_and_scale=False)
    emb = ds[VARIABLE]
    codec = _codec(emb, summary)
    spatial = find_spatial_coords(emb)
    crs = find_crs(emb) or (WGS84 if spatial.kind != "projected" else None)
    if "spatial_ref" not in emb.coords and crs is not None:
        emb = emb.rio.write_crs(crs)
    attrs = _cube_attrs(ds.attrs, emb, codec, summary)
    emb = emb.chunk({EMBEDDING_DIM: -1, **{dim: default_chunk(emb.sizes[dim])
                                           for dim in spatial.dims}})
    attrs["xsatclip_chunks"] = [int(c[0]) for c in emb.data.chunks[1:]]
    kept = {k: v for k, v in emb.attrs.items() if k.startswith("model_") or k == "long_name"}
    emb = with_grid_mapping(xr.DataArray(emb.data, coords=emb.coords, dims=emb.dims,
                                         attrs=kept))
    conventions, array_conventions = cube_conventions(emb, codec, attrs)
    attrs.update(conventions)
    values = emb.data if codec.dtype != "int8" else emb.data * np.float64(codec.scale)
    target = store_target(new, storage_options)
    with store_lock(target.url, target.local):
        state, _ = inspect_store(target)
        check_replaceable(target, state)  # foreign directories: never touched
        if state != "absent" and not overwrite:
            raise StoreError(f"{target.url} exists; pass overwrite=True (--overwrite) to "
                             "replace it")
        create = functools.partial(create_store, target, emb.assign_attrs(array_conventions),
                                   spatial, codec, attrs, replace=state != "absent")
        blocks = [c for c in np.ndindex(*(len(c) for c in emb.data.chunks[1:]))]
        compute_chunks(target, values, codec, blocks, len(blocks), None, progress, create)
    return target.url


def _codec(emb: xr.DataArray, summary: dict[str, Any]) -> Codec:
    """OLD's storage dtype (int8 with its scale), float32 for any other."""
    scale = emb.attrs.get("scale_factor", emb.encoding.get("scale_factor"))
    if summary["stored_dtype"] == "int8" and scale is not None:
        return Codec("int8", float(np.float32(scale)))
    return Codec("float16" if summary["stored_dtype"] == "float16" else "float32")


def _cube_attrs(old: dict[str, Any], emb: xr.DataArray, codec: Codec,
                summary: dict[str, Any]) -> dict[str, Any]:
    """Group attrs of NEW: OLD's provenance, this version's format attrs."""
    from .. import __version__

    kept = {k: v for k, v in point_attrs({**emb.attrs, **old}).items()
            if k.startswith("model_") or k in ("created", "title", "xsatclip_unverified")}
    y, x = find_spatial_coords(emb).dims
    grid = summary.get("grid") or (
        f"converted: {y} {emb.sizes[y]} values {float(emb[y].min()):g} .. "
        f"{float(emb[y].max()):g}, {x} {emb.sizes[x]} values {float(emb[x].min()):g} .. "
        f"{float(emb[x].max()):g}")
    return {"title": "SatCLIP location embeddings", "Conventions": "CF-1.8", **kept,
            "xsatclip_cube": FORMAT_VERSION, "xsatclip_version": __version__,
            "xsatclip_grid": grid, "xsatclip_dtype": codec.dtype,
            "xsatclip_quantization": quantization_formula(codec),
            "xsatclip_converted_from": summary["store"]}
