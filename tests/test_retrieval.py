"""RANGE-style retrieval augmentation: galleries from real rasters through the training-pair
sampler, the softmax-weighted retrieval by hand, points and lazy grids alike."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr
from dask.callbacks import Callback

import xsatclip
from xsatclip.errors import InvalidOptionError
from xsatclip.geolocation import GeolocationError, augment, build_gallery, encode_patches
from xsatclip.training.pairs import PatchSampler

GALLERY_LOCATIONS = np.eye(3)
GALLERY_IMAGES = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])


def hand_gallery(images=GALLERY_IMAGES) -> xr.Dataset:
    return xr.Dataset({"location_embedding": (("gallery", "embedding"), GALLERY_LOCATIONS),
                       "image_embedding": (("gallery", "image_feature"), images)},
                      coords={"lon": ("gallery", [0.0, 90.0, 0.0]),
                              "lat": ("gallery", [0.0, 0.0, 90.0])})


def test_the_weighted_retrieval_by_hand():
    query = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, -3.0], [np.nan, 0.0, 0.0]])
    out = augment(query, hand_gallery(), k=2, temperature=0.5)
    assert out.shape == (3, 5) and out.dtype == np.float64
    # Row 0: cosines 2/sqrt(5), 1/sqrt(5), 0 to the gallery: the first two, weighted by
    # softmax(cos / 0.5). float64 throughout: 1e-12.
    s = np.array([2.0, 1.0]) / math.sqrt(5.0) / 0.5
    w = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    np.testing.assert_allclose(out[0], [2.0, 1.0, 0.0, w[0], w[1]], rtol=1e-12)
    # Row 1: cosines 0, 0, -1: the two zero-similarity locations (indices 0, 1), equal weights.
    np.testing.assert_allclose(out[1, 3:], [0.5, 0.5], rtol=1e-12)
    assert np.isnan(out[2]).all()  # an invalid embedding gives a NaN row
    nearest = augment(query[:1], hand_gallery(), k=1)
    np.testing.assert_array_equal(nearest[0, 3:], GALLERY_IMAGES[0])


def test_mix_mode_blends_unit_vectors():
    images = np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    out = augment(np.array([[3.0, 0.0, 0.0]]), hand_gallery(images), k=1, mode="mix",
                  mix_weight=0.25)
    np.testing.assert_allclose(out[0], [0.75, 0.25, 0.0], rtol=1e-12)
    with pytest.raises(GeolocationError, match="mode='mix' needs image embeddings"):
        augment(np.ones((1, 3)), hand_gallery(), mode="mix", k=1)


def test_bad_arguments_name_the_problem():
    with pytest.raises(InvalidOptionError, match="mode='sum'"):
        augment(np.ones((1, 3)), hand_gallery(), mode="sum")
    with pytest.raises(GeolocationError, match=r"k must be an integer in 1 \.\. 3"):
        augment(np.ones((1, 3)), hand_gallery(), k=4)
    with pytest.raises(GeolocationError, match="temperature must be a positive"):
        augment(np.ones((1, 3)), hand_gallery(), k=1, temperature=-1.0)
    with pytest.raises(GeolocationError, match="2 channels, the embeddings 3"):
        augment(np.ones((1, 3)), hand_gallery().isel(embedding=[0, 1]), k=1)
    with pytest.raises(GeolocationError, match=r"missing \['image_embedding'\]"):
        augment(np.ones((1, 3)), hand_gallery().drop_vars("image_embedding"), k=1)
    with pytest.raises(GeolocationError, match="returned shape"):
        encode_patches(lambda batch: batch.sum(), np.zeros((4, 3, 2, 2)))


def band_raster(cell: float = 5.0) -> xr.DataArray:
    """A global (band=3, lat, lon) float32 raster of smooth functions of the location."""
    template = xsatclip.grid(cell)
    lon, lat = np.meshgrid(np.radians(template.lon.values), np.radians(template.lat.values))
    data = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    return xr.DataArray(data.astype(np.float32), dims=("band", "lat", "lon"),
                        coords=template.coords, name="unit_vectors")


def band_means(patches: np.ndarray) -> np.ndarray:
    """A stand-in image encoder: the mean of each band, (N, bands)."""
    return patches.mean(axis=(2, 3))


@pytest.fixture(scope="module")
def l10(golden_dir):
    return xsatclip.load_model(golden_dir / "satclip-tiny-l10.ckpt", device="cpu")


@pytest.fixture(scope="module")
def gallery(l10):
    return build_gallery(band_raster(), l10, band_means, 400, patch_size=3, seed=11)


def test_a_gallery_holds_the_sampler_pairs_and_both_embeddings(gallery, l10):
    pairs = PatchSampler(band_raster(), 3).draw(400, np.random.default_rng(11))
    np.testing.assert_array_equal(gallery.lon.values, pairs.lon)
    np.testing.assert_array_equal(gallery.lat.values, pairs.lat)
    np.testing.assert_array_equal(gallery.location_embedding.values,
                                  l10.encode(pairs.lon, pairs.lat))
    # float32 means of 9 values in [-1, 1], summed per batch: equal to float32 rounding.
    np.testing.assert_allclose(gallery.image_embedding.values, band_means(pairs.patches),
                               rtol=0, atol=5e-7)
    assert gallery.attrs["model_name"] == "satclip-tiny-l10"
    assert "400 locations" in gallery.attrs["xsatclip_gallery"]


def test_image_encoders_of_every_kind():
    patches = np.random.default_rng(0).normal(size=(10, 3, 3, 3)).astype(np.float32)
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5),
                                 torch.nn.Linear(27, 4))
    module.train()
    out = encode_patches(module, patches, batch_size=3)
    assert module.training  # the caller's mode is restored
    with torch.no_grad():
        expected = module.eval()(torch.from_numpy(patches)).numpy()  # dropout off
    np.testing.assert_allclose(out, expected, rtol=1e-6)  # float32, batched: 1e-6

    class Pair:  # a loaded model with an image half (encode_images)
        def encode_images(self, batch):
            return batch.reshape(len(batch), -1)[:, :5]

    np.testing.assert_array_equal(encode_patches(Pair(), patches),
                                  patches.reshape(10, -1)[:, :5])


def test_points_and_lazy_grids_give_the_same_rows(gallery, l10):
    lon, lat = np.array([10.0, -170.0, 179.9, 0.0]), np.array([45.0, -80.0, 1.0, 90.0])
    points = xsatclip.sample(xsatclip.grid(10.0).satclip.embed(model=l10), lon, lat,
                             method="exact")
    augmented = augment(points, gallery, k=5)
    assert augmented.dims == ("point", "embedding") and augmented.sizes["embedding"] == 259
    assert augmented.dtype == np.float32 and augmented.attrs["model_name"] == "satclip-tiny-l10"
    np.testing.assert_array_equal(augmented.values[:, :256], points.values)
    np.testing.assert_array_equal(augmented.lon, lon)

    class Counter(Callback):
        tasks = 0

        def _pretask(self, key, dask, state):
            Counter.tasks += 1

    with Counter():
        grid = xsatclip.grid(10.0, chunks=6).satclip.embed(model=l10)
        lazy = augment(grid, gallery, k=5)  # band-first, as embed returns it
    assert Counter.tasks == 0 and lazy.chunks is not None
    assert lazy.dims == ("embedding", "lat", "lon") and lazy.sizes["embedding"] == 259
    assert "5 most similar of 400" in lazy.attrs["xsatclip_augment"]
    computed = lazy.transpose("lat", "lon", "embedding").values
    expected = augment(grid.transpose(..., "embedding").values.reshape(-1, 256), gallery, k=5)
    # float32 outputs of the same float64 arithmetic on the same rows.
    np.testing.assert_allclose(computed.reshape(-1, 259), expected, rtol=1e-6, atol=1e-7)
    # The retrieved part is a convex combination of gallery image embeddings (band means of
    # unit vectors: each within [-1, 1]).
    assert np.abs(computed[..., 256:]).max() <= 1.0


def test_evaluate_scores_augmented_features_beside_the_plain_ones(gallery, l10, tmp_path):
    from xsatclip.errors import EvaluationError, WeightsMismatchError
    from xsatclip.evaluation import evaluate, resolve_features

    path = tmp_path / "gallery.zarr"
    gallery.to_zarr(path, consolidated=False)
    features = resolve_features(f"range:{path}")
    assert features.name == "satclip-tiny-l10+range"
    lon, lat = np.array([3.0, -120.0, 179.0]), np.array([50.0, -33.0, 64.0])
    np.testing.assert_array_equal(features(lon, lat),
                                  augment(l10.encode(lon, lat), gallery, k=10))
    results = evaluate([l10, f"range:{path}"], tasks=["land_ocean"], n_points=400, folds=3,
                       probes=["ridge"], knn=False)
    assert list(results["features"]) == ["satclip-tiny-l10", "satclip-tiny-l10+range"]
    assert list(results["dims"]) == [256, 259] and results["mean"].notna().all()

    anonymous = tmp_path / "anonymous.zarr"
    gallery.drop_attrs().to_zarr(anonymous, consolidated=False)
    with pytest.raises(EvaluationError, match="records no location model"):
        resolve_features(f"range:{anonymous}")
    other = tmp_path / "other.zarr"
    gallery.assign_attrs(model_sha256="0" * 64).to_zarr(other, consolidated=False)
    with pytest.raises(WeightsMismatchError, match="gallery"):
        resolve_features(f"range:{other}")
    with pytest.raises(EvaluationError, match="cannot read the gallery"):
        resolve_features(f"range:{tmp_path / 'missing.zarr'}")
