"""What every location encoder offers, whatever its family (SatCLIP, GeoCLIP): embeddings of
points and of rectilinear grids, its identity, dtype and backend, and moving to a device."""

from __future__ import annotations

import abc

import numpy as np
import torch
from numpy.typing import ArrayLike

from ..harmonics import Numerics, check_latitude, check_longitude
from .backend import Backend, DeviceLike, DType
from .config import ModelIdentity


class Encoder(abc.ABC):
    """A loaded location encoder: ``(lon, lat)`` degrees -> ``embed_dim`` features.

    Subclasses set ``identity``, ``dtype``, ``numerics`` and ``backend`` when loaded.
    """

    identity: ModelIdentity
    dtype: DType
    numerics: Numerics
    backend: Backend

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def output_dtype(self) -> str:
        """The numpy dtype of the embeddings this encoder returns."""
        return self.dtype

    @property
    def embed_dim(self) -> int:
        return self.identity.embed_dim

    @property
    def level(self) -> int | None:
        """Legendre level L of a spherical-harmonic encoder; None for other families."""
        return self.identity.level

    @abc.abstractmethod
    def encode(self, lon: ArrayLike, lat: ArrayLike, *,
               batch_size: int | None = None) -> np.ndarray:
        """Embeddings of points (degrees, any shape, flattened): (N, embed_dim) in the
        model's dtype; memory bounded by ``batch_size`` points at a time."""

    def encode_grid(self, lon: ArrayLike, lat: ArrayLike, *,
                    batch_size: int | None = None) -> np.ndarray:
        """Embeddings of the rectilinear grid ``lat`` (ny,) x ``lon`` (nx,):
        (ny, nx, embed_dim). Families with a separable first layer override this."""
        lon, lat = check_longitude(lon), check_latitude(lat)
        lon2, lat2 = np.meshgrid(lon, lat)
        out = self.encode(lon2.ravel(), lat2.ravel(), batch_size=batch_size)
        return out.reshape(lat.size, lon.size, self.embed_dim)

    @abc.abstractmethod
    def to(self, device: DeviceLike) -> Encoder:
        """This encoder on ``device`` (itself when already there; else a copy)."""

    def __repr__(self) -> str:
        i = self.identity
        return (f"{type(self).__name__}(name={i.name!r}, family={i.family!r}, "
                f"embed_dim={i.embed_dim}, dtype={self.dtype!r}, device={str(self.device)!r})")
