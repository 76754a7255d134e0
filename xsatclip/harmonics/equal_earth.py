"""The Equal Earth projection (Šavrič, Patterson & Jenny 2018) as GeoCLIP scales it: the
input of GeoCLIP's random Fourier features."""

from __future__ import annotations

import numpy as np

# Polynomial coefficients of the projection and GeoCLIP's scale (projected units per 180).
A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
GEOCLIP_SCALE = 66.50336 / 180.0


def equal_earth(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """GeoCLIP's projected coordinates of points: (N, 2) float64 ``(x, y)``.

    ``lon``, ``lat`` in degrees, float64, validated; longitudes are first wrapped into
    [-180, 180) (the projection is not periodic: GeoCLIP's own code maps 180 and -180 to
    opposite edges; here both are -180). NaN gives a NaN row.
    """
    lon_rad = np.radians(np.mod(lon + 180.0, 360.0) - 180.0)
    theta = np.arcsin(np.sqrt(3.0) / 2.0 * np.sin(np.radians(lat)))
    t2 = theta * theta
    denominator = 3.0 * (9.0 * A4 * t2**4 + 7.0 * A3 * t2**3 + 3.0 * A2 * t2 + A1)
    x = 2.0 * np.sqrt(3.0) * lon_rad * np.cos(theta) / denominator
    y = theta * (A4 * t2**4 + A3 * t2**3 + A2 * t2 + A1)
    return np.stack([x, y], axis=1) * GEOCLIP_SCALE
