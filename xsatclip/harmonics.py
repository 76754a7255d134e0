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
from functools import cache

import numba
import numpy as np

from .errors import InvalidCoordinatesError

CONVENTIONS = {"satclip": math.pi, "orthonormal": 1.0}
NUMERICS = ("exact", "reference")


def zonal_scale(convention: str) -> float:
    """Factor applied to the ``m = 0`` harmonics under ``convention``."""
    try:
        return CONVENTIONS[convention]
    except KeyError:
        raise ValueError(
            f"convention={convention!r} is not known; choose one of {sorted(CONVENTIONS)}"
        ) from None


def check_latitude(lat) -> np.ndarray:
    """``lat`` as a 1-D float64 array; raise unless it lies in [-90, 90] degrees (NaN passes)."""
    lat = np.asarray(lat, dtype=np.float64).ravel()
    bad = np.abs(lat) > 90.0  # NaN compares False
    if bad.any():
        values = lat[bad]
        raise InvalidCoordinatesError(
            f"{values.size} latitude value(s) outside [-90, 90] degrees "
            f"(found range {values.min():g} .. {values.max():g})"
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


@cache
def legendre_recursion_coefficients(L: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients of the normalised Legendre recursion up to degree ``L - 1``.

    Returns ``(diag, a, b)``: ``p(m, m) = diag[m] * sin(theta) * p(m-1, m-1)`` and
    ``p(l, m) = a[l, m] * (x * p(l-1, m) - b[l, m] * p(l-2, m))`` for ``l > m``, all float64.
    """
    m = np.arange(L, dtype=np.float64)
    diag = np.ones(L)
    diag[1:] = np.sqrt((2 * m[1:] + 1) / (2 * m[1:]))
    ll, mm = np.meshgrid(m, m, indexing="ij")
    a = np.zeros((L, L))
    b = np.zeros((L, L))
    above = ll > mm
    a[above] = np.sqrt((4 * ll[above] ** 2 - 1) / (ll[above] ** 2 - mm[above] ** 2))
    b[above] = np.sqrt(((ll[above] - 1) ** 2 - mm[above] ** 2) / (4 * (ll[above] - 1) ** 2 - 1))
    return diag, a, b


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=False)
def _basis_kernel(lon, lat, diag, a, b, zonal, out):  # pragma: no cover - compiled
    """Fill ``out`` (N, L*L) with the basis of N points given in degrees (float64 maths)."""
    n, nfeat = out.shape
    L = diag.shape[0]
    sqrt2 = math.sqrt(2.0)
    p00 = 1.0 / math.sqrt(4.0 * math.pi)
    for i in numba.prange(n):
        if math.isnan(lon[i]) or math.isnan(lat[i]):
            for k in range(nfeat):
                out[i, k] = math.nan
            continue
        t = math.radians(lat[i])
        x = -math.sin(t)  # cos(theta) with theta = lat + 90 degrees
        s = math.cos(t)  # sin(theta) >= 0
        phi = math.radians((lon[i] + 180.0) % 360.0)
        c1 = math.cos(phi)
        s1 = math.sin(phi)
        cm = 1.0  # cos(m phi)
        sm = 0.0  # sin(m phi)
        pmm = p00
        for m in range(L):
            if m > 0:
                pmm = diag[m] * s * pmm
                cm, sm = cm * c1 - sm * s1, sm * c1 + cm * s1
            p_prev = 0.0
            p = pmm
            for l in range(m, L):
                if l > m:
                    p, p_prev = a[l, m] * (x * p - b[l, m] * p_prev), p
                centre = l * l + l
                if m == 0:
                    out[i, centre] = zonal * p
                else:
                    out[i, centre + m] = sqrt2 * p * cm
                    out[i, centre - m] = sqrt2 * p * sm


BASIS_TILE = 128  # points per tile of the column basis kernel: its inner loops run across them


@numba.njit(parallel=True, nogil=True, cache=True, fastmath=False)
def basis_columns_kernel(lon, lat, diag, a, b, zonal, tiny, out):  # pragma: no cover
    """Fill ``out`` (L*L, N) with the basis of N points, one column per point.

    The recursion of :func:`_basis_kernel` (the same operations in the same order), for a
    tile of points at a time with the points innermost: the loops vectorise across points,
    and each feature row is written contiguously, ready for ``W_0 @ out``. Values below
    ``tiny`` in magnitude (the smallest normal number of ``out``'s dtype) are stored as 0:
    subnormal operands slow the first GEMM down by ~1.4x on x86, and at float32 the change
    is below 1.2e-38. The encoder (:meth:`~xsatclip.model.LocationEncoder.encode`) runs it.
    """
    n = out.shape[1]
    L = diag.shape[0]
    sqrt2 = math.sqrt(2.0)
    p00 = 1.0 / math.sqrt(4.0 * math.pi)
    for tile in numba.prange((n + BASIS_TILE - 1) // BASIS_TILE):
        lo = tile * BASIS_TILE
        w = min(BASIS_TILE, n - lo)
        x, s = np.empty(w), np.empty(w)  # cos(theta), sin(theta)
        c1, s1 = np.empty(w), np.empty(w)  # cos(phi), sin(phi)
        cm, sm = np.ones(w), np.zeros(w)  # cos(m phi), sin(m phi)
        pmm, p, p_prev = np.full(w, p00), np.empty(w), np.empty(w)
        for k in range(w):
            t = math.radians(lat[lo + k])
            x[k] = -math.sin(t)
            s[k] = math.cos(t)
            phi = math.radians((lon[lo + k] + 180.0) % 360.0)
            c1[k] = math.cos(phi)
            s1[k] = math.sin(phi)
        for m in range(L):
            if m > 0:
                for k in range(w):
                    pmm[k] = diag[m] * s[k] * pmm[k]
                    c, sn = cm[k], sm[k]
                    cm[k] = c * c1[k] - sn * s1[k]
                    sm[k] = sn * c1[k] + c * s1[k]
            p[:] = pmm
            p_prev[:] = 0.0
            for l in range(m, L):
                if l > m:
                    alm, blm = a[l, m], b[l, m]
                    for k in range(w):
                        q = p[k]
                        p[k] = alm * (x[k] * q - blm * p_prev[k])
                        p_prev[k] = q
                centre = l * l + l
                if m == 0:
                    row = out[centre, lo:lo + w]
                    for k in range(w):
                        v = zonal * p[k]
                        row[k] = 0.0 if abs(v) < tiny else v
                else:
                    plus, minus = out[centre + m, lo:lo + w], out[centre - m, lo:lo + w]
                    for k in range(w):
                        v = sqrt2 * p[k]
                        c, sn = v * cm[k], v * sm[k]
                        plus[k] = 0.0 if abs(c) < tiny else c
                        minus[k] = 0.0 if abs(sn) < tiny else sn
        for k in range(w):
            if math.isnan(lon[lo + k]) or math.isnan(lat[lo + k]):
                out[:, lo + k] = math.nan


def spherical_harmonics(
    lon,
    lat,
    L: int,
    *,
    convention: str = "satclip",
    numerics: str = "exact",
    dtype=np.float32,
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
    if not (isinstance(L, (int, np.integer)) and L >= 1):
        raise ValueError(f"L must be a positive integer, got {L!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    scale = zonal_scale(convention)
    lon, lat = validate_lonlat(lon, lat)
    if numerics == "exact":
        out = np.empty((lon.size, L * L), dtype=dtype)
        _basis_kernel(lon, lat, *legendre_recursion_coefficients(int(L)), scale, out)
        return out
    if numerics == "reference":
        from ._reference_basis import reference_basis

        return reference_basis(lon, lat, int(L), scale).astype(dtype, copy=False)
    raise ValueError(f"numerics={numerics!r} is not known; choose one of {list(NUMERICS)}")
