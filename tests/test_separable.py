"""The separable grid path equals the pointwise path (both numerics, both L, both dtypes)."""

from __future__ import annotations

import numpy as np
import pytest

import xsatclip

# Rows include both poles and 0.001 degrees from them; columns the dateline in both
# conventions and a NaN.
LAT = np.concatenate([[90.0, -90.0, 89.999, -89.999], np.linspace(-88, 88, 23)])
LON = np.concatenate([[-180.0, 180.0, 0.0, 359.9, np.nan], np.linspace(-179, 179, 17)])
TOLERANCE = {"float64": 1e-11, "float32": 2e-5}  # measured 2.5e-13 and 3.9e-6


@pytest.mark.parametrize("numerics", ["exact", "reference"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_separable_equals_pointwise(tiny_checkpoint, numerics, dtype):
    _, path = tiny_checkpoint
    model = xsatclip.load_model(path, device="cpu", dtype=dtype, numerics=numerics)
    grid = model.encode_grid(LON, LAT, batch_size=50)  # several row batches
    lat2d, lon2d = np.meshgrid(LAT, LON, indexing="ij")
    points = model.encode(lon2d.ravel(), lat2d.ravel()).reshape(grid.shape)
    assert grid.dtype == np.dtype(dtype) and grid.shape == (LAT.size, LON.size, 256)
    nan_column = np.isnan(LON)
    assert np.isnan(grid[:, nan_column]).all() and np.isnan(points[:, nan_column]).all()
    np.testing.assert_allclose(grid[:, ~nan_column], points[:, ~nan_column], rtol=0,
                               atol=TOLERANCE[dtype])


def test_separable_rejects_bad_latitude(golden_dir):
    model = xsatclip.load_model(golden_dir / "satclip-tiny-l10.ckpt", device="cpu")
    with pytest.raises(xsatclip.errors.InvalidCoordinatesError, match="outside"):
        model.encode_grid([0.0], [91.0])
