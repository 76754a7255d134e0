"""Max error of reduced-precision SIREN heads against float64, beside the storage bounds.

    python benchmarks/bf16_error.py [--points N] [--model bluemarble-l40]

Over a Fibonacci lattice of N points (default 20,000), each head takes the float64 first-layer
pre-activation (rounded to float32) and runs the layers after the first:

* ``float32``: float32 GEMMs (what ``dtype="float32"`` computes);
* ``bfloat16, bfloat16 products``: xsatclip's ``dtype="bfloat16"`` head as loaded on a CPU with
  bfloat16 GEMMs (torch's bfloat16 kernels: float32 accumulation, results rounded to
  bfloat16), run here with the capability declared;
* ``bfloat16, float32 products``: bfloat16 operands, exact products and float32 results (what
  CUDA's ``out_dtype=float32`` GEMMs give), emulated exactly by float32 GEMMs of the rounded
  operands;
* ``split hi+lo, 3 products``: each operand as a sum of two bfloat16 numbers, products
  hi*hi + hi*lo + lo*hi, with bfloat16 results or with float32 results.

Loading such a head checks its error and refuses one above the int8 bound
(``PrecisionError``); here that check is bypassed so the error can be measured. Bounds: int8
storage ``scale / 2`` (the cube codec's scale of the float32 model) and float16 storage's half
ulp at the largest embedding value.
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

import numpy as np
import torch

import xsatclip
from xsatclip.cube.codec import int8_scale
from xsatclip.model import encoder as encoder_module
from xsatclip.model.inference import InferenceWeights
from xsatclip.raster.geometry import fibonacci_lattice


def rounded(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.bfloat16).float()


def product(a: torch.Tensor, w: torch.Tensor, *, split: bool, float32_results: bool):
    """``a @ w.T`` with bfloat16 operands (split: hi + lo pairs)."""
    def mm(x, y):
        if float32_results:
            return rounded(x) @ rounded(y).T  # exact products, float32 accumulation
        return torch.mm(x.to(torch.bfloat16), y.to(torch.bfloat16).T).float()

    out = mm(a, w)
    if split:
        out = out + mm(a, w - rounded(w)) + mm(a - rounded(a), w)
    return out


def head(network, pre: torch.Tensor, **kind) -> np.ndarray:
    """The layers after the first from the float32 pre-activation (``kind``: None for
    float32 GEMMs, else :func:`product`'s options)."""
    x = torch.sin(pre)
    for layer in [*network.sine_layers[1:], network.last_layer]:
        w, b = layer.weight.float() * layer.w0, layer.bias.float() * layer.w0
        y = (x @ w.T if not kind else product(x, w, **kind)) + b
        x = torch.sin(y) if layer.activation else y
    return x.double().numpy()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--model", default="bluemarble-l40")
    args = parser.parse_args(argv)

    float64 = xsatclip.load_model(args.model, dtype="float64", device="cpu")
    float32 = xsatclip.load_model(args.model, device="cpu")
    lon, lat = fibonacci_lattice(args.points)
    expected = float64.encode(lon, lat)
    amplitude = float(np.abs(expected).max())
    bounds = {"int8 (scale / 2)": int8_scale(float32) / 2,
              "float16 (half ulp at max |value|)": float(np.spacing(np.float16(amplitude))) / 2}
    # Declare bfloat16 products, and measure (not refuse) what loading would check.
    with mock.patch.object(encoder_module, "bfloat16_support",
                           lambda device: "bfloat16 products"), \
            mock.patch.object(InferenceWeights, "check_error",
                              lambda self, features, network: None):
        production = xsatclip.load_model(args.model, dtype="bfloat16", device="cpu")

    network = float64.network
    first = network.sine_layers[0]
    features = torch.from_numpy(xsatclip.spherical_harmonics(lon, lat, float64.level,
                                                             dtype=np.float64))
    with torch.inference_mode():
        pre = ((features @ first.weight.T + first.bias) * first.w0).float()
        rows = {
            "float32": lambda: head(network, pre),
            "bfloat16, bfloat16 products (xsatclip dtype='bfloat16')":
                lambda: production.encode(lon, lat),
            "bfloat16, float32 products": lambda: head(network, pre, split=False,
                                                       float32_results=True),
            "split hi+lo, 3 products, bfloat16 results": lambda: head(
                network, pre, split=True, float32_results=False),
            "split hi+lo, 3 products, float32 results (xsatclip on CUDA)": lambda: head(
                network, pre, split=True, float32_results=True),
        }
        print(f"model {args.model}, {args.points:,} Fibonacci points, max |embedding| "
              f"{amplitude:.4f}")
        for name, bound in bounds.items():
            print(f"storage bound {name}: {bound:.3g}")
        print()
        print("| head | max abs error vs float64 | / int8 bound | / float16 bound | s |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, run in rows.items():
            start = time.perf_counter()
            error = float(np.abs(run() - expected).max())
            seconds = time.perf_counter() - start
            ratios = " | ".join(f"{error / bound:.3f}" for bound in bounds.values())
            print(f"| {name} | {error:.3g} | {ratios} | {seconds:.1f} |")
    print("\n(s: this CPU's time; where it lacks bfloat16 GEMMs, torch emulates them slowly.)")


if __name__ == "__main__":
    main()
