"""The image half of a SatCLIP pair: a small CNN patch encoder and its files beside a location
encoder's (``image_encoder.safetensors`` + ``image_config.json``).

``image_config.json`` records the band names (in order), the patch size in pixels, the CNN
width, the embedding size and CLIP's learned ``logit_scale`` (the log of the multiplier of
the cosine similarities), so a loaded pair can score images against locations.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError

IMAGE_WEIGHTS_FILE = "image_encoder.safetensors"
IMAGE_CONFIG_FILE = "image_config.json"
IMAGE_FORMAT = "xsatclip-image-encoder"


class PatchEncoder(nn.Module):
    """A small CNN: image patches (N, bands, P, P) -> embeddings (N, embed_dim).

    Three 3x3 conv blocks (width, 2 width, 4 width channels; batch norm, ReLU, 2x2 max pool
    after the first two, rounding up so any patch size works), global average pooling and a
    linear projection. Inputs are standardised per band with ``band_mean``/``band_std``
    (buffers, saved with the weights).
    """

    band_mean: torch.Tensor
    band_std: torch.Tensor

    def __init__(self, bands: int, embed_dim: int = 256, width: int = 32) -> None:
        super().__init__()
        self.register_buffer("band_mean", torch.zeros(bands))
        self.register_buffer("band_std", torch.ones(bands))

        def block(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
            layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                      nn.ReLU(inplace=True)]
            return [*layers, nn.MaxPool2d(2, ceil_mode=True)] if pool else layers

        self.features = nn.Sequential(
            *block(bands, width, pool=True),
            *block(width, 2 * width, pool=True),
            *block(2 * width, 4 * width, pool=False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.projection = nn.Linear(4 * width, embed_dim)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = (patches.float() - self.band_mean[:, None, None]) / self.band_std[:, None, None]
        return self.projection(self.features(x))


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """What an image encoder expects and how its pair scores: ``bands`` (names, in order),
    ``patch_size`` (pixels), ``width`` (CNN channels), ``embed_dim``, ``logit_scale``."""

    bands: tuple[str, ...]
    patch_size: int
    width: int
    embed_dim: int
    logit_scale: float

    def build(self) -> PatchEncoder:
        return PatchEncoder(len(self.bands), self.embed_dim, self.width)


def write_image_encoder(directory: Path, config: ImageConfig, module: PatchEncoder) -> None:
    """Write ``module``'s weights and ``config`` into the model ``directory`` (each file
    replaced atomically)."""
    from safetensors.torch import save_file

    from .checkpoints import replace_atomically

    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    replace_atomically(directory / IMAGE_WEIGHTS_FILE, lambda path: save_file(tensors, path))
    text = json.dumps({"format": IMAGE_FORMAT, "format_version": 1,
                       **dataclasses.asdict(config)}, indent=2) + "\n"
    replace_atomically(directory / IMAGE_CONFIG_FILE, lambda path: path.write_text(text))


def read_image_encoder(directory: Path) -> tuple[ImageConfig, PatchEncoder] | None:
    """The image config and encoder (eval mode, float32) of a model directory, or None when
    it holds no image encoder."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = directory / IMAGE_CONFIG_FILE
    if not path.exists():
        return None
    try:
        fields = json.loads(path.read_text())
        if fields.pop("format") != IMAGE_FORMAT:
            raise ValueError(f"format is not {IMAGE_FORMAT!r}")
        fields.pop("format_version")
        config = ImageConfig(**{**fields, "bands": tuple(fields["bands"])})
        module = config.build()
        module.load_state_dict(load_file(directory / IMAGE_WEIGHTS_FILE))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        raise CheckpointError(f"the image encoder in {directory} is unreadable: {exc}") from None
    return config, module.eval()
