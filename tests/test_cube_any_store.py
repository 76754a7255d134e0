"""Any embedding store: info, open_cube, sample and predict_map on Zarr stores not written by
precompute (channels-last, other names, projected), and ``xsatclip info`` without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

import xsatclip
from xsatclip import cli, cube

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def foreign(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 10 degree globe written by plain xarray: ``vectors`` (lat, lon, embedding) of
    random float32 values, lat ascending, no provenance; and those values."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=(18, 36, 8)).astype(np.float32)
    da = xr.DataArray(values, dims=("lat", "lon", "embedding"),
                      coords={"lat": np.arange(-85.0, 90, 10), "lon": np.arange(-175.0, 180, 10)},
                      name="vectors")
    store = tmp_path_factory.mktemp("any") / "foreign.zarr"
    da.chunk({"lat": 9, "lon": 18}).to_dataset().to_zarr(store, zarr_format=3)
    return store, values


def test_info_describes_a_foreign_store(foreign):
    store, _ = foreign
    summary = cube.info(store)
    assert summary["state"] == "foreign" and summary["variable"] == "vectors"
    assert summary["layout"] == "channels-last (v1)"
    assert summary["dims"] == {"lat": 18, "lon": 36, "embedding": 8}
    assert summary["crs"].startswith("EPSG:4326 (assumed")
    assert summary["y_order"] == "ascending (south-up)"
    assert summary["chunks_done"] == summary["chunks_total"] == 4
    assert summary["bytes_on_disk"] > 18 * 36 * 8 * 4 * 0.5  # written, maybe compressed
    assert any("provenance" in u for u in summary["unverified"])
    assert summary["codecs"]  # whatever xarray chose, named


def test_open_cube_and_sample_a_foreign_store(foreign, tmp_path, capsys):
    store, values = foreign
    ds = xsatclip.open_cube(store)
    assert ds[cube.VARIABLE].dims == ("embedding", "lat", "lon")
    assert "completeness" in ds.attrs["xsatclip_unverified"]
    lon, lat = np.array([0.5, -179.0, 171.0]), np.array([1.0, -89.0, 88.0])
    samples = xsatclip.sample(store, lon, lat)
    # float32, bit for bit: nearest cells (row, col) = (9, 18), (0, 0), (17, 35)
    np.testing.assert_array_equal(samples.values, values[[9, 0, 17], [18, 0, 35]])

    points = tmp_path / "points.csv"
    pd.DataFrame({"site": ["a", "b", "c"], "lon": lon, "lat": lat, "n": [1, 2, 3]}).to_csv(
        points, index=False)
    out = tmp_path / "out.csv"
    assert cli.main(["sample", str(store), "--points", str(points), "--out", str(out)]) == 0
    assert "not written by xsatclip precompute" in capsys.readouterr().err
    table = pd.read_csv(out)
    assert list(table.columns[:4]) == ["site", "lon", "lat", "n"]  # the ids kept, in order
    assert list(table.site) == ["a", "b", "c"]
    np.testing.assert_array_equal(table.iloc[:, 4:].to_numpy(np.float32), samples.values)


def test_projected_store_info_and_sample(tmp_path):
    x = np.arange(-5e5, 5e5, 1e5) + 5e4
    y = np.arange(5e5, -5e5, -1e5) - 5e4
    values = np.arange(4 * 10 * 10, dtype=np.float32).reshape(4, 10, 10)
    da = xr.DataArray(values, dims=("embedding", "y", "x"), coords={"y": y, "x": x},
                      name="emb").rio.write_crs("EPSG:3857")
    store = tmp_path / "projected.zarr"
    da.to_dataset().to_zarr(store, zarr_format=3)
    summary = cube.info(store)
    assert summary["crs"] == "EPSG:3857" and summary["y_order"] == "descending (north-up)"
    assert not any("CRS" in u for u in summary["unverified"])
    # (0.1, 0.1) degrees is about (11132, 11132) m: cell row 4 (y 5e4), col 5 (x 5e4)
    samples = xsatclip.sample(store, [0.1], [0.1])
    np.testing.assert_array_equal(samples.values[0], values[:, 4, 5])


def test_predict_map_on_a_store_has_its_own_name(foreign):
    store, values = foreign

    class Mean:
        def predict(self, rows):
            return rows.mean(axis=1)

    prediction = xsatclip.predict_map(Mean(), store)
    assert prediction.name == "prediction" and prediction.dims == ("lat", "lon")
    assert prediction.attrs["long_name"] == "prediction of Mean"
    # the estimator's float32 means, stored as float64: equal to numpy's float32 means
    np.testing.assert_allclose(prediction.values, values.mean(axis=2), rtol=1e-6, atol=1e-7)


def test_info_cli_does_not_import_torch(foreign):
    store, _ = foreign
    code = ("import sys, json; from xsatclip.cli import main; "
            f"main(['info', {str(store)!r}, '--json']); "
            "print(json.dumps('torch' in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120, check=True)
    *summary, torch_loaded = result.stdout.strip().splitlines()
    assert json.loads("\n".join(summary))["variable"] == "vectors"
    assert json.loads(torch_loaded) is False
