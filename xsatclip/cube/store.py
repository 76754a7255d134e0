"""Where a cube lives and what it holds: targets (local or fsspec), the lock, the state of
a store, its creation and the check that a resumed store matches.

Crash safety and resume
-----------------------
The store is created first: metadata, coordinates and empty arrays, with consolidated
metadata written last (a store without it is a creation that was interrupted, and is
recreated; no chunk can be done yet). The first chunks are computed meanwhile, but none is
written before the store is complete. Every chunk is then written, and only after the data
write has returned (and, on a local store, the data is on disk: ``fdatasync`` of the file and
``fsync`` of its directory, since Zarr renames it into place) is its marker
set in ``_xsatclip/done`` (one Zarr chunk per marker, so concurrent writers never share an
object). A process killed at any moment leaves each chunk either marked, and completely
written, or unmarked; a rerun recomputes the unmarked chunks, overwriting any partial data,
and ends identical to an uninterrupted run, bit for bit: every chunk is computed the same
way (one torch thread, the same block shapes), whichever thread, process or Dask worker
computes it. (A different ``batch_size``
or device on the rerun may change the last bits of float32 values: it is not checked.)
Metadata is never rewritten by a resume, so the attributes (``created`` included) stay those
of the first run. A rerun with another model (weights sha256), numerics, grid, storage
dtype or chunking raises :class:`~xsatclip.errors.StoreError` naming the differences, unless
``overwrite=True``.

Overwriting and leftovers
-------------------------
``overwrite`` replaces only an xsatclip cube (complete or not) or an empty directory, never
another directory (the working directory, given an empty path, least of all). The old cube
is first marked incomplete, then deleted (:func:`~.durable.clear_store`): a kill at any
moment leaves no store that looks complete with chunks missing, and a rerun recreates it. A
resume removes Zarr's ``*.partial`` temporary files left by a chunk write that was cut off
(:mod:`.durable`). Locking: :mod:`.lock`.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import warnings
from typing import Literal

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from ..errors import InvalidOptionError
from ..model import Encoder
from ..raster import SpatialCoords
from .codec import Codec, quantization_formula
from .durable import clear_store
from .layout import DONE, DONE_CLIPPED, FORMAT_VERSION, VARIABLE


@dataclasses.dataclass(frozen=True)
class StoreTarget:
    """Where a cube lives: an absolute local path or an fsspec URL (picklable)."""

    url: str
    local: bool
    options: tuple = ()  # storage_options items

    def store(self, read_only: bool = False):
        if self.local:
            return zarr.storage.LocalStore(self.url, read_only=read_only)
        return zarr.storage.FsspecStore.from_url(
            self.url, storage_options=dict(self.options) or None, read_only=read_only)


def store_target(store: str | os.PathLike, storage_options: dict | None = None) -> StoreTarget:
    text = os.fspath(store)
    if not text.strip():
        raise InvalidOptionError("the store path is empty (it would be the current directory)")
    if text.startswith("file://"):
        text = text[len("file://"):]
    if "://" in text:
        return StoreTarget(text.rstrip("/"), False, tuple(sorted((storage_options or {}).items())))
    if storage_options:
        raise InvalidOptionError("storage_options apply to URLs (s3://, gs://, ...), not local "
                                 "paths")
    return StoreTarget(os.path.abspath(os.path.expanduser(text)), True)


def open_group(target: StoreTarget, mode: Literal["r", "r+"] = "r") -> zarr.Group:
    return zarr.open_group(target.store(read_only=mode == "r"), mode=mode)


def inspect_store(target: StoreTarget):
    """``(state, group)``; state is absent, foreign, unreadable, incomplete (being created,
    or killed while it was) or complete."""
    try:
        group = open_group(target)
    except (FileNotFoundError, NotADirectoryError, zarr.errors.NodeNotFoundError):
        if target.local and os.path.lexists(target.url):
            if not os.path.isdir(target.url) or os.listdir(target.url):
                return "foreign", None
        return "absent", None
    except (ValueError, OSError):  # corrupt zarr.json, unknown metadata, ...
        return "unreadable", None
    if "xsatclip_cube" not in group.attrs:
        # The first object of a creation is an empty root group: nothing to lose in it.
        empty = not dict(group.attrs) and next(iter(group.keys()), None) is None
        return ("incomplete" if empty else "foreign"), group
    if group.metadata.consolidated_metadata is None:
        return "incomplete", group
    return "complete", group


def provenance_attrs(encoder: Encoder, grid_def: str, codec: Codec, sizes: dict) -> dict:
    from .. import __version__

    return {
        "title": "SatCLIP location embeddings",
        "Conventions": "CF-1.8",
        "xsatclip_cube": FORMAT_VERSION,
        "xsatclip_version": __version__,
        "xsatclip_grid": grid_def,
        "xsatclip_dtype": codec.dtype,
        "xsatclip_quantization": quantization_formula(codec),
        "xsatclip_chunks": [int(c) for c in sizes.values()],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **encoder.identity.attrs(),
    }


def create_store(target: StoreTarget, emb: xr.DataArray, spatial: SpatialCoords, codec: Codec,
                 attrs: dict, *, replace: bool) -> None:
    """Metadata, coordinates, empty arrays, markers; consolidated metadata last."""
    sizes = tuple(emb.data.chunks[i][0] for i in (1, 2))  # emb: (embedding, y, x)
    shape = emb.shape
    # Placeholder: one lazy chunk, never computed (compute=False writes no data).
    placeholder = da.empty(shape, chunks=shape, dtype=np.float32)
    var_attrs = {"long_name": "SatCLIP location embedding", **emb.attrs}
    ds = xr.Dataset({VARIABLE: (emb.dims, placeholder, var_attrs)}, coords=emb.coords,
                    attrs=attrs)
    if spatial.kind == "rectilinear" and _is_geographic(emb):
        ds[spatial.y].attrs.setdefault("units", "degrees_north")
        ds[spatial.x].attrs.setdefault("units", "degrees_east")
    ds["embedding"].attrs.setdefault("long_name", "embedding channel")
    # spatial_ref (from embed) is named by the CF grid_mapping attribute (in attrs, not
    # encoding: xarray then also lists it in "coordinates", so it reopens as a coordinate).
    encoding = {VARIABLE: codec.encoding((shape[0], *sizes))}
    if replace:
        clear_store(target)
    store = target.store()
    ds.to_zarr(store, mode="w" if replace else "w-", zarr_format=3, consolidated=False,
               compute=False, encoding=encoding)
    group = zarr.open_group(store, mode="r+")
    nby, nbx = (len(c) for c in emb.data.chunks[1:])
    markers = group.create_group("_xsatclip")
    done = markers.create_array(
        "done", shape=(nby, nbx), chunks=(1, 1), dtype="uint8", fill_value=0,
        attributes={"long_name": "chunk completion markers",
                    "flag_values": [0, DONE, DONE_CLIPPED],
                    "flag_meanings": "not_written written written_with_saturated_values",
                    "chunk_shape": list(sizes)})
    del done
    with warnings.catch_warnings():  # "consolidated metadata is not in the v3 spec (yet)"
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        zarr.consolidate_metadata(store)


def _is_geographic(obj) -> bool:
    crs = obj.rio.crs
    return crs is not None and crs.is_geographic



def _describe(values: np.ndarray) -> str:
    if values.size == 0:
        return "0 values"
    return f"{values.size} values {values.flat[0]:g} .. {values.flat[-1]:g}"


def differences(group, emb: xr.DataArray, encoder: Encoder, dtype: str,
                 sizes: dict, chunks_chosen: bool) -> list[str]:
    attrs = group.attrs
    diffs = []
    if attrs.get("xsatclip_cube") != FORMAT_VERSION:
        diffs.append(f"format: the store is xsatclip cube format v{attrs.get('xsatclip_cube')}, "
                     f"this version writes v{FORMAT_VERSION} (xsatclip convert OLD NEW)")
    ident = encoder.identity
    if attrs.get("model_sha256") != ident.sha256:
        diffs.append(f"model: the store has {attrs.get('model_name')} (sha256 "
                     f"{str(attrs.get('model_sha256'))[:12]}...), requested {ident.name} "
                     f"(sha256 {ident.sha256[:12]}...)")
    for key in ("numerics", "convention"):
        stored, wanted = attrs.get(f"model_{key}"), getattr(ident, key)
        if stored != wanted:
            diffs.append(f"{key}: the store has {stored!r}, requested {wanted!r}")
    if attrs.get("xsatclip_dtype") != dtype:
        diffs.append(f"dtype: the store has {attrs.get('xsatclip_dtype')!r}, "
                     f"requested {dtype!r}")
    grid_diffs = []
    for name, coord in emb.coords.items():
        if name in ("embedding", "spatial_ref"):
            continue
        wanted = np.asarray(coord.values)
        if name not in group:
            grid_diffs.append(f"{name} is missing from the store")
            continue
        stored = np.asarray(group[name][...])
        if stored.shape != wanted.shape or not np.array_equal(stored, wanted):
            grid_diffs.append(f"{name}: the store has {_describe(stored)}, requested "
                              f"{_describe(wanted)}")
    if grid_diffs:
        definition = attrs.get("xsatclip_grid")
        diffs.append(f"grid (the store's: {definition}): " + "; ".join(grid_diffs))
    stored_chunks = (group[VARIABLE].shards or group[VARIABLE].chunks)[1:]
    if chunks_chosen and tuple(sizes.values()) != tuple(stored_chunks):
        diffs.append(f"chunks: the store has {tuple(stored_chunks)}, requested "
                     f"{tuple(sizes.values())}")
    return diffs


