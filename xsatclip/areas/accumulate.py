"""Weighted sums of embedding vectors per polygon, block by block (Numba), and the statistics
made from them.

Per polygon ``g`` the running state is ``total[g]`` (sum of weights), ``count[g]`` (cells),
``shift[g]`` (the first vector seen) and the weighted sums of ``v - shift`` and its square;
shifting keeps the variance free of cancellation when the spread is small beside the mean.
Cells whose vector holds a NaN or an infinity are left out.
"""

from __future__ import annotations

import numba
import numpy as np


class Sums:
    """Running sums for ``n`` polygons and ``size``-long vectors (float64)."""

    def __init__(self, n: int, size: int) -> None:
        self.total = np.zeros(n)
        self.count = np.zeros(n, np.int64)
        self.shift = np.zeros((n, size))
        self.first = np.zeros((n, size))
        self.second = np.zeros((n, size))

    def add(self, values: np.ndarray, cell: np.ndarray, owner: np.ndarray,
            weight: np.ndarray) -> None:
        """Add ``weight * values[cell]`` to polygon ``owner`` for each entry; ``values``
        (cells, size) float32 or float64."""
        _accumulate(np.ascontiguousarray(values), cell.astype(np.int64),
                    owner.astype(np.int64), weight.astype(np.float64), self.total, self.count,
                    self.shift, self.first, self.second)

    def mean(self) -> np.ndarray:
        """(n, size) weighted means; NaN for polygons without cells."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count[:, None] > 0,
                            self.shift + self.first / self.total[:, None], np.nan)

    def std(self) -> np.ndarray:
        """(n, size) weighted population standard deviations; NaN without cells."""
        with np.errstate(invalid="ignore", divide="ignore"):
            centred = self.first / self.total[:, None]
            variance = np.maximum(self.second / self.total[:, None] - centred**2, 0.0)
            return np.where(self.count[:, None] > 0, np.sqrt(variance), np.nan)


@numba.njit(nogil=True, cache=True)
def _accumulate(values, cell, owner, weight, total, count, shift, first,
                second):  # pragma: no cover - compiled
    size = values.shape[1]
    for k in range(cell.size):
        row = values[cell[k]]
        finite = True
        for e in range(size):
            if not np.isfinite(row[e]):
                finite = False
                break
        if not finite or weight[k] <= 0:
            continue
        g, w = owner[k], weight[k]
        if count[g] == 0:
            for e in range(size):
                shift[g, e] = row[e]
        total[g] += w
        count[g] += 1
        for e in range(size):
            d = row[e] - shift[g, e]
            first[g, e] += w * d
            second[g, e] += w * d * d
