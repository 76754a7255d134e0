"""Throughput of xsatclip's basis and encoder against the naive reference-style baseline.

    python benchmarks/run.py [--quick] [--threads N] [--section {foundation,cube,all}]

Foundation section: each case runs in a fresh subprocess (so its memory numbers are its own):
set up points and the model, warm up (Numba compile, torch init) on a small slice, then time
the best of 3 calls on all N points. Prints the machine, a markdown table and the L = 40 basis
target line. To add a row, append a :class:`Case` to ``CASES``.

Cube section (end-to-end Zarr): for each ``CubeCase`` (L, grid resolution), two fresh
subprocesses: (a) encoder only, ``encode_grid`` over the grid's 128 x 128 chunks in a pool of
precompute's thread count, each chunk single-threaded, results discarded; (b) end to end,
``xsatclip.precompute`` into a fresh temporary store. Both warm up on a 10-degree grid first.
Prints points/s, (b)/(a) and (b)'s peak RSS with their target lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

GOLDEN = Path(os.environ.get("XSATCLIP_GOLDEN", HERE.parent.parent / "shared" / "golden"))
WARMUP_POINTS = 256
TARGET_RATIO = 50.0


@dataclasses.dataclass(frozen=True)
class Case:
    """One table row. ``setup()`` returns the timed ``fn(lon, lat)`` (float64 torch tensors)."""

    name: str
    kind: str  # rows of one kind, L and capacity are compared with the naive one among them
    level: int
    capacity: int | None
    points: int  # N in a full run; --quick divides it by QUICK_DIVISOR
    setup: Callable[[], Callable[[object, object], object]]
    naive: bool = False

    @property
    def group(self) -> tuple:
        return (self.kind, self.level, self.capacity)


def _exact_basis(level: int):
    def setup():
        import numpy as np

        from xsatclip import spherical_harmonics

        return lambda lon, lat: spherical_harmonics(lon.numpy(), lat.numpy(), level,
                                                    dtype=np.float32)

    return setup


def _naive_basis(level: int):
    def setup():
        import torch
        from naive import naive_basis

        def run(lon, lat):
            with torch.inference_mode():
                return naive_basis(lon, lat, level)

        return run

    return setup


def _model(level: int, capacity: int, dtype: str):
    """Golden capacity-256 checkpoint, or random weights for other capacities."""
    import torch

    import xsatclip

    if capacity == 256:
        return xsatclip.load_model(GOLDEN / f"satclip-tiny-l{level}.ckpt", device="cpu",
                                   dtype=dtype)
    torch.manual_seed(0)
    config = xsatclip.ModelConfig(level=level, capacity=capacity)
    return xsatclip.LocationEncoder(config, config.build_network().state_dict(),
                                    source="random", dtype=dtype, device="cpu")


def _exact_encoder(level: int, capacity: int):
    def setup():
        model = _model(level, capacity, "float32")
        return lambda lon, lat: model.encode(lon.numpy(), lat.numpy())

    return setup


def _naive_encoder(level: int, capacity: int):
    def setup():
        import torch
        from naive import naive_encoder

        weights = _model(level, capacity, "float64").network.state_dict()

        def run(lon, lat):
            with torch.inference_mode():
                return naive_encoder(weights, lon, lat, level)

        return run

    return setup


def _cases() -> list[Case]:
    # N per row: enough for a stable rate, small enough that the whole run stays ~2-3 minutes
    # on 2 cores (the naive L=40 basis runs at ~1e3 points/s).
    naive_points = {10: 20_000, 40: 5_000}
    cases = []
    for level in (10, 40):
        cases += [
            Case("basis exact (numba, float32)", "basis", level, None,
                 500_000 if level == 10 else 50_000, _exact_basis(level)),
            Case("basis naive (torch float64, per harmonic)", "basis", level, None,
                 naive_points[level], _naive_basis(level), naive=True),
        ]
    for level, capacity in ((10, 256), (40, 256), (40, 512)):
        cases += [
            Case("encoder exact float32 (xsatclip)", "encoder", level, capacity, 50_000,
                 _exact_encoder(level, capacity)),
            Case("encoder naive float64", "encoder", level, capacity, naive_points[level],
                 _naive_encoder(level, capacity), naive=True),
        ]
    return cases


CASES = _cases()
QUICK_DIVISOR = 10


# --------------------------------------------------------------------------- cube section

CUBE_TARGET_RATIO = 0.80
CUBE_TARGET_RSS_MIB = 2048.0
CUBE_WARMUP_RESOLUTION = 10.0
CUBE_MODES = ("encoder", "precompute")


@dataclasses.dataclass(frozen=True)
class CubeCase:
    """One end-to-end row: a golden capacity-256 checkpoint on a global grid."""

    level: int
    resolution: float  # degrees; --quick multiplies it by 4

    @property
    def checkpoint(self) -> Path:
        return GOLDEN / f"satclip-tiny-l{self.level}.ckpt"


CUBE_CASES = [CubeCase(level, res) for level in (10, 40) for res in (1.0, 0.25)]


def _cube_encoder(model, lat, lon, chunk: int, threads: int) -> None:
    """Precompute's unavoidable compute: encode_grid chunk by chunk, results discarded."""
    from concurrent.futures import ThreadPoolExecutor

    from xsatclip.workers import single_threaded_kernels

    tiles = [(i, j) for i in range(0, lat.size, chunk) for j in range(0, lon.size, chunk)]

    def work(tile):
        i, j = tile
        with single_threaded_kernels():
            model.encode_grid(lon[j:j + chunk], lat[i:i + chunk])
        return None

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(work, tiles):
            pass


def run_cube_case(case: CubeCase, mode: str, resolution: float) -> dict:
    """Time ``mode`` (encoder or precompute) of ``case`` once, after a warm-up, here."""
    import tempfile

    import dask

    import xsatclip
    from xsatclip.cube import DEFAULT_CHUNK
    from xsatclip.embedding import resolve_model

    threads = int(dask.config.get("num_workers", None) or os.cpu_count() or 1)  # as precompute
    ds = xsatclip.grid(resolution)
    lat, lon = ds["lat"].values, ds["lon"].values
    small = xsatclip.grid(CUBE_WARMUP_RESOLUTION)
    with tempfile.TemporaryDirectory(prefix="xsatclip-bench-") as tmp:
        if mode == "encoder":  # the same model precompute resolves
            model = resolve_model(None, str(case.checkpoint), numerics=None, dtype="float32",
                                  device="auto")

            def fn():
                _cube_encoder(model, lat, lon, DEFAULT_CHUNK, threads)

            _cube_encoder(model, small["lat"].values, small["lon"].values, DEFAULT_CHUNK,
                          threads)
        else:
            xsatclip.precompute(Path(tmp) / "warmup.zarr", resolution=CUBE_WARMUP_RESOLUTION,
                                model=case.checkpoint, progress=False)

            def fn():
                xsatclip.precompute(Path(tmp) / "cube.zarr", resolution=resolution,
                                    model=case.checkpoint, progress=False)

        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "points": int(lat.size * lon.size), "peak_mib": peak,
            "threads": threads}


def _subprocess(args, extra: list[str], label: str) -> dict | None:
    command = [sys.executable, __file__, *extra] + (["--quick"] * args.quick)
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        print(f"{label} failed:\n{done.stderr}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def cube_section(args) -> bool:
    """Run and print the end-to-end Zarr section; True if every subprocess succeeded."""
    scale = 4 if args.quick else 1
    nan = {"seconds": float("nan"), "points": 0, "peak_mib": float("nan"), "threads": 0}
    rows, failed = [], False
    load_start = os.getloadavg()[0]
    for index, case in enumerate(CUBE_CASES):
        pair = []
        for mode in CUBE_MODES:
            result = _subprocess(args, ["--cube-case", str(index), "--cube-mode", mode],
                                 f"cube case L={case.level} {case.resolution} deg {mode}")
            failed |= result is None
            pair.append(result or nan)
        rows.append((case, *pair))
    print(f"1-minute load average: {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end"
          f"{' (--quick: grids 4x coarser, smoke test)' if args.quick else ''}")
    print()
    print("| L | grid | points | threads | (a) encoder-only points/s | (b) end-to-end points/s "
          "| (b)/(a) | (a) peak RSS (MiB) | (b) peak RSS (MiB) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios, peaks = [], []
    for case, enc, pre in rows:
        res = case.resolution * scale
        ny, nx = round(180 / res), round(360 / res)
        a = enc["points"] / enc["seconds"] if enc["points"] else float("nan")
        b = pre["points"] / pre["seconds"] if pre["points"] else float("nan")
        ratios.append(b / a)
        peaks.append(pre["peak_mib"])
        print(f"| {case.level} | {res:g} deg ({nx} x {ny}) | {nx * ny:,} | {pre['threads']} "
              f"| {a:,.0f} | {b:,.0f} | {b / a:.0%} | {enc['peak_mib']:.0f} "
              f"| {pre['peak_mib']:.0f} |")
    print()
    print("One timed run per cell after a warm-up on a 10-degree grid; (a) and (b) each in a "
          "fresh subprocess. (a): model.encode_grid over the grid's 128 x 128 chunks in a "
          "thread pool of precompute's size, each chunk single-threaded, results discarded. "
          "(b): xsatclip.precompute into a fresh temporary Zarr store (float32). Peak RSS: the "
          "subprocess's ru_maxrss.")
    print()
    worst = min(ratios)
    ok = worst >= CUBE_TARGET_RATIO  # NaN (a failed case) fails
    print(f"target: end-to-end >= {CUBE_TARGET_RATIO:.0%} of encoder-only: "
          f"{'PASS' if ok else 'FAIL'} (worst {worst:.0%})")
    peak = max(peaks)
    ok = peak < CUBE_TARGET_RSS_MIB
    print(f"target: peak RSS < 2 GiB: {'PASS' if ok else 'FAIL'} (largest {peak:.0f} MiB)")
    return not failed


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def set_threads(threads: int | None) -> None:
    """Use ``threads`` torch and numba threads (None: leave their defaults)."""
    if threads:
        import numba
        import torch

        torch.set_num_threads(threads)
        numba.set_num_threads(threads)


def run_case(case: Case, n: int, repeats: int = 3) -> dict:
    """Time ``case`` on ``n`` points in this process; the subprocess side of :func:`main`."""
    from naive import random_points

    lon, lat = random_points(n, seed=0)
    fn = case.setup()
    fn(lon[:WARMUP_POINTS], lat[:WARMUP_POINTS])  # compile / initialise
    try:  # reset the VmHWM high-water mark so it covers the timed calls only (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        before = _rss_kib("VmRSS")
    except OSError:
        before = None
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(lon, lat)
        best = min(best, time.perf_counter() - start)
        del result
    work = (_rss_kib("VmHWM") - before) / 1024 if before is not None else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"seconds": best, "points": n, "peak_mib": peak, "work_mib": work}


def machine() -> str:
    import numba
    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"numba {numba.__version__} ({numba.get_num_threads()} threads), "
            f"Python {platform.python_version()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"N / {QUICK_DIVISOR}")
    parser.add_argument("--threads", type=int, help="torch and numba threads (default: theirs)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many (3)")
    parser.add_argument("--section", choices=("foundation", "cube", "all"), default="all",
                        help="foundation (basis and encoder vs naive), cube (end-to-end "
                        "Zarr) or all (default)")
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)  # subprocess mode
    parser.add_argument("--cube-case", type=int, help=argparse.SUPPRESS)  # subprocess mode
    parser.add_argument("--cube-mode", choices=CUBE_MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    divisor = QUICK_DIVISOR if args.quick else 1
    set_threads(args.threads)

    if args.case is not None:
        case = CASES[args.case]
        n = max(WARMUP_POINTS, case.points // divisor)
        print(json.dumps(run_case(case, n, args.repeats)))
        return
    if args.cube_case is not None:
        case = CUBE_CASES[args.cube_case]
        resolution = case.resolution * (4 if args.quick else 1)
        print(json.dumps(run_cube_case(case, args.cube_mode, resolution)))
        return

    print(f"machine: {machine()}")
    ok = True
    if args.section in ("foundation", "all"):
        ok &= foundation_section(args)
    if args.section in ("cube", "all"):
        if args.section == "all":
            print()
        print("End-to-end Zarr (precompute vs encoder-only)")
        print()
        ok &= cube_section(args)
    if not ok:
        sys.exit(1)


def foundation_section(args) -> bool:
    """Run and print the basis / encoder vs naive table; True if every case succeeded."""
    load_start = os.getloadavg()[0]
    results, failed = [], False
    for index, case in enumerate(CASES):
        command = [sys.executable, __file__, "--case", str(index)] + (["--quick"] * args.quick)
        command += ["--repeats", str(args.repeats)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            print(f"case {case.name} (L={case.level}) failed:\n{done.stderr}", file=sys.stderr)
            failed = True
            results.append({"seconds": float("nan"), "points": 0, "peak_mib": float("nan"),
                            "work_mib": None})
        else:
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))

    print(f"1-minute load average: {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end"
          f"{' (--quick: smoke test, rates not representative)' if args.quick else ''}")
    print()
    rate = [r["points"] / r["seconds"] for r in results]
    naive_rate = {c.group: rate[i] for i, c in enumerate(CASES) if c.naive}
    print("| case | L | capacity | N | points/s | peak RSS (MiB) | work (MiB) | vs naive |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for case, result, r in zip(CASES, results, rate, strict=True):
        ratio = r / naive_rate[case.group] if case.group in naive_rate else float("nan")
        work = "n/a" if result["work_mib"] is None else f"{result['work_mib']:.0f}"
        print(f"| {case.name} | {case.level} | {case.capacity or '-'} | {result['points']:,} "
              f"| {r:,.0f} | {result['peak_mib']:.0f} | {work} | {ratio:.1f}x |")
    print()
    print(f"Best of {args.repeats} after warm-up; each row in a fresh subprocess. Peak RSS: the "
          "subprocess's ru_maxrss (interpreter, torch, numba, model and points included). "
          "Work: rise of VmHWM over VmRSS during the timed calls (high-water mark reset just "
          "before), i.e. the memory the computation itself needed. vs naive: points/s over the "
          "naive row of the same kind, L and capacity.")
    print()
    target = next(rate[i] / naive_rate[c.group] for i, c in enumerate(CASES)
                  if c.kind == "basis" and c.level == 40 and not c.naive)
    verdict = "PASS" if target >= TARGET_RATIO else "FAIL"
    print(f"target: exact numba basis at L=40 >= {TARGET_RATIO:.0f}x naive: {verdict} "
          f"(measured {target:.0f}x)")
    return not failed


if __name__ == "__main__":
    main()
