"""What a location encoder is: its architecture (:class:`ModelConfig`) and its identity
(:class:`ModelIdentity`: where the weights came from and their sha256)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping

import torch

from ..errors import InvalidOptionError
from ..harmonics import Convention, zonal_scale
from .siren import SirenNet

# Sane upper bounds, checked before anything is allocated: a crafted checkpoint or config
# cannot make xsatclip build a network of gigabytes before failing.
LIMITS = {"level": 256, "capacity": 16384, "num_hidden_layers": 64, "embed_dim": 16384}
MAX_PARAMETERS = 2**28  # 1 GiB of float32 weights


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a location encoder: ``L*L`` basis features -> ``embed_dim`` outputs.

    Each field is a positive integer within :data:`LIMITS`, and the network has at most
    :data:`MAX_PARAMETERS` weights; :class:`~xsatclip.errors.InvalidOptionError` names the
    field otherwise.
    """

    level: int
    capacity: int = 256
    num_hidden_layers: int = 2
    embed_dim: int = 256
    convention: Convention = "satclip"

    def __post_init__(self) -> None:
        for name, limit in LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
                raise InvalidOptionError(f"{name} must be an integer from 1 to {limit}, got "
                                         f"{value!r}")
        zonal_scale(self.convention)  # raises on an unknown convention
        if self.parameter_count() > MAX_PARAMETERS:
            raise InvalidOptionError(f"the network would have {self.parameter_count():,} "
                                     f"weights, more than {MAX_PARAMETERS:,}")

    def parameter_count(self) -> int:
        """Weights and biases of the network."""
        width_in, total = self.level**2, 0
        for _ in range(self.num_hidden_layers):
            total += (width_in + 1) * self.capacity
            width_in = self.capacity
        return total + (self.capacity + 1) * self.embed_dim

    def build_network(self) -> SirenNet:
        """A freshly initialised network of this architecture (float32)."""
        return SirenNet(self.level**2, self.capacity, self.embed_dim, self.num_hidden_layers)


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """What produced an embedding: recorded in every output's attrs.

    ``family`` is ``"satclip"`` (spherical harmonics + SIREN: ``level``, ``convention`` and
    ``capacity`` apply) or ``"geoclip"`` (they are None). A model loaded with its image
    encoder also records CLIP's learned ``logit_scale`` (log of the similarity multiplier)
    and the image weights' ``image_sha256``.
    """

    name: str
    source: str
    sha256: str
    level: int | None
    convention: str | None
    numerics: str
    capacity: int | None
    embed_dim: int
    family: str = "satclip"
    logit_scale: float | None = None
    image_sha256: str | None = None

    def attrs(self) -> dict[str, str | int]:
        """Flat, netCDF/Zarr-safe attributes (``model_*`` keys; None fields left out)."""
        return {f"model_{k}": v for k, v in dataclasses.asdict(self).items() if v is not None}


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
