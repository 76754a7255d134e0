"""Checks of (lon, lat) inputs in degrees, shared by every entry point that takes points.

Latitudes must lie in [-90, 90]; longitudes may be any finite value (they are periodic, so
-180..180 and 0..360 give the same features). NaN passes through and yields a NaN row.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidCoordinatesError


def check_latitude(lat) -> np.ndarray:
    """``lat`` as a 1-D float64 array; raise unless it lies in [-90, 90] degrees (NaN passes)."""
    lat = np.asarray(lat, dtype=np.float64).ravel()
    bad = np.abs(lat) > 90.0  # NaN compares False
    if bad.any():
        values = lat[bad]
        raise InvalidCoordinatesError(
            f"{values.size} latitude value(s) outside [-90, 90] degrees "
            f"(found range {_degrees(values.min())} .. {_degrees(values.max())})"
        )
    return lat


def check_longitude(lon) -> np.ndarray:
    """``lon`` as a 1-D float64 array; raise on infinite values (any finite value is fine:
    longitude is periodic; NaN passes)."""
    lon = np.asarray(lon, dtype=np.float64).ravel()
    bad = np.isinf(lon)
    if bad.any():
        raise InvalidCoordinatesError(
            f"{int(bad.sum())} longitude value(s) are infinite; longitude must be finite"
        )
    return lon


def validate_lonlat(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Return ``lon, lat`` as checked 1-D float64 arrays of equal length, or raise.

    NaN in either passes through and yields a NaN feature row.
    """
    lon, lat = check_longitude(lon), check_latitude(lat)
    if lon.shape != lat.shape:
        raise InvalidCoordinatesError(
            f"lon and lat must have the same number of points, got {lon.size} and {lat.size}"
        )
    return lon, lat



def _degrees(value: float) -> str:
    """``value`` as written, without exponent or trailing zeros (91, -90.0000001)."""
    return np.format_float_positional(float(value), trim="-")
