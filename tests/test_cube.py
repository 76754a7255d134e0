"""Embedding cubes in Zarr: crash-safe resume, locking, mismatches, dtypes, distributed."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time

import dask
import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
import zarr

import xsatclip
from xsatclip import cube
from xsatclip.cube.codec import Codec
from xsatclip.errors import StoreError
from xsatclip.raster import embed

RES, CHUNKS = 10.0, 3  # 18 x 36 cells in 6 x 12 = 72 chunks: many small tasks
TOTAL = 72
N30 = 8  # chunks of the 30 degree cubes (6 x 12 cells)
ATOL32 = 1e-5  # float32 vs float32 across batch shapes (GEMM blocking)


def _run(store, model, **kwargs) -> str:
    options = {"resolution": RES, "model": model, "chunks": CHUNKS, "progress": False, **kwargs}
    with dask.config.set(num_workers=2):
        return cube.precompute(store, **options)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, l10_source):
    """An uninterrupted float32 run: what every other run of the same arguments must equal."""
    store = tmp_path_factory.mktemp("cubes") / "reference.zarr"
    _run(store, l10_source)
    return store


def _attrs(store) -> dict:
    group = zarr.open_group(str(store), mode="r")
    attrs = {name: dict(array.attrs) for name, array in group.arrays()}
    attrs[""] = dict(group.attrs)
    return attrs


def _contents(store) -> tuple[dict, dict]:
    """Every array (markers included) and every attribute dict of a cube."""
    group = zarr.open_group(str(store), mode="r")
    arrays = {name: np.asarray(array[...]) for name, array in group.arrays()}
    arrays["done"] = np.asarray(group[cube.DONE_PATH][...])
    return arrays, _attrs(store)


def _assert_same_cube(store, other, ignore=("created",)) -> None:
    arrays, attrs = _contents(store)
    arrays_other, attrs_other = _contents(other)
    assert arrays.keys() == arrays_other.keys()
    for name in arrays:
        np.testing.assert_array_equal(arrays[name], arrays_other[name], err_msg=name)
    for key in ignore:
        attrs[""].pop(key), attrs_other[""].pop(key)
    assert attrs == attrs_other


def _files(store) -> dict:
    return {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}


def test_store_layout_metadata_and_values(reference, l10_source):
    ds = xr.open_zarr(reference)
    assert ds.rio.crs.to_epsg() == 4326
    assert zarr.open_group(str(reference), mode="r").metadata.consolidated_metadata is not None
    emb = ds[cube.VARIABLE]
    assert emb.dims == ("embedding", "lat", "lon") and emb.dtype == np.float32
    assert emb.attrs["grid_mapping"] == "spatial_ref" and emb.rio.crs.to_epsg() == 4326
    assert emb.chunks == ((256,), (3,) * 6, (3,) * 12)
    assert ds.lat.attrs["units"] == "degrees_north" and ds.lon.attrs["units"] == "degrees_east"
    np.testing.assert_array_equal(ds.embedding, np.arange(256))
    model = xsatclip.load_model(l10_source, device="cpu")
    for attrs in (ds.attrs, emb.attrs):
        assert attrs["model_sha256"] == model.identity.sha256
        assert attrs["model_level"] == 10 and attrs["model_numerics"] == "exact"
        assert attrs["xsatclip_version"] == xsatclip.__version__
    assert ds.attrs["xsatclip_grid"].startswith("resolution=10 ")
    assert ds.attrs["xsatclip_dtype"] == "float32" and ds.attrs["created"]
    direct = embed(xsatclip.grid(RES), model=model, chunks=CHUNKS)
    np.testing.assert_allclose(emb.values, direct.values, rtol=0, atol=ATOL32)
    info = cube.info(reference)
    assert (info["chunks_done"], info["chunks_total"], info["chunks_clipped"]) == (TOTAL, TOTAL, 0)


KILLABLE_RUN = f"""
import sys, dask
from xsatclip import cube
with dask.config.set(num_workers=1):
    cube.precompute(sys.argv[1], resolution={RES}, model=sys.argv[2], chunks={CHUNKS},
                    progress=False)
"""


@pytest.mark.parametrize(("size", "chunk"), [
    (36, 36),  # short axis: one chunk
    (180, 90), (360, 120),  # 1 degree globe
    (720, 120), (1440, 120),  # 0.25 degree
    (3600, 120),  # 0.1 degree
    (1000, 125),
    (1009, 128),  # prime: no divisor from 64 to 128, so the last chunk is padded
])
def test_default_chunk_tiles_the_axis_exactly_where_it_can(size, chunk):
    assert cube.default_chunk(size) == chunk


def test_default_chunks_of_a_one_degree_cube(tmp_path, l10_source):
    store = tmp_path / "one-degree.zarr"
    with dask.config.set(num_workers=2):
        cube.precompute(store, resolution=1.0, bbox=(-180, -90, 180, 90), model=l10_source,
                        progress=False)
    info = cube.info(store)
    assert info["chunks"] == [256, 90, 120]
    assert info["chunks_done"] == info["chunks_total"] == 2 * 3


def test_each_chunk_is_on_disk_before_its_marker(tmp_path, l10_source, monkeypatch):
    """fdatasync runs once on every chunk file, while that chunk's marker is still unset."""
    store = tmp_path / "flushed.zarr"
    synced = []
    fdatasync = os.fdatasync

    def record(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        _, i, j = (int(part) for part in path.split("/c/")[-1].split("/"))
        marker = zarr.open_array(str(store), path=cube.DONE_PATH, mode="r")[i, j]
        synced.append(((i, j), int(marker), os.path.getsize(path)))
        fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", record)
    _run(store, l10_source, resolution=30.0)
    assert sorted(index for index, _, _ in synced) == [(i, j) for i in range(2) for j in range(4)]
    assert {marker for _, marker, _ in synced} == {0}
    # One shard of one inner chunk: 3 x 3 x 256 float32 and its crc32c, index entry and crc.
    assert {size for _, _, size in synced} == {3 * 3 * 256 * 4 + 4 + 16 + 4}


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_cube(tmp_path, l10_source, reference):
    store = tmp_path / "killed.zarr"
    markers = store / "_xsatclip" / "done" / "c"
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE_RUN, str(store), l10_source])
    try:
        deadline = time.monotonic() + 120
        while sum(1 for _ in markers.glob("*/*")) < 5:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no chunk was written in 120 s"
            time.sleep(0.01)
        # A concurrent run on the same store fails at once, naming the store.
        with pytest.raises(StoreError, match=rf"{store}.*locked.*pid {proc.pid}"):
            _run(store, l10_source)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = cube.info(store)["chunks_done"]
    assert 5 <= done < TOTAL, "the kill came after the run had finished"
    assert (tmp_path / "killed.zarr.lock").exists()  # left behind, but no longer locked
    # A chunk cut off mid-write: half its data, no marker (what a kill -9 can leave).
    (markers / "0" / "0").unlink()
    chunk = store / cube.VARIABLE / "c" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    attrs_before = _attrs(store)

    _run(store, l10_source)

    assert not (tmp_path / "killed.zarr.lock").exists()
    assert _attrs(store) == attrs_before  # metadata of the first run, "created" included
    _assert_same_cube(store, reference)


def test_finished_store_rerun_computes_nothing(reference, l10_source, caplog):
    before = _files(reference)
    with caplog.at_level(logging.INFO, logger="xsatclip.cube"):
        _run(reference, l10_source)
    assert f"0 of {TOTAL} chunks to compute" in caplog.text
    assert _files(reference) == before


@pytest.mark.parametrize(("change", "named"), [
    ({"model": "l40"}, r"model: the store has bluemarble-l10 .* requested bluemarble-l40"),
    ({"resolution": 5.0}, r"grid .*lat: the store has 18 values"),
    ({"dtype": "int8"}, r"dtype: the store has 'float32', requested 'int8'"),
    ({"chunks": 4}, r"chunks: the store has \(3, 3\), requested \(4, 4\)"),
    ({"numerics": "reference"}, r"numerics: the store has 'exact'"),
], ids=["model", "grid", "dtype", "chunks", "numerics"])
def test_a_different_cube_is_refused(reference, l10_source, change, named):
    if change.get("model") == "l40":
        change = {"model": "bluemarble-l40"}
    change = {"model": l10_source, **change}
    before = _files(reference)
    with pytest.raises(StoreError, match=rf"{reference} holds a different cube: {named}"):
        _run(reference, **change)
    assert _files(reference) == before


def test_overwrite_and_no_resume(tmp_path, l10_source, caplog):
    store = tmp_path / "o.zarr"
    _run(store, l10_source, resolution=30.0)
    l40 = "bluemarble-l40"
    _run(store, l40, resolution=30.0, dtype="int8", overwrite=True)
    info = cube.info(store)
    assert info["dtype"] == "int8" and info["model"]["level"] == 40
    assert info["chunks_done"] == info["chunks_total"] == N30
    with caplog.at_level(logging.INFO, logger="xsatclip.cube"):
        _run(store, l40, resolution=30.0, dtype="int8", resume=False)
    assert f"{N30} of {N30} chunks to compute" in caplog.text


def test_foreign_and_half_created_stores(tmp_path, l10_source):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match=r"is not an xsatclip cube; .*remove it yourself"):
        _run(foreign, l10_source, resolution=30.0)
    assert (foreign / "notes.txt").exists()
    # Killed before the consolidated metadata (the last step of creation): created again.
    store = tmp_path / "half.zarr"
    _run(store, l10_source, resolution=30.0)
    root = json.loads((store / "zarr.json").read_text())
    del root["consolidated_metadata"]
    (store / "zarr.json").write_text(json.dumps(root))
    _run(store, l10_source, resolution=30.0)
    assert cube.info(store)["chunks_done"] == N30


def test_a_held_lock_fails_fast_and_a_dead_one_is_taken_over(tmp_path, l10_source):
    store = tmp_path / "locked.zarr"
    lock = tmp_path / "locked.zarr.lock"
    with open(lock, "w") as holder:
        holder.write("pid 4242 on elsewhere")
        holder.flush()
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        started = time.monotonic()
        with pytest.raises(StoreError, match=rf"store {store} is locked .*pid 4242"):
            _run(store, l10_source, resolution=30.0)
        assert time.monotonic() - started < 10
    assert not store.exists()
    lock.write_text("pid 999999999 on a machine that crashed")  # no flock: a dead holder
    _run(store, l10_source, resolution=30.0)
    assert not lock.exists() and cube.info(store)["chunks_done"] == N30


def test_float16_and_int8_stay_within_their_bounds(tmp_path, l10_source, reference):
    exact = xr.open_zarr(reference)[cube.VARIABLE].values.astype(np.float64)
    half = tmp_path / "f16.zarr"
    _run(half, l10_source, dtype="float16", chunks=6)
    f16 = xr.open_zarr(half)[cube.VARIABLE]
    assert f16.dtype == np.float16
    err16 = np.abs(f16.values - exact)
    assert np.all(err16 <= 2.0**-11 * np.abs(exact) + 2.0**-25 + ATOL32)

    quarter = tmp_path / "i8.zarr"
    _run(quarter, l10_source, dtype="int8", chunks=6)
    info = cube.info(quarter)
    scale = info["scale_factor"]
    assert info["chunks_clipped"] == 0
    assert scale == pytest.approx(cube.int8_scale(xsatclip.load_model(l10_source, device="cpu")))
    codes = zarr.open_array(str(quarter), path=cube.VARIABLE, mode="r")[...]
    assert codes.dtype == np.int8 and codes.min() >= -127
    decoded = cube.open_cube(quarter)[cube.VARIABLE]
    assert decoded.dtype == np.float32
    err8 = np.abs(decoded.values - exact)
    assert np.all(err8 <= scale / 2 + ATOL32)
    assert err8.max() > scale / 8  # the bound is tight, not vacuous
    cf = xr.open_zarr(quarter)[cube.VARIABLE].values  # xarray's own CF decoding
    np.testing.assert_allclose(cf, decoded.values, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(cube.dequantize(np.array([-128, 0, 127], np.int8), 0.5),
                                  np.array([np.nan, 0, 63.5], np.float32))


def test_saturation_is_flagged():
    block = np.array([[[0.04, -0.04, 30.0]]], np.float32)
    codes, clipped = Codec("int8", 0.1).encode(block)
    assert clipped and codes.tolist() == [[[0, 0, 127]]]
    assert not Codec("int8", 0.1).encode(block[..., :2])[1]
    assert Codec("float16").encode(np.array([1e6], np.float32))[1]


def test_fsspec_url_store(l10_source):
    pytest.importorskip("fsspec")
    url = "memory://xsatclip-tests/cube.zarr"
    _run(url, l10_source, resolution=30.0, overwrite=True)
    assert cube.info(url)["chunks_done"] == N30
    model = xsatclip.load_model(l10_source, device="cpu")
    direct = embed(xsatclip.grid(30.0), model=model, chunks=CHUNKS).values
    np.testing.assert_allclose(xr.open_zarr(url)[cube.VARIABLE].values, direct, atol=ATOL32)


@pytest.mark.slow
def test_distributed_run_equals_local_run(tmp_path, l10_source):
    distributed = pytest.importorskip("distributed")
    from xsatclip import cli

    small = {"resolution": 30.0}  # 8 chunks: the cluster's start-up dominates
    local = tmp_path / "local.zarr"
    _run(local, l10_source, **small)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            _run(tmp_path / "client.zarr", l10_source, scheduler=client, **small)
        status = cli.main(["precompute", str(tmp_path / "address.zarr"), "--resolution", "30",
                           "--model", l10_source, "--chunks", str(CHUNKS), "--quiet",
                           "--scheduler", cluster.scheduler_address])
    assert status == 0
    _assert_same_cube(tmp_path / "client.zarr", local)
    _assert_same_cube(tmp_path / "address.zarr", local)


@pytest.mark.slow
def test_distributed_is_imported_before_any_precompute_thread_starts(tmp_path, l10_source):
    """Regression: two precompute threads importing dask.distributed for the first time at
    once met a partially initialised distributed.core (ImportError, ~1 run in 10). In a fresh
    interpreter, the import is done before the first thread of precompute starts."""
    script = (
        "import sys, threading, xsatclip\n"
        "assert 'distributed' not in sys.modules\n"
        "seen = []\n"
        "start = threading.Thread.start\n"
        "def recording(self):\n"
        "    if self.name.startswith('xsatclip'):\n"
        "        seen.append('distributed.shuffle._core' in sys.modules)\n"
        "    start(self)\n"
        "threading.Thread.start = recording\n"
        f"xsatclip.precompute({str(tmp_path / 'c.zarr')!r}, resolution=30.0,\n"
        f"                    model={l10_source!r}, chunks=3, progress=False)\n"
        "assert seen and all(seen), seen\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
