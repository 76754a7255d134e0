"""predict_map: a fitted estimator over an embedding map, lazily, NaN-safe, CRS kept."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from sklearn.linear_model import LinearRegression, LogisticRegression

import xsatclip


@pytest.fixture
def embeddings() -> xr.DataArray:
    """An (embedding, y, x) map in UTM 32N, Dask-backed in 2 x 2 chunks, one NaN cell."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5, 4, 6))
    values[3, 1, 2] = np.nan
    emb = xr.DataArray(da.from_array(values, chunks=(5, 2, 3)), dims=("embedding", "y", "x"),
                       coords={"y": [40.0, 30.0, 20.0, 10.0], "x": np.arange(6.0) * 10,
                               "embedding": np.arange(5)}, name="embeddings",
                       attrs={"model_name": "m", "long_name": "SatCLIP location embedding"})
    return emb.rio.write_crs("EPSG:32632")


def _rows(emb: xr.DataArray) -> np.ndarray:
    """(cells, embedding) in row-major cell order."""
    return emb.transpose(..., "embedding").values.reshape(-1, emb.sizes["embedding"])


class _Counting:
    """Wraps an estimator; counts the rows it is asked to predict."""

    def __init__(self, estimator) -> None:
        self.estimator, self.rows = estimator, 0
        self.classes_ = getattr(estimator, "classes_", None)

    def predict(self, x):
        self.rows += len(x)
        return self.estimator.predict(x)


def test_predict_is_lazy_nan_safe_and_keeps_coords_and_crs(embeddings):
    rng = np.random.default_rng(1)
    x_train = rng.normal(size=(50, 5))
    fitted = LinearRegression().fit(x_train, x_train @ np.arange(1.0, 6.0) + 3.0)
    counting = _Counting(fitted)
    result = xsatclip.predict_map(counting, embeddings)
    assert counting.rows == 0 and isinstance(result.data, da.Array)  # nothing ran yet
    assert result.dims == ("y", "x") and result.name == "prediction"
    assert result.rio.crs.to_epsg() == 32632 and result.attrs["model_name"] == "m"
    assert result.attrs["long_name"] == "prediction of _Counting"
    assert result.attrs["grid_mapping"] == "spatial_ref"
    np.testing.assert_array_equal(result.x, embeddings.x)
    values = result.values
    assert counting.rows == 23  # the NaN cell never reaches the estimator
    assert np.isnan(values[1, 2]) and np.isfinite(values).sum() == 23
    flat = _rows(embeddings)
    expected = np.where(np.isnan(flat).any(axis=1), np.nan, flat @ np.arange(1.0, 6.0) + 3.0)
    np.testing.assert_allclose(values.ravel(), expected, rtol=1e-12)
    eager = xsatclip.predict_map(fitted, embeddings.compute())  # NumPy-backed works too
    np.testing.assert_allclose(eager.values, values, rtol=1e-12)


def test_predict_proba_has_a_class_dim(embeddings):
    rng = np.random.default_rng(2)
    x_train = rng.normal(size=(80, 5))
    labels = np.where(x_train[:, 0] > 0.3, "land", np.where(x_train[:, 1] > 0, "ice", "sea"))
    fitted = LogisticRegression().fit(x_train, labels)
    proba = xsatclip.predict_map(fitted, embeddings, method="predict_proba")
    assert proba.dims == ("class", "y", "x") and proba.name == "probability"  # band-first
    assert proba.attrs["long_name"] == "class probability from LogisticRegression.predict_proba"
    assert list(proba["class"].values) == ["ice", "land", "sea"]
    values = proba.transpose("y", "x", "class").values
    assert np.isnan(values[1, 2]).all()
    np.testing.assert_allclose(np.nansum(values, axis=-1)[np.isfinite(values[..., 0])], 1.0,
                               rtol=1e-12)  # float64
    np.testing.assert_allclose(values[0, 0], fitted.predict_proba(_rows(embeddings)[:1])[0],
                               rtol=1e-12)

    class NoClasses:  # predict_proba without classes_: the class count comes from a probe row
        def predict_proba(self, x):
            return np.stack([np.ones(len(x)) * 0.25, np.ones(len(x)) * 0.75], axis=1)

    plain = xsatclip.predict_map(NoClasses(), embeddings, method="predict_proba")
    assert list(plain["class"].values) == [0, 1] and float(plain[1, 0, 0]) == 0.75


def test_errors(embeddings):
    rng = np.random.default_rng(3)
    x_train = rng.normal(size=(20, 5))
    fitted = LogisticRegression().fit(x_train, np.where(x_train[:, 0] > 0, "a", "b"))
    with pytest.raises(ValueError, match=r"method='transform'"):
        xsatclip.predict_map(fitted, embeddings, method="transform")
    with pytest.raises(TypeError, match=r"LinearRegression has no predict_proba\(\)"):
        xsatclip.predict_map(LinearRegression(), embeddings, method="predict_proba")
    with pytest.raises(TypeError, match=r"predict\(\) must return numbers"):
        xsatclip.predict_map(fitted, embeddings).compute()  # string labels
    with pytest.raises(ValueError, match="no 'embedding' dim"):
        xsatclip.predict_map(fitted, embeddings.isel(embedding=0))
