"""xarray/Dask glue: where an object's locations are (:mod:`.coords`), geometry of grids and
points (:mod:`.geometry`), the lazy embedding graph (:mod:`.embed`) and what its Dask tasks
run (:mod:`.tasks`).

:mod:`.embed` (torch) loads on first use, so :mod:`.coords` and :mod:`.geometry` cost no torch
import."""

from typing import TYPE_CHECKING

from ..lazy import lazy_exports
from .coords import (
    WGS84,
    SpatialCoords,
    find_crs,
    find_spatial_coords,
    grid,
    with_grid_mapping,
)

if TYPE_CHECKING:
    from .embed import EmbeddingPlan, build_embedding, embed, plan_embedding

lazy_exports(__name__, {name: ".embed" for name in (
    "EmbeddingPlan", "build_embedding", "embed", "plan_embedding")})

__all__ = [
    "WGS84",
    "EmbeddingPlan",
    "SpatialCoords",
    "build_embedding",
    "embed",
    "find_crs",
    "find_spatial_coords",
    "grid",
    "plan_embedding",
    "with_grid_mapping",
]
