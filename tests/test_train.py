"""SatCLIP pretraining: training pairs from real rasters, learning, determinism, resume."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyproj
import pytest
import rioxarray
import torch
import xarray as xr

import xsatclip
from xsatclip.errors import CheckpointError, InvalidCoordinatesError
from xsatclip.training import TrainConfig, train
from xsatclip.training.pairs import PatchSampler

TINY = TrainConfig(level=4, capacity=32, embed_dim=16, patch_size=3, num_locations=1500,
                   batch_size=250, epochs=3, learning_rate=3e-3, image_width=8, seed=7)


def lonlat_raster(cell: float = 5.0) -> xr.DataArray:
    """A global (band=3, lat, lon) float32 raster: band 0 holds the row index, band 1 the
    column index, band 2 a quadrant colour (north/south x east/west of 0 degrees)."""
    lat = 90 - cell * (np.arange(round(180 / cell)) + 0.5)
    lon = -180 + cell * (np.arange(round(360 / cell)) + 0.5)
    rows, cols = np.meshgrid(np.arange(lat.size), np.arange(lon.size), indexing="ij")
    quadrant = 2 * (lat[:, None] < 0) + (lon[None, :] >= 0)
    data = np.stack([rows, cols, quadrant]).astype(np.float32)
    return xr.DataArray(data, dims=("band", "lat", "lon"),
                        coords={"lat": lat, "lon": lon}).rio.write_crs("EPSG:4326")


def test_patch_is_the_window_around_the_nearest_pixel():
    sampler = PatchSampler(lonlat_raster(), patch_size=3)
    row, col, on = sampler.pixel(np.array([12.4]), np.array([47.6]))
    assert on.all() and (row[0], col[0]) == (8, 38)  # lat 47.5, lon 12.5
    rows, cols, whole = sampler.patch_indices(row, col)
    patch = sampler.cut(rows, cols)[0]
    assert whole.all()
    np.testing.assert_array_equal(patch[0], np.array([[7] * 3, [8] * 3, [9] * 3]))
    np.testing.assert_array_equal(patch[1], np.array([[37, 38, 39]] * 3))


@pytest.mark.parametrize(("lon", "expected"), [
    (179.9, [70, 71, 0]), (-179.9, [71, 0, 1]), (180.1, [71, 0, 1]), (359.9, [34, 35, 36]),
])
def test_patch_wraps_at_the_dateline_in_both_conventions(lon, expected):
    sampler = PatchSampler(lonlat_raster(), patch_size=3)
    row, col, on = sampler.pixel(np.array([lon]), np.array([0.0]))
    rows, cols, whole = sampler.patch_indices(row, col)
    assert on.all() and whole.all()
    np.testing.assert_array_equal(sampler.cut(rows, cols)[0, 1, 0], expected)


def test_patch_rows_clamp_at_the_poles():
    sampler = PatchSampler(lonlat_raster(), patch_size=3)
    row, col, _ = sampler.pixel(np.array([0.0, 0.0]), np.array([90.0, -90.0]))
    rows, _, whole = sampler.patch_indices(row, col)
    assert whole.all()
    np.testing.assert_array_equal(rows, [[0, 0, 1], [34, 35, 35]])


def test_pairs_respect_the_mask_and_are_uniform_on_the_sphere():
    sampler = PatchSampler(lonlat_raster(), patch_size=3)
    pairs = sampler.draw(4000, np.random.default_rng(0), mask=lambda lon, lat: lon > 0)
    assert len(pairs) == 4000 and (pairs.lon > 0).all()
    # Uniform on the sphere: sin(lat) is uniform, so |lat| < 30 holds half the points.
    assert abs(np.mean(np.abs(pairs.lat) < 30) - 0.5) < 0.03
    # Each patch's centre pixel is the pixel the location falls in.
    np.testing.assert_array_equal(pairs.patches[:, 0, 1, 1], np.floor((90 - pairs.lat) / 5))


def test_pairs_from_a_projected_geotiff(tmp_path):
    crs = pyproj.CRS.from_epsg(32633)  # UTM 33N
    x = 400_000 + 1000.0 * (np.arange(120) + 0.5)
    y = 5_300_000 - 1000.0 * (np.arange(100) + 0.5)
    data = np.stack(np.meshgrid(y, x, indexing="ij")).astype(np.float64)
    path = tmp_path / "utm.tif"
    xr.DataArray(data, dims=("band", "y", "x"), coords={"y": y, "x": x}).rio.write_crs(
        crs).rio.to_raster(path)
    image = rioxarray.open_rasterio(path)
    pairs = PatchSampler(image, patch_size=5).draw(300, np.random.default_rng(1))
    px, py = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(
        pairs.lon, pairs.lat)
    # The centre pixel (float64 northing/easting of its centre) is within half a cell.
    assert np.abs(pairs.patches[:, 0, 2, 2] - py).max() <= 500
    assert np.abs(pairs.patches[:, 1, 2, 2] - px).max() <= 500
    # Whole patches only: every centre is at least 2 pixels from the edge.
    assert pairs.patches[:, 1, 2, 2].min() >= x[2] and pairs.patches[:, 0, 2, 2].max() <= y[2]


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="patch_size"):
        PatchSampler(lonlat_raster(), patch_size=0)
    with pytest.raises(InvalidCoordinatesError, match="no spatial coordinates"):
        PatchSampler(xr.DataArray(np.zeros((3, 4, 5)), dims=("b", "r", "c")), patch_size=1)
    with pytest.raises(ValueError, match="passes the mask"):
        PatchSampler(lonlat_raster(), patch_size=3).draw(
            10, np.random.default_rng(0), mask=lambda lon, lat: lat > 95, max_rounds=2)


def nearest_centroid_accuracy(embedding: np.ndarray, labels: np.ndarray, train: np.ndarray):
    """Accuracy on ~train of a nearest-centroid classifier on unit-normalised embeddings."""
    unit = embedding / np.linalg.norm(embedding, axis=1, keepdims=True)
    centroids = np.stack([unit[train & (labels == k)].mean(0) for k in range(4)])
    predicted = np.argmax(unit[~train] @ centroids.T, axis=1)
    return np.mean(predicted == labels[~train])


@pytest.mark.slow
def test_loss_falls_and_the_embedding_separates_the_regions(tmp_path):
    image = lonlat_raster().sel(band=[2])  # the patch shows only the quadrant's colour
    config = dataclasses.replace(TINY, epochs=6)
    run = train(image, tmp_path / "model", config, progress=False)
    losses = [h["train_loss"] for h in run.history]
    assert losses[-1] < 0.8 * losses[0], losses
    assert run.history[-1]["val_loss"] < run.history[0]["val_loss"]
    # Points at least 10 degrees from the quadrant boundaries.
    rng = np.random.default_rng(3)
    lon = rng.choice([-1, 1], 2000) * rng.uniform(10, 170, 2000)
    lat = rng.choice([-1, 1], 2000) * rng.uniform(10, 80, 2000)
    labels = 2 * (lat < 0) + (lon >= 0)
    embedding = run.encoder.encode(lon, lat)
    assert nearest_centroid_accuracy(embedding, labels, np.arange(2000) < 1000) > 0.9
    # The checkpoint is a model directory that load_model reads.
    loaded = xsatclip.load_model(tmp_path / "model", device="cpu")
    np.testing.assert_array_equal(loaded.encode(lon, lat), embedding)  # float32, exact


def test_same_seed_gives_identical_weights(tmp_path):
    image = lonlat_raster()
    first = train(image, tmp_path / "a", TINY, progress=False)
    second = train(image, tmp_path / "b", TINY, progress=False)
    assert first.encoder.identity.sha256 == second.encoder.identity.sha256
    assert [h["train_loss"] for h in first.history] == [h["train_loss"] for h in second.history]
    other = train(image, tmp_path / "c", dataclasses.replace(TINY, seed=8), progress=False)
    assert other.encoder.identity.sha256 != first.encoder.identity.sha256


@pytest.mark.slow
def test_resume_continues_where_training_stopped(tmp_path):
    image = lonlat_raster()
    whole = train(image, tmp_path / "whole", TINY, progress=False)
    stopped = train(image, tmp_path / "part", TINY, stop_after=1, progress=False)
    assert len(stopped.history) == 1
    resumed = train(image, tmp_path / "part", TINY, progress=False)
    assert resumed.encoder.identity.sha256 == whole.encoder.identity.sha256
    assert ([h["val_loss"] for h in resumed.history]
            == [h["val_loss"] for h in whole.history])
    for a, b in zip(resumed.image_encoder.state_dict().values(),
                    whole.image_encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_is_never_silently_replaced(tmp_path):
    image = lonlat_raster()
    train(image, tmp_path / "m", TINY, stop_after=1, progress=False)
    before = (tmp_path / "m" / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="resume=True"):
        train(image, tmp_path / "m", TINY, resume=False, progress=False)
    with pytest.raises(CheckpointError, match="learning_rate"):
        train(image, tmp_path / "m", dataclasses.replace(TINY, learning_rate=1e-2),
              progress=False)
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before


@pytest.mark.slow
def test_cli_trains_on_a_geotiff_and_the_model_embeds_points(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "bands.tif"
    lonlat_raster().rio.set_spatial_dims(x_dim="lon", y_dim="lat").rio.to_raster(path)
    out = tmp_path / "cli-model"
    command = [sys.executable, "-m", "xsatclip.cli", "train", str(path), "--out", str(out),
               "--level", "3", "--capacity", "16", "--embed-dim", "8", "--patch-size", "3",
               "--locations", "600", "--batch-size", "100", "--epochs", "2", "--lr", "0.003"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "2/2 epochs" in done.stdout and str(out) in done.stdout
    model = xsatclip.load_model(out, device="cpu")
    assert (model.level, model.embed_dim) == (3, 8)
    assert np.isfinite(model.encode([0.0, 180.0], [90.0, -90.0])).all()
    bad = subprocess.run([*command[:-2], "--lr", "-1"], capture_output=True, text=True,
                         check=False)
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0
    assert "learning_rate must be positive" in bad.stderr


def test_the_image_encoder_is_saved_beside_the_location_encoder(tmp_path):
    """The model directory holds the image half with its learned logit scale; the loaded pair
    embeds patches like the training run's module (float32, atol 1e-6)."""
    image = lonlat_raster()
    run = train(image, tmp_path / "pair", TINY, progress=False)
    loaded = xsatclip.load_model(tmp_path / "pair", device="cpu")
    state = torch.load(tmp_path / "pair" / "training_state.pt", weights_only=True)
    assert loaded.identity.logit_scale == pytest.approx(float(state["loss"]["logit_scale"]))
    assert loaded.image_config.bands == ("band0", "band1", "band2")
    assert loaded.image_config.patch_size == 3
    assert len(loaded.identity.image_sha256) == 64
    pairs = PatchSampler(image, TINY.patch_size).draw(50, np.random.default_rng(1))
    ours = loaded.encode_images(pairs.patches, batch_size=16)
    run.image_encoder.eval()
    with torch.no_grad():
        reference = run.image_encoder(torch.from_numpy(pairs.patches)).numpy()
    assert ours.shape == (50, TINY.embed_dim) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)
    with pytest.raises(xsatclip.errors.InvalidOptionError, match=r"\(N, 3, 3, 3\)"):
        loaded.encode_images(pairs.patches[:, :2])
    without = xsatclip.load_model(tmp_path / "pair", device="cpu")
    without.image_network = None
    with pytest.raises(xsatclip.errors.InvalidOptionError, match="no image encoder"):
        without.encode_images(pairs.patches)


def test_smoothness_damps_the_high_degree_weights(tmp_path):
    """The degree-weighted penalty shrinks the first layer's weights on the highest degree
    (l = L - 1) relative to l = 1, against the same run without it."""
    image = lonlat_raster()

    def high_to_low(smoothness: float) -> float:
        config = dataclasses.replace(TINY, level=8, smoothness=smoothness)
        weight = train(image, tmp_path / str(smoothness), config,
                       progress=False).encoder.network.sine_layers[0].weight.detach()
        norms = weight.pow(2).sum(0)
        return float(norms[49:64].mean() / norms[1:4].mean())

    assert high_to_low(30.0) < 0.5 * high_to_low(0.0)
