"""Numeric kernels on the sphere (numpy): cell edges and areas, great-circle distances.

Two radii, each for what it is right for: areas use the authalic radius (the sphere with the
WGS84 ellipsoid's surface area, so a global grid's cells sum to the Earth's area); distances
use the mean radius (IUGG R1). Angles are degrees.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

AUTHALIC_RADIUS_KM = 6371.007181  # areas
MEAN_RADIUS_KM = 6371.0088  # great-circle distances: (2a + b) / 3 of WGS84


def cell_edges(centres: ArrayLike) -> np.ndarray:
    """Edges (n + 1,) of cells with monotonic ``centres`` (n,), n >= 2: the midpoints between
    neighbours, and half a cell beyond the outermost centres (float64, same order)."""
    centres = np.asarray(centres, dtype=np.float64)
    middle = (centres[1:] + centres[:-1]) / 2
    first = centres[0] - (middle[0] - centres[0])
    last = centres[-1] + (centres[-1] - middle[-1])
    return np.concatenate([[first], middle, [last]])


def rectangle_areas(west: ArrayLike, east: ArrayLike, south: ArrayLike, north: ArrayLike,
                    radius: float = AUTHALIC_RADIUS_KM) -> np.ndarray:
    """Areas of lon/lat rectangles (degrees, broadcast together) in ``radius`` units squared:
    ``R**2 * dlon * (sin(north) - sin(south))``, written as ``2 cos(mid) sin(half)`` so that
    thin cells near the poles keep full relative precision."""
    dlon = np.radians(np.asarray(east, np.float64) - np.asarray(west, np.float64))
    north, south = np.asarray(north, np.float64), np.asarray(south, np.float64)
    mid, half = np.radians((north + south) / 2), np.radians((north - south) / 2)
    return radius**2 * dlon * 2 * np.cos(mid) * np.sin(half)


def latlon_cell_areas(lat: ArrayLike, lon: ArrayLike,
                      radius_km: float = AUTHALIC_RADIUS_KM) -> np.ndarray:
    """Areas (ny, nx) in km² of the cells of a lat/lon grid with centres ``lat`` (ny,) and
    ``lon`` (nx,) in degrees, each with at least 2 centres. Latitude edges are clipped to
    [-90, 90], so a global grid's areas sum to ``4 pi R**2``."""
    lat_edges = np.clip(cell_edges(lat), -90.0, 90.0)
    lon_edges = cell_edges(lon)
    band = np.abs(rectangle_areas(0.0, 1.0, lat_edges[:-1], lat_edges[1:], radius_km))
    width = np.abs(np.diff(lon_edges))
    return band[:, None] * width[None, :]


def great_circle_km(lon1: ArrayLike, lat1: ArrayLike, lon2: ArrayLike, lat2: ArrayLike,
                    radius_km: float = MEAN_RADIUS_KM) -> np.ndarray:
    """Great-circle distance in km between points (degrees, broadcastable arrays).

    The atan2 form of Vincenty's formula for the sphere: accurate for coincident, nearby
    and antipodal points alike (no arccos of a value near 1).
    """
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, dtype=np.float64))
                              for v in (lon1, lat1, lon2, lat2))
    dlon = lon2 - lon1
    cos1, sin1, cos2, sin2 = np.cos(lat1), np.sin(lat1), np.cos(lat2), np.sin(lat2)
    across = np.hypot(cos2 * np.sin(dlon), cos1 * sin2 - sin1 * cos2 * np.cos(dlon))
    along = sin1 * sin2 + cos1 * cos2 * np.cos(dlon)
    return radius_km * np.arctan2(across, along)


def wrap_longitude(lon: ArrayLike) -> np.ndarray:
    """Longitudes (degrees) wrapped into [-180, 180)."""
    return np.mod(np.asarray(lon, dtype=np.float64) + 180.0, 360.0) - 180.0
