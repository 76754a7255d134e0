"""How exact are the overlap weights of common zonal-statistics libraries on lat/lon grids?

    python benchmarks/zonal_exactness.py [--resolution DEG]

For one irregular polygon (about 2.4 degrees across) placed at latitudes from the equator to
the pole, on a lat/lon grid of ``--resolution`` degrees (default 0.25), each method's cell
weights are compared with xsatclip's (the exact overlap area on the sphere, edges straight
in lon/lat; checked here against the area of the densified polygon from pyproj's geodesic
area on the same sphere):

* ``xsatclip``: ``xsatclip.areas`` (GEOS cuts to blocks, then each cell's share from the
  polygon's edges by Green's theorem, closed forms);
* ``exactextract area``: exactextract's coverage fractions times its spherical cell areas
  (``coverage(coverage_weight=area_spherical_m2)``), its most exact weighting. Its cells
  are those of a sphere of radius 6378137 m (the WGS84 semi-major axis) held in float32;
  its weights are rescaled here to xsatclip's sphere (the authalic radius) before comparing;
* ``exactextract fraction``: its default ``mean`` weights (the fraction of each cell
  covered, cell areas ignored), which xvec's ``zonal_stats(method="exactextract")`` uses;
* ``regionmask``: ``mask_3D_frac_approx`` (fraction from 10 x 10 subsamples per cell) times
  the exact cell area, as its documentation suggests for area means;
* ``cell centres``: cells whose centre lies inside, weighted by cell area (xvec's
  ``method="rasterize"`` and most rasterizers, with cos-latitude weights).

Columns: the relative error of the summed weights against the polygon's area, and the
error (degrees) of the weighted mean of the cells' centre latitudes against xsatclip's.
"""

from __future__ import annotations

import argparse

import numpy as np
import pyproj
import shapely
import xarray as xr

from xsatclip.areas.overlap import GridCells, block_weights, spherical_areas
from xsatclip.areas.spherical import EARTH_RADIUS_M, cell_areas

LATITUDES = (0.0, 45.0, 70.0, 80.0, 85.0, 88.5)
EXACTEXTRACT_RADIUS_M = 6378137.0
SHAPE = [(-1.1, -0.9), (1.3, -1.2), (0.9, 0.4), (1.2, 1.1), (-0.8, 1.0), (-1.1, -0.9)]


def polygon_at(lat: float):
    """The test pentagon centred at (20.13 E, lat), shapes squeezed to stay below 90."""
    xy = np.array(SHAPE) + np.array([20.13, lat + 0.07])
    xy[:, 1] = np.minimum(xy[:, 1], 89.9)
    return shapely.Polygon(xy)


def regional_grid(polygon, resolution: float) -> GridCells:
    west, south, east, north = polygon.bounds
    west, east = np.floor(west) - 1, np.ceil(east) + 1
    south, north = max(np.floor(south) - 1, -90), min(np.ceil(north) + 1, 90)
    lat = np.arange(south + resolution / 2, north, resolution)
    lon = np.arange(west + resolution / 2, east, resolution)
    return GridCells.from_centres(lat, lon, None, ("lat", "lon")), lat, lon


def xsatclip_weights(polygon, grid) -> np.ndarray:
    ny, nx = grid.shape
    _, row, col, w = block_weights(np.array([polygon]), np.zeros(1, int), grid, (0, ny),
                                   (0, nx), "area")
    out = np.zeros((ny, nx))
    out[row, col] = w
    return out


def exactextract_weights(polygon, lat, lon, op: str) -> np.ndarray:
    import geopandas
    import rioxarray  # noqa: F401
    from exactextract import exact_extract

    raster = xr.DataArray(np.zeros((lat.size, lon.size)), dims=("y", "x"),
                          coords={"y": lat[::-1], "x": lon}).rio.write_crs(4326)
    frame = geopandas.GeoDataFrame(geometry=[polygon], crs=4326)
    record = exact_extract(raster, frame, ["cell_id", op], output="pandas").iloc[0]
    out = np.zeros(lat.size * lon.size)
    out[np.asarray(record["cell_id"], int)] = np.asarray(record.iloc[1], np.float64)
    if "area_spherical" in op:
        out *= (EARTH_RADIUS_M / EXACTEXTRACT_RADIUS_M) ** 2
    return out.reshape(lat.size, lon.size)[::-1]  # back to ascending latitude


def regionmask_weights(polygon, lat, lon, areas) -> np.ndarray:
    import regionmask

    fraction = regionmask.Regions([polygon]).mask_3D_frac_approx(lon, lat)
    return np.nan_to_num(fraction.isel(region=0).values) * areas


def centre_weights(polygon, lat, lon, areas) -> np.ndarray:
    inside = shapely.contains_xy(polygon, *np.meshgrid(lon, lat))
    return inside * areas


def geodesic_area(polygon) -> float:
    """pyproj's geodesic area of the polygon densified to 0.001 degree (edges then follow
    lon/lat lines closely), on the same sphere."""
    dense = shapely.segmentize(polygon, 0.001)
    return abs(pyproj.Geod(a=EARTH_RADIUS_M, b=EARTH_RADIUS_M).geometry_area_perimeter(dense)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=float, default=0.25)
    args = parser.parse_args()
    print(f"grid {args.resolution} degrees; polygon about 2.4 x 2.3 degrees; float64\n")
    print("| centre latitude | method | summed weights vs polygon area | "
          "mean latitude error (deg) |")
    print("| ---: | --- | ---: | ---: |")
    for lat0 in LATITUDES:
        polygon = polygon_at(lat0)
        grid, lat, lon = regional_grid(polygon, args.resolution)
        ye, xe = grid.y_edges, grid.x_edges
        areas = cell_areas(xe[None, :-1], xe[None, 1:], ye[:-1, None], ye[1:, None])
        exact = float(spherical_areas(np.array([polygon]))[0])
        reference = xsatclip_weights(polygon, grid)
        centre_lat = np.broadcast_to(lat[:, None], reference.shape)
        truth = np.average(centre_lat, weights=reference)
        methods = {
            "xsatclip": reference,
            "exactextract area": exactextract_weights(
                polygon, lat, lon, "coverage(coverage_weight=area_spherical_m2)"),
            "exactextract fraction": exactextract_weights(polygon, lat, lon, "coverage"),
            "regionmask": regionmask_weights(polygon, lat, lon, areas),
            "cell centres": centre_weights(polygon, lat, lon, areas),
        }
        check = geodesic_area(polygon) / exact - 1
        for name, w in methods.items():
            area_error = (f"{w.sum() / exact - 1:+.1e}" if name != "exactextract fraction"
                          else "(cells, not m2)")
            if name == "xsatclip":
                area_error += f" (geodesic check {check:+.1e})"
            mean_error = np.average(centre_lat, weights=w) - truth
            print(f"| {lat0:g} | {name} | {area_error} | {mean_error:+.1e} |")


if __name__ == "__main__":
    main()
