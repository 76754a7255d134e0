"""The embedding grids geolocation works on: the embedding array, its spatial dims, and cell
centres in lon/lat (xarray glue over :mod:`xsatclip.raster`)."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pyproj
import xarray as xr

from ..errors import GeolocationError
from ..raster.coords import WGS84, SpatialCoords, find_spatial_coords
from ..sphere import wrap_longitude

EMBEDDING_DIM = "embedding"


def embedding_array(embeddings: xr.DataArray | xr.Dataset) -> xr.DataArray:
    """The DataArray with an ``embedding`` dim: ``embeddings`` itself, or the one data
    variable of a Dataset (such as :func:`~xsatclip.open_cube`'s) that has that dim, with
    the Dataset's attrs merged under its own."""
    if isinstance(embeddings, xr.Dataset):
        names = [name for name, var in embeddings.data_vars.items()
                 if EMBEDDING_DIM in var.dims]
        if len(names) != 1:
            raise GeolocationError(
                f"the Dataset must hold exactly one data variable with an {EMBEDDING_DIM!r} "
                f"dim, found {names or 'none'} among {list(embeddings.data_vars)}; pass the "
                "DataArray")
        variable = embeddings[names[0]]
        return variable.assign_attrs({**embeddings.attrs, **variable.attrs})
    if not isinstance(embeddings, xr.DataArray):
        raise GeolocationError(f"embeddings must be an xarray DataArray or Dataset, got "
                               f"{type(embeddings).__name__}")
    if EMBEDDING_DIM not in embeddings.dims:
        raise GeolocationError(f"embeddings has dims {embeddings.dims}, no {EMBEDDING_DIM!r} "
                               "dim")
    return embeddings


def grid_dims(obj: xr.DataArray, allowed_extra: int) -> tuple[SpatialCoords, list[Hashable]]:
    """The spatial coords of a map ``obj`` and its other dims (besides ``embedding``): at
    most ``allowed_extra`` of them, or raise naming the dims."""
    spatial = find_spatial_coords(obj)
    extra = [d for d in obj.dims if d not in (*spatial.dims, EMBEDDING_DIM)]
    if len(extra) > allowed_extra:
        raise GeolocationError(
            f"{obj.name or 'the map'} has dims {obj.dims}: expected the spatial dims "
            f"{spatial.dims}{' and one query dim' if allowed_extra else ''}"
            f"{' (and embedding)' if EMBEDDING_DIM in obj.dims else ''}; found {extra} besides")
    return spatial, extra


def cell_lonlat(obj: xr.DataArray, spatial: SpatialCoords, rows: np.ndarray,
                cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lon (wrapped into [-180, 180)) and lat in degrees of the centres of cells
    (``rows``, ``cols``) along ``spatial.dims``; projected centres go through pyproj."""
    if spatial.kind == "curvilinear":
        lat2d = np.asarray(obj[spatial.y].transpose(*spatial.dims).values, np.float64)
        lon2d = np.asarray(obj[spatial.x].transpose(*spatial.dims).values, np.float64)
        return wrap_longitude(lon2d[rows, cols]), lat2d[rows, cols]
    y = np.asarray(obj[spatial.y].values, np.float64)[rows]
    x = np.asarray(obj[spatial.x].values, np.float64)[cols]
    if spatial.kind == "projected":
        to_lonlat = pyproj.Transformer.from_crs(spatial.crs, WGS84, always_xy=True)
        x, y = (np.asarray(v, np.float64) for v in to_lonlat.transform(x, y))
    return wrap_longitude(x), y
