"""What runs inside Dask tasks: model specs, a per-process model cache, and the block
functions that turn coordinate blocks into embedding blocks.

The model never travels in the task graph. Tasks carry a :class:`ModelSpec` (a few strings)
and each process loads the model once, on first use, through
:func:`~xsatclip.model.load.resolve_model` (checked against the sha256 the graph was built
with), and keeps it. Inside a task torch and Numba run single-threaded
(:mod:`xsatclip.model.backend` explains the thread policy).
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pyproj
import torch

from ..model import Encoder, resolve_model, single_threaded_kernels


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything a worker needs to load a model: small, hashable, picklable."""

    source: str
    sha256: str
    numerics: str
    dtype: str
    device: str

    @classmethod
    def of(cls, model: Encoder, device: str | torch.device) -> ModelSpec:
        """The spec of ``model`` as resolved for ``device``: ``"auto"`` stays ``"auto"`` (each
        process takes its GPU when it has one), any other device is the model's own."""
        where = "auto" if device == "auto" else str(model.device)
        return cls(model.identity.source, model.identity.sha256, model.numerics, model.dtype,
                   where)


_cache: dict[ModelSpec, Encoder] = {}
_cache_lock = threading.Lock()


def cached_model(spec: ModelSpec) -> Encoder:
    """The model for ``spec``, loaded once per process and checked against its sha256."""
    with _cache_lock:
        model = _cache.get(spec)
        if model is None:
            model = resolve_model(spec.source, numerics=spec.numerics,  # type: ignore[arg-type]
                                  dtype=spec.dtype, device=spec.device,  # type: ignore[arg-type]
                                  sha256=spec.sha256,
                                  made_by="the task graph was built with")
            _cache[spec] = model
        return model


def register_model(model: Encoder, spec: ModelSpec) -> None:
    """Seed this process's cache with an already loaded model (saves a reload)."""
    with _cache_lock:
        _cache.setdefault(spec, model)


def to_lonlat(x: np.ndarray, y: np.ndarray, crs_wkt: str | None):
    """Transform projected ``x, y`` (any shape) to lon/lat degrees; identity when no CRS."""
    if crs_wkt is None:
        return x, y
    transformer = pyproj.Transformer.from_crs(crs_wkt, 4326, always_xy=True)
    return transformer.transform(x, y)


def embed_grid_block(y: np.ndarray, x: np.ndarray, *, spec: ModelSpec, batch_size: int | None,
                     crs_wkt: str | None) -> np.ndarray:
    """Embeddings of the grid ``y`` (ny,) x ``x`` (nx,) -> (embed_dim, ny, nx) (a band-first
    view of the model's (ny, nx, embed_dim) output: no copy).

    ``y``/``x`` are latitude/longitude (evaluated separably, row by row), or projected
    coordinates in ``crs_wkt`` (transformed, then evaluated point by point).
    """
    if crs_wkt is None:
        model = cached_model(spec)
        with single_threaded_kernels():
            return np.moveaxis(model.encode_grid(x, y, batch_size=batch_size), -1, 0)
    yy, xx = np.meshgrid(y, x, indexing="ij")
    return embed_points_block(yy, xx, spec=spec, batch_size=batch_size, crs_wkt=crs_wkt)


def embed_points_block(lat: np.ndarray, lon: np.ndarray, *, spec: ModelSpec,
                       batch_size: int | None, crs_wkt: str | None = None) -> np.ndarray:
    """Embeddings of 2-D coordinate blocks ``lat``/``lon`` (ny, nx) -> (embed_dim, ny, nx)
    (a band-first view)."""
    model = cached_model(spec)
    lon_deg, lat_deg = to_lonlat(np.asarray(lon, np.float64), np.asarray(lat, np.float64),
                                 crs_wkt)
    with single_threaded_kernels():
        out = model.encode(lon_deg, lat_deg, batch_size=batch_size)
    return np.moveaxis(out.reshape(*np.shape(lat), model.embed_dim), -1, 0)
