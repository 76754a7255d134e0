"""The cube's metadata conventions: geoemb:, proj:, spatial: in zarr_conventions (validated
with zarr-cm), the exact dequantisation formula, CF grid_mapping, provenance."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
import zarr
import zarr_cm

import xsatclip
from xsatclip import cube
from xsatclip.cube.metadata import GEOEMB, check_geoemb
from xsatclip.errors import StoreError


@pytest.fixture(scope="module")
def cubes(tmp_path_factory, l10_source) -> dict[str, str]:
    """float32 and int8 global 30-degree cubes, and a regional one on an ascending-latitude
    template."""
    root = tmp_path_factory.mktemp("metadata")
    out = {}
    for dtype in ("float32", "int8"):
        out[dtype] = cube.precompute(root / f"{dtype}.zarr", resolution=30.0, model=l10_source,
                                     dtype=dtype, progress=False)
    template = xsatclip.grid(5.0, bbox=(-20, 30, 10, 60)).isel(lat=slice(None, None, -1))
    out["ascending"] = cube.precompute(root / "ascending.zarr", template=template,
                                       model=l10_source, progress=False)
    return out


def _attrs(store: str) -> tuple[dict, dict]:
    group = zarr.open_group(store, mode="r")
    return dict(group.attrs), dict(group[cube.VARIABLE].attrs)


@pytest.mark.parametrize("name", ["float32", "int8", "ascending"])
def test_conventions_are_declared_and_valid(cubes, name, l10):
    attrs, array_attrs = _attrs(cubes[name])
    uuids = [c["uuid"] for c in attrs["zarr_conventions"]]
    assert uuids == [GEOEMB["uuid"], zarr_cm.proj.UUID, zarr_cm.spatial.UUID]
    zarr_cm.validate_all(attrs)  # proj: and spatial:, by their schemas in zarr-cm
    zarr_cm.validate_all(array_attrs)
    assert zarr_cm.detect_revisions(array_attrs) == {"spatial": zarr_cm.spatial.LATEST}
    check_geoemb(attrs)
    assert attrs["geoemb:type"] == "pixel" and attrs["geoemb:dimensions"] == 256
    assert attrs["geoemb:data_type"] == name.replace("ascending", "float32")
    model = f"urn:xsatclip:model:bluemarble-l10:sha256:{l10.identity.sha256}"
    assert attrs["geoemb:model"] == model
    assert "https://visibleearth.nasa.gov/collection/1484/blue-marble" in attrs[
        "geoemb:source_data"]
    assert attrs["proj:code"] == "EPSG:4326"
    assert array_attrs["spatial:dimensions"] == ["lat", "lon"]
    assert array_attrs["grid_mapping"] == "spatial_ref"
    assert attrs["model_sha256"] == array_attrs["model_sha256"] == l10.identity.sha256  # provenance


def test_spatial_transform_follows_the_stored_latitude_order(cubes):
    north_up, _ = _attrs(cubes["float32"])
    assert north_up["spatial:transform"] == [30.0, 0.0, -180.0, 0.0, -30.0, 90.0]
    assert north_up["spatial:shape"] == [6, 12] and north_up["spatial:registration"] == "pixel"
    assert north_up["spatial:bbox"] == [-180.0, -90.0, 180.0, 90.0]
    assert north_up["geoemb:spatial_layout"] == "global"
    assert north_up["geoemb:gsd"] == pytest.approx(30 * 111_319.49, rel=1e-8)  # metres
    south_up, _ = _attrs(cubes["ascending"])
    lat = xr.open_zarr(cubes["ascending"]).lat.values
    assert lat[0] < lat[-1]  # stored south to north
    assert south_up["spatial:transform"] == [5.0, 0.0, -20.0, 0.0, 5.0, 30.0]  # e > 0
    assert south_up["spatial:bbox"] == [-20.0, 30.0, 10.0, 60.0]
    assert "geoemb:spatial_layout" not in south_up  # regional


def test_int8_quantization_formula_is_exact(cubes):
    attrs, array_attrs = _attrs(cubes["int8"])
    q = attrs["geoemb:quantization"]
    assert q["method"] == "linear" and (q["original_dtype"], q["quantized_dtype"]) == (
        "float32", "int8")
    assert q["scale"]["type"] == "scalar" and q["scale"]["offset"] == 0.0
    assert q["scale"]["scale"] == array_attrs["scale_factor"]  # the CF scale, as stored
    assert "value = float32(code) * float32(scale_factor) + 0.0" in attrs[
        "xsatclip_quantization"]
    codes = np.asarray(zarr.open_array(cubes["int8"], path=cube.VARIABLE, mode="r")[...])
    by_formula = (codes.astype(np.float32) * np.float32(q["scale"]["scale"])
                  + np.float32(q["scale"]["offset"]))
    # open_cube decodes in float32: the recorded formula gives it bit for bit.
    np.testing.assert_array_equal(cube.open_cube(cubes["int8"])[cube.VARIABLE].values,
                                  by_formula)
    # xarray's own CF decoding (float64 arithmetic) agrees to float32 rounding.
    np.testing.assert_allclose(xr.open_zarr(cubes["int8"])[cube.VARIABLE].values, by_formula,
                               rtol=2**-23, atol=0)


def test_check_geoemb_names_what_is_wrong(cubes):
    attrs, _ = _attrs(cubes["int8"])
    broken = []
    for key, value in [("geoemb:type", "tile"), ("geoemb:dimensions", 0),
                       ("geoemb:source_data", []), ("geoemb:model", None)]:
        bad = copy.deepcopy(attrs)
        bad[key] = value
        broken.append((bad, key))
    bad = copy.deepcopy(attrs)
    bad["geoemb:quantization"]["scale"] = 0.05  # the flat form of an older draft
    broken.append((bad, "geoemb:quantization.scale"))
    bad = copy.deepcopy(attrs)
    bad["zarr_conventions"] = bad["zarr_conventions"][1:]
    broken.append((bad, "declares no geoemb:"))
    for bad, named in broken:
        with pytest.raises(StoreError, match=named):
            check_geoemb(bad)
