"""The bfloat16 head (``dtype="bfloat16"``): its error against float64 below the int8 storage
bound, the load-time refusal, the fallback to float32 where bfloat16 GEMMs are emulated, and
the paths that take it (encode, encode_grid, the accessor, precompute, the CLI).

This CPU has no bfloat16 GEMMs (AVX2): the tests that run the head declare the CPU capable
(``bfloat16_support`` patched), so torch's own bfloat16 kernels run, slowly but with the
numerics of CPUs that have them (float32 accumulation, bfloat16 results)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import xsatclip
from xsatclip.cube.layout import INT8_MARGIN, INT8_MAX
from xsatclip.errors import PrecisionError
from xsatclip.model import encoder as encoder_module
from xsatclip.model import inference
from xsatclip.raster.geometry import fibonacci_lattice

MODEL = "bluemarble-l40"


@pytest.fixture
def capable_cpu(monkeypatch):
    """The CPU declared to have bfloat16 GEMMs with bfloat16 results."""
    monkeypatch.setattr(encoder_module, "bfloat16_support", lambda device: "bfloat16 products")


@pytest.fixture
def gpu_like_cpu(monkeypatch):
    """The CPU declared to return float32 products of bfloat16 matrices, as CUDA does: the
    split head, its products emulated exactly (bfloat16 values are exact in float32)."""
    monkeypatch.setattr(encoder_module, "bfloat16_support", lambda device: "float32 products")
    monkeypatch.setattr(inference, "float32_products", lambda a, b: a.float() @ b.float())


@pytest.fixture(scope="module")
def float64_model():
    return xsatclip.load_model(MODEL, dtype="float64", device="cpu")


def test_int8_bound_matches_the_cube_codec():
    """The head's refusal bound is the int8 codec's scale / 2 per unit of amplitude."""
    assert inference.INT8_BOUND_PER_AMPLITUDE == INT8_MARGIN / INT8_MAX / 2


def test_bfloat16_products_of_the_bundled_models_are_refused(capable_cpu, float64_model):
    """With bfloat16 results (CPUs with bfloat16 GEMMs) the retrained bundled models' error
    exceeds the int8 bound: refused at load. Over 20,000 Fibonacci points the plain head's
    max error (float64 comparison) is indeed above scale / 2, which the load check saw."""
    with pytest.raises(PrecisionError, match="above the int8 storage bound"):
        xsatclip.load_model(MODEL, dtype="bfloat16", device="cpu")
    network = float64_model.network
    plain = inference.InferenceWeights.of(copy.deepcopy(network).float(), half=True)
    lon, lat = fibonacci_lattice(20_000)
    error, amplitude = plain.max_error(float64_model.basis(lon, lat), network)
    assert error > inference.INT8_BOUND_PER_AMPLITUDE * amplitude


def test_split_head_with_float32_products(gpu_like_cpu, float64_model):
    """The GPU head (float32 products: hi + lo operands, three GEMMs), its products emulated
    exactly on the CPU: max error over 2,000 Fibonacci points below 1e-4 (float64
    comparison), under float16 storage's half ulp too; grid and points alike."""
    model = xsatclip.load_model(MODEL, dtype="bfloat16", device="cpu")
    assert model.weights.split
    lon, lat = fibonacci_lattice(2000)
    error = np.abs(model.encode(lon, lat) - float64_model.encode(lon, lat)).max()
    assert 1e-6 < error < 1e-4
    grid_lat, grid_lon = np.linspace(-90, 90, 7), np.linspace(-180, 170, 8)
    np.testing.assert_allclose(model.encode_grid(grid_lon, grid_lat),
                               float64_model.encode_grid(grid_lon, grid_lat), rtol=0, atol=1e-4)


def test_grid_and_pointwise_bfloat16_agree(gpu_like_cpu, float64_model):
    """encode_grid (separable fold) and encode (pointwise basis) with the bfloat16 head agree
    within the int8 bound, float32 outputs, on a 6 x 12 grid including both poles."""
    model = xsatclip.load_model(MODEL, dtype="bfloat16", device="cpu")
    lat = np.linspace(-90, 90, 6)
    lon = np.linspace(-180, 150, 12)
    grid = model.encode_grid(lon, lat)
    lon2, lat2 = np.meshgrid(lon, lat)
    points = model.encode(lon2.ravel(), lat2.ravel()).reshape(grid.shape)
    bound = inference.INT8_BOUND_PER_AMPLITUDE * np.abs(points).max()
    assert grid.dtype == np.float32
    assert np.abs(grid - points).max() < bound
    assert np.abs(grid - float64_model.encode_grid(lon, lat)).max() < bound


def test_refuses_when_the_error_exceeds_the_bound(capable_cpu, monkeypatch):
    """A bound the head cannot meet (1e-6 of the amplitude) is a PrecisionError at load."""
    monkeypatch.setattr(inference, "INT8_BOUND_PER_AMPLITUDE", 1e-6)
    with pytest.raises(PrecisionError, match="above the int8 storage bound"):
        xsatclip.load_model(MODEL, dtype="bfloat16", device="cpu")


def test_falls_back_to_float32_without_bfloat16_gemms(monkeypatch):
    """Where bfloat16 GEMMs would be emulated: a warning, then exactly the float32 model."""
    monkeypatch.setattr(encoder_module, "bfloat16_support", lambda device: None)
    with pytest.warns(UserWarning, match="computing in float32"):
        model = xsatclip.load_model(MODEL, dtype="bfloat16", device="cpu")
    assert model.dtype == "float32" and not model.weights.half
    lon, lat = fibonacci_lattice(100)
    np.testing.assert_array_equal(model.encode(lon, lat),
                                  xsatclip.load_model(MODEL, device="cpu").encode(lon, lat))
    # Passed on with dtype="bfloat16" again, the fallen-back model is used as it is.
    assert xsatclip.model.resolve_model(model, dtype="bfloat16") is model


def test_accessor_and_precompute_take_bfloat16(gpu_like_cpu, tmp_path):
    """``.satclip.embed(dtype="bfloat16")`` and ``precompute(compute_dtype="bfloat16")`` on a
    5 degree grid: float32 results within the int8 bound of the float32 cube (int8 stored:
    within that bound plus one step)."""
    grid = xsatclip.grid(5.0)
    emb = grid.satclip.embed(model=MODEL, dtype="bfloat16", device="cpu").compute()
    assert emb.dtype == np.float32
    float32 = grid.satclip.embed(model=MODEL, device="cpu").compute()
    bound = inference.INT8_BOUND_PER_AMPLITUDE * float(np.abs(float32).max())
    assert float(np.abs(emb - float32).max()) < bound
    store = xsatclip.precompute(tmp_path / "cube.zarr", resolution=5.0, model=MODEL,
                                device="cpu", dtype="int8", compute_dtype="bfloat16",
                                progress=False)
    stored = xr.open_zarr(store)["embeddings"].compute()
    scale = float(stored.encoding["scale_factor"])
    assert float(np.abs(stored - float32.transpose(*stored.dims)).max()) < bound + scale


def test_cli_compute_dtype(gpu_like_cpu, tmp_path):
    """``xsatclip precompute --compute-dtype bfloat16`` writes a complete cube."""
    from xsatclip.cli import main

    store = tmp_path / "cli.zarr"
    assert main(["precompute", str(store), "--resolution", "10", "--model", MODEL,
                 "--device", "cpu", "--compute-dtype", "bfloat16", "--quiet"]) == 0
    info = xsatclip.cube.info(store)
    assert info["chunks_done"] == info["chunks_total"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="measures instead: a GPU is present")
def test_gpu_benchmark_says_there_is_no_gpu():
    """benchmarks/gpu.py without a CUDA GPU: one clear line, exit status 1, nothing timed."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 1
    assert "sees no CUDA GPU" in done.stderr and "nothing measured" in done.stderr
    assert done.stdout == ""
