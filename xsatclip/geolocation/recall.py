"""Scoring probability maps: cell areas on the Earth, Recall vs Area and the error of the
most probable cell.

Recall vs Area (RvA) asks how much of the Earth's surface one must search, taking cells from
the most probable down, to find the true location. For each query the *needed area* is the
summed area of all cells ranked at or above the cell that contains the true location; the
RvA curve is the fraction of queries whose needed area is within each area budget. A map
that knows nothing (every cell ranked in a fixed order unrelated to the truth) has, for true
locations uniform on the sphere, a recall equal to the budget's fraction of the total area.
"""

from __future__ import annotations

import numpy as np
import pyproj
import xarray as xr

from ..errors import GeolocationError
from ..harmonics import validate_lonlat
from ..raster.coords import WGS84, find_spatial_coords
from ..raster.geometry import nearest_cell
from ..sphere import (
    AUTHALIC_RADIUS_KM,
    MEAN_RADIUS_KM,
    cell_edges,
    great_circle_km,
    latlon_cell_areas,
)
from .grids import cell_lonlat, grid_dims
from .kernels import needed_area

DEFAULT_AREAS_KM2 = (1e2, 1e3, 1e4, 1e5, 1e6, 1e7)


def _projected_cell_areas(obj: xr.DataArray | xr.Dataset, spatial) -> np.ndarray:
    """Areas (ny, nx) in km² of projected cells: each cell's four corners (midpoints between
    centres, half a cell beyond the outermost) transformed to lon/lat and measured as a
    geodesic polygon on the CRS's ellipsoid (pyproj Geod)."""
    y_edges = cell_edges(obj[spatial.y].values)
    x_edges = cell_edges(obj[spatial.x].values)
    xx, yy = np.meshgrid(x_edges, y_edges)
    to_lonlat = pyproj.Transformer.from_crs(spatial.crs, WGS84, always_xy=True)
    lon, lat = (np.asarray(v, np.float64) for v in to_lonlat.transform(xx, yy))
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise GeolocationError(
            f"cell corners of the projected grid ({spatial.y!r}/{spatial.x!r}) do not "
            f"transform to lon/lat in {spatial.crs.name!r}; cell areas need valid corners")
    geod = spatial.crs.get_geod() or pyproj.Geod(ellps="WGS84")
    areas = np.empty((y_edges.size - 1, x_edges.size - 1))
    for i in range(areas.shape[0]):
        for j in range(areas.shape[1]):
            ring_lon = [lon[i, j], lon[i, j + 1], lon[i + 1, j + 1], lon[i + 1, j]]
            ring_lat = [lat[i, j], lat[i, j + 1], lat[i + 1, j + 1], lat[i + 1, j]]
            areas[i, j] = abs(geod.polygon_area_perimeter(ring_lon, ring_lat)[0])
    return areas / 1e6


def cell_areas(obj: xr.DataArray | xr.Dataset, *,
               radius_km: float = AUTHALIC_RADIUS_KM) -> xr.DataArray:
    """Area in km² of every cell of ``obj``'s grid, as a DataArray over its spatial dims.

    Lat/lon grids: on a sphere of radius ``radius_km`` (default the authalic Earth radius,
    :mod:`xsatclip.sphere`), ``R² Δλ (sin φ2 - sin φ1)`` between the cell edges (midpoints
    between centres, half a cell beyond the outermost, latitudes clipped to ±90), so a global grid
    sums to ``4 π R²``. Projected grids: geodesic polygons through the transformed cell
    corners on the CRS's ellipsoid (``radius_km`` is not used). Curvilinear grids are
    refused: their cell corners are not known. Each axis needs at least two cells.
    """
    spatial = find_spatial_coords(obj)
    if spatial.kind == "curvilinear":
        raise GeolocationError(
            f"cell areas need cell corners, which a curvilinear grid (2-D {spatial.y!r}/"
            f"{spatial.x!r}) does not define; regrid to a lat/lon or projected grid")
    for name in (spatial.y, spatial.x):
        if obj[name].size < 2:
            raise GeolocationError(f"cell areas need at least 2 cells along {name!r}")
    if spatial.kind == "projected":
        areas = _projected_cell_areas(obj, spatial)
    else:
        areas = latlon_cell_areas(obj[spatial.y].values, obj[spatial.x].values, radius_km)
    coords = {name: obj.coords[name] for name in obj.coords
              if set(obj.coords[name].dims) <= set(spatial.dims)}
    return xr.DataArray(areas, dims=spatial.dims, coords=coords, name="cell_area",
                        attrs={"units": "km2"})


def recall_vs_area(prob_map: xr.DataArray, true_lon, true_lat, *,
                   areas_km2=DEFAULT_AREAS_KM2) -> xr.Dataset:
    """Recall vs Area of :func:`~xsatclip.locate` maps, and the error of their argmax.

    Parameters
    ----------
    prob_map : one map over two spatial dims, or a batch with one leading query dim (lat/lon
        or projected grids; computed here).
    true_lon, true_lat : the true location of each query (degrees, either longitude
        convention): scalars for one map, (N,) for a batch.
    areas_km2 : area budgets in km² (the Earth's surface is about 5.1e8 km²).
    Cell areas use the authalic radius, great-circle errors the mean radius
    (:mod:`xsatclip.sphere`).

    Returns
    -------
    Dataset with ``recall`` over ``area_km2`` (the fraction of queries whose needed area is at
    most each budget), ``needed_area_km2`` and ``error_km`` per query (over the map's query
    dim, else ``query``), ``median_error_km`` and ``total_area_km2``
    (of the cells with a probability).

    Notes
    -----
    The needed area of a query is the summed area (:func:`cell_areas`) of the cells ranked at
    or above the cell containing its true location. Ties are broken by storage order:
    equally probable cells rank row-major over the map's spatial dims as stored (on a
    north-up lat/lon grid: north to south, then west to east), so the needed area counts
    every cell of higher probability, plus the equally probable cells up to and including
    the true one in that order. A true location off the map, or in a NaN cell, has an
    infinite needed area (a miss at every budget). The error is the great-circle distance
    from the true location to the centre of the most probable cell (ties: the first in
    storage order).
    """
    spatial, extra = grid_dims(prob_map, allowed_extra=1)
    budgets = np.atleast_1d(np.asarray(areas_km2, dtype=np.float64))
    if budgets.ndim != 1 or budgets.size == 0 or not (budgets > 0).all():
        raise GeolocationError(f"areas_km2 must be positive areas in km², got {areas_km2!r}")
    lon, lat = validate_lonlat(np.atleast_1d(true_lon), np.atleast_1d(true_lat))
    queries = prob_map.sizes[extra[0]] if extra else 1
    if lon.size != queries:
        raise GeolocationError(f"true_lon/true_lat hold {lon.size} locations for {queries} "
                               f"map(s) ({extra[0] if extra else 'one map'})")
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise GeolocationError("true_lon/true_lat must be finite")
    area = cell_areas(prob_map).values.ravel()
    ydim, xdim = spatial.dims
    values = np.asarray(prob_map.transpose(*extra, ydim, xdim).values, np.float64)
    flat = values.reshape(queries, -1)
    row, col, inside = nearest_cell(prob_map, spatial, lon, lat)
    true_index = np.where(inside, row * values.shape[-1] + col, -1)
    needed = needed_area(flat, true_index, area)

    finite = np.isfinite(flat)
    if not finite.any(axis=1).all():
        raise GeolocationError("a map has no cell with a probability (all NaN)")
    best = np.argmax(np.where(finite, flat, -np.inf), axis=1)  # first of equal maxima
    best_lon, best_lat = cell_lonlat(prob_map, spatial, *np.divmod(best, values.shape[-1]))
    error = great_circle_km(lon, lat, best_lon, best_lat, MEAN_RADIUS_KM)
    query_dim = extra[0] if extra else "query"
    query_coord = (prob_map[query_dim].values if query_dim in prob_map.coords
                   else np.arange(queries))
    return xr.Dataset(
        {
            "recall": ("area_km2", (needed[None, :] <= budgets[:, None]).mean(axis=1)),
            "needed_area_km2": (query_dim, needed, {"units": "km2"}),
            "error_km": (query_dim, error, {"units": "km"}),
            "median_error_km": ((), float(np.median(error)), {"units": "km"}),
            "total_area_km2": ((), float(area[finite.any(axis=0)].sum()), {"units": "km2"}),
        },
        coords={"area_km2": budgets, query_dim: query_coord,
                "true_lon": (query_dim, lon), "true_lat": (query_dim, lat)},
        attrs={"ties": "storage order (row-major over the spatial dims)",
               "area_radius_km": AUTHALIC_RADIUS_KM, "distance_radius_km": MEAN_RADIUS_KM},
    )
