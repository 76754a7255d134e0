"""Where is this image? Probability maps of image embeddings over a grid of location
embeddings, and their most probable cells.

SatCLIP trains a location encoder and an image encoder into one space. For an image
embedding ``v`` and the location embedding ``e_c`` of every cell ``c`` of a grid, the
probability that the image was taken in cell ``c`` is

    p_c = exp(s cos(e_c, v)) / sum_c' exp(s cos(e_c', v))

with ``s`` the model's learned logit scale (CLIP's inverse temperature), as in GeoCLIP-style
retrieval against a gallery of locations: here the gallery is every cell of the grid.
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import numpy as np
import xarray as xr

from ..errors import GeolocationError
from .grids import EMBEDDING_DIM, cell_lonlat, embedding_array, grid_dims
from .kernels import cosine_logits, top_k_indices, unit_rows

# The attr (written by models with an image encoder) holding CLIP's learned logit_scale
# parameter: the log of the multiplier of the cosine similarity.
LOGIT_SCALE_ATTR = "model_logit_scale"
# CLIP clamps the multiplier at 100; the learned parameter is used the same way.
MAX_LOGIT_MULTIPLIER = 100.0
QUERY_DIM = "query"


def logit_multiplier(attrs: dict, temperature: float | None) -> float:
    """The factor ``s`` of the cosine similarity: ``1 / temperature`` when given, else
    ``exp(model_logit_scale)`` from ``attrs`` (at most 100, as CLIP clamps it)."""
    if temperature is not None:
        if not (isinstance(temperature, (int, float, np.floating)) and
                math.isfinite(temperature) and temperature > 0):
            raise GeolocationError(f"temperature must be a positive number, got {temperature!r}")
        return 1.0 / float(temperature)
    if LOGIT_SCALE_ATTR not in attrs:
        raise GeolocationError(
            f"the embeddings' attrs have no {LOGIT_SCALE_ATTR!r} (the logit scale the model "
            "learned with its image encoder; models with an image encoder record it): pass "
            "temperature= explicitly")
    try:
        scale = float(attrs[LOGIT_SCALE_ATTR])
    except (TypeError, ValueError):
        scale = math.nan
    if not math.isfinite(scale):
        raise GeolocationError(f"attr {LOGIT_SCALE_ATTR!r} must be a finite number (the log of "
                               f"the logit multiplier), got {attrs[LOGIT_SCALE_ATTR]!r}")
    return min(math.exp(scale), MAX_LOGIT_MULTIPLIER)


def _image_queries(image_embedding, size: int) -> tuple[np.ndarray, Hashable, np.ndarray, bool]:
    """Unit queries (N, D) float64, the query dim's name and coordinate, and whether one
    vector (no query dim) was given."""
    if isinstance(image_embedding, xr.DataArray):
        if image_embedding.ndim == 2:
            dim = next(d for d in image_embedding.dims if d != EMBEDDING_DIM)
            values = image_embedding.transpose(dim, ...).values
            coord = (image_embedding[dim].values if dim in image_embedding.coords
                     else np.arange(image_embedding.sizes[dim]))
            return _checked_queries(values, size), dim, coord, False
        image_embedding = image_embedding.values
    if hasattr(image_embedding, "detach"):  # a torch tensor
        image_embedding = image_embedding.detach().cpu().numpy()
    values = np.asarray(image_embedding)
    unit = _checked_queries(values, size)
    return unit, QUERY_DIM, np.arange(unit.shape[0]), values.ndim == 1


def _checked_queries(values: np.ndarray, size: int) -> np.ndarray:
    """Unit rows (N, D) float64 of one query (D,) or a batch (N, D), or raise."""
    if values.ndim not in (1, 2) or values.shape[-1] != size:
        raise GeolocationError(
            f"image_embedding must be one vector ({size},) or a batch (N, {size}) to match "
            f"the grid's {size} embedding channels, got shape {values.shape}")
    unit, valid = unit_rows(values.reshape(-1, size))
    if not valid.all():
        raise GeolocationError(f"image_embedding rows {np.flatnonzero(~valid).tolist()} are "
                               "zero or not finite")
    return unit


def locate(embeddings: xr.DataArray | xr.Dataset, image_embedding, *,
           temperature: float | None = None) -> xr.DataArray:
    """Probability map of where image(s) were taken, over a grid of location embeddings.

    Parameters
    ----------
    embeddings : DataArray with an ``embedding`` dim and two spatial dims, in any order
        (``(embedding, lat, lon)`` from ``.satclip.embed``, channels-last ``(y, x, embedding)``,
        projected or curvilinear grids), or a Dataset such as :func:`~xsatclip.open_cube`'s;
        Dask-backed grids stay lazy.
    image_embedding : one image embedding (D,) or a batch (N, D) (numpy, torch or a
        DataArray whose non-embedding dim becomes the query dim), from the image encoder
        trained with the grid's location model.
    temperature : softmax temperature; default ``1 / exp(model_logit_scale)`` from the
        embeddings' attrs (the learned CLIP logit scale, clamped at a multiplier of 100).

    Returns
    -------
    DataArray ``probability`` (float64) over the grid's spatial dims, with a leading query
    dim for a batch: ``softmax`` over all cells of the cosine similarity (cell embedding vs
    image embedding, both unit-normalised) times the multiplier; each map sums to 1.
    Coordinates, the CRS (``spatial_ref``) and attrs are kept; ``xsatclip_locate`` records
    the multiplier. Cells whose embedding is not finite (unwritten cube chunks) or zero are
    NaN and excluded from the softmax.

    Notes
    -----
    Lazy grids are computed in two passes over the per-cell similarities: the first reduces
    each map to its maximum and its sum of exponentials, the second normalises. Each
    embedding chunk is read once and released as soon as its similarities are computed;
    until the reductions finish only the similarities are held, one float64 per cell and
    query (the size of the output).
    """
    emb = embedding_array(embeddings)
    spatial, _ = grid_dims(emb, allowed_extra=0)
    multiplier = logit_multiplier(emb.attrs, temperature)
    queries, query_dim, query_coord, single = _image_queries(image_embedding,
                                                             emb.sizes[EMBEDDING_DIM])
    if emb.chunks is not None:
        emb = emb.chunk({EMBEDDING_DIM: -1})
    logits = xr.apply_ufunc(
        cosine_logits, emb, input_core_dims=[[EMBEDDING_DIM]],
        output_core_dims=[[query_dim]], dask="parallelized", output_dtypes=[np.float64],
        kwargs={"queries": queries, "multiplier": multiplier},
        dask_gufunc_kwargs={"output_sizes": {query_dim: queries.shape[0]}})
    logits = logits.transpose(query_dim, *spatial.dims)
    shifted = np.exp(logits - logits.max(dim=list(spatial.dims)))
    probability = shifted / shifted.sum(dim=list(spatial.dims))
    probability = probability.assign_coords({query_dim: query_coord})
    if single:
        probability = probability.isel({query_dim: 0}, drop=True)
    attrs = {**emb.attrs, "xsatclip_locate": (
        f"softmax over cells of {multiplier:.6g} x cosine similarity (location embedding, "
        "image embedding)")}
    return probability.rename("probability").assign_attrs(attrs)


def top_k(prob_map: xr.DataArray, k: int) -> xr.Dataset:
    """The ``k`` most probable cells of a :func:`locate` map (one map or a batch).

    Returns a Dataset over ``rank`` (1 = most probable; after the query dim for a batch) with
    ``probability``, ``lon`` (degrees in [-180, 180)) and ``lat`` of each cell centre
    (transformed with pyproj on projected grids), and ``row`` / ``col``: the cell's position
    along the map's two spatial dims (``prob_map.isel({dims[0]: row, dims[1]: col})``).
    Equally probable cells rank in storage order (row-major over the spatial dims); NaN
    cells never rank. Computes the map.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise GeolocationError(f"k must be a positive integer, got {k!r}")
    spatial, extra = grid_dims(prob_map, allowed_extra=1)
    ydim, xdim = spatial.dims
    values = np.asarray(prob_map.transpose(*extra, ydim, xdim).values, np.float64)
    flat = values.reshape(-1, values.shape[-2] * values.shape[-1])
    finite = np.isfinite(flat).sum(axis=1)
    if (finite < k).any():
        raise GeolocationError(f"k={k} exceeds the {int(finite.min())} cells with a "
                               "probability (not NaN) in a map")
    index = np.stack([top_k_indices(row, k) for row in flat])
    rows, cols = np.divmod(index, values.shape[-1])
    lon, lat = cell_lonlat(prob_map, spatial, rows.ravel(), cols.ravel())
    dims = (*extra, "rank")
    shape = index.shape if extra else (k,)
    data = {
        "probability": (dims, np.take_along_axis(flat, index, axis=1).reshape(shape)),
        "lon": (dims, lon.reshape(shape), {"units": "degrees_east"}),
        "lat": (dims, lat.reshape(shape), {"units": "degrees_north"}),
        "row": (dims, rows.reshape(shape), {"dim": ydim}),
        "col": (dims, cols.reshape(shape), {"dim": xdim}),
    }
    coords: dict[Hashable, np.ndarray] = {"rank": np.arange(1, k + 1)}
    if extra and extra[0] in prob_map.coords:
        coords[extra[0]] = prob_map[extra[0]].values
    return xr.Dataset(data, coords=coords, attrs=dict(prob_map.attrs))
