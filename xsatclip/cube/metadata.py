"""The metadata conventions of a cube: ``geoemb:`` (geo-embeddings), ``proj:`` and
``spatial:``, declared in ``zarr_conventions``.

The cube's group carries all three (``geoemb:`` is a group convention); its ``embeddings``
array carries ``spatial:dimensions``. ``proj:``/``spatial:`` are written by zarr-cm
(:func:`~xsatclip.cube.source.convention_attrs`); zarr-cm 0.5 has no ``geoemb:`` module, so
that block is written here after the convention's v1 schema
(github.com/geo-embeddings/embeddings-zarr-convention) and checked by
:func:`check_geoemb`.

``geoemb:type`` is ``pixel``: the convention knows ``pixel`` and ``chip``, and a
location-encoder cube, one vector per grid cell, is closest to ``pixel``. int8 cubes record
``geoemb:quantization`` ``linear`` with a scalar ``scale`` (the CF ``scale_factor``, a float32
written exactly) and ``offset`` 0; the exact dequantisation, as :func:`dequantize` and
xarray's CF decoding compute it, is in the cube's ``xsatclip_quantization``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyproj
import xarray as xr
import zarr_cm

from ..errors import InvalidCoordinatesError, StoreError
from ..raster.coords import EMBEDDING_DIM, WGS84, find_crs
from .codec import Codec
from .source import EmbeddingSource, convention_attrs, open_source

GEOEMB = {
    "uuid": "61c12cc5-0e28-4056-999a-480cf3fb7e4c",
    "name": "geoemb:",
    "description": "Geoembeddings convention for geospatial embedding arrays with model "
                   "provenance",
    "spec_url": "https://github.com/geo-embeddings/embeddings-zarr-convention/blob/v1/"
                "README.md",
    "schema_url": "https://raw.githubusercontent.com/geo-embeddings/"
                  "embeddings-zarr-convention/refs/tags/v1/schema.json",
}
GEOEMB_REQUIRED = {"geoemb:type": str, "geoemb:dimensions": int, "geoemb:model": str,
                   "geoemb:source_data": list, "geoemb:data_type": str}
UNKNOWN_SOURCE = "urn:xsatclip:source-data:unknown"
CONVENTION_PREFIXES = ("geoemb:", "proj:", "spatial:")
GRID_ONLY = ("zarr_conventions", "grid_mapping", "xsatclip_chunks")


def point_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` of a cube without what describes its grid (the conventions, ``grid_mapping``,
    chunks): the provenance kept on values read at points, all netCDF-serialisable."""
    return {k: v for k, v in attrs.items()
            if k not in GRID_ONLY and not k.startswith(CONVENTION_PREFIXES)}


def geoemb_attrs(embed_dim: int, codec: Codec, attrs: dict[str, Any],
                 source: EmbeddingSource | None) -> dict[str, Any]:
    """The ``geoemb:`` properties of a cube with provenance ``attrs`` (the model's
    ``model_*`` attrs and ``xsatclip_version``) on ``source``'s grid (None: curvilinear)."""
    from .stac import _gsd, _model_link, _source_data  # the same links as the STAC Item

    model_href, _, _ = _model_link(attrs)
    out: dict[str, Any] = {
        "geoemb:type": "pixel",
        "geoemb:dimensions": int(embed_dim),
        "geoemb:model": model_href,
        "geoemb:source_data": [url for _, url in _source_data(attrs)] or [UNKNOWN_SOURCE],
        "geoemb:data_type": codec.dtype,
        "geoemb:build_version": f"xsatclip {attrs.get('xsatclip_version', 'unknown')}",
    }
    if source is not None:
        try:
            out["geoemb:gsd"] = _gsd(source)
        except InvalidCoordinatesError:  # not evenly spaced: no single cell size
            pass
        if source.crs.is_geographic and _covers_globe(source):
            out["geoemb:spatial_layout"] = "global"
    if codec.dtype == "int8":
        out["geoemb:quantization"] = {
            "method": "linear", "original_dtype": "float32", "quantized_dtype": "int8",
            "scale": {"type": "scalar", "scale": float(np.float32(codec.scale)),
                      "offset": 0.0}}
    elif codec.dtype == "float16":
        out["geoemb:quantization"] = {"method": "cast", "original_dtype": "float32",
                                      "quantized_dtype": "float16"}
    return out


def _covers_globe(source: EmbeddingSource) -> bool:
    y, x = np.abs(np.diff(source.y[:2])), np.abs(np.diff(source.x[:2]))
    if not (y.size and x.size):
        return False
    return bool(source.y.size * y[0] >= 180 - 1e-6 and source.x.size * x[0] >= 360 - 1e-6)


def cube_conventions(emb: xr.DataArray, codec: Codec, attrs: dict[str, Any]
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(group attrs, array attrs) with the conventions of a cube of ``emb``'s grid: the group
    gets ``geoemb:``, ``proj:`` and ``spatial:``, the array ``spatial:dimensions``. Grids
    that are not regular (curvilinear, unevenly spaced) get ``proj:`` without ``spatial:``."""
    try:
        source: EmbeddingSource | None = open_source(emb)
    except InvalidCoordinatesError:  # curvilinear
        source = None
    group = geoemb_attrs(emb.sizes[EMBEDDING_DIM], codec, attrs, source)
    spatial = _regular_grid_attrs(source) or _proj_only(find_crs(emb) or WGS84)
    declarations = [GEOEMB, *spatial.pop("zarr_conventions", [])]
    group = {"zarr_conventions": declarations, **group, **spatial}
    dims = [d for d in emb.dims if d != EMBEDDING_DIM]
    array = dict(zarr_cm.create_many({"spatial": {"spatial:dimensions": dims}}))
    return group, array


def _regular_grid_attrs(source: EmbeddingSource | None) -> dict[str, Any] | None:
    """``proj:`` and ``spatial:`` of a regular grid; None for other grids."""
    if source is None:
        return None
    try:
        return convention_attrs(source, source.y, source.x)
    except InvalidCoordinatesError:  # unevenly spaced
        return None


def _proj_only(crs: pyproj.CRS) -> dict[str, Any]:
    code = crs.to_authority()
    proj = (zarr_cm.proj.create(code=":".join(code)) if code
            else zarr_cm.proj.create(wkt2=crs.to_wkt()))
    conventions: Any = {"proj": proj}
    return dict(zarr_cm.create_many(conventions))


def check_geoemb(attrs: dict[str, Any]) -> None:
    """Raise :class:`StoreError` naming what is wrong when ``attrs`` (a group's) declare no
    valid ``geoemb:`` convention (the v1 schema's required fields, types and values)."""
    problems = []
    declared = [c for c in attrs.get("zarr_conventions", [])
                if isinstance(c, dict) and c.get("uuid") == GEOEMB["uuid"]]
    if not declared:
        problems.append(f"zarr_conventions declares no geoemb: ({GEOEMB['uuid']})")
    for cmo in declared:
        zarr_cm.validate_convention_metadata_object(cmo)
        problems += [f"zarr_conventions geoemb: {k}={cmo[k]!r}, expected {v!r}"
                     for k, v in GEOEMB.items() if k in cmo and cmo[k] != v]
    for key, kind in GEOEMB_REQUIRED.items():
        if not isinstance(attrs.get(key), kind) or isinstance(attrs.get(key), bool):
            problems.append(f"{key} must be a {kind.__name__}, got {attrs.get(key)!r}")
    if attrs.get("geoemb:type") not in ("pixel", "chip"):
        problems.append(f"geoemb:type must be pixel or chip, got {attrs.get('geoemb:type')!r}")
    if not isinstance(attrs.get("geoemb:dimensions"), int) or attrs["geoemb:dimensions"] < 1:
        problems.append("geoemb:dimensions must be >= 1")
    if not attrs.get("geoemb:source_data") or not all(
            isinstance(s, str) and ":" in s for s in attrs.get("geoemb:source_data") or []):
        problems.append("geoemb:source_data must be a non-empty list of URIs")
    quantization = attrs.get("geoemb:quantization")
    if quantization is not None:
        problems += _quantization_problems(quantization)
    if problems:
        raise StoreError("invalid geoemb: metadata: " + "; ".join(problems))


def _quantization_problems(q: Any) -> list[str]:
    if not isinstance(q, dict):
        return [f"geoemb:quantization must be an object, got {q!r}"]
    problems = [f"geoemb:quantization.{k} is required" for k in ("method", "original_dtype")
                if not isinstance(q.get(k), str)]
    extra = set(q) - {"method", "original_dtype", "quantized_dtype", "scale", "link"}
    if extra:
        problems.append(f"geoemb:quantization has unknown fields {sorted(extra)}")
    scale = q.get("scale")
    if scale is not None:
        scalar = (isinstance(scale, dict) and scale.get("type") == "scalar"
                  and isinstance(scale.get("scale"), (int, float))
                  and set(scale) <= {"type", "scale", "offset"})
        array = (isinstance(scale, dict) and scale.get("type") == "array"
                 and isinstance(scale.get("array_name"), str)
                 and set(scale) <= {"type", "array_name", "nodata"})
        if not (scalar or array):
            problems.append(f"geoemb:quantization.scale is neither a scalar nor an array "
                            f"scale object: {scale!r}")
    return problems
