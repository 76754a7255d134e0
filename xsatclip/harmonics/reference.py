"""Spherical-harmonic basis with the reference implementation's numerics (pure numpy).

The reference SatCLIP code evaluates each harmonic as an expanded polynomial in
``x = cos(theta)`` with 15-significant-digit coefficients, in float64. That is exact to
~1e-12 at L = 10 but cancels catastrophically at high degree (errors up to ~0.6 near the
poles at L = 40). This module reproduces those numbers, errors included, from the table
built by ``tools/make_reference_tables.py`` (see there for how the rounding was pinned
down against the golden reference data): same coefficients, same term order. What is
left is the reference runtime's own ``cos``/``pow`` rounding (1 ulp here and there,
amplified by the cancellation): against the golden L = 40 basis the largest differences
are 1.2e-9 for |lat| < 30, 2.8e-4 for 30-60 and 7.8e-3 beyond; 6e-14 at L = 10.
"""

from __future__ import annotations

import functools
import importlib.resources
import math

import numpy as np

from ..errors import InvalidOptionError

_TABLE = "reference_sh_coefficients.npz"
_MAX_ELEMENTS = 1 << 20  # per (blocks x rows) work array: 8 MiB of float64


@functools.cache
def _tables() -> dict[str, np.ndarray]:
    """The coefficient table, loaded once from the ``xsatclip.data`` package."""
    resource = importlib.resources.files("xsatclip.data").joinpath(_TABLE)
    with resource.open("rb") as fh, np.load(fh, allow_pickle=False) as npz:
        tables = {name: npz[name] for name in npz.files}
    for array in tables.values():
        array.setflags(write=False)
    return tables


def reference_lmax() -> int:
    """Largest L (number of degrees) the table supports."""
    return int(_tables()["lmax"])


@functools.cache
def _plan(L: int, satclip_zonal: bool):
    """Coefficient layout for degrees ``l < L``, grouped by polynomial degree ``d = l - m``.

    Returns ``(groups, norm, m, l)``. Blocks ``(l, m)`` are ordered by ``d`` then ``l``;
    ``norm``, ``m``, ``l`` are (nb,) in that order, ``nb = L (L + 1) / 2``. ``groups`` is a
    tuple of ``(start, stop, d, coef)`` with ``coef`` of shape (d // 2 + 1, stop - start):
    row ``j`` holds the coefficient of ``x**(d - 2j)`` (leading power first) of every
    block in ``start:stop``. Blocks with equal ``d`` share their powers, so each group is
    summed with broadcasting, term by term, in the reference's left-to-right order.
    """
    t = _tables()
    offsets, table, zonal_table = t["offsets"], t["coef"], t["zonal_satclip"]
    zonal_start = np.concatenate([[0], np.cumsum([l // 2 + 1 for l in range(L)])])
    groups: list = []
    norm: list = []
    ms: list[int] = []
    ls: list[int] = []
    for d in range(L):
        start = len(ms)
        coef = np.empty((d // 2 + 1, L - d))
        for col, l in enumerate(range(d, L)):
            m = l - d
            b = l * (l + 1) // 2 + m
            if m == 0 and satclip_zonal:
                coef[:, col] = zonal_table[zonal_start[l] : zonal_start[l + 1]]
            else:
                coef[:, col] = table[offsets[b] : offsets[b + 1]]
            norm.append(t["norm"][b])
            ms.append(m)
            ls.append(l)
        coef.setflags(write=False)
        groups.append((start, len(ms), d, coef))
    arrays = [np.asarray(norm), np.asarray(ms, dtype=np.intp), np.asarray(ls, dtype=np.intp)]
    for array in arrays:
        array.setflags(write=False)
    return (tuple(groups), *arrays)


def reference_basis(lon: np.ndarray, lat: np.ndarray, L: int, zonal_scale: float) -> np.ndarray:
    """Real spherical harmonics of degree ``l < L`` evaluated the reference way.

    Args:
        lon, lat: (N,) float64, degrees (already validated by the caller). A row with a
            NaN lon or lat comes out all NaN.
        L: number of degrees; features ``l = 0..L-1``, ``m = -l..l`` at ``l*l + l + m``.
        zonal_scale: factor on the m = 0 harmonics relative to orthonormal; ``pi`` is the
            SatCLIP convention (uses the reference's own pi-folded rounded coefficients),
            1.0 gives orthonormal.

    Returns:
        (N, L*L) float64.

    Raises:
        InvalidOptionError: if ``L`` is not in ``1 .. reference_lmax()``.
    """
    lmax = reference_lmax()
    if not 1 <= L <= lmax:
        raise InvalidOptionError(
            f"L={L} is outside the reference coefficient table's range 1 <= L <= {lmax}"
        )
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    satclip_zonal = float(zonal_scale) == math.pi
    groups, norm, ms, ls = _plan(L, satclip_zonal)
    nb = norm.size
    zonal = ms == 0
    pos = np.flatnonzero(~zonal)
    col_zonal = ls[zonal] * ls[zonal] + ls[zonal]
    col_cos = ls[pos] * ls[pos] + ls[pos] + ms[pos]
    col_sin = ls[pos] * ls[pos] + ls[pos] - ms[pos]
    orders = np.arange(L, dtype=np.float64)

    n = lon.shape[0]
    out = np.empty((n, L * L), dtype=np.float64)
    rows = max(1, min(4096, _MAX_ELEMENTS // nb))
    # Work is done feature-major, (features, points), so gathers and scatters move
    # contiguous rows; the elementwise arithmetic is the same either way.
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        phi = np.radians(lon[start:stop] + 180.0)
        theta = np.radians(lat[start:stop] + 90.0)
        x = np.cos(theta)
        xpow = x ** orders[:, None]  # (L, n): x**k by pow, like the expanded form
        if L > 3:  # the reference's runtime computes the cube as a product, not by pow
            xpow[3] = x * x * x
        poly = np.empty((nb, stop - start))
        for g0, g1, d, coef in groups:
            acc = coef[0][:, None] * xpow[d]
            for j in range(1, coef.shape[0]):  # left to right, leading power first
                acc += coef[j][:, None] * xpow[d - 2 * j]
            poly[g0:g1] = acc
        sin_m = (1.0 - x * x) ** (orders[:, None] / 2.0)  # (L, n): (1 - x^2)^(m/2)
        value = norm[:, None] * sin_m[ms] * poly
        if not satclip_zonal:
            value[zonal] *= zonal_scale
        m_phi = orders[:, None] * phi  # (L, n): m * phi
        block = np.empty((L * L, stop - start))
        block[col_zonal] = value[zonal]
        block[col_cos] = value[pos] * np.cos(m_phi)[ms[pos]]
        block[col_sin] = value[pos] * np.sin(m_phi)[ms[pos]]
        out[start:stop] = block.T
    # x**0 and NaN**0 are 1, so Y_0^0 (and m = 0 with a NaN lon) would stay finite.
    out[np.isnan(lon) | np.isnan(lat)] = np.nan
    return out
