"""The spherical-harmonic basis: exact values, conventions, torch path, properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xsatclip import spherical_harmonics
from xsatclip.errors import InvalidCoordinatesError
from xsatclip.harmonics.torch_basis import spherical_harmonics_torch

SPECIAL_POINTS = np.array(  # lon, lat: poles, near-poles, dateline, both conventions
    [[0, 90], [0, -90], [45, 89.999], [-120, -89.999], [180, 0], [-180, 0], [179.9999, 10],
     [-179.9999, 10], [359.5, 45], [0.5, -45], [12.5, 45.25]], dtype=np.float64)


@pytest.mark.parametrize("level", [10, 40])
@pytest.mark.parametrize(("dtype", "atol"), [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_exact_numerics_match_40_digit_values(exact_npz, level, dtype, atol):
    lonlat = exact_npz[f"L{level}_lonlat"]
    assert (np.abs(lonlat[:, 1]) == 90).any(), "fixture should include the poles"
    got = spherical_harmonics(lonlat[:, 0], lonlat[:, 1], level, dtype=dtype)
    assert got.dtype == dtype and got.shape == (len(lonlat), level * level)
    np.testing.assert_allclose(got, exact_npz[f"L{level}_sh_exact"], rtol=0, atol=atol)


def test_orthonormal_convention_differs_only_by_pi_on_m0():
    lon, lat = SPECIAL_POINTS.T
    satclip = spherical_harmonics(lon, lat, 12, dtype=np.float64)
    ortho = spherical_harmonics(lon, lat, 12, convention="orthonormal", dtype=np.float64)
    zonal = np.array([l * l + l for l in range(12)])
    np.testing.assert_allclose(satclip[:, zonal], np.pi * ortho[:, zonal], rtol=1e-14)
    others = np.setdiff1d(np.arange(144), zonal)
    np.testing.assert_array_equal(satclip[:, others], ortho[:, others])


def _gauss_legendre_sphere(n_lat: int, n_lon: int):
    """Grid and weights that integrate products of harmonics of degree < n_lat exactly."""
    x, w = np.polynomial.legendre.leggauss(n_lat)  # x = cos(theta) = -sin(lat)
    lat = np.degrees(-np.arcsin(x))
    lon = np.arange(n_lon) * 360.0 / n_lon - 180.0
    lon2, lat2 = np.meshgrid(lon, lat)
    weights = np.repeat(w, n_lon) * (2 * np.pi / n_lon)
    return lon2.ravel(), lat2.ravel(), weights


def test_orthonormal_at_level_40_full_gram_matrix():
    """float64, the full 1600 x 1600 Gram matrix equals the identity within 1e-11."""
    lon, lat, w = _gauss_legendre_sphere(40, 80)
    y = spherical_harmonics(lon, lat, 40, convention="orthonormal", dtype=np.float64)
    gram = y.T @ (y * w[:, None])
    np.testing.assert_allclose(gram, np.eye(1600), rtol=0, atol=1e-11)


@pytest.mark.slow
def test_orthonormal_at_level_100():
    """float64, L = 100 (10 000 features): Gram blocks of every order m, and a random
    1000-column sample for cross-order terms, equal the identity within 1e-10."""
    level = 100
    lon, lat, w = _gauss_legendre_sphere(level, 2 * level)
    y = spherical_harmonics(lon, lat, level, convention="orthonormal", dtype=np.float64)
    sqrt_w = np.sqrt(w)[:, None]
    degrees = np.repeat(np.arange(level), 2 * np.arange(level) + 1)
    orders = np.arange(level * level) - degrees * degrees - degrees
    for m in range(level):
        cols = y[:, np.abs(orders) == m] * sqrt_w
        np.testing.assert_allclose(cols.T @ cols, np.eye(cols.shape[1]), atol=1e-10,
                                   err_msg=f"order {m}")
    sample = np.random.default_rng(0).choice(level * level, 1000, replace=False)
    cols = y[:, sample] * sqrt_w
    np.testing.assert_allclose(cols.T @ cols, np.eye(1000), atol=1e-10)


@pytest.mark.parametrize("level", [1, 10, 40, 100])
def test_torch_recursion_matches_numba_kernel(level):
    rng = np.random.default_rng(level)
    lon = np.concatenate([SPECIAL_POINTS[:, 0], rng.uniform(-540, 540, 300)])
    lat = np.concatenate([SPECIAL_POINTS[:, 1], rng.uniform(-90, 90, 300)])
    expected = spherical_harmonics(lon, lat, level, dtype=np.float64)
    for dtype, atol in ((torch.float64, 1e-12), (torch.float32, 2e-5)):
        got = spherical_harmonics_torch(torch.from_numpy(lon), torch.from_numpy(lat), level,
                                        np.pi, dtype)
        assert got.dtype == dtype
        np.testing.assert_allclose(got.double().numpy(), expected, rtol=0, atol=atol)


def test_longitude_conventions_agree():
    """0..360 and -180..180 give the same features (float64, 1e-12)."""
    lon = np.linspace(-180, 180, 73)
    lat = np.linspace(-90, 90, 73)
    west = spherical_harmonics(lon, lat, 40, dtype=np.float64)
    east = spherical_harmonics(np.mod(lon, 360), lat, 40, dtype=np.float64)
    np.testing.assert_allclose(west, east, rtol=0, atol=1e-12)


def test_bad_latitude_message_names_count_and_range():
    with pytest.raises(InvalidCoordinatesError, match=r"2 latitude value\(s\).*91 .. 100"):
        spherical_harmonics([0, 0, 0], [91, 0, 100], 4)


def test_length_mismatch_and_infinite_longitude_raise():
    with pytest.raises(InvalidCoordinatesError, match="same number of points"):
        spherical_harmonics([0, 1], [0], 4)
    with pytest.raises(InvalidCoordinatesError, match="infinite"):
        spherical_harmonics([np.inf], [0], 4)


@pytest.mark.parametrize("bad", [dict(L=0), dict(convention="x"), dict(numerics="fast"),
                                 dict(dtype=np.int32)])
def test_bad_options_raise_value_error(bad):
    kwargs = dict(L=4) | bad
    with pytest.raises(ValueError):
        spherical_harmonics([0.0], [0.0], kwargs.pop("L"), **kwargs)


# -- properties --------------------------------------------------------------------------

lats = st.floats(-90, 90, allow_nan=False)
lons = st.floats(-1e4, 1e4, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(lat=lats, k=st.integers(-5, 5), lon=st.floats(-180, 180))
def test_longitude_is_periodic(lat, k, lon):
    """float64: shifting by 360k degrees changes features by < 1e-9 (argument rounding)."""
    base = spherical_harmonics([lon], [lat], 20, dtype=np.float64)
    shifted = spherical_harmonics([lon + 360.0 * k], [lat], 20, dtype=np.float64)
    np.testing.assert_allclose(shifted, base, rtol=0, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(lat=lats, eps=st.floats(1e-9, 1e-4))
def test_continuous_across_the_dateline(lat, eps):
    """float64: |dY/dphi| <= m * max|Y| < 20 * 4 at L = 20, so the jump across +-180 degrees
    is bounded by 80 * (2 eps in radians)."""
    east = spherical_harmonics([180.0 - eps], [lat], 20, dtype=np.float64)
    west = spherical_harmonics([-180.0 + eps], [lat], 20, dtype=np.float64)
    bound = 80 * np.radians(2 * eps) + 1e-12
    assert np.abs(east - west).max() <= bound


@settings(max_examples=40, deadline=None)
@given(lon=lons, lat=lats, dtype=st.sampled_from([np.float32, np.float64]),
       level=st.integers(1, 30))
def test_dtype_and_shape_kept_and_values_finite(lon, lat, dtype, level):
    out = spherical_harmonics(np.array([lon, lon]), np.array([lat, -lat]), level, dtype=dtype)
    assert out.dtype == dtype and out.shape == (2, level * level)
    assert np.isfinite(out).all()


@settings(max_examples=40, deadline=None)
@given(lon=lons, lat=lats, which=st.sampled_from(["lon", "lat", "both"]))
def test_nan_in_gives_nan_row_out(lon, lat, which):
    lons_in = np.array([lon, np.nan if which in ("lon", "both") else lon])
    lats_in = np.array([lat, np.nan if which in ("lat", "both") else lat])
    out = spherical_harmonics(lons_in, lats_in, 8)
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()


@settings(max_examples=40, deadline=None)
@given(lat=st.one_of(st.floats(90.0, 1e6, exclude_min=True),
                     st.floats(-1e6, -90.0, exclude_max=True)))
def test_out_of_range_latitude_raises(lat):
    with pytest.raises(InvalidCoordinatesError, match="outside"):
        spherical_harmonics([0.0], [lat], 4)
