"""A STAC Item describing a cube (:func:`write_stac_item`), with the fields of the STAC
embeddings extension (``emb:``, v0.0.1), the processing and projection extensions.

Properties: ``emb:type`` (``"pixel"``: one vector per grid cell; a location-encoder cube has
no closer type), ``emb:dimensions``, ``data_type`` (the stored dtype), ``gsd`` (metres: the
cell size, for lat/lon grids at the equator, ``degrees * 111,319.49``),
``emb:quantization`` (int8: ``linear`` with the cube's ``scale_factor`` and offset 0; float16: a
``cast`` of the float32 outputs; float32: ``none``), ``processing:datetime`` (when the cube
was created), ``processing:version``/``processing:software`` (the xsatclip that wrote it),
``proj:code``. Links: ``emb:model`` (the model's Hub page, file, or ``urn:xsatclip:model:``
name and weights sha256) and ``emb:source-data`` (what the model was trained on, when
known). Asset ``embeddings``: the store (``application/vnd.zarr; version=3``), with its
``proj:shape``/``proj:transform``/``proj:bbox``. ``datetime`` is the creation time too:
a location embedding has no acquisition time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyproj

from ..errors import missing_dependency
from ..model.registry import PUBLISHED_MODELS
from ..raster.coords import WGS84
from .source import EmbeddingSource, grid_transform, open_source
from .store import store_target

EMBEDDINGS_SCHEMA = "https://stac-extensions.github.io/embeddings/v0.0.1/schema.json"
PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
PROJECTION_SCHEMA = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
ZARR_MEDIA_TYPE = "application/vnd.zarr; version=3"
METRES_PER_DEGREE = 2 * np.pi * 6_378_137.0 / 360  # WGS84 equator
SOURCE_DATA = {  # model name prefix or family -> (title, URL) of its training data
    "bluemarble": [("NASA Blue Marble Next Generation",
                    "https://visibleearth.nasa.gov/collection/1484/blue-marble"),
                   ("NOAA ETOPO1 global relief",
                    "https://www.ncei.noaa.gov/products/etopo-global-relief-model")],
    "satclip": [("S2-100K: Sentinel-2 L2A tiles at 100,000 locations (SatCLIP)",
                 "https://github.com/microsoft/satclip")],
    "geoclip": [("MP-16: geotagged Flickr photos (GeoCLIP)",
                 "https://github.com/VicenteVivan/geo-clip")],
}


def write_stac_item(store: str | os.PathLike, path: str | os.PathLike | None = None, *,
                    storage_options: dict | None = None) -> dict[str, Any]:
    """Write a STAC Item JSON for the cube at ``store`` and return it as a dict.

    Parameters
    ----------
    store : local path or fsspec URL of the cube.
    path : where to write the JSON (default ``<store>.stac.json``, beside the store); a local
        path or an fsspec URL.
    storage_options : for fsspec URLs (the store's and ``path``'s).
    """
    try:
        import pystac
    except ImportError as exc:
        raise missing_dependency("STAC Items", "stac", exc) from None
    source = open_source(store, storage_options)
    target = store_target(store, storage_options)
    item_path = os.fspath(path) if path is not None else target.url + ".stac.json"
    attrs = source.attrs
    created = _created(attrs)
    bbox, geometry = _footprint(source)
    embed_dim, _, _ = source.shape
    version = str(attrs.get("xsatclip_version", "unknown"))
    properties: dict[str, Any] = {
        "title": f"{attrs.get('title', 'Location embeddings')}: "
                 f"{attrs.get('model_name', 'unknown model')}",
        "emb:type": "pixel",
        "emb:dimensions": int(embed_dim),
        "data_type": str(source.array.dtype),
        "gsd": _gsd(source),
        "emb:quantization": _quantization(source),
        "processing:datetime": _iso(created),
        "processing:version": version,
        "processing:software": {"xsatclip": version},
        "proj:code": _proj_code(source.crs),
    }
    item = pystac.Item(
        id=re.sub(r"\.zarr$", "", target.url.rstrip("/").rsplit("/", 1)[-1]),
        geometry=geometry, bbox=bbox, datetime=created, properties=properties,
        stac_extensions=[EMBEDDINGS_SCHEMA, PROCESSING_SCHEMA, PROJECTION_SCHEMA])
    _, ny, nx = source.shape
    transform = grid_transform(source.y, source.x)
    a, _, c, _, e, f = transform
    item.add_asset("embeddings", pystac.Asset(
        href=_relative_href(target.url, item_path, target.local), media_type=ZARR_MEDIA_TYPE,
        roles=["data"], title=f"{source.array.name} {tuple(source.array.dims)}",
        extra_fields={"proj:code": properties["proj:code"], "proj:shape": [ny, nx],
                      "proj:transform": transform,
                      "proj:bbox": [min(c, c + a * nx), min(f, f + e * ny),
                                    max(c, c + a * nx), max(f, f + e * ny)]}))
    model_href, model_title, sha256 = _model_link(attrs)
    item.add_link(pystac.Link(rel="emb:model", target=model_href, title=model_title,
                              extra_fields={"xsatclip:weights_sha256": sha256} if sha256
                              else None))
    for title, url in _source_data(attrs):
        item.add_link(pystac.Link(rel="emb:source-data", target=url, title=title))
    document = item.to_dict(include_self_link=False, transform_hrefs=False)
    text = json.dumps(document, indent=2) + "\n"
    if "://" in item_path:
        import fsspec

        with fsspec.open(item_path, "w", **(storage_options or {})) as stream:
            stream.write(text)
    else:
        local = Path(item_path).expanduser()
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text, encoding="utf-8")
    return document


def _created(attrs: dict[str, Any]) -> dt.datetime:
    text = attrs.get("created")
    try:
        created = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return created if created.tzinfo else created.replace(tzinfo=dt.timezone.utc)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _proj_code(crs: pyproj.CRS) -> str | None:
    authority = crs.to_authority()
    return ":".join(authority) if authority else None


def _footprint(source: EmbeddingSource) -> tuple[list[float], dict[str, Any]]:
    """Lon/lat bbox and GeoJSON geometry (split at the antimeridian when it crosses it)."""
    a, _, c, _, e, f = grid_transform(source.y, source.x)
    _, ny, nx = source.shape
    (x0, x1), (y0, y1) = sorted((c, c + a * nx)), sorted((f, f + e * ny))
    if source.spatial.kind == "projected":
        to_lonlat = pyproj.Transformer.from_crs(source.crs, WGS84, always_xy=True)
        x0, y0, x1, y1 = to_lonlat.transform_bounds(x0, y0, x1, y1, densify_pts=21)
    south, north = max(y0, -90.0), min(y1, 90.0)
    span = x1 - x0 if x1 >= x0 else x1 - x0 + 360  # x1 < x0: projected, across 180
    if span >= 360 - 1e-9:
        west, east = -180.0, 180.0
    else:
        west = (x0 + 180) % 360 - 180
        east = west + span
    if east <= 180:
        return [west, south, east, north], _box(west, south, east, north)
    east -= 360  # crosses the antimeridian: STAC's bbox has west > east
    parts = [_box(west, south, 180.0, north), _box(-180.0, south, east, north)]
    return ([west, south, east, north],
            {"type": "MultiPolygon", "coordinates": [p["coordinates"] for p in parts]})


def _box(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def _gsd(source: EmbeddingSource) -> float:
    a, _, _, _, e, _ = grid_transform(source.y, source.x)
    size = max(abs(a), abs(e))
    if source.crs.is_geographic:
        return float(size * METRES_PER_DEGREE)
    return float(size * source.crs.axis_info[0].unit_conversion_factor)


def _quantization(source: EmbeddingSource) -> dict[str, Any]:
    dtype = str(source.array.dtype)
    if source.scale is not None:
        return {"method": "linear", "original_dtype": "float32", "quantized_dtype": dtype,
                "scale": [source.scale], "offset": [0.0]}
    if dtype == "float32":
        return {"method": "none", "original_dtype": "float32"}
    return {"method": "cast", "original_dtype": "float32", "quantized_dtype": dtype}


def _relative_href(store_url: str, item_path: str, local: bool) -> str:
    if not local or "://" in item_path:
        return store_url if "://" in store_url else Path(store_url).as_uri()
    directory = Path(item_path).expanduser().resolve().parent
    relative = Path(os.path.relpath(store_url, directory)).as_posix()
    return relative if relative.startswith("../") else "./" + relative


def _model_link(attrs: dict[str, Any]) -> tuple[str, str, str | None]:
    """(href, title, weights sha256) of the model that made the cube."""
    name = str(attrs.get("model_name", "unknown"))
    source = str(attrs.get("model_source", name))
    sha256 = attrs.get("model_sha256")
    title = f"{name}" + (f" (weights sha256 {sha256})" if sha256 else "")
    if "geoemb:model" in attrs and "://" in str(attrs["geoemb:model"]):
        return str(attrs["geoemb:model"]), title, sha256
    hub_id = PUBLISHED_MODELS.get(name, source)
    if re.fullmatch(r"[\w.-]+/[\w.-]+", hub_id) and not os.path.exists(hub_id):
        return f"https://huggingface.co/{hub_id}", title, sha256
    if os.path.isabs(source) and os.path.exists(source):
        return Path(source).as_uri(), title, sha256
    return f"urn:xsatclip:model:{name}" + (f":sha256:{sha256}" if sha256 else ""), title, sha256


def _source_data(attrs: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, URL) of the model's training data: the cube's ``geoemb:source_data`` URLs,
    else what xsatclip knows of the model."""
    recorded = attrs.get("geoemb:source_data") or []
    urls = [(str(s), str(s)) for s in recorded if "://" in str(s)]
    if urls:
        return urls
    name = str(attrs.get("model_name", ""))
    family = str(attrs.get("model_family", ""))
    for key, links in SOURCE_DATA.items():
        if name.startswith(key) or family == key == "geoclip":
            return links
    return []
