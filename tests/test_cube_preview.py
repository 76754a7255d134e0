"""The 3-band PCA preview: stored array, its recorded formula, and the PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr_cm
from matplotlib.image import imread
from product_cubes import band_first_store, embeddings, with_nan_patch

import xsatclip
from xsatclip import cli
from xsatclip.cube.preview import (
    PNG_MARGINS,
    build_preview,
    compute_preview,
    open_preview,
    render_preview,
)
from xsatclip.errors import InvalidOptionError

SAMPLE = 3000  # cells the tests fit on (the default, 20,000, costs more time)


@pytest.fixture(scope="module")
def v2_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("preview") / "v2.zarr"
    return band_first_store(path, with_nan_patch(embeddings(2.0)))


def recompute(cube: np.ndarray, attrs: dict) -> np.ndarray:
    """The preview's codes from the cube (embedding, lat, lon) by its recorded formula."""
    mean, components = np.array(attrs["pca_mean"]), np.array(attrs["pca_components"])
    lower, upper = np.array(attrs["stretch_lower"]), np.array(attrs["stretch_upper"])
    x = cube.astype(np.float64).reshape(cube.shape[0], -1)
    p = np.einsum("kd,dn->kn", components, x - mean[:, None])
    scaled = (p - lower[:, None]) / (upper - lower)[:, None] * 254
    with np.errstate(invalid="ignore"):
        codes = 1 + np.clip(np.rint(scaled), 0, 254)
    codes = np.where(np.isnan(p), 0, codes)
    return codes.reshape(3, *cube.shape[1:]).astype(np.uint8)


def test_stored_preview_follows_its_formula(v2_store):
    assert build_preview(v2_store, sample_cells=SAMPLE) == "preview"
    ds = xr.open_zarr(v2_store, group="preview")
    preview = ds.preview
    assert preview.dtype == np.uint8 and preview.dims == ("band", "lat", "lon")
    assert preview.shape == (3, 90, 180)
    assert ds.rio.crs.to_epsg() == 4326 and preview.attrs["grid_mapping"] == "spatial_ref"
    assert "components @ (x - mean)" in preview.attrs["formula"]
    assert preview.attrs["seed"] == 0  # cells in the NaN hole are left out of the fit:
    assert SAMPLE * 0.99 < preview.attrs["sample_cells"] < SAMPLE
    cube = xr.open_zarr(v2_store).embeddings.values
    codes = preview.values
    # float64 both ways: the same codes, cell for cell
    np.testing.assert_array_equal(codes, recompute(cube, preview.attrs))
    assert (codes[:, 10:15, 20:26] == 0).all()  # the NaN hole is "no data"
    valid = codes[:, np.isfinite(cube).all(axis=0)]
    assert valid.min() >= 1 and valid.max() == 255
    # about 2 % of the (area-weighted) cells at each end of the stretch
    assert 0.002 < (valid == 1).mean() < 0.1 and 0.002 < (valid == 255).mean() < 0.1
    group = json.loads((v2_store / "preview" / "zarr.json").read_text())
    zarr_cm.validate_all(group["attributes"])
    zarr_cm.spatial.validate_group_metadata(group)


def test_components_are_seeded_and_sampled_on_the_sphere(v2_store):
    first = compute_preview(v2_store, sample_cells=SAMPLE, seed=3)
    again = compute_preview(v2_store, sample_cells=SAMPLE, seed=3)
    other = compute_preview(v2_store, sample_cells=SAMPLE, seed=4)
    assert first.attrs["pca_components"] == again.attrs["pca_components"]
    np.testing.assert_array_equal(first.values, again.values)
    assert first.attrs["pca_components"] != other.attrs["pca_components"]
    # Points uniform on the sphere weight each cell by its area (cos(lat)). The exact
    # area-weighted PCA of the cube and the plain per-cell one differ on a lat/lon grid
    # (its polar rows hold as many cells as the equator): ours must be the former.
    cube = embeddings(2.0)
    x = cube.values.reshape(256, -1).astype(np.float64)
    weights = np.repeat(np.cos(np.radians(cube.lat.values)), cube.sizes["lon"])
    weights /= weights.sum()
    centred = x - (x @ weights)[:, None]
    area_weighted = np.linalg.eigh((centred * weights) @ centred.T)[1][:, -1]
    per_cell = np.linalg.eigh(np.cov(x))[1][:, -1]
    ours = np.array(first.attrs["pca_components"][0])
    assert abs(per_cell @ area_weighted) < 0.95  # they differ (0.86 with the bundled L10)
    assert abs(ours @ area_weighted) > 0.95  # measured 0.99 (3,000 cells)
    # ... and ours is far nearer the area-weighted one (1 - |cos|: 0.009 against 0.08)
    assert 1 - abs(ours @ area_weighted) < 0.25 * (1 - abs(ours @ per_cell))


def test_png_size_and_content(v2_store, tmp_path):
    preview = compute_preview(v2_store, sample_cells=SAMPLE)
    out = render_preview(preview, tmp_path / "map.png", width=640)
    image = imread(out)
    left, right, top, bottom = PNG_MARGINS
    map_width = 640 - left - right
    assert image.shape[:2] == (round(map_width * 180 / 360) + top + bottom, 640)
    inside = image[top + 5:-bottom - 5, left + 5:-right - 5, :3]
    assert len(np.unique(inside.reshape(-1, 3), axis=0)) > 1000  # a map, not a blank
    with pytest.raises(InvalidOptionError, match="too narrow"):
        render_preview(preview, tmp_path / "no.png", width=100)


def test_preview_command_on_a_precomputed_cube(tmp_path, capsys):
    store = tmp_path / "cube.zarr"
    xsatclip.precompute(store, resolution=10.0, model="bluemarble-l10", progress=False)
    out = tmp_path / "map.png"
    assert cli.main(["preview", str(store), "--out", str(out), "--width", "500"]) == 0
    assert "computing one (not stored" in capsys.readouterr().err
    assert imread(out).shape[1] == 500 and open_preview(store) is None
    assert cli.main(["preview", str(store), "--out", str(out), "--write"]) == 0
    stored = open_preview(store)
    assert stored is not None and stored.shape == (3, 18, 36)
    xsatclip.open_cube(store)  # still a complete cube
