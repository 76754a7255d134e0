"""Geometry of grids and points: where points fall on a grid, nearest cells, and point sets
on the sphere (uniform random, Fibonacci lattice)."""

from __future__ import annotations

import numpy as np
import pyproj

from .coords import WGS84, SpatialCoords


def cell_size(coord: np.ndarray) -> float:
    """Cell size of evenly spaced centres (inf for a single centre)."""
    return float(np.median(np.abs(np.diff(coord)))) if coord.size > 1 else np.inf


def axis_position(coord: np.ndarray, x: np.ndarray, *, periodic: bool, wraps: bool):
    """Interpolation along one monotonic axis of cell centres ``coord``.

    Returns ``i0, i1, w, inside``: the neighbouring centres of each point ``x``, the weight
    of ``i1``, and whether the point lies on the grid. ``periodic`` axes (global longitude)
    wrap at 360; ``wraps`` axes (regional longitude) take ``x`` modulo 360 into the grid's
    span; others are plain. Non-periodic axes hold values constant between the outermost
    centre and the edge, half a cell further; beyond it a point is outside.
    """
    n = coord.size
    ascending = n < 2 or coord[-1] > coord[0]
    c = coord if ascending else coord[::-1]
    half = cell_size(c) / 2
    inside = np.isfinite(x)
    x = np.where(inside, x, c[0])
    if periodic:
        x = (x - c[0]) % 360 + c[0]
        i0 = last_at_or_below(c, x)
        i1 = (i0 + 1) % n
        right = np.where(i0 + 1 < n, c[np.minimum(i0 + 1, n - 1)], c[0] + 360)
        w = (x - c[i0]) / (right - c[i0])
    else:
        if wraps:
            west = c[0] - min(half, 180.0)
            x = (x - west) % 360 + west
        tolerance = 1e-9 * max(1.0, abs(c[0]), abs(c[-1]))
        inside &= (x >= c[0] - half - tolerance) & (x <= c[-1] + half + tolerance)
        x = np.clip(x, c[0], c[-1])
        if n == 1:
            zeros = np.zeros(x.shape, int)
            return zeros, zeros, np.zeros(x.shape), inside
        i0 = np.clip(last_at_or_below(c, x), 0, n - 2)
        i1 = i0 + 1
        w = (x - c[i0]) / (c[i1] - c[i0])
    if not ascending:
        i0, i1 = n - 1 - i0, n - 1 - i1
    return i0, i1, w, inside


def last_at_or_below(c: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``np.searchsorted(c, x, side="right") - 1`` for ascending centres ``c`` (n,) and
    points ``x`` (no NaN): the index of the last centre <= each point, -1 below them all.

    For evenly spaced centres the index is computed from the spacing and corrected by one
    either way (~5x faster than a binary search over unsorted points, whose branches
    mispredict); any point that correction leaves wrong (uneven centres) takes the binary
    search."""
    n = c.size
    if n < 2:
        return np.searchsorted(c, x, side="right") - 1
    guess = np.clip(np.floor((x - c[0]) * ((n - 1) / (c[-1] - c[0]))), -1, n - 1)
    i = guess.astype(np.intp)
    i -= (i >= 0) & (c[np.maximum(i, 0)] > x)
    i += (i < n - 1) & (c[np.minimum(i + 1, n - 1)] <= x)
    right = (i < 0) | (c[np.maximum(i, 0)] <= x)
    right &= (i >= n - 1) | (c[np.minimum(i + 1, n - 1)] > x)
    if not right.all():
        wrong = ~right
        i[wrong] = np.searchsorted(c, x[wrong], side="right") - 1
    return i


def is_global_longitude(coord: np.ndarray) -> bool:
    """Whether evenly spaced longitude centres ``coord`` cover all 360 degrees."""
    return coord.size > 1 and abs(coord.size * cell_size(coord) - 360) < 1e-6


def grid_position(obj, spatial: SpatialCoords, lon: np.ndarray, lat: np.ndarray):
    """Where points (degrees) fall on the rectilinear or projected grid of ``obj``.

    Returns ``y0, y1, wy, x0, x1, wx, inside`` (N,) each: the neighbouring cell centres along
    each axis and the weights of ``y1``/``x1`` (see :func:`axis_position`), and whether the
    point lies on the grid. Projected grids get the points transformed with pyproj; global
    lat/lon grids wrap at the dateline, regional ones take longitudes modulo 360.
    """
    ycoord = np.asarray(obj[spatial.y].values, np.float64)
    xcoord = np.asarray(obj[spatial.x].values, np.float64)
    if spatial.kind == "projected":
        to_grid = pyproj.Transformer.from_crs(WGS84, spatial.crs, always_xy=True)
        with np.errstate(invalid="ignore"):
            px, py = (np.asarray(v, np.float64) for v in to_grid.transform(lon, lat))
        periodic = wraps = False
    else:
        px, py = lon, lat
        periodic, wraps = is_global_longitude(xcoord), True
    y0, y1, wy, inside_y = axis_position(ycoord, py, periodic=False, wraps=False)
    x0, x1, wx, inside_x = axis_position(xcoord, px, periodic=periodic, wraps=wraps)
    return y0, y1, wy, x0, x1, wx, inside_y & inside_x


def nearest_cell(obj, spatial: SpatialCoords, lon: np.ndarray, lat: np.ndarray):
    """Row and column (N,) of the cell centre nearest each point along each axis (a tie goes
    to the first of the two), and whether the point lies on the grid (:func:`grid_position`)."""
    y0, y1, wy, x0, x1, wx, inside = grid_position(obj, spatial, lon, lat)
    return np.where(wy > 0.5, y1, y0), np.where(wx > 0.5, x1, x0), inside


def uniform_on_sphere(rng: np.random.Generator, n: int,
                      bounds: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0)
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points (lon, lat degrees, (n,) each) uniform on the sphere within ``bounds``
    (west, south, east, north; east may exceed 180, longitudes are not wrapped): longitude
    uniform, then the sine of latitude uniform."""
    west, south, east, north = bounds
    lon = rng.uniform(west, east, n)
    lat = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(south)),
                                           np.sin(np.radians(north)), n)))
    return lon, lat


def fibonacci_lattice(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` nearly evenly spaced points on the sphere, (lon, lat) in degrees, (n,) each."""
    i = np.arange(n) + 0.5
    lat = np.degrees(np.arcsin(1 - 2 * i / n))
    lon = (np.degrees(np.pi * (1 + 5**0.5) * i) + 180) % 360 - 180
    return lon, lat
