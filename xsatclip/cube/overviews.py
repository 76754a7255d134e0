"""Mean-coarsened overview levels inside a cube (:func:`build_overviews`).

Level ``k`` is the group ``overviews/<k>/`` of the store: a complete dataset
(``xr.open_zarr(store, group="overviews/1")``) with the embeddings at ``2**k`` times the cell
size, ``lat``/``lon`` (the centres of the coarse cells), ``spatial_ref``, the CF
``grid_mapping`` attribute, its own ``spatial:``/``proj:`` attributes and the model's
provenance. Each cell is the NaN-aware mean of the 2 x 2 cells of level ``k - 1`` below it
(:func:`~xsatclip.cube.reduce.mean_2x2`); an odd last row or column of level ``k - 1`` is
left out (the coarse grid stays regular and inside the cube: its extent can be up to
``2**k - 1`` fine cells smaller at the south and east edges). The root group gets the
``multiscales`` convention block (written with zarr-cm): level 0 is the cube's own variable,
level ``k`` the array ``overviews/<k>/embeddings``, ``derived_from`` level ``k - 1`` with
``transform`` scale (2, 2) and translation (0, 0) (the coarse cell's corner is a fine
cell's corner), ``resampling_method: "average"``, and each level's absolute
``spatial:transform``/``spatial:shape``.

Levels keep the cube's dim order, dtype, codecs and inner chunk and shard sizes (clipped to the
level's size). A level is written one output shard (or chunk, unsharded) at a time from a
window of level ``k - 1`` twice as large, so memory stays at about 1.25 times that window
decoded to float32 whatever the cube's size, and no shard is written twice. int8 levels hold
the mean of the decoded values of level ``k - 1`` re-encoded with the cube's scale: each level
adds at most ``scale / 2`` of rounding, so level ``k`` is within ``k * scale / 2`` of the mean
of the level-0 values it covers. float16 levels round each level's float32 mean.
"""

from __future__ import annotations

import os
from typing import Any

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
import zarr
import zarr_cm

from ..errors import InvalidOptionError
from .layout import INT8_FILL, INT8_MAX
from .reduce import mean_2x2
from .source import (
    EMBEDDING_DIM,
    EmbeddingSource,
    consolidate,
    convention_attrs,
    grid_transform,
    is_consolidated,
    open_source,
)
from .store import store_target

OVERVIEWS_GROUP = "overviews"
COPIED_ATTRS = ("title", "Conventions", "created")
COPIED_PREFIXES = ("model_", "xsatclip_version")


def build_overviews(store: str | os.PathLike, levels: int = 3, *,
                    storage_options: dict | None = None) -> list[str]:
    """Write ``levels`` mean-coarsened overview levels into the cube at ``store``.

    Parameters
    ----------
    store : local path or fsspec URL of a cube (any store with an ``embeddings`` variable
        with an ``embedding`` dim and lat/lon or projected x/y coordinates).
    levels : number of levels; level ``k`` has cells ``2**k`` times as large.
    storage_options : for fsspec URLs.

    Returns
    -------
    The groups written, ``["overviews/1", ...]``. Existing overviews are replaced.
    """
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise InvalidOptionError(f"levels must be a positive integer, got {levels!r}")
    base = open_source(store, storage_options)
    _, ny, nx = base.shape
    if min(ny, nx) >> int(levels) < 1:
        raise InvalidOptionError(f"levels={levels}: a {ny} x {nx} grid has room for "
                                 f"{int(np.log2(min(ny, nx)))} levels at most")
    target = store_target(store, storage_options)
    consolidated = is_consolidated(target)
    root = zarr.open_group(target.store(), mode="r+", use_consolidated=False)
    name = str(base.array.name)
    base_array = root[name]
    assert isinstance(base_array, zarr.Array)
    if OVERVIEWS_GROUP in root:
        del root[OVERVIEWS_GROUP]
    layout: list[dict[str, Any]] = [_layout_entry(name, None, base.y, base.x)]
    previous, written = base, []
    for k in range(1, int(levels) + 1):
        group = f"{OVERVIEWS_GROUP}/{k}"
        _write_level(previous, base, base_array, target, group, k)
        previous = open_source(store, storage_options, group=group)
        layout.append(_layout_entry(f"{group}/{name}", layout[-1]["asset"], previous.y,
                                    previous.x))
        written.append(group)
    entries: Any = tuple(layout)
    multiscales = zarr_cm.multiscales.create(layout=entries, resampling_method="average")
    root.attrs.put(zarr_cm.multiscales.insert(root.attrs.asdict(), multiscales,
                                              overwrite=True))
    if consolidated:
        consolidate(target)
    return written


def _layout_entry(asset: str, derived_from: str | None, y: np.ndarray, x: np.ndarray
                  ) -> dict[str, Any]:
    entry: dict[str, Any] = {"asset": asset}
    if derived_from is None:
        entry["transform"] = {"scale": [1.0, 1.0], "translation": [0.0, 0.0]}
    else:
        entry.update(derived_from=derived_from, resampling_method="average",
                     transform={"scale": [2.0, 2.0], "translation": [0.0, 0.0]})
    entry["spatial:transform"] = grid_transform(y, x)
    entry["spatial:shape"] = [int(y.size), int(x.size)]
    return entry


def level_chunks(array: zarr.Array, dims: tuple[str, ...], sizes: dict[str, int]
                 ) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """Inner chunks and shards (None when unsharded) of a level of ``sizes``: the cube's,
    clipped to the level (a shard stays a whole number of inner chunks)."""
    chunks, shards = [], []
    for i, dim in enumerate(dims):
        inner0 = array.chunks[i]
        inner = inner0 if dim == EMBEDDING_DIM else min(inner0, sizes[dim])
        chunks.append(inner)
        if array.shards is not None:
            per_shard = array.shards[i] // inner0
            shards.append(inner * min(per_shard, -(-sizes[dim] // inner)))
    return tuple(chunks), (tuple(shards) if array.shards is not None else None)


def _write_level(previous: EmbeddingSource, base: EmbeddingSource, base_array: zarr.Array,
                 target, group: str, k: int) -> None:
    """Create ``group`` (metadata and coordinates), then fill it shard by shard."""
    y_dim, x_dim = base.spatial.dims
    _, py, px = previous.shape
    y = previous.y[: py // 2 * 2].reshape(-1, 2).mean(axis=1)
    x = previous.x[: px // 2 * 2].reshape(-1, 2).mean(axis=1)
    sizes = {EMBEDDING_DIM: base.shape[0], y_dim: y.size, x_dim: x.size}
    dims = tuple(str(d) for d in base.array.dims)
    chunks, shards = level_chunks(base_array, dims, sizes)
    ds = _level_dataset(base, dims, sizes, y, x, k)
    encoding: dict[str, Any] = {
        "chunks": chunks, "dtype": base.array.dtype, "fill_value": base_array.fill_value,
        "compressors": base_array.compressors,
        "filters": base_array.filters, "serializer": base_array.serializer}
    if shards is not None:
        encoding["shards"] = shards
    if base.scale is not None:
        encoding.update(scale_factor=np.float32(base.scale), _FillValue=np.int8(INT8_FILL))
    else:
        encoding["_FillValue"] = np.nan
    name = str(base.array.name)
    ds.to_zarr(target.store(), group=group, mode="w", zarr_format=3, consolidated=False,
               compute=False, encoding={name: encoding})
    out = zarr.open_array(target.store(), path=f"{group}/{name}", mode="r+")
    step = dict(zip(dims, shards or chunks, strict=True))
    for r in range(0, y.size, step[y_dim]):
        rows = slice(r, min(r + step[y_dim], y.size))
        for c in range(0, x.size, step[x_dim]):
            cols = slice(c, min(c + step[x_dim], x.size))
            fine = previous.read(slice(2 * rows.start, 2 * rows.stop),
                                 slice(2 * cols.start, 2 * cols.stop))
            block = _encode(mean_2x2(fine), base)
            order = [("embedding", y_dim, x_dim).index(d) for d in dims]
            region = {EMBEDDING_DIM: slice(None), y_dim: rows, x_dim: cols}
            out[tuple(region[d] for d in dims)] = block.transpose(order)


def _level_dataset(base: EmbeddingSource, dims: tuple[str, ...], sizes: dict[str, int],
                   y: np.ndarray, x: np.ndarray, k: int) -> xr.Dataset:
    """Metadata and coordinates of level ``k``; the data is a placeholder never computed."""
    y_dim, x_dim = base.spatial.dims
    array = base.array
    var_attrs = {key: value for key, value in array.attrs.items()
                 if key not in ("scale_factor", "_FillValue", "add_offset", "coordinates",
                                "grid_mapping") and not key.startswith("spatial:")}
    shape = tuple(sizes[d] for d in dims)
    placeholder = da.empty(shape, chunks=shape, dtype=array.dtype)
    coords = {EMBEDDING_DIM: array[EMBEDDING_DIM].variable if EMBEDDING_DIM in array.coords
              else np.arange(sizes[EMBEDDING_DIM]),
              base.spatial.y: (y_dim, y, array[base.spatial.y].attrs),
              base.spatial.x: (x_dim, x, array[base.spatial.x].attrs)}
    ds = xr.Dataset({array.name: (dims, placeholder, var_attrs)}, coords=coords)
    ds = ds.rio.write_crs(base.crs.to_wkt())
    variable = ds[array.name]
    variable.encoding.pop("grid_mapping", None)
    variable.attrs["grid_mapping"] = "spatial_ref"
    variable.attrs.update(zarr_cm.create_many(
        {"spatial": {"spatial:dimensions": [y_dim, x_dim]}}))
    ds.attrs = {key: value for key, value in base.attrs.items()
                if key in COPIED_ATTRS or key.startswith(COPIED_PREFIXES)}
    ds.attrs.update(convention_attrs(base, y, x))
    ds.attrs["xsatclip_overview"] = {
        "level": k, "factor": 2**k, "resampling": "average",
        "method": "NaN-aware mean of the 2 x 2 cells of level k - 1 (float32); an odd last "
                  "row or column of level k - 1 is left out"}
    return ds


def _encode(values: np.ndarray, base: EmbeddingSource) -> np.ndarray:
    """float32 means -> the cube's stored dtype (int8 with the cube's scale, NaN -> fill)."""
    if base.scale is None:
        return values.astype(base.array.dtype)
    codes = np.clip(np.rint(values / np.float32(base.scale)), -INT8_MAX, INT8_MAX)
    return np.where(np.isnan(values), INT8_FILL, codes).astype(np.int8)
