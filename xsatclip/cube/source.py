"""The cube a derived product (COG, overviews, preview, STAC Item) is made from.

:func:`open_source` takes a store (local path or fsspec URL) or any xarray object holding an
embedding grid: a data variable with an ``embedding`` dim and 1-D lat/lon (or projected x/y
with a CRS) coordinates. Dims are found by name, so band-first ``(embedding, lat, lon)`` and
channels-last ``(lat, lon, embedding)`` cubes both work. Values are read in blocks, decoded to
float32 (int8 codes times their CF ``scale_factor``, the ``_FillValue`` as NaN), so no
product ever needs the whole cube in memory.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyproj
import xarray as xr
import zarr
import zarr_cm

from ..errors import (
    InputNotFoundError,
    InvalidCoordinatesError,
    InvalidOptionError,
    InvalidTypeError,
)
from ..raster import SpatialCoords, find_crs, find_spatial_coords
from ..raster.coords import EMBEDDING_DIM, VARIABLE, WGS84
from .store import StoreTarget, store_target

BLOCK_BYTES = 64 * 2**20  # largest float32 block a product reads at once
CubeLike = str | os.PathLike | xr.Dataset | xr.DataArray


@dataclasses.dataclass(frozen=True)
class EmbeddingSource:
    """A lazy embedding grid and how to decode its stored values.

    ``array`` holds the stored values (int8 codes, float16 or float32) with dims
    ``embedding`` and ``spatial.dims`` in any order; ``scale``/``fill`` are the int8 CF
    ``scale_factor``/``_FillValue`` (None for float values).
    """

    array: xr.DataArray
    spatial: SpatialCoords
    crs: pyproj.CRS
    scale: float | None
    fill: float | None
    block: tuple[int, int]  # natural read block (rows, cols): the store's shard or chunk
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)  # cube + variable attrs

    @property
    def shape(self) -> tuple[int, int, int]:
        """(embedding, rows, cols)."""
        y, x = self.spatial.dims
        return (self.array.sizes[EMBEDDING_DIM], self.array.sizes[y], self.array.sizes[x])

    @property
    def y(self) -> np.ndarray:
        return np.asarray(self.array[self.spatial.y].values, np.float64)

    @property
    def x(self) -> np.ndarray:
        return np.asarray(self.array[self.spatial.x].values, np.float64)

    def read(self, rows: slice, cols: slice, bands: np.ndarray | None = None) -> np.ndarray:
        """Decoded float32 values (embedding, rows, cols) of a window (optionally a subset
        of embedding positions ``bands``)."""
        y, x = self.spatial.dims
        index: dict[str, Any] = {y: rows, x: cols}
        if bands is not None:
            index[EMBEDDING_DIM] = bands
        window = self.array.isel(index).transpose(EMBEDDING_DIM, y, x)
        return decode(np.asarray(window.values), self.scale, self.fill)

    def windows(self, rows: int | None = None, cols: int | None = None
                ) -> Iterator[tuple[slice, slice]]:
        """Row-major windows of ``rows`` x ``cols`` cells (default: :attr:`block`)."""
        _, ny, nx = self.shape
        by, bx = rows or self.block[0], cols or self.block[1]
        for r in range(0, ny, by):
            for c in range(0, nx, bx):
                yield slice(r, min(r + by, ny)), slice(c, min(c + bx, nx))


def decode(values: np.ndarray, scale: float | None, fill: float | None) -> np.ndarray:
    """Stored values -> float32: ``code * float32(scale)`` for int8 (``fill`` -> NaN)."""
    if scale is None:
        out = np.asarray(values, np.float32)
        if fill is not None and not np.isnan(fill):
            out = np.where(values == fill, np.float32(np.nan), out)
        return out
    out = values.astype(np.float32) * np.float32(scale)
    if fill is not None:
        out[values == fill] = np.nan
    return out


def open_source(cube: CubeLike, storage_options: dict | None = None, *,
                group: str | None = None) -> EmbeddingSource:
    """The embedding grid of ``cube``: a store path/URL (its ``group``, default the root),
    a Dataset or a DataArray."""
    if isinstance(cube, (str, os.PathLike)):
        target = store_target(cube, storage_options)
        try:
            # A group's own metadata: the root's consolidated copy may predate the group.
            ds = xr.open_zarr(target.store(read_only=True), group=group, chunks=None,
                              mask_and_scale=False, consolidated=False if group else None)
        except (FileNotFoundError, KeyError):  # KeyError: a group not in consolidated metadata
            where = target.url + (f" (group {group})" if group else "")
            raise InputNotFoundError(f"no Zarr store at {where}") from None
        array = embedding_variable(ds, target.url)
        attrs = {**ds.attrs, **array.attrs}
        encoding = array.encoding
        scale = array.attrs.get("scale_factor")
        fill = array.attrs.get("_FillValue", encoding.get("_FillValue"))
        block = encoding.get("shards") or encoding.get("chunks")
    elif isinstance(cube, (xr.Dataset, xr.DataArray)):
        if storage_options:
            raise InvalidOptionError("storage_options apply to stores, not xarray objects")
        array = embedding_variable(cube, "the xarray object")
        attrs = {**cube.attrs, **array.attrs}
        scale = fill = None
        block = array.data.chunksize if hasattr(array.data, "chunksize") else None
    else:
        raise InvalidTypeError(f"cube must be a store path or URL, a Dataset or a DataArray, "
                               f"got {type(cube).__name__}")
    spatial = find_spatial_coords(array)
    if spatial.kind == "curvilinear":
        raise InvalidCoordinatesError(f"{spatial.y!r}/{spatial.x!r} are 2-D (curvilinear): "
                                      "products need a regular grid")
    crs = spatial.crs if spatial.kind == "projected" else (find_crs(array) or WGS84)
    assert crs is not None
    sizes = dict(zip(array.dims, block, strict=True)) if block else {}
    cells = max(1, BLOCK_BYTES // (4 * array.sizes[EMBEDDING_DIM]))
    side = max(1, int(cells**0.5))
    by, bx = (min(sizes.get(d, side), array.sizes[d]) for d in spatial.dims)
    by = max(1, min(by, cells // bx))  # a block of at most BLOCK_BYTES decoded
    return EmbeddingSource(array, spatial, crs, None if scale is None else float(scale),
                           None if fill is None else float(fill), (by, bx), attrs)


def embedding_variable(obj: xr.Dataset | xr.DataArray, where: str) -> xr.DataArray:
    if isinstance(obj, xr.DataArray):
        array = obj
    elif VARIABLE in obj.data_vars:
        array = obj[VARIABLE]
    else:
        found = [n for n, v in obj.data_vars.items() if EMBEDDING_DIM in v.dims]
        if len(found) != 1:
            raise InvalidOptionError(f"{where} has no {VARIABLE!r} variable and "
                                     f"{len(found)} variables with an {EMBEDDING_DIM!r} dim "
                                     f"({found}); pass the DataArray itself")
        array = obj[found[0]]
    if EMBEDDING_DIM not in array.dims or array.ndim != 3:
        raise InvalidCoordinatesError(f"{where}: the embeddings must have 3 dims, "
                                      f"{EMBEDDING_DIM!r} and two spatial ones; got {array.dims}")
    return array


def grid_transform(y: np.ndarray, x: np.ndarray) -> list[float]:
    """Affine ``[a, b, c, d, e, f]`` (GDAL order) of a regular grid of cell centres; ``e`` is
    negative when ``y`` descends (north-up)."""
    steps = []
    for name, values in (("y", y), ("x", x)):
        if values.size < 2:
            raise InvalidCoordinatesError(f"the {name} axis has {values.size} cell: a grid "
                                          "needs two or more along each axis")
        step = (values[-1] - values[0]) / (values.size - 1)
        if np.abs(np.diff(values) - step).max() > 1e-6 * abs(step):
            raise InvalidCoordinatesError(f"the {name} coordinate is not evenly spaced")
        steps.append(float(step))
    dy, dx = steps
    return [dx, 0.0, float(x[0] - dx / 2), 0.0, dy, float(y[0] - dy / 2)]


def convention_attrs(source: EmbeddingSource, y: np.ndarray, x: np.ndarray) -> dict[str, Any]:
    """``proj:`` and ``spatial:`` attributes (with their ``zarr_conventions`` declarations,
    written by zarr-cm) of a grid of cell centres ``y``, ``x`` in ``source``'s CRS."""
    a, _, c, _, e, f = transform = grid_transform(y, x)
    xs, ys = (c, c + a * x.size), (f, f + e * y.size)
    spatial = zarr_cm.spatial.create(
        dimensions=list(source.spatial.dims), bbox=[min(xs), min(ys), max(xs), max(ys)],
        transform=transform, shape=[int(y.size), int(x.size)], registration="pixel")
    code = source.crs.to_authority()
    proj = (zarr_cm.proj.create(code=":".join(code)) if code
            else zarr_cm.proj.create(wkt2=source.crs.to_wkt()))
    conventions: Any = {"proj": proj, "spatial": spatial}
    return dict(zarr_cm.create_many(conventions))


def is_consolidated(target: StoreTarget) -> bool:
    """Whether the store's root holds consolidated metadata."""
    root = zarr.open_group(target.store(read_only=True), mode="r")
    return root.metadata.consolidated_metadata is not None


def consolidate(target: StoreTarget) -> None:
    """Rewrite the consolidated metadata of a store (after adding groups to it)."""
    with warnings.catch_warnings():  # "consolidated metadata is not in the v3 spec (yet)"
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        zarr.consolidate_metadata(target.store())
