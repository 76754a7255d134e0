"""Nonlinear probes beside the ridge probe: a small MLP on the features, and k-nearest
neighbours on the raw coordinates (a baseline that needs no features at all).

Both take the same arguments as :func:`~xsatclip.evaluation.probes.probe_score` and score
with the same metric (accuracy or R²) on the same blocked folds.
"""

from __future__ import annotations

import numpy as np

from .probes import _score
from .tasks import CLASSIFICATION, TaskData, unit_vectors

MLP_HIDDEN = 64
MLP_PENALTY = 1e-3  # L2 penalty (scikit-learn's alpha) on standardised features
MLP_MAX_EPOCHS = 200
NEIGHBOURS_GRID = (1, 3, 10, 30)


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
    scale[scale == 0] = 1.0
    return (x_train - mean) / scale, (x_test - mean) / scale


def mlp_score(features: np.ndarray, data: TaskData, train: np.ndarray, test: np.ndarray,
              inner_fold: np.ndarray, seed: int = 0) -> float:
    """Score on ``test`` of an MLP fit on ``train``: standardised features, one hidden layer
    of :data:`MLP_HIDDEN` ReLU units, L2 penalty :data:`MLP_PENALTY`, Adam with early
    stopping on a random 10 % of the training rows (at most :data:`MLP_MAX_EPOCHS` epochs);
    regression targets standardised. Fixed hyperparameters (``inner_fold`` is unused: a
    search would multiply the cost by the grid's size), seeded by ``seed``."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    x_train, x_test = _standardise(features[train], features[test])
    common = dict(hidden_layer_sizes=(MLP_HIDDEN,), alpha=MLP_PENALTY,
                  max_iter=MLP_MAX_EPOCHS, early_stopping=True, random_state=seed)
    truth = data.target[test]
    if data.kind == CLASSIFICATION:
        classifier = MLPClassifier(**common).fit(x_train, data.target[train])
        return float(np.mean(classifier.predict(x_test) == truth))
    y = data.target[train]
    y_mean, y_std = y.mean(), y.std() or 1.0
    regressor = MLPRegressor(**common).fit(x_train, (y - y_mean) / y_std)
    predicted = regressor.predict(x_test) * y_std + y_mean
    return _score(data.kind, truth, predicted[:, None], None)


def _knn_predict(points_train, y_train, points_test, k: int, kind: str):
    """Majority label (classification) or mean (regression) of the ``k`` nearest training
    points (chord distance = great-circle order)."""
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    k = min(k, len(points_train))
    model = (KNeighborsClassifier(k) if kind == CLASSIFICATION else KNeighborsRegressor(k))
    return model.fit(points_train, y_train).predict(points_test)


def knn_score(data: TaskData, train: np.ndarray, test: np.ndarray,
              inner_fold: np.ndarray) -> float:
    """Score on ``test`` of k-NN on the points' unit vectors (great-circle neighbours), with
    ``k`` from :data:`NEIGHBOURS_GRID` chosen by the blocked inner folds (ties: larger k)."""
    points = unit_vectors(data.lon, data.lat)
    p_train, y_train = points[train], data.target[train]

    def score(truth, predicted) -> float:
        if data.kind == CLASSIFICATION:
            return float(np.mean(predicted == truth))
        return _score(data.kind, truth, np.asarray(predicted, np.float64)[:, None], None)

    inner = np.zeros(len(NEIGHBOURS_GRID))
    for fold in np.unique(inner_fold):
        fit, held_out = inner_fold != fold, inner_fold == fold
        inner += [score(y_train[held_out], _knn_predict(p_train[fit], y_train[fit],
                                                        p_train[held_out], k, data.kind))
                  for k in NEIGHBOURS_GRID]
    best = NEIGHBOURS_GRID[len(NEIGHBOURS_GRID) - 1 - int(np.nanargmax(inner[::-1]))]
    return score(data.target[test], _knn_predict(p_train, y_train, points[test], best,
                                                 data.kind))
