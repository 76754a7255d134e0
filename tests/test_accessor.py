"""The .satclip accessor: grids, chunks, schedulers, CRS handling, metadata, errors."""

from __future__ import annotations

import pickle

import cloudpickle
import dask
import numpy as np
import pyproj
import pytest
import rioxarray
import torch
import xarray as xr

import xsatclip
from xsatclip.errors import InvalidCoordinatesError, MissingCRSError, ModelNotFoundError

ATOL32 = 1e-5  # float32 vs float32 across batch shapes (GEMM blocking): measured 1.1e-6


def _pointwise(model, lon2d, lat2d):
    """Point-by-point encoding, band-first: (embed_dim, *shape)."""
    out = model.encode(np.ravel(lon2d), np.ravel(lat2d))
    return np.moveaxis(out.reshape(*np.shape(lat2d), model.embed_dim), -1, 0)


def test_grid_equals_pointwise_encoding(l10):
    ds = xsatclip.grid(10.0, bbox=(-180, -90, 180, 90))
    emb = ds.satclip.embed(model=l10, chunks=7)
    assert emb.dims == ("embedding", "lat", "lon") and emb.name == "embeddings"
    assert emb.chunks[0] == (256,) and emb.chunks[1] == (7, 7, 4)
    np.testing.assert_array_equal(emb.embedding.values, np.arange(256))
    lat, lon = np.meshgrid(ds.lat, ds.lon, indexing="ij")
    np.testing.assert_allclose(emb.values, _pointwise(l10, lon, lat), rtol=0, atol=ATOL32)


def test_grid_template_metadata():
    ds = xsatclip.grid(0.5, bbox=(10, 40, 12, 41), chunks=2)
    assert ds.rio.crs.to_epsg() == 4326
    np.testing.assert_allclose(ds.lat, [40.75, 40.25])  # north-up cell centres
    np.testing.assert_allclose(ds.lon, [10.25, 10.75, 11.25, 11.75])
    assert ds.lat.attrs["units"] == "degrees_north" and ds.lon.attrs["standard_name"] == "longitude"
    assert ds.encoding["preferred_chunks"] == {"lat": 2, "lon": 2}
    assert ds.satclip  # accessor registered on templates
    with pytest.raises(ValueError, match="multiple of the resolution"):
        xsatclip.grid(0.7, bbox=(0, 0, 1, 1))
    with pytest.raises(InvalidCoordinatesError, match="south/north"):
        xsatclip.grid(1, bbox=(0, 50, 1, 95))


def test_chunked_equals_unchunked_and_nothing_runs_early(l10):
    ds = xsatclip.grid(4.0, bbox=(-20, -40, 40, 40))
    one = ds.satclip.embed(model=l10, chunks=1000)
    many = ds.satclip.embed(model=l10, chunks={"lat": 3, "lon": 4})
    assert one.data.npartitions == 1 and many.data.npartitions == 7 * 4
    np.testing.assert_allclose(many.values, one.values, rtol=0, atol=ATOL32)


def test_output_chunks_follow_dask_input(l10):
    ds = xsatclip.grid(5.0, bbox=(0, 0, 60, 30))
    ds["temperature"] = xr.DataArray(np.zeros((6, 12)), dims=("lat", "lon")).chunk({"lon": 5})
    emb = ds.satclip.embed(model=l10)
    assert emb.chunks[1:] == ((6,), (5, 5, 2))
    by_array = ds["temperature"].satclip.embed(model=l10)
    np.testing.assert_array_equal(by_array.values, emb.values)


def test_longitude_conventions_give_the_same_embeddings(l10):
    """A 0..360 grid equals the same grid in -180..180 (float32, ATOL32)."""
    east = xsatclip.grid(10.0, bbox=(0, -90, 360, 90))
    west = xsatclip.grid(10.0)
    a = east.satclip.embed(model=l10).assign_coords(lon=((east.lon + 180) % 360) - 180)
    b = west.satclip.embed(model=l10)
    xr.testing.assert_allclose(a.sortby("lon").drop_vars("spatial_ref"),
                               b.drop_vars("spatial_ref"), rtol=0, atol=ATOL32)


def test_curvilinear_coordinates(l10):
    yy, xx = np.meshgrid(np.arange(5), np.arange(6), indexing="ij")
    lat2d = 50 + 2.0 * yy + 0.3 * xx  # a rotated, sheared grid
    lon2d = -30 + 3.0 * xx - 0.5 * yy
    ds = xr.Dataset(coords={"nav_lat": (("j", "i"), lat2d), "nav_lon": (("j", "i"), lon2d)})
    emb = ds.satclip.embed(model=l10, chunks=2)
    assert emb.dims == ("embedding", "j", "i") and "nav_lat" in emb.coords
    np.testing.assert_allclose(emb.values, _pointwise(l10, lon2d, lat2d), rtol=0, atol=ATOL32)


def test_cf_attributes_win_over_names(l10):
    ds = xr.Dataset(coords={
        "northing_deg": ("r", [10.0, 20.0], {"standard_name": "latitude"}),
        "easting_deg": ("c", [1.0, 2.0, 3.0], {"units": "degrees_east"}),
    })
    emb = ds.satclip.embed(model=l10)
    assert emb.dims == ("embedding", "r", "c")


def test_utm_geotiff_equals_transformed_cell_centres(l10, tmp_path):
    """A UTM zone 33N GeoTIFF written and reopened with rioxarray embeds like its cell
    centres transformed with pyproj (float32, ATOL32)."""
    x = 500_000 + 1000.0 * (np.arange(8) + 0.5)
    y = 5_200_000 - 1000.0 * (np.arange(6) + 0.5)
    raster = xr.DataArray(np.random.default_rng(0).random((6, 8)).astype("float32"),
                          dims=("y", "x"), coords={"y": y, "x": x}, name="band")
    raster.rio.write_crs("EPSG:32633").rio.to_raster(tmp_path / "utm.tif")
    reopened = rioxarray.open_rasterio(tmp_path / "utm.tif", chunks={"x": 3}).squeeze("band")
    emb = reopened.satclip.embed(model=l10)
    assert emb.rio.crs.to_epsg() == 32633 and emb.dims == ("embedding", "y", "x")
    assert emb.chunks[2] == (3, 3, 2)
    xx, yy = np.meshgrid(reopened.x, reopened.y)
    lon, lat = pyproj.Transformer.from_crs(32633, 4326, always_xy=True).transform(xx, yy)
    np.testing.assert_allclose(emb.values, _pointwise(l10, lon, lat), rtol=0, atol=ATOL32)


@pytest.mark.slow
def test_threaded_equals_distributed_processes(l10):
    distributed = pytest.importorskip("distributed")
    ds = xsatclip.grid(15.0)
    emb = ds.satclip.embed(model=l10, chunks=5)
    with dask.config.set(scheduler="threads"):
        threaded = emb.values
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        remote = client.compute(emb.data).result()
        pids = set(client.run(lambda: __import__("os").getpid()).values())
    assert len(pids) == 2
    np.testing.assert_array_equal(remote, threaded)


def test_graph_does_not_carry_the_model():
    """The pickled graph is the same size for a 0.4 MB and a 1.9 MB network."""
    ds = xsatclip.grid(30.0)
    sizes = {}
    for level in (10, 40):
        emb = ds.satclip.embed(model=f"bluemarble-l{level}", chunks=3)
        sizes[level] = len(cloudpickle.dumps(dict(emb.data.__dask_graph__())))
    assert abs(sizes[40] - sizes[10]) < 200
    weights = pickle.dumps(xsatclip.load_model("bluemarble-l40").network)
    assert sizes[40] < len(weights) / 50


def test_provenance_attrs(l10):
    emb = xsatclip.grid(45.0).satclip.embed(model=l10)
    assert emb.attrs["model_sha256"] == l10.identity.sha256
    assert emb.attrs["model_level"] == 10 and emb.attrs["model_numerics"] == "exact"
    assert emb.attrs["xsatclip_version"] == xsatclip.__version__


def test_options_pass_through(l10):
    ds = xsatclip.grid(30.0)
    double = ds.satclip.embed(model=l10, dtype="float64", batch_size=5)
    assert double.dtype == np.float64
    ref = ds.satclip.embed(model="bluemarble-l10", numerics="reference")
    assert ref.attrs["model_numerics"] == "reference"
    np.testing.assert_allclose(ref.values, double.values, rtol=0, atol=1e-5)


def test_torch_threads_restored_after_compute(l10):
    before = torch.get_num_threads()
    xsatclip.grid(30.0).satclip.embed(model=l10, chunks=2).compute(scheduler="threads")
    assert torch.get_num_threads() == before


def test_nan_coordinates_give_nan_embeddings(l10):
    ds = xr.Dataset(coords={"lat": [0.0, np.nan], "lon": [10.0, 20.0]})
    values = ds.satclip.embed(model=l10).values
    assert np.isfinite(values[:, 0]).all() and np.isnan(values[:, 1]).all()


def test_errors_name_the_problem(l10):
    with pytest.raises(InvalidCoordinatesError, match=r"found coordinates .*'time'"):
        xr.Dataset(coords={"time": [1, 2]}).satclip.embed(model=l10)
    with pytest.raises(MissingCRSError, match="write_crs"):
        xr.Dataset(coords={"x": [1.0, 2.0], "y": [3.0, 4.0]}).satclip.embed(model=l10)
    with pytest.raises(InvalidCoordinatesError, match=r"'lat': 1 latitude value"):
        xr.Dataset(coords={"lat": [0.0, 95.0], "lon": [0.0]}).satclip.embed(model=l10)
    with pytest.raises(ValueError, match="level=40 but the model has level 10"):
        xsatclip.grid(30.0).satclip.embed(level=40, model=l10)
    with pytest.raises(ModelNotFoundError, match="pass model="):
        xsatclip.grid(30.0).satclip.embed(level=12)
    with pytest.raises(ValueError, match="not spatial dims"):
        xsatclip.grid(30.0).satclip.embed(model=l10, chunks={"time": 3})


def test_output_writes_without_ceremony(l10, tmp_path):
    """The accessor's output goes to Zarr, netCDF and GeoTIFF as it is, and its CRS survives
    the reopen (spatial_ref a coordinate, CF grid_mapping)."""
    emb = xsatclip.grid(30.0, bbox=(-180, -90, 180, 90)).satclip.embed(model=l10, chunks=3)
    assert emb.attrs["grid_mapping"] == "spatial_ref" and emb.name not in emb.dims
    ds = emb.to_dataset()
    assert list(ds.data_vars) == ["embeddings"]
    emb.to_zarr(tmp_path / "emb.zarr")
    emb.to_netcdf(tmp_path / "emb.nc")
    expected = emb.values
    for reopened in (xr.open_zarr(tmp_path / "emb.zarr"), xr.open_dataset(tmp_path / "emb.nc")):
        assert list(reopened.data_vars) == ["embeddings"] and "spatial_ref" in reopened.coords
        var = reopened["embeddings"]
        assert var.rio.crs.to_epsg() == 4326 and var.attrs["grid_mapping"] == "spatial_ref"
        assert var.dims == ("embedding", "lat", "lon")
        np.testing.assert_array_equal(var.values, expected)  # float32, bit for bit
    emb.rio.to_raster(tmp_path / "emb.tif")
    import rasterio

    with rasterio.open(tmp_path / "emb.tif") as tif:
        assert (tif.count, tif.height, tif.width) == (256, 6, 12) and tif.crs.to_epsg() == 4326
        np.testing.assert_array_equal(tif.read(), expected)  # float32 bands, bit for bit
