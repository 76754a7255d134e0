"""Numba kernels of the normalised associated Legendre recursion: the SH basis of points.

``p(l, m)`` is the fully normalised associated Legendre function without the Condon-Shortley
phase, evaluated at ``x = cos(theta)`` with ``theta = radians(lat + 90)``. One O(L^2) sweep
per point, in float64. :mod:`xsatclip.harmonics.basis` documents the feature layout.
"""

from __future__ import annotations

import math
from functools import cache

import numba
import numpy as np


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
def basis_rows_kernel(lon, lat, diag, a, b, zonal, out):  # pragma: no cover - compiled
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

    The recursion of :func:`basis_rows_kernel` (the same operations in the same order), for a
    tile of points at a time with the points innermost: the loops vectorise across points,
    and each feature row is written contiguously, ready for ``W_0 @ out``. Values below
    ``tiny`` in magnitude (the smallest normal number of ``out``'s dtype) are stored as 0:
    subnormal operands slow the first GEMM down on x86 (benchmarks/README.md), and at
    float32 the change is below 1.2e-38. The encoder
    (:meth:`~xsatclip.model.LocationEncoder.encode`) runs it.
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

