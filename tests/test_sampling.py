"""Sampling embeddings at points: nearest/linear against the cube's own values, exact against
the model, the dateline, poles, int8, regional cubes, and lazy cubes read chunk by chunk."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
import zarr

import xsatclip
from xsatclip import cube, sampling
from xsatclip.errors import CheckpointError, InvalidCoordinatesError, StoreError
from xsatclip.model import LocationEncoder

# A float32 sample is the float64 combination of float32 cube values rounded once to float32:
# within 1 ulp of values of order 1.
ATOL32 = 1e-6


def _cube(path, model, resolution=10.0, **kwargs):
    with dask.config.set(num_workers=2):
        return cube.precompute(path, resolution=resolution, model=model, chunks=3,
                               progress=False, **kwargs)


@pytest.fixture(scope="module")
def global10(tmp_path_factory, l10):
    """10 degree float32 cube: lat 85 .. -85 (18 rows), lon -175 .. 175 (36), shards and
    inner chunks of 3 x 3 cells (one inner chunk a shard, so reads count shards)."""
    return _cube(tmp_path_factory.mktemp("sampling") / "global10.zarr", l10, inner_chunks=3)


@pytest.fixture(scope="module")
def values10(global10):
    # cells first: values10[row, col] is one cell's vector (the store is band-first)
    return xr.open_zarr(global10)[cube.VARIABLE].transpose(..., "embedding").values


@pytest.mark.parametrize("centres", [
    np.arange(-179.875, 180, 0.25),  # a 0.25 degree globe's longitudes
    np.linspace(-89.875, 89.875, 720),  # its latitudes (linspace: not exactly regular)
    np.arange(0.5, 360, 1.0),  # 0..360 centres
    np.array([3.0]), np.array([-1.0, 2.0]),
    np.cumsum(np.random.default_rng(8).uniform(0.1, 3.0, 200)) - 100,  # uneven
])
def test_last_at_or_below_equals_a_binary_search(centres):
    """The spacing-based index equals np.searchsorted(side="right") - 1 exactly (int),
    at every centre, a hair either side of each, between, outside and at +-inf."""
    from xsatclip.raster.geometry import last_at_or_below

    rng = np.random.default_rng(9)
    points = np.concatenate([
        centres, np.nextafter(centres, np.inf), np.nextafter(centres, -np.inf),
        rng.uniform(centres[0] - 5, centres[-1] + 5, 5000), [np.inf, -np.inf, 1e300]])
    np.testing.assert_array_equal(last_at_or_below(centres, points),
                                  np.searchsorted(centres, points, side="right") - 1)


def test_nearest_and_linear_equal_hand_computed_values(global10, values10):
    lon = np.array([0.1, 179.9, -179.9 + 360, -175.0, 5.0])
    lat = np.array([0.2, -89.0, 44.0, 85.0, 81.0])
    nearest = xsatclip.sample(global10, lon, lat)
    assert nearest.dims == ("point", "embedding") and nearest.dtype == np.float32
    np.testing.assert_array_equal(nearest.lon, lon)
    np.testing.assert_array_equal(nearest.lat, lat)
    assert nearest.attrs["model_name"] == "bluemarble-l10"
    np.testing.assert_array_equal(nearest, values10[[8, 17, 4, 0, 0], [18, 35, 0, 0, 18]])

    # (12, 33): lon between 5 (col 18) and 15 (col 19), weight 0.7 on 15; lat between 35
    # (row 5) and 25 (row 6), weight 0.8 on 35.
    linear = xsatclip.sample(global10, [12.0, -175.0], [33.0, 85.0], method="linear").values
    v = values10.astype(np.float64)
    expected = (0.2 * 0.3 * v[6, 18] + 0.2 * 0.7 * v[6, 19]
                + 0.8 * 0.3 * v[5, 18] + 0.8 * 0.7 * v[5, 19])
    np.testing.assert_allclose(linear[0], expected, rtol=0, atol=ATOL32)
    np.testing.assert_array_equal(linear[1], values10[0, 0])  # a cell centre, bit for bit


def test_dateline_and_0_360_longitudes(global10, values10):
    # 180 = -180 = 540 sits halfway between the centres 175 (col 35) and -175 (col 0).
    linear = xsatclip.sample(global10, [180.0, -180.0, 540.0], [5.0] * 3, method="linear")
    for row in linear.values:
        np.testing.assert_allclose(row, (values10[8, 35] + values10[8, 0]) / 2, atol=ATOL32)
    nearest = xsatclip.sample(global10, [185.0, 355.0, -185.0], [5.0] * 3).values
    np.testing.assert_array_equal(nearest, values10[[8, 8, 8], [0, 17, 35]])

    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-180, 180, 50), rng.uniform(-90, 90, 50)
    for method in ("nearest", "linear"):
        west = xsatclip.sample(global10, lon, lat, method=method).values
        east = xsatclip.sample(global10, lon % 360, lat, method=method).values
        np.testing.assert_allclose(east, west, rtol=0, atol=ATOL32, err_msg=method)


def test_batches_give_the_same_values(global10, monkeypatch):
    rng = np.random.default_rng(2)
    lon, lat = rng.uniform(-180, 180, 30), rng.uniform(-90, 90, 30)
    methods = ("nearest", "linear")
    whole = {m: xsatclip.sample(global10, lon, lat, method=m).values for m in methods}
    monkeypatch.setattr(sampling, "BATCH", 7)  # 5 reads, points ordered by chunk
    for method in methods:
        np.testing.assert_array_equal(xsatclip.sample(global10, lon, lat, method=method),
                                      whole[method], err_msg=method)


def test_poles(global10, values10, l10):
    lon = np.array([1.0, 91.0, 181.0, 359.0])
    north = xsatclip.sample(global10, lon, np.full(4, 90.0), method="linear").values
    ring = xsatclip.sample(global10, lon, np.full(4, 85.0), method="linear").values
    np.testing.assert_array_equal(north, ring)  # held constant beyond the last centres
    south = xsatclip.sample(global10, lon, np.full(4, -90.0)).values
    np.testing.assert_array_equal(south, values10[17, [18, 27, 0, 17]])
    exact = xsatclip.sample(global10, lon, np.full(4, 90.0), method="exact").values
    np.testing.assert_allclose(exact, exact[[0, 0, 0, 0]], atol=ATOL32)  # one point
    np.testing.assert_allclose(exact, l10.encode(lon, np.full(4, 90.0)), atol=ATOL32)


def test_samples_write_to_netcdf_and_keep_provenance_only(global10, tmp_path):
    samples = xsatclip.sample(global10, [0.1, 12.0], [0.2, 33.0])
    # The cube's grid metadata (conventions, grid_mapping) does not describe points.
    assert "grid_mapping" not in samples.attrs and "zarr_conventions" not in samples.attrs
    assert not [k for k in samples.attrs if k.startswith(("geoemb:", "proj:", "spatial:"))]
    assert samples.attrs["model_sha256"] == xr.open_zarr(global10).attrs["model_sha256"]
    samples.to_netcdf(tmp_path / "samples.nc")  # scipy backend: strings and numbers only
    reread = xr.open_dataarray(tmp_path / "samples.nc")
    np.testing.assert_array_equal(reread.values, samples.values)  # float32, bit for bit


def test_exact_equals_encode_and_reads_no_data(global10, l10, tmp_path):
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(-180, 360, 40), rng.uniform(-90, 90, 40)
    exact = xsatclip.sample(global10, lon, lat, method="exact")
    assert exact.dtype == np.float32 and exact.attrs["xsatclip_sampling"] == "exact"
    np.testing.assert_allclose(exact.values, l10.encode(lon, lat), rtol=0, atol=ATOL32)
    ds = xsatclip.open_cube(global10)
    np.testing.assert_array_equal(xsatclip.sample(ds, lon, lat, method="exact"), exact)
    # Exact on a cube whose data chunks are gone: only the attrs are read.
    import shutil

    stripped = tmp_path / "attrs_only.zarr"
    shutil.copytree(global10, stripped)
    shutil.rmtree(stripped / cube.VARIABLE / "c")
    np.testing.assert_array_equal(xsatclip.sample(stripped, lon, lat, method="exact"), exact)
    with pytest.raises(StoreError, match="marked done but missing"):  # issue 14
        xsatclip.sample(stripped, lon[:2], lat[:2])


def test_int8_cube_dequantised(tmp_path, l10):
    store = _cube(tmp_path / "int8.zarr", l10, resolution=30.0, dtype="int8")
    raw = zarr.open_array(store, path=cube.VARIABLE, mode="r")
    scale = np.float32(raw.attrs["scale_factor"])
    codes = np.moveaxis(np.asarray(raw[...]), 0, -1)  # stored (embedding, lat, lon)
    lon, lat = np.array([-170.0, 100.0, 359.0]), np.array([80.0, -5.0, -70.0])
    expected = codes[[0, 3, 5], [0, 9, 5]] * scale  # lat 75 .. -75, lon -165 .. 165
    for source in (store, xsatclip.open_cube(store), xr.open_zarr(store)):
        nearest = xsatclip.sample(source, lon, lat)
        assert nearest.dtype == np.float32
        np.testing.assert_allclose(nearest.values, expected, rtol=1e-6, atol=0)
    # Quantisation error of the cube vs the model: |error| <= scale / 2.
    exact = l10.encode(np.array([-165.0, 105.0, -15.0]), np.array([75.0, -15.0, -75.0]))
    assert np.abs(expected - exact).max() <= scale / 2 * (1 + 1e-6)


def test_regional_cube_nan_outside_and_dateline_crossing(tmp_path, l10):
    regional = _cube(tmp_path / "regional.zarr", l10, bbox=(0, 0, 30, 30))
    out = xsatclip.sample(regional, [10.0, 31.0, 10.0, 365.0, np.nan],
                          [10.0, 10.0, -1.0, 5.0, 5.0]).values
    assert np.isfinite(out[0]).all() and np.isfinite(out[3]).all()
    assert np.isnan(out[[1, 2, 4]]).all()  # east, south of the cube; NaN coordinate
    assert np.isnan(xsatclip.sample(regional, [40.0], [40.0], method="linear").values).all()
    # Between the outermost centres and the edge: held constant.
    np.testing.assert_array_equal(
        xsatclip.sample(regional, [29.9], [0.1], method="linear").values,
        xsatclip.sample(regional, [25.0], [5.0]).values)

    pacific = _cube(tmp_path / "pacific.zarr", l10, bbox=(170, -10, 190, 10))  # lon 175, 185
    values = xr.open_zarr(pacific)[cube.VARIABLE].transpose(..., "embedding").values
    got = xsatclip.sample(pacific, [-175.0, 185.0, 176.0, 160.0], [5.0] * 4).values
    np.testing.assert_array_equal(got[:3], values[[0, 0, 0], [1, 1, 0]])
    assert np.isnan(got[3]).all()


class _CountingStore(zarr.storage.WrapperStore):
    """Records the keys of the embedding chunks read."""

    def __init__(self, store) -> None:
        super().__init__(store)
        self.chunk_reads: list[str] = []

    async def get(self, key, prototype, byte_range=None):
        if key.startswith(f"{cube.VARIABLE}/c/"):
            self.chunk_reads.append(key)
        return await self._store.get(key, prototype, byte_range)


def test_lazy_zarr_cube_reads_only_the_needed_chunks(global10, values10):
    store = _CountingStore(zarr.storage.LocalStore(global10, read_only=True))
    ds = xr.open_zarr(store)
    assert store.chunk_reads == []
    # Chunks are 3 x 3 cells of 10 degrees: (0.2, 0.1) and (5, 5) share chunk (2, 6);
    # (-172, 81) is in chunk (0, 0). 2 of 72 chunks.
    nearest = xsatclip.sample(ds, [0.1, 5.0, -172.0], [0.2, 5.0, 81.0])
    assert sorted(store.chunk_reads) == ["embeddings/c/0/0/0", "embeddings/c/0/2/6"]
    np.testing.assert_array_equal(nearest, values10[[8, 8, 0], [18, 18, 0]])
    store.chunk_reads.clear()
    # Linear at lat 60, lon -150 needs rows 2, 3 (chunks 0, 1) and cols 2, 3 (chunks 0, 1).
    xsatclip.sample(ds, [-150.0], [60.0], method="linear")
    assert len(store.chunk_reads) == 4 == len(set(store.chunk_reads))


def test_lazy_embed_computes_only_needed_chunks_and_exact_none(l10, monkeypatch):
    computed = []  # one encode_grid call per computed chunk of the lazy grid
    encode_grid = LocationEncoder.encode_grid

    def counting(self, lon, lat, **kwargs):
        computed.append((float(lat[0]), float(lon[0])))
        return encode_grid(self, lon, lat, **kwargs)

    monkeypatch.setattr(LocationEncoder, "encode_grid", counting)
    emb = xsatclip.grid(10.0).satclip.embed(model=l10, chunks=3)  # 72 chunks, not computed
    lon, lat = np.array([0.1, 5.0, -172.0]), np.array([0.2, 5.0, 81.0])
    nearest = xsatclip.sample(emb, lon, lat)
    assert sorted(computed) == [(25.0, 5.0), (85.0, -175.0)]  # first cells of 2 chunks
    computed.clear()
    exact = xsatclip.sample(emb, lon, lat, method="exact")
    assert computed == []
    np.testing.assert_allclose(exact.values, l10.encode(lon, lat), rtol=0, atol=ATOL32)
    cells = emb.transpose(..., "embedding").values
    np.testing.assert_array_equal(nearest, cells[[8, 8, 0], [18, 18, 0]])

    wide = xsatclip.grid(10.0).satclip.embed(model=l10, dtype="float64", chunks=3)
    exact64 = xsatclip.sample(wide, lon, lat, method="exact")
    assert exact64.dtype == np.float64
    assert xsatclip.sample(wide, lon, lat).dtype == np.float64


def test_projected_cube(l10):
    x = 300_000 + 10_000.0 * (np.arange(6) + 0.5)
    y = 5_160_000 - 10_000.0 * (np.arange(4) + 0.5)
    raster = xr.DataArray(np.zeros((4, 6)), dims=("y", "x"), coords={"y": y, "x": x})
    emb = raster.rio.write_crs("EPSG:32632").satclip.embed(model=l10, chunks=2)
    import pyproj

    to_lonlat = pyproj.Transformer.from_crs(32632, 4326, always_xy=True)
    lon, lat = to_lonlat.transform(x[[0, 5, 2]], y[[0, 3, 1]])
    got = xsatclip.sample(emb, [*lon, 0.0], [*lat, 0.0]).values
    cells = emb.transpose(..., "embedding").values
    np.testing.assert_array_equal(got[:3], cells[[0, 3, 1], [0, 5, 2]])
    assert np.isnan(got[3]).all()  # far outside the raster


def test_errors_name_the_problem(global10, l10):
    with pytest.raises(ValueError, match=r"method='cubic': choose one of \['nearest', 'linear'"):
        xsatclip.sample(global10, [0.0], [0.0], method="cubic")
    with pytest.raises(InvalidCoordinatesError, match="latitude value"):
        xsatclip.sample(global10, [0.0], [91.0])
    emb = xsatclip.open_cube(global10)[cube.VARIABLE]
    other = "bluemarble-l40"
    with pytest.raises(CheckpointError, match=r"model mismatch: the cube was made by "
                                              r"bluemarble-l10 .*bluemarble-l40"):
        xsatclip.sample(emb.assign_attrs(model_source=other), [0.0], [0.0], method="exact")
    with pytest.raises(CheckpointError, match="model mismatch"):
        xsatclip.sample(global10, [0.0], [0.0], method="exact", model=other)
    anonymous = xr.DataArray(np.zeros((2, 2, 3)), dims=("lat", "lon", "embedding"),
                             coords={"lat": [10.0, 0.0], "lon": [0.0, 10.0]})
    with pytest.raises(ValueError, match=r"attrs lack \['model_source', 'model_sha256'"):
        xsatclip.sample(anonymous, [0.0], [0.0], method="exact")
    np.testing.assert_allclose(  # model= stands in for a source not loadable here
        xsatclip.sample(emb.assign_attrs(model_source="/elsewhere/tiny.ckpt"), [1.0], [2.0],
                        method="exact", model=l10).values, l10.encode([1.0], [2.0]),
        atol=ATOL32)
    curvilinear = xr.DataArray(np.zeros((2, 2, 3)), dims=("y", "x", "embedding"), coords={
        "lat": (("y", "x"), [[1.0, 1.0], [0.0, 0.0]]),
        "lon": (("y", "x"), [[0.0, 1.0], [0.0, 1.0]])})
    with pytest.raises(ValueError, match="curvilinear: use method='exact'"):
        xsatclip.sample(curvilinear, [0.0], [0.0])
    # A Dataset's one embedding variable is taken whatever its name; two are ambiguous.
    np.testing.assert_array_equal(xsatclip.sample(xr.Dataset({"other": anonymous}), [0.0],
                                                  [0.0]).values, np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"2 variables with an 'embedding' dim \(\['a', 'b'\]\)"):
        xsatclip.sample(xr.Dataset({"a": anonymous, "b": anonymous}), [0.0], [0.0])
