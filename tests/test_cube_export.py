"""Cloud Optimized GeoTIFF export: read back with rasterio (its bundled GDAL)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import xarray as xr
from product_cubes import band_first_store, embeddings, with_nan_patch

import xsatclip
from xsatclip import cli
from xsatclip.errors import InputNotFoundError, InvalidOptionError, OutputExistsError


@pytest.fixture(scope="module")
def v2_store(tmp_path_factory):
    """2-degree global band-first sharded float32 cube with a NaN hole."""
    path = tmp_path_factory.mktemp("export") / "v2.zarr"
    return band_first_store(path, with_nan_patch(embeddings(2.0)))


@pytest.fixture(scope="module")
def int8_cube(tmp_path_factory):
    """A cube written by xsatclip.precompute (10 degrees, int8)."""
    path = tmp_path_factory.mktemp("export") / "int8.zarr"
    xsatclip.precompute(path, resolution=10.0, model="bluemarble-l10", dtype="int8",
                        progress=False)
    return path


def test_cog_of_a_band_first_store(v2_store, tmp_path):
    out = xsatclip.export_cog(v2_store, tmp_path / "cube.tif")
    cube = xr.open_zarr(v2_store).embeddings.values  # (256, 90, 180) float32
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 90, 50), rng.integers(0, 180, 50)
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 4326
        assert (src.count, src.height, src.width) == (256, 90, 180)
        assert set(src.dtypes) == {"float32"} and np.isnan(src.nodata)
        assert tuple(src.transform)[:6] == (2.0, 0.0, -180.0, 0.0, -2.0, 90.0)
        assert src.overviews(1) == [2]  # 180 columns > one 128-pixel tile
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "ZSTD"
        assert src.descriptions[:2] == ("embedding_000", "embedding_001")
        assert src.descriptions[-1] == "embedding_255"
        assert src.tags()["model_name"] == "bluemarble-l10"
        pixels = np.stack([src.read(window=((r, r + 1), (c, c + 1)))[:, 0, 0]
                           for r, c in zip(rows, cols, strict=True)])
        full = src.read()
        overview = src.read(out_shape=(256, 45, 90))  # GDAL picks the 2x overview
    np.testing.assert_array_equal(pixels, cube[:, rows, cols].T)  # float32, exact
    np.testing.assert_array_equal(full, cube)  # NaN hole included
    with warnings.catch_warnings():  # "mean of empty slice": the all-NaN blocks
        warnings.simplefilter("ignore", RuntimeWarning)
        coarse = np.nanmean(cube.astype(np.float64).reshape(256, 45, 2, 90, 2), axis=(2, 4))
    # GDAL's average ignores nodata; float32 sums: within 1e-6 of the float64 mean
    np.testing.assert_allclose(overview, coarse, rtol=0, atol=1e-6)


def test_band_subset_of_a_precomputed_int8_cube(int8_cube, tmp_path):
    out = xsatclip.export_cog(int8_cube, tmp_path / "subset.tif", bands=[3, 0, 255])
    decoded = xsatclip.open_cube(int8_cube).embeddings.transpose("embedding", "lat", "lon")
    with rasterio.open(out) as src:
        assert src.count == 3 and src.crs.to_epsg() == 4326
        assert src.descriptions == ("embedding_003", "embedding_000", "embedding_255")
        scale = float(decoded.encoding["scale_factor"])  # the scale it decoded with
        assert f"code * {scale!r}" in src.tags()["xsatclip_export_values"]
        values = src.read()
        assert src.overviews(1) == []  # 36 x 18 fits in one tile
    # float32 decoded values, equal to open_cube's (code * float32 scale)
    np.testing.assert_array_equal(values, decoded.values[[3, 0, 255]])


def test_south_up_0_360_dataarray_and_projected(tmp_path):
    emb = embeddings(2.0).isel(embedding=slice(0, 16))
    shifted = emb.roll(lon=90, roll_coords=True)  # lon 1 .. 359 after the wrap below
    shifted = shifted.assign_coords(lon=shifted.lon % 360).sortby("lat")  # south-up
    out = xsatclip.export_cog(shifted, tmp_path / "south_up.tif")
    with rasterio.open(out) as src:
        assert tuple(src.transform)[:6] == (2.0, 0.0, 0.0, 0.0, -2.0, 90.0)
        values = src.read()
    # north-up output: row 0 is the northernmost row (lat 89), column 0 lon 1
    np.testing.assert_array_equal(values, shifted.sortby("lat", ascending=False).values)
    assert values.shape == (16, 90, 180)

    x = 500_000.0 + 1000.0 * np.arange(24)
    y = 4_400_000.0 - 1000.0 * np.arange(16)
    utm = xr.DataArray(np.arange(4 * 16 * 24, dtype=np.float32).reshape(4, 16, 24),
                       dims=("embedding", "y", "x"), coords={"y": y, "x": x})
    out = xsatclip.export_cog(utm.rio.write_crs("EPSG:32633"), tmp_path / "utm.tif")
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 32633
        assert tuple(src.transform)[:6] == (1000.0, 0.0, 499_500.0, 0.0, -1000.0, 4_400_500.0)
        np.testing.assert_array_equal(src.read(), utm.values)


def test_export_refuses_bad_input(v2_store, tmp_path):
    out = tmp_path / "x.tif"
    with pytest.raises(InvalidOptionError, match=r"bands \[256\]"):
        xsatclip.export_cog(v2_store, out, bands=[0, 256])
    with pytest.raises(InvalidOptionError, match="multiple of 16"):
        xsatclip.export_cog(v2_store, out, blocksize=100)
    with pytest.raises(InputNotFoundError, match=r"missing\.zarr"):
        xsatclip.export_cog(tmp_path / "missing.zarr", out)
    out.write_text("keep me")
    with pytest.raises(OutputExistsError, match="overwrite"):
        xsatclip.export_cog(v2_store, out, bands=[0])
    assert out.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tif"]  # no staging left over


def test_export_command(v2_store, tmp_path, capsys):
    out = tmp_path / "cli.tif"
    assert cli.main(["export", str(v2_store), str(out), "--bands", "0-2", "7",
                     "--no-overviews"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    with rasterio.open(out) as src:
        assert src.descriptions == ("embedding_000", "embedding_001", "embedding_002",
                                    "embedding_007")
        assert src.overviews(1) == []
    assert cli.main(["export", str(v2_store), str(out)]) == 1
    assert "exists" in capsys.readouterr().err
