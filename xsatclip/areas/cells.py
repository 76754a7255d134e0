"""Exact overlap of polygons with the cells of a rectilinear grid (Numba), by Green's theorem.

For a region ``D``, ``area(D) = -contour integral over the boundary of D of f(y) dx`` with
``f' = g``, where ``g(y)`` is the area density: ``cos(lat)`` on the sphere (``f = sin``, x and
y in radians) or ``1`` in the plane (``f(y) = y``). Take the region ``polygon & cell``, cell
``[x0, x1] x [y0, y1]``, and ``f(y) - f(y0)``: the cell's bottom edge then adds nothing, its
sides (``dx = 0``) add nothing, and its top edge adds ``(f(y1) - f(y0))`` times the length
of that edge inside the polygon. That length is minus the sum of ``dx`` along the polygon's
boundary above the edge in the cell's column (the boundary of the part of the column above
the edge is closed). So each cell's overlap needs only the polygon's edges, cut where they
cross grid lines: each piece of edge lies in one cell and adds its integral there and its
``dx`` to the cells below. No clipping, no point-in-polygon test, exact for edges straight in
(x, y): the same closed forms as :mod:`.spherical`.

Rings must be oriented: shells counter-clockwise, holes clockwise. A piece of edge lying on a
grid line may be counted in either neighbouring cell: both give the same areas.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .spherical import SERIES_BELOW

DROP_BELOW = 1e-12  # overlaps below this fraction of their cell's area are rounding noise


@numba.njit(nogil=True, cache=True)
def _sinc_minus_one(h):  # pragma: no cover - compiled
    if abs(h) < SERIES_BELOW:
        h2 = h * h
        return -h2 / 6 * (1 - h2 / 20 * (1 - h2 / 42 * (1 - h2 / 72)))
    return math.sin(h) / h - 1


@numba.njit(nogil=True, cache=True)
def _edge_integral(xa, ya, xb, yb, bottom, spherical):  # pragma: no cover - compiled
    """Integral of ``f(y) - f(bottom)`` dx along the straight piece (xa, ya) -> (xb, yb);
    degrees in, radians out on the sphere."""
    if spherical:
        quarter = math.radians(((ya - bottom) + (yb - bottom)) / 4)
        ref = math.radians(bottom)
        half = math.radians((yb - ya) / 2)
        relative = (2 * math.cos(ref + quarter) * math.sin(quarter)
                    + math.sin(ref + 2 * quarter) * _sinc_minus_one(half))
        return math.radians(xb - xa) * relative
    return (xb - xa) * ((ya - bottom) + (yb - bottom)) / 2


@numba.njit(nogil=True, cache=True)
def _band(bottom, top, spherical):  # pragma: no cover - compiled
    """``f(top) - f(bottom)``."""
    if spherical:
        return 2 * math.cos(math.radians((top + bottom) / 2)) * math.sin(
            math.radians((top - bottom) / 2))
    return top - bottom


@numba.njit(nogil=True, cache=True)
def _cell_of(edges, value, low, high):  # pragma: no cover - compiled
    """Index of the cell of ascending ``edges`` holding ``value``, clamped to [low, high]."""
    i = np.searchsorted(edges, value, side="right") - 1
    return min(max(i, low), high)


@numba.njit(nogil=True, cache=True)
def _crossed(edges, a, b):  # pragma: no cover - compiled
    """Grid lines strictly between ``a`` and ``b``, in order from ``a``: first index, stop
    index (exclusive), step."""
    if b > a:
        return np.searchsorted(edges, a, "right"), np.searchsorted(edges, b, "left"), 1
    if b < a:
        return np.searchsorted(edges, a, "left") - 1, np.searchsorted(edges, b, "right") - 1, -1
    return 0, 0, 1


@numba.njit(nogil=True, cache=True)
def _pieces(x, y, ring_start, ring_piece, n_pieces, xe, ye, spherical):  # pragma: no cover
    """(piece, row, col, area) of every cell overlapped; area in the units of the integrand
    (radians^2 on the sphere, coordinate units^2 in the plane)."""
    n_rings = ring_start.size - 1
    nx, ny = xe.size - 1, ye.size - 1
    # bounding rows/columns of each piece
    lo_r = np.full(n_pieces, ny, np.int64)
    hi_r = np.full(n_pieces, -1, np.int64)
    lo_c = np.full(n_pieces, nx, np.int64)
    hi_c = np.full(n_pieces, -1, np.int64)
    for k in range(n_rings):
        p = ring_piece[k]
        for v in range(ring_start[k], ring_start[k + 1]):
            r = _cell_of(ye, y[v], 0, ny - 1)
            c = _cell_of(xe, x[v], 0, nx - 1)
            lo_r[p], hi_r[p] = min(lo_r[p], r), max(hi_r[p], r)
            lo_c[p], hi_c[p] = min(lo_c[p], c), max(hi_c[p], c)
    size = 0
    for p in range(n_pieces):
        if hi_r[p] >= 0:
            size += (hi_r[p] - lo_r[p] + 1) * (hi_c[p] - lo_c[p] + 1)
    out_piece = np.empty(size, np.int64)
    out_row = np.empty(size, np.int64)
    out_col = np.empty(size, np.int64)
    out_area = np.empty(size)
    n_out = 0
    k = 0
    for p in range(n_pieces):
        if hi_r[p] < 0:
            continue
        r0, c0 = lo_r[p], lo_c[p]
        rows, cols = hi_r[p] - r0 + 1, hi_c[p] - c0 + 1
        integral = np.zeros((rows, cols))
        dx = np.zeros((rows, cols))
        while k < n_rings and ring_piece[k] == p:
            for v in range(ring_start[k], ring_start[k + 1] - 1):
                x1, y1, x2, y2 = x[v], y[v], x[v + 1], y[v + 1]
                # grid lines crossed strictly inside the edge, in order along it
                i, i_stop, i_step = _crossed(xe, x1, x2)
                j, j_stop, j_step = _crossed(ye, y1, y2)
                xa, ya = x1, y1
                while True:
                    tx = (xe[i] - x1) / (x2 - x1) if i != i_stop else 2.0
                    ty = (ye[j] - y1) / (y2 - y1) if j != j_stop else 2.0
                    if tx >= 2.0 and ty >= 2.0:
                        xb, yb = x2, y2
                    elif tx <= ty:
                        xb, yb = xe[i], y1 + tx * (y2 - y1)
                        i += i_step
                    else:
                        xb, yb = x1 + ty * (x2 - x1), ye[j]
                        j += j_step
                    r = _cell_of(ye, (ya + yb) / 2, r0, r0 + rows - 1) - r0
                    c = _cell_of(xe, (xa + xb) / 2, c0, c0 + cols - 1) - c0
                    integral[r, c] += _edge_integral(xa, ya, xb, yb, ye[r0 + r], spherical)
                    dx[r, c] += (xb - xa) if not spherical else math.radians(xb - xa)
                    xa, ya = xb, yb
                    if tx >= 2.0 and ty >= 2.0:
                        break
            k += 1
        for c in range(cols):
            above = 0.0  # sum of dx along the boundary above the current row
            for r in range(rows - 1, -1, -1):
                bottom, top = ye[r0 + r], ye[r0 + r + 1]
                band = _band(bottom, top, spherical)
                area = -integral[r, c] - band * above
                width = xe[c0 + c + 1] - xe[c0 + c]
                full = band * (math.radians(width) if spherical else width)
                if area > DROP_BELOW * full:
                    out_piece[n_out], out_row[n_out] = p, r0 + r
                    out_col[n_out], out_area[n_out] = c0 + c, area
                    n_out += 1
                above += dx[r, c]
    return out_piece[:n_out], out_row[:n_out], out_col[:n_out], out_area[:n_out]


def cell_overlaps(x: np.ndarray, y: np.ndarray, ring_start: np.ndarray,
                  ring_piece: np.ndarray, n_pieces: int, x_edges: np.ndarray,
                  y_edges: np.ndarray, *, spherical: bool):
    """Overlap of polygons with grid cells.

    Parameters
    ----------
    x, y : (n,) vertex coordinates of all rings one after the other, each ring closed;
        degrees (lon, lat) when ``spherical``, else any planar unit.
    ring_start : (n_rings + 1,) offsets of the rings in ``x``/``y``.
    ring_piece : (n_rings,) polygon of each ring, non-decreasing; shells counter-clockwise,
        holes clockwise.
    n_pieces : number of polygons.
    x_edges, y_edges : ascending cell edges; polygons must lie within them.
    spherical : areas on the unit sphere (steradians) instead of planar areas.

    Returns
    -------
    ``piece, row, col, area`` (m,) arrays: one entry per polygon and cell it overlaps by
    more than :data:`DROP_BELOW` of the cell's area.
    """
    return _pieces(np.ascontiguousarray(x, np.float64), np.ascontiguousarray(y, np.float64),
                   ring_start.astype(np.int64), ring_piece.astype(np.int64), int(n_pieces),
                   np.ascontiguousarray(x_edges, np.float64),
                   np.ascontiguousarray(y_edges, np.float64), bool(spherical))
