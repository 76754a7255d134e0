"""The "reference" numerics mode against the golden reference basis (../shared/golden)."""

from __future__ import annotations

import numpy as np
import pytest

from xsatclip.harmonics.reference import reference_basis, reference_lmax


@pytest.fixture(scope="session")
def golden(reference_npz) -> dict[str, np.ndarray]:
    return reference_npz


def _basis(golden: dict[str, np.ndarray], L: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(computed, golden, lat) for the golden points at degree L, satclip zonal scale."""
    lonlat = golden[f"L{L}_lonlat"]
    got = reference_basis(lonlat[:, 0].copy(), lonlat[:, 1].copy(), L, np.pi)
    return got, golden[f"L{L}_sh"], lonlat[:, 1]


@pytest.fixture(scope="session")
def basis_l40(golden):
    return _basis(golden, 40)


def test_l10_matches_reference(golden):
    got, want, _ = _basis(golden, 10)
    assert got.shape == want.shape == (512, 100)
    assert got.dtype == np.float64
    np.testing.assert_array_less(np.abs(got - want).max(), 1e-9)


@pytest.mark.parametrize(
    ("lo", "hi", "tol"),
    [(0.0, 30.0, 1e-8), (30.0, 60.0, 1e-3), (60.0, 90.0 + 1e-9, 5e-2)],
    ids=["abs_lat_below_30", "abs_lat_30_to_60", "abs_lat_60_and_poles"],
)
def test_l40_matches_reference_by_latitude_band(basis_l40, lo, hi, tol):
    got, want, lat = basis_l40
    assert got.shape == want.shape == (512, 1600)
    band = (np.abs(lat) >= lo) & (np.abs(lat) < hi)
    assert band.sum() > 10
    err = np.abs(got[band] - want[band]).max()
    assert err <= tol, f"max abs error {err:.3g} for {lo} <= |lat| < {hi} exceeds {tol:g}"


def test_orthonormal_zonal_scale_l10_matches_exact(exact_npz):
    lonlat, exact = exact_npz["L10_lonlat"], exact_npz["L10_sh_exact"].copy()
    zonal = [l * l + l for l in range(10)]
    exact[:, zonal] /= np.pi  # the golden basis is the satclip convention
    got = reference_basis(lonlat[:, 0].copy(), lonlat[:, 1].copy(), 10, 1.0)
    np.testing.assert_array_less(np.abs(got - exact).max(), 1e-9)


def test_row_blocks_and_nan_rows():
    rng = np.random.default_rng(0)
    n = 1500  # more rows than one work block at L = 40 (1278)
    lon = rng.uniform(-180.0, 180.0, n)
    lat = rng.uniform(-90.0, 90.0, n)
    lat[7] = np.nan
    lon[8] = np.nan
    got = reference_basis(lon, lat, 40, np.pi)
    assert got.shape == (n, 1600)
    assert np.isnan(got[[7, 8]]).all()
    ok = np.delete(np.arange(n), [7, 8])
    assert np.isfinite(got[ok]).all()
    for i in (0, n - 1):
        np.testing.assert_array_equal(
            got[i], reference_basis(lon[i : i + 1], lat[i : i + 1], 40, np.pi)[0]
        )


def test_l_above_table_limit_raises():
    limit = reference_lmax()
    assert limit >= 40
    with pytest.raises(ValueError) as info:
        reference_basis(np.zeros(1), np.zeros(1), limit + 1, np.pi)
    assert f"L={limit + 1}" in str(info.value)
    assert str(limit) in str(info.value).replace(f"L={limit + 1}", "")
