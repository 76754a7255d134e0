"""Real spherical-harmonic basis of (lon, lat) points: the SatCLIP positional encoding.

Features are ordered ``l = 0 .. L-1`` and, inside each degree, ``m = -l .. l`` (column
``l*l + l + m``), with ``phi = radians(lon + 180)`` and ``theta = radians(lat + 90)``:

- ``m > 0``: ``sqrt(2) * N(l, m) * P_l^m(cos theta) * cos(m phi)``
- ``m < 0``: ``sqrt(2) * N(l, |m|) * P_l^|m|(cos theta) * sin(|m| phi)``
- ``m = 0``: ``zonal_scale * N(l, 0) * P_l(cos theta)``

where ``N(l, m) P_l^m`` is the fully normalised associated Legendre function without the
Condon-Shortley phase. The convention fixes ``zonal_scale``: ``pi`` for ``"satclip"`` (what the
published checkpoints were trained with) and ``1`` for ``"orthonormal"`` (textbook real
harmonics).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import DTypeLike

from ..errors import InvalidOptionError, check_choice
from .coordinates import validate_lonlat
from .legendre import basis_rows_kernel, legendre_recursion_coefficients

CONVENTIONS = {"satclip": math.pi, "orthonormal": 1.0}
NUMERICS = ("exact", "reference")
Convention = Literal["satclip", "orthonormal"]
Numerics = Literal["exact", "reference"]


def zonal_scale(convention: str) -> float:
    """Factor applied to the ``m = 0`` harmonics under ``convention``."""
    return CONVENTIONS[check_choice("convention", convention, sorted(CONVENTIONS))]


def spherical_harmonics(
    lon,
    lat,
    L: int,
    *,
    convention: Convention = "satclip",
    numerics: Numerics = "exact",
    dtype: DTypeLike = np.float32,
) -> np.ndarray:
    """Spherical-harmonic features of points.

    Parameters
    ----------
    lon, lat : array_like
        Coordinates in degrees, any shape (flattened). Latitude in [-90, 90]; longitude any
        finite value (0..360 and -180..180 give the same features). NaN gives a NaN row.
    L : int
        Number of Legendre degrees; the result has ``L * L`` columns.
    convention : {"satclip", "orthonormal"}
        ``"satclip"`` is the basis the published checkpoints expect (``m = 0`` times pi).
    numerics : {"exact", "reference"}
        ``"exact"``: a stable normalised recursion in float64 (Numba), rounded once to
        ``dtype``; accurate at every latitude. ``"reference"``: the reference code's expanded
        polynomials in float64 (cancels catastrophically at high latitude for large L).
    dtype : float32 or float64

    Returns
    -------
    ndarray of shape (N, L*L) and the requested dtype.
    """
    if isinstance(L, bool) or not (isinstance(L, (int, np.integer)) and L >= 1):
        raise InvalidOptionError(f"L must be a positive integer, got {L!r}")
    out_dtype = np.dtype(dtype)
    check_choice("dtype", out_dtype.name, ["float32", "float64"])
    scale = zonal_scale(convention)
    check_choice("numerics", numerics, NUMERICS)
    lon, lat = validate_lonlat(lon, lat)
    if numerics == "reference":
        from .reference import reference_basis

        return reference_basis(lon, lat, int(L), scale).astype(out_dtype, copy=False)
    out = np.empty((lon.size, L * L), dtype=out_dtype)
    basis_rows_kernel(lon, lat, *legendre_recursion_coefficients(int(L)), scale, out)
    return out
