"""SIREN network: the neural half of the SatCLIP location encoder (pure torch).

``h_1 = sin(w0_initial * (W_0 x + b_0))``, ``h_{k+1} = sin(w0 * (W_k h_k + b_k))``, and an
identity activation on ``last_layer``. Parameter names (``layers.{i}.weight|bias``,
``last_layer.weight|bias``) match the reference state dict, so its weights load unchanged.

:meth:`SirenNet.forward` serves training (autograd); inference runs on folded copies of the
weights (:mod:`xsatclip.model.inference`).
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from ..errors import InvalidOptionError


class SirenLayer(nn.Module):
    """A linear map followed by ``sin(w0 * .)`` (or nothing when ``activation=False``)."""

    def __init__(
        self, dim_in: int, dim_out: int, *, w0: float, is_first: bool, activation: bool = True,
        c: float = 6.0,
    ) -> None:
        super().__init__()
        self.w0 = w0
        self.activation = activation
        # SIREN initialisation (Sitzmann et al. 2020): keeps pre-activations in sin's range.
        bound = 1.0 / dim_in if is_first else math.sqrt(c / dim_in) / w0
        self.weight = nn.Parameter(torch.empty(dim_out, dim_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(dim_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(nn.functional.linear(x, self.weight, self.bias))

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        """``sin(w0 * out)``, or ``out`` itself on a layer without activation."""
        if not self.activation:
            return out
        if out.requires_grad:
            return torch.sin(self.w0 * out)
        return out.mul_(self.w0).sin_()  # inference: in place, no extra buffers


class SirenNet(nn.Module):
    """``num_layers`` sine layers of width ``dim_hidden``, then a linear ``last_layer``.

    Input (N, dim_in) -> output (N, dim_out).
    """

    def __init__(
        self,
        dim_in: int,
        dim_hidden: int,
        dim_out: int,
        num_layers: int,
        *,
        w0: float = 1.0,
        w0_initial: float = 30.0,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise InvalidOptionError(f"num_layers must be at least 1, got {num_layers}")
        self.layers = nn.ModuleList(
            SirenLayer(
                dim_in if i == 0 else dim_hidden,
                dim_hidden,
                w0=w0_initial if i == 0 else w0,
                is_first=i == 0,
            )
            for i in range(num_layers)
        )
        self.last_layer = SirenLayer(dim_hidden, dim_out, w0=w0, is_first=False, activation=False)

    @property
    def sine_layers(self) -> list[SirenLayer]:
        """The hidden layers, first to last (``layers`` typed for callers)."""
        return cast(list[SirenLayer], list(self.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.sine_layers:
            x = layer(x)
        return self.last_layer(x)
