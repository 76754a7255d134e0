"""The cube read by the clients geospatial users already have: xarray + rioxarray alone,
rasterio, odc-geo, xbatcher, zarr-lint, zarr-cm; and the accessor's own ``to_zarr``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import dask
import numpy as np
import odc.geo.xr  # noqa: F401  (registers .odc)
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
import xbatcher
import zarr
import zarr_cm
from odc.geo.geom import box

import xsatclip
from xsatclip import cli, cube
from xsatclip.cube.metadata import check_geoemb

# The zarr-lint CLI (dev group) beside this Python, or on PATH.
ZARR_LINT = str(Path(sys.executable).with_name("zarr-lint"))
if not Path(ZARR_LINT).exists():
    ZARR_LINT = shutil.which("zarr-lint") or "zarr-lint"


@pytest.fixture(scope="module")
def store(tmp_path_factory, l10):
    """30 degree global float32 cube: lat 75 .. -75 (6 rows), lon -165 .. 165 (12)."""
    with dask.config.set(num_workers=2):
        return cube.precompute(tmp_path_factory.mktemp("clients") / "cube.zarr",
                               resolution=30.0, model=l10, chunks=3, progress=False)


def test_xarray_and_rioxarray_alone(store, tmp_path):
    ds = xr.open_zarr(store)  # no xsatclip in the way
    emb = ds[cube.VARIABLE]
    assert emb.dims == ("embedding", "lat", "lon") and "spatial_ref" in ds.coords
    assert ds.rio.crs.to_epsg() == 4326 and emb.rio.crs.to_epsg() == 4326
    tif = tmp_path / "cube.tif"
    emb.rio.to_raster(tif)  # band-first: no InvalidDimensionOrder
    with rasterio.open(tif) as raster:
        assert raster.count == 256 and raster.crs.to_epsg() == 4326
        assert tuple(raster.transform)[:6] == (30.0, 0.0, -180.0, 0.0, -30.0, 90.0)
        np.testing.assert_array_equal(raster.read(), emb.values)  # float32, bit for bit


def test_odc_geo_crop(store):
    emb = xr.open_zarr(store)[cube.VARIABLE]
    assert emb.odc.geobox.crs.epsg == 4326
    region = box(-60, -30, 60, 60, "epsg:4326")
    for mask in (False, True):
        cropped = emb.odc.crop(region, apply_mask=mask)
        assert cropped.dims == ("embedding", "lat", "lon")
        # rows 45, 15 (lat 60 .. 0 .. -30 edges), cols -45 .. 45 (lon -60 .. 60)
        assert list(cropped.lat.values) == [45.0, 15.0, -15.0]
        assert list(cropped.lon.values) == [-45.0, -15.0, 15.0, 45.0]
        np.testing.assert_array_equal(cropped.values,  # float32, bit for bit
                                      emb.sel(lat=cropped.lat, lon=cropped.lon).values)


def test_xbatcher_yields_band_first_batches(store):
    emb = xr.open_zarr(store)[cube.VARIABLE]
    batches = list(xbatcher.BatchGenerator(emb, input_dims={"lat": 3, "lon": 4}))
    assert len(batches) == 2 * 3
    assert all(b.dims == ("embedding", "lat", "lon") and b.shape == (256, 3, 4)
               for b in batches)
    np.testing.assert_array_equal(batches[0].values, emb.values[:, :3, :4])


def test_zarr_lint_finds_no_problem(store):
    result = subprocess.run([ZARR_LINT, "check", "--format", "json", str(store)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["diagnostics"] == []


def test_zarr_cm_validates_the_conventions(store):
    attrs = dict(zarr.open_group(store, mode="r").attrs)
    array_attrs = dict(zarr.open_array(store, path=cube.VARIABLE, mode="r").attrs)
    zarr_cm.validate_all(attrs)
    zarr_cm.validate_all(array_attrs)
    check_geoemb(attrs)
    assert attrs["spatial:transform"][4] < 0  # north-up, as the rows are stored


def test_accessor_to_zarr_keeps_its_crs(tmp_path):
    emb = xsatclip.grid(30.0).satclip.embed(level=10)
    emb.to_zarr(tmp_path / "da.zarr")  # DataArray.to_zarr: the variable keeps its name
    emb.to_dataset().to_zarr(tmp_path / "ds.zarr")
    for path in ("da.zarr", "ds.zarr"):
        reopened = xr.open_zarr(tmp_path / path)
        assert list(reopened.data_vars) == [cube.VARIABLE]
        assert "spatial_ref" in reopened.coords
        assert reopened[cube.VARIABLE].rio.crs.to_epsg() == 4326


def test_precompute_stac_writes_the_item_once(tmp_path, l10_source, capsys):
    store = tmp_path / "stac.zarr"
    argv = ["precompute", str(store), "--resolution", "60", "--model", l10_source, "--stac"]
    assert cli.main(argv) == 0
    item_path = tmp_path / "stac.zarr.stac.json"
    item = json.loads(item_path.read_text())
    assert item["type"] == "Feature" and "embeddings" in item["assets"]
    item_path.write_text(json.dumps({**item, "id": "edited"}))
    assert cli.main(argv) == 0  # a rerun (resume) keeps the Item already there
    assert "kept (already there)" in capsys.readouterr().out
    assert json.loads(item_path.read_text())["id"] == "edited"
