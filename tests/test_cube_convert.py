"""Version 1 cubes (channels-last) are read by open_cube/sample, and ``xsatclip convert``
rewrites them (and stores xarray cannot open) as cubes of this version."""

from __future__ import annotations

import warnings

import dask
import numpy as np
import pytest
import xarray as xr
import zarr

import xsatclip
from xsatclip import cli, cube
from xsatclip.cube.metadata import check_geoemb

CONVENTION_KEYS = ("zarr_conventions", "geoemb:", "proj:", "spatial:", "grid_mapping")


def _precompute(path, model, **kwargs):
    with dask.config.set(num_workers=2):
        return cube.precompute(path, resolution=30.0, model=model, chunks=3, progress=False,
                               **kwargs)


def _without_conventions(attrs):
    return {k: v for k, v in attrs.items() if not k.startswith(CONVENTION_KEYS)}


def write_v1(source, path):
    """A version 1 cube as precompute wrote it before band-first: ``embeddings`` (lat, lon,
    embedding) in 3 x 3 chunks, ``spatial_ref`` listed in ``coordinates`` (no grid_mapping,
    no conventions), ``xsatclip_cube`` 1, completion markers, consolidated metadata."""
    ds = xr.open_zarr(source, mask_and_scale=False)
    emb = ds[cube.VARIABLE].transpose("lat", "lon", "embedding")
    v1 = xr.Dataset({cube.VARIABLE: emb.chunk({"lat": 3, "lon": 3, "embedding": -1})
                     .assign_attrs(_without_conventions(emb.attrs))},
                    attrs={**_without_conventions(ds.attrs), "xsatclip_cube": 1})
    for name in v1.variables:
        v1[name].encoding = {}
    v1.to_zarr(path, zarr_format=3, consolidated=False)
    group = zarr.open_group(path, mode="r+")
    done = group.create_group("_xsatclip").create_array("done", shape=(2, 4), chunks=(1, 1),
                                                         dtype="uint8", fill_value=0)
    done[...] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        zarr.consolidate_metadata(path)
    return path


@pytest.fixture(scope="module")
def cubes(tmp_path_factory, l10):
    root = tmp_path_factory.mktemp("convert")
    current = _precompute(root / "current.zarr", l10)
    return current, write_v1(current, root / "v1.zarr")


def test_v1_cube_is_read_band_first(cubes):
    current, v1 = cubes
    assert zarr.open_array(v1, path=cube.VARIABLE).metadata.dimension_names == (
        "lat", "lon", "embedding")
    summary = cube.info(v1)
    assert summary["state"] == "complete" and summary["layout"] == "channels-last (v1)"
    assert summary["chunks_done"] == summary["chunks_total"] == 8
    emb = xsatclip.open_cube(v1)[cube.VARIABLE]
    assert emb.dims == ("embedding", "lat", "lon")
    # float32, bit for bit
    np.testing.assert_array_equal(emb.values, xsatclip.open_cube(current)[cube.VARIABLE].values)
    lon, lat = np.array([10.0, -170.0, 95.0]), np.array([5.0, -80.0, 61.0])
    for method in ("nearest", "linear"):
        np.testing.assert_array_equal(xsatclip.sample(v1, lon, lat, method=method).values,
                                      xsatclip.sample(current, lon, lat, method=method).values)


def test_convert_v1_gives_the_current_cube(cubes, tmp_path, capsys):
    current, v1 = cubes
    new = tmp_path / "new.zarr"
    assert cli.main(["convert", str(v1), str(new), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(new)
    summary = cube.info(new)
    assert summary["state"] == "complete" and summary["layout"] == "band-first"
    assert summary["chunks_done"] == summary["chunks_total"] > 0
    assert summary["codecs"] == cube.info(current)["codecs"]  # the current shard layout
    ds, reference = xr.open_zarr(new), xr.open_zarr(current)
    np.testing.assert_array_equal(ds[cube.VARIABLE].values, reference[cube.VARIABLE].values)
    assert ds[cube.VARIABLE].rio.crs.to_epsg() == 4326  # grid_mapping restored
    assert ds.attrs["model_sha256"] == reference.attrs["model_sha256"]
    assert ds.attrs["created"] == reference.attrs["created"]
    assert ds.attrs["xsatclip_converted_from"] == str(v1)
    assert ds.attrs["xsatclip_cube"] == reference.attrs["xsatclip_cube"]
    check_geoemb(ds.attrs)
    for key in ("proj:code", "spatial:transform", "spatial:shape", "geoemb:model"):
        assert ds.attrs[key] == reference.attrs[key], key
    # A second convert refuses to replace NEW, in one line.
    assert cli.main(["convert", str(v1), str(new)]) == 1
    assert "exists; pass overwrite=True" in capsys.readouterr().err


def test_convert_keeps_int8_codes(tmp_path, l10):
    old = _precompute(tmp_path / "int8.zarr", l10, dtype="int8")
    new = cube.convert(write_v1(old, tmp_path / "v1_int8.zarr"), tmp_path / "new.zarr")
    codes = [zarr.open_array(p, path=cube.VARIABLE)[...] for p in (old, new)]
    assert codes[1].dtype == np.int8
    np.testing.assert_array_equal(codes[1], codes[0])  # int8 codes, exactly
    scales = [zarr.open_array(p, path=cube.VARIABLE).attrs["scale_factor"] for p in (old, new)]
    assert scales[1] == scales[0]


def test_variable_named_like_its_dim_is_read_and_converted(cubes, tmp_path):
    """A variable ``embedding`` named like its dim (xarray makes it a coordinate), written
    by plain zarr: open_cube and convert read it."""
    current, _ = cubes
    values = xsatclip.open_cube(current)[cube.VARIABLE].transpose("lat", "lon", ...).values
    ds = xr.open_zarr(current)
    group = zarr.open_group(tmp_path / "odd.zarr", mode="w", zarr_format=3)
    for name in ("lat", "lon"):
        group.create_array(name, data=ds[name].values, dimension_names=(name,))
    group.create_array("embedding", data=values, dimension_names=("lat", "lon", "embedding"))
    assert "provenance" in xsatclip.open_cube(tmp_path / "odd.zarr").attrs["xsatclip_unverified"]
    new = cube.convert(tmp_path / "odd.zarr", tmp_path / "new.zarr")
    emb = xsatclip.open_cube(new)
    assert "provenance" in emb.attrs["xsatclip_unverified"]  # carried over, and shown
    assert cube.info(new)["unverified"] == [emb.attrs["xsatclip_unverified"]]
    assert emb.attrs["xsatclip_grid"].startswith("converted: lat 6 values -75 .. 75")
    # float32, bit for bit
    np.testing.assert_array_equal(emb[cube.VARIABLE].values, np.moveaxis(values, -1, 0))
