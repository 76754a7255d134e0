"""Mean-coarsened overview levels inside cubes, and their multiscales block (zarr-cm)."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import xarray as xr
import zarr_cm
from product_cubes import band_first_store, embeddings, with_nan_patch

import xsatclip
from xsatclip import cli
from xsatclip.cube import info as cube_info
from xsatclip.cube.overviews import build_overviews
from xsatclip.cube.reduce import mean_2x2
from xsatclip.errors import InvalidOptionError


def block_nanmean(values: np.ndarray, factor: int) -> np.ndarray:
    """float64 mean of the finite values of each factor x factor block (last two axes)."""
    d, ny, nx = values.shape
    ny, nx = ny // factor * factor, nx // factor * factor
    blocks = values[:, :ny, :nx].astype(np.float64).reshape(d, ny // factor, factor,
                                                            nx // factor, factor)
    with warnings.catch_warnings():  # all-NaN blocks
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(blocks, axis=(2, 4))


@pytest.fixture(scope="module")
def v2_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("overviews") / "v2.zarr"
    return band_first_store(path, with_nan_patch(embeddings(2.0)), inner=15, shard=(45, 90))


def read_json(path):
    return json.loads(path.read_text())


def test_mean_2x2_kernel():
    values = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    values[0, 0, 0] = np.nan  # a block with one NaN
    values[1, 2:4, 4:6] = np.nan  # an all-NaN block
    out = mean_2x2(values)
    assert out.dtype == np.float32 and out.shape == (2, 2, 3)
    expected = block_nanmean(values, 2)
    np.testing.assert_allclose(out, expected, rtol=1e-7, atol=0)  # float32
    assert out[0, 0, 0] == np.float32((1 + 6 + 7) / 3) and np.isnan(out[1, 1, 2])
    assert mean_2x2(np.ones((1, 5, 7), np.float32)).shape == (1, 2, 3)  # odd edge dropped


def test_overviews_of_a_band_first_store(v2_store):
    assert build_overviews(v2_store, 2) == ["overviews/1", "overviews/2"]
    cube = xr.open_zarr(v2_store).embeddings.values
    # level 2: 45 rows, the odd last one is left out; shards whole inner chunks, clipped
    for k, shape, shards in ((1, (45, 90), (45, 90)), (2, (22, 45), (30, 45))):
        ds = xr.open_zarr(v2_store, group=f"overviews/{k}")
        emb = ds.embeddings
        assert emb.dims == ("embedding", "lat", "lon") and emb.shape == (256, *shape)
        assert ds.rio.crs.to_epsg() == 4326 and "spatial_ref" in ds.coords
        assert emb.attrs["grid_mapping"] == "spatial_ref"
        assert ds.attrs["model_name"] == "bluemarble-l10"
        cell = 2.0 * 2**k
        np.testing.assert_allclose(ds.lat.values, 90 - cell * (np.arange(shape[0]) + 0.5))
        np.testing.assert_allclose(ds.lon.values, -180 + cell * (np.arange(shape[1]) + 0.5))
        assert ds.attrs["spatial:transform"] == [cell, 0.0, -180.0, 0.0, -cell, 90.0]
        assert ds.attrs["spatial:shape"] == list(shape)
        # the mean of means of 2 x 2 blocks equals the block mean only without NaN
        expected = block_nanmean(cube, 2) if k == 1 else block_nanmean(
            np.asarray(xr.open_zarr(v2_store, group="overviews/1").embeddings), 2)
        np.testing.assert_allclose(emb.values, expected, rtol=0, atol=1e-6)  # float32 sums
        assert emb.encoding["shards"] == (256, *shards)
        assert emb.encoding["chunks"] == (256, 15, 15)
    level1 = xr.open_zarr(v2_store, group="overviews/1").embeddings.values
    assert np.isnan(level1[:, 5, 10:13]).all()  # rows 10, 11 x cols 20 .. 25: all NaN
    assert np.isfinite(level1[:, 7, 10:13]).all()  # row 14 with row 15: half NaN, averaged
    assert np.isfinite(level1[:, 15, 20]).all()  # the lone NaN at (30, 41)


def test_multiscales_and_conventions_validate(v2_store):
    build_overviews(v2_store, 2)
    root = read_json(v2_store / "zarr.json")
    zarr_cm.validate_all(root["attributes"])
    zarr_cm.multiscales.validate_group_metadata(root)
    layout = root["attributes"]["multiscales"]["layout"]
    assert [e["asset"] for e in layout] == ["embeddings", "overviews/1/embeddings",
                                            "overviews/2/embeddings"]
    assert [e.get("derived_from") for e in layout] == [None, "embeddings",
                                                       "overviews/1/embeddings"]
    assert layout[2]["transform"] == {"scale": [2.0, 2.0], "translation": [0.0, 0.0]}
    assert layout[2]["spatial:shape"] == [22, 45]
    assert layout[0]["spatial:transform"] == [2.0, 0.0, -180.0, 0.0, -2.0, 90.0]
    for k in (1, 2):
        group = read_json(v2_store / f"overviews/{k}/zarr.json")
        zarr_cm.validate_all(group["attributes"])
        zarr_cm.proj.validate_group_metadata(group)
        zarr_cm.spatial.validate_group_metadata(group)
        zarr_cm.spatial.validate_array_metadata(
            read_json(v2_store / f"overviews/{k}/embeddings/zarr.json"))
        assert group["attributes"]["proj:code"] == "EPSG:4326"


def test_int8_precomputed_cube_and_rebuild(tmp_path):
    store = tmp_path / "int8.zarr"
    xsatclip.precompute(store, resolution=5.0, model="bluemarble-l10", dtype="int8",
                        progress=False)
    build_overviews(store, 3)
    cube = xsatclip.open_cube(store)  # still a complete cube
    base = cube.embeddings.transpose("embedding", "lat", "lon").values
    scale = float(cube_info(store)["scale_factor"])
    for k in (1, 2, 3):
        raw = xr.open_zarr(store, group=f"overviews/{k}", mask_and_scale=False).embeddings
        assert raw.dtype == np.int8 and raw.attrs["scale_factor"] == pytest.approx(scale)
        assert raw.dims == cube.embeddings.dims  # the cube's own dim order
        decoded = raw.transpose("embedding", "lat", "lon").values * np.float32(scale)
        # each level rounds once more: within k * scale / 2 of the level-0 block means
        error = np.abs(decoded - block_nanmean(base, 2**k)).max()
        assert error <= k * scale / 2 * (1 + 1e-5)
    assert build_overviews(store, 1) == ["overviews/1"]  # replaces the three levels
    root = read_json(store / "zarr.json")
    assert len(root["attributes"]["multiscales"]["layout"]) == 2
    assert not (store / "overviews" / "2").exists()
    assert cube_info(store)["chunks_done"] == cube_info(store)["chunks_total"]


def test_overviews_refuse_bad_levels_and_command(v2_store, tmp_path, capsys):
    with pytest.raises(InvalidOptionError, match="levels must be a positive integer"):
        build_overviews(v2_store, 0)
    with pytest.raises(InvalidOptionError, match="room for 6 levels"):
        build_overviews(v2_store, 7)
    store = shutil.copytree(v2_store, tmp_path / "copy.zarr")
    assert cli.main(["overviews", str(store), "--levels", "1"]) == 0
    assert capsys.readouterr().out.split() == [f"{store}:", "overviews/1"]
    assert xr.open_zarr(store, group="overviews/1").embeddings.shape == (256, 45, 90)
