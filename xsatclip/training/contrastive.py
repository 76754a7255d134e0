"""The image side of SatCLIP pretraining and its loss (pure torch).

SatCLIP matches a location embedding to the embedding of the image seen at that location with
CLIP's symmetric cross-entropy (Radford et al. 2021). This module holds a small CNN image
encoder and the loss with its learnable temperature.
"""

from __future__ import annotations

import math

import torch
from torch import nn


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


class ClipLoss(nn.Module):
    """Symmetric InfoNCE over a batch of matched pairs, with a learnable temperature.

    ``logit_scale`` starts at log(1 / 0.07) and is clamped to at most log(100), as in CLIP.
    """

    max_logit_scale = math.log(100.0)

    def __init__(self, initial_temperature: float = 0.07) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / initial_temperature)))

    def logits(self, location: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """(N, N) scaled cosine similarities; row i is location i against every image."""
        scale = self.logit_scale.clamp(max=self.max_logit_scale).exp()
        location = nn.functional.normalize(location, dim=-1)
        image = nn.functional.normalize(image, dim=-1)
        return scale * location @ image.T

    def forward(self, location: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        logits = self.logits(location, image)
        target = torch.arange(logits.shape[0], device=logits.device)
        return 0.5 * (nn.functional.cross_entropy(logits, target)
                      + nn.functional.cross_entropy(logits.T, target))
