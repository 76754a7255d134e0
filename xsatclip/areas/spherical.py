"""Exact areas on the sphere of regions whose edges are straight lines in lon/lat.

This is how GIS tools read polygons in EPSG:4326 (and how grid cells are bounded: by
meridians and parallels). The area of such a region ``D`` on a sphere of radius ``R`` is
``R**2 * integral over D of cos(lat) dlon dlat`` (radians). By Green's theorem it is the
boundary integral ``-R**2 * contour integral of sin(lat) dlon``, which along a segment from
``(lon1, lat1)`` to ``(lon2, lat2)``, with both coordinates linear in a parameter, is exactly
``dlon * (cos(lat1) - cos(lat2)) / dlat`` = ``dlon * sin(mid) * sinc(half)``, with
``mid = (lat1 + lat2) / 2`` and ``half = (lat2 - lat1) / 2``.

Numerics (float64): the segment terms are taken relative to the latitude of each ring's first
vertex (the sum of ``dlon`` over a closed ring is zero), with ``sin(a) - sin(b)`` written as a
product and ``sinc(h) - 1`` by its series for small ``h``, so that no term is a difference
of nearly equal numbers: tiny cells near the poles keep full relative precision.
"""

from __future__ import annotations

import numpy as np

from ..sphere import AUTHALIC_RADIUS_KM

EARTH_RADIUS_M = AUTHALIC_RADIUS_KM * 1000.0  # areas here are in m²
SERIES_BELOW = 0.05  # radians: |h| below which sinc(h) - 1 is taken from its series


def _sinc_minus_one(h: np.ndarray) -> np.ndarray:
    """``sin(h) / h - 1`` without cancellation (series below :data:`SERIES_BELOW`)."""
    h2 = h * h
    series = -h2 / 6 * (1 - h2 / 20 * (1 - h2 / 42 * (1 - h2 / 72)))
    with np.errstate(invalid="ignore", divide="ignore"):
        direct = np.sin(h) / h - 1
    return np.where(np.abs(h) < SERIES_BELOW, series, direct)


def ring_areas(lon: np.ndarray, lat: np.ndarray, ring: np.ndarray, n_rings: int,
               radius: float = EARTH_RADIUS_M) -> np.ndarray:
    """Unsigned areas of closed rings whose edges are straight in lon/lat.

    Parameters
    ----------
    lon, lat : (n,) degrees, the vertices of all rings one after the other, each ring closed
        (last vertex = first). Longitudes may exceed 180; latitudes lie in [-90, 90].
    ring : (n,) int, the ring of each vertex (non-decreasing, 0 .. n_rings - 1).
    n_rings : number of rings.
    radius : sphere radius; areas come in its unit squared.

    Returns
    -------
    (n_rings,) float64 areas.
    """
    lon, lat = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    same = ring[1:] == ring[:-1]  # segment k joins vertex k and k + 1 of one ring
    owner = ring[1:][same]
    first = np.searchsorted(ring, np.arange(n_rings))  # reference: each ring's first vertex
    ref_deg = lat[np.minimum(first, lat.size - 1)][owner]
    # Offsets from the reference are exact differences of nearby floats.
    quarter = np.radians(((lat[:-1][same] - ref_deg) + (lat[1:][same] - ref_deg)) / 4)
    ref = np.radians(ref_deg)
    dlon = np.radians(np.diff(lon)[same])
    half = np.radians(np.diff(lat)[same] / 2)
    # sin(mid) * sinc(half) - sin(ref), with mid = ref + 2 * quarter, without cancellation
    relative = (2 * np.cos(ref + quarter) * np.sin(quarter)
                + np.sin(ref + 2 * quarter) * _sinc_minus_one(half))
    return np.abs(np.bincount(owner, dlon * relative, n_rings)) * radius**2
