"""Location encoder end to end: parity with the reference, loading, saving, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import fake_hub_cache

import xsatclip
from xsatclip.errors import CheckpointError, ModelNotFoundError
from xsatclip.model import Backend


def _encode(path, points, **kwargs):
    model = xsatclip.load_model(path, device="cpu", **kwargs)
    return model, model.encode(points[:, 0], points[:, 1])


def test_float64_exact_matches_reference_embeddings(tiny_checkpoint, reference_npz):
    """float64 weights all the way: L10 within 1e-9 everywhere; L40 within 1e-7 where the
    reference basis is accurate (|lat| < 30)."""
    level, path = tiny_checkpoint
    points = reference_npz[f"L{level}_lonlat"]
    model, got = _encode(path, points, dtype="float64")
    assert got.dtype == np.float64 and got.shape == (512, 256)
    assert model.network.layers[0].weight.dtype == torch.float64
    error = np.abs(got - reference_npz[f"L{level}_embedding"]).max(axis=1)
    if level == 10:
        assert error.max() < 1e-9
    else:
        assert error[np.abs(points[:, 1]) < 30].max() < 1e-7


def test_float32_tolerance(tiny_checkpoint, reference_npz):
    """float32 model vs float64 model: measured 2.1e-6 at most; asserted within 1e-5."""
    level, path = tiny_checkpoint
    points = reference_npz[f"L{level}_lonlat"]
    _, single = _encode(path, points)
    _, double = _encode(path, points, dtype="float64")
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, double, rtol=0, atol=1e-5)


def test_batching_does_not_change_results(golden_dir, reference_npz):
    points = reference_npz["L40_lonlat"]
    model = xsatclip.load_model(golden_dir / "satclip-tiny-l40.ckpt", device="cpu",
                                dtype="float64")
    whole = model.encode(points[:, 0], points[:, 1])
    pieces = model.encode(points[:, 0], points[:, 1], batch_size=37)
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="batch_size"):
        model.encode([0.0], [0.0], batch_size=0)


@pytest.mark.parametrize("threads", [2, 3])
def test_threaded_pieces_cover_every_point_once(golden_dir, reference_npz, threads,
                                                monkeypatch):
    """With several torch threads, encode splits the points into equal pieces, a multiple of
    the threads in number; the result equals the single-threaded one (float64, 1e-13)."""
    points = reference_npz["L40_lonlat"]  # 512 points: 5 pieces of 16 batches of 7 -> 6
    model = xsatclip.load_model(golden_dir / "satclip-tiny-l40.ckpt", device="cpu",
                                dtype="float64")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = model.encode(points[:, 0], points[:, 1], batch_size=7)
        torch.set_num_threads(threads)
        pieces = []
        run_pieces = Backend.run_pieces

        def recording(self, n, piece, run):
            def run_and_record(start, stop):
                pieces.append((start, stop))
                run(start, stop)
            run_pieces(self, n, piece, run_and_record)

        monkeypatch.setattr(Backend, "run_pieces", recording)
        threaded = model.encode(points[:, 0], points[:, 1], batch_size=7)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(threaded, single, rtol=0, atol=1e-13)
    pieces.sort()
    assert pieces[0][0] == 0 and pieces[-1][1] == len(points)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))  # contiguous, no overlap
    assert len(pieces) % threads == 0


def test_identity_is_recorded(golden_dir):
    model = xsatclip.load_model(golden_dir / "satclip-tiny-l10.ckpt", device="cpu")
    identity = model.identity
    assert (identity.level, identity.capacity, identity.embed_dim) == (10, 256, 256)
    assert identity.numerics == "exact" and identity.convention == "satclip"
    assert identity.source.endswith("satclip-tiny-l10.ckpt")
    assert len(identity.sha256) == 64
    assert model.identity.attrs()["model_sha256"] == identity.sha256
    ref = xsatclip.load_model(golden_dir / "satclip-tiny-l10.ckpt", device="cpu",
                              numerics="reference")
    assert ref.identity.numerics == "reference" and ref.identity.sha256 == identity.sha256


def test_save_and_reload_own_format_is_lossless(golden_dir, tmp_path, reference_npz):
    points = reference_npz["L10_lonlat"]
    model, before = _encode(golden_dir / "satclip-tiny-l10.ckpt", points, dtype="float64")
    xsatclip.save_model(model, tmp_path / "tiny")
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == [
        "config.json", "model.safetensors"]
    reloaded, after = _encode(tmp_path / "tiny", points, dtype="float64")
    np.testing.assert_array_equal(after, before)
    assert reloaded.identity.sha256 == model.identity.sha256


def _rewrite_checkpoint(src, dst, edit):
    checkpoint = torch.load(src, map_location="cpu", weights_only=True)
    edit(checkpoint)
    torch.save(checkpoint, dst)
    return dst


@pytest.mark.parametrize(("field", "value"), [("le_type", "sphericalgrid"),
                                              ("pe_type", "fourier"),
                                              ("harmonics_calculation", "discretized")])
def test_unsupported_setting_names_field_and_value(golden_dir, tmp_path, field, value):
    path = _rewrite_checkpoint(golden_dir / "satclip-tiny-l10.ckpt", tmp_path / "bad.ckpt",
                               lambda c: c["hyper_parameters"].__setitem__(field, value))
    with pytest.raises(CheckpointError, match=rf"{field}.*{value}"):
        xsatclip.load_model(path)


def test_shape_mismatch_names_tensor(golden_dir, tmp_path):
    def shrink(c):
        c["state_dict"]["model.location.nnet.layers.1.bias"] = torch.zeros(3)
    path = _rewrite_checkpoint(golden_dir / "satclip-tiny-l10.ckpt", tmp_path / "bad.ckpt",
                               shrink)
    with pytest.raises(CheckpointError, match=r"layers\.1\.bias"):
        xsatclip.load_model(path)


def test_truncated_checkpoint_names_file(golden_dir, tmp_path):
    data = (golden_dir / "satclip-tiny-l10.ckpt").read_bytes()
    path = tmp_path / "truncated.ckpt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.ckpt"):
        xsatclip.load_model(path)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": object()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.ckpt"):
        xsatclip.load_model(path)


def test_unknown_source_lists_known_names():
    with pytest.raises(ModelNotFoundError, match="satclip-vit16-l40"):
        xsatclip.load_model("no such model")


def test_hub_model_loads_offline_from_cache(offline_hub, golden_dir):
    fake_hub_cache(offline_hub, "microsoft/SatCLIP-ViT16-L40", "satclip-vit16-l40.ckpt",
                    golden_dir / "satclip-tiny-l40.ckpt")
    by_name = xsatclip.load_model("satclip-vit16-l40", device="cpu")
    by_repo = xsatclip.load_model("microsoft/SatCLIP-ViT16-L40", device="cpu")
    assert by_name.identity.source == "hf://microsoft/SatCLIP-ViT16-L40"
    assert by_name.identity.name == "satclip-vit16-l40"
    assert by_name.identity.sha256 == by_repo.identity.sha256


def test_hub_offline_and_not_cached_says_how_to_get_it(offline_hub):
    with pytest.raises(ModelNotFoundError, match=r"hf download microsoft/SatCLIP-ResNet50-L10"):
        xsatclip.load_model("satclip-resnet50-l10")


def test_reference_numerics_embeddings_banded(tiny_checkpoint, reference_npz):
    """float64: L10 within 1e-9; L40 within 1e-8 (|lat| < 30), 1e-3 (30-60), 5e-2 beyond."""
    level, path = tiny_checkpoint
    points = reference_npz[f"L{level}_lonlat"]
    _, got = _encode(path, points, dtype="float64", numerics="reference")
    error = np.abs(got - reference_npz[f"L{level}_embedding"]).max(axis=1)
    abs_lat = np.abs(points[:, 1])
    if level == 10:
        assert error.max() < 1e-9
    else:
        assert error[abs_lat < 30].max() < 1e-8
        assert error[(abs_lat >= 30) & (abs_lat < 60)].max() < 1e-3
        assert error[abs_lat >= 60].max() < 5e-2
