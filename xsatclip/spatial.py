"""Finding the spatial coordinates of xarray objects, and lat/lon grid templates."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyproj
import xarray as xr

from .errors import InvalidCoordinatesError

LON_NAMES = ("lon", "longitude", "long", "nav_lon", "x_lon")
LAT_NAMES = ("lat", "latitude", "nav_lat", "y_lat")
X_NAMES = ("x", "easting", "projection_x_coordinate")
Y_NAMES = ("y", "northing", "projection_y_coordinate")
LON_UNITS = {"degrees_east", "degree_east", "degrees_e", "degree_e", "degreee"}
LAT_UNITS = {"degrees_north", "degree_north", "degrees_n", "degree_n", "degreen"}
WGS84 = pyproj.CRS.from_epsg(4326)


class MissingCRSError(InvalidCoordinatesError):
    """Projected x/y coordinates were found, but no CRS says what they mean."""


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


def find_crs(obj: xr.Dataset | xr.DataArray) -> pyproj.CRS | None:
    """CRS of ``obj`` from rioxarray (``spatial_ref``, CF ``grid_mapping``, ``crs`` attr)."""
    import rioxarray  # noqa: F401  (registers .rio)

    try:
        crs = obj.rio.crs
    except Exception:  # rioxarray raises for objects it cannot interpret
        crs = None
    return pyproj.CRS.from_user_input(crs) if crs is not None else None


def find_spatial_coords(obj: xr.Dataset | xr.DataArray) -> SpatialCoords:
    """Locate lat/lon (or projected x/y + CRS) coordinates of ``obj``, or raise."""
    coords = obj.coords
    lat = _match(coords, LAT_NAMES, LAT_UNITS, "latitude")
    lon = _match(coords, LON_NAMES, LON_UNITS, "longitude")
    if lat is not None and lon is not None:
        lat_c, lon_c = coords[lat], coords[lon]
        if lat_c.ndim == 1 and lon_c.ndim == 1 and lat_c.dims != lon_c.dims:
            return SpatialCoords("rectilinear", lat, lon, (lat_c.dims[0], lon_c.dims[0]))
        if lat_c.ndim == 2 and lat_c.dims == lon_c.dims:
            return SpatialCoords("curvilinear", lat, lon, lat_c.dims)
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
        return SpatialCoords("projected", y, x, (coords[y].dims[0], coords[x].dims[0]), crs)
    found = {name: coords[name].dims for name in coords}
    raise InvalidCoordinatesError(
        f"no spatial coordinates found: looked for latitude/longitude (CF standard_name or "
        f"units, or names {LAT_NAMES}/{LON_NAMES}) and projected x/y with a CRS; "
        f"found coordinates {found} on dims {dict(obj.sizes)}"
    )


def grid(resolution: float, *, bbox=None, chunks=None) -> xr.Dataset:
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
        raise ValueError(f"resolution must be positive degrees, got {resolution!r}")
    west, south, east, north = (-180.0, -90.0, 180.0, 90.0) if bbox is None else map(float, bbox)
    if not (-90 <= south < north <= 90):
        raise InvalidCoordinatesError(f"bbox south/north must satisfy -90 <= south < north <= 90, "
                                      f"got {south}, {north}")
    if not west < east:
        raise InvalidCoordinatesError(f"bbox west must be < east (use east > 180 to cross the "
                                      f"dateline), got {west}, {east}")
    sizes = []
    for span, axis in ((north - south, "latitude"), (east - west, "longitude")):
        n = round(span / resolution)
        if n < 1 or abs(n * resolution - span) > 1e-6 * resolution:
            raise ValueError(f"the {axis} span {span} of the bbox is not a multiple of the "
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


def cell_size(coord: np.ndarray) -> float:
    """Cell size of evenly spaced centres (inf for a single centre)."""
    return float(np.median(np.abs(np.diff(coord)))) if coord.size > 1 else np.inf


def axis_position(coord: np.ndarray, x: np.ndarray, *, periodic: bool, wraps: bool):
    """Interpolation along one monotonic axis of cell centres ``coord``.

    Returns ``i0, i1, w, inside``: the neighbouring centres of each point ``x``, the weight
    of ``i1``, and whether the point lies on the grid. ``periodic`` axes (global longitude)
    wrap at 360; ``wraps`` axes (regional longitude) take ``x`` modulo 360 into the grid's
    span; others are plain. Non-periodic axes hold values constant between the outermost
    centre and the edge, half a cell further; beyond it a point is outside.
    """
    n = coord.size
    ascending = n < 2 or coord[-1] > coord[0]
    c = coord if ascending else coord[::-1]
    half = cell_size(c) / 2
    inside = np.isfinite(x)
    x = np.where(inside, x, c[0])
    if periodic:
        x = (x - c[0]) % 360 + c[0]
        i0 = np.searchsorted(c, x, side="right") - 1
        i1 = (i0 + 1) % n
        right = np.where(i0 + 1 < n, c[np.minimum(i0 + 1, n - 1)], c[0] + 360)
        w = (x - c[i0]) / (right - c[i0])
    else:
        if wraps:
            west = c[0] - min(half, 180.0)
            x = (x - west) % 360 + west
        tolerance = 1e-9 * max(1.0, abs(c[0]), abs(c[-1]))
        inside &= (x >= c[0] - half - tolerance) & (x <= c[-1] + half + tolerance)
        x = np.clip(x, c[0], c[-1])
        if n == 1:
            zeros = np.zeros(x.shape, int)
            return zeros, zeros, np.zeros(x.shape), inside
        i0 = np.clip(np.searchsorted(c, x, side="right") - 1, 0, n - 2)
        i1 = i0 + 1
        w = (x - c[i0]) / (c[i1] - c[i0])
    if not ascending:
        i0, i1 = n - 1 - i0, n - 1 - i1
    return i0, i1, w, inside


def is_global_longitude(coord: np.ndarray) -> bool:
    """Whether evenly spaced longitude centres ``coord`` cover all 360 degrees."""
    return coord.size > 1 and abs(coord.size * cell_size(coord) - 360) < 1e-6


def grid_position(obj, spatial: SpatialCoords, lon: np.ndarray, lat: np.ndarray):
    """Where points (degrees) fall on the rectilinear or projected grid of ``obj``.

    Returns ``y0, y1, wy, x0, x1, wx, inside`` (N,) each: the neighbouring cell centres along
    each axis and the weights of ``y1``/``x1`` (see :func:`axis_position`), and whether the
    point lies on the grid. Projected grids get the points transformed with pyproj; global
    lat/lon grids wrap at the dateline, regional ones take longitudes modulo 360.
    """
    ycoord = np.asarray(obj[spatial.y].values, np.float64)
    xcoord = np.asarray(obj[spatial.x].values, np.float64)
    if spatial.kind == "projected":
        to_grid = pyproj.Transformer.from_crs(WGS84, spatial.crs, always_xy=True)
        with np.errstate(invalid="ignore"):
            px, py = (np.asarray(v, np.float64) for v in to_grid.transform(lon, lat))
        periodic = wraps = False
    else:
        px, py = lon, lat
        periodic, wraps = is_global_longitude(xcoord), True
    y0, y1, wy, inside_y = axis_position(ycoord, py, periodic=False, wraps=False)
    x0, x1, wx, inside_x = axis_position(xcoord, px, periodic=periodic, wraps=wraps)
    return y0, y1, wy, x0, x1, wx, inside_y & inside_x


def nearest_cell(obj, spatial: SpatialCoords, lon: np.ndarray, lat: np.ndarray):
    """Row and column (N,) of the cell centre nearest each point along each axis (a tie goes
    to the first of the two), and whether the point lies on the grid (:func:`grid_position`)."""
    y0, y1, wy, x0, x1, wx, inside = grid_position(obj, spatial, lon, lat)
    return np.where(wy > 0.5, y1, y0), np.where(wx > 0.5, x1, x0), inside


def uniform_on_sphere(rng: np.random.Generator, n: int,
                      bounds: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0)
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points (lon, lat degrees, (n,) each) uniform on the sphere within ``bounds``
    (west, south, east, north; east may exceed 180, longitudes are not wrapped): longitude
    uniform, then the sine of latitude uniform."""
    west, south, east, north = bounds
    lon = rng.uniform(west, east, n)
    lat = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(south)),
                                           np.sin(np.radians(north)), n)))
    return lon, lat
