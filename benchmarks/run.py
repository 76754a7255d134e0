"""xsatclip benchmark suite: basis, encoder (pointwise, separable grid) and end-to-end Zarr.

    python benchmarks/run.py [--quick] [--threads N] [--section {foundation,cube,all}]

Prints one markdown table for an L = 40, capacity 512 encoder (the published ViT16-L40
shape: 1600 -> 512 -> 512 -> 256, random float32 weights), then the target lines. Every row
runs in a fresh subprocess, so its peak RSS is its own. Each row is compared, in the same
run, with

* ``vs naive``: the naive baseline of its kind (benchmarks/naive.py: per-harmonic torch
  float64 basis, float64 MLP);
* ``vs GEMM bound``: the rate that pure GEMM time would allow. The ``GEMM bound`` row times
  dense float32 ``torch.matmul`` of the encoder's layer shapes, (B x 1600) @ (1600 x 512),
  (B x 512) @ (512 x 512) and (B x 512) @ (512 x 256), at B = 256 (encode's batch) and 4096,
  intra-op threaded and as one single-threaded stream per thread (the fastest counts);
  points/s bound = GEMM FLOP/s / (2 * sum of in * out) per point. The
  separable and end-to-end rows do fewer FLOPs per point but are set against the same
  pointwise bound, so their ratio can exceed 1.

Foundation rows (``--section foundation``): warm up on 256 points (Numba compile, torch
init), then the best of ``--repeats`` calls on N points (uniform on the sphere, seed 0) with
``--threads`` torch and Numba threads. Cube rows (``--section cube``): a global grid (0.25
degree; 1 degree with --quick) in precompute's default chunks (120 x 120 cells at 0.25
degree, 90 x 120 at 1 degree) on ``--threads`` chunk threads (default: one per core, as
precompute), each chunk single-threaded; one full-size warm-up run, then the best of
``--repeats`` timed runs, each into a fresh store under ``--store-dir`` (default: the
temporary directory). To add a row, append a :class:`Row` to ``ROWS``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import versus  # noqa: E402  (benchmarks/ on the path first)

LEVEL, CAPACITY = 40, 512
WARMUP_POINTS = 256
QUICK_DIVISOR = 10
CUBE_RESOLUTION = 0.25  # degrees; --quick: 4x coarser
GEMM_BATCHES = (256, 4096)

TARGETS = {  # name: threshold
    "basis vs naive": 50.0,
    "pointwise vs GEMM bound": 0.85,
    "separable vs pointwise": 2.0,
    "separable vs naive": 30.0,
    "end-to-end vs encoder-only": 0.80,
    "peak RSS (MiB)": 2048.0,
}


def layer_shapes() -> list[tuple[int, int]]:
    """(in, out) of every linear layer of the benchmarked encoder."""
    return [(LEVEL * LEVEL, CAPACITY), (CAPACITY, CAPACITY), (CAPACITY, 256)]


def flop_per_point() -> int:
    return 2 * sum(i * o for i, o in layer_shapes())


def model(dtype: str = "float32", level: int = LEVEL):
    """The benchmarked encoder (capacity 512; L = 40 unless ``level``): random weights,
    seed 0, on the CPU."""
    import torch

    import xsatclip

    torch.manual_seed(0)
    config = xsatclip.ModelConfig(level=level, capacity=CAPACITY)
    return xsatclip.LocationEncoder(config, config.build_network().state_dict(),
                                    source="random", dtype=dtype, device="cpu")


# --------------------------------------------------------------------------- row runners
# Each returns the timed callable's {"seconds", "points"} (plus extras); it runs in the row's
# subprocess, after set_threads.


def _best_of(fn, lon, lat, repeats: int) -> float:
    fn(lon[:WARMUP_POINTS], lat[:WARMUP_POINTS])  # compile / initialise
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(lon, lat)
        best = min(best, time.perf_counter() - start)
    return best


def _points(n: int):
    from naive import random_points

    return random_points(n, seed=0)


def run_gemm(n: int, repeats: int) -> dict:
    """Per point, the best time of the layer GEMMs on B x in inputs (B in GEMM_BATCHES), run
    either as intra-op threaded torch.matmul or, like ``encode``, as one single-threaded
    stream per thread."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from xsatclip.model.backend import single_threaded_kernels

    threads = torch.get_num_threads()
    best = float("inf")
    for batch in GEMM_BATCHES:
        reps = max(1, n // batch // threads)

        def stream(_=None, batch=batch, reps=reps):
            inputs = [torch.randn(batch, i) for i, _ in layer_shapes()]
            weights = [torch.randn(i, o) for i, o in layer_shapes()]
            outputs = [torch.empty(batch, o) for _, o in layer_shapes()]
            with torch.inference_mode():
                for _ in range(reps):
                    for x, w, out in zip(inputs, weights, outputs, strict=True):
                        torch.matmul(x, w, out=out)

        def single(_):
            with single_threaded_kernels():
                stream()

        with ThreadPoolExecutor(threads) as pool:
            for _ in range(repeats + 1):  # the first is the warm-up
                start = time.perf_counter()
                for _ in range(threads):
                    stream()
                best = min(best, (time.perf_counter() - start) / (threads * reps * batch))
                start = time.perf_counter()
                list(pool.map(single, range(threads)))
                best = min(best, (time.perf_counter() - start) / (threads * reps * batch))
    return {"seconds": best * n, "points": n, "gflops": flop_per_point() / best / 1e9}


def run_basis_naive(n: int, repeats: int) -> dict:
    import torch
    from naive import naive_basis

    def fn(lon, lat):
        with torch.inference_mode():
            naive_basis(lon, lat, LEVEL)

    return {"seconds": _best_of(fn, *_points(n), repeats), "points": n}


def run_basis(n: int, repeats: int) -> dict:
    import numpy as np

    from xsatclip import spherical_harmonics

    def fn(lon, lat):
        spherical_harmonics(lon.numpy(), lat.numpy(), LEVEL, dtype=np.float32)

    return {"seconds": _best_of(fn, *_points(n), repeats), "points": n}


def run_basis_columns(n: int, repeats: int) -> dict:
    """The encoder's column kernel alone, in encode's batches and threads (no GEMMs)."""
    import numpy as np

    from xsatclip.harmonics.legendre import basis_columns_kernel, legendre_recursion_coefficients
    from xsatclip.model.backend import PIECE_BATCHES

    encoder = model()
    batch = encoder.backend.batch_size(None, LEVEL, CAPACITY)
    coefficients = legendre_recursion_coefficients(LEVEL)
    tiny = np.finfo(np.float32).tiny

    def fn(lon, lat):
        lon, lat = lon.numpy(), lat.numpy()

        def run(start, stop):
            out = np.empty(LEVEL * LEVEL * batch, np.float32)
            for first in range(start, stop, batch):
                last = min(first + batch, stop)
                columns = out[: LEVEL * LEVEL * (last - first)].reshape(-1, last - first)
                basis_columns_kernel(lon[first:last], lat[first:last], *coefficients,
                                     encoder.zonal_scale, tiny, columns)

        encoder.backend.run_pieces(lon.size, PIECE_BATCHES * batch, run)

    return {"seconds": _best_of(fn, *_points(n), repeats), "points": n}


def run_encoder_naive(n: int, repeats: int) -> dict:
    import torch
    from naive import naive_encoder

    weights = model("float64").network.state_dict()

    def fn(lon, lat):
        with torch.inference_mode():
            naive_encoder(weights, lon, lat, LEVEL)

    return {"seconds": _best_of(fn, *_points(n), repeats), "points": n}


def run_encoder(n: int, repeats: int) -> dict:
    encoder = model()

    def fn(lon, lat):
        encoder.encode(lon.numpy(), lat.numpy())

    return {"seconds": _best_of(fn, *_points(n), repeats), "points": n}


def run_grid(n: int, repeats: int) -> dict:
    """``encode_grid`` on a global 1-degree grid (64,800 cells; 2 degrees with --quick), in
    one call."""
    import xsatclip

    encoder = model()
    grid = xsatclip.grid(1.0 if n >= 64_800 else 2.0)
    lat, lon = grid["lat"].values, grid["lon"].values
    encoder.encode_grid(lon[:16], lat[:16])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.encode_grid(lon, lat)
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "points": int(lat.size * lon.size)}


def _cube_encoder(encoder, lat, lon, threads: int) -> None:
    """Precompute's unavoidable compute: encode_grid on precompute's default chunks, as its
    tasks run it (a pool of ``threads``, single-threaded kernels), results discarded."""
    from concurrent.futures import ThreadPoolExecutor

    from xsatclip.cube import default_chunk
    from xsatclip.model.backend import single_threaded_kernels

    ny, nx = default_chunk(lat.size), default_chunk(lon.size)
    tiles = [(i, j) for i in range(0, lat.size, ny) for j in range(0, lon.size, nx)]

    def work(tile):
        i, j = tile
        with single_threaded_kernels():
            encoder.encode_grid(lon[j:j + nx], lat[i:i + ny])

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(work, tiles):
            pass


def run_cube_encoder(level: int, resolution: float, threads: int, store_dir: str | None,
                     repeats: int, compute: str = "float32") -> dict:
    return _run_cube(level, resolution, threads, store_dir, repeats, end_to_end=False,
                     compute=compute)


def run_cube(level: int, resolution: float, threads: int, store_dir: str | None,
             repeats: int, compute: str = "float32", storage: str = "float32") -> dict:
    return _run_cube(level, resolution, threads, store_dir, repeats, end_to_end=True,
                     compute=compute, storage=storage)


def run_accessor(level: int, resolution: float, threads: int, store_dir: str | None,
                 repeats: int, compute: str = "float32") -> dict:
    return versus.run_accessor(resolution, threads, repeats, model(compute, level))


def _run_cube(level: int, resolution: float, threads: int, store_dir: str | None,
              repeats: int, end_to_end: bool, compute: str = "float32",
              storage: str = "float32") -> dict:
    """One full-size warm-up run (it also makes the VM back the heap this run uses), then the
    best of ``repeats`` timed runs, each into a fresh store. ``compute``: the encoder's
    dtype; ``storage``: the cube's."""
    import shutil

    import dask

    import xsatclip
    encoder = model(compute, level=level)
    grid = xsatclip.grid(resolution)
    lat, lon = grid["lat"].values, grid["lon"].values
    with tempfile.TemporaryDirectory(prefix="xsatclip-bench-", dir=store_dir) as tmp, \
            dask.config.set(num_workers=threads):
        store = Path(tmp) / "cube.zarr"

        def fn():
            if end_to_end:
                xsatclip.precompute(store, resolution=resolution, model=encoder,
                                    progress=False, dtype=storage,
                                    compute_dtype=encoder.dtype)
            else:
                _cube_encoder(encoder, lat, lon, threads)

        fn()  # warm-up
        times = []
        for _ in range(repeats):
            shutil.rmtree(store, ignore_errors=True)
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return {"seconds": min(times), "points": int(lat.size * lon.size), "dtype": encoder.dtype}


# --------------------------------------------------------------------------- rows


@dataclasses.dataclass(frozen=True)
class Row:
    """One table row, timed in a fresh subprocess: ``run(n, repeats)`` (foundation rows) or
    ``run(level, resolution, threads, store_dir)`` (cube rows)."""

    key: str
    label: str
    section: str  # "foundation" or "cube"
    points: int  # N of a full run (foundation rows; --quick divides it by QUICK_DIVISOR)
    run: Callable[..., dict]
    naive: str | None = None  # key of the row it is compared with in "vs naive"
    bound: bool = False  # compared with the GEMM bound
    level: int = LEVEL  # cube rows: the encoder's L
    resolution: float = CUBE_RESOLUTION  # cube rows: the global grid's cell, degrees


ROWS = [
    Row("gemm", "GEMM bound: float32 torch.matmul of the layer shapes", "foundation",
        1 << 16, run_gemm),
    Row("basis-naive", "basis, naive (torch float64, per harmonic)", "foundation", 5_000,
        run_basis_naive),
    Row("basis", "basis, spherical_harmonics (N, L^2) float32", "foundation", 50_000,
        run_basis, naive="basis-naive"),
    Row("basis-columns", "basis, encoder's column kernel (L^2, batch) float32", "foundation",
        50_000, run_basis_columns, naive="basis-naive"),
    Row("encoder-naive", "encoder, naive (float64 basis and MLP)", "foundation", 5_000,
        run_encoder_naive),
    Row("encoder", "encoder pointwise, encode float32", "foundation", 50_000, run_encoder,
        naive="encoder-naive", bound=True),
    Row("grid", "encoder separable grid, encode_grid float32 (global grid, one call)",
        "foundation", 64_800, run_grid, naive="encoder-naive", bound=True),
    Row("cube-encoder", "encoder only: encode_grid on the cube's chunks", "cube", 0,
        run_cube_encoder, naive="encoder-naive", bound=True),
    Row("cube", "end-to-end Zarr: precompute (float32, uncompressed)", "cube", 0, run_cube,
        naive="encoder-naive", bound=True),
    # The Zarr issue's matrix: L = 10 and 40 on 1 and 0.25 degree grids (encoder-only beside
    # end-to-end); the L = 40, 0.25 degree pair is the rows above.
    *(Row(f"{kind}-l{level}-{res:g}", f"{label}, L = {level}, {res:g} degree", "cube", 0, fn,
          level=level, resolution=res)
      for level, res in ((10, 1.0), (10, 0.25), (40, 1.0))
      for kind, label, fn in (("cube-encoder", "encoder only", run_cube_encoder),
                              ("cube", "end-to-end Zarr", run_cube))),
    # Against torchgeo (--section torchgeo: these, "encoder" and "torchgeo").
    Row("torchgeo", "torchgeo 0.10 SatCLIP encoder, float32", "torchgeo", 8192,
        lambda n, repeats: versus.run_torchgeo(n, repeats, model, _points)),
    Row("torchgeo-siren", "torchgeo 0.10 SatCLIP's SIREN alone, float32", "torchgeo", 50_000,
        lambda n, repeats: versus.run_torchgeo(n, repeats, model, _points, siren_only=True)),
    Row("accessor", "grid via the accessor, float32", "cube", 0, run_accessor),
    Row("accessor-bf16", "grid via the accessor, bfloat16", "cube", 0,
        functools.partial(run_accessor, compute="bfloat16")),
    Row("cube-encoder-bf16", "encoder only, bfloat16", "cube", 0,
        functools.partial(run_cube_encoder, compute="bfloat16")),
    Row("cube-bf16-int8", "end-to-end Zarr, bfloat16 head, int8 stored", "cube", 0,
        functools.partial(run_cube, compute="bfloat16", storage="int8")),
]
BY_KEY = {row.key: row for row in ROWS}


def set_threads(threads: int | None) -> None:
    """Use ``threads`` torch and numba threads (None: leave their defaults)."""
    if threads:
        import numba
        import torch

        torch.set_num_threads(threads)
        numba.set_num_threads(threads)


def run_row(row: Row, args) -> dict:
    """The subprocess side: time ``row`` here."""
    if row.section == "cube":
        resolution = row.resolution * (4 if args.quick else 1)
        threads = args.threads or os.cpu_count() or 1  # precompute's default
        result = row.run(row.level, resolution, threads, args.store_dir, args.repeats)
        result["threads"] = f"{threads} x 1"
    else:
        set_threads(args.threads)
        import torch

        n = max(WARMUP_POINTS, row.points // (QUICK_DIVISOR if args.quick else 1))
        result = row.run(n, args.repeats)
        result["threads"] = str(torch.get_num_threads())
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _subprocess(row: Row, args) -> dict | None:
    command = [sys.executable, __file__, "--row", row.key, "--repeats", str(args.repeats)]
    command += ["--quick"] * args.quick + (["--threads", str(args.threads)] * bool(args.threads))
    command += ["--store-dir", args.store_dir] * bool(args.store_dir)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        print(f"row {row.key} failed:\n{done.stderr}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report


def machine() -> str:
    import numba
    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"numba {numba.__version__} ({numba.get_num_threads()} threads), "
            f"Python {platform.python_version()}")


def report(rows: list[Row], results: dict[str, dict], args, load: tuple[float, float]) -> None:
    """Print the table and the target lines (PASS/FAIL, for the rows that ran)."""
    rate = {k: r["points"] / r["seconds"] for k, r in results.items()}
    bound = rate.get("gemm")
    print(f"machine: {machine()}")
    print(f"1-minute load average: {load[0]:.1f} at start, {load[1]:.1f} at end"
          f"{' (--quick: smoke test, rates not representative)' if args.quick else ''}")
    if any(row.section == "cube" for row in rows):
        store_dir = args.store_dir or tempfile.gettempdir()
        print(f"cube store: {store_dir} ({_filesystem(store_dir)})")
    print(f"encoder: L={LEVEL}, layers {' -> '.join(str(i) for i, _ in layer_shapes())} -> 256,"
          f" {flop_per_point() / 1e6:.2f} MFLOP per point (pointwise)")
    print()
    print("| row | N | threads | points/s | peak RSS (MiB) | vs naive | vs GEMM bound |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        result = results.get(row.key)
        if result is None:
            print(f"| {row.label} | failed | | | | | |")
            continue
        label = row.label
        if row.key == "gemm":
            label += f" ({result['gflops']:.0f} GFLOP/s)"
        naive = (f"{rate[row.key] / rate[row.naive]:.1f}x"
                 if row.naive in rate else "-")
        vs_bound = f"{rate[row.key] / bound:.2f}" if row.bound and bound else "-"
        print(f"| {label} | {result['points']:,} | {result['threads']} | {rate[row.key]:,.0f} "
              f"| {result['peak_mib']:.0f} | {naive} | {vs_bound} |")
    print()
    print("Foundation rows: best of the repeats after a warm-up; cube rows: best of the "
          "repeats (each into a fresh store) after "
          "a full-size warm-up. Each row in a fresh subprocess; peak RSS is its ru_maxrss "
          "(interpreter, torch, numba, model and data included). vs naive: points/s over the "
          "naive row of its kind (basis or encoder). vs GEMM bound: points/s over the GEMM "
          "bound row's points/s (pointwise FLOPs).")
    print()
    measured = {
        "basis vs naive": _ratio(rate, "basis", "basis-naive"),
        "pointwise vs GEMM bound": _ratio(rate, "encoder", "gemm"),
        "separable vs pointwise": _ratio(rate, "grid", "encoder"),
        "separable vs naive": _ratio(rate, "grid", "encoder-naive"),
        "end-to-end vs encoder-only": _ratio(rate, "cube", "cube-encoder"),
        **{f"end-to-end vs encoder-only, L = {BY_KEY[key].level}, "
           f"{BY_KEY[key].resolution:g} degree": _ratio(rate, key, "cube-encoder" + key[4:])
           for key in rate if key.startswith("cube-l")},
        # The accessor rows hold the whole grid's embeddings in memory (.compute()) by design.
        "peak RSS (MiB)": max((r["peak_mib"] for k, r in results.items()
                               if not k.startswith("accessor")), default=None),
    }
    for name, value in measured.items():
        if value is None:
            continue
        threshold = TARGETS[name.split(",")[0]]
        passed = value < threshold if name.startswith("peak") else value >= threshold
        shown = (f"{value:.0f} MiB (< {threshold:.0f})" if name.startswith("peak")
                 else f"{value:.2f} (>= {threshold:g})")
        print(f"target {name}: {'PASS' if passed else 'FAIL'}, {shown}")
    if "gemm" in results and "encoder-naive" in rate:
        # The separable path still runs every layer after the first pointwise.
        head = 2 * sum(i * o for i, o in layer_shapes()[1:])
        ceiling = results["gemm"]["gflops"] * 1e9 / head
        print(f"separable ceiling: the layers after the first alone, at the GEMM bound's "
              f"rate, allow {ceiling:,.0f} points/s = {ceiling / rate['encoder-naive']:.1f}x "
              "naive")


def _filesystem(path: str) -> str:
    """The file system type of the mount holding ``path`` (Linux), else "unknown"."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                _, mount, fstype, *_ = line.split()
                inside = os.path.realpath(path).startswith(mount.rstrip("/") + "/")
                if (inside or os.path.realpath(path) == mount) and len(mount) > len(best):
                    best, kind = mount, fstype
    except OSError:
        pass
    return kind


def _ratio(rate: dict, a: str, b: str) -> float | None:
    return rate[a] / rate[b] if a in rate and b in rate else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"N / {QUICK_DIVISOR}, cube grid 4x coarser (smoke test)")
    parser.add_argument("--threads", type=int,
                        help="torch and numba threads; chunk threads for the cube rows "
                        "(default: theirs; one per core)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many (3)")
    parser.add_argument("--section", choices=("foundation", "cube", "torchgeo", "all"),
                        default="all",
                        help="foundation (GEMM bound, basis, encoder), cube (end-to-end "
                        "Zarr), torchgeo (xsatclip's rows against torchgeo's encoder) or all "
                        "(default)")
    parser.add_argument("--store-dir", help="where the cube rows write their temporary Zarr "
                        "store (default: the system's temporary directory)")
    parser.add_argument("--row", choices=list(BY_KEY), help=argparse.SUPPRESS)  # subprocess
    args = parser.parse_args(argv)

    if args.row:
        print(json.dumps(run_row(BY_KEY[args.row], args)))
        return
    rows = [row for row in ROWS if args.section in ("all", row.section)
            or (args.section == "torchgeo" and row.key in versus.VERSUS)]
    if args.section == "all" and versus.torchgeo_wheel() is None:
        print("no torchgeo wheel (benchmarks/versus.py): its row is left out", file=sys.stderr)
        rows = [row for row in rows if row.key != "torchgeo"]
    load_start = os.getloadavg()[0]
    results = {}
    for row in rows:
        result = _subprocess(row, args)
        if result is not None:
            results[row.key] = result
    report(rows, results, args, (load_start, os.getloadavg()[0]))
    versus.report(results)
    if len(results) < len(rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
