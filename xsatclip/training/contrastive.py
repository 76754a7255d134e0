"""The image side of SatCLIP pretraining and its loss (pure torch).

SatCLIP matches a location embedding to the embedding of the image seen at that location with
CLIP's symmetric cross-entropy (Radford et al. 2021). This module holds the loss with its
learnable temperature; the image encoder is :class:`xsatclip.model.image.PatchEncoder`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..model.image import PatchEncoder

__all__ = ["ClipLoss", "PatchEncoder"]


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
