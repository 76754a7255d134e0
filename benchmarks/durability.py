"""What durability costs: precompute with and without its flushes, verify, the resume check,
and an overwrite's deletion.

    python benchmarks/durability.py [--resolution 2] [--chunks 15] [--repeat 2]

Prints points/s of precompute as shipped (``fdatasync`` of each chunk file, ``fsync`` of its
directory, markers after data) against the same run with both flushes replaced by no-ops
(the baseline: same process, same grid, runs interleaved, best of ``--repeat``), then MiB/s
of ``info --verify`` (a full read, checksums included), the time of a resume's check of a
finished store, and the time of :func:`~xsatclip.cube.durable.clear_store` on that store.
Not part of the package.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import dask

from xsatclip import cube
from xsatclip.cube import durable, writer
from xsatclip.cube.store import store_target
from xsatclip.cube.verify import verify


@contextlib.contextmanager
def no_flushes():
    """precompute without fdatasync and directory fsync (the baseline)."""
    saved = os.fdatasync, writer.fsync_directory
    os.fdatasync = lambda fd: None  # type: ignore[assignment]
    writer.fsync_directory = lambda path: None  # type: ignore[assignment]
    try:
        yield
    finally:
        os.fdatasync, writer.fsync_directory = saved


def timed_precompute(store: Path, args) -> float:
    shutil.rmtree(store, ignore_errors=True)
    started = time.perf_counter()
    with dask.config.set(num_workers=2):
        cube.precompute(store, resolution=args.resolution, chunks=args.chunks,
                        model="bluemarble-l10", progress=False)
    return time.perf_counter() - started


def size_of(store: Path) -> int:
    return sum(p.stat().st_size for p in store.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=float, default=2.0)
    parser.add_argument("--chunks", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xsatclip-durability-") as tmp:
        store = Path(tmp) / "cube.zarr"
        durable_times, baseline_times = [], []
        for _ in range(args.repeat):  # interleaved: both see the same machine load
            durable_times.append(timed_precompute(store, args))
            with no_flushes():
                baseline_times.append(timed_precompute(store, args))
        durable_s, baseline_s = min(durable_times), min(baseline_times)
        timed_precompute(store, args)  # the store the rest measures, written durably
        summary = cube.info(store)
        points = summary["dims"]["lat"] * summary["dims"]["lon"]
        print(f"grid {args.resolution} deg: {points} points in {summary['chunks_total']} "
              f"chunks of {args.chunks} x {args.chunks}, {size_of(store) / 2**20:.1f} MiB")
        print(f"precompute, durable:    {points / durable_s:10,.0f} points/s ({durable_s:.2f} s)")
        print(f"precompute, no flushes: {points / baseline_s:10,.0f} points/s "
              f"({baseline_s:.2f} s); durable/baseline time ratio "
              f"{durable_s / baseline_s:.3f}")
        started = time.perf_counter()
        report = verify(store)
        verify_s = time.perf_counter() - started
        print(f"info --verify: {report.units_checked} chunks, "
              f"{size_of(store) / 2**20 / verify_s:.0f} MiB/s ({verify_s:.3f} s), ok={report.ok}")
        started = time.perf_counter()
        with dask.config.set(num_workers=2):
            cube.precompute(store, resolution=args.resolution, chunks=args.chunks,
                            model="bluemarble-l10", progress=False)
        print(f"rerun of the finished store (markers + listing check): "
              f"{time.perf_counter() - started:.3f} s")
        started = time.perf_counter()
        durable.clear_store(store_target(store))
        print(f"clear_store (overwrite's deletion): {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    main()
