"""Finding the spatial coordinates of xarray objects (lat/lon or projected x/y with a CRS),
and lat/lon grid templates."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from typing import cast

import numpy as np
import pyproj
import xarray as xr

from ..errors import InvalidCoordinatesError, InvalidOptionError, MissingCRSError

LON_NAMES = ("lon", "longitude", "long", "nav_lon", "x_lon")
LAT_NAMES = ("lat", "latitude", "nav_lat", "y_lat")
X_NAMES = ("x", "easting", "projection_x_coordinate")
Y_NAMES = ("y", "northing", "projection_y_coordinate")
LON_UNITS = {"degrees_east", "degree_east", "degrees_e", "degree_e", "degreee"}
LAT_UNITS = {"degrees_north", "degree_north", "degrees_n", "degree_n", "degreen"}
WGS84 = pyproj.CRS.from_epsg(4326)
EMBEDDING_DIM = "embedding"  # the embedding dim of every grid, band-first
VARIABLE = "embeddings"  # the name of every embedding grid (a name no dim has)
MAX_AXIS_CELLS = 2**22  # cells along a grid axis (about 0.0001 degree over the globe)


@dataclasses.dataclass(frozen=True)
class SpatialCoords:
    """Where the locations of an xarray object are.

    ``kind`` is ``"rectilinear"`` (1-D lat/lon dimension coordinates), ``"curvilinear"``
    (2-D lat/lon auxiliary coordinates) or ``"projected"`` (1-D x/y with a CRS). ``y`` and
    ``x`` name the coordinates (latitude-like first); ``dims`` are the output's spatial dims,
    north-south first.
    """

    kind: str
    y: str
    x: str
    dims: tuple[str, str]
    crs: pyproj.CRS | None = None


def _match(coords, names, units, standard_name):
    """Name of the first coordinate matching CF attributes, then the usual names."""
    for name, coord in coords.items():
        attrs = coord.attrs
        if attrs.get("standard_name") == standard_name:
            return name
        if str(attrs.get("units", "")).lower().replace(" ", "_") in units:
            return name
    lowered = {str(name).lower(): name for name in coords}
    return next((lowered[n] for n in names if n in lowered), None)


def _dims(y: Hashable, x: Hashable) -> tuple[str, str]:
    """The spatial dims (north-south first) as the strings xsatclip indexes with."""
    return cast(tuple[str, str], (y, x))


def find_crs(obj: xr.Dataset | xr.DataArray) -> pyproj.CRS | None:
    """CRS of ``obj`` from rioxarray (``spatial_ref``, CF ``grid_mapping``, ``crs`` attr)."""
    import rioxarray  # noqa: F401  (registers .rio)

    try:
        crs = obj.rio.crs
    except Exception:  # rioxarray raises for objects it cannot interpret
        crs = None
    return pyproj.CRS.from_user_input(crs) if crs is not None else None


def with_grid_mapping(obj: xr.DataArray, name: str = "spatial_ref") -> xr.DataArray:
    """``obj`` with the CF attribute ``grid_mapping = name`` in its attrs (rioxarray keeps it
    in ``encoding``) when it has that coordinate.

    In attrs, xarray still lists the coordinate in the variable's ``coordinates`` attribute
    when writing, so Zarr and netCDF files carry both and reopen with ``name`` as a
    coordinate (in ``encoding`` it is written as ``grid_mapping`` only, and comes back as a
    data variable that the DataArray loses)."""
    if name not in obj.coords:
        return obj
    obj = obj.copy(deep=False)
    obj.encoding.pop("grid_mapping", None)
    obj.attrs["grid_mapping"] = name
    return obj


def find_spatial_coords(obj: xr.Dataset | xr.DataArray) -> SpatialCoords:
    """Locate lat/lon (or projected x/y + CRS) coordinates of ``obj``, or raise."""
    coords = obj.coords
    lat = _match(coords, LAT_NAMES, LAT_UNITS, "latitude")
    lon = _match(coords, LON_NAMES, LON_UNITS, "longitude")
    if lat is not None and lon is not None:
        lat_c, lon_c = coords[lat], coords[lon]
        if lat_c.ndim == 1 and lon_c.ndim == 1 and lat_c.dims != lon_c.dims:
            return SpatialCoords("rectilinear", lat, lon, _dims(lat_c.dims[0], lon_c.dims[0]))
        if lat_c.ndim == 2 and lat_c.dims == lon_c.dims:
            return SpatialCoords("curvilinear", lat, lon, _dims(*lat_c.dims))
        raise InvalidCoordinatesError(
            f"latitude {lat!r} {lat_c.dims} and longitude {lon!r} {lon_c.dims} must be two "
            "1-D coordinates on different dims or two 2-D coordinates on the same dims"
        )
    y = _match(coords, Y_NAMES, set(), "projection_y_coordinate")
    x = _match(coords, X_NAMES, set(), "projection_x_coordinate")
    if y is not None and x is not None and coords[y].ndim == 1 and coords[x].ndim == 1:
        crs = find_crs(obj)
        if crs is None:
            raise MissingCRSError(
                f"found projected coordinates {y!r}/{x!r} but no CRS; set one with "
                "obj.rio.write_crs(...) or a CF grid_mapping variable"
            )
        return SpatialCoords("projected", y, x, _dims(coords[y].dims[0], coords[x].dims[0]),
                             crs)
    found = {name: coords[name].dims for name in coords}
    raise InvalidCoordinatesError(
        f"no spatial coordinates found: looked for latitude/longitude (CF standard_name or "
        f"units, or names {LAT_NAMES}/{LON_NAMES}) and projected x/y with a CRS; "
        f"found coordinates {found} on dims {dict(obj.sizes)}"
    )


def grid(resolution: float, *, bbox: tuple[float, float, float, float] | None = None,
         chunks: int | dict[str, int] | None = None) -> xr.Dataset:
    """A lat/lon template of cell centres, north-up, CF-annotated, EPSG:4326.

    Parameters
    ----------
    resolution : float
        Cell size in degrees.
    bbox : (west, south, east, north) in degrees, optional
        Default: the globe. ``east`` may exceed 180 to cross the dateline.
    chunks : int or dict, optional
        Preferred chunk sizes for ``lat``/``lon``, recorded in ``encoding["preferred_chunks"]``
        and used by ``.satclip.embed`` and ``precompute``.

    Returns
    -------
    Dataset with coordinates ``lat`` (descending) and ``lon`` (ascending) and ``spatial_ref``.
    """
    import rioxarray  # noqa: F401

    if not resolution > 0:
        raise InvalidOptionError(f"resolution must be positive degrees, got {resolution!r}")
    west, south, east, north = (-180.0, -90.0, 180.0, 90.0) if bbox is None else map(float, bbox)
    if not (-90 <= south < north <= 90):
        raise InvalidCoordinatesError(f"bbox south/north must satisfy -90 <= south < north <= 90, "
                                      f"got {south}, {north}")
    if not west < east:
        raise InvalidCoordinatesError(f"bbox west must be < east (use east > 180 to cross the "
                                      f"dateline), got {west}, {east}")
    if east - west > 360.0:
        raise InvalidCoordinatesError(f"bbox spans {east - west:g} degrees of longitude, more "
                                      f"than the globe's 360 (west {west}, east {east})")
    sizes = []
    for span, axis in ((north - south, "latitude"), (east - west, "longitude")):
        n = round(span / resolution)
        if n > MAX_AXIS_CELLS:
            raise InvalidOptionError(f"resolution={resolution!r} gives {n:,} cells of "
                                     f"{axis}, more than {MAX_AXIS_CELLS:,}")
        if n < 1 or abs(n * resolution - span) > 1e-6 * resolution:
            raise InvalidOptionError(f"the {axis} span {span} of the bbox is not a multiple of the "
                             f"resolution {resolution}")
        sizes.append(n)
    lat = north - resolution * (np.arange(sizes[0]) + 0.5)
    lon = west + resolution * (np.arange(sizes[1]) + 0.5)
    ds = xr.Dataset(coords={
        "lat": ("lat", lat, {"standard_name": "latitude", "long_name": "latitude",
                             "units": "degrees_north", "axis": "Y"}),
        "lon": ("lon", lon, {"standard_name": "longitude", "long_name": "longitude",
                             "units": "degrees_east", "axis": "X"}),
    })
    ds = ds.rio.write_crs(WGS84)
    ds.attrs["xsatclip_grid"] = (f"resolution={resolution:g} bbox=({west:g}, {south:g}, "
                                 f"{east:g}, {north:g}) cell centres")
    if chunks is not None:
        if isinstance(chunks, int):
            chunks = {"lat": chunks, "lon": chunks}
        ds.encoding["preferred_chunks"] = dict(chunks)
    return ds
