"""The SatCLIP location encoder: basis + SIREN network, with its identity, evaluated in batches
pointwise (:meth:`LocationEncoder.encode`) or separably on grids
(:meth:`LocationEncoder.encode_grid`)."""

from __future__ import annotations

import copy
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
from .backend import DTYPES, PIECE_BATCHES, Backend, DeviceLike, DType
from .base import Encoder
from .config import ModelConfig, ModelIdentity, weights_sha256
from .image import ImageConfig, PatchEncoder


class LocationEncoder(Encoder):
    """A loaded SatCLIP location encoder.

    Parameters
    ----------
    config : ModelConfig
    state_dict : mapping of the SIREN weights (reference names).
    source, name : where the weights came from, for provenance.
    numerics : {"exact", "reference"}
    dtype : {"float32", "float64"}; the weights are cast once at load.
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
        self.backend = Backend.choose(device, numerics)
        self.zonal_scale = zonal_scale(config.convention)
        # Cast before loading so float64 weights never pass through float32.
        self.network = config.build_network().to(dtype=DTYPES[dtype])
        self.network.load_state_dict(state_dict)
        self.network.to(device=self.device).eval()
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

    def to(self, device: DeviceLike) -> LocationEncoder:
        """This encoder on ``device`` (itself when already there; else a copy)."""
        backend = Backend.choose(device, self.numerics)
        if backend == self.backend:
            return self
        moved = object.__new__(LocationEncoder)
        moved.__dict__.update(self.__dict__)
        moved.backend = backend
        moved.network = self.config.build_network().to(dtype=DTYPES[self.dtype])
        moved.network.load_state_dict(self.network.state_dict())
        moved.network.to(device=backend.device).eval()
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
                                       numerics=self.numerics, dtype=np.dtype(self.dtype))
        return torch.from_numpy(features).to(self.device)

    def encode(self, lon: ArrayLike, lat: ArrayLike, *,
               batch_size: int | None = None) -> np.ndarray:
        """Embeddings of points, (N, embed_dim) in the model's dtype.

        ``lon``/``lat`` in degrees, any shape (flattened). Memory is bounded by ``batch_size``
        points at a time (per thread): the (N, L*L) basis is never materialised for all N.

        On the CPU ("exact" numerics) the basis kernel writes each batch's feature columns
        into one reused buffer and the network runs on columns
        (:meth:`~xsatclip.model.siren.SirenNet.forward_columns`), the last layer straight
        into the result. Threads: :meth:`~xsatclip.model.backend.Backend.run_pieces`.
        """
        lon, lat = validate_lonlat(lon, lat)
        batch_size = self.backend.batch_size(batch_size, self.level, self.config.capacity)
        out = np.empty((lon.size, self.embed_dim), dtype=self.dtype)

        def run(start: int, stop: int) -> None:
            self._encode_batches(lon[start:stop], lat[start:stop], out[start:stop], batch_size)

        self.backend.run_pieces(lon.size, PIECE_BATCHES * batch_size, run)
        return out

    def _encode_batches(self, lon: np.ndarray, lat: np.ndarray, out: np.ndarray,
                        batch_size: int) -> None:
        fused = self.backend.basis_kernel == "numba"
        on_cpu = self.device.type == "cpu"
        points = min(batch_size, lon.size)
        features = np.empty(self.level**2 * points if fused else 0, self.dtype)
        buffers = (torch.empty(self.config.capacity * points, dtype=DTYPES[self.dtype],
                               device=self.device),
                   torch.empty(self.config.capacity * points, dtype=DTYPES[self.dtype],
                               device=self.device))
        coefficients = legendre_recursion_coefficients(self.level)
        tiny = np.finfo(self.dtype).tiny
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
                result = torch.from_numpy(out[start:stop])
                if on_cpu:
                    self.network.forward_columns(x, buffers, result)
                else:
                    device_out = torch.empty(result.shape, dtype=result.dtype, device=self.device)
                    result.copy_(self.network.forward_columns(x, buffers, device_out))

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
        trig = torch.from_numpy(column_trig(lon, self.level)).to(self.device, DTYPES[self.dtype])
        out = np.empty((lat.size, lon.size, self.embed_dim), dtype=self.dtype)
        rows_per_batch = max(1, batch_size // max(lon.size, 1))

        def run(start: int, stop: int) -> None:
            self._grid_rows(lat[start:stop], trig, out[start:stop], rows_per_batch)

        self.backend.run_pieces(lat.size, PIECE_BATCHES * rows_per_batch, run)
        return out

    def _grid_rows(self, lat: np.ndarray, trig: torch.Tensor, out: np.ndarray,
                   rows_per_batch: int) -> None:
        folded = self._fold_first_layer(lat)
        bias = self.network.sine_layers[0].bias
        nx = trig.shape[0]
        with torch.inference_mode():
            for start in range(0, lat.size, rows_per_batch):
                stop = min(start + rows_per_batch, lat.size)
                # One GEMM for the batch's rows: (nx, 2L - 1) @ (2L - 1, rows * hidden), so
                # point (i, j) is row j, columns i * hidden .. (i + 1) * hidden - 1.
                pre = torch.addmm(bias.repeat(stop - start), trig, folded[:, start:stop].flatten(1))
                emb = self.network.head(pre.view(-1, bias.shape[0]))
                emb = emb.view(nx, stop - start, self.embed_dim).transpose(0, 1)
                out[start:stop] = emb.cpu().numpy()

    def _fold_first_layer(self, lat: np.ndarray) -> torch.Tensor:
        """``R[k, i, :] = sum_l A_{l,|m|}(lat_i) W_0[:, (l, m)]`` for m = k - (L - 1):
        (2L - 1, ny, hidden) in the model's dtype, on its device.

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
        info = np.finfo(self.dtype)
        legendre[np.abs(legendre) < info.tiny / info.eps] = 0.0
        weight = self.network.sine_layers[0].weight.detach().to("cpu")
        padded = torch.cat([weight.T, weight.new_zeros(1, weight.shape[0])])[weight_columns]
        folded = torch.bmm(torch.from_numpy(legendre).to(weight.dtype).transpose(0, 1), padded)
        return folded.to(self.device)
