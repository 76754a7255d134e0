"""Numeric kernels of geolocation and retrieval (numpy arrays in, numpy arrays out).

Similarities are cosine similarities computed in float64. Rows with a non-finite value or a
zero norm are *invalid*: they get NaN similarities and never rank.
"""

from __future__ import annotations

import numpy as np

# Elements of the (rows x gallery) similarity matrix held at once by retrieval_mean
# (2**22 float64 = 32 MiB).
SIMILARITY_BATCH_ELEMENTS = 2**22


def unit_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (n, D) scaled to unit length (float64; invalid rows zero) and which are valid."""
    rows = np.asarray(rows, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.linalg.norm(rows, axis=-1)
    valid = np.isfinite(rows).all(axis=-1) & np.isfinite(norms) & (norms > 0)
    unit = np.zeros_like(rows)
    unit[valid] = rows[valid] / norms[valid, None]
    return unit, valid


def cosine_logits(block: np.ndarray, queries: np.ndarray, multiplier: float) -> np.ndarray:
    """``multiplier`` x cosine similarity of every row of ``block`` (..., D) with every unit
    query (N, D): shape (..., N) float64, NaN for invalid rows."""
    rows, valid = unit_rows(block.reshape(-1, block.shape[-1]))
    out = np.full((rows.shape[0], queries.shape[0]), np.nan)
    out[valid] = multiplier * (rows[valid] @ queries.T)
    return out.reshape(*block.shape[:-1], queries.shape[0])


def top_k_indices(values: np.ndarray, k: int) -> np.ndarray:
    """Indices (k,) of the ``k`` largest of ``values`` (n,), largest first; equal values in
    ascending index order. NaN values never rank: ``values`` must hold at least ``k``
    numbers. O(n) plus a sort of the candidates."""
    part = np.argpartition(-values, k - 1)[:k]  # NaN sorts last
    candidates = np.flatnonzero(values >= values[part].min())  # the k, and any tied
    order = np.lexsort((candidates, -values[candidates]))
    return candidates[order][:k]


def needed_area(probability: np.ndarray, true_index: np.ndarray,
                area: np.ndarray) -> np.ndarray:
    """Area of the cells ranked at or above each query's true cell.

    ``probability`` (Q, n), ``true_index`` (Q,) flat index of each query's true cell (-1:
    not on the map), ``area`` (n,). Cells rank by probability, higher first; equal
    probabilities rank in index order. Returns (Q,) float64: the summed area of the cells
    of higher probability and of the equally probable cells with index <= the true cell's;
    ``inf`` when the true cell is not on the map or has no probability (NaN).
    """
    out = np.full(probability.shape[0], np.inf)
    index = np.arange(probability.shape[1])
    for q, t in enumerate(true_index):
        if t < 0 or not np.isfinite(probability[q, t]):
            continue
        p, p_true = probability[q], probability[q, t]
        ranked = (p > p_true) | ((p == p_true) & (index <= t))
        out[q] = area[ranked].sum()
    return out


def retrieval_mean(rows: np.ndarray, gallery_locations: np.ndarray,
                   gallery_images: np.ndarray, k: int, temperature: float) -> np.ndarray:
    """Softmax-weighted mean of the image embeddings of each row's ``k`` most similar
    gallery locations.

    ``rows`` (n, D) location embeddings, ``gallery_locations`` (G, D) unit location
    embeddings, ``gallery_images`` (G, Di). For a row with cosine similarities ``s_j`` to its
    k nearest gallery locations the weights are ``softmax(s_j / temperature)``. Returns
    (n, Di) float64; NaN rows for invalid input rows. Rows are processed in batches that
    hold at most :data:`SIMILARITY_BATCH_ELEMENTS` similarities.
    """
    unit, valid = unit_rows(rows)
    out = np.full((unit.shape[0], gallery_images.shape[1]), np.nan)
    images = np.asarray(gallery_images, dtype=np.float64)
    step = max(1, SIMILARITY_BATCH_ELEMENTS // gallery_locations.shape[0])
    chosen = np.flatnonzero(valid)
    for start in range(0, chosen.size, step):
        batch = chosen[start:start + step]
        similarity = unit[batch] @ gallery_locations.T  # (b, G)
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]  # (b, k)
        scores = np.take_along_axis(similarity, nearest, axis=1) / temperature
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        out[batch] = np.einsum("bk,bkd->bd", weights, images[nearest])
    return out
