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


# ``range:PATH``: a model's embeddings with RANGE retrieval from the gallery at PATH.
RANGE_PREFIX = "range:"
RANGE_K = 10


def _range_features(path: str) -> FeatureSet:
    """``[e, r]``: the embedding ``e`` of the gallery's own location model beside the
    retrieved image embedding ``r`` (:func:`~xsatclip.geolocation.augment`, ``k``
    :data:`RANGE_K`, concat), named ``MODEL+range``. The gallery (a
    :func:`~xsatclip.geolocation.build_gallery` Dataset saved as Zarr or netCDF) records
    its location model's source and weights sha256, which must match."""
    import xarray as xr

    from ..geolocation import augment
    from ..model import resolve_model

    try:  # a Zarr store is a directory; its metadata need not be consolidated
        opener = (xr.open_zarr(path, consolidated=False) if os.path.isdir(path)
                  else xr.open_dataset(path))
        with opener as opened:
            gallery = opened.load()
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"features: cannot read the gallery {path!r} of "
                              f"{RANGE_PREFIX}{path}: {exc}") from None
    source = gallery.attrs.get("model_source")
    if source is None:
        raise EvaluationError(f"features: the gallery {path!r} records no location model "
                              "(attr 'model_source'); build it with "
                              "xsatclip.geolocation.build_gallery and a loaded encoder")
    model = resolve_model(source, sha256=gallery.attrs.get("model_sha256"),
                          made_by=f"the gallery {path} was made with")
    return FeatureSet(f"{model.identity.name}+range",
                      lambda lon, lat: augment(model.encode(lon, lat), gallery, k=RANGE_K))


def resolve_features(spec) -> FeatureSet:
    """The feature set ``spec`` names.

    ``"lonlat"`` (2: degrees), ``"cartesian"`` (3: unit vector), ``"sh-L"`` (``L*L``: the
    bare SatCLIP spherical-harmonic basis), a loaded encoder, or any source
    :func:`~xsatclip.load_model` accepts (model name such as ``"geoclip"``, checkpoint file,
    model directory, Hub id): the model's embeddings.
    ``"range:PATH"``: a model's embeddings augmented RANGE-style from the gallery at PATH
    (:func:`_range_features`), scored beside the plain ones.
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
    if text.startswith(RANGE_PREFIX):
        return _range_features(text[len(RANGE_PREFIX):])
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


