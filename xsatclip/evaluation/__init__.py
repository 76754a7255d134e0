"""The evaluation suite: ridge and MLP probes of location features on real labelled data under
spatially blocked cross-validation (:mod:`.suite` documents the protocol)."""

from .features import FeatureSet, resolve_features
from .suite import (
    DEFAULT_BLOCK_DEG,
    DEFAULT_FEATURES,
    DEFAULT_N_POINTS,
    DEFAULT_TASKS,
    PROBES,
    evaluate,
    format_table,
)
from .tasks import TASKS, TaskData

__all__ = [
    "DEFAULT_BLOCK_DEG",
    "DEFAULT_FEATURES",
    "DEFAULT_N_POINTS",
    "DEFAULT_TASKS",
    "PROBES",
    "TASKS",
    "FeatureSet",
    "TaskData",
    "evaluate",
    "format_table",
    "resolve_features",
]
