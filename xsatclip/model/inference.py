"""Inference weights of a SIREN network (:class:`InferenceWeights`): each sine layer's ``w0``
folded into its weight and bias once, so that a layer is one GEMM into a reused buffer and an
in-place ``sin`` (no ``mul`` pass); optionally a bfloat16 head.

bfloat16 head (``dtype="bfloat16"``). The basis and the first layer's fold carry the
precision that the poles and high degrees need and stay float32 (fold in float64). The layers
after the first take bfloat16 operands: their sine outputs and weights are rounded to
bfloat16, multiplied with float32 accumulation (split into hi + lo pairs where the device
returns float32 products, :func:`~xsatclip.model.backend.bfloat16_support`), and the bias is
added in float32.
Outputs are float32. benchmarks/bf16_error.py measures the error against float64 and set
beside the storage bounds; :meth:`InferenceWeights.check_error` refuses weights whose error
exceeds the int8 storage bound.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch

from ..errors import PrecisionError
from ..harmonics import Convention, Numerics, spherical_harmonics
from .siren import SirenNet

# int8 cubes store value = code * scale, scale = 1.25 * amplitude / 127 (cube.layout's
# INT8_MARGIN / INT8_MAX): their error bound, scale / 2, per unit of the model's amplitude.
INT8_BOUND_PER_AMPLITUDE = 1.25 / 127 / 2
CHECK_GRID = (48, 96)  # latitudes x longitudes of the load-time error check (3.8 degrees)


def check_features(level: int, convention: Convention, numerics: Numerics) -> torch.Tensor:
    """float64 basis (N, level^2) of the check grid: ``CHECK_GRID`` latitudes from pole to
    pole by as many longitudes. (16 x 32 missed the bundled models' errors above the bound
    that a 5 degree grid shows.)"""
    lat = np.linspace(-90.0, 90.0, CHECK_GRID[0])
    lon = np.linspace(-180.0, 180.0, CHECK_GRID[1], endpoint=False)
    lon2, lat2 = np.meshgrid(lon, lat)
    return torch.from_numpy(spherical_harmonics(lon2.ravel(), lat2.ravel(), level,
                                                convention=convention, numerics=numerics,
                                                dtype=np.float64))


def float32_products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` of bfloat16 matrices with float32 accumulation and float32 results (CUDA)."""
    return torch.mm(a, b, out_dtype=torch.float32)


@dataclasses.dataclass(frozen=True)
class InferenceWeights:
    """``first``: (hidden, dim_in) weight and (hidden,) bias of the first layer, times its
    ``w0``, in the model's float dtype. ``hidden``: the other sine layers' (out, in) weights
    and (out,) biases, times their ``w0``; ``last``: the linear last layer.

    With ``half=True`` the weights of ``hidden`` and ``last`` are bfloat16 (biases float32).
    Where the device returns float32 products (``split=True``) each weight and operand is a
    sum ``hi + lo`` of two bfloat16 matrices and a product takes three GEMMs,
    ``hi hi + hi lo + lo hi`` (error ~1e-5 of the amplitude instead of ~4e-3;
    benchmarks/bf16_error.py); with bfloat16 results, one GEMM (the split would not help:
    rounding the results dominates).
    """

    first: tuple[torch.Tensor, torch.Tensor]
    hidden: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    last: tuple[torch.Tensor, torch.Tensor]
    half: bool
    split: bool
    low: tuple[torch.Tensor, ...]  # split: the lo parts of hidden's weights, then last's

    @classmethod
    def of(cls, network: SirenNet, *, half: bool = False,
           split: bool = False) -> InferenceWeights:
        """Folded copies of ``network``'s weights (on its device, in its dtype)."""
        with torch.no_grad():
            first, *rest = network.sine_layers
            scaled = [(layer.weight * layer.w0, layer.bias * layer.w0) for layer in rest]
            scaled.append((network.last_layer.weight.clone(), network.last_layer.bias.clone()))
            low: list[torch.Tensor] = []
            if half:
                low = [(w - w.to(torch.bfloat16).to(w.dtype)).to(torch.bfloat16)
                       for w, _ in scaled] if split else []
                scaled = [(w.to(torch.bfloat16), b.float()) for w, b in scaled]
            return cls((first.weight * first.w0, first.bias * first.w0), tuple(scaled[:-1]),
                       scaled[-1], half, split, tuple(low))

    def linear(self, x: torch.Tensor, index: int, out: torch.Tensor) -> torch.Tensor:
        """``x @ W.T + b`` of layer ``index`` after the first (the last layer: -1) for rows
        ``x`` (N, in) into ``out`` (N, out)."""
        weight, bias = (*self.hidden, self.last)[index]
        if not self.half:
            return torch.addmm(bias, x, weight.T, out=out)
        hi = x.to(torch.bfloat16)
        if self.split:
            lo = (x - hi.to(x.dtype)).to(torch.bfloat16)
            out.copy_(float32_products(hi, weight.T))
            out.add_(float32_products(hi, self.low[index].T))
            out.add_(float32_products(lo, weight.T))
        else:
            out.copy_(torch.mm(hi, weight.T))
        return out.add_(bias)

    def head(self, first_preactivation: torch.Tensor,
             buffers: tuple[torch.Tensor, torch.Tensor], out: torch.Tensor) -> torch.Tensor:
        """The network from the first layer's folded pre-activation (N, hidden; any strides),
        overwritten with its sine. It lives in ``buffers[0]``; the hidden layers alternate
        between the two flat ``buffers`` (at least N * hidden elements each), the last layer
        writes into ``out`` (N, embed_dim), which is returned."""
        x = first_preactivation.sin_()
        for i, (weight, _) in enumerate(self.hidden):
            h = buffers[(i + 1) % 2][: x.shape[0] * weight.shape[0]].view(x.shape[0], -1)
            x = self.linear(x, i, h).sin_()
        return self.linear(x, -1, out)

    def max_error(self, features: torch.Tensor, network: SirenNet) -> tuple[float, float]:
        """Max |error| of this head on basis ``features`` (N, dim_in, float64) against
        ``network`` evaluated in float64, and the latter's max |value|."""
        reference = copy.deepcopy(network).double()
        with torch.inference_mode():
            expected = reference(features)
            weight, bias = self.first
            pre = torch.addmm(bias.double(), features, weight.double().T).to(weight.dtype)
            got = torch.empty(expected.shape, dtype=torch.float32, device=pre.device)
            self.head(pre, (pre.view(-1), torch.empty_like(pre).view(-1)), got)
            error = float((got.double() - expected).abs().max())
        return error, float(expected.abs().max())

    def check_error(self, features: torch.Tensor, network: SirenNet) -> float:
        """Raise :class:`~xsatclip.errors.PrecisionError` when this head's max error on
        ``features`` exceeds the int8 storage bound of the model's amplitude; else return
        the error."""
        error, amplitude = self.max_error(features, network)
        bound = INT8_BOUND_PER_AMPLITUDE * amplitude
        if not np.isfinite(error) or error > bound:
            raise PrecisionError(
                f"the bfloat16 head's max error on a {CHECK_GRID[0]} x {CHECK_GRID[1]} check "
                f"grid is {error:.3g}, above the int8 storage bound {bound:.3g} (scale / 2); "
                "use dtype='float32' (devices with float32 products, GPUs, run the split "
                "bfloat16 head within it)")
        return error
