"""xsatclip on a CUDA GPU, in one command:

    python benchmarks/gpu.py [--resolution 0.1] [--points 2000000] [--cube-dtype int8]

For an L = 40, capacity 512 encoder (random float32 weights, seed 0, the published ViT16-L40
shape) in float32 and bfloat16 (where the GPU has it): points/s of ``encode`` (pointwise,
basis on the GPU), of ``encode_grid`` over a global 1 degree grid, then the time of a global
``--resolution`` cube (0.1 degree: 3600 x 1800 = 6.48 M cells): encoder only (encode_grid on
precompute's chunks, results discarded) and end-to-end (``precompute`` into a temporary Zarr
store in ``--cube-dtype``). Batch sizes come from free GPU memory (the backend's policy).
Without a CUDA GPU it says so and measures nothing (exit status 1).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

LEVEL, CAPACITY = 40, 512


def encoder(dtype: str):
    """The benchmarked encoder on the GPU (random weights, seed 0)."""
    import torch

    import xsatclip

    torch.manual_seed(0)
    config = xsatclip.ModelConfig(level=LEVEL, capacity=CAPACITY)
    return xsatclip.LocationEncoder(config, config.build_network().state_dict(),
                                    source="random", dtype=dtype, device="cuda")


def timed(fn, repeats: int = 3) -> float:
    """Best wall time of ``fn`` over ``repeats`` after one warm-up (GPU synchronised)."""
    import torch

    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def cube_times(model, resolution: float, cube_dtype: str) -> tuple[float, float]:
    """Seconds of the encoder alone over the cube's chunks, and of ``precompute``."""
    import xsatclip
    from xsatclip.cube import default_chunk

    grid = xsatclip.grid(resolution)
    lat, lon = grid["lat"].values, grid["lon"].values
    ny, nx = default_chunk(lat.size), default_chunk(lon.size)

    def encoder_only():
        for i in range(0, lat.size, ny):
            for j in range(0, lon.size, nx):
                model.encode_grid(lon[j:j + nx], lat[i:i + ny])

    start = time.perf_counter()
    encoder_only()
    encoder_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="xsatclip-gpu-") as tmp:
        start = time.perf_counter()
        xsatclip.precompute(Path(tmp) / "cube.zarr", resolution=resolution, model=model,
                            device="cuda", dtype=cube_dtype, compute_dtype=model.dtype,
                            progress=False)
        cube_seconds = time.perf_counter() - start
    return encoder_seconds, cube_seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=float, default=0.1, help="cube cell, degrees")
    parser.add_argument("--points", type=int, default=2_000_000, help="pointwise N")
    parser.add_argument("--cube-dtype", default="int8", choices=("float32", "float16", "int8"))
    parser.add_argument("--no-cube", action="store_true", help="skip the cube timings")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    import xsatclip

    if not torch.cuda.is_available():
        sys.exit(f"benchmarks/gpu.py: torch {torch.__version__} sees no CUDA GPU (CUDA build: "
                 f"{torch.version.cuda}); nothing measured. Run it on a machine with one.")
    from xsatclip.model.backend import bfloat16_support

    device = torch.device("cuda")
    print(f"GPU: {torch.cuda.get_device_name(device)}, torch {torch.__version__}, "
          f"bfloat16: {bfloat16_support(device)}")
    rng = np.random.default_rng(0)
    lon = rng.uniform(-180, 180, args.points)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, args.points)))
    grid = xsatclip.grid(1.0)
    glat, glon = grid["lat"].values, grid["lon"].values
    print(f"encoder L = {LEVEL}, capacity {CAPACITY}; cube {args.resolution:g} degree, "
          f"stored {args.cube_dtype}")
    print("| dtype | encode points/s | encode_grid points/s | cube encoder only (s) "
          "| cube end-to-end (s) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for dtype in ("float32", "bfloat16"):
        model = encoder(dtype)
        if model.dtype != dtype:
            print(f"| {dtype} | fell back to {model.dtype} | | | |")
            continue
        pointwise = args.points / timed(lambda m=model: m.encode(lon, lat))
        separable = glat.size * glon.size / timed(lambda m=model: m.encode_grid(glon, glat))
        cube = ("-", "-") if args.no_cube else tuple(
            f"{s:.1f}" for s in cube_times(model, args.resolution, args.cube_dtype))
        print(f"| {dtype} | {pointwise:,.0f} | {separable:,.0f} | {cube[0]} | {cube[1]} |",
              flush=True)


if __name__ == "__main__":
    main()
