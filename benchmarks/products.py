"""Products derived from a cube: COG export, overview levels, PCA preview, STAC Item.

    python benchmarks/products.py [--resolution 0.25] [--levels 3] [--store-dir DIR]

Builds (once, untimed) a global band-first cube of the bundled ``bluemarble-l40`` model in
the v2 layout (``embeddings`` (embedding, lat, lon) float32, Zarr v3 shards of up to 144 x 144
cells with inner chunks of up to 16 x 16 and crc32c), then times each product in a fresh
subprocess (so its peak RSS is its own), beside an in-memory baseline in the same run:

* COG: ``export_cog`` (windowed staging GeoTIFF + GDAL copy) vs rioxarray's
  ``to_raster(driver="COG")`` of the loaded cube with the same creation options (rasterio
  buffers a COG write in memory);
* overviews: ``build_overviews`` (one output shard at a time) vs xarray ``coarsen().mean()``
  of the loaded cube, level after level, written with ``to_zarr``;
* preview (``build_preview``, 20,000 cells) and the STAC Item: no baseline;
* imports: the process after ``import xsatclip.cube`` (torch, GDAL, zarr), the floor of the
  peak RSS of every row.

Prints a markdown table (seconds, output MiB, peak RSS MiB, ratios to the baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COG_OPTIONS = dict(blocksize=128, compress="ZSTD", predictor=3, overview_resampling="average",
                   bigtiff="IF_SAFER")


def build_cube(store: Path, resolution: float) -> None:
    import xarray as xr  # noqa: F401
    import zarr.codecs

    import xsatclip

    emb = xsatclip.grid(resolution).satclip.embed(model="bluemarble-l40", device="cpu")
    emb = emb.compute()  # (embedding, lat, lon)
    ny, nx = emb.sizes["lat"], emb.sizes["lon"]
    inner = max(d for d in range(1, 17) if ny % d == 0 and nx % d == 0)
    shard = [max(m for m in range(inner, min(144, n) + 1, inner) if n % m == 0)
             for n in (ny, nx)]
    ds = emb.to_dataset()  # "embeddings", CF grid_mapping -> spatial_ref
    ds.attrs = dict(emb.attrs, title="benchmark cube")
    encoding = {"embeddings": {"chunks": (256, inner, inner), "shards": (256, *shard),
                               "compressors": [zarr.codecs.Crc32cCodec()]}}
    ds.chunk({"lat": shard[0], "lon": shard[1]}).to_zarr(store, mode="w", zarr_format=3,
                                                          encoding=encoding)


def size_mib(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def run_row(row: str, store: Path, work: Path, levels: int) -> dict:
    """One product, in this process: seconds and the output's MiB."""
    import warnings

    import xarray as xr

    warnings.simplefilter("ignore")
    from xsatclip.cube import build_overviews, build_preview, export_cog, write_stac_item

    start = time.perf_counter()
    if row == "imports":  # the floor of every row: xsatclip.cube, torch, GDAL, zarr
        out = store / "zarr.json"
    elif row == "cog":
        out = export_cog(store, work / "cube.tif", overwrite=True)
    elif row == "cog-baseline":
        import rioxarray  # noqa: F401

        emb = xr.open_zarr(store).embeddings.load()
        emb.rio.to_raster(work / "baseline.tif", driver="COG", **COG_OPTIONS)
        out = work / "baseline.tif"
    elif row == "overviews":
        build_overviews(store, levels)
        out = store / "overviews"
    elif row == "overviews-baseline":
        level = xr.open_zarr(store).embeddings.load()
        out = work / "baseline-overviews.zarr"
        for k in range(1, levels + 1):
            level = level.coarsen(lat=2, lon=2, boundary="trim").mean().astype("float32")
            level.to_dataset(name="embeddings").to_zarr(out, group=str(k), mode="w",
                                                        zarr_format=3)
    elif row == "preview":
        build_preview(store)
        out = store / "preview"
    elif row == "stac":
        write_stac_item(store)
        out = Path(str(store) + ".stac.json")
    else:
        raise SystemExit(f"unknown row {row}")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "mib": size_mib(Path(out)), "rss_mib": peak_rss_mib()}


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=float, default=0.25)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--store-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.store_dir / f"xsatclip-products-{args.resolution:g}"
    store = work / "cube.zarr"
    if args.row:
        print(json.dumps(run_row(args.row, store, work, args.levels)))
        return
    work.mkdir(parents=True, exist_ok=True)
    if not (store / "zarr.json").exists():
        start = time.perf_counter()
        build_cube(store, args.resolution)
        print(f"built {store} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(f"cube: {store} ({size_mib(store / 'embeddings'):.0f} MiB float32, "
          f"{args.resolution:g} degree); load average {os.getloadavg()[0]:.1f} at start")
    results = {}
    for row in ("imports", "cog", "cog-baseline", "overviews", "overviews-baseline", "preview",
                "stac"):
        if row == "overviews-baseline":
            shutil.rmtree(work / "baseline-overviews.zarr", ignore_errors=True)
        done = subprocess.run([sys.executable, __file__, "--row", row, "--resolution",
                               str(args.resolution), "--levels", str(args.levels),
                               "--store-dir", str(args.store_dir)],
                              capture_output=True, text=True, check=True)
        results[row] = json.loads(done.stdout.strip().splitlines()[-1])
    print("\n| product | seconds | output MiB | peak RSS MiB | vs baseline (time, RSS) |")
    print("| --- | --- | --- | --- | --- |")
    for row, result in results.items():
        base = results.get(f"{row}-baseline")
        ratio = (f"{base['seconds'] / result['seconds']:.2f}x faster, "
                 f"{result['rss_mib'] / base['rss_mib']:.2f}x the RSS" if base else "")
        print(f"| {row} | {result['seconds']:.1f} | {result['mib']:.1f} | "
              f"{result['rss_mib']:.0f} | {ratio} |")
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
