"""Index maths of the separable first layer on rectilinear grids.

A harmonic of degree ``l`` and order ``m`` is a Legendre part of the latitude times a
trigonometric part of the longitude, so for a grid the first SIREN layer folds per row:
``W_0 Y(i, j) = sum_m (sum_l W_0[:, (l, m)] A_lm(lat_i)) T_m(lon_j)``
(:meth:`xsatclip.model.encoder.LocationEncoder.encode_grid`). Orders are indexed
``k = m + L - 1`` in ``0 .. 2L - 2``.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def fold_columns(L: int) -> tuple[np.ndarray, np.ndarray]:
    """Basis columns for the separable fold, (2L - 1, L) int64 each: row k is m = k - (L - 1),
    its degrees l = |m| .. L - 1 then padding. The first holds the column of ``A_{l,|m|}``
    (padding: column 0), the second ``W_0``'s column of (l, m) (padding: L*L, a zero column)."""
    legendre = np.zeros((2 * L - 1, L), dtype=np.int64)
    weight = np.full((2 * L - 1, L), L * L, dtype=np.int64)
    for k, m in enumerate(range(-(L - 1), L)):
        degree = np.arange(abs(m), L)
        legendre[k, : degree.size] = degree * degree + degree + abs(m)
        weight[k, : degree.size] = degree * degree + degree + m
    return legendre, weight


def column_trig(lon: np.ndarray, L: int) -> np.ndarray:
    """``T[j, k]`` = sin(|m| phi_j), 1, cos(m phi_j) for m = k - (L - 1) <, =, > 0, with
    ``phi = radians(lon + 180)``: (nx, 2L - 1) float64; NaN rows for NaN longitudes."""
    phi = np.radians(np.mod(lon + 180.0, 360.0))[:, None]
    m = np.arange(-(L - 1), L)
    trig = np.where(m < 0, np.sin(-m * phi), np.cos(m * phi))
    trig[np.isnan(lon)] = np.nan
    return trig
