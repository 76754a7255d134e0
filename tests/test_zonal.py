"""Zonal statistics over polygons: the spherical area kernel against 50-digit arithmetic,
means of known fields, the poles, the dateline and both longitude conventions, projected
grids and CRSs, lazy Zarr grids read chunk by chunk, a cross-check with exactextract, and
the errors."""

from __future__ import annotations

import itertools

import geopandas
import mpmath
import numpy as np
import pyproj
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import shapely
import xarray as xr
import zarr

import xsatclip
from xsatclip.areas import zonal
from xsatclip.areas.overlap import GridCells, block_weights, spherical_areas
from xsatclip.areas.spherical import EARTH_RADIUS_M, ring_areas
from xsatclip.errors import (
    InvalidCoordinatesError,
    InvalidGeometryError,
    InvalidOptionError,
    MissingDependencyError,
    NotAnEmbeddingGridError,
)
from xsatclip.sphere import rectangle_areas

# float64 throughout. The same cells summed in another order (another grid convention,
# shifted or split polygons) agree to rounding: 1e-12 on values of order 1.
ATOL = 1e-12
def _cell_areas(west, east, south, north):
    return rectangle_areas(west, east, south, north, EARTH_RADIUS_M)


SPHERE = pyproj.Geod(a=EARTH_RADIUS_M, b=EARTH_RADIUS_M)


def _field(resolution: float, west: float = -180.0, size: int = 4, seed: int = 0):
    """A global random field (lat, lon, embedding) float64 on a grid starting at ``west``."""
    g = xsatclip.grid(resolution, bbox=(west, -90, west + 360, 90))
    values = np.random.default_rng(seed).normal(size=(g.lat.size, g.lon.size, size))
    return xr.DataArray(values, dims=("lat", "lon", "embedding"),
                        coords={"lat": g.lat, "lon": g.lon})


def _in_0_360(field: xr.DataArray) -> xr.DataArray:
    """The same cells and values with longitudes in 0..360 (columns rolled)."""
    half = int(np.argmax(field.lon.values > 0))
    rolled = field.roll(lon=-half, roll_coords=True)
    return rolled.assign_coords(lon=rolled.lon % 360)


def _shifted(geometry, degrees: float):
    """``geometry`` moved ``degrees`` east (longitudes not wrapped)."""
    return shapely.transform(geometry, lambda xy: xy + np.array([degrees, 0.0]))


def _geodesic_area(polygon) -> float:
    """pyproj's area of the polygon densified to 0.001 degree, on xsatclip's sphere: edges
    then follow the lon/lat straight lines to ~1e-8 relative. Rings oriented first: pyproj
    adds signed ring areas."""
    dense = shapely.orient_polygons(shapely.segmentize(polygon, 0.001))
    return abs(SPHERE.geometry_area_perimeter(dense)[0])


DATELINE = shapely.Polygon([(170.3, -10.2), (191.1, -5.3), (185.0, 12.7), (172.0, 8.0)])
SOUTH_CAP = shapely.Polygon([(-180, -90), (180, -90)] + [
    (x, -72 + 3 * np.sin(np.radians(3 * x))) for x in np.linspace(180, -180, 721)])


# --------------------------------------------------------------------------- the kernel


def _segment_integral(points) -> mpmath.mpf:
    """50-digit area of a ring with lon/lat straight edges: -R^2 * contour integral of
    sin(lat) dlon, each segment integrated exactly."""
    with mpmath.workdps(50):
        total = mpmath.mpf(0)
        for (x1, y1), (x2, y2) in itertools.pairwise(points):
            x1, y1, x2, y2 = (mpmath.mpf(v) * mpmath.pi / 180 for v in (x1, y1, x2, y2))
            total += ((x2 - x1) * mpmath.sin(y1) if y1 == y2
                      else (x2 - x1) * (mpmath.cos(y1) - mpmath.cos(y2)) / (y2 - y1))
        return abs(total) * mpmath.mpf(EARTH_RADIUS_M) ** 2


@pytest.mark.parametrize("ring", [
    [(10, 0), (11, 0), (11, 1), (10, 1), (10, 0)],  # 1 degree at the equator
    [(0, 89.99), (0.003, 89.99), (0.001, 89.995), (0, 89.99)],  # 300 m near the pole
    [(179.9, -89.9), (180.2, -89.95), (180.1, -89.3), (179.9, -89.9)],  # across 180
    [(-180, -90), (180, -90), (180, -60), (-180, -60), (-180, -90)],  # a polar cap
    [(30, 45), (30 + 1e-6, 45), (30 + 1e-6, 45 + 1e-6), (30, 45)],  # 10 cm
])
def test_ring_area_equals_50_digit_integral(ring):
    xy = np.array(ring, np.float64)
    got = ring_areas(xy[:, 0], xy[:, 1], np.zeros(len(xy), int), 1)[0]
    assert got == pytest.approx(float(_segment_integral(ring)), rel=1e-12, abs=0)


def test_cell_areas_tile_the_sphere():
    edges = np.linspace(-90, 90, 721)
    areas = _cell_areas(0, 0.25, edges[:-1], edges[1:])
    assert areas.sum() * 1440 == pytest.approx(4 * np.pi * EARTH_RADIUS_M**2, rel=1e-13)
    assert areas[0] == pytest.approx(float(_segment_integral(
        [(0, -90), (0.25, -90), (0.25, -89.75), (0, -89.75), (0, -90)])), rel=1e-13)


def _star(rng, x, y, radius, holes=False):
    """A random star-shaped polygon around (x, y), with a star-shaped hole if ``holes``."""
    angle = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 40))))
    reach = radius * rng.uniform(0.3, 1.0, angle.size)
    shell = np.column_stack([x + reach * np.cos(angle), y + reach * np.sin(angle)])
    hole = shell[::3] * 0.2 + np.array([x, y]) * 0.8 if holes and angle.size > 9 else None
    return shapely.make_valid(shapely.Polygon(shell, None if hole is None else [hole]))


@pytest.mark.parametrize("spherical", [True, False])
def test_cell_weights_equal_geos_clipping_cell_by_cell(spherical):
    """The Green's-theorem kernel against an independent computation: GEOS (shapely)
    clips the polygon to every cell, the closed forms measure each piece. Irregular grid
    lines, holes, multipolygons, edges and vertices on grid lines, the poles."""
    rng = np.random.default_rng(7)
    lat = np.sort(np.r_[-89.7, rng.uniform(-89, 89, 70), 89.6])  # irregular rows
    lon = np.arange(-179.0, 180.0, 2.0)
    grid = GridCells.from_centres(lat, lon, None, ("lat", "lon"))
    ye, xe = grid.y_edges, grid.x_edges
    polygons = [_star(rng, *rng.uniform([-170, -80], [170, 80]), rng.uniform(1, 15),
                      holes=bool(i % 2)) for i in range(40)]
    polygons += [shapely.box(xe[10], ye[20], xe[14], ye[23]),  # edges on grid lines
                 shapely.Polygon([(xe[30], ye[5]), (xe[33], ye[9]), (xe[30], ye[9])]),
                 shapely.MultiPolygon([shapely.box(0.5, 0.5, 3, 3), shapely.box(3, 0, 7, 1)]),
                 shapely.Polygon([(-180, 80), (180, 80), (180, 90), (-180, 90)]),
                 SOUTH_CAP]
    polygons = np.array([p for p in polygons if not p.is_empty], dtype=object)
    owner, row, col, w = block_weights(polygons, np.arange(polygons.size), grid,
                                       (0, grid.shape[0]), (0, grid.shape[1]),
                                       "area" if spherical else "coverage")
    got = np.zeros((polygons.size, *grid.shape))
    got[owner, row, col] = w
    expected = np.zeros_like(got)
    for i, polygon in enumerate(polygons):
        west, south, east, north = polygon.bounds
        rows = np.flatnonzero((ye[1:] >= south) & (ye[:-1] <= north))
        cols = np.flatnonzero((xe[1:] >= west) & (xe[:-1] <= east))
        r, c = (v.ravel() for v in np.meshgrid(rows, cols, indexing="ij"))
        cells = shapely.box(xe[c], ye[r], xe[c + 1], ye[r + 1])
        pieces = shapely.intersection(polygon, cells)
        expected[i, r, c] = (spherical_areas(pieces) if spherical
                             else shapely.area(pieces) / shapely.area(cells))
    full = (_cell_areas(xe[None, :-1], xe[None, 1:], ye[:-1, None], ye[1:, None]) if spherical
            else np.ones(grid.shape))
    np.testing.assert_allclose(got / full, expected / full, rtol=0, atol=1e-11)
    assert ((got > 0) == (expected > 1e-12 * full)).all()  # the same cells


# --------------------------------------------------------------------------- means


def test_constant_field_gives_the_constant():
    field = _field(5.0) * 0 + np.array([1.5, -2.0, 0.25, 7.0])
    polygons = [shapely.box(10.2, 20.3, 15.7, 25.1), DATELINE, SOUTH_CAP,
                shapely.Polygon([(0, 89), (120, 89.5), (240, 89), (0, 89)])]
    result = zonal(field, polygons, stat=["mean", "std", "count"])
    np.testing.assert_allclose(result.sel(zonal_statistics="mean"),
                               np.broadcast_to([1.5, -2.0, 0.25, 7.0], (4, 4)), rtol=1e-14)
    np.testing.assert_allclose(result.sel(zonal_statistics="std"), 0, atol=1e-7)
    assert (result.sel(zonal_statistics="count").values[:, 0] > 0).all()


def test_polygon_equal_to_one_cell_gives_that_cell():
    field = _field(2.0)
    cell = field.isel(lat=3, lon=100)  # lat 83, lon 21 (cell 82..84, 20..22)
    result = zonal(field, [shapely.box(20, 82, 22, 84)], stat=["mean", "std", "count"])
    np.testing.assert_allclose(result.sel(zonal_statistics="mean")[0], cell, rtol=1e-14)
    np.testing.assert_allclose(result.sel(zonal_statistics="std")[0], 0, atol=1e-15)
    assert result.sel(zonal_statistics="count")[0, 0] == 1
    assert result.area[0] == pytest.approx(float(_cell_areas(20, 22, 82, 84)), rel=1e-15)


def test_mean_and_std_equal_hand_computed_weighted_moments():
    # Two cells of the 2-degree grid at the equator: 1/4 of (0..2, 0..2) and all of (2..4).
    field = _field(2.0)
    result = zonal(field, [shapely.box(1, 1, 4, 2)], stat=["mean", "std"])
    a = field.sel(lat=1, lon=1).values
    b = field.sel(lat=1, lon=3).values
    w = np.array([float(_cell_areas(1, 2, 1, 2)), float(_cell_areas(2, 4, 1, 2))])
    mean = (w[0] * a + w[1] * b) / w.sum()
    std = np.sqrt((w[0] * (a - mean) ** 2 + w[1] * (b - mean) ** 2) / w.sum())
    np.testing.assert_allclose(result.sel(zonal_statistics="mean")[0], mean, rtol=1e-13)
    np.testing.assert_allclose(result.sel(zonal_statistics="std")[0], std, rtol=1e-12)


def test_dateline_polygon_in_any_form_and_grid_convention():
    field = _field(2.0)
    east, west = shapely.clip_by_rect(DATELINE, 170, -90, 180, 90), shapely.clip_by_rect(
        DATELINE, 180, -90, 200, 90)
    split = shapely.MultiPolygon([east, _shifted(west, -360)])
    minus = _shifted(DATELINE, -360)  # -189.7 .. -168.9
    reference = zonal(field, [DATELINE])
    for polygon in (split, minus):
        np.testing.assert_allclose(zonal(field, [polygon]), reference, rtol=0, atol=ATOL)
    np.testing.assert_allclose(zonal(_in_0_360(field), [DATELINE, split]),
                               np.repeat(reference.values, 2, axis=0), rtol=0, atol=ATOL)
    # Shifted: the polygon 36 degrees east over the field rolled 18 cells east.
    shifted = _shifted(DATELINE, 36)
    np.testing.assert_allclose(zonal(field.roll(lon=18, roll_coords=False), [shifted]),
                               reference, rtol=0, atol=ATOL)
    assert reference.area[0] == pytest.approx(_geodesic_area(DATELINE), rel=1e-6)


def test_polygon_around_a_pole_on_rotated_and_shifted_grids():
    field = _field(2.0)
    reference = zonal(field, [SOUTH_CAP])
    assert np.isfinite(reference).all()
    # Rotated 40 degrees about the axis (the seam now cuts it elsewhere) over the field
    # rolled 20 cells: the same cells with the same weights.
    rotated = _shifted(SOUTH_CAP, 40)
    np.testing.assert_allclose(zonal(field.roll(lon=20, roll_coords=False), [rotated]),
                               reference, rtol=0, atol=ATOL)
    np.testing.assert_allclose(zonal(_in_0_360(field), [SOUTH_CAP]), reference, rtol=0,
                               atol=ATOL)
    # The same ring drawn in a polar CRS (Antarctic polar stereographic), where it simply
    # encloses the pole: transformed, unwrapped and closed along the pole.
    ring = np.array(SOUTH_CAP.exterior.coords)[2:-1]
    x, y = pyproj.Transformer.from_crs(4326, 3031, always_xy=True).transform(*ring.T)
    polar = geopandas.GeoSeries([shapely.Polygon(np.column_stack([x, y]))], crs=3031)
    np.testing.assert_allclose(zonal(field, polar), reference, rtol=0, atol=ATOL)
    # Its area: the cap below -72 +- 3 degrees, against the geodesic area.
    assert reference.area[0] == pytest.approx(_geodesic_area(SOUTH_CAP), rel=1e-6)


@pytest.mark.parametrize("polygon", [
    shapely.box(10.2, 20.3, 15.7, 25.1),
    shapely.Polygon([(20.1, 60.3), (27.9, 61.0), (24.4, 68.8)]),
    shapely.Polygon([(10, 80), (40, 80), (40, 89.5), (10, 89.5)],
                    [[(20, 82), (30, 82), (25, 85), (20, 82)]]),  # with a hole
    DATELINE,
    SOUTH_CAP,
])
def test_weights_sum_to_the_spherical_area(polygon):
    result = zonal(_field(1.0, size=1), [polygon], stat="count")
    expected = _geodesic_area(polygon)
    assert result.area[0] == pytest.approx(expected, rel=1e-6)
    assert result.area[0] == pytest.approx(spherical_areas(np.array([polygon]))[0], rel=1e-12)


def test_nan_cells_left_out_and_polygons_off_a_regional_grid():
    field = _field(2.0).sel(lon=slice(0, 40))  # regional: 0 .. 40 E
    field[44, 1] = np.nan  # cell lat 1, lon 3
    result = zonal(field, [shapely.box(0, 0, 4, 2), shapely.box(100, 0, 102, 2),
                           shapely.box(-360, 0, -356, 2)], stat=["mean", "count"])
    np.testing.assert_allclose(result.sel(zonal_statistics="mean")[0], field[44, 0],
                               rtol=1e-14)
    assert result.sel(zonal_statistics="count")[:, 0].values.tolist() == [1, 0, 1]
    assert np.isnan(result.sel(zonal_statistics="mean")[1]).all()
    np.testing.assert_allclose(result.sel(zonal_statistics="mean")[2], field[44, 0],
                               rtol=1e-14)  # -360 .. -356 is 0 .. 4
    assert result.area[0] == pytest.approx(float(_cell_areas(0, 4, 0, 2)), rel=1e-15)


def test_band_first_and_descending_grids_and_threads_give_the_same_numbers():
    field = _field(3.0)
    polygons = [DATELINE, SOUTH_CAP, shapely.box(-10.5, 30.2, 20.1, 44.4)]
    reference = zonal(field, polygons, workers=1)
    variants = [field.transpose("embedding", "lat", "lon"), field.isel(lat=slice(None, None, -1)),
                field.chunk({"lat": 7, "lon": 11})]
    for variant in variants:
        np.testing.assert_allclose(zonal(variant, polygons), reference, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(zonal(field, polygons, workers=3), reference)


# --------------------------------------------------------------------------- output


def test_output_is_an_xvec_cube_joinable_with_the_table():
    table = geopandas.GeoDataFrame(
        {"name": ["a", "b"], "value": [1.0, 2.0]},
        geometry=[shapely.box(0, 0, 3, 3), shapely.box(10, 10, 12, 11)],
        index=pd_index(["k1", "k2"]), crs=4326)
    field = _field(1.0).assign_coords(embedding=["e0", "e1", "e2", "e3"])
    result = zonal(field, table)
    assert result.dims == ("geometry", "embedding") and result.dtype == np.float64
    assert result.xvec.geom_coords_indexed["geometry"].crs.to_epsg() == 4326
    assert list(result.key.values) == ["k1", "k2"]
    assert list(result.embedding.values) == ["e0", "e1", "e2", "e3"]
    frame = result.xvec.to_geodataframe(name="emb")  # xvec round trip
    assert len(frame) == 8 and frame.crs.to_epsg() == 4326
    joined = table.join(result.to_pandas().set_axis(table.index))
    assert list(joined.columns[-4:]) == ["e0", "e1", "e2", "e3"]
    from sklearn.linear_model import LinearRegression

    LinearRegression().fit(result, table["value"])  # scikit-learn takes it as it is
    count = zonal(field, table, stat="count")
    assert count.dims == ("geometry",) and count.dtype == np.int64
    assert count.values.tolist() == [9, 2]


def pd_index(labels):
    import pandas as pd

    return pd.Index(labels, name="key")


# --------------------------------------------------------------------------- CRSs


def test_geodataframe_in_another_crs_equals_its_lonlat_version():
    table = geopandas.GeoDataFrame(geometry=[
        shapely.Polygon([(2.1, 48.7), (2.6, 48.6), (2.5, 49.0), (2.2, 49.1)]),
        shapely.Polygon([(-74.3, 40.5), (-73.7, 40.5), (-73.7, 40.9)])], crs=4326)
    field = _field(0.25)
    lonlat = zonal(field, table)
    mercator = table.to_crs(3857)
    result = zonal(field, mercator)
    np.testing.assert_allclose(result, lonlat, rtol=0, atol=1e-9)  # vertices transformed
    assert result.xvec.geom_coords_indexed["geometry"].crs.to_epsg() == 3857
    np.testing.assert_allclose(zonal(field, list(mercator.geometry), crs=3857), result,
                               rtol=0, atol=ATOL)


def _utm_grid(values: np.ndarray) -> xr.DataArray:
    """10 km UTM 32N cells, 6 x 8, north-up, (y, x, embedding)."""
    x = 300_000 + 10_000.0 * (np.arange(8) + 0.5)
    y = 5_160_000 - 10_000.0 * (np.arange(6) + 0.5)
    grid = xr.DataArray(values, dims=("y", "x", "embedding"), coords={"y": y, "x": x})
    return grid.rio.write_crs("EPSG:32632")


def test_projected_grid():
    values = np.random.default_rng(3).normal(size=(6, 8, 3))
    grid = _utm_grid(values)
    cell = shapely.box(320_000, 5_130_000, 330_000, 5_140_000)  # row 2, column 2
    result = zonal(grid, [cell], crs=32632, stat=["mean", "count"])
    np.testing.assert_allclose(result.sel(zonal_statistics="mean")[0], values[2, 2],
                               rtol=1e-14)
    # Its area on the ellipsoid: the planar area over the areal scale of UTM there.
    transformer = pyproj.Transformer.from_crs(32632, 4326, always_xy=True)
    lonlat = shapely.transform(shapely.segmentize(cell, 100.0),
                               lambda xy: np.column_stack(transformer.transform(*xy.T)))
    ellipsoidal = abs(pyproj.Geod(ellps="WGS84").geometry_area_perimeter(lonlat)[0])
    assert result.area[0] == pytest.approx(ellipsoidal, rel=1e-5)
    # Constant field, polygon given in lon/lat across several cells.
    constant = _utm_grid(np.ones((6, 8, 3)) * [2.0, 3.0, 4.0])
    polygon = shapely.Polygon([(6.45, 46.5), (6.65, 46.45), (6.6, 46.62)])
    np.testing.assert_allclose(zonal(constant, [polygon])[0], [2, 3, 4], rtol=1e-14)


def test_coverage_weights_match_exactextract():
    """weights="coverage" is exactextract's own weighting (fraction of each cell covered,
    in lon/lat): the means agree to exactextract's float32 coverage fractions."""
    from exactextract import exact_extract

    field = _field(1.0, size=1).sel(lat=slice(80, 0), lon=slice(-30, 30))
    raster = field.isel(embedding=0).rename(lat="y", lon="x").rio.write_crs(4326)
    table = geopandas.GeoDataFrame(geometry=[
        shapely.Polygon([(-10.3, 20.2), (5.6, 25.1), (2.2, 40.7)]),
        shapely.Polygon([(0.1, 60.1), (20.7, 62.3), (15.3, 78.8), (1.1, 70.2)]),
        shapely.box(3, 3, 4, 4)], crs=4326)
    theirs = exact_extract(raster, table, ["mean"], output="pandas")["mean"].to_numpy()
    ours = zonal(field, table, weights="coverage")[:, 0].values
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    # With area weights, the high-latitude polygon's mean moves away from it.
    assert abs(zonal(field, table)[1, 0] - theirs[1]) > 1e-4


# --------------------------------------------------------------------------- lazy


class _CountingStore(zarr.storage.WrapperStore):
    """Records the keys of the data chunks read."""

    def __init__(self, store) -> None:
        super().__init__(store)
        self.chunk_reads: list[str] = []

    async def get(self, key, prototype, byte_range=None):
        if key.startswith("embeddings/c/"):
            self.chunk_reads.append(key)
        return await self._store.get(key, prototype, byte_range)


def test_lazy_zarr_grid_read_chunk_by_chunk(tmp_path):
    field = _field(10.0, size=8)  # 18 x 36 cells, chunks of 3 x 3: 72 chunks
    field.chunk({"lat": 3, "lon": 3, "embedding": -1}).to_dataset(name="embeddings").to_zarr(
        tmp_path / "grid.zarr", consolidated=False)
    store = _CountingStore(zarr.storage.LocalStore(tmp_path / "grid.zarr", read_only=True))
    lazy = xr.open_zarr(store, consolidated=False)["embeddings"]
    # Three polygons in chunk row 2 (lat 30 .. 0), chunk columns 6 and 7 (lon 0 .. 60), and
    # 500 copies of one of them: still each of the 2 chunks read once.
    polygons = [shapely.box(2, 2, 25, 25), shapely.box(35, 5, 55, 8)] + [
        shapely.box(5, 5, 15, 15)] * 500
    result = zonal(lazy, polygons)
    assert sorted(store.chunk_reads) == ["embeddings/c/2/6/0", "embeddings/c/2/7/0"]
    np.testing.assert_allclose(result, zonal(field, polygons), rtol=0, atol=ATOL)


def test_lazy_embed_computes_only_overlapped_chunks(golden_dir, monkeypatch):
    from xsatclip.model import LocationEncoder

    model = xsatclip.load_model(golden_dir / "satclip-tiny-l10.ckpt", device="cpu")
    computed = []
    encode_grid = LocationEncoder.encode_grid

    def counting(self, lon, lat, **kwargs):
        computed.append((float(lat[0]), float(lon[0])))
        return encode_grid(self, lon, lat, **kwargs)

    monkeypatch.setattr(LocationEncoder, "encode_grid", counting)
    emb = xsatclip.grid(10.0).satclip.embed(model=model, chunks=3)  # 72 chunks
    result = zonal(emb, [shapely.box(2, 2, 25, 25)])
    assert computed == [(25.0, 5.0)]  # one chunk: lat 30 .. 0, lon 0 .. 30
    assert result.attrs["model_name"] == "satclip-tiny-l10"  # provenance carried
    assert np.isfinite(result).all()


# --------------------------------------------------------------------------- errors


def test_errors_name_the_problem():
    field = _field(10.0)
    box = shapely.box(0, 0, 1, 1)
    with pytest.raises(NotAnEmbeddingGridError, match=r"no 'embedding' dim"):
        zonal(field.rename(embedding="band"), [box])
    with pytest.raises(NotAnEmbeddingGridError, match="no variable 'embeddings'"):
        zonal(xr.Dataset({"other": field}), [box])
    with pytest.raises(NotAnEmbeddingGridError, match=r"select a single value of \['time'\]"):
        zonal(field.expand_dims(time=2), [box])
    with pytest.raises(InvalidGeometryError, match="positions 1 are missing or empty"):
        zonal(field, [box, shapely.Polygon()])
    with pytest.raises(InvalidGeometryError, match="positions 0 are missing"):
        zonal(field, [None])
    with pytest.raises(InvalidGeometryError, match=r"positions 1 are invalid \(the first: "
                                                   r"Self-intersection"):
        zonal(field, [box, shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])])
    with pytest.raises(InvalidGeometryError, match="positions 0, 2 are LineString, Point: "
                                                   "zonal statistics need Polygon"):
        zonal(field, [shapely.LineString([(0, 0), (1, 1)]), box, shapely.Point(0, 0)])
    with pytest.raises(InvalidCoordinatesError, match="have no CRS"):
        zonal(field, geopandas.GeoSeries([box]))
    with pytest.raises(InvalidCoordinatesError, match=r"latitudes must be .* within \[-90, "
                                                      r"90\] degrees; found 5e\+06 .. 5.1e\+06"):
        zonal(field, [shapely.box(300_000, 5_000_000, 310_000, 5_100_000)])  # UTM, no crs=
    with pytest.raises(InvalidOptionError, match=r"stat='median': choose among \['mean', 'std'"):
        zonal(field, [box], stat="median")
    with pytest.raises(InvalidOptionError, match=r"weights='cells': choose one of \['area'"):
        zonal(field, [box], weights="cells")
    with pytest.raises(InvalidCoordinatesError, match="'lat' has 1 cell"):
        zonal(field.isel(lat=[0]), [box])


def test_missing_dependency_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "xvec", None)  # import xvec now raises ImportError
    with pytest.raises(MissingDependencyError,
                       match=r"needs the 'zonal' extra: pip install 'xsatclip\[zonal\]'"):
        zonal(_field(10.0), [shapely.box(0, 0, 1, 1)])
