"""The backend decided when a model is loaded: devices, the torch (GPU) path, and one device
decision whatever the scheduler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DEVICES

import xsatclip
from xsatclip.errors import DeviceError, InvalidOptionError
from xsatclip.model import Backend
from xsatclip.model.backend import resolve_device
from xsatclip.raster.tasks import ModelSpec


def _on(device: str, kernel: str, source: str, dtype: str) -> xsatclip.LocationEncoder:
    """``source`` loaded on ``device`` with the basis computed by ``kernel``."""
    model = xsatclip.load_model(source, device=device, dtype=dtype)
    model.backend = Backend(torch.device(device), kernel)
    return model


@pytest.mark.parametrize("device", DEVICES)
def test_torch_basis_path_matches_numba(device, golden_dir, reference_npz):
    """The GPU path's torch code (basis recursion on the device, then the network) against
    the CPU's fused Numba path: float64 within 1e-12, float32 within 1e-5, L = 40."""
    points = reference_npz["L40_lonlat"]
    source = golden_dir / "satclip-tiny-l40.ckpt"
    for dtype, atol in (("float64", 1e-12), ("float32", 1e-5)):
        numba_out = xsatclip.load_model(source, device="cpu", dtype=dtype).encode(
            points[:, 0], points[:, 1])
        model = _on(device, "torch", source, dtype)
        assert model.backend.basis_kernel == "torch"
        torch_out = model.encode(points[:, 0], points[:, 1], batch_size=100)
        np.testing.assert_allclose(torch_out, numba_out, rtol=0, atol=atol)


@pytest.mark.parametrize("device", DEVICES)
def test_grid_on_device_matches_pointwise(device, l10_source):
    """encode_grid (the fold on the device) equals encode at the same cells, float64 within
    1e-10, poles, dateline and 0..360 longitudes included."""
    model = _on(device, "torch", l10_source, "float64")
    lat = np.array([90.0, 89.5, 45.0, 0.0, -60.0, -90.0])
    lon = np.array([-180.0, -179.5, 0.0, 179.5, 180.0, 270.0, 359.9])
    grid = model.encode_grid(lon, lat, batch_size=7)
    lon2, lat2 = np.meshgrid(lon, lat)
    points = model.encode(lon2.ravel(), lat2.ravel()).reshape(grid.shape)
    np.testing.assert_allclose(grid, points, rtol=0, atol=1e-10)


def test_default_backend_per_device_and_numerics():
    assert Backend.choose("cpu", "exact") == Backend(torch.device("cpu"), "numba")
    assert Backend.choose("cpu", "reference").basis_kernel == "reference"
    assert Backend.choose("auto", "exact").device.type == ("cuda" if torch.cuda.is_available()
                                                             else "cpu")


def test_device_errors_name_the_device():
    with pytest.raises(InvalidOptionError, match="device='banana' is not a torch device"):
        resolve_device("banana")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
        with pytest.raises(DeviceError, match="sees only"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(DeviceError, match="torch sees no CUDA GPU"):
            resolve_device("cuda")
        with pytest.raises(DeviceError, match="torch sees no CUDA GPU"):
            xsatclip.load_model("bluemarble-l10", device="cuda")


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["threads", "distributed"])
def test_device_request_is_the_same_with_every_scheduler(scheduler, l10, tmp_path):
    """embed(model=<loaded on the CPU>, device=D): the graph computes on D in every process,
    or, where D does not exist, fails at once with DeviceError, whatever the scheduler."""
    distributed = pytest.importorskip("distributed")
    grid = xsatclip.grid(30.0)
    expected = np.moveaxis(l10.encode_grid(grid.lon.values, grid.lat.values), -1, 0)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="torch sees no CUDA GPU"):
            grid.satclip.embed(model=l10, device="cuda", chunks=3)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    emb = grid.satclip.embed(model=l10, device=device, chunks=3)
    specs = {task.kwargs["spec"] for task in _block_tasks(emb)}
    assert specs == {ModelSpec.of(l10.to(device), device)}
    assert {spec.device for spec in specs} == {str(torch.device(device))}
    if scheduler == "threads":
        values = emb.compute(scheduler="threads").values
    else:
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=":0") as cluster, \
                distributed.Client(cluster) as client:
            values = client.compute(emb).result().values
            devices = client.run(_cached_devices)
        assert list(devices.values()) == [[str(torch.device(device))]]
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-5)  # float32


def _block_tasks(emb):
    """The Dask tasks of ``emb`` that compute embedding blocks."""
    graph = dict(emb.data.__dask_graph__())
    return [task for task in graph.values() if hasattr(task, "kwargs")
            and "spec" in getattr(task, "kwargs", {})]


def _cached_devices() -> list[str]:
    """Devices of the models a worker process has loaded (runs on the worker)."""
    from xsatclip.raster import tasks

    return [str(model.device) for model in tasks._cache.values()]
