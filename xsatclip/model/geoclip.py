"""GeoCLIP's location encoder (Vivanco Cepeda, Nayak & Shah, NeurIPS 2023) as an xsatclip
model family.

``(lon, lat)`` -> Equal Earth projection (:mod:`xsatclip.harmonics.equal_earth`) -> for each of
three scales sigma = 1, 16, 256: random Fourier features ``[cos 2 pi B v, sin 2 pi B v]``
(B: 256 x 2, fixed) -> three ReLU layers of 1024 -> a linear head to 512; the three heads'
outputs are summed. Parameter names match GeoCLIP's state dict, so its weights load unchanged.

The weights come from the ``geoclip`` wheel on PyPI (MIT; ``pip install --no-deps geoclip``:
its own imports pull in transformers, which xsatclip never imports), found on disk without
importing the package, or from a ``.pth`` file of that state dict. The Fourier arguments
``2 pi B v`` reach ~1e4 radians at sigma = 256, so they are computed in float64 whatever the
model's dtype (GeoCLIP's own float32 code differs from its float64 evaluation by up to
~3e-5, tests/test_geoclip.py).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TypeGuard

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from ..errors import CheckpointError, MissingDependencyError, ModelNotFoundError, check_choice
from ..harmonics import validate_lonlat
from ..harmonics.equal_earth import equal_earth
from .backend import DTYPES, PIECE_BATCHES, Backend, DeviceLike, DType, check_batch_size
from .base import Encoder
from .checkpoints import load_tensors
from .config import ModelIdentity, weights_sha256

NAME = "geoclip"
SCALES = (2.0**0, 2.0**4, 2.0**8)  # sigma of each capsule's Fourier matrix, as trained
FOURIER_FEATURES = 256
HIDDEN = 1024
EMBED_DIM = 512
WHEEL_WEIGHTS = ("model", "weights", "location_encoder_weights.pth")
CPU_BATCH = 2048  # points per forward pass on the CPU


class _Fourier(nn.Module):
    """Random Fourier features ``[cos 2 pi B v, sin 2 pi B v]`` of 2-D points, B fixed."""

    b: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.zeros(FOURIER_FEATURES, 2), requires_grad=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """``v``: (N, 2) float64 projected points -> (N, 512) in the weights' dtype."""
        angle = (2.0 * math.pi) * (v @ self.b.to(torch.float64).T)
        return torch.cat([torch.cos(angle), torch.sin(angle)], dim=1).to(self.b.dtype)


class _Capsule(nn.Module):
    """One scale: Fourier features, three ReLU layers, a linear head to 512."""

    def __init__(self) -> None:
        super().__init__()
        self.capsule = nn.Sequential(
            _Fourier(),
            nn.Linear(2 * FOURIER_FEATURES, HIDDEN), nn.ReLU(),
            nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
            nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(HIDDEN, EMBED_DIM))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.head(self.capsule(v))


class GeoCLIPNet(nn.Module):
    """GeoCLIP's location network: projected points (N, 2) float64 -> (N, 512)."""

    def __init__(self) -> None:
        super().__init__()
        for i in range(len(SCALES)):
            self.add_module(f"LocEnc{i}", _Capsule())

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        capsules = [module for name, module in self.named_children() if name.startswith("LocEnc")]
        out = capsules[0](v)
        for capsule in capsules[1:]:
            out = out + capsule(v)
        return out


def is_geoclip_state(state: object) -> TypeGuard[Mapping[str, torch.Tensor]]:
    """Whether ``state`` is a GeoCLIP location-encoder state dict."""
    return isinstance(state, Mapping) and "LocEnc0.capsule.0.b" in state


def wheel_weights_path() -> Path:
    """The location-encoder weights inside the installed ``geoclip`` wheel (not imported)."""
    spec = importlib.util.find_spec(NAME)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "model 'geoclip' needs GeoCLIP's weights from its PyPI wheel: pip install "
            "--no-deps geoclip (xsatclip reads the weights file; it never imports the package)")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*WHEEL_WEIGHTS)
    if not path.is_file():
        raise ModelNotFoundError(f"the installed geoclip package has no weights at {path}")
    return path


def read_geoclip_weights(path: Path) -> dict[str, torch.Tensor]:
    """GeoCLIP's location-encoder state dict from ``path`` (no pickle: weights only)."""
    state = load_tensors(path, "GeoCLIP weights file")
    if not is_geoclip_state(state):
        raise CheckpointError(f"{path} holds no GeoCLIP location-encoder weights")
    expected = GeoCLIPNet().state_dict()
    bad = [name for name, tensor in state.items() if not isinstance(tensor, torch.Tensor)
           or not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all())]
    if bad:
        raise CheckpointError(f"{path}: {bad[:3]} are not finite floating-point tensors")
    shapes = {name: tuple(tensor.shape) for name, tensor in state.items()}
    wanted = {name: tuple(tensor.shape) for name, tensor in expected.items()}
    if shapes != wanted:
        differ = sorted(set(shapes.items()) ^ set(wanted.items()))[:3]
        raise CheckpointError(f"{path}: GeoCLIP weights of unexpected names or shapes "
                              f"(differ in {differ})")
    return dict(state)


class GeoCLIPEncoder(Encoder):
    """A loaded GeoCLIP location encoder (512-d embeddings).

    Parameters
    ----------
    state_dict : GeoCLIP's location-encoder weights (its own names).
    source, name : where the weights came from, for provenance.
    dtype : {"float32", "float64"}: the network's; the projection and Fourier arguments are
        float64 either way.
    device : "auto", "cpu", "cuda", ...
    """

    def __init__(self, state_dict: Mapping[str, torch.Tensor], *, source: str,
                 name: str = NAME, dtype: DType = "float32",
                 device: DeviceLike = "auto") -> None:
        check_choice("dtype", dtype, ["float32", "float64"])  # no bfloat16 head
        self.dtype = dtype
        self.numerics = "exact"
        self.backend = Backend.choose(device, "exact")
        self.network = GeoCLIPNet().to(dtype=DTYPES[dtype])
        self.network.load_state_dict(state_dict)
        self.network.to(device=self.device).eval()
        self.identity = ModelIdentity(name=name, source=source,
                                      sha256=weights_sha256(state_dict), level=None,
                                      convention=None, numerics="exact", capacity=None,
                                      embed_dim=EMBED_DIM, family=NAME)

    def to(self, device: DeviceLike) -> GeoCLIPEncoder:
        backend = Backend.choose(device, "exact")
        if backend == self.backend:
            return self
        return GeoCLIPEncoder(self.network.state_dict(), source=self.identity.source,
                              name=self.identity.name, dtype=self.dtype, device=device)

    def encode(self, lon: ArrayLike, lat: ArrayLike, *,
               batch_size: int | None = None) -> np.ndarray:
        """Embeddings of points (degrees, any shape, flattened): (N, 512) in the model's
        dtype. Longitudes in any convention; memory bounded by ``batch_size`` points at a
        time (per thread, see :meth:`~xsatclip.model.backend.Backend.run_pieces`)."""
        lon, lat = validate_lonlat(lon, lat)
        batch = check_batch_size(batch_size) or (65536 if self.device.type == "cuda"
                                                 else CPU_BATCH)
        out = np.empty((lon.size, EMBED_DIM), dtype=self.dtype)

        def run(start: int, stop: int) -> None:
            with torch.inference_mode():
                for first in range(start, stop, batch):
                    last = min(first + batch, stop)
                    points = torch.from_numpy(equal_earth(lon[first:last], lat[first:last]))
                    out[first:last] = self.network(points.to(self.device)).cpu().numpy()

        self.backend.run_pieces(lon.size, PIECE_BATCHES * batch, run)
        return out


def load_geoclip(source: str | Path, *, dtype: DType = "float32",
                 device: DeviceLike = "auto") -> GeoCLIPEncoder:
    """GeoCLIP's encoder: ``"geoclip"`` (the installed wheel's weights) or a ``.pth`` path."""
    if str(source) == NAME:
        return GeoCLIPEncoder(read_geoclip_weights(wheel_weights_path()), source=NAME,
                              dtype=dtype, device=device)
    path = Path(source).expanduser().resolve()
    return GeoCLIPEncoder(read_geoclip_weights(path), source=str(path), name=path.stem,
                          dtype=dtype, device=device)
