"""Embeddings at points: read from a cube (nearest cell, bilinear) or computed exactly with the
cube's own model.

A *cube* is a Zarr store written by :func:`~xsatclip.precompute`, the Dataset
:func:`~xsatclip.open_cube` returns, or any embedding DataArray with dims
``("embedding", *spatial_dims)`` (in any order), such as the lazy one ``.satclip.embed``
returns. Reading is one vectorised ``isel``: on a Dask- or Zarr-backed cube only the chunks
holding the points are read (or, for a lazy ``embed`` result, computed), each once. A store
given by path or URL is read by byte range (:mod:`xsatclip.cube.points`): each shard's index
and the inner chunks holding the points, checksums verified.
"""

from __future__ import annotations

import os
from typing import Literal, cast

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike

from .cube import VARIABLE, open_cube
from .cube.metadata import point_attrs
from .cube.points import PointReader, bilinear, open_points
from .cube.source import embedding_variable
from .cube.store import store_target
from .cube.verify import check_marked_units
from .errors import InvalidOptionError, check_choice
from .harmonics import validate_lonlat
from .model import Encoder, resolve_model
from .model.backend import DType
from .model.load import ModelLike
from .raster import find_spatial_coords
from .raster.geometry import grid_position, nearest_cell

METHODS = ("nearest", "linear", "exact")
PROVENANCE = ("model_source", "model_sha256", "model_numerics")
BATCH = 65536  # points per read: at most 4 corners x 65536 x 256 float32 = 256 MiB
KEPT_OPEN = 8  # local stores kept open between calls (:func:`_open_store`)
_KEPT: dict[str, tuple[tuple[int, int, int], xr.DataArray, PointReader | None]] = {}


SampleMethod = Literal["nearest", "linear", "exact"]


def sample(cube: str | os.PathLike | xr.Dataset | xr.DataArray, lon: ArrayLike, lat: ArrayLike,
           *, method: SampleMethod = "nearest", model: ModelLike | None = None,
           storage_options: dict | None = None) -> xr.DataArray:
    """Embeddings of ``cube`` at points.

    Parameters
    ----------
    cube : path or fsspec URL of a Zarr store (a cube, or any store :func:`open_cube`
        opens), a Dataset (variable ``embeddings``, or its one variable with an ``embedding``
        dim), or an embedding DataArray with an ``embedding`` dim, lazy or not.
    lon, lat : degrees, N values each. Longitudes in any convention (-180..180, 0..360, ...).
    method :
        ``"nearest"``: the value of the cell containing each point (nearest centre per axis).
        ``"linear"``: bilinear between the four surrounding cell centres; longitude wraps
        across the dateline on global cubes; between the outermost centres and the cube's
        edge (toward the poles on a global cube) values are held constant.
        ``"exact"``: the cube's model evaluated at the points, loaded from the provenance
        attrs (``model_source``, ``model_numerics``) and checked against ``model_sha256``.
        Reads nothing of the cube's data, so a lazy cube stays uncomputed.
    model : for ``"exact"``: the model (a loaded :class:`Encoder` or anything
        :func:`load_model` takes) when the recorded source is not loadable here; it must
        have the cube's weights (sha256).
    storage_options : for fsspec URLs.

    Returns
    -------
    DataArray ``embeddings`` ``(point, embedding)``, float32 (float64 for float64 cubes),
    with ``lon`` and ``lat`` coordinates on ``point`` as given. Rows are NaN for NaN
    coordinates and, with nearest/linear, for points outside a regional cube (more than half
    a cell beyond its outermost centres) or in chunks not computed yet. A store's chunk
    marked done but missing, or failing its checksum, raises StoreError naming it.
    """
    check_choice("method", method, METHODS)
    lon, lat = validate_lonlat(np.atleast_1d(lon), np.atleast_1d(lat))
    if isinstance(cube, (xr.Dataset, xr.DataArray)):
        emb, reader = _embedding_array(cube, None), None
    else:
        emb, reader = _open_store(cube, storage_options)
    dtype = _output_dtype(emb)
    if method == "exact":
        values = _cube_model(emb, model, dtype).encode(lon, lat)
    else:
        values = _read(emb, lon, lat, linear=method == "linear", dtype=dtype, reader=reader)
        if not isinstance(cube, (xr.Dataset, xr.DataArray)) and np.isnan(values[:, 0]).any():
            # Rows of NaN (a missing or outside cell is NaN throughout), yet marked done?
            check_marked_units(cube, storage_options=storage_options)
    channels = emb["embedding"].values if "embedding" in emb.coords else np.arange(
        emb.sizes["embedding"])
    return xr.DataArray(values, dims=("point", "embedding"),
                        coords={"lon": ("point", lon), "lat": ("point", lat),
                                "embedding": channels},
                        name=VARIABLE,
                        attrs={**point_attrs(emb.attrs), "xsatclip_sampling": method})


def _open_store(cube: str | os.PathLike, storage_options: dict | None
                ) -> tuple[xr.DataArray, PointReader | None]:
    """The lazy embeddings of a store path or URL and its byte-range reader (None: read
    through xarray).

    A local store stays open between calls (at most :data:`KEPT_OPEN`) while its root
    ``zarr.json`` keeps its inode, size and modification time: opening costs ~10 ms, as much
    as reading 10,000 points, and every write that changes a cube (``precompute``,
    ``--overwrite``, ``convert``) rewrites that file. The data itself is never cached."""
    target = store_target(cube, storage_options)
    signature = None
    if target.local:
        try:
            status = os.stat(os.path.join(target.url, "zarr.json"))
            signature = (status.st_ino, status.st_size, status.st_mtime_ns)
        except OSError:
            pass  # open_cube says what is wrong
        kept = _KEPT.get(target.url)
        if kept is not None and signature is not None and kept[0] == signature:
            return kept[1], kept[2]
    emb = _embedding_array(target.url, storage_options)
    reader = open_points(target.store(read_only=True), target.url)
    if signature is not None:
        if len(_KEPT) >= KEPT_OPEN:
            _KEPT.pop(next(iter(_KEPT)), None)
        _KEPT[target.url] = (signature, emb, reader)
    return emb, reader


def _embedding_array(cube, storage_options) -> xr.DataArray:
    """The embedding DataArray of ``cube``, with the Dataset's provenance attrs merged in."""
    if not isinstance(cube, (xr.Dataset, xr.DataArray)):
        cube = open_cube(cube, storage_options=storage_options)
    if isinstance(cube, xr.Dataset):
        emb = embedding_variable(cube, "the Dataset")
        emb = emb.assign_attrs({**cube.attrs, **emb.attrs})
    else:
        emb = cube
    if "embedding" not in emb.dims:
        raise InvalidOptionError(f"the cube has dims {emb.dims}; an embedding cube has an "
                         "'embedding' dim")
    return emb


def _output_dtype(emb: xr.DataArray) -> np.dtype:
    """float64 for cubes holding float64 (and not decoded from smaller stored types)."""
    stored = np.dtype(emb.encoding.get("dtype", emb.dtype))
    wide = emb.dtype == np.float64 and stored == np.float64
    return np.dtype(np.float64 if wide else np.float32)


def _cube_model(emb: xr.DataArray, model: ModelLike | None, dtype: np.dtype) -> Encoder:
    """The model that made ``emb``, in ``dtype``, checked against its recorded sha256."""
    attrs = emb.attrs
    missing = [key for key in PROVENANCE if key not in attrs]
    if missing and model is None:
        raise InvalidOptionError(f"method='exact' needs the cube's model, but its attrs lack "
                                 f"{missing}; pass model=")
    return resolve_model(attrs["model_source"] if model is None else model,
                         numerics=attrs.get("model_numerics"),
                         dtype=cast(DType, dtype.name),
                         sha256=attrs.get("model_sha256"),
                         made_by=f"the cube was made by {attrs.get('model_name')} with")


def _read(emb: xr.DataArray, lon: np.ndarray, lat: np.ndarray, *, linear: bool,
          dtype: np.dtype, reader: PointReader | None = None) -> np.ndarray:
    """Nearest or bilinear values of a gridded cube at points, (N, embed_dim) ``dtype``; NaN
    rows outside the cube.

    Points are read in batches of :data:`BATCH`, ordered by chunk so that a chunk is read
    about once; memory is bounded by a batch's corner values. ``reader``: the cube's store,
    read by byte range (only the inner chunks holding the points)."""
    spatial = find_spatial_coords(emb)
    if spatial.kind == "curvilinear":
        raise InvalidOptionError("nearest/linear sampling needs a rectilinear lat/lon or projected "
                         "x/y grid; this cube is curvilinear: use method='exact'")
    if linear:  # corners (4, n) and their weights
        y0, y1, wy, x0, x1, wx, inside = grid_position(emb, spatial, lon, lat)
        inside = np.flatnonzero(inside)
        y0, y1, wy, x0, x1, wx = (v[inside] for v in (y0, y1, wy, x0, x1, wx))
        rows, cols = np.stack([y0, y0, y1, y1]), np.stack([x0, x1, x0, x1])
        weights = np.stack([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx])
    else:
        row, col, inside = nearest_cell(emb, spatial, lon, lat)
        inside = np.flatnonzero(inside)
        rows, cols = row[inside][None], col[inside][None]
    ydim, xdim = spatial.dims
    by_range = reader if emb.dims == ("embedding", ydim, xdim) else None
    if by_range is not None:  # the reader orders the points by shard and inner chunk itself
        order = np.arange(rows.shape[1])
    else:
        chunks = emb.chunksizes
        order = np.lexsort((cols[0] // (chunks[xdim][0] if xdim in chunks else 1),
                            rows[0] // (chunks[ydim][0] if ydim in chunks else 1)))
    out = np.empty((lon.size, emb.sizes["embedding"]), dtype)
    out[np.setdiff1d(np.arange(lon.size), inside, assume_unique=True)] = np.nan
    for start in range(0, order.size, BATCH):
        batch = order[start:start + BATCH]
        if by_range is not None:
            values = by_range.cells(rows[:, batch], cols[:, batch])
        else:
            corners = emb.isel({ydim: xr.DataArray(rows[:, batch], dims=("corner", "point")),
                                xdim: xr.DataArray(cols[:, batch], dims=("corner", "point"))})
            values = np.asarray(corners.transpose("corner", "point", "embedding").values)
        if linear:  # a zero-weight corner may be NaN (an unwritten neighbour): left out
            wide = np.result_type(values.dtype, np.float32)  # float16 -> float32
            values = bilinear(np.ascontiguousarray(values, wide), weights[:, batch])[None]
        if by_range is not None and order.size == lon.size <= BATCH \
                and values.dtype == dtype:  # every point, in order: no copy
            return values[0]
        out[inside[batch]] = values[0]
    return out
