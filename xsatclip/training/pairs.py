"""Training pairs for SatCLIP pretraining: locations on the sphere and the image patches there.

Any georeferenced xarray raster works: 1-D lat/lon coordinates, or projected x/y with a CRS
(found the same way as by ``.satclip.embed``). Locations are drawn uniformly on the sphere
within the raster's footprint; a location is kept when its whole patch lies on the raster (the
patch wraps around the dateline on rasters that span 360 degrees of longitude, and its rows
are clamped at the raster's north and south edges on rasters that reach a pole), holds no
NaN, and passes the optional mask.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import numpy as np
import pyproj
import xarray as xr

from ..errors import InvalidCoordinatesError, InvalidOptionError, InvalidTypeError
from ..raster.coords import WGS84, SpatialCoords, find_spatial_coords
from ..raster.geometry import (
    cell_size,
    is_global_longitude,
    nearest_cell,
    uniform_on_sphere,
)

Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class TrainingPairs:
    """``lon``/``lat`` (N,) float64 degrees (lon in -180..180) and ``patches``
    (N, bands, P, P) in the raster's dtype, centred on the nearest pixel."""

    lon: np.ndarray
    lat: np.ndarray
    patches: np.ndarray

    def __len__(self) -> int:
        return self.lon.size

    def fingerprint(self) -> str:
        """sha256 of the locations and patches: the same pairs give the same string."""
        digest = hashlib.sha256()
        for array in (self.lon, self.lat, self.patches):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def split(self, val_fraction: float, seed: int) -> tuple[TrainingPairs, TrainingPairs]:
        """A seeded random (train, validation) split."""
        if not 0 < val_fraction < 1:
            raise InvalidOptionError(f"val_fraction must be in (0, 1), got {val_fraction}")
        order = np.random.default_rng(seed).permutation(len(self))
        n_val = max(1, round(val_fraction * len(self)))
        pick = [np.sort(order[n_val:]), np.sort(order[:n_val])]
        train, val = (TrainingPairs(self.lon[i], self.lat[i], self.patches[i]) for i in pick)
        return train, val


class PatchSampler:
    """Cuts ``patch_size`` x ``patch_size`` pixel patches around lon/lat points of a raster.

    ``image`` is a DataArray with two spatial dims and at most one other (the bands).
    """

    def __init__(self, image: xr.DataArray, patch_size: int) -> None:
        if not isinstance(image, xr.DataArray):
            raise InvalidTypeError(f"image must be an xarray.DataArray, got {type(image).__name__}")
        if patch_size < 1:
            raise InvalidOptionError(f"patch_size must be a positive number of pixels, got "
                                     f"{patch_size}")
        self.spatial: SpatialCoords = find_spatial_coords(image)
        if self.spatial.kind == "curvilinear":
            raise InvalidCoordinatesError(
                "training needs a raster on 1-D lat/lon or projected x/y coordinates; "
                f"{self.spatial.y!r}/{self.spatial.x!r} are 2-D (curvilinear)")
        ydim, xdim = self.spatial.dims
        others = [d for d in image.dims if d not in (ydim, xdim)]
        if len(others) > 1:
            raise InvalidCoordinatesError(
                f"image {image.name!r} has dims {image.dims}: expected (band, {ydim}, {xdim})")
        self.band_dim = others[0] if others else "band"
        self.image = (image if others else image.expand_dims(self.band_dim)).transpose(
            self.band_dim, ydim, xdim)
        self.patch_size = patch_size
        self.offsets = np.arange(patch_size) - patch_size // 2
        self.y = np.asarray(image[self.spatial.y].values, dtype=np.float64)
        self.x = np.asarray(image[self.spatial.x].values, dtype=np.float64)
        geographic = self.spatial.kind == "rectilinear"
        self.wraps = geographic and is_global_longitude(self.x)
        self.clamps = geographic and np.max(np.abs(self.y)) + cell_size(self.y) >= 90.0
        self.bounds = self._lonlat_bounds(cell_size(self.x), cell_size(self.y))

    @property
    def bands(self) -> int:
        return self.image.sizes[self.band_dim]

    @property
    def band_names(self) -> tuple[str, ...]:
        """The band coordinate's values as strings (``band0`` ... when it has none)."""
        if self.band_dim in self.image.coords:
            return tuple(str(v) for v in self.image[self.band_dim].values)
        return tuple(f"band{i}" for i in range(self.bands))

    def _lonlat_bounds(self, cell_x: float, cell_y: float) -> tuple[float, float, float, float]:
        """(west, south, east, north) degrees covering the raster; east may exceed 180."""
        x0, x1 = self.x.min() - cell_x / 2, self.x.max() + cell_x / 2
        y0, y1 = self.y.min() - cell_y / 2, self.y.max() + cell_y / 2
        if self.spatial.kind == "rectilinear":
            west, east = (-180.0, 180.0) if self.wraps else (x0, x1)
            return west, max(y0, -90.0), east, min(y1, 90.0)
        west, south, east, north = pyproj.Transformer.from_crs(
            self.spatial.crs, WGS84, always_xy=True).transform_bounds(x0, y0, x1, y1,
                                                                      densify_pts=21)
        return west, south, (east + 360.0 if east < west else east), north

    def pixel(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row and column of the pixel nearest each point, and whether the point is on it."""
        return nearest_cell(self.image, self.spatial, lon, lat)

    def patch_indices(self, row, col) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, P) row and column indices of each patch, and whether all lie on the raster."""
        rows = row[:, None] + self.offsets
        cols = col[:, None] + self.offsets
        if self.clamps:
            rows = np.clip(rows, 0, self.y.size - 1)
        if self.wraps:
            cols = np.mod(cols, self.x.size)
        whole = ((rows >= 0) & (rows < self.y.size)).all(1) & (
            (cols >= 0) & (cols < self.x.size)).all(1)
        return rows, cols, whole

    def cut(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Patches (N, bands, P, P) at (N, P) row/column indices; reads only those pixels
        (vectorised indexing, lazy on Dask-backed rasters)."""
        ydim, xdim = self.spatial.dims
        picked = self.image.isel({ydim: xr.DataArray(rows, dims=("sample", "py")),
                                  xdim: xr.DataArray(cols, dims=("sample", "px"))})
        return np.asarray(picked.transpose("sample", self.band_dim, "py", "px").values)

    def draw(self, n: int, rng: np.random.Generator, mask: Mask | None = None,
             max_rounds: int = 100) -> TrainingPairs:
        """``n`` pairs at locations drawn uniformly on the sphere within the raster's footprint."""
        if n < 1:
            raise InvalidOptionError(f"the number of locations must be positive, got {n}")
        lons, lats, patches, found = [], [], [], 0
        for _ in range(max_rounds):
            lon, lat = uniform_on_sphere(rng, max(2 * (n - found), 1024), self.bounds)
            lon = np.mod(lon + 180.0, 360.0) - 180.0
            row, col, on_raster = self.pixel(lon, lat)
            rows, cols, whole = self.patch_indices(row, col)
            keep = on_raster & whole
            if mask is not None:
                keep &= np.asarray(mask(lon, lat), dtype=bool)
            keep = np.flatnonzero(keep)[: n - found]
            cut = self.cut(rows[keep], cols[keep])
            if np.issubdtype(cut.dtype, np.floating):
                finite = np.isfinite(cut).all(axis=(1, 2, 3))
                keep, cut = keep[finite], cut[finite]
            lons.append(lon[keep])
            lats.append(lat[keep])
            patches.append(cut)
            found += keep.size
            if found == n:
                return TrainingPairs(np.concatenate(lons), np.concatenate(lats),
                                     np.concatenate(patches))
        raise InvalidOptionError(
            f"found only {found} of {n} locations whose {self.patch_size}-pixel patch lies on "
            f"the raster, holds no NaN and passes the mask after {max_rounds} rounds; use a "
            "smaller patch_size, a looser mask or a larger raster")
