"""Lazy embedding of xarray grids with Dask: plan once (:func:`plan_embedding`), then build the
graph (:func:`build_embedding`). ``.satclip.embed`` and ``precompute`` share the plan."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import InvalidCoordinatesError, InvalidOptionError
from ..harmonics import Numerics, check_latitude
from ..model import Encoder, resolve_model
from ..model.backend import DeviceLike, DType, check_batch_size
from ..model.load import ModelLike
from .coords import VARIABLE, SpatialCoords, find_spatial_coords, with_grid_mapping
from .tasks import ModelSpec, embed_grid_block, embed_points_block, register_model

DEFAULT_CHUNK = 256  # points along each spatial dim: 256 x 256 x 256 float32 = 64 MiB out
ChunksLike = int | tuple[int, int] | list[int] | Mapping[str, int] | None


@dataclasses.dataclass(frozen=True)
class EmbeddingPlan:
    """What an embedding of ``template``'s grid needs, resolved once: where its locations are
    (``spatial``), the ``encoder`` and its worker ``spec``, the spatial ``chunks`` per dim
    and whether the caller chose them (``chunks_requested``), and ``batch_size``."""

    template: xr.Dataset | xr.DataArray
    spatial: SpatialCoords
    encoder: Encoder
    spec: ModelSpec
    chunks: dict[str, int]
    chunks_requested: bool
    batch_size: int | None

    @property
    def shape(self) -> tuple[int, int]:
        """Cells along the spatial dims, north-south first."""
        return tuple(self.template.sizes[d] for d in self.spatial.dims)  # type: ignore[return-value]


def requested_chunks(obj: xr.Dataset | xr.DataArray, dims: tuple[str, str],
                     chunks: ChunksLike) -> dict[str, int]:
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
            raise InvalidOptionError(f"chunks must be an int or two ints {dims}, got {chunks!r}")
        chosen = dict(zip(dims, chunks, strict=True))
    else:
        chosen = dict(chunks)
        unknown = set(chosen) - set(dims)
        if unknown:
            raise InvalidOptionError(f"chunks names {sorted(unknown)}, not spatial dims {dims}")
    for d, c in chosen.items():
        if isinstance(c, bool) or int(c) != c or int(c) < 1:
            raise InvalidOptionError(f"chunk sizes must be positive integers, got {d}={c!r}")
    return {d: int(c) for d, c in chosen.items()}


def _check_latitudes(obj: xr.Dataset | xr.DataArray, spatial: SpatialCoords) -> None:
    """Fail before computing on geographic latitudes outside [-90, 90], naming the coord."""
    if spatial.kind == "projected":
        return
    try:
        check_latitude(obj.coords[spatial.y].values)
    except InvalidCoordinatesError as exc:
        raise InvalidCoordinatesError(f"coordinate {spatial.y!r}: {exc}") from None


def plan_embedding(
    template: xr.Dataset | xr.DataArray,
    *,
    level: int | None = None,
    model: ModelLike | None = None,
    numerics: Numerics | None = None,
    dtype: DType = "float32",
    device: DeviceLike = "auto",
    batch_size: int | None = None,
    chunks: ChunksLike = None,
    default_chunk: Callable[[str, int], int] = lambda dim, size: DEFAULT_CHUNK,
) -> EmbeddingPlan:
    """Resolve coordinates, model and chunks for embedding ``template``'s grid.

    Latitudes are validated here, once. Chunks: ``chunks`` (see :func:`requested_chunks`),
    else ``default_chunk(dim, size)``, at most the dim's size.
    """
    spatial = find_spatial_coords(template)
    _check_latitudes(template, spatial)
    check_batch_size(batch_size)
    encoder = resolve_model(model, level=level, numerics=numerics, dtype=dtype, device=device)
    spec = ModelSpec.of(encoder, device)
    register_model(encoder, spec)
    requested = requested_chunks(template, spatial.dims, chunks)
    sizes = {d: min(requested.get(d) or default_chunk(d, template.sizes[d]), template.sizes[d])
             for d in spatial.dims}
    return EmbeddingPlan(template, spatial, encoder, spec, sizes, bool(requested), batch_size)


def _coordinate(obj: xr.Dataset | xr.DataArray, name: str, dims: tuple[str, ...],
                chunks: dict[str, int]) -> da.Array:
    values = np.asarray(obj.coords[name].values, dtype=np.float64)
    return da.from_array(values, chunks=tuple(chunks[d] for d in dims), name=False)


def build_embedding(plan: EmbeddingPlan) -> xr.DataArray:
    """The lazy DataArray ``embeddings`` of ``plan``: dims ``("embedding", *spatial_dims)``
    (band-first, as rioxarray and GDAL expect), the embedding dim one chunk, the spatial
    dims chunked as planned. The template's spatial coordinates, its CRS (with a CF
    ``grid_mapping`` attribute) and the model's provenance attrs are kept."""
    obj, spatial, encoder = plan.template, plan.spatial, plan.encoder
    dim_e = encoder.embed_dim
    crs_wkt = spatial.crs.to_wkt() if spatial.crs is not None and spatial.kind == "projected" \
        else None
    # The coordinate inputs share no index, or were chunked alike (curvilinear): nothing to
    # align, and aligning would warn that the 2-D output has many more chunks than they do.
    common = dict(spec=plan.spec, batch_size=plan.batch_size, dtype=np.dtype(encoder.output_dtype),
                  new_axes={"e": dim_e}, meta=np.empty((0, 0, 0), dtype=encoder.output_dtype),
                  align_arrays=False)
    if spatial.kind == "curvilinear":
        lat = _coordinate(obj, spatial.y, spatial.dims, plan.chunks)
        lon = _coordinate(obj, spatial.x, spatial.dims, plan.chunks)
        data = da.blockwise(embed_points_block, "eyx", lat, "yx", lon, "yx", **common)
    else:
        y = _coordinate(obj, spatial.y, spatial.dims[:1], plan.chunks)
        x = _coordinate(obj, spatial.x, spatial.dims[1:], plan.chunks)
        data = da.blockwise(embed_grid_block, "eyx", y, "y", x, "x", crs_wkt=crs_wkt, **common)
    coords = {name: obj.coords[name].variable for name in obj.coords
              if set(obj.coords[name].dims) <= set(spatial.dims)}
    coords["embedding"] = xr.Variable("embedding", np.arange(dim_e))
    from .. import __version__

    out = xr.DataArray(data, dims=("embedding", *spatial.dims), coords=coords,
                       name=VARIABLE,
                       attrs={"long_name": "SatCLIP location embedding",
                              **encoder.identity.attrs(), "xsatclip_version": __version__})
    if spatial.crs is not None:
        out = out.rio.write_crs(spatial.crs)
    return with_grid_mapping(out)


def embed(obj: xr.Dataset | xr.DataArray, level: int | None = None,
          model: ModelLike | None = None, *, device: DeviceLike = "auto",
          dtype: DType = "float32", batch_size: int | None = None,
          numerics: Numerics | None = None, chunks: ChunksLike = None) -> xr.DataArray:
    """SatCLIP embeddings of every location of ``obj``'s grid, lazily with Dask.

    Returns a DataArray ``embeddings`` with dims ``("embedding", *spatial_dims)``; the
    embedding dim is one chunk. Spatial chunks follow ``chunks=``, else the input's, else
    :data:`DEFAULT_CHUNK`.
    """
    return build_embedding(plan_embedding(obj, level=level, model=model, numerics=numerics,
                                          dtype=dtype, device=device, batch_size=batch_size,
                                          chunks=chunks))
