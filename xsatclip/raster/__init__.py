"""xarray/Dask glue: where an object's locations are (:mod:`.coords`), geometry of grids and
points (:mod:`.geometry`), the lazy embedding graph (:mod:`.embed`) and what its Dask tasks
run (:mod:`.tasks`)."""

from .coords import (
    WGS84,
    SpatialCoords,
    find_crs,
    find_spatial_coords,
    grid,
    with_grid_mapping,
)
from .embed import EmbeddingPlan, build_embedding, embed, plan_embedding

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
