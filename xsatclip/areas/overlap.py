"""Overlap of polygons with the cells of a rectilinear grid: which cells, and how much.

GEOS (shapely) cuts each polygon to the grid (shifted by multiples of 360 degrees on lat/lon
grids, so that polygons in either longitude convention, or across the dateline, land on the
right cells), then to each block of cells; :mod:`.cells` then measures the overlap of each
piece with each cell exactly, from the piece's edges alone. The weight of a cell is

- on lat/lon grids, the exact area on the sphere of its overlap, edges straight in lon/lat
  (the closed forms of :mod:`.spherical`): the same figure for a cell whether the polygon
  covers it or not;
- on projected grids, the overlap's area in the grid's CRS divided by the projection's
  areal scale factor at the cell's centre (pyproj): exact for equal-area projections,
  otherwise as accurate as the scale factor is constant across one cell.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import pyproj
import shapely

from ..errors import InvalidCoordinatesError
from .cells import cell_overlaps
from .spherical import EARTH_RADIUS_M, ring_areas

Weights = Literal["area", "coverage"]


@dataclasses.dataclass(frozen=True)
class GridCells:
    """Cell edges of a rectilinear grid, ascending, and how they map to array indices.

    ``y_edges`` (ny + 1,) and ``x_edges`` (nx + 1,) ascend; ``flip_y``/``flip_x`` say that
    array index ``i`` holds sorted cell ``n - 1 - i`` (a north-up grid has ``flip_y``).
    ``crs`` is None for lat/lon degrees, else the projected CRS of x/y.
    """

    y_edges: np.ndarray
    x_edges: np.ndarray
    flip_y: bool
    flip_x: bool
    crs: pyproj.CRS | None = None

    @classmethod
    def from_centres(cls, y: np.ndarray, x: np.ndarray, crs: pyproj.CRS | None,
                     names: tuple[str, str]) -> GridCells:
        (y_edges, flip_y), (x_edges, flip_x) = _edges(y, names[0]), _edges(x, names[1])
        if crs is None:
            y_edges = np.clip(y_edges, -90.0, 90.0)
        return cls(y_edges, x_edges, flip_y, flip_x, crs)

    @property
    def shape(self) -> tuple[int, int]:
        return self.y_edges.size - 1, self.x_edges.size - 1

    def sorted_range(self, axis: int, start: int, stop: int) -> tuple[int, int]:
        """Sorted cell range of array indices ``start:stop`` along ``axis`` (0: y, 1: x)."""
        n, flip = self.shape[axis], (self.flip_y, self.flip_x)[axis]
        return (n - stop, n - start) if flip else (start, stop)

    def array_index(self, axis: int, sorted_index: np.ndarray) -> np.ndarray:
        n, flip = self.shape[axis], (self.flip_y, self.flip_x)[axis]
        return n - 1 - sorted_index if flip else sorted_index


def _edges(centres: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    """Ascending cell edges halfway between centres (half a spacing beyond the outer ones)."""
    c = np.asarray(centres, np.float64)
    if c.size < 2:
        raise InvalidCoordinatesError(f"coordinate {name!r} has {c.size} cell(s); zonal "
                                      "statistics need at least 2 cells along each axis")
    flip = c[-1] < c[0]
    c = c[::-1] if flip else c
    if not (np.diff(c) > 0).all():
        raise InvalidCoordinatesError(f"coordinate {name!r} must be strictly monotonic")
    mid = (c[1:] + c[:-1]) / 2
    return np.r_[2 * c[0] - mid[0], mid, 2 * c[-1] - mid[-1]], bool(flip)


def grid_parts(geometries: np.ndarray, grid: GridCells) -> tuple[np.ndarray, np.ndarray]:
    """The polygons (in the grid's coordinates) cut to the grid: ``parts`` and the index of
    the polygon each comes from. On lat/lon grids each polygon is also shifted by every
    multiple of 360 degrees that brings it onto the grid's longitudes."""
    x0, x1 = grid.x_edges[[0, -1]]
    y0, y1 = grid.y_edges[[0, -1]]
    extent = shapely.box(x0, y0, x1, y1)
    bounds = shapely.bounds(geometries)
    if grid.crs is None:
        low = np.ceil((x0 - bounds[:, 2]) / 360).astype(int)
        high = np.floor((x1 - bounds[:, 0]) / 360).astype(int)
        shifts = range(low.min(), high.max() + 1) if low.size else range(0)
    else:
        low = high = np.zeros(len(geometries), int)
        shifts = range(1)
    pieces: list[np.ndarray] = [np.empty(0, object)]
    indices: list[np.ndarray] = [np.empty(0, int)]
    for k in shifts:
        owner = np.flatnonzero((low <= k) & (k <= high))
        moved = geometries[owner]
        if k:
            moved = shapely.transform(moved, lambda xy, k=k: xy + np.array([360.0 * k, 0.0]))
        b = bounds[owner] + [360.0 * k, 0, 360.0 * k, 0]
        outside = (b[:, 0] < x0) | (b[:, 1] < y0) | (b[:, 2] > x1) | (b[:, 3] > y1)
        moved[outside] = shapely.intersection(moved[outside], extent)
        pieces.append(moved)
        indices.append(owner)
    parts, owners = np.concatenate(pieces), np.concatenate(indices)
    keep = shapely.area(parts) > 0
    return parts[keep], owners[keep]


def block_weights(parts: np.ndarray, owners: np.ndarray, grid: GridCells, rows: tuple[int, int],
                  cols: tuple[int, int], weights: Weights):
    """Overlap of ``parts`` with the cells of one block (sorted index ranges ``rows``,
    ``cols``): ``owner, row, col, weight`` (m,) arrays, one entry per polygon and cell with
    positive overlap; ``row``/``col`` are sorted cell indices; ``weight`` is the overlap area
    (m^2) or, for ``"coverage"``, the fraction of the cell covered. GEOS cuts the parts to
    the block; :mod:`.cells` measures each cell's share exactly."""
    ye = grid.y_edges[rows[0]:rows[1] + 1]
    xe = grid.x_edges[cols[0]:cols[1] + 1]
    pieces = shapely.intersection(parts, shapely.box(xe[0], ye[0], xe[-1], ye[-1]))
    polygons, index = shapely.get_parts(pieces, return_index=True)
    polygons, inner = shapely.get_parts(polygons, return_index=True)  # nested collections
    keep = (shapely.get_type_id(polygons) == 3) & (shapely.area(polygons) > 0)
    polygons, owner = shapely.orient_polygons(polygons[keep]), owners[index[inner][keep]]
    rings, ring_polygon = shapely.get_rings(polygons, return_index=True)
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    ring_start = np.r_[0, np.cumsum(np.bincount(ring, minlength=rings.size))]
    spherical = grid.crs is None and weights == "area"
    piece, r, c, area = cell_overlaps(xy[:, 0], xy[:, 1], ring_start, ring_polygon,
                                      polygons.size, xe, ye, spherical=spherical)
    if spherical:
        w = area * EARTH_RADIUS_M**2
    else:
        cell = (xe[c + 1] - xe[c]) * (ye[r + 1] - ye[r])
        w = area / cell * _cell_measure(grid, xe, ye, r, c, weights)
    # one entry per (polygon, cell): parts of a MultiPolygon may share a cell
    ny, nx = ye.size - 1, xe.size - 1
    key, where = np.unique((owner[piece] * ny + r) * nx + c, return_inverse=True)
    total = np.bincount(where, w, key.size)
    return key // (ny * nx), (key // nx) % ny + rows[0], key % nx + cols[0], total


def _cell_measure(grid: GridCells, xe, ye, r, c, weights: Weights) -> np.ndarray:
    """What a whole cell of a projected grid weighs (m^2), or 1 for ``"coverage"``."""
    if weights == "coverage" or grid.crs is None:  # lat/lon area weights: .cells measures
        return np.ones(r.size)
    unit = grid.crs.axis_info[0].unit_conversion_factor  # metres per CRS unit
    proj = pyproj.Proj(grid.crs)
    lon, lat = proj((xe[c] + xe[c + 1]) / 2, (ye[r] + ye[r + 1]) / 2, inverse=True)
    scale = proj.get_factors(lon, lat).areal_scale
    return (xe[c + 1] - xe[c]) * (ye[r + 1] - ye[r]) * unit**2 / np.asarray(scale)


def spherical_areas(geometries: np.ndarray) -> np.ndarray:
    """Areas (m^2) on the sphere of lon/lat (Multi)Polygons, or of the polygonal parts of
    geometry collections, edges straight in lon/lat; (n,) for (n,) geometries."""
    polygons, owner = shapely.get_parts(geometries, return_index=True)
    polygons, inner = shapely.get_parts(polygons, return_index=True)  # nested collections
    owner = owner[inner]
    keep = shapely.get_type_id(polygons) == 3
    polygons, owner = polygons[keep], owner[keep]
    rings, ring_owner = shapely.get_rings(polygons, return_index=True)  # exterior first
    exterior = np.r_[True, ring_owner[1:] != ring_owner[:-1]]
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    areas = ring_areas(xy[:, 0], xy[:, 1], ring, rings.size)
    polygon_areas = np.bincount(ring_owner, np.where(exterior, areas, -areas), polygons.size)
    return np.bincount(owner, polygon_areas, geometries.size)
