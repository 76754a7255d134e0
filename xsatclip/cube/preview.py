"""A 3-band PCA preview of a cube for viewers (:func:`build_preview`) and its PNG
(:func:`render_preview`).

The preview is the group ``preview/`` of the store: a uint8 array ``preview`` (band, lat, lon)
on the cube's grid, with ``lat``/``lon``, ``spatial_ref``, the CF ``grid_mapping`` attribute
and ``spatial:``/``proj:`` attributes. Band ``b`` is the ``b``-th principal component of the
embeddings, stretched between its 2nd and 98th percentiles to codes 1..255 (0 = no data); the
attributes record everything needed to recompute it: ``pca_mean`` (d), ``pca_components``
(3 x d), ``stretch_lower``/``stretch_upper`` (3), the explained variance ratios, the sample
and seed, and the exact ``formula``
(:data:`~xsatclip.cube.reduce.PREVIEW_FORMULA`).

The components and the stretch are fitted on ``sample_cells`` cells nearest to points drawn
uniformly on the sphere within the cube's extent (seeded), so every area counts by its
surface, not by its number of grid cells (a lat/lon grid has as many cells in the polar rows
as at the equator). The cube is read twice in blocks (the sample, then the projection), so
memory stays at one block plus the uint8 preview.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyproj
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

from ..errors import InvalidOptionError, missing_dependency
from ..raster.coords import WGS84
from ..raster.geometry import nearest_cell, uniform_on_sphere
from .reduce import PREVIEW_FORMULA, fit_components, project, stretch_bounds, to_codes
from .source import (
    CubeLike,
    EmbeddingSource,
    consolidate,
    convention_attrs,
    grid_transform,
    is_consolidated,
    open_source,
)
from .store import store_target

PREVIEW_GROUP = PREVIEW_VARIABLE = "preview"
DEFAULT_SAMPLE_CELLS = 20_000
PNG_MARGINS = (80, 20, 40, 50)  # left, right, top, bottom, pixels around the map


def compute_preview(cube: CubeLike, *, sample_cells: int = DEFAULT_SAMPLE_CELLS,
                    seed: int = 0, storage_options: dict | None = None) -> xr.DataArray:
    """The preview of ``cube`` (a store, Dataset or DataArray) in memory: uint8
    (band, lat, lon) with the PCA and stretch in its attrs (module doc)."""
    if isinstance(sample_cells, bool) or not isinstance(sample_cells, int) or sample_cells < 10:
        raise InvalidOptionError(f"sample_cells must be an integer >= 10, got {sample_cells!r}")
    source = open_source(cube, storage_options)
    rows, cols = _sample_cells(source, sample_cells, np.random.default_rng(seed))
    sample = _gather(source, rows, cols)
    sample = sample[~np.isnan(sample).any(axis=1)]
    if len(sample) < 10:
        raise InvalidOptionError("the cube has fewer than 10 cells with values: nothing to "
                                 "fit a preview on")
    mean, components, ratio = fit_components(sample)
    lower, upper = stretch_bounds(project(sample.T, mean, components))
    _, ny, nx = source.shape
    codes = np.zeros((len(components), ny, nx), np.uint8)
    for r, c in source.windows():
        codes[:, r, c] = to_codes(project(source.read(r, c), mean, components), lower, upper)
    attrs = {
        "long_name": "PCA preview of the embeddings (RGB = principal components 1, 2, 3)",
        "formula": PREVIEW_FORMULA, "valid_range": [1, 255], "no_data_code": 0,
        "pca_mean": mean.tolist(), "pca_components": components.tolist(),
        "pca_explained_variance_ratio": ratio.tolist(),
        "stretch_lower": lower.tolist(), "stretch_upper": upper.tolist(),
        "stretch_percentiles": [2.0, 98.0], "sample_cells": len(sample),
        "sample": "cells nearest to points uniform on the sphere within the cube's extent",
        "seed": int(seed)}
    y_dim, x_dim = source.spatial.dims
    array = source.array
    preview = xr.DataArray(
        codes, dims=("band", y_dim, x_dim), name=PREVIEW_VARIABLE, attrs=attrs,
        coords={"band": ("band", np.arange(1, len(components) + 1),
                         {"long_name": "principal component"}),
                source.spatial.y: (y_dim, source.y, array[source.spatial.y].attrs),
                source.spatial.x: (x_dim, source.x, array[source.spatial.x].attrs)})
    preview = preview.rio.write_crs(source.crs.to_wkt())
    preview.encoding.pop("grid_mapping", None)
    preview.attrs["grid_mapping"] = "spatial_ref"
    preview.attrs.update(convention_attrs(source, source.y, source.x))
    model = {k: v for k, v in source.attrs.items() if k.startswith("model_")}
    preview.attrs.update(model)
    return preview


def build_preview(store: str | os.PathLike, *, sample_cells: int = DEFAULT_SAMPLE_CELLS,
                  seed: int = 0, storage_options: dict | None = None) -> str:
    """Compute the preview of the cube at ``store`` and write it into its ``preview/``
    group (replacing one there); returns the group's path."""
    preview = compute_preview(store, sample_cells=sample_cells, seed=seed,
                              storage_options=storage_options)
    chunks = (preview.sizes["band"], *(min(512, n) for n in preview.shape[1:]))
    ds = preview.to_dataset()
    for key in list(preview.attrs):  # conventions on the group, the rest on the array
        if key.startswith(("spatial:", "proj:", "zarr_conventions")):
            ds.attrs[key] = ds[PREVIEW_VARIABLE].attrs.pop(key)
    target = store_target(store, storage_options)
    consolidated = is_consolidated(target)
    ds.to_zarr(target.store(), group=PREVIEW_GROUP, mode="w", zarr_format=3,
               consolidated=False, encoding={PREVIEW_VARIABLE: {"chunks": chunks}})
    if consolidated:
        consolidate(target)
    return PREVIEW_GROUP


def open_preview(store: str | os.PathLike, storage_options: dict | None = None
                 ) -> xr.DataArray | None:
    """The stored preview of ``store``, or None when it has none."""
    target = store_target(store, storage_options)
    try:
        ds = xr.open_zarr(target.store(read_only=True), group=PREVIEW_GROUP, consolidated=False)
    except (FileNotFoundError, KeyError):
        return None
    return ds[PREVIEW_VARIABLE].load()


def render_preview(preview: xr.DataArray, out: str | os.PathLike, *, width: int = 1200,
                   title: str | None = None) -> Path:
    """Draw ``preview`` (from :func:`compute_preview` or :func:`open_preview`) as a PNG with
    coordinate axes (needs matplotlib: the ``plot`` extra).

    The PNG is ``width`` pixels wide; the map keeps the grid's aspect (cells as wide as tall
    in CRS units) inside margins of :data:`PNG_MARGINS` pixels, so its height is
    ``round((width - left - right) * extent_y / extent_x) + top + bottom``.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise missing_dependency("rendering a preview", "plot", exc) from None
    y_dim, x_dim = preview.dims[1:]
    y, x = (np.asarray(preview[d].values, np.float64) for d in (y_dim, x_dim))
    a, _, c, _, e, f = grid_transform(y, x)
    left, right, top, bottom = PNG_MARGINS
    map_width = width - left - right
    if map_width < 16:
        raise InvalidOptionError(f"width={width}: too narrow for a map (at least "
                                 f"{left + right + 16} pixels)")
    map_height = round(map_width * abs(e) * y.size / (abs(a) * x.size))
    height = map_height + top + bottom
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((left / width, bottom / height, map_width / width, map_height / height))
    codes = np.moveaxis(np.asarray(preview.values), 0, -1)
    rgba = np.concatenate([codes, np.where(codes.any(axis=-1), 255, 0)[..., None]], axis=-1)
    extent = (c, c + a * x.size, f + e * y.size, f)  # left, right, bottom, top of the rows
    ax.imshow(rgba.astype(np.uint8), extent=extent, origin="upper", aspect="auto",
              interpolation="nearest")
    geographic = pyproj.CRS.from_user_input(preview.rio.crs or WGS84).is_geographic
    ax.set_xlabel("longitude (degrees east)" if geographic else f"{x_dim}")
    ax.set_ylabel("latitude (degrees north)" if geographic else f"{y_dim}")
    model = preview.attrs.get("model_name")
    ax.set_title(title or f"PCA preview{f' of {model}' if model else ''}: RGB = "
                 "principal components 1-3", fontsize=10)
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, format="png")
    return out


def _sample_cells(source: EmbeddingSource, n: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the cells nearest ``n`` points uniform on the sphere within the
    cube's lon/lat extent (points that fall outside a projected grid are drawn again)."""
    a, _, c, _, e, f = grid_transform(source.y, source.x)
    xs, ys = sorted((c, c + a * source.x.size)), sorted((f, f + e * source.y.size))
    if source.spatial.kind == "projected":
        to_lonlat = pyproj.Transformer.from_crs(source.crs, WGS84, always_xy=True)
        west, south, east, north = to_lonlat.transform_bounds(xs[0], ys[0], xs[1], ys[1])
        if east < west:  # across the dateline
            east += 360
    else:
        west, east = xs
        south, north = max(ys[0], -90.0), min(ys[1], 90.0)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    found = 0
    for _ in range(100):
        lon, lat = uniform_on_sphere(rng, n, (west, south, east, north))
        r, col, inside = nearest_cell(source.array, source.spatial, lon, lat)
        rows.append(r[inside])
        cols.append(col[inside])
        found += int(inside.sum())
        if found >= n:
            break
    return np.concatenate(rows)[:n], np.concatenate(cols)[:n]


def _gather(source: EmbeddingSource, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Decoded vectors (n, d) of cells ``rows``, ``cols``, reading each block once."""
    by, bx = source.block
    out = np.empty((rows.size, source.shape[0]), np.float32)
    block_ids = (rows // by) * (-(-source.shape[2] // bx)) + cols // bx
    for block in np.unique(block_ids):
        pick = np.flatnonzero(block_ids == block)
        r0, c0 = rows[pick[0]] // by * by, cols[pick[0]] // bx * bx
        values = source.read(slice(r0, r0 + by), slice(c0, c0 + bx))
        out[pick] = values[:, rows[pick] - r0, cols[pick] - c0].T
    return out

