"""Numeric kernels on the sphere: cell edges, cell areas and great-circle distances (numpy).

All distances and areas are on a sphere of radius :data:`EARTH_RADIUS_KM` unless a radius is
given; angles are degrees.
"""

from __future__ import annotations

import numpy as np

# The mean radius of the Earth (IUGG R1 = (2a + b) / 3 of WGS84), km.
EARTH_RADIUS_KM = 6371.0088


def cell_edges(centres: np.ndarray) -> np.ndarray:
    """Edges (n + 1,) of cells with monotonic ``centres`` (n,), n >= 2: the midpoints between
    neighbours, and half a cell beyond the outermost centres (float64, same order)."""
    centres = np.asarray(centres, dtype=np.float64)
    middle = (centres[1:] + centres[:-1]) / 2
    first = centres[0] - (middle[0] - centres[0])
    last = centres[-1] + (centres[-1] - middle[-1])
    return np.concatenate([[first], middle, [last]])


def latlon_cell_areas(lat: np.ndarray, lon: np.ndarray,
                      radius_km: float = EARTH_RADIUS_KM) -> np.ndarray:
    """Areas (ny, nx) in km² of the cells of a lat/lon grid with centres ``lat`` (ny,) and
    ``lon`` (nx,) in degrees, each with at least 2 centres.

    A cell spanning longitudes ``λ1..λ2`` and latitudes ``φ1..φ2`` has area
    ``R² |λ2 - λ1| |sin φ2 - sin φ1|`` (radians); latitude edges are clipped to [-90, 90],
    so a global grid's areas sum to ``4 π R²``.
    """
    lat_edges = np.radians(np.clip(cell_edges(lat), -90.0, 90.0))
    lon_edges = np.radians(cell_edges(lon))
    band = np.abs(np.diff(np.sin(lat_edges)))
    width = np.abs(np.diff(lon_edges))
    return radius_km**2 * band[:, None] * width[None, :]


def great_circle_km(lon1, lat1, lon2, lat2, radius_km: float = EARTH_RADIUS_KM) -> np.ndarray:
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


def wrap_longitude(lon) -> np.ndarray:
    """Longitudes (degrees) wrapped into [-180, 180)."""
    return np.mod(np.asarray(lon, dtype=np.float64) + 180.0, 360.0) - 180.0
