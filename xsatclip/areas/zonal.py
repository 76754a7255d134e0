"""Zonal statistics of embedding grids over polygons (:func:`zonal`): the xarray/Dask glue.

The grid is read block by block (its Dask chunks, or blocks of :data:`DEFAULT_BLOCK` cells
for in-memory arrays); a block is read only when some polygon overlaps it, and only once.
Worker threads compute a block's overlap weights (:mod:`.overlap`) and read its values; the
calling thread adds them into running sums (:mod:`.accumulate`) in block order, so results do
not depend on the number of threads. Memory: a few blocks in flight, the polygons, and the
(polygons x embedding) sums.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal

import numpy as np
import xarray as xr

from ..errors import (
    InvalidCoordinatesError,
    InvalidOptionError,
    NotAnEmbeddingGridError,
    check_choice,
    missing_dependency,
)
from ..raster.coords import find_spatial_coords

if TYPE_CHECKING:
    from .overlap import Weights

Stat = Literal["mean", "std", "count"]
STATS = ("mean", "std", "count")
WEIGHTS = ("area", "coverage")
DEFAULT_BLOCK = 256  # cells along each axis of a block of an in-memory grid
EMBEDDING_DIM = "embedding"
VARIABLE = "embeddings"  # a cube's data variable (xsatclip.cube.VARIABLE; no torch import here)



def require_dependencies() -> None:
    try:
        import geopandas  # noqa: F401
        import shapely
        import xvec  # noqa: F401  (registers .xvec)
    except ImportError as exc:
        raise missing_dependency("xsatclip.zonal (shapely, geopandas, xvec)", "zonal",
                                 exc) from None
    if tuple(map(int, shapely.__version__.split(".")[:2])) < (2, 1):
        raise missing_dependency(f"xsatclip.zonal (shapely >= 2.1, found "
                                 f"{shapely.__version__})", "zonal")


def zonal(embeddings, geometries, *, stat: Stat | Sequence[Stat] = "mean",
          weights: Weights = "area", crs=None, storage_options: dict | None = None,
          workers: int | None = None) -> xr.DataArray:
    """Area-weighted statistics of an embedding grid over each polygon.

    Parameters
    ----------
    embeddings : an embedding DataArray with an ``embedding`` dim (anywhere) and a
        rectilinear lat/lon grid or projected x/y with a CRS (``.satclip.embed`` results,
        lazy or not), a Dataset from :func:`~xsatclip.open_cube`, or a cube's path or URL.
    geometries : a GeoDataFrame or GeoSeries (any CRS), or a sequence of shapely Polygons and
        MultiPolygons in ``crs``.
    stat : ``"mean"``, ``"std"`` (weighted population standard deviation), ``"count"``
        (cells overlapped that hold values), or a sequence of them.
    weights : ``"area"``: each cell weighs its overlap area with the polygon on the sphere
        (on lat/lon grids exact for edges straight in lon/lat, see :mod:`.spherical`; on
        projected grids the planar overlap over the projection's areal scale factor).
        ``"coverage"``: each cell weighs the fraction of it that the polygon covers, in
        the grid's own coordinates, whatever its area (exactextract's and xvec's ``mean``).
    crs : CRS of plain shapely geometries (default EPSG:4326, lon/lat degrees).
    storage_options : for cube URLs.
    workers : threads reading blocks and clipping (default: Dask's ``num_workers``, else
        the number of cores).

    Returns
    -------
    DataArray ``(geometry, embedding)`` float64 for one of mean/std; ``(geometry,)`` int64
    for count; with a leading ``zonal_statistics`` dim for several (count repeated along
    ``embedding``). ``geometry`` holds the input geometries with an xvec ``GeometryIndex``
    in their CRS; a GeoDataFrame's index comes along as a coordinate (its name, or
    ``index``); the ``area`` coordinate (m^2; ``coverage`` in cells for ``"coverage"``)
    sums each polygon's weights over the grid. Cells whose vector holds a NaN (unwritten
    cube chunks) are left out; a polygon off the grid gets NaN and count 0.
    """
    stats = (stat,) if isinstance(stat, str) else tuple(stat)
    unknown = [s for s in stats if s not in STATS]
    if unknown or not stats:
        raise InvalidOptionError(f"stat={stat!r}: choose among {list(STATS)}")
    check_choice("weights", weights, WEIGHTS)
    require_dependencies()
    from .geometries import in_crs, in_lonlat, read_polygons
    from .overlap import GridCells, grid_parts

    emb = _embedding_array(embeddings, storage_options)
    spatial = find_spatial_coords(emb)
    if spatial.kind == "curvilinear":
        raise InvalidCoordinatesError("zonal statistics need a rectilinear lat/lon or "
                                      "projected x/y grid; this one is curvilinear")
    extra = [d for d in emb.dims if d not in (*spatial.dims, EMBEDDING_DIM)]
    if extra:
        raise NotAnEmbeddingGridError(f"the embeddings have dims {emb.dims}; select a single "
                                      f"value of {extra} first (.isel / .sel)")
    grid = GridCells.from_centres(emb[spatial.y].values, emb[spatial.x].values,
                                  spatial.crs if spatial.kind == "projected" else None,
                                  (spatial.y, spatial.x))
    polygons = read_polygons(geometries, crs)
    frame = in_lonlat(polygons) if grid.crs is None else in_crs(polygons, grid.crs)
    parts, owners = grid_parts(frame, grid)
    sums, weight_sums = _reduce(emb, spatial.dims, grid, parts, owners, polygons.geometries.size,
                                weights, workers)
    return _result(emb, polygons, stats, sums, weight_sums, weights)


def _embedding_array(cube, storage_options) -> xr.DataArray:
    """The embedding DataArray of ``cube``, with a Dataset's attrs merged in."""
    if not isinstance(cube, (xr.Dataset, xr.DataArray)):
        from ..cube import open_cube

        cube = open_cube(cube, storage_options=storage_options)
    if isinstance(cube, xr.Dataset):
        if VARIABLE not in cube:
            raise NotAnEmbeddingGridError(f"the Dataset has no variable {VARIABLE!r} (data "
                                          f"variables: {list(cube.data_vars)})")
        cube = cube[VARIABLE].assign_attrs({**cube.attrs, **cube[VARIABLE].attrs})
    if EMBEDDING_DIM not in cube.dims:
        raise NotAnEmbeddingGridError(f"the input has dims {cube.dims} and no "
                                      f"{EMBEDDING_DIM!r} dim: it is not an embedding grid")
    return cube


def _blocks(emb: xr.DataArray, dims: tuple[str, str]):
    """Array index ranges ``((r0, r1), (c0, c1))`` of the blocks to read, row-major."""
    edges = []
    for dim in dims:
        sizes = emb.chunksizes.get(dim) or (DEFAULT_BLOCK,) * -(-emb.sizes[dim] // DEFAULT_BLOCK)
        stops = np.minimum(np.cumsum(sizes), emb.sizes[dim])
        edges.append(list(zip(np.r_[0, stops[:-1]], stops, strict=True)))
    return [(r, c) for r in edges[0] for c in edges[1]]


def _reduce(emb, dims, grid, parts, owners, n, weights, workers):
    """Running sums over all blocks, and each polygon's total weight."""
    import shapely
    from dask.local import get_sync

    from .accumulate import Sums
    from .overlap import block_weights

    tree = shapely.STRtree(parts)
    ydim, xdim = dims

    def block(r, c):
        rows, cols = grid.sorted_range(0, *r), grid.sorted_range(1, *c)
        box = shapely.box(grid.x_edges[cols[0]], grid.y_edges[rows[0]],
                          grid.x_edges[cols[1]], grid.y_edges[rows[1]])
        hit = tree.query(box, predicate="intersects")
        if hit.size == 0:
            return None
        owner, row, col, w = block_weights(parts[hit], owners[hit], grid, rows, cols, weights)
        if owner.size == 0:
            return None
        values = emb.isel({ydim: slice(*r), xdim: slice(*c)}).transpose(ydim, xdim,
                                                                         EMBEDDING_DIM)
        data = values.data
        if hasattr(data, "dask"):  # a callable scheduler: dask then never imports
            data = data.compute(scheduler=get_sync)  # distributed from several threads at once
        cell = ((grid.array_index(0, row) - r[0]) * (c[1] - c[0])
                + grid.array_index(1, col) - c[0])
        return np.asarray(data).reshape(-1, emb.sizes[EMBEDDING_DIM]), cell, owner, w

    sums = Sums(n, emb.sizes[EMBEDDING_DIM])
    weight_sums = np.zeros(n)
    workers = workers or _default_workers()
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for r, c in _blocks(emb, dims):
            pending.append(pool.submit(block, r, c))
            if len(pending) >= 2 * workers:
                _add(pending.popleft().result(), sums, weight_sums)
        while pending:
            _add(pending.popleft().result(), sums, weight_sums)
    return sums, weight_sums


def _add(result, sums, weight_sums) -> None:
    if result is not None:
        values, cell, owner, w = result
        sums.add(values, cell, owner, w)
        weight_sums += np.bincount(owner, w, weight_sums.size)


def _default_workers() -> int:
    import dask

    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def _result(emb, polygons, stats, sums, weight_sums, weights) -> xr.DataArray:
    """The output DataArray: stats along ``zonal_statistics`` (when several), xvec index."""
    size = emb.sizes[EMBEDDING_DIM]
    made = {"mean": sums.mean, "std": sums.std}
    arrays = []
    for s in stats:
        if s == "count" and len(stats) == 1:
            arrays.append(xr.DataArray(sums.count, dims="geometry", name="count"))
        elif s == "count":
            arrays.append(xr.DataArray(np.repeat(sums.count[:, None].astype(np.float64),
                                                 size, axis=1), dims=("geometry", EMBEDDING_DIM)))
        else:
            arrays.append(xr.DataArray(made[s](), dims=("geometry", EMBEDDING_DIM)))
    result = arrays[0] if len(arrays) == 1 else xr.concat(
        arrays, dim=xr.DataArray(np.array(stats), dims="zonal_statistics", name="zonal_statistics"))
    coords: dict[str, tuple] = {"geometry": ("geometry", polygons.geometries),
              weights: ("geometry", weight_sums,
                        {"units": "m2" if weights == "area" else "cells",
                         "long_name": "overlap with the grid's cells"})}
    if EMBEDDING_DIM in result.dims:
        coords[EMBEDDING_DIM] = (EMBEDDING_DIM, emb[EMBEDDING_DIM].values
                                 if EMBEDDING_DIM in emb.coords else np.arange(size))
    if polygons.index is not None:
        coords[polygons.index.name or "index"] = ("geometry", polygons.index.to_numpy())
    result = result.assign_coords(coords).xvec.set_geom_indexes("geometry", crs=polygons.crs)
    result.attrs = {**emb.attrs, "xsatclip_zonal": f"stat={','.join(stats)} weights={weights}"}
    return result.rename(result.name or "embedding")
