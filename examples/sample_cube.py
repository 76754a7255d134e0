"""Precompute a global embedding cube, then sample it at points: nearest, linear, exact.

    python examples/sample_cube.py [--out DIR] [--resolution DEG] [--points N] [--dtype D]
                                   [--model M]

1. ``xsatclip.precompute`` writes a global cube of ``--resolution`` degrees into
   ``DIR/cube.zarr`` (resumable: a rerun reuses it).
2. ``xsatclip.sample`` reads it at ``--points`` random points (uniform on the sphere) plus a
   few special ones (both sides of the dateline, in 0..360 convention, the poles) with
   ``nearest`` (the cell's value) and ``linear`` (bilinear between cell centres), and
   ``exact`` runs the cube's own model at the points (found from the cube's provenance).
3. Prints, per method, how far it is from exact (largest and mean absolute difference, and
   relative to the embeddings' typical size) and writes the table to ``differences.csv``,
   the samples to ``samples.nc``.

``--model`` takes anything ``xsatclip.load_model`` does; default: the bundled default model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import xsatclip
from xsatclip.raster.geometry import uniform_on_sphere

SPECIAL = {  # name: (lon, lat)
    "dateline west": (179.99, 12.3),
    "dateline east": (-179.99, 12.3),
    "same, 0..360": (180.01, 12.3),
    "north pole": (0.0, 90.0),
    "south pole": (123.0, -90.0),
}


def random_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform on the sphere: lon, lat in degrees."""
    return uniform_on_sphere(np.random.default_rng(seed), n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("example_output") / "sample_cube")
    parser.add_argument("--resolution", type=float, default=1.0, help="degrees (default 1)")
    parser.add_argument("--points", type=int, default=2000, help="random points (default 2000)")
    parser.add_argument("--dtype", choices=("float32", "float16", "int8"), default="float32")
    parser.add_argument("--model", help="model (default: the bundled default model)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    store = xsatclip.precompute(args.out / "cube.zarr", resolution=args.resolution,
                                model=args.model, dtype=args.dtype, progress=False)
    cube = xsatclip.open_cube(store)
    print(f"cube {Path(store).name}: {dict(cube.embeddings.sizes)} {args.dtype}, model "
          f"{cube.attrs['model_name']} ({time.perf_counter() - started:.1f} s)")

    lon, lat = random_points(args.points, seed=0)
    special_lon, special_lat = (np.array(v) for v in zip(*SPECIAL.values(), strict=True))
    lon, lat = np.concatenate([special_lon, lon]), np.concatenate([special_lat, lat])
    samples = {}
    for method in ("exact", "nearest", "linear"):
        started = time.perf_counter()
        samples[method] = xsatclip.sample(cube, lon, lat, method=method)
        print(f"  {method:<7} {lon.size} points in {time.perf_counter() - started:.2f} s")

    exact = samples["exact"].values
    scale = float(np.sqrt(np.mean(exact**2)))  # RMS of the embeddings' values
    rows = []
    for method in ("nearest", "linear"):
        error = np.abs(samples[method].values - exact)
        rows.append({"method": method, "max_abs": float(error.max()),
                     "mean_abs": float(error.mean()), "mean_abs_relative": error.mean() / scale})
    table = pd.DataFrame(rows).set_index("method")
    table.to_csv(args.out / "differences.csv")
    print(f"difference from exact (embedding values RMS {scale:.3g}):")
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))

    print("special points, linear vs exact (max abs difference):")
    for i, name in enumerate(SPECIAL):
        difference = np.abs(samples["linear"].values[i] - exact[i]).max()
        print(f"  {name:<14} ({lon[i]:g}, {lat[i]:g}): {difference:.3g}")
    methods = pd.Index(list(samples), name="sampling")
    xr.concat(list(samples.values()), dim=methods, combine_attrs="drop_conflicts").to_netcdf(
        args.out / "samples.nc")
    print(f"wrote {args.out / 'differences.csv'} and {args.out / 'samples.nc'}")


if __name__ == "__main__":
    main()
