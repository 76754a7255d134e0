"""The settings of a SatCLIP pretraining run (no heavy imports: the CLI reads its defaults)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..errors import InvalidOptionError

if TYPE_CHECKING:  # harmonics loads Numba; the CLI reads these defaults without it
    from ..harmonics import Convention


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (with the raster and the mask).

    Location encoder: ``level`` (L), ``capacity``, ``num_hidden_layers``, ``embed_dim``,
    ``convention``. Data: ``num_locations`` pairs with ``patch_size`` pixel patches, of which
    ``val_fraction`` are held out. Optimisation: ``epochs`` of ``batch_size`` pairs, AdamW with
    ``learning_rate`` and ``weight_decay``, ``warmup_epochs`` of linear warm-up then cosine
    decay to zero. ``smoothness``: weight of a penalty on the first layer's weights of each
    basis column scaled by its degree, ``l (l + 1) / (L (L - 1))`` (a Sobolev-like prior that
    damps high-degree ringing; 0 turns it off). ``image_width``: channels of the first conv of
    the default image encoder.
    """

    level: int = 10
    capacity: int = 256
    num_hidden_layers: int = 2
    embed_dim: int = 256
    convention: Convention = "satclip"
    patch_size: int = 16
    num_locations: int = 50_000
    val_fraction: float = 0.1
    batch_size: int = 1024
    epochs: int = 20
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    image_width: int = 32
    seed: int = 0
    smoothness: float = 0.0

    def __post_init__(self) -> None:
        for name in ("level", "capacity", "num_hidden_layers", "embed_dim", "patch_size",
                     "epochs", "image_width"):
            if getattr(self, name) < 1:
                raise InvalidOptionError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise InvalidOptionError(f"batch_size must be at least 2 (CLIP contrasts pairs "
                                     f"within a batch), got {self.batch_size}")
        if not 0 < self.val_fraction < 1:
            raise InvalidOptionError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not self.smoothness >= 0:
            raise InvalidOptionError(f"smoothness must be >= 0, got {self.smoothness}")
        if not self.learning_rate > 0:
            raise InvalidOptionError(f"learning_rate must be positive, got {self.learning_rate}")

    def model_config(self):
        """The :class:`~xsatclip.model.ModelConfig` of the location encoder."""
        from ..model import ModelConfig

        return ModelConfig(self.level, self.capacity, self.num_hidden_layers, self.embed_dim,
                           self.convention)
