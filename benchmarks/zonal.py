"""Zonal statistics benchmark: polygons per second and peak memory over a 0.25-degree cube.

    python benchmarks/zonal.py [--quick] [--store CUBE] [--polygons N] [--work-dir DIR]

1. Builds the cube (unless ``--store`` names one): ``xsatclip.precompute(...,
   resolution=0.25, level=10)`` with the bundled model, float32, 720 x 1440 x 256 (1.06 GB,
   chunks of 120 x 120 cells); ``--quick``: 1 degree and 300 polygons.
2. Draws ``--polygons`` (default 3000) random star-shaped polygons, 12 to 64 vertices, radii
   log-uniform between 0.2 and 5 degrees, centres uniform on the sphere (seed 0), plus two
   caps around the poles and one across the dateline (in each 10th of the set at most).
3. Times, each row in a fresh subprocess (so that its peak RSS is its own), after importing
   everything and compiling on one polygon:

   * ``xsatclip.areas.zonal`` (mean) on the lazy cube, on all cores and on one thread,
     best of 3 calls (each reads the cube anew);
   * ``naive per polygon``: for each polygon, read its bounding box from the lazy cube,
     clip every cell with shapely and take the exact spherical areas, then a weighted mean
     (what one writes first; the same weights, so the same numbers);
   * ``exactextract``: ``exact_extract(cube, polygons, "mean(coverage_weight=
     area_spherical_m2)")`` on the cube as an xarray raster (256 bands), raster-sequential.

   The naive row runs on the first 10% of the polygons, exactextract on the first 1%
   (raster-sequential reads each block once per band), xsatclip on all; rates are polygons
   per second, ratios against xsatclip's row of the same run.

Prints the machine, one markdown table and the largest difference between the methods' means
(for exactextract also without the polygons that cross the dateline: it does not wrap).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROWS = ("xsatclip", "xsatclip, 1 thread", "naive per polygon", "exactextract")
SHARE = {"naive per polygon": 10, "exactextract": 100}  # rows run on 1 / SHARE of the polygons
REPEATS = 3  # xsatclip rows: best of REPEATS timed calls (the baselines run once)


def random_polygons(n: int, seed: int = 0):
    """``n`` star-shaped lon/lat polygons (see the module docstring); the first of each
    tenth is special: two pole caps and a dateline crossing in the first three tenths."""
    import shapely

    from xsatclip.raster.geometry import uniform_on_sphere

    rng = np.random.default_rng(seed)
    lon, lat = uniform_on_sphere(rng, n)
    radius = np.exp(rng.uniform(np.log(0.2), np.log(5.0), n))
    polygons = []
    for x, y, r in zip(lon, lat, radius, strict=True):
        k = int(rng.integers(12, 65))
        angle = np.sort(rng.uniform(0, 2 * np.pi, k))
        reach = r * rng.uniform(0.5, 1.0, k)
        px = x + reach * np.cos(angle) / max(np.cos(np.radians(y)), 0.2)
        py = np.clip(y + reach * np.sin(angle), -89.9, 89.9)
        polygons.append(shapely.make_valid(shapely.Polygon(np.column_stack([px, py]))))
    step = max(n // 10, 1)
    cap = [(x, 80 + 3 * np.sin(np.radians(4 * x))) for x in np.linspace(-180, 180, 181)]
    polygons[0] = shapely.Polygon([*cap, (180, 90), (-180, 90)])
    if n > step:
        polygons[step] = shapely.Polygon([(-180, -90), (180, -90), (180, -75), (-180, -75)])
    if n > 2 * step:
        polygons[2 * step] = shapely.box(175.5, -20.2, 184.1, -14.9)
    polygons = [p if p.geom_type in ("Polygon", "MultiPolygon")
                else shapely.union_all([q for q in shapely.get_parts(p)
                                        if q.geom_type == "Polygon"]) for p in polygons]
    return np.array(polygons, dtype=object)


def build_cube(path: Path, resolution: float) -> None:
    import dask.base

    import xsatclip

    # Import dask.distributed here, once: precompute's threads otherwise may race to import
    # it first (dask's get_scheduler does) and fail with a circular-import ImportError.
    dask.base.get_scheduler(scheduler="threads")
    start = time.perf_counter()
    xsatclip.precompute(path, resolution=resolution, level=10, progress=False)
    print(f"cube: {path} ({time.perf_counter() - start:.0f} s to build)", file=sys.stderr)


def _lazy_cube(store: str):
    import xsatclip

    return xsatclip.open_cube(store).embeddings


def run_xsatclip(store: str, polygons, workers: int | None) -> np.ndarray:
    from xsatclip.areas import zonal

    return zonal(_lazy_cube(store), polygons, workers=workers).values


def run_naive(store: str, polygons) -> np.ndarray:
    """Per polygon: read the bounding box of cells, clip each cell, weighted mean."""
    import shapely

    from xsatclip.areas.overlap import spherical_areas

    cube = _lazy_cube(store)
    lat, lon = cube.lat.values, cube.lon.values
    step = abs(lat[1] - lat[0])
    out = []
    for polygon in polygons:
        pieces = []
        for shift in (-360.0, 0.0, 360.0):  # the dateline by hand: each 360-degree copy
            moved = shapely.transform(polygon, lambda xy, s=shift: xy + np.array([s, 0.0]))
            west, south, east, north = moved.bounds
            cols = np.flatnonzero((lon + step / 2 > west) & (lon - step / 2 < east))
            rows = np.flatnonzero((lat + step / 2 > south) & (lat - step / 2 < north))
            if cols.size and rows.size:
                pieces.append((moved, rows, cols))
        total, weight = 0.0, 0.0
        for moved, rows, cols in pieces:
            block = cube.isel(lat=slice(rows[0], rows[-1] + 1),
                              lon=slice(cols[0], cols[-1] + 1)).transpose(..., "embedding").values
            y, x = np.meshgrid(lat[rows], lon[cols], indexing="ij")
            cells = shapely.box(x - step / 2, y - step / 2, x + step / 2, y + step / 2)
            w = spherical_areas(shapely.intersection(moved, cells.ravel())).reshape(y.shape)
            total = total + np.einsum("ij,ije->e", w, block, dtype=np.float64)
            weight += w.sum()
        out.append(total / weight)
    return np.array(out)


def run_exactextract(store: str, polygons) -> np.ndarray:
    import geopandas
    import rioxarray  # noqa: F401
    from exactextract import exact_extract

    cube = _lazy_cube(store).transpose("embedding", "lat", "lon").rename(lat="y", lon="x")
    raster = cube.rio.write_crs(4326)
    frame = geopandas.GeoDataFrame(geometry=polygons, crs=4326)
    table = exact_extract(raster, frame, "mean(coverage_weight=area_spherical_m2)",
                          output="pandas", strategy="raster-sequential")
    return table.to_numpy(np.float64)


def run_row(row: str, store: str, polygons_path: str, out: str) -> None:
    """Inside the row's subprocess: warm up on one polygon, time, write JSON + means."""
    import geopandas

    polygons = geopandas.read_parquet(polygons_path).geometry.to_numpy()
    if row in SHARE:
        polygons = polygons[: max(len(polygons) // SHARE[row], 1)]
    runner = {ROWS[0]: lambda p: run_xsatclip(store, p, None),
              ROWS[1]: lambda p: run_xsatclip(store, p, 1),
              ROWS[2]: lambda p: run_naive(store, p),
              ROWS[3]: lambda p: run_exactextract(store, p)}[row]
    runner(polygons[3:4])  # imports, Numba compilation
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = float("inf")
    for _ in range(1 if row in SHARE else REPEATS):
        start = time.perf_counter()
        means = runner(polygons)
        seconds = min(seconds, time.perf_counter() - start)
    np.save(out + ".npy", means)
    Path(out).write_text(json.dumps({
        "polygons": len(polygons), "seconds": seconds, "rss_before_mib": rss_before,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 degree, 300 polygons")
    parser.add_argument("--store", help="an existing cube (default: build one)")
    parser.add_argument("--polygons", type=int, help="default 3000 (300 with --quick)")
    parser.add_argument("--work-dir", type=Path, help="where the cube goes (default: $TMPDIR)")
    parser.add_argument("--row", choices=ROWS, help=argparse.SUPPRESS)
    parser.add_argument("--polygons-file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        return run_row(args.row, args.store, args.polygons_file, args.out)

    n = args.polygons or (300 if args.quick else 3000)
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        store = args.store or str(Path(tmp) / "cube.zarr")
        if not args.store:
            build_cube(Path(store), 1.0 if args.quick else 0.25)
        import geopandas
        import shapely

        polygons = random_polygons(n)
        polygons_file = str(Path(tmp) / "polygons.parquet")
        geopandas.GeoDataFrame(geometry=polygons, crs=4326).to_parquet(polygons_file)
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
              f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f} at start")
        import xsatclip

        info = xsatclip.open_cube(store).embeddings
        print(f"cube: {dict(info.sizes)}, chunks {info.data.chunksize}, {info.dtype}")
        print(f"polygons: {n}, {int(shapely.get_num_coordinates(polygons).sum())} vertices, "
              f"area {np.median(shapely.area(polygons)):.2f} square degrees (median)\n")
        results = {}
        for row in ROWS:
            out = str(Path(tmp) / f"row{ROWS.index(row)}.json")
            subprocess.run([sys.executable, __file__, "--row", row, "--store", store,
                            "--polygons-file", polygons_file, "--out", out], check=True)
            results[row] = json.loads(Path(out).read_text()), np.load(out + ".npy")
        reference_rate = results[ROWS[0]][0]["polygons"] / results[ROWS[0]][0]["seconds"]
        print("| method | polygons | seconds | polygons/s | vs xsatclip | peak RSS (MiB) | "
              "RSS before the timed call (MiB) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for row, (figures, _) in results.items():
            rate = figures["polygons"] / figures["seconds"]
            print(f"| {row} | {figures['polygons']:,} | {figures['seconds']:.2f} | "
                  f"{rate:,.{0 if rate >= 10 else 2}f} "
                  f"| {rate / reference_rate:.2f} | {figures['peak_rss_mib']:.0f} | "
                  f"{figures['rss_before_mib']:.0f} |")
        reference = results[ROWS[0]][1]
        bounds = shapely.bounds(polygons)
        wraps = (bounds[:, 0] < -180) | (bounds[:, 2] > 180)
        print()
        for row, (_, means) in results.items():
            if row != ROWS[0]:
                difference = np.abs(means - reference[: len(means)]).max(axis=1)
                line = f"largest |mean - xsatclip's| of {row}: {difference.max():.1e}"
                if wraps[: len(means)].any():
                    line += (f" ({difference[~wraps[: len(means)]].max():.1e} without the "
                             f"{wraps[: len(means)].sum()} polygons across the dateline)")
                print(line)
        print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
