"""Feature sets: maps from points (lon, lat degrees) to feature matrices, by name."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable

import numpy as np

from ..errors import EvaluationError, ModelNotFoundError


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


def _model_features(model) -> FeatureSet:
    return FeatureSet(model.identity.name, model.encode)


def resolve_features(spec) -> FeatureSet:
    """The feature set ``spec`` names.

    ``"lonlat"`` (2: degrees), ``"cartesian"`` (3: unit vector), ``"sh-L"`` (``L*L``: the
    bare SatCLIP spherical-harmonic basis), a loaded encoder, or any source
    :func:`~xsatclip.load_model` accepts (model name such as ``"geoclip"``, checkpoint file,
    model directory, Hub id): the model's embeddings.
    """
    from ..model.base import Encoder

    if isinstance(spec, Encoder):
        return _model_features(spec)
    if not isinstance(spec, (str, os.PathLike)):
        raise EvaluationError(f"features: {spec!r} is neither a name, a path nor a "
                              f"loaded encoder")
    text = os.fspath(spec)
    if text == "lonlat":
        return FeatureSet(text, _lonlat)
    if text == "cartesian":
        return FeatureSet(text, _cartesian)
    match = re.fullmatch(r"sh-(\d+)", text)
    if match:
        from ..harmonics import spherical_harmonics

        level = int(match.group(1))
        if level < 1:
            raise EvaluationError(f"features: {text!r} needs a level L >= 1 (sh-L)")
        return FeatureSet(text, lambda lon, lat: spherical_harmonics(lon, lat, level,
                                                                     dtype=np.float64))
    from ..model import resolve_model

    try:
        model = resolve_model(text)
    except ModelNotFoundError as exc:
        raise EvaluationError(
            f"features: {text!r} is not a feature set (lonlat, cartesian, sh-L, geoclip) "
            f"and not a loadable model: {exc}"
        ) from None
    return _model_features(model)


