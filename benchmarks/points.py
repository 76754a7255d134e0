"""Point sampling from a cube against the exact encoder, on the same points in the same run.

    python benchmarks/points.py                 # global 0.25 degree L = 40 cube (~1 GB, cached)
    python benchmarks/points.py --bbox -30,-30,30,30 --sizes 1,100,10000   # a quick run
    python benchmarks/points.py --throughput    # also precompute vs encoder-only
    python benchmarks/points.py --inner 1       # another inner chunk side, to compare

The cube (bundled ``bluemarble-l40``, float32) is built once with ``xsatclip.precompute``
into ``--store-dir`` (default ``$TMPDIR/xsatclip-bench-points``) and reused while complete.
For 1, 100, 10,000 and 1,000,000 random points (uniform on the sphere within the cube),
``xsatclip.sample`` from the store (nearest, linear) and the exact encoder
(``encoder.encode``, what ``method="exact"`` runs) are timed, best of 3 (of 2 at 10^6
points: the first call maps the whole cube's pages); bytes read per point are counted in the
point reader (shard indexes and inner chunks: every byte it checksums). Targets (issue 13):
100 points < 50 ms; 10,000 points >= 5x the exact encoder; <= 256 KiB read per point;
end-to-end precompute >= 80% of encoder-only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import xsatclip
from xsatclip import cube
from xsatclip.cube import layout
from xsatclip.cube import points as cube_points
from xsatclip.raster.geometry import uniform_on_sphere

MODEL = "bluemarble-l40"


def build(store: Path, resolution: float, bbox, inner: int) -> float:
    """Seconds spent building the cube (0 when a complete one is reused)."""
    if store.exists():
        info = cube.info(store)
        if info["chunks_done"] == info["chunks_total"]:
            return 0.0
    start = time.perf_counter()
    xsatclip.precompute(store, resolution=resolution, bbox=bbox, model=MODEL, progress=False,
                        overwrite=True, inner_chunks=inner)
    return time.perf_counter() - start


class ByteCounter:
    """Counts the bytes the point reader checksums: shard indexes and inner chunks."""

    def __init__(self) -> None:
        self.total = 0
        reader = cube_points.PointReader
        shards, sources = reader._shards, reader._sources

        def counted_shards(this, keys, count):
            self.total += len(keys) * (count * cube_points.INDEX_ENTRY + 4)
            return shards(this, keys, count)

        def counted_sources(this, keys, wanted, whole=False):
            chunks = sum(np.unique(w).size for w in wanted)
            self.total += chunks * (this._chunk_size + 4)
            return sources(this, keys, wanted, whole)

        reader._shards, reader._sources = counted_shards, counted_sources


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(store: Path, sizes: list[int], bbox) -> list[dict]:
    encoder = xsatclip.load_model(MODEL, device="cpu")
    counter = ByteCounter()
    rng = np.random.default_rng(0)
    west, south, east, north = bbox
    xsatclip.sample(store, [0.5 * (west + east)], [0.5 * (south + north)])  # warm-up
    encoder.encode(np.array([0.0]), np.array([0.0]))
    rows = []
    for n in sizes:
        lon, lat = uniform_on_sphere(rng, n, bbox)
        repeats = 2 if n >= 1_000_000 else 3  # 10^6: the first call maps the cube's pages
        exact = best(lambda lon=lon, lat=lat: encoder.encode(lon, lat), repeats)
        for method in ("nearest", "linear"):
            counter.total = 0
            seconds = best(lambda lon=lon, lat=lat, method=method: xsatclip.sample(
                store, lon, lat, method=method), repeats)
            rows.append({"n": n, "method": method, "seconds": seconds, "exact": exact,
                         "bytes": counter.total / repeats / n})
    return rows


def throughput(resolution: float, bbox, store_dir: str, repeats: int = 2
               ) -> tuple[float, float]:
    """(end-to-end points/s, encoder-only points/s) of precompute at ``resolution``: after one
    warm-up run of each, the best of ``repeats`` runs of each, alternated (each precompute
    into a fresh store)."""
    import dask

    sys.path.insert(0, str(Path(__file__).parent))
    from run import _cube_encoder

    encoder = xsatclip.load_model(MODEL, device="cpu")
    grid = xsatclip.grid(resolution, bbox=bbox)
    lat, lon = grid["lat"].values, grid["lon"].values
    threads = os.cpu_count() or 1
    best = {True: 0.0, False: 0.0}
    with dask.config.set(num_workers=threads):
        for run in range(1 + repeats):
            for end_to_end in (True, False):
                with tempfile.TemporaryDirectory(dir=store_dir) as tmp:
                    start = time.perf_counter()
                    if end_to_end:
                        xsatclip.precompute(Path(tmp) / "t.zarr", resolution=resolution,
                                            bbox=bbox, model=encoder, progress=False)
                    else:
                        _cube_encoder(encoder, lat, lon, threads)
                    rate = lat.size * lon.size / (time.perf_counter() - start)
                if run:  # run 0 warms up
                    best[end_to_end] = max(best[end_to_end], rate)
    return best[True], best[False]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolution", type=float, default=0.25)
    parser.add_argument("--bbox", default="-180,-90,180,90", help="west,south,east,north")
    parser.add_argument("--sizes", default="1,100,10000,1000000")
    parser.add_argument("--store-dir", default=os.path.join(tempfile.gettempdir(),
                                                            "xsatclip-bench-points"))
    parser.add_argument("--inner", type=int, default=layout.INNER_SIDE,
                        help="inner chunk side (cells) of the cube built, to compare layouts")
    parser.add_argument("--throughput", action="store_true",
                        help="also time precompute against encoder-only (two full builds)")
    args = parser.parse_args(argv)
    bbox = tuple(float(v) for v in args.bbox.split(","))
    sizes = [int(v) for v in args.sizes.split(",")]
    os.makedirs(args.store_dir, exist_ok=True)
    extent = "_".join(f"{v:g}" for v in bbox)
    name = f"l40-{args.resolution:g}-{extent}-inner{args.inner}.zarr"
    store = Path(args.store_dir) / name
    built = build(store, args.resolution, bbox, args.inner)
    info = cube.info(store)
    how = f"built in {built:.0f} s" if built else "reused"
    print(f"cube: {store} ({how}), "
          f"dims {info['dims']}, shards {info['chunks']}, inner chunks {info['inner_chunks']}")
    print(f"CPUs: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    rows = run(store, sizes, bbox)
    print("\n| points | method | cube ms | cube points/s | exact encoder ms | speed-up | "
          "bytes read / point |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['n']:,} | {r['method']} | {r['seconds'] * 1e3:,.1f} | "
              f"{r['n'] / r['seconds']:,.0f} | {r['exact'] * 1e3:,.1f} | "
              f"{r['exact'] / r['seconds']:.1f}x | {r['bytes'] / 1024:,.1f} KiB |")
    print()
    for r in rows:
        if r["n"] == 100:
            print(f"target 100 points < 50 ms ({r['method']}): {r['seconds'] * 1e3:.1f} ms "
                  f"{'PASS' if r['seconds'] < 0.05 else 'FAIL'}")
        if r["n"] == 10_000:
            ratio = r["exact"] / r["seconds"]
            print(f"target 10,000 points >= 5x exact ({r['method']}): {ratio:.1f}x "
                  f"{'PASS' if ratio >= 5 else 'FAIL'}")
    worst = max(r["bytes"] for r in rows)
    print(f"target <= 256 KiB read per point: worst {worst / 1024:.1f} KiB "
          f"{'PASS' if worst <= 256 * 1024 else 'FAIL'}")
    if args.throughput:
        end_to_end, encoder_only = throughput(args.resolution, bbox, args.store_dir)
        ratio = end_to_end / encoder_only
        print(f"precompute {end_to_end:,.0f} points/s, encoder-only {encoder_only:,.0f} "
              f"points/s: {100 * ratio:.0f}% {'PASS' if ratio >= 0.8 else 'FAIL'} (>= 80%)")


if __name__ == "__main__":
    main()
