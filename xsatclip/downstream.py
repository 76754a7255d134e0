"""Downstream use of embedding maps: apply a fitted estimator to every cell, lazily."""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import xarray as xr

from .cube import open_cube
from .cube.source import embedding_variable
from .errors import InvalidOptionError, InvalidTypeError, check_choice
from .raster.coords import with_grid_mapping

METHODS = ("predict", "predict_proba")


def predict_map(estimator: Any, embeddings: str | os.PathLike | xr.Dataset | xr.DataArray, *,
                method: Literal["predict", "predict_proba"] = "predict") -> xr.DataArray:
    """Apply a fitted estimator to every location of an embedding map, lazily.

    Parameters
    ----------
    estimator : a fitted scikit-learn estimator, or any object with ``predict`` /
        ``predict_proba`` taking an ``(n, embed_dim)`` array. ``predict`` must return one
        number per row (a regression value or a numeric class label).
    embeddings : DataArray with an ``embedding`` dim, e.g. from ``.satclip.embed``; a
        Dataset holding one (``embeddings``); or a Zarr store :func:`~xsatclip.open_cube`
        opens. Dask-backed inputs stay lazy (one task per chunk).
    method : ``"predict"`` or ``"predict_proba"``.

    Returns
    -------
    DataArray ``prediction`` with the input's dims minus ``embedding`` (float64), or
    ``probability`` with a leading ``class`` dim (band-first; coordinate:
    ``estimator.classes_`` when it has one) for ``predict_proba``. Coordinates, the CRS
    (``spatial_ref``, CF ``grid_mapping``) and the embeddings' provenance attrs are kept;
    ``long_name`` names the estimator, not the embeddings. Cells whose embedding holds a
    NaN (unwritten cube chunks, masked input) are NaN and never reach the estimator.
    """
    check_choice("method", method, METHODS)
    function = getattr(estimator, method, None)
    if function is None:
        raise InvalidTypeError(f"estimator: {type(estimator).__name__} has no {method}()")
    if isinstance(embeddings, (str, os.PathLike)):
        embeddings = open_cube(embeddings)
    if isinstance(embeddings, xr.Dataset):
        embeddings = embedding_variable(embeddings, "the Dataset")
    if not isinstance(embeddings, xr.DataArray):
        raise InvalidTypeError(f"embeddings must be a DataArray, a Dataset or a store path, "
                               f"got {type(embeddings).__name__}")
    if "embedding" not in embeddings.dims:
        raise InvalidOptionError(f"embeddings has dims {embeddings.dims}, no 'embedding' dim")
    size = embeddings.sizes["embedding"]
    if method == "predict_proba":
        classes = getattr(estimator, "classes_", None)
        if classes is None:  # one probe row tells the number of classes
            classes = np.arange(np.shape(function(np.zeros((1, size))))[1])
        extra: tuple[int, ...] = (len(classes),)  # trailing output shape of a row
        outputs: dict[str, Any] = {"output_core_dims": [["class"]],
                   "dask_gufunc_kwargs": {"output_sizes": {"class": len(classes)}}}
    else:
        extra, outputs = (), {}

    def apply(block: np.ndarray) -> np.ndarray:
        rows = block.reshape(-1, size)
        valid = np.isfinite(rows).all(axis=1)
        out = np.full((rows.shape[0], *extra), np.nan)
        if valid.any():
            predicted = function(rows[valid])
            try:
                out[valid] = np.asarray(predicted, np.float64)
            except (TypeError, ValueError) as exc:
                raise InvalidTypeError(f"{method}() must return numbers of shape "
                                f"{(int(valid.sum()), *extra)}: {exc}") from exc
        return out.reshape(*block.shape[:-1], *extra)

    if embeddings.chunks is not None:
        embeddings = embeddings.chunk({"embedding": -1})
    result = xr.apply_ufunc(apply, embeddings, input_core_dims=[["embedding"]],
                            dask="parallelized", output_dtypes=[np.float64],
                            keep_attrs=True, **outputs)
    what = type(estimator).__name__
    if method == "predict_proba":
        result = result.assign_coords({"class": np.asarray(classes)})
        result = result.transpose("class", ...)
        result.attrs["long_name"] = f"class probability from {what}.predict_proba"
    else:
        result.attrs["long_name"] = f"prediction of {what}"
    result.attrs.pop("units", None)
    result = with_grid_mapping(result)
    return result.rename("probability" if method == "predict_proba" else "prediction")
