"""Polygons for zonal statistics: checked, then expressed in lon/lat or in a grid's CRS.

Convention. In a geographic CRS (EPSG:4326 and the like) an edge is the straight line
between its vertices in lon/lat, as GIS tools draw and clip it; longitudes may exceed 180
(a polygon from 170 to 190 crosses the dateline), and a polygon may reach a pole along
edges at latitude +-90 (as Natural Earth draws Antarctica). Polygons in any other CRS are
transformed vertex by vertex (as ``GeoDataFrame.to_crs`` does; densify long edges with
``shapely.segmentize`` first if their curvature matters); a ring that the transformation
wraps around the globe (one drawn around a pole in a polar CRS, say) is closed along the
pole it encloses, and one that crosses the dateline is kept in one piece.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyproj
import shapely

from ..errors import InvalidCoordinatesError, InvalidGeometryError
from ..raster.coords import WGS84

POLYGONAL = ("Polygon", "MultiPolygon")
SHOWN = 5  # offending geometries named in an error message



@dataclasses.dataclass(frozen=True)
class Polygons:
    """Checked input polygons: ``geometries`` (n,) shapely objects as given, their ``crs``,
    and the index of the GeoDataFrame or GeoSeries they came from (None for a list)."""

    geometries: np.ndarray
    crs: pyproj.CRS
    index: pd.Index | None = None


def _positions(mask: np.ndarray) -> str:
    where = np.flatnonzero(mask)
    shown = ", ".join(map(str, where[:SHOWN]))
    return shown + (f" and {where.size - SHOWN} more" if where.size > SHOWN else "")


def read_polygons(geometries, crs=None) -> Polygons:
    """Check ``geometries`` (a GeoDataFrame, a GeoSeries, or a sequence of shapely
    geometries in ``crs``, default EPSG:4326) and return them as :class:`Polygons`."""
    import geopandas

    index = None
    if isinstance(geometries, (geopandas.GeoDataFrame, geopandas.GeoSeries)):
        if crs is not None:
            raise InvalidCoordinatesError("crs= is for plain geometries; a GeoDataFrame or "
                                          "GeoSeries carries its own (set it with .set_crs)")
        if geometries.crs is None:
            raise InvalidCoordinatesError("the geometries have no CRS; set one with "
                                          ".set_crs(...) (EPSG:4326 for lon/lat degrees)")
        crs, index = geometries.crs, geometries.index
        geometries = geometries.geometry if hasattr(geometries, "geometry") else geometries
    values = np.asarray(geometries, dtype=object).ravel()
    if values.size == 0:
        raise InvalidGeometryError("no geometries given")
    missing = ~np.array([isinstance(g, shapely.Geometry) for g in values])
    missing[~missing] = shapely.is_empty(values[~missing].astype(object))
    if missing.any():
        raise InvalidGeometryError(f"geometries at positions {_positions(missing)} are missing "
                                   "or empty; drop them first")
    values = values.astype(object)
    kinds = shapely.get_type_id(values)
    wrong = ~np.isin(kinds, (3, 6))  # Polygon, MultiPolygon
    if wrong.any():
        names = sorted({g.geom_type for g in values[wrong]})
        raise InvalidGeometryError(
            f"geometries at positions {_positions(wrong)} are {', '.join(names)}: zonal "
            "statistics need Polygon or MultiPolygon geometries")
    invalid = ~shapely.is_valid(values)
    if invalid.any():
        reason = shapely.is_valid_reason(values[np.flatnonzero(invalid)[0]])
        raise InvalidGeometryError(
            f"geometries at positions {_positions(invalid)} are invalid (the first: {reason}); "
            "repair them with shapely.make_valid or GeoSeries.make_valid()")
    crs = WGS84 if crs is None else pyproj.CRS.from_user_input(crs)
    return Polygons(values, crs, index)


def _transform(geometries: np.ndarray, source: pyproj.CRS, target: pyproj.CRS) -> np.ndarray:
    """Vertex-by-vertex transformation of shapely geometries (x, y order)."""
    if source.equals(target):
        return geometries
    transformer = pyproj.Transformer.from_crs(source, target, always_xy=True)
    return shapely.transform(geometries, lambda xy: np.column_stack(
        transformer.transform(xy[:, 0], xy[:, 1])))


def in_crs(polygons: Polygons, crs: pyproj.CRS) -> np.ndarray:
    """The polygons transformed (vertex by vertex) into the projected ``crs`` of a grid."""
    out = _transform(polygons.geometries, polygons.crs, crs)
    if not np.isfinite(shapely.get_coordinates(out)).all():
        raise InvalidCoordinatesError(f"some polygons lie outside the domain of the grid's CRS "
                                      f"({crs.name}): their transformed vertices are not finite")
    return out


def in_lonlat(polygons: Polygons) -> np.ndarray:
    """The polygons in lon/lat degrees (EPSG:4326), with edges straight in lon/lat."""
    if polygons.crs.is_geographic:
        out = _transform(polygons.geometries, polygons.crs, WGS84)
    else:
        out = np.array([_unwrapped(g, polygons.crs) for g in polygons.geometries], dtype=object)
    lat = shapely.get_coordinates(out)[:, 1]
    if not (np.isfinite(lat).all() and np.abs(lat).max() <= 90):
        raise InvalidCoordinatesError(
            "polygon latitudes must be finite and within [-90, 90] degrees; found "
            f"{np.nanmin(lat):g} .. {np.nanmax(lat):g} (is the CRS {polygons.crs.name} right?)")
    span = shapely.bounds(shapely.get_parts(out))
    if (span[:, 2] - span[:, 0] > 360 + 1e-9).any():
        raise InvalidCoordinatesError("a polygon spans more than 360 degrees of longitude")
    invalid = ~shapely.is_valid(out)
    if invalid.any():  # a transformation may fold an edge
        out = out.copy()
        out[invalid] = shapely.make_valid(out[invalid])
    return out


def _unwrapped(geometry, crs: pyproj.CRS):
    """A projected (Multi)Polygon in lon/lat: each ring continuous in longitude (no jump
    at the dateline), holes beside their shell, rings around a pole closed along it."""
    to_lonlat = pyproj.Transformer.from_crs(crs, WGS84, always_xy=True)
    to_source = pyproj.Transformer.from_crs(WGS84, crs, always_xy=True)
    poles = {}  # latitude -> point of the pole in the source CRS (or None)
    for lat in (90.0, -90.0):
        x, y = to_source.transform(0.0, lat)
        poles[lat] = shapely.Point(x, y) if np.isfinite([x, y]).all() else None

    def ring_lonlat(ring, polygon):
        xy = np.asarray(ring.coords)
        lon, lat = to_lonlat.transform(xy[:, 0], xy[:, 1])
        if not np.isfinite([lon, lat]).all():
            raise InvalidCoordinatesError(f"a polygon's vertices do not transform from "
                                          f"{crs.name} to lon/lat")
        lon = np.unwrap(lon, period=360.0)
        turns = round((lon[-1] - lon[0]) / 360)
        if turns:  # the ring winds around a pole: close it along the pole it encloses
            enclosed = [p for p, point in poles.items()
                        if point is not None and polygon.contains(point)]
            if len(enclosed) != 1:
                raise InvalidGeometryError("a polygon ring winds around the globe but its "
                                           "polygon holds no pole in its CRS")
            lon = np.r_[lon, lon[-1], lon[0], lon[0]]
            lat = np.r_[lat, enclosed[0], enclosed[0], lat[0]]
        return np.column_stack([lon, lat])

    parts = []
    for part in shapely.get_parts(geometry):
        shell = ring_lonlat(part.exterior, part)
        centre = (shell[:, 0].min() + shell[:, 0].max()) / 2
        holes = []
        for interior in part.interiors:
            hole = ring_lonlat(interior, shapely.Polygon(interior))
            hole[:, 0] -= 360 * np.round(((hole[:, 0].min() + hole[:, 0].max()) / 2 - centre)
                                         / 360)
            holes.append(hole)
        parts.append(shapely.Polygon(shell, holes))
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
