"""Cubes on S3 through fsspec (s3fs), against a real S3-compatible server on loopback (moto):
precompute, sample by byte range, and a kill -9 mid-way resumed to the uninterrupted store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import dask
import numpy as np
import pytest

import xsatclip
from xsatclip import cube

moto_server = pytest.importorskip("moto.server", reason="moto[server] (dev group) runs S3")
s3fs = pytest.importorskip("s3fs", reason="s3fs (the s3 extra) reads s3:// URLs")

RES, CHUNKS = 10.0, 3  # 18 x 36 cells in 6 x 12 = 72 shards: a run long enough to kill
TOTAL = 72
QUICK = {"resolution": 30.0}  # 6 x 12 cells in 2 x 4 = 8 shards


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """(storage_options, bucket URL) of a moto S3 server on a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    options = {"key": "testing", "secret": "testing", "use_listings_cache": False,
               "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}",
                                 "region_name": "us-east-1"}}
    import boto3  # moto's own dependency

    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing",
                 ).create_bucket(Bucket="cubes")
    yield options, "s3://cubes"
    server.stop()


def _run(store, options=None, **kwargs) -> str:
    settings = {"resolution": RES, "model": "bluemarble-l10", "chunks": CHUNKS,
                "progress": False, "storage_options": options, **kwargs}
    with dask.config.set(num_workers=2):
        return cube.precompute(store, **settings)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory) -> dict[float, str]:
    """Uninterrupted local stores at 30 and 10 degrees."""
    root = tmp_path_factory.mktemp("s3-reference")
    return {res: _run(root / f"{res:g}.zarr", resolution=res) for res in (30.0, RES)}


def _objects(fs, url: str) -> dict[str, bytes]:
    """Every shard and marker object of a cube (path below the store -> bytes)."""
    root = url.split("://", 1)[-1]
    keys = [k for k in fs.find(root) if "/c/" in k]
    return {k[len(root):]: fs.cat_file(k) for k in keys}


def _local_objects(path: str) -> dict[str, bytes]:
    out = {}
    for folder, _, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            if "/c/" in full:
                out[full[len(path):]] = open(full, "rb").read()
    return out


def test_precompute_info_and_sample_on_s3(s3, local_reference):
    options, bucket = s3
    url = _run(f"{bucket}/cube.zarr", options, **QUICK)
    assert cube.info(url, storage_options=options)["chunks_done"] == 8
    fs = s3fs.S3FileSystem(**options)
    # Byte for byte the objects of the local store (shards and markers).
    reference = local_reference[30.0]
    assert _objects(fs, url) == _local_objects(reference)
    root = json.loads(fs.cat_file("cubes/cube.zarr/zarr.json"))
    assert root["attributes"]["xsatclip_cube"] == 2
    rng = np.random.default_rng(5)
    lon, lat = rng.uniform(-180, 180, 300), rng.uniform(-90, 90, 300)
    for method in ("nearest", "linear"):
        remote = xsatclip.sample(url, lon, lat, method=method, storage_options=options)
        np.testing.assert_array_equal(  # float32, exact: the same bytes read another way
            remote.values, xsatclip.sample(reference, lon, lat, method=method).values)
    # A finished store: the rerun writes nothing.
    before = {k: fs.info(f"cubes/cube.zarr{k}")["LastModified"] for k in _objects(fs, url)}
    _run(url, options, **QUICK)
    assert {k: fs.info(f"cubes/cube.zarr{k}")["LastModified"]
            for k in _objects(fs, url)} == before


@pytest.mark.slow
def test_kill_9_on_s3_resumes_to_the_uninterrupted_store(s3, local_reference):
    options, bucket = s3
    url = f"{bucket}/killed.zarr"
    fs = s3fs.S3FileSystem(**options)
    markers = "cubes/killed.zarr/_xsatclip/done/c"
    # The CLI, configured as a user would: fsspec's environment variables (FSSPEC_S3_*).
    endpoint = options["client_kwargs"]["endpoint_url"]
    env = {**os.environ, "FSSPEC_S3_KEY": "testing", "FSSPEC_S3_SECRET": "testing",
           "FSSPEC_S3_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1",
           "DASK_NUM_WORKERS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "xsatclip.cli", "precompute", url,
                             "--resolution", str(RES), "--model", "bluemarble-l10",
                             "--chunks", str(CHUNKS), "--quiet"], env=env)
    try:
        deadline = time.monotonic() + 180
        while len(fs.find(markers)) < 5 if fs.exists(markers) else True:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no shard was written in 180 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = cube.info(url, storage_options=options)["chunks_done"]
    assert 5 <= done < TOTAL, "the kill came after the run had finished"

    _run(url, options)

    assert cube.info(url, storage_options=options)["chunks_done"] == TOTAL
    assert _objects(fs, url) == _local_objects(local_reference[RES])
