"""Rows of benchmarks/run.py against torchgeo's SatCLIP encoder (``--section torchgeo``).

torchgeo is not a dependency of xsatclip (not even a dev one): its 0.10 wheel needs Python
>= 3.12, einops and torchvision. Get the wheel alone (pure Python) with

    pip download "torchgeo==0.10.1" --no-deps --python-version 3.12 --only-binary=:all: \\
        -d benchmarks/.torchgeo

(or point ``TORCHGEO_WHEEL`` at one). :func:`torchgeo_satclip` executes its
``torchgeo/models/satclip.py`` straight from the wheel, with two stand-ins for imports the
encoder does not compute with: ``einops.rearrange`` (only ``'b -> b 1'`` and ``'m -> 1 m'``,
i.e. unsqueeze) and torchvision's ``Weights``/``WeightsEnum`` (metadata of the published
checkpoint). It then loads the benchmarked encoder's weights into it.
"""

from __future__ import annotations

import enum
import os
import sys
import time
import types
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TORCHGEO_BATCH = 4096  # points per forward pass of torchgeo's encoder


def torchgeo_wheel() -> Path | None:
    """The torchgeo 0.10 wheel: ``TORCHGEO_WHEEL``, else benchmarks/.torchgeo/*.whl, else
    None."""
    if os.environ.get("TORCHGEO_WHEEL"):
        return Path(os.environ["TORCHGEO_WHEEL"])
    wheels = sorted((HERE / ".torchgeo").glob("torchgeo-0.10*.whl"))
    return wheels[-1] if wheels else None


def _stand_ins() -> dict[str, types.ModuleType]:
    def rearrange(tensor, pattern: str):
        source, target = (side.split() for side in pattern.split("->"))
        if target == [*source, "1"]:
            return tensor.unsqueeze(-1)
        if target == ["1", *source]:
            return tensor.unsqueeze(0)
        raise NotImplementedError(pattern)

    einops = types.ModuleType("einops")
    einops.rearrange = rearrange  # type: ignore[attr-defined]
    api = types.ModuleType("torchvision.models._api")

    class Weights:
        def __init__(self, url, transforms, meta):
            self.url, self.transforms, self.meta = url, transforms, meta

    api.Weights, api.WeightsEnum = Weights, enum.Enum  # type: ignore[attr-defined]
    return {"einops": einops, "torchvision.models._api": api}


def torchgeo_satclip(state_dict, level: int, capacity: int, embed_dim: int):
    """torchgeo's ``SatCLIP`` module with xsatclip's SIREN ``state_dict`` loaded, in eval
    mode."""
    path = torchgeo_wheel()
    if path is None:
        sys.exit("no torchgeo 0.10 wheel: see benchmarks/versus.py's doc for the pip command")
    with zipfile.ZipFile(path) as wheel:
        source = wheel.read("torchgeo/models/satclip.py").decode()
    module = types.ModuleType("torchgeo_satclip")
    saved = {name: sys.modules.get(name) for name in _stand_ins()}
    sys.modules.update(_stand_ins())
    try:
        exec(compile(source, "torchgeo/models/satclip.py", "exec"), module.__dict__)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    model = module.SatCLIP(legendre_polys=level, capacity=capacity, embed_dim=embed_dim)
    model.load_state_dict({f"nnet.{k}": v for k, v in state_dict.items()}, strict=True)
    return model.eval()


def run_torchgeo(n: int, repeats: int, model, points, siren_only: bool = False) -> dict:
    """torchgeo's encoder on ``n`` points in batches of :data:`TORCHGEO_BATCH` (float32,
    intra-op threaded, as its users run it). ``siren_only``: its SIREN alone, on basis
    features computed beforehand (by xsatclip, untimed): a stricter baseline."""
    import numpy as np
    import torch

    import xsatclip

    encoder = model()
    net = torchgeo_satclip(encoder.network.state_dict(), encoder.level,
                           encoder.config.capacity, encoder.embed_dim)
    lon, lat = points(n)
    coords = torch.stack([lon, lat], dim=1).float()
    if siren_only:
        coords = torch.from_numpy(xsatclip.spherical_harmonics(
            lon.numpy(), lat.numpy(), encoder.level, dtype=np.float32))
    forward = net.nnet if siren_only else net

    def fn(x):
        with torch.inference_mode():
            for start in range(0, x.shape[0], TORCHGEO_BATCH):
                forward(x[start:start + TORCHGEO_BATCH])

    fn(coords[:256])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(coords)
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "points": n}


def run_accessor(resolution: float, threads: int, repeats: int, encoder) -> dict:
    """``grid.satclip.embed(model=encoder).compute()`` over a global grid, Dask's threaded
    scheduler with ``threads`` workers (each chunk single-threaded)."""
    import dask

    import xsatclip

    grid = xsatclip.grid(resolution)
    with dask.config.set(num_workers=threads, scheduler="threads"):
        grid.satclip.embed(model=encoder, dtype=encoder.dtype, device="cpu").compute()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            grid.satclip.embed(model=encoder, dtype=encoder.dtype, device="cpu").compute()
            best = min(best, time.perf_counter() - start)
    return {"seconds": best, "points": grid.sizes["lat"] * grid.sizes["lon"],
            "dtype": encoder.dtype}


VERSUS = {  # row key: what it is, compared with torchgeo's encoder-only rate
    "torchgeo-siren": "torchgeo's SIREN alone (basis given, untimed)",
    "encoder": "xsatclip pointwise, encode float32",
    "accessor": "xsatclip grid via the accessor, float32",
    "accessor-bf16": "xsatclip grid via the accessor, dtype='bfloat16'",
    "cube-encoder-bf16": "xsatclip encoder only on the cube's chunks, bfloat16",
    "cube-bf16-int8": "xsatclip end-to-end cube, bfloat16 head stored int8",
}
TARGETS = (  # (name, row, baseline row, threshold)
    ("float32 grid via accessor vs torchgeo", "accessor", "torchgeo", 2.5),
    ("bfloat16 grid via accessor vs torchgeo", "accessor-bf16", "torchgeo", 5.0),
    ("end-to-end bfloat16 int8 cube vs its encoder only", "cube-bf16-int8",
     "cube-encoder-bf16", 0.8),
)


def report(results: dict[str, dict]) -> None:
    """The side-by-side table against torchgeo and its target lines."""
    if "torchgeo" not in results:
        return
    rate = {k: r["points"] / r["seconds"] for k, r in results.items()}
    print()
    siren = rate.get("torchgeo-siren")
    print("| vs torchgeo 0.10 SatCLIP (same weights, same run) | points/s | vs torchgeo "
          "| vs its SIREN alone |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| torchgeo encoder, float32, batches of {TORCHGEO_BATCH} "
          f"| {rate['torchgeo']:,.0f} | 1.00x | - |")
    for key, label in VERSUS.items():
        if key in rate:
            dtype = results[key].get("dtype")
            shown = f"{label} (computed in {dtype})" if dtype else label
            vs_siren = f"{rate[key] / siren:.2f}x" if siren else "-"
            print(f"| {shown} | {rate[key]:,.0f} | {rate[key] / rate['torchgeo']:.2f}x "
                  f"| {vs_siren} |")
    print()
    for name, key, base, threshold in TARGETS:
        if key in rate and base in rate:
            value = rate[key] / rate[base]
            note = results[key].get("dtype")
            note = f" [computed in {note}]" if note and "bfloat16" in name else ""
            print(f"target {name}: {'PASS' if value >= threshold else 'FAIL'}, "
                  f"{value:.2f} (>= {threshold:g}){note}")
