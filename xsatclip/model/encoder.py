"""The SatCLIP location encoder: basis + SIREN network, with its identity, evaluated in batches
pointwise (:meth:`LocationEncoder.encode`) or separably on grids
(:meth:`LocationEncoder.encode_grid`)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping

import numpy as np
import torch
from numpy.typing import ArrayLike

from ..errors import InvalidOptionError, check_choice
from ..harmonics import (
    Numerics,
    check_latitude,
    check_longitude,
    spherical_harmonics,
    validate_lonlat,
    zonal_scale,
)
from ..harmonics.legendre import basis_columns_kernel, legendre_recursion_coefficients
from ..harmonics.separable import column_trig, fold_columns
from ..harmonics.torch_basis import spherical_harmonics_torch
from .backend import DTYPES, PIECE_BATCHES, Backend, DeviceLike, DType, bfloat16_support
from .base import Encoder
from .config import ModelConfig, ModelIdentity, weights_sha256
from .image import ImageConfig, PatchEncoder
from .inference import InferenceWeights, check_features


class LocationEncoder(Encoder):
    """A loaded SatCLIP location encoder.

    Parameters
    ----------
    config : ModelConfig
    state_dict : mapping of the SIREN weights (reference names).
    source, name : where the weights came from, for provenance.
    numerics : {"exact", "reference"}
    dtype : {"float32", "float64", "bfloat16"}; the weights are cast once at load.
        "bfloat16": float32 basis, fold and outputs, the layers after the first in bfloat16
        (:mod:`~xsatclip.model.inference`), checked at load against the int8 storage bound
        (:class:`~xsatclip.errors.PrecisionError`); where the device has no fast bfloat16
        GEMMs it warns and computes in float32.
    device : "auto", "cpu", "cuda", ...; it must exist (:class:`~xsatclip.errors.DeviceError`).
    image_encoder : the pair's image half, ``(ImageConfig, PatchEncoder)``, or None; it
        enables :meth:`encode_images` and records the learned logit scale in the identity.
    """

    def __init__(
        self,
        config: ModelConfig,
        state_dict: Mapping[str, torch.Tensor],
        *,
        source: str,
        name: str | None = None,
        numerics: Numerics = "exact",
        dtype: DType = "float32",
        device: DeviceLike = "auto",
        image_encoder: tuple[ImageConfig, PatchEncoder] | None = None,
    ) -> None:
        check_choice("dtype", dtype, DTYPES)
        self.config = config
        self.numerics = numerics
        self.dtype = dtype
        self.requested_dtype = dtype  # bfloat16 may fall back to float32 (_inference_weights)
        self.backend = Backend.choose(device, numerics)
        self.zonal_scale = zonal_scale(config.convention)
        # Cast before loading so float64 weights never pass through float32.
        self.network = config.build_network().to(dtype=DTYPES[dtype])
        self.network.load_state_dict(state_dict)
        self.network.to(device=self.device).eval()
        self.weights = self._inference_weights()
        self.identity = ModelIdentity(
            name=name or source,
            source=source,
            sha256=weights_sha256(state_dict),
            level=config.level,
            convention=config.convention,
            numerics=numerics,
            capacity=config.capacity,
            embed_dim=config.embed_dim,
            logit_scale=image_encoder[0].logit_scale if image_encoder else None,
            image_sha256=(weights_sha256(image_encoder[1].state_dict()) if image_encoder
                          else None),
        )
        self.image_config = image_encoder[0] if image_encoder else None
        self.image_network = (image_encoder[1].to(device=self.device).eval() if image_encoder
                              else None)

    def __repr__(self) -> str:
        i = self.identity
        return (f"LocationEncoder(name={i.name!r}, level={i.level}, capacity={i.capacity}, "
                f"embed_dim={i.embed_dim}, numerics={i.numerics!r}, dtype={self.dtype!r}, "
                f"device={str(self.device)!r})")

    @property
    def level(self) -> int:
        return self.config.level

    def _inference_weights(self) -> InferenceWeights:
        """Folded weights for :attr:`dtype` on this device; bfloat16 is checked against the
        int8 bound, or falls back to float32 with a warning where it would not pay."""
        if self.dtype != "bfloat16":
            return InferenceWeights.of(self.network)
        support = bfloat16_support(self.device)
        if support is None:
            warnings.warn(f"dtype='bfloat16': {self.device} has no fast bfloat16 matrix "
                          "products (torch would emulate them, slower than float32); "
                          "computing in float32", stacklevel=4)
            self.dtype = "float32"
            return InferenceWeights.of(self.network)
        weights = InferenceWeights.of(self.network, half=True,
                                      split=support == "float32 products")
        features = check_features(self.level, self.config.convention, self.numerics)
        weights.check_error(features.to(self.device), self.network)
        return weights

    @property
    def output_dtype(self) -> str:
        """The numpy dtype of embeddings: float32 for the bfloat16 head."""
        return "float32" if self.dtype == "bfloat16" else self.dtype

    def to(self, device: DeviceLike) -> LocationEncoder:
        """This encoder on ``device`` (itself when already there; else a copy)."""
        backend = Backend.choose(device, self.numerics)
        if backend == self.backend:
            return self
        moved = object.__new__(LocationEncoder)
        moved.__dict__.update(self.__dict__)
        moved.backend = backend
        moved.dtype = self.requested_dtype  # a bfloat16 fallback is decided again there
        moved.network = self.config.build_network().to(dtype=DTYPES[moved.dtype])
        moved.network.load_state_dict(self.network.state_dict())
        moved.network.to(device=backend.device).eval()
        moved.weights = moved._inference_weights()
        if self.image_network is not None:
            moved.image_network = copy.deepcopy(self.image_network).to(device=backend.device)
        return moved

    def encode_images(self, patches: ArrayLike, *, batch_size: int = 256) -> np.ndarray:
        """Image embeddings (N, embed_dim) float32, in the space of :meth:`encode`'s location
        embeddings (compare by cosine similarity, scaled by ``exp(identity.logit_scale)``).

        ``patches``: (N, bands, P, P) pixel values in the training raster's units (the
        bundled models: uint8-range 0..255 Blue Marble RGB, ETOPO1 relief RGB and Linke
        turbidity x 20, in the order of ``image_config.bands``), P = ``image_config.patch_size``
        pixels of 2/15 degree. The encoder standardises the bands itself.
        """
        if self.image_network is None or self.image_config is None:
            raise InvalidOptionError(f"model {self.identity.name!r} has no image encoder "
                                     f"(image_encoder.safetensors beside its weights)")
        array = np.asarray(patches)
        size, bands = self.image_config.patch_size, len(self.image_config.bands)
        if array.ndim != 4 or array.shape[1:] != (bands, size, size):
            raise InvalidOptionError(f"patches must have shape (N, {bands}, {size}, {size}) "
                                     f"(bands {list(self.image_config.bands)}), got "
                                     f"{array.shape}")
        parts = []
        with torch.inference_mode():
            for start in range(0, len(array), batch_size):
                batch = torch.as_tensor(array[start:start + batch_size], dtype=torch.float32)
                parts.append(self.image_network(batch.to(self.device)).float().cpu().numpy())
        return (np.concatenate(parts) if parts
                else np.zeros((0, self.identity.embed_dim), np.float32))

    def basis(self, lon: np.ndarray, lat: np.ndarray) -> torch.Tensor:
        """Basis features of validated float64 points as a (N, L*L) tensor on the device."""
        torch_dtype = DTYPES[self.dtype]
        if self.backend.basis_kernel == "torch":
            lon_t = torch.from_numpy(lon).to(self.device)
            lat_t = torch.from_numpy(lat).to(self.device)
            return spherical_harmonics_torch(lon_t, lat_t, self.level, self.zonal_scale,
                                             torch_dtype)
        features = spherical_harmonics(lon, lat, self.level, convention=self.config.convention,
                                       numerics=self.numerics,
                                       dtype=np.dtype(self.output_dtype))
        return torch.from_numpy(features).to(self.device)

    def encode(self, lon: ArrayLike, lat: ArrayLike, *,
               batch_size: int | None = None) -> np.ndarray:
        """Embeddings of points, (N, embed_dim) in :attr:`output_dtype`.

        ``lon``/``lat`` in degrees, any shape (flattened). Memory is bounded by ``batch_size``
        points at a time (per thread): the (N, L*L) basis is never materialised for all N.

        On the CPU ("exact" numerics) the basis kernel writes each batch's feature columns
        into one reused buffer, the first layer runs on columns, the rest on its transpose
        (:meth:`~xsatclip.model.inference.InferenceWeights.head`), the last layer straight
        into the result. Threads: :meth:`~xsatclip.model.backend.Backend.run_pieces`.
        """
        lon, lat = validate_lonlat(lon, lat)
        batch_size = self.backend.batch_size(batch_size, self.level, self.config.capacity)
        out = np.empty((lon.size, self.embed_dim), dtype=self.output_dtype)

        def run(start: int, stop: int) -> None:
            self._encode_batches(lon[start:stop], lat[start:stop], out[start:stop], batch_size)

        self.backend.run_pieces(lon.size, PIECE_BATCHES * batch_size, run)
        return out

    def _encode_batches(self, lon: np.ndarray, lat: np.ndarray, out: np.ndarray,
                        batch_size: int) -> None:
        fused = self.backend.basis_kernel == "numba"
        float_dtype = self.output_dtype
        points = min(batch_size, lon.size)
        features = np.empty(self.level**2 * points if fused else 0, float_dtype)
        buffers = self._buffers(points)
        weight, bias = self.weights.first
        coefficients = legendre_recursion_coefficients(self.level)
        tiny = np.finfo(float_dtype).tiny
        with torch.inference_mode():
            for start in range(0, lon.size, batch_size):
                stop = min(start + batch_size, lon.size)
                if fused:
                    columns = features[: self.level**2 * (stop - start)].reshape(-1, stop - start)
                    basis_columns_kernel(lon[start:stop], lat[start:stop], *coefficients,
                                         self.zonal_scale, tiny, columns)
                    x = torch.from_numpy(columns)
                else:
                    x = self.basis(lon[start:stop], lat[start:stop]).T
                # First layer on feature columns (hidden, n); the head reads its transpose.
                pre = buffers[0][: weight.shape[0] * x.shape[1]].view(weight.shape[0], -1)
                torch.addmm(bias[:, None], weight, x, out=pre)
                self._head(pre.T, buffers, out[start:stop])

    def _buffers(self, points: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two flat activation buffers for batches of up to ``points`` points."""
        size = self.config.capacity * points
        dtype = DTYPES[self.dtype]
        return (torch.empty(size, dtype=dtype, device=self.device),
                torch.empty(size, dtype=dtype, device=self.device))

    def _head(self, pre: torch.Tensor, buffers: tuple[torch.Tensor, torch.Tensor],
              out: np.ndarray) -> None:
        """The head from ``pre`` (n, hidden) into ``out`` (n, embed_dim): in place on the
        CPU, through one device buffer elsewhere."""
        result = torch.from_numpy(out.reshape(-1, self.embed_dim))
        if self.device.type == "cpu":
            self.weights.head(pre, buffers, result)
        else:
            device_out = torch.empty(result.shape, dtype=result.dtype, device=self.device)
            result.copy_(self.weights.head(pre, buffers, device_out))

    def encode_grid(self, lon: ArrayLike, lat: ArrayLike, *,
                    batch_size: int | None = None) -> np.ndarray:
        """Embeddings of the rectilinear grid ``lat`` (ny,) x ``lon`` (nx,): (ny, nx, embed_dim).

        Separable evaluation (:mod:`xsatclip.harmonics.separable`): the first layer folds per
        row and costs O(hidden x (2L - 1)) per point instead of O(hidden x L^2). The per-row
        basis comes from the model's numerics; the fold runs in the model's dtype. Memory is
        bounded by ``batch_size`` points (whole rows) at a time, per thread.
        """
        lon, lat = check_longitude(lon), check_latitude(lat)
        batch_size = self.backend.batch_size(batch_size, self.level, self.config.capacity,
                                             grid=True)
        trig = torch.from_numpy(column_trig(lon, self.level)).to(self.device,
                                                                  DTYPES[self.dtype])
        out = np.empty((lat.size, lon.size, self.embed_dim), dtype=self.output_dtype)
        rows_per_batch = max(1, batch_size // max(lon.size, 1))

        def run(start: int, stop: int) -> None:
            self._grid_rows(lat[start:stop], trig, out[start:stop], rows_per_batch)

        self.backend.run_pieces(lat.size, PIECE_BATCHES * rows_per_batch, run)
        return out

    def _grid_rows(self, lat: np.ndarray, trig: torch.Tensor, out: np.ndarray,
                   rows_per_batch: int) -> None:
        folded = self._fold_first_layer(lat)
        bias = self.weights.first[1]
        nx, hidden = trig.shape[0], bias.shape[0]
        buffers = self._buffers(nx * min(rows_per_batch, lat.size))
        with torch.inference_mode():
            for start in range(0, lat.size, rows_per_batch):
                stop = min(start + rows_per_batch, lat.size)
                # One batched GEMM over the batch's rows: (nx, 2L - 1) @ (2L - 1, hidden)
                # per row, so the points come row by row, as ``out`` stores them.
                pre = buffers[0][: (stop - start) * nx * hidden].view(stop - start, nx, hidden)
                torch.baddbmm(bias, trig.expand(stop - start, -1, -1), folded[start:stop],
                              out=pre)
                self._head(pre.view(-1, hidden), buffers, out[start:stop])

    def _fold_first_layer(self, lat: np.ndarray) -> torch.Tensor:
        """``R[i, k, :] = sum_l A_{l,|m|}(lat_i) W_0[:, (l, m)]`` for m = k - (L - 1), with
        ``W_0`` the folded first-layer weight: (ny, 2L - 1, hidden) in the model's float
        dtype, on its device.

        One batched GEMM over m, each m's degrees padded to L with zero weights, in torch (so
        that it follows the thread policy of the backend).
        """
        L = self.level
        # At lon = -180 (phi = 0) the m >= 0 columns hold exactly the Legendre parts.
        rows = spherical_harmonics(np.full(lat.size, -180.0), lat, L,
                                   convention=self.config.convention, numerics=self.numerics,
                                   dtype=np.float64)
        legendre_columns, weight_columns = fold_columns(L)
        legendre = rows[:, legendre_columns]
        # High orders near the poles have Legendre parts so small that their products with
        # the weights would be subnormal, which slows the GEMMs several-fold. Parts below
        # tiny / eps (1e-31 in float32) are dropped: each such term is below 1e-31 |W_0|, some
        # 20 orders of magnitude under the float32 resolution of the pre-activations.
        info = np.finfo(self.output_dtype)
        legendre[np.abs(legendre) < info.tiny / info.eps] = 0.0
        weight = self.weights.first[0]
        padded = torch.cat([weight.T, weight.new_zeros(1, weight.shape[0])])[weight_columns]
        legendre_t = torch.from_numpy(legendre).to(weight.device, weight.dtype)
        return torch.bmm(legendre_t.transpose(0, 1), padded).transpose(0, 1).contiguous()
