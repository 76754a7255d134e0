"""Spatially blocked cross-validation and the ridge probe (module doc of
:mod:`xsatclip.evaluation.suite`)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import EvaluationError
from .tasks import CLASSIFICATION, REGRESSION, TaskData

# Ridge penalty per training point (alpha = lambda * n_train) on standardised features.
PENALTY_GRID = tuple(10.0 ** np.arange(-5, 3))


def spatial_blocks(lon, lat, block_deg: float) -> np.ndarray:
    """Block id (N,) int64 of each point: roughly equal-area cells of about ``block_deg``
    degrees on a side (``block_deg``-high latitude bands, each cut into
    ``round(360 cos(band centre) / block_deg)`` longitude cells, at least one)."""
    if not block_deg > 0:
        raise EvaluationError(f"block_deg must be positive, got {block_deg!r}")
    lon, lat = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    bands = int(np.ceil(180.0 / block_deg))
    band_edges = np.minimum(np.arange(bands + 1) * block_deg, 180.0) - 90.0
    centres = np.radians((band_edges[:-1] + band_edges[1:]) / 2)
    cells = np.maximum(1, np.round(360.0 * np.cos(centres) / block_deg)).astype(np.int64)
    first_cell = np.concatenate([[0], np.cumsum(cells)[:-1]])
    band = np.clip(((lat + 90.0) // block_deg).astype(np.int64), 0, bands - 1)
    column = (np.mod(lon + 180.0, 360.0) / 360.0 * cells[band]).astype(np.int64)
    return first_cell[band] + np.minimum(column, cells[band] - 1)


def blocked_folds(blocks: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold (N,) in ``0 .. folds-1`` of each point: whole blocks are dealt in a random order
    (from ``rng``), each to the fold holding the fewest points so far."""
    block_ids, block_sizes = np.unique(blocks, return_counts=True)
    if block_ids.size < folds:
        raise EvaluationError(
            f"the points fall in {block_ids.size} spatial block(s), fewer than folds={folds}: "
            f"use a smaller block_deg or more points"
        )
    fold_of_block = np.empty(block_ids.size, dtype=np.int64)
    fold_sizes = np.zeros(folds, dtype=np.int64)
    for index in rng.permutation(block_ids.size):
        fold = int(np.argmin(fold_sizes))
        fold_of_block[index] = fold
        fold_sizes[fold] += block_sizes[index]
    return fold_of_block[np.searchsorted(block_ids, blocks)]



def _encode_targets(target: np.ndarray, kind: str, train: np.ndarray):
    """Least-squares targets of the training rows, (n_train, K), and the classes (or None)."""
    if kind == REGRESSION:
        return target[train, None].astype(np.float64), None
    classes, codes = np.unique(target[train], return_inverse=True)
    return np.eye(classes.size)[codes], classes


def _score(kind: str, truth: np.ndarray, outputs: np.ndarray, classes) -> float:
    """Accuracy (argmax of the outputs) or R² of a test set."""
    if kind == CLASSIFICATION:
        return float(np.mean(classes[np.argmax(outputs, axis=1)] == truth))
    residual = np.sum((truth - outputs[:, 0]) ** 2)
    total = np.sum((truth - truth.mean()) ** 2)
    return float(1.0 - residual / total) if total > 0 else float("nan")


def ridge_outputs(x_train, y_train, x_test, penalties: Iterable[float]) -> list[np.ndarray]:
    """Ridge predictions on ``x_test`` (n_test, K), one per penalty ``alpha``.

    Features are standardised with the training rows' mean and std (constant columns are
    only centred); the intercept is not penalised. One eigendecomposition of the Gram matrix
    (of the features when n_train >= F, else of the points) serves every penalty.
    """
    mean = x_train.mean(axis=0)
    scale = x_train.std(axis=0)
    scale[scale == 0] = 1.0
    a = (x_train - mean) / scale
    b = (x_test - mean) / scale
    y_mean = y_train.mean(axis=0)
    y_centred = y_train - y_mean
    if a.shape[0] >= a.shape[1]:  # primal: w = V diag(1/(s+alpha)) V' A' y
        eigval, eigvec = np.linalg.eigh(a.T @ a)
        test_proj = b @ eigvec
        rhs = eigvec.T @ (a.T @ y_centred)
    else:  # dual: w = A' U diag(1/(s+alpha)) U' y
        eigval, eigvec = np.linalg.eigh(a @ a.T)
        test_proj = (b @ a.T) @ eigvec
        rhs = eigvec.T @ y_centred
    eigval = np.maximum(eigval, 0.0)
    return [test_proj @ (rhs / (eigval + alpha)[:, None]) + y_mean for alpha in penalties]


def probe_score(features: np.ndarray, data: TaskData, train: np.ndarray, test: np.ndarray,
                inner_fold: np.ndarray) -> float:
    """Score on ``test`` of the ridge probe fit on ``train`` (boolean masks over the rows);
    the penalty maximises the mean score over the blocked inner folds (``inner_fold``: fold
    of each training row); ties go to the larger penalty."""
    x_train, y_train = features[train], data.target[train]
    inner_scores = np.zeros(len(PENALTY_GRID))
    for fold in np.unique(inner_fold):
        fit, held_out = inner_fold != fold, inner_fold == fold
        targets, classes = _encode_targets(y_train, data.kind, fit)
        outputs = ridge_outputs(x_train[fit], targets, x_train[held_out],
                                [p * fit.sum() for p in PENALTY_GRID])
        inner_scores += [_score(data.kind, y_train[held_out], out, classes) for out in outputs]
    best = len(PENALTY_GRID) - 1 - int(np.nanargmax(inner_scores[::-1]))
    targets, classes = _encode_targets(data.target, data.kind, train)
    (test_outputs,) = ridge_outputs(x_train, targets, features[test],
                                    [PENALTY_GRID[best] * train.sum()])
    return _score(data.kind, data.target[test], test_outputs, classes)


