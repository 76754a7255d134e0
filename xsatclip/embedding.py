"""Lazy embedding of xarray grids with Dask: the glue between coordinates and the model."""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from .checkpoints import load_model
from .errors import InvalidCoordinatesError, ModelNotFoundError
from .harmonics import check_latitude
from .model import LocationEncoder
from .registry import DEFAULT_MODELS, default_model
from .spatial import SpatialCoords, find_spatial_coords
from .workers import ModelSpec, embed_grid_block, embed_points_block, register_model

DEFAULT_LEVEL = 40
DEFAULT_CHUNK = 256  # points along each spatial dim: 256 x 256 x 256 float32 = 64 MiB out


def resolve_model(level: int | None, model, *, numerics: str | None, dtype: str,
                  device: str) -> LocationEncoder:
    """The encoder for ``embed``: ``model`` (anything ``load_model`` takes, or a loaded one),
    else the default model of ``level``."""
    if model is None:
        level = DEFAULT_LEVEL if level is None else level
        model = default_model(level)
        if model is None:
            raise ModelNotFoundError(
                f"xsatclip bundles default models for levels {sorted(DEFAULT_MODELS)}, not "
                f"level={level}; pass model=... (a .ckpt file, a Hub id such as "
                "'microsoft/SatCLIP-ViT16-L40', a name such as 'satclip-vit16-l40', or a "
                "loaded model)"
            )
    if isinstance(model, LocationEncoder):
        if numerics not in (None, model.numerics) or dtype != model.dtype:
            model = load_model(model.identity.source, numerics=numerics or model.numerics,
                               dtype=dtype, device=device)
    else:
        model = load_model(model, numerics=numerics, dtype=dtype, device=device)
    if level is not None and model.level != level:
        raise ValueError(f"level={level} but the model has level {model.level}; "
                         "leave level out when passing model=")
    return model


def requested_chunks(obj, dims: tuple[str, str], chunks) -> dict[str, int]:
    """Spatial chunk sizes asked for: ``chunks`` (an int, two ints in ``dims`` order, or
    ``{dim: int}``), else ``obj``'s Dask chunks, else its ``encoding["preferred_chunks"]``.
    Dims with no request are left out."""
    if chunks is None:
        existing = obj.chunksizes
        preferred = obj.encoding.get("preferred_chunks", {})
        chosen = {d: existing[d][0] if d in existing else preferred.get(d) for d in dims}
        chosen = {d: c for d, c in chosen.items() if c}
    elif isinstance(chunks, int):
        chosen = dict.fromkeys(dims, chunks)
    elif isinstance(chunks, (tuple, list)):
        if len(chunks) != 2:
            raise ValueError(f"chunks must be an int or two ints {dims}, got {chunks!r}")
        chosen = dict(zip(dims, chunks, strict=True))
    else:
        chosen = dict(chunks)
        unknown = set(chosen) - set(dims)
        if unknown:
            raise ValueError(f"chunks names {sorted(unknown)}, not spatial dims {dims}")
    for d, c in chosen.items():
        if int(c) < 1:
            raise ValueError(f"chunk sizes must be positive, got {d}={c}")
    return {d: int(c) for d, c in chosen.items()}


def _coordinate(obj, name: str, dims, chunks: dict[str, int]) -> da.Array:
    values = np.asarray(obj.coords[name].values, dtype=np.float64)
    return da.from_array(values, chunks=tuple(chunks[d] for d in dims), name=False)


def _check_latitudes(obj, spatial: SpatialCoords) -> None:
    """Fail before computing on geographic latitudes outside [-90, 90], naming the coord."""
    if spatial.kind == "projected":
        return
    try:
        check_latitude(obj.coords[spatial.y].values)
    except InvalidCoordinatesError as exc:
        raise InvalidCoordinatesError(f"coordinate {spatial.y!r}: {exc}") from None


def embed(obj: xr.Dataset | xr.DataArray, level: int | None = None, model=None, *,
          device: str = "auto", dtype: str = "float32", batch_size: int | None = None,
          numerics: str | None = None, chunks=None) -> xr.DataArray:
    """SatCLIP embeddings of every location of ``obj``'s grid, lazily with Dask.

    Returns a DataArray ``embedding`` with dims ``(*spatial_dims, "embedding")``; the
    embedding dim is one chunk. Spatial chunks follow ``chunks=``, else the input's.
    """
    spatial = find_spatial_coords(obj)
    _check_latitudes(obj, spatial)
    encoder = resolve_model(level, model, numerics=numerics, dtype=dtype, device=device)
    spec = ModelSpec.of(encoder, device)
    register_model(encoder, spec)
    requested = requested_chunks(obj, spatial.dims, chunks)
    sizes = {dim: requested.get(dim, DEFAULT_CHUNK) for dim in spatial.dims}
    dim_e = encoder.embed_dim
    crs_wkt = spatial.crs.to_wkt() if spatial.kind == "projected" else None
    # The coordinate inputs share no index, or were chunked alike (curvilinear): nothing to
    # align, and aligning would warn that the 2-D output has many more chunks than they do.
    common = dict(spec=spec, batch_size=batch_size, dtype=np.dtype(dtype),
                  new_axes={"e": dim_e}, meta=np.empty((0, 0, 0), dtype=dtype),
                  align_arrays=False)
    if spatial.kind == "curvilinear":
        lat = _coordinate(obj, spatial.y, spatial.dims, sizes)
        lon = _coordinate(obj, spatial.x, spatial.dims, sizes)
        data = da.blockwise(embed_points_block, "yxe", lat, "yx", lon, "yx", **common)
    else:
        y = _coordinate(obj, spatial.y, spatial.dims[:1], sizes)
        x = _coordinate(obj, spatial.x, spatial.dims[1:], sizes)
        data = da.blockwise(embed_grid_block, "yxe", y, "y", x, "x", crs_wkt=crs_wkt, **common)
    coords = {name: obj.coords[name].variable for name in obj.coords
              if set(obj.coords[name].dims) <= set(spatial.dims)}
    coords["embedding"] = ("embedding", np.arange(dim_e))
    from . import __version__

    out = xr.DataArray(data, dims=(*spatial.dims, "embedding"), coords=coords,
                       name="embedding",
                       attrs={**encoder.identity.attrs(), "xsatclip_version": __version__})
    if spatial.crs is not None:
        out = out.rio.write_crs(spatial.crs)
    return out
