"""Embedding cubes in Zarr v3: resumable, crash-safe precompute; open, inspect.

Sampling cubes at points lives in :mod:`xsatclip.sampling`.

A cube is a Zarr v3 group (local path or fsspec URL) with consolidated metadata holding

* ``embeddings`` (embedding, lat, lon), band-first: the SatCLIP embedding of every grid cell
  centre,
  stored as float32, float16 or int8 (see *Storage dtypes*);
* the coordinates ``lat``/``lon`` (CF units), ``embedding`` (0 .. embed_dim-1) and
  ``spatial_ref`` (EPSG:4326, read by rioxarray), and provenance attributes (``model_*``,
  ``xsatclip_*``, ``created``);
* ``_xsatclip/done``: one uint8 per spatial chunk, the completion markers (a sub-group, so
  ``xr.open_zarr`` does not show it).

The variable is ``embeddings`` and not ``embedding`` because the embedding dimension has a
coordinate of that name, and xarray allows no data variable named like a coordinate; the
output of ``.satclip.embed`` and :func:`~xsatclip.sample` carries the same name.

See :mod:`.layout` (chunks, dtypes), :mod:`.store` (crash safety), :mod:`.lock`,
:mod:`.durable` (overwrite, leftovers), :mod:`.verify` (corruption, repair) and
:mod:`.writer` (writing). Products derived from a cube: :mod:`.export` (COG),
:mod:`.overviews`, :mod:`.preview`, :mod:`.stac` (read through :mod:`.source`).
"""

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .codec import dequantize, int8_scale
    from .convert import convert
    from .describe import info
    from .export import export_cog
    from .layout import DONE_PATH, STORAGE_DTYPES, VARIABLE, default_chunk
    from .overviews import build_overviews
    from .precompute import precompute
    from .preview import build_preview, compute_preview, open_preview, render_preview
    from .read import open_cube
    from .stac import write_stac_item

# Public name -> module that defines it, loaded on first use (``info`` needs no torch).
_EXPORTS = {
    "DONE_PATH": ".layout", "STORAGE_DTYPES": ".layout", "VARIABLE": ".layout",
    "default_chunk": ".layout", "dequantize": ".codec", "int8_scale": ".codec",
    "info": ".describe", "export_cog": ".export", "build_overviews": ".overviews",
    "precompute": ".precompute", "build_preview": ".preview", "compute_preview": ".preview",
    "open_preview": ".preview", "render_preview": ".preview", "open_cube": ".read",
    "write_stac_item": ".stac", "convert": ".convert",
}

lazy_exports(__name__, _EXPORTS)

__all__ = [
    "DONE_PATH",
    "STORAGE_DTYPES",
    "VARIABLE",
    "build_overviews",
    "build_preview",
    "compute_preview",
    "convert",
    "default_chunk",
    "dequantize",
    "export_cog",
    "info",
    "int8_scale",
    "open_cube",
    "open_preview",
    "precompute",
    "render_preview",
    "write_stac_item",
]
