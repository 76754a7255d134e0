"""GeoCLIP as a second encoder family: parity with GeoCLIP's own code, and every workflow.

GeoCLIP's ``LocationEncoder`` is loaded from the installed wheel's own source file
(``geoclip/model/location_encoder.py`` and what it imports relatively), without running the
package's ``__init__`` (which imports transformers).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import xsatclip
from xsatclip.errors import CheckpointError, InvalidOptionError, MissingDependencyError
from xsatclip.harmonics.equal_earth import equal_earth
from xsatclip.model.config import weights_sha256
from xsatclip.model.geoclip import GeoCLIPEncoder, read_geoclip_weights, wheel_weights_path

# Poles, the dateline from both sides, both longitude conventions, cities.
SPECIAL = np.array([[0.0, 0.0], [-180.0, 0.0], [179.999, 10.0], [-179.999, -10.0],
                    [0.0, 90.0], [0.0, -90.0], [45.0, 89.999], [-120.0, -89.999],
                    [2.35, 48.86], [-73.98, 40.75], [151.21, -33.87], [139.69, 35.69]])


@pytest.fixture(scope="module")
def reference_module():
    """GeoCLIP's own location_encoder module, from its source file in the installed wheel."""
    folder = wheel_weights_path().parents[1]  # geoclip/model
    package = types.ModuleType("_geoclip_model")
    package.__path__ = [str(folder)]
    sys.modules[package.__name__] = package
    spec = importlib.util.spec_from_file_location(f"{package.__name__}.location_encoder",
                                                  folder / "location_encoder.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _points() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    lon = np.concatenate([SPECIAL[:, 0], rng.uniform(-180, 180, 300)])
    lat = np.concatenate([SPECIAL[:, 1], np.degrees(np.arcsin(rng.uniform(-1, 1, 300)))])
    return lon, lat


def test_parity_with_geoclips_own_code(reference_module):
    """Against GeoCLIP's own code in float64 (outputs are of order 0.1), poles and both sides
    of the dateline included: the projection within 1e-6 (GeoCLIP's sqrt(3) is a float32
    constant), its networks on the same projected points within 1e-10, and the whole encoder
    within 1e-5, ours in float32 and float64."""
    lon, lat = _points()
    reference = reference_module.LocationEncoder().eval().double()  # the wheel's weights
    latlon = torch.tensor(np.column_stack([lat, lon]))
    projected = equal_earth(lon, lat)
    np.testing.assert_allclose(projected,
                               reference_module.equal_earth_projection(latlon).numpy(),
                               rtol=0, atol=1e-6)
    ours64 = xsatclip.load_model("geoclip", dtype="float64", device="cpu")
    with torch.inference_mode():
        v = torch.from_numpy(projected)
        theirs_net = sum(reference._modules[f"LocEnc{i}"](v) for i in range(3)).numpy()
        np.testing.assert_allclose(ours64.network(v).numpy(), theirs_net, rtol=0, atol=1e-10)
        expected = reference(latlon).numpy()
    ours32 = xsatclip.load_model("geoclip", device="cpu").encode(lon, lat)
    assert ours32.dtype == np.float32 and ours32.shape == (lon.size, 512)
    np.testing.assert_allclose(ours64.encode(lon, lat), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours32, expected, rtol=0, atol=1e-5)


def test_longitude_conventions_and_the_dateline():
    """0..360 equals -180..180 (float64, 1e-12); 180 is -180 (GeoCLIP's own projection puts
    them on opposite edges; xsatclip wraps first)."""
    model = xsatclip.load_model("geoclip", dtype="float64", device="cpu")
    lon, lat = _points()
    np.testing.assert_allclose(model.encode(np.mod(lon, 360.0), lat), model.encode(lon, lat),
                               rtol=0, atol=1e-12)
    np.testing.assert_array_equal(model.encode([180.0], [12.0]), model.encode([-180.0], [12.0]))
    nan_row = model.encode([np.nan, 1.0], [1.0, 1.0])
    assert np.isnan(nan_row[0]).all() and np.isfinite(nan_row[1]).all()


def test_identity_and_weights(tmp_path):
    model = xsatclip.load_model("geoclip", device="cpu")
    weights = read_geoclip_weights(wheel_weights_path())
    assert model.identity.family == "geoclip" and model.identity.source == "geoclip"
    assert model.identity.sha256 == weights_sha256(weights)
    assert model.level is None and model.embed_dim == 512
    assert "model_level" not in model.identity.attrs()
    copy = tmp_path / "geoclip-location.pth"
    shutil.copy(wheel_weights_path(), copy)
    by_path = xsatclip.load_model(copy, device="cpu")
    assert isinstance(by_path, GeoCLIPEncoder)
    assert by_path.identity.sha256 == model.identity.sha256
    assert by_path.identity.source == str(copy.resolve())


def test_errors_name_the_problem(tmp_path, monkeypatch):
    with pytest.raises(InvalidOptionError, match="GeoCLIP has only 'exact'"):
        xsatclip.load_model("geoclip", numerics="reference")
    bad = tmp_path / "other.pth"
    torch.save({"layer.weight": torch.zeros(2, 2)}, bad)
    with pytest.raises(CheckpointError, match="holds no GeoCLIP location-encoder weights"):
        xsatclip.load_model(bad)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable GeoCLIP weights file"):
        xsatclip.load_model(bad)
    monkeypatch.setitem(sys.modules, "geoclip", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match="pip install --no-deps geoclip"):
        xsatclip.load_model("geoclip")


@pytest.mark.slow
def test_embed_cube_and_exact_sampling(tmp_path):
    """A 1-degree global GeoCLIP cube (64,800 cells), the lazy accessor result over the same
    grid, and sample(method="exact") all agree with encode (float32, 1e-6)."""
    model = xsatclip.load_model("geoclip", device="cpu")
    grid = xsatclip.grid(1.0)
    lazy = grid.satclip.embed(model="geoclip")
    assert lazy.sizes["embedding"] == 512 and lazy.attrs["model_family"] == "geoclip"
    assert lazy.chunks is not None  # nothing computed yet
    store = xsatclip.precompute(tmp_path / "geoclip.zarr", resolution=1.0, model="geoclip",
                                progress=False)
    assert xsatclip.cube.info(store)["chunks_done"] == xsatclip.cube.info(store)["chunks_total"]
    cube = xr.open_zarr(store)["embeddings"]
    rows, cols = np.array([0, 45, 90, 179]), np.array([0, 359, 180, 17])
    lat, lon = grid.lat.values[rows], grid.lon.values[cols]
    expected = model.encode(lon, lat)
    stored = cube.isel(lat=xr.DataArray(rows), lon=xr.DataArray(cols))
    np.testing.assert_allclose(stored.transpose(..., "embedding").values, expected, atol=1e-6)
    computed = lazy.isel(lat=xr.DataArray(rows), lon=xr.DataArray(cols))
    np.testing.assert_allclose(computed.transpose(..., "embedding").values, expected,
                               atol=1e-6)
    exact = xsatclip.sample(store, [2.35, -73.98], [48.86, 40.75], method="exact")
    np.testing.assert_allclose(exact.values, model.encode([2.35, -73.98], [48.86, 40.75]),
                               atol=1e-6)
    assert Path(store).exists()
