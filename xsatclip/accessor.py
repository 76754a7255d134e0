"""The ``.satclip`` accessors on xarray objects: validate, then delegate."""

from __future__ import annotations

from typing import TYPE_CHECKING

import xarray as xr

if TYPE_CHECKING:  # torch, Dask and Numba load on first use, not on import xsatclip
    from .harmonics import Numerics
    from .model.backend import DeviceLike, DType
    from .model.load import ModelLike
    from .raster.embed import ChunksLike


class _SatclipAccessor:
    def __init__(self, xarray_obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = xarray_obj

    def embed(self, level: int | None = None, model: ModelLike | None = None, *,
              device: DeviceLike = "auto", dtype: DType = "float32",
              batch_size: int | None = None, numerics: Numerics | None = None,
              chunks: ChunksLike = None) -> xr.DataArray:
        """SatCLIP embeddings over this object's grid, lazily (Dask).

        Parameters
        ----------
        level : int, optional
            Legendre degrees of the default model (40 when ``model`` is not given).
        model : optional
            A registry name, Hub id, ``.ckpt`` file, xsatclip model directory, or a
            :class:`~xsatclip.LocationEncoder`.
        device : "auto" (CUDA when torch sees one), "cpu", "cuda", ...
        dtype : "float32" or "float64"
        batch_size : points per forward pass; bounds the memory of each task.
        numerics : "exact" (default) or "reference".
        chunks : int or {dim: int}; default: the input's spatial chunks, else 256.

        Returns
        -------
        DataArray ``embeddings`` with dims ``("embedding", *spatial_dims)`` (band-first), the
        CRS in ``spatial_ref`` (CF ``grid_mapping``).
        """
        from .raster import embed  # torch, Dask and Numba load on first use

        return embed(self._obj, level, model, device=device, dtype=dtype,
                     batch_size=batch_size, numerics=numerics, chunks=chunks)


@xr.register_dataset_accessor("satclip")
class SatclipDatasetAccessor(_SatclipAccessor):
    """``ds.satclip``: SatCLIP embeddings of a Dataset's grid (data variables optional)."""


@xr.register_dataarray_accessor("satclip")
class SatclipDataArrayAccessor(_SatclipAccessor):
    """``da.satclip``: SatCLIP embeddings of a DataArray's grid."""
