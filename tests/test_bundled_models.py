"""The bundled default models: offline, recorded, and what embed(level=...) uses."""

from __future__ import annotations

import json

import numpy as np
import pytest

import xsatclip
from xsatclip.model.registry import BUNDLED_MODELS, DEFAULT_MODELS, bundled_model_directory


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No network: the Hub client must not even be asked."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("xsatclip.model.load.download_from_hub", _no_download)


def _no_download(*args):
    raise AssertionError(f"tried to download {args}")


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_bundled_model_loads_offline_and_matches_its_training_record(name):
    model = xsatclip.load_model(name, device="cpu")
    record = json.loads((bundled_model_directory(name) / "training.json").read_text())
    assert model.identity.sha256 == record["sha256"]
    assert model.identity.source == name and model.identity.name == name
    assert (model.level, model.embed_dim) == (record["train_config"]["level"], 256)
    card = (bundled_model_directory(name) / "MODEL_CARD.md").read_text()
    assert record["sha256"] in card
    assert "land_ocean" in card and "elevation" in card


@pytest.mark.parametrize("level", sorted(DEFAULT_MODELS))
def test_embed_by_level_uses_the_bundled_model(level):
    emb = xsatclip.grid(30.0).satclip.embed(level=level)
    assert emb.attrs["model_name"] == DEFAULT_MODELS[level]
    assert emb.attrs["model_source"] == DEFAULT_MODELS[level]
    assert emb.dims == ("embedding", "lat", "lon")  # band-first
    values = np.moveaxis(emb.compute().values, 0, -1)
    direct = xsatclip.load_model(DEFAULT_MODELS[level], device="cpu").encode(
        *np.meshgrid(emb.lon.values, emb.lat.values))
    # float32: the separable grid path against the pointwise one.
    np.testing.assert_allclose(values.reshape(-1, 256), direct, rtol=0, atol=1e-5)


def test_default_level_is_40():
    emb = xsatclip.grid(60.0).satclip.embed()
    assert emb.attrs["model_name"] == "bluemarble-l40" and emb.attrs["model_level"] == 40


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_bundled_models_tell_desert_from_ocean(name):
    """A trained embedding, not noise: points 1 degree apart in the Sahara are more alike than
    Sahara vs mid-Pacific points (mean cosine similarity, float32)."""
    model = xsatclip.load_model(name, device="cpu")
    sahara = model.encode([10.0, 11.0, 12.0], [22.0, 22.5, 23.0])
    pacific = model.encode([-150.0, -149.0, -148.0], [-10.0, -10.5, -11.0])
    unit = np.concatenate([sahara, pacific])
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    similarity = unit @ unit.T
    pairs = np.triu_indices(3, 1)
    within = np.r_[similarity[:3, :3][pairs], similarity[3:, 3:][pairs]].mean()
    assert within > similarity[:3, 3:].mean() + 0.3


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_bundled_pairs_match_images_to_their_locations(name):
    """The bundled image encoder embeds Blue Marble patches near their own locations: among
    100 patches drawn with an unused seed, the true location ranks first for far more than
    the 1 % chance would give (cosine similarity of float32 embeddings)."""
    from xsatclip.training.bluemarble import load_blue_marble
    from xsatclip.training.pairs import PatchSampler

    model = xsatclip.load_model(name, device="cpu")
    config = model.image_config
    record = json.loads((bundled_model_directory(name) / "training.json").read_text())
    image = load_blue_marble(record["image_reduce"], linke=record["image_linke"])
    assert tuple(image.band.values) == config.bands
    assert model.identity.attrs()["model_logit_scale"] == pytest.approx(config.logit_scale)
    pairs = PatchSampler(image, config.patch_size).draw(100, np.random.default_rng(12345))
    images = model.encode_images(pairs.patches)
    places = model.encode(pairs.lon, pairs.lat)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    places /= np.linalg.norm(places, axis=1, keepdims=True)
    top1 = np.mean(np.argmax(places @ images.T, axis=1) == np.arange(100))
    assert images.shape == (100, 256) and images.dtype == np.float32
    assert top1 > 0.1, top1
