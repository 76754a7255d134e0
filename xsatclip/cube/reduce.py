"""Numeric kernels of the derived products, on plain arrays: 2 x 2 means (overviews) and the
principal components, projection and stretch of the preview."""

from __future__ import annotations

import numpy as np

STRETCH_PERCENTILES = (2.0, 98.0)
PREVIEW_FORMULA = (
    "code = 1 + clip(rint((components @ (x - mean) - lower) / (upper - lower) * 254), 0, 254)"
    " in float64 (rint: round half to even), x = the cell's decoded float32 embedding; code 0 ="
    " no data (a NaN embedding)"
)


def mean_2x2(values: np.ndarray) -> np.ndarray:
    """NaN-aware mean of each 2 x 2 block of the last two axes: ``(..., 2m, 2n)`` float32 ->
    ``(..., m, n)`` float32.

    A float32 sum of the four cells, ``((a + b) + c) + d``, divided by the number of finite
    ones (4 when none is NaN, so the same as times 0.25); NaN where all four are NaN. The
    float32 sum is within a few ulp of a float64 mean and several times faster.
    """
    values = np.asarray(values, np.float32)
    rows, cols = values.shape[-2] // 2 * 2, values.shape[-1] // 2 * 2
    v = values[..., :rows, :cols]
    quads = (v[..., 0::2, 0::2], v[..., 0::2, 1::2], v[..., 1::2, 0::2], v[..., 1::2, 1::2])
    total = ((quads[0] + quads[1]) + quads[2]) + quads[3]
    if not np.isnan(total).any():
        return total * np.float32(0.25)
    finite = [~np.isnan(q) for q in quads]
    count = (finite[0].astype(np.float32) + finite[1]) + finite[2] + finite[3]
    zeroed = [np.where(f, q, np.float32(0)) for f, q in zip(finite, quads, strict=True)]
    total = ((zeroed[0] + zeroed[1]) + zeroed[2]) + zeroed[3]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.float32(np.nan)).astype(np.float32)


def fit_components(sample: np.ndarray, k: int = 3
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal components of ``sample`` (n, d): ``mean`` (d,), ``components`` (k, d) and
    their explained variance ratios (k,), float64.

    Eigenvectors of the (d, d) covariance (far cheaper than an SVD of the sample for n >> d),
    largest eigenvalue first; each component's sign makes its largest-magnitude weight
    positive, so a fit is reproducible.
    """
    sample = np.asarray(sample, np.float64)
    mean = sample.mean(axis=0)
    eigenvalues, vectors = np.linalg.eigh(np.cov(sample, rowvar=False))
    order = np.argsort(eigenvalues)[::-1][:k]
    components = vectors[:, order].T
    pivots = np.abs(components).argmax(axis=1)
    components *= np.sign(components[np.arange(len(order)), pivots])[:, None]
    total = eigenvalues.clip(min=0).sum()
    ratio = eigenvalues[order].clip(min=0) / (total if total > 0 else 1.0)
    return mean, components, ratio


def project(values: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """``components @ (x - mean)`` of every cell of ``values`` (d, ...): (k, ...) float64."""
    values = np.asarray(values, np.float64)
    flat = values.reshape(values.shape[0], -1) - mean[:, None]
    return (components @ flat).reshape((components.shape[0], *values.shape[1:]))


def stretch_bounds(projected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper stretch bounds (k,): the 2nd and 98th percentiles of each row of
    ``projected`` (k, n), ignoring NaN; an empty range widens to one unit."""
    lower, upper = np.nanpercentile(projected, STRETCH_PERCENTILES, axis=1)
    upper = np.where(upper > lower, upper, lower + 1.0)
    return lower, upper


def to_codes(projected: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """uint8 codes 1..255 of ``projected`` (k, ...) by :data:`PREVIEW_FORMULA`; NaN -> 0."""
    shape = (-1,) + (1,) * (projected.ndim - 1)
    scaled = (projected - lower.reshape(shape)) / (upper - lower).reshape(shape) * 254
    with np.errstate(invalid="ignore"):
        codes = 1 + np.clip(np.rint(scaled), 0, 254)
    return np.where(np.isnan(projected), 0, codes).astype(np.uint8)
