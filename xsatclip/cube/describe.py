"""What a Zarr store of embeddings holds: :func:`info`, for xsatclip cubes and for any store
with an ``embedding`` dim and two spatial ones (geographic or projected).

Reads metadata with zarr alone and imports neither torch nor the model, so ``xsatclip info``
starts in about the time of a zarr import.
"""

from __future__ import annotations

import os
from typing import Any

import fsspec
import numpy as np
import pyproj
import zarr

from ..errors import InputNotFoundError, InvalidOptionError, StoreError
from ..raster.coords import EMBEDDING_DIM, VARIABLE
from .layout import DONE_CLIPPED, DONE_PATH

GEOGRAPHIC_NAMES = {"lat", "latitude", "lon", "longitude"}
Y_NAMES = ("lat", "latitude", "y")


def info(store: str | os.PathLike, *, storage_options: dict | None = None) -> dict[str, Any]:
    """Summary of the embedding store at ``store`` (path or fsspec URL) as a plain dict:
    variable, layout, dims, CRS, dtype, codecs, bytes on disk, latitude order as stored,
    completeness, provenance; ``unverified`` lists what a store not written by xsatclip
    cannot tell. A cube being created (or killed while it was) is ``state`` incomplete."""
    url = str(store) if "://" in str(store) else os.path.abspath(os.path.expanduser(store))
    try:
        group = zarr.open_group(url, mode="r", storage_options=storage_options)
    except (FileNotFoundError, zarr.errors.NodeNotFoundError):
        raise InputNotFoundError(f"no cube at {url}") from None
    except (ValueError, OSError) as exc:  # corrupt zarr.json, unknown metadata, ...
        raise StoreError(f"{url} is not a readable Zarr store ({exc})") from None
    attrs = dict(group.attrs)
    cube = "xsatclip_cube" in attrs
    empty = not attrs and next(iter(group.keys()), None) is None  # a creation's first object
    unfinished = group.metadata.consolidated_metadata is None or VARIABLE not in group
    if empty or (cube and unfinished):
        return {"store": url, "state": "incomplete", "complete_metadata": False,
                "chunks_done": 0, "chunks_total": None, "model": {}, "created": None,
                "xsatclip_version": attrs.get("xsatclip_version")}
    name = embedding_array_name(group, url)
    array = _array(group, name)
    dims = dimension_names(array)
    spatial = [d for d in dims if d != EMBEDDING_DIM]
    ydim = next((d for d in spatial if d.lower() in Y_NAMES), spatial[0])
    out: dict[str, Any] = {
        "store": url,
        "state": "complete" if cube else "foreign",
        "complete_metadata": cube,
        "variable": name,
        "layout": "band-first" if dims[0] == EMBEDDING_DIM else "channels-last (v1)",
        "dims": dict(zip(dims, array.shape, strict=True)),
        "grid": attrs.get("xsatclip_grid"),
        "crs": _crs(group, {**attrs, **array.attrs}, spatial),
        "stored_dtype": str(array.dtype),
        "dtype": attrs.get("xsatclip_dtype", str(array.dtype)),
        "scale_factor": array.attrs.get("scale_factor"),
        "quantization": attrs.get("xsatclip_quantization"),
        "codecs": _codecs(array),
        "bytes_on_disk": _bytes_on_disk(url, storage_options),
        "chunks": list(array.shards or array.chunks),  # shards: the unit of chunks_done
        "inner_chunks": list(array.chunks),
        "model": {k[len("model_"):]: v for k, v in attrs.items() if k.startswith("model_")},
        "xsatclip_version": attrs.get("xsatclip_version"),
        "created": attrs.get("created"),
    }
    for dim in spatial:
        values = np.asarray(_array(group, dim)[...]) if dim in group else np.zeros(0)
        if values.size:
            out[f"{dim}_range"] = [float(values.min()), float(values.max())]
            if dim == ydim and values.size > 1:
                out["y_order"] = ("descending (north-up)" if values[0] > values[-1]
                                  else "ascending (south-up)")
    out.update(_completeness(group, array, cube))
    out["unverified"] = ([attrs["xsatclip_unverified"]] if "xsatclip_unverified" in attrs
                         else []) if cube else [
        "provenance (no model_* attrs)" if not out["model"] else "provenance as recorded",
        "completeness (no completion markers: counts the stored chunks)",
        *([] if out["crs"] else ["CRS (none recorded)"])]
    return out


def embedding_array_name(group: zarr.Group, where: str) -> str:
    """Name of the embedding array of ``group``: ``embeddings``, else the one array with an
    ``embedding`` dim and two others."""
    if VARIABLE in group:
        return VARIABLE
    found = [name for name, a in group.arrays()
             if EMBEDDING_DIM in dimension_names(a) and a.ndim == 3]
    if len(found) != 1:
        raise InvalidOptionError(f"{where} holds {len(found)} 3-D arrays with an "
                                 f"{EMBEDDING_DIM!r} dim ({found}); expected one")
    return found[0]


def dimension_names(array: zarr.Array) -> list[str]:
    """Dim names of a Zarr v3 array, or of a v2 array written by xarray."""
    names = getattr(array.metadata, "dimension_names", None)
    return [str(n) for n in names or array.attrs.get("_ARRAY_DIMENSIONS") or ()]  # type: ignore[union-attr]


def _array(group: zarr.Group, path: str) -> zarr.Array:
    node = group[path]
    if not isinstance(node, zarr.Array):
        raise StoreError(f"{path} in {group.store} is a group, expected an array")
    return node


def _crs(group: zarr.Group, attrs: dict[str, Any], spatial: list[str]) -> str | None:
    """The CRS recorded by ``proj:`` or a CF grid mapping; EPSG:4326 for lat/lon dims."""
    text = attrs.get("proj:code") or attrs.get("proj:wkt2")
    mapping = attrs.get("grid_mapping")
    if text is None and isinstance(mapping, str) and mapping in group:
        cf = group[mapping].attrs
        text = cf.get("crs_wkt") or cf.get("spatial_ref")
    if text is not None:
        crs = pyproj.CRS.from_user_input(text)
        code = crs.to_authority()
        return ":".join(code) if code else crs.to_wkt()
    if {d.lower() for d in spatial} <= GEOGRAPHIC_NAMES:
        return "EPSG:4326 (assumed from lat/lon dims)"
    return None


def _codecs(array: zarr.Array) -> list[str]:
    """Codec names, inner ones of a sharding codec in brackets."""
    names = []
    for codec in getattr(array.metadata, "codecs", ()):
        spec = codec.to_dict()
        inner = spec.get("configuration", {}).get("codecs") if isinstance(spec, dict) else None
        names.append(f"{spec['name']}[{', '.join(c['name'] for c in inner)}]" if inner
                     else spec["name"])
    compressor = getattr(array.metadata, "compressor", None)  # Zarr v2
    return names or ([compressor.codec_id] if compressor is not None else [])


def _bytes_on_disk(url: str, storage_options: dict | None) -> int:
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return int(fs.du(path))


def _completeness(group: zarr.Group, array: zarr.Array, cube: bool) -> dict[str, Any]:
    """Written units of work: the completion markers of a cube (one per shard), the stored
    (inner) chunks of any other store."""
    if cube and DONE_PATH in group:
        done = np.asarray(_array(group, DONE_PATH)[...])
        return {"chunks_done": int(np.count_nonzero(done)), "chunks_total": int(done.size),
                "chunks_clipped": int(np.count_nonzero(done == DONE_CLIPPED))}
    return {"chunks_done": int(array.nchunks_initialized), "chunks_total": int(array.nchunks),
            "chunks_clipped": 0}
