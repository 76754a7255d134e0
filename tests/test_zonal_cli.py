"""``xsatclip zonal``: a real cube and real polygon files in each format, round trip to
GeoParquet and CSV with the attribute columns kept."""

from __future__ import annotations

import re

import dask
import dask.base
import geopandas
import numpy as np
import pandas as pd
import pytest
import shapely

import xsatclip
from xsatclip import cube
from xsatclip.areas import zonal
from xsatclip.cli import main


@pytest.fixture(scope="module")
def store(tmp_path_factory, golden_dir):
    model = xsatclip.load_model(golden_dir / "satclip-tiny-l10.ckpt", device="cpu")
    # dask.distributed imported once here: precompute's threads may otherwise race to
    # import it first (dask's get_scheduler does) and fail with a circular ImportError.
    dask.base.get_scheduler(scheduler="threads")
    with dask.config.set(num_workers=2):
        return cube.precompute(tmp_path_factory.mktemp("zonal") / "cube.zarr", resolution=10.0,
                               model=model, chunks=3, progress=False)


@pytest.fixture(scope="module")
def table():
    """Three polygons with attributes: one across the dateline, one around the north pole."""
    return geopandas.GeoDataFrame(
        {"name": ["fiji", "arctic", "europe"], "population": [900_000, 4_000_000, 7_500_000]},
        geometry=[shapely.box(175, -20, 182, -15),
                  shapely.Polygon([(-180, 80), (180, 80), (180, 90), (-180, 90)]),
                  shapely.Polygon([(-10, 36), (30, 36), (40, 70), (-5, 60)])],
        crs=4326)


@pytest.mark.parametrize("suffix", [".gpkg", ".parquet", ".geojson"])
def test_round_trip_each_input_format(store, table, tmp_path, suffix, capsys):
    path = tmp_path / f"polygons{suffix}"
    if suffix == ".parquet":
        table.to_parquet(path)
    else:
        table.to_file(path)
    expected = zonal(store, table, stat=["mean", "std", "count"])

    assert main(["zonal", str(store), "--polygons", str(path), "--out",
                 str(tmp_path / "out.parquet"), "--stat", "mean", "std", "count"]) == 0
    assert "3 polygons" in capsys.readouterr().err
    out = geopandas.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns[:4]) == ["name", "population", "geometry", "area_m2"]
    assert out.crs.to_epsg() == 4326 and out.geometry.equals(table.geometry)
    mean = out[[f"e{i}" for i in range(256)]].to_numpy()
    std = out[[f"std_e{i}" for i in range(256)]].to_numpy()
    np.testing.assert_allclose(mean, expected.sel(zonal_statistics="mean"), rtol=1e-12)
    np.testing.assert_allclose(std, expected.sel(zonal_statistics="std"), rtol=1e-12)
    assert out["count"].tolist() == expected.sel(zonal_statistics="count")[:, 0].values.tolist()
    np.testing.assert_allclose(out.area_m2, expected.area, rtol=1e-12)

    assert main(["zonal", str(store), "--polygons", str(path), "--out",
                 str(tmp_path / "out.csv")]) == 0
    csv = pd.read_csv(tmp_path / "out.csv")
    assert list(csv.columns[:3]) == ["name", "population", "area_m2"]
    assert csv.shape == (3, 3 + 256) and csv.name.tolist() == ["fiji", "arctic", "europe"]
    np.testing.assert_allclose(csv[[f"e{i}" for i in range(256)]],
                               expected.sel(zonal_statistics="mean"), rtol=1e-12)


def test_polygons_in_another_crs_and_coverage_weights(store, table, tmp_path):
    europe = table.iloc[[2]].to_crs(3035)  # ETRS89 / LAEA Europe
    path = tmp_path / "europe.gpkg"
    europe.to_file(path)
    assert main(["zonal", str(store), "--polygons", str(path), "--out",
                 str(tmp_path / "out.csv"), "--weights", "coverage"]) == 0
    csv = pd.read_csv(tmp_path / "out.csv")
    np.testing.assert_allclose(csv[[f"e{i}" for i in range(256)]],
                               zonal(store, europe, weights="coverage"), rtol=1e-12)
    assert csv.coverage_cells[0] == pytest.approx(
        float(zonal(store, europe, weights="coverage").coverage[0]), rel=1e-12)


def test_cli_errors(store, table, tmp_path, capsys):
    path = tmp_path / "polygons.gpkg"
    table.to_file(path)
    for arguments, message in [
        (["--polygons", str(tmp_path / "nothing.gpkg"), "--out", "x.csv"],
         "polygon file .*nothing.gpkg does not exist"),
        (["--polygons", str(tmp_path / "p.txt"), "--out", "x.csv"],
         "unknown polygon file format '.txt'"),
        (["--polygons", str(path), "--out", str(tmp_path / "x.xlsx")],
         "unknown output format '.xlsx'; use one of .csv, .geoparquet, .parquet"),
    ]:
        assert main(["zonal", str(store), *arguments]) == 1
        assert re.search(message, capsys.readouterr().err)
    clashing = table.assign(e0=1.0)
    clashing.to_file(tmp_path / "clash.gpkg")
    assert main(["zonal", str(store), "--polygons", str(tmp_path / "clash.gpkg"), "--out",
                 str(tmp_path / "x.csv")]) == 1
    assert "already have columns ['e0']" in capsys.readouterr().err
