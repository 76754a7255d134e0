"""Where is this image? locate (softmax maps over embedding grids), top_k, cell areas and
Recall vs Area: against hand-computed values, on real trained pairs, lazy cubes, projected
grids, the dateline, the poles and both longitude conventions."""

from __future__ import annotations

import math

import dask
import numpy as np
import pyproj
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from dask.callbacks import Callback

import xsatclip
from xsatclip.errors import MissingCRSError
from xsatclip.geolocation import (
    LOGIT_SCALE_ATTR,
    GeolocationError,
    cell_areas,
    encode_patches,
    locate,
    recall_vs_area,
    top_k,
)
from xsatclip.raster.geometry import uniform_on_sphere
from xsatclip.sphere import AUTHALIC_RADIUS_KM, MEAN_RADIUS_KM, great_circle_km
from xsatclip.training import TrainConfig, train
from xsatclip.training.pairs import PatchSampler

SPHERE_KM2 = 4 * math.pi * AUTHALIC_RADIUS_KM**2  # R = 6371.007181 km: 5.1007e8 km²
UTM33 = pyproj.CRS.from_epsg(32633)


class TaskCounter(Callback):
    """Counts the Dask tasks run while active."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks = 0

    def _pretask(self, key, dask, state) -> None:
        self.tasks += 1


def cartesian(lon, lat) -> np.ndarray:
    """(..., 3) unit vectors of points in degrees."""
    lon, lat = np.radians(lon), np.radians(lat)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)


def unit_vector_grid(resolution: float, bbox=None) -> xr.DataArray:
    """A (lat, lon, embedding=3) float64 grid whose embedding is the unit vector of the cell
    centre: cosine similarity with a query vector falls off with great-circle distance."""
    template = xsatclip.grid(resolution, bbox=bbox)
    lon, lat = np.meshgrid(template.lon.values, template.lat.values)
    return xr.DataArray(cartesian(lon, lat), dims=("lat", "lon", "embedding"),
                        coords=template.coords, attrs={"model_name": "unit-vectors"})


def constant_map(resolution: float, bbox=None) -> xr.DataArray:
    template = xsatclip.grid(resolution, bbox=bbox)
    shape = (template.sizes["lat"], template.sizes["lon"])
    return xr.DataArray(np.full(shape, 1.0 / (shape[0] * shape[1])), dims=("lat", "lon"),
                        coords=template.coords)


# --------------------------------------------------------------------------- cell areas


@pytest.mark.parametrize("bbox", [None, (0, -90, 360, 90)])
@pytest.mark.parametrize("resolution", [1.0, 7.5])
def test_cell_areas_sum_to_the_sphere(resolution, bbox):
    areas = cell_areas(xsatclip.grid(resolution, bbox=bbox))
    assert areas.dims == ("lat", "lon") and areas.attrs["units"] == "km2"
    # float64 sums of ~1e4 positive terms: relative error well below 1e-12.
    assert float(areas.sum()) == pytest.approx(SPHERE_KM2, rel=1e-12)
    # The cap north of 60 degrees (edges fall on 60 for both resolutions): 2 pi R² (1 - sin 60).
    cap = float(areas.where(areas.lat > 60).sum())
    expected = 2 * math.pi * AUTHALIC_RADIUS_KM**2 * (1 - math.sin(math.radians(60)))
    assert cap == pytest.approx(expected, rel=1e-12)
    # South-up storage: the same areas, reversed.
    flipped = cell_areas(xsatclip.grid(resolution, bbox=bbox).isel(lat=slice(None, None, -1)))
    np.testing.assert_allclose(flipped.values, areas.values[::-1], rtol=1e-14)


def test_projected_cell_areas_follow_the_crs_scale():
    # 1 km UTM cells on the central meridian (500 km easting): the projection's scale factor
    # there is k0 = 0.9996, so each covers (1 / k0)² km² of the ellipsoid (to ~1e-7 across
    # the 4 km the grid spans).
    x = 498_000 + 1000.0 * (np.arange(4) + 0.5)
    y = 5_300_000 - 1000.0 * (np.arange(3) + 0.5)
    grid = xr.DataArray(np.zeros((3, 4)), dims=("y", "x"), coords={"y": y, "x": x})
    areas = cell_areas(grid.rio.write_crs(UTM33))
    assert areas.dims == ("y", "x")
    np.testing.assert_allclose(areas.values, 1 / 0.9996**2, rtol=1e-6)
    with pytest.raises(MissingCRSError, match="no CRS"):
        cell_areas(grid)


def test_curvilinear_grids_are_refused_for_areas():
    lat2d, lon2d = np.meshgrid([10.0, 20.0], [0.0, 10.0, 20.0], indexing="ij")
    grid = xr.DataArray(np.zeros((2, 3)), dims=("j", "i"),
                        coords={"lat": (("j", "i"), lat2d), "lon": (("j", "i"), lon2d)})
    with pytest.raises(GeolocationError, match="curvilinear"):
        cell_areas(grid)
    with pytest.raises(GeolocationError, match="curvilinear"):
        recall_vs_area(grid + 1 / 6, 5.0, 15.0)


# --------------------------------------------------------------------------- locate


def random_grid(seed: int = 0, dim: int = 8) -> xr.DataArray:
    """A 10-degree (lat, lon, embedding) float32 grid of random embeddings, one NaN cell."""
    template = xsatclip.grid(10.0)
    shape = (template.sizes["lat"], template.sizes["lon"], dim)
    values = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    values[3, 5] = np.nan
    return xr.DataArray(values, dims=("lat", "lon", "embedding"), coords=template.coords,
                        attrs={"model_name": "random", "model_sha256": "0" * 64})


def softmax_reference(values: np.ndarray, query: np.ndarray, multiplier: float) -> np.ndarray:
    """The map by hand: float64, NaN cells left out."""
    rows = values.reshape(-1, values.shape[-1]).astype(np.float64)
    cosine = rows @ query / (np.linalg.norm(rows, axis=1) * np.linalg.norm(query))
    logits = multiplier * cosine
    e = np.exp(logits - np.nanmax(logits))
    return (e / np.nansum(e)).reshape(values.shape[:-1])


def test_locate_is_a_softmax_over_the_cells():
    grid = random_grid()
    query = np.random.default_rng(1).normal(size=8)
    prob = locate(grid, query, temperature=0.2)
    assert prob.dims == ("lat", "lon") and prob.name == "probability"
    assert prob.dtype == np.float64
    # float64 throughout: agreement to rounding (1e-12 relative).
    np.testing.assert_allclose(prob.values, softmax_reference(grid.values, query, 5.0),
                               rtol=1e-12)
    assert np.isnan(prob.values[3, 5])
    assert np.isfinite(np.delete(prob.values.ravel(), 3 * 36 + 5)).all()
    assert float(prob.sum()) == pytest.approx(1.0, abs=1e-12)
    # Coordinates, CRS and provenance attrs are kept; the scale is recorded.
    np.testing.assert_array_equal(prob.lat, grid.lat)
    assert prob.rio.crs.to_epsg() == 4326 and prob.attrs["model_name"] == "random"
    assert "5 x cosine" in prob.attrs["xsatclip_locate"]


def test_locate_finds_the_embedding_dim_by_name_and_takes_batches():
    grid = random_grid()
    queries = np.random.default_rng(2).normal(size=(3, 8))
    batch = locate(grid, queries, temperature=0.5)
    assert batch.dims == ("query", "lat", "lon") and list(batch["query"].values) == [0, 1, 2]
    band_first = locate(grid.transpose("embedding", "lat", "lon"), queries, temperature=0.5)
    np.testing.assert_allclose(band_first.values, batch.values, rtol=1e-14)
    for i, query in enumerate(queries):
        np.testing.assert_allclose(batch.values[i], locate(grid, query, temperature=0.5).values,
                                   rtol=1e-14)
    named = xr.DataArray(queries, dims=("photo", "embedding"),
                         coords={"photo": ["a", "b", "c"]})
    by_name = locate(grid.to_dataset(name="embeddings"), named, temperature=0.5)
    assert by_name.dims == ("photo", "lat", "lon") and list(by_name.photo.values) == ["a", "b",
                                                                                       "c"]
    np.testing.assert_allclose(by_name.values, batch.values, rtol=1e-14)


def test_the_learned_logit_scale_comes_from_the_attrs():
    grid = random_grid()
    query = np.random.default_rng(3).normal(size=8)
    learned = locate(grid.assign_attrs({LOGIT_SCALE_ATTR: math.log(20.0)}), query)
    np.testing.assert_allclose(learned.values, locate(grid, query, temperature=0.05).values,
                               rtol=1e-12)
    # CLIP clamps the multiplier at 100.
    clamped = locate(grid.assign_attrs({LOGIT_SCALE_ATTR: math.log(1000.0)}), query)
    np.testing.assert_allclose(clamped.values, locate(grid, query, temperature=0.01).values,
                               rtol=1e-12)
    with pytest.raises(GeolocationError, match=r"no 'model_logit_scale'.*temperature="):
        locate(grid, query)
    with pytest.raises(GeolocationError, match="finite number"):
        locate(grid.assign_attrs({LOGIT_SCALE_ATTR: "nan"}), query)
    with pytest.raises(GeolocationError, match="temperature must be a positive"):
        locate(grid, query, temperature=0.0)


def test_bad_inputs_name_the_problem():
    grid = random_grid()
    with pytest.raises(GeolocationError, match=r"shape \(7,\)"):
        locate(grid, np.ones(7), temperature=1.0)
    with pytest.raises(GeolocationError, match=r"rows \[1\] are zero"):
        locate(grid, np.stack([np.ones(8), np.zeros(8)]), temperature=1.0)
    with pytest.raises(GeolocationError, match="no 'embedding' dim"):
        locate(grid.rename(embedding="band"), np.ones(8), temperature=1.0)
    with pytest.raises(GeolocationError, match=r"found \['time'\] besides"):
        locate(grid.expand_dims(time=2), np.ones(8), temperature=1.0)
    prob = locate(grid, np.ones(8), temperature=1.0)
    with pytest.raises(GeolocationError, match="k must be a positive integer"):
        top_k(prob, 0)
    with pytest.raises(GeolocationError, match="exceeds the 647 cells"):
        top_k(prob, 648)
    with pytest.raises(GeolocationError, match="2 locations for 1 map"):
        recall_vs_area(prob, [0.0, 1.0], [0.0, 1.0])
    with pytest.raises(GeolocationError, match="areas_km2 must be positive"):
        recall_vs_area(prob, 0.0, 0.0, areas_km2=[-1.0])
    with pytest.raises(xsatclip.errors.InvalidCoordinatesError, match="latitude"):
        recall_vs_area(prob, 0.0, 91.0)


@pytest.fixture(scope="module")
def l10(golden_dir):
    return xsatclip.load_model(golden_dir / "satclip-tiny-l10.ckpt", device="cpu")


def test_lazy_cubes_stay_lazy(tmp_path, l10):
    with dask.config.set(num_workers=2):
        store = xsatclip.precompute(tmp_path / "cube.zarr", resolution=10.0, model=l10,
                                    chunks=6, progress=False)
    cube = xsatclip.open_cube(store)
    queries = np.random.default_rng(4).normal(size=(2, 256))
    with TaskCounter() as counter:
        prob = locate(cube, queries, temperature=0.1)
        lazy_embed = locate(xsatclip.grid(10.0, chunks=6).satclip.embed(model=l10),
                            queries, temperature=0.1)
    assert counter.tasks == 0 and prob.chunks is not None and lazy_embed.chunks is not None
    eager = locate(cube.embeddings.compute(), queries, temperature=0.1)
    np.testing.assert_allclose(prob.values, eager.values, rtol=1e-12)
    # The lazy embed graph computes the same embeddings as the cube (float32, within 1e-6).
    np.testing.assert_allclose(lazy_embed.values, eager.values, rtol=1e-4)


# --------------------------------------------------------------------------- top_k


@pytest.mark.parametrize("bbox", [None, (0, -90, 360, 90)])
def test_top_k_at_the_dateline_and_the_poles(bbox):
    grid = unit_vector_grid(1.0, bbox)
    # Just east of the dateline, in either convention: the nearest centre is (179.5, 0.5),
    # the next (-179.5, 0.5) across the dateline; lon is reported in [-180, 180).
    for lon in (179.9, 179.9 - 360):
        prob = locate(grid, cartesian(lon, 0.3), temperature=0.01)
        best = top_k(prob, 2)
        np.testing.assert_allclose(best.lon.values, [179.5, -179.5], atol=1e-9)
        np.testing.assert_allclose(best.lat.values, [0.5, 0.5], atol=1e-9)
        picked = prob.isel(lat=xr.DataArray(best.row.values), lon=xr.DataArray(best.col.values))
        np.testing.assert_array_equal(picked.values, best.probability.values)
        assert best.probability.values[0] >= best.probability.values[1]
    # The north pole: the 360 cells of the top row are the 360 most probable, equally so.
    north = top_k(locate(grid, cartesian(0.0, 90.0), temperature=0.01), 360)
    assert (north.lat.values == 89.5).all() and np.unique(north.lon.values).size == 360
    np.testing.assert_allclose(north.probability.values, north.probability.values[0],
                               rtol=1e-9)
    south = top_k(locate(grid, cartesian(77.0, -90.0), temperature=0.01), 1)
    assert float(south.lat[0]) == -89.5


def test_top_k_ties_rank_in_storage_order_and_batches():
    best = top_k(constant_map(10.0), 3)
    assert list(best.row.values) == [0, 0, 0] and list(best.col.values) == [0, 1, 2]
    np.testing.assert_allclose(best.lon.values, [-175.0, -165.0, -155.0])
    batch = locate(unit_vector_grid(5.0), cartesian([11.0, -61.0], [41.0, -21.0]),
                   temperature=0.05)
    ranked = top_k(batch, 4)
    assert ranked.probability.dims == ("query", "rank") and list(ranked["rank"].values) == [
        1, 2, 3, 4]
    np.testing.assert_allclose(ranked.lon.values[:, 0], [12.5, -62.5])
    np.testing.assert_allclose(ranked.lat.values[:, 0], [42.5, -22.5])


def test_top_k_on_a_projected_grid_reports_lon_lat():
    x = 400_000 + 1000.0 * (np.arange(60) + 0.5)
    y = 5_300_000 - 1000.0 * (np.arange(50) + 0.5)
    xx, yy = np.meshgrid(x, y)
    lon, lat = pyproj.Transformer.from_crs(UTM33, "EPSG:4326", always_xy=True).transform(xx, yy)
    grid = xr.DataArray(cartesian(lon, lat), dims=("y", "x", "embedding"),
                        coords={"y": y, "x": x}).rio.write_crs(UTM33)
    prob = locate(grid, cartesian(14.0, 47.6), temperature=1e-4)
    best = top_k(prob, 1)
    # The cell holding the point: its centre within half a cell diagonal (0.71 km / k).
    distance = great_circle_km(14.0, 47.6, best.lon.values[0], best.lat.values[0])
    assert distance < 0.72
    rva = recall_vs_area(prob, 14.0, 47.6, areas_km2=[1.1, 10.0])
    assert list(rva.recall.values) == [1.0, 1.0]
    assert float(rva.needed_area_km2[0]) == pytest.approx(1 / 0.9996**2, rel=2e-3)


# --------------------------------------------------------------------------- recall vs area


def test_recall_vs_area_by_hand_with_ties():
    # A 10-degree grid over lon 0..30, lat 0..20: rows lat 15 (north) and 5, cols 5, 15, 25.
    template = xsatclip.grid(10.0, bbox=(0, 0, 30, 20))
    p = np.array([[0.1, 0.3, 0.1], [0.2, 0.1, 0.2]])
    prob = xr.DataArray(p, dims=("lat", "lon"), coords=template.coords)
    r2 = AUTHALIC_RADIUS_KM**2 * math.radians(10.0)
    north, south = (r2 * (math.sin(math.radians(20)) - math.sin(math.radians(10))),
                    r2 * math.sin(math.radians(10)))
    lon = np.array([15.0, 25.0, 5.0, 15.0, 25.0, 45.0, 365.0])  # 365 = 5 in 0..360
    lat = np.array([15.0, 5.0, 5.0, 5.0, 15.0, 5.0, 15.0])
    rva = recall_vs_area(prob.expand_dims(query=7), lon, lat,
                         areas_km2=[north, north + 2 * south, 1e9])
    expected = [
        north,                          # the most probable cell
        north + 2 * south,              # 0.2 tied with (south, 5): the earlier one counts
        north + south,                  # the first of the two 0.2 cells
        north + 2 * south + 2 * north + south,  # 0.1, after (15, 5), (15, 25), and itself
        north + 2 * south + 2 * north,  # 0.1 at (north, 25): after (north, 5)
        np.inf,                         # off the map
        north + 2 * south + north,      # 0.1 at (north, 5) (lon 365)
    ]
    np.testing.assert_allclose(rva.needed_area_km2.values, expected, rtol=1e-12)
    np.testing.assert_allclose(rva.recall.values, [1 / 7, 3 / 7, 6 / 7])
    assert float(rva.total_area_km2) == pytest.approx(3 * (north + south), rel=1e-12)
    # Every query's argmax is the cell (15, 15).
    np.testing.assert_allclose(rva.error_km.values, great_circle_km(lon, lat, 15.0, 15.0))
    assert float(rva.median_error_km) == pytest.approx(np.median(rva.error_km.values))


def test_recall_of_an_uninformative_map_is_the_area_fraction():
    n = 3000
    lon, lat = uniform_on_sphere(np.random.default_rng(5), n)
    fractions = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    for bbox in (None, (0, -90, 360, 90)):
        flat = constant_map(5.0, bbox)
        rva = recall_vs_area(flat, lon[:1], lat[:1])  # one map: scalar-like inputs work
        assert rva.sizes["query"] == 1
        batch = flat.expand_dims(query=n)
        for true_lon in (lon, np.mod(lon, 360.0)):  # both conventions of the truth
            rva = recall_vs_area(batch, true_lon, lat, areas_km2=fractions * SPHERE_KM2)
            # Binomial sampling error: 4 sigma <= 4 sqrt(0.25 / 3000) = 0.037.
            np.testing.assert_allclose(rva.recall.values, fractions, atol=0.037)
    random_maps = xr.DataArray(np.random.default_rng(6).random((n, 36, 72)),
                               dims=("query", "lat", "lon"), coords=flat.coords)
    rva = recall_vs_area(random_maps, lon, lat, areas_km2=fractions * SPHERE_KM2)
    np.testing.assert_allclose(rva.recall.values, fractions, atol=0.037)
    # Random guessing: the median great-circle error is a quarter of the circumference.
    assert float(rva.median_error_km) == pytest.approx(math.pi * MEAN_RADIUS_KM / 2, rel=0.06)


def test_a_map_peaked_at_the_truth_needs_only_its_cell():
    grid = unit_vector_grid(2.0)
    rng = np.random.default_rng(7)
    centres_lon = -179.0 + 2.0 * rng.integers(0, 180, 50)
    centres_lat = -89.0 + 2.0 * rng.integers(0, 90, 50)
    lon = centres_lon + rng.uniform(-0.2, 0.2, 50)  # well inside the cell
    lat = centres_lat + rng.uniform(-0.2, 0.2, 50)
    rva = recall_vs_area(locate(grid, cartesian(lon, lat), temperature=0.01), lon, lat)
    areas = cell_areas(grid)
    own = areas.sel(lon=xr.DataArray(centres_lon), lat=xr.DataArray(centres_lat)).values
    np.testing.assert_allclose(rva.needed_area_km2.values, own, rtol=1e-12)
    np.testing.assert_allclose(rva.error_km.values,
                               great_circle_km(lon, lat, centres_lon, centres_lat), rtol=1e-9)


# --------------------------------------------------------------------------- a trained pair


def unit_vector_raster(cell: float = 2.0) -> xr.DataArray:
    """A global (band=3, lat, lon) float32 raster whose colour is the 3-D unit vector of the
    pixel: the patch determines the location."""
    template = xsatclip.grid(cell)
    lon, lat = np.meshgrid(template.lon.values, template.lat.values)
    return xr.DataArray(np.moveaxis(cartesian(lon, lat), -1, 0).astype(np.float32),
                        dims=("band", "lat", "lon"), coords=template.coords)


@pytest.fixture(scope="module")
def trained_pair(tmp_path_factory):
    config = TrainConfig(level=8, capacity=64, embed_dim=32, patch_size=3, num_locations=3000,
                         batch_size=256, epochs=6, learning_rate=3e-3, image_width=8, seed=1)
    image = unit_vector_raster()
    run = train(image, tmp_path_factory.mktemp("pair") / "model", config, progress=False)
    return image, config, run


def test_a_trained_pair_locates_held_out_patches(trained_pair):
    image, config, run = trained_pair
    sampler = PatchSampler(image, config.patch_size)
    training = sampler.draw(config.num_locations, np.random.default_rng(config.seed))
    held = sampler.draw(300, np.random.default_rng(config.seed + 100))
    row, col, _ = sampler.pixel(held.lon, held.lat)
    train_row, train_col, _ = sampler.pixel(training.lon, training.lat)
    unseen = ~np.isin(row * 180 + col, train_row * 180 + train_col)  # not a training pixel
    assert unseen.sum() > 200
    images = encode_patches(run.image_encoder, held.patches[unseen])
    grid = xsatclip.grid(2.0, chunks=45).satclip.embed(model=run.encoder)
    prob = locate(grid, images, temperature=0.05)
    assert prob.chunks is not None  # lazy until scored
    one_percent = 0.01 * SPHERE_KM2
    rva = recall_vs_area(prob, held.lon[unseen], held.lat[unseen], areas_km2=[one_percent])
    # Most held-out patches have their true cell within the top 1% of the Earth's area
    # (measured 0.99; a map that knows nothing scores 0.01).
    assert float(rva.recall[0]) > 0.8
    assert float(rva.median_error_km) < 1000.0  # random guessing: ~10,000 km
