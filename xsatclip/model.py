"""The SatCLIP location encoder: basis + SIREN network, with its identity, evaluated in batches."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping

import numpy as np
import torch

from .harmonics import (
    NUMERICS,
    check_latitude,
    check_longitude,
    spherical_harmonics,
    validate_lonlat,
    zonal_scale,
)
from .harmonics_torch import spherical_harmonics_torch
from .siren import SirenNet

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a location encoder: ``L*L`` basis features -> ``embed_dim`` outputs."""

    level: int
    capacity: int = 256
    num_hidden_layers: int = 2
    embed_dim: int = 256
    convention: str = "satclip"

    def build_network(self) -> SirenNet:
        """A freshly initialised network of this architecture (float32)."""
        return SirenNet(self.level**2, self.capacity, self.embed_dim, self.num_hidden_layers)


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """What produced an embedding: recorded in every output's attrs."""

    name: str
    source: str
    sha256: str
    level: int
    convention: str
    numerics: str
    capacity: int
    embed_dim: int

    def attrs(self) -> dict[str, str | int]:
        """Flat, netCDF/Zarr-safe attributes (``model_*`` keys)."""
        return {f"model_{k}": v for k, v in dataclasses.asdict(self).items()}


def weights_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the tensors (sorted by name: name, dtype, shape, little-endian bytes).

    Independent of the file format, so a checkpoint converted to xsatclip's own format keeps
    its hash as long as the stored values and dtypes are the same.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        array = state_dict[name].detach().cpu().numpy()
        digest.update(f"{name}|{array.dtype}|{array.shape}|".encode())
        digest.update(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return digest.hexdigest()


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when torch sees a GPU, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_batch_size(device: torch.device, level: int, capacity: int) -> int:
    """Points per batch: a few tens of MB of features on the CPU, a share of free GPU memory."""
    bytes_per_point = 8 * (3 * level * level + 2 * capacity)  # float64 basis temporaries
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(max(4096, min(2**22, free // 4 // bytes_per_point)))
    return int(max(1024, min(65536, 64 * 2**20 // bytes_per_point)))


class LocationEncoder:
    """A loaded SatCLIP location encoder.

    Parameters
    ----------
    config : ModelConfig
    state_dict : mapping of the SIREN weights (reference names).
    source, name : where the weights came from, for provenance.
    numerics : {"exact", "reference"}
    dtype : {"float32", "float64"}; the weights are cast once at load.
    device : "auto", "cpu", "cuda", ...
    """

    def __init__(
        self,
        config: ModelConfig,
        state_dict: Mapping[str, torch.Tensor],
        *,
        source: str,
        name: str | None = None,
        numerics: str = "exact",
        dtype: str = "float32",
        device: str | torch.device = "auto",
    ) -> None:
        if numerics not in NUMERICS:
            raise ValueError(f"numerics={numerics!r} is not known; choose one of {list(NUMERICS)}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r} is not supported; choose one of {list(DTYPES)}")
        self.config = config
        self.numerics = numerics
        self.dtype = dtype
        self.device = resolve_device(device)
        self.zonal_scale = zonal_scale(config.convention)
        # The Numba kernel on the CPU; on accelerators the torch recursion runs on the device.
        self.basis_backend = "numba" if self.device.type == "cpu" else "torch"
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
        )

    def __repr__(self) -> str:
        i = self.identity
        return (f"LocationEncoder(name={i.name!r}, level={i.level}, capacity={i.capacity}, "
                f"embed_dim={i.embed_dim}, numerics={i.numerics!r}, dtype={self.dtype!r}, "
                f"device={str(self.device)!r})")

    @property
    def level(self) -> int:
        return self.config.level

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def basis(self, lon: np.ndarray, lat: np.ndarray) -> torch.Tensor:
        """Basis features of validated float64 points as a (N, L*L) tensor on the device."""
        torch_dtype = DTYPES[self.dtype]
        if self.basis_backend == "torch" and self.numerics == "exact":
            lon_t = torch.from_numpy(lon).to(self.device)
            lat_t = torch.from_numpy(lat).to(self.device)
            return spherical_harmonics_torch(lon_t, lat_t, self.level, self.zonal_scale,
                                             torch_dtype)
        features = spherical_harmonics(lon, lat, self.level, convention=self.config.convention,
                                       numerics=self.numerics, dtype=np.dtype(self.dtype))
        return torch.from_numpy(features).to(self.device)

    def encode(self, lon, lat, *, batch_size: int | None = None) -> np.ndarray:
        """Embeddings of points, (N, embed_dim) in the model's dtype.

        ``lon``/``lat`` in degrees, any shape (flattened). Memory is bounded by ``batch_size``
        points at a time: the (N, L*L) basis is never materialised for all N.
        """
        lon, lat = validate_lonlat(lon, lat)
        if batch_size is None:
            batch_size = default_batch_size(self.device, self.level, self.config.capacity)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        out = np.empty((lon.size, self.embed_dim), dtype=self.dtype)
        with torch.inference_mode():
            for start in range(0, lon.size, batch_size):
                stop = start + batch_size
                features = self.basis(lon[start:stop], lat[start:stop])
                out[start:stop] = self.network(features).cpu().numpy()
        return out

    def encode_grid(self, lon, lat, *, batch_size: int | None = None) -> np.ndarray:
        """Embeddings of the rectilinear grid ``lat`` (ny,) x ``lon`` (nx,): (ny, nx, embed_dim).

        Separable evaluation. A harmonic is a Legendre part of the row times a trigonometric
        part of the column, so the first layer folds per row,
        ``W_0 Y(i, j) = sum_m (sum_l W_0[:, (l, m)] A_lm(lat_i)) T_m(lon_j)``, and costs
        O(hidden x (2L - 1)) per point instead of O(hidden x L^2). The per-row basis comes from
        the model's numerics and the fold is done in float64. Memory is bounded by
        ``batch_size`` points (whole rows) at a time.
        """
        lon, lat = check_longitude(lon), check_latitude(lat)
        if batch_size is None:
            batch_size = default_batch_size(self.device, self.level, self.config.capacity)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        torch_dtype = DTYPES[self.dtype]
        folded = torch.from_numpy(self._fold_first_layer(lat)).to(self.device, torch_dtype)
        trig = torch.from_numpy(self._column_trig(lon)).to(self.device, torch_dtype)
        bias = self.network.layers[0].bias
        out = np.empty((lat.size, lon.size, self.embed_dim), dtype=self.dtype)
        rows_per_batch = max(1, batch_size // max(lon.size, 1))
        with torch.inference_mode():
            for start in range(0, lat.size, rows_per_batch):
                stop = start + rows_per_batch
                pre = torch.matmul(trig, folded[start:stop]) + bias  # (rows, nx, hidden)
                emb = self.network.head(pre.reshape(-1, pre.shape[-1]))
                out[start:stop] = emb.reshape(-1, lon.size, self.embed_dim).cpu().numpy()
        return out

    def _fold_first_layer(self, lat: np.ndarray) -> np.ndarray:
        """``R[i, k, :] = sum_l A_{l,|m|}(lat_i) W_0[:, (l, m)]`` for m = k - (L - 1), float64
        (ny, 2L - 1, hidden)."""
        L = self.level
        # At lon = -180 (phi = 0) the m >= 0 columns hold exactly the Legendre parts.
        rows = spherical_harmonics(np.full(lat.size, -180.0), lat, L,
                                   convention=self.config.convention, numerics=self.numerics,
                                   dtype=np.float64)
        degree = np.repeat(np.arange(L), 2 * np.arange(L) + 1)
        order = np.arange(L * L) - degree * degree - degree
        legendre = rows[:, degree * degree + degree + np.abs(order)]
        weight = self.network.layers[0].weight.detach().to("cpu", torch.float64).numpy()
        folded = np.empty((lat.size, 2 * L - 1, weight.shape[0]))
        for k, m in enumerate(range(-(L - 1), L)):
            cols = order == m
            folded[:, k] = legendre[:, cols] @ weight[:, cols].T
        return folded

    def _column_trig(self, lon: np.ndarray) -> np.ndarray:
        """``T[j, k]`` = sin(|m| phi_j), 1, cos(m phi_j) for m = k - (L - 1) <, =, > 0
        (nx, 2L - 1) float64; NaN rows for NaN longitudes."""
        phi = np.radians(np.mod(lon + 180.0, 360.0))[:, None]
        m = np.arange(-(self.level - 1), self.level)
        trig = np.where(m < 0, np.sin(-m * phi), np.cos(m * phi))
        trig[np.isnan(lon)] = np.nan
        return trig
