"""The examples run end to end at small sizes and write what they say, with sane numbers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
import rioxarray
import xarray as xr

import xsatclip
from xsatclip import cube

pytestmark = pytest.mark.slow  # each example runs in its own process

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RUNS = {  # example: small-size arguments (the model is added: the bundled L10)
    "regression_map": ["--cell-km", "30"],
    "sample_cube": ["--resolution", "10", "--points", "200"],
    "maps": ["--resolution", "10", "--points", "600"],
    "area_regression": ["--resolution", "0.5"],
}
# Examples that train their own model at a small size (no --model added).
TRAINING_RUNS = {
    "geolocate": ["--resolution", "5", "--queries", "100", "--locations", "3000",
                  "--epochs", "3"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, l10_source) -> dict[str, tuple[Path, str]]:
    """Every example at once (each pays the imports; the cores overlap them):
    name -> (output directory, stdout)."""
    procs = {}
    runs = {**{name: ["--model", str(l10_source), *arguments]
               for name, arguments in RUNS.items()}, **TRAINING_RUNS}
    for name, arguments in runs.items():
        out = tmp_path_factory.mktemp(name)
        procs[name] = out, subprocess.Popen(
            [sys.executable, str(EXAMPLES / f"{name}.py"), "--out", str(out), *arguments],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    for name, (out, proc) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}:\n{stderr}"
        results[name] = out, stdout
    return results


def _number(pattern: str, text: str) -> float:
    return float(re.search(pattern, text).group(1))


def test_regression_map(runs):
    out, stdout = runs["regression_map"]
    emb = xr.open_zarr(out / "utm_embeddings.zarr", consolidated=False,
                       decode_coords="all")["embeddings"]
    assert dict(emb.sizes) == {"y": 15, "x": 20, "embedding": 256}
    assert emb.rio.crs.to_epsg() == 32613 and emb.attrs["model_name"] == "bluemarble-l10"
    assert bool(emb.notnull().all())

    # The airports inside the raster's bounds, counted here independently of the example.
    import airportsdata

    airports = pd.DataFrame(airportsdata.load("ICAO").values())
    x, y = pyproj.Transformer.from_crs(4326, 32613, always_xy=True).transform(
        airports.lon.to_numpy(), airports.lat.to_numpy())
    inside = (x > 160_000) & (x < 760_000) & (y > 4_100_000) & (y < 4_550_000)
    metres = airports.elevation[inside].to_numpy() * 0.3048
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["airports_train"] + metrics["airports_test"] == inside.sum() > 100
    assert metrics["airports_test"] == inside.sum() // 4
    assert f"{inside.sum()} airports" in stdout
    # Elevation (1000 .. 3000 m: plains to the Rockies) is mapped better than by its mean.
    assert metrics["mae_m"] < 0.7 * metrics["baseline_mae_m"] and metrics["r2"] > 0.4
    assert _number(r"held-out MAE (\d+) m", stdout) == round(metrics["mae_m"])

    elevation = rioxarray.open_rasterio(out / "elevation_predicted.tif").squeeze("band")
    assert elevation.shape == (15, 20) and elevation.rio.crs.to_epsg() == 32613
    assert elevation.rio.resolution() == (30_000.0, -30_000.0)
    assert elevation.rio.bounds() == (160_000.0, 4_100_000.0, 760_000.0, 4_550_000.0)
    values = elevation.values
    assert np.isfinite(values).all()
    assert metres.min() - 300 < values.min() and values.max() < metres.max() + 300
    np.testing.assert_allclose([values.min(), values.max()],
                               [metrics["map_min_m"], metrics["map_max_m"]], rtol=1e-6)


def test_sample_cube(runs, l10_source):
    out, stdout = runs["sample_cube"]
    info = cube.info(out / "cube.zarr")
    assert info["dims"] == {"lat": 18, "lon": 36, "embedding": 256}
    assert info["chunks_done"] == info["chunks_total"]
    samples = xr.open_dataarray(out / "samples.nc")
    assert list(samples.sampling.values) == ["exact", "nearest", "linear"]
    assert samples.sizes == {"sampling": 3, "point": 205, "embedding": 256}
    model = xsatclip.load_model(l10_source, device="cpu")
    np.testing.assert_allclose(samples.sel(sampling="exact").values,
                               model.encode(samples.lon.values, samples.lat.values), atol=1e-6)
    # Special points: lat 12.3 lies in the row of 15 (row 7); 179.99 in the column of 175
    # (35); -179.99 and 180.01 in that of -175 (0).
    stored = xsatclip.open_cube(out / "cube.zarr").embeddings.transpose(..., "embedding").values
    nearest = samples.sel(sampling="nearest").values
    np.testing.assert_array_equal(nearest[:3], stored[[7, 7, 7], [35, 0, 0]])
    linear = samples.sel(sampling="linear").values
    np.testing.assert_allclose(linear[1], linear[2], atol=1e-3)  # 0.02 degrees apart

    table = pd.read_csv(out / "differences.csv", index_col="method")
    assert list(table.index) == ["nearest", "linear"]
    assert 0 < table.mean_abs["linear"] < table.mean_abs["nearest"]
    error = np.abs(samples.sel(sampling="linear") - samples.sel(sampling="exact")).values
    assert table.max_abs["linear"] == pytest.approx(error.max(), rel=1e-6)
    assert "difference from exact" in stdout and "north pole" in stdout


def test_maps(runs):
    import matplotlib.image

    out, stdout = runs["maps"]
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("embedding_pca.png", "land_probability.png"):
        image = matplotlib.image.imread(out / name)
        assert image.shape == (540, 1000, 4), name
        assert image[..., :3].std() > 0.1, name  # a picture, not a blank page
    assert len(metrics["pca_explained_variance"]) == 3
    assert 0 < sum(metrics["pca_explained_variance"]) < 1
    assert metrics["points_train"] == 450 and metrics["points_test"] == 150
    # Even the tiny model separates land from ocean, and maps about the right share of land
    # (29% of the Earth's surface).
    assert metrics["land_accuracy"] > metrics["majority_accuracy"]
    assert metrics["land_roc_auc"] > 0.8
    assert 0.15 < metrics["map_land_fraction"] < 0.45
    assert f"accuracy {metrics['land_accuracy']:.3f}" in stdout


def test_geolocate(runs):
    import matplotlib.image

    out, stdout = runs["geolocate"]
    metrics = json.loads((out / "geolocation.json").read_text())
    assert metrics["queries"] + metrics["dropped_on_training_pixels"] == 100
    assert metrics["queries"] >= 90 and metrics["held_out_seed"] != metrics["training_seed"]
    assert xsatclip.open_cube(out / "cube.zarr").embeddings.sizes == {
        "lat": 36, "lon": 72, "embedding": 64}
    located, uniform = metrics["located"], metrics["uniform_random"]
    for scores in (located, uniform):
        recall = [scores["recall_at_km2"][key] for key in ("1e4", "1e5", "1e6")]
        assert recall == sorted(recall) and 0 <= recall[0] and recall[-1] <= 1
    # A random ranking finds the truth within 1e6 km² for ~0.2% of queries (1e6 / 5.1e8),
    # and its median error is a quarter of the circumference (10,007 km; sampling error of
    # the median of ~100 points about 640 km).
    assert uniform["recall_at_km2"]["1e6"] <= 0.05
    assert abs(uniform["median_error_km"] - 10_007) < 2000
    # Even the tiny pair (3 epochs on 3000 patches) knows roughly where a patch was taken.
    assert located["median_error_km"] < 0.8 * uniform["median_error_km"]
    assert located["recall_at_km2"]["1e6"] >= uniform["recall_at_km2"]["1e6"]
    assert metrics["logit_scale"] > 0
    image = matplotlib.image.imread(out / "heatmap.png")
    assert image.shape == (540, 1000, 4) and image[..., :3].std() > 0.1
    assert f"{metrics['queries']} held-out patches" in stdout
    assert f"median error {located['median_error_km']:.0f} km" in stdout


def test_area_regression(runs):
    import geopandas
    import matplotlib.image
    from libpysal import examples
    from sklearn.metrics import r2_score

    out, stdout = runs["area_regression"]
    counties = geopandas.read_file(out / "predictions.gpkg")
    assert len(counties) == 159 and counties.crs.to_epsg() == 26916
    shipped = geopandas.read_file(examples.get_path("G_utm.shp"))
    np.testing.assert_array_equal(counties.PctPov, shipped.PctPov)  # rows kept in order
    assert sorted(counties.fold.unique()) == [0, 1, 2, 3, 4]
    assert (counties.groupby("block").fold.nunique() == 1).all()  # blocks dealt whole
    assert np.isfinite(counties.predicted).all()

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counties"] == 159 and metrics["model"] == "bluemarble-l10"
    assert metrics["blocks"] == counties.block.nunique() > 5
    assert metrics["r2_area_mean"] == pytest.approx(
        r2_score(counties.PctPov, counties.predicted), rel=1e-9)
    # Poverty rates vary across Georgia in broad regions: even the level-10 model's smooth
    # embeddings beat the training-fold mean under blocked folds.
    assert metrics["r2_training_mean"] < 0 < metrics["r2_area_mean"]
    assert f"out-of-fold R2 {metrics['r2_area_mean']:.3f} with area means" in stdout
    # County areas from the zonal weights: those of the WGS84 ellipsoid within 1% (the
    # weights are on the authalic sphere).
    geod = pyproj.Geod(ellps="WGS84")
    ellipsoidal = [abs(geod.geometry_area_perimeter(g)[0]) for g in shipped.set_crs(
        26916).to_crs(4326).geometry]
    assert metrics["county_area_km2_median"] == pytest.approx(np.median(ellipsoidal) / 1e6,
                                                              rel=0.01)

    image = matplotlib.image.imread(out / "area_regression.png")
    assert image.shape == (550, 1000, 4)
    assert image[..., :3].std() > 0.1
