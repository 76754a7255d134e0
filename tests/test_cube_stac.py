"""STAC Items beside cubes: the embeddings-extension fields, read back with pystac."""

from __future__ import annotations

import json

import numpy as np
import pystac
import pytest
import xarray as xr
from product_cubes import band_first_store, embeddings

import xsatclip
from xsatclip import cli
from xsatclip.cube import info
from xsatclip.cube.stac import (
    EMBEDDINGS_SCHEMA,
    PROCESSING_SCHEMA,
    ZARR_MEDIA_TYPE,
    write_stac_item,
)


@pytest.fixture(scope="module")
def int8_cube(tmp_path_factory):
    path = tmp_path_factory.mktemp("stac") / "global-l10.zarr"
    xsatclip.precompute(path, resolution=10.0, model="bluemarble-l10", dtype="int8",
                        progress=False)
    return path


def test_item_of_a_precomputed_int8_cube(int8_cube):
    item = write_stac_item(int8_cube)
    path = int8_cube.parent / "global-l10.zarr.stac.json"
    assert json.loads(path.read_text()) == item
    summary = info(int8_cube)
    props = item["properties"]
    assert item["id"] == "global-l10"
    assert {EMBEDDINGS_SCHEMA, PROCESSING_SCHEMA} <= set(item["stac_extensions"])
    assert props["emb:type"] == "pixel" and props["emb:dimensions"] == 256
    assert props["data_type"] == "int8"
    assert props["gsd"] == pytest.approx(10 * 111_319.49, rel=1e-8)  # metres at the equator
    assert props["emb:quantization"] == {
        "method": "linear", "original_dtype": "float32", "quantized_dtype": "int8",
        "scale": [pytest.approx(summary["scale_factor"], rel=1e-7)], "offset": [0.0]}
    assert props["processing:datetime"] == summary["created"].replace("+00:00", "Z")
    assert props["processing:version"] == summary["xsatclip_version"]
    assert props["proj:code"] == "EPSG:4326"
    assert item["bbox"] == [-180.0, -90.0, 180.0, 90.0]
    links = {link["rel"]: link for link in item["links"]}
    assert links["emb:model"]["href"] == ("urn:xsatclip:model:bluemarble-l10:sha256:"
                                          + summary["model"]["sha256"])
    sources = [link["href"] for link in item["links"] if link["rel"] == "emb:source-data"]
    assert any("blue-marble" in href for href in sources)
    asset = item["assets"]["embeddings"]
    assert asset["href"] == "./global-l10.zarr" and asset["type"] == ZARR_MEDIA_TYPE
    assert asset["proj:shape"] == [18, 36]
    assert asset["proj:transform"] == [10.0, 0.0, -180.0, 0.0, -10.0, 90.0]

    back = pystac.Item.from_file(str(path))  # round trip through pystac
    assert back.properties["emb:quantization"] == props["emb:quantization"]
    assert back.properties["emb:dimensions"] == 256
    assert [link.rel for link in back.links if link.rel.startswith("emb:")] == [
        "emb:model", "emb:source-data", "emb:source-data"]
    assert back.assets["embeddings"].get_absolute_href() == str(int8_cube)
    assert back.assets["embeddings"].media_type == ZARR_MEDIA_TYPE
    assert back.to_dict(include_self_link=False, transform_hrefs=False) == item


def test_item_elsewhere_across_the_dateline_with_a_published_model(tmp_path):
    values = embeddings(2.0).sel(lon=slice(-179, -171)).isel(embedding=slice(0, 8))
    east = values.assign_coords(lon=values.lon + 360)  # 181 .. 189
    west = embeddings(2.0).sel(lon=slice(171, 179)).isel(embedding=slice(0, 8))
    regional = xr.concat([west, east], dim="lon")  # lon 171 .. 189: across the dateline
    assert np.all(np.diff(regional.lon.values) == 2.0)
    regional = regional.assign_attrs(model_name="satclip-vit16-l40", model_sha256="0" * 64,
                                     model_source="microsoft/SatCLIP-ViT16-L40")
    store = band_first_store(tmp_path / "pacific.zarr", regional, inner=5, shard=(45, 10),
                             attrs={"created": "2026-11-30T08:00:00+00:00"})
    item = write_stac_item(store, tmp_path / "catalog" / "pacific.json")
    assert (tmp_path / "catalog" / "pacific.json").exists()
    assert item["bbox"] == [170.0, -90.0, -170.0, 90.0]  # west > east: across 180
    assert item["geometry"]["type"] == "MultiPolygon"
    assert item["properties"]["data_type"] == "float32"
    assert item["properties"]["emb:dimensions"] == 8
    assert item["properties"]["emb:quantization"] == {"method": "none",
                                                      "original_dtype": "float32"}
    assert item["properties"]["processing:datetime"] == "2026-11-30T08:00:00Z"
    links = {link["rel"]: link["href"] for link in item["links"]}
    assert links["emb:model"] == "https://huggingface.co/microsoft/SatCLIP-ViT16-L40"
    assert links["emb:source-data"] == "https://github.com/microsoft/satclip"
    assert item["assets"]["embeddings"]["href"] == "../pacific.zarr"
    back = pystac.Item.from_file(str(tmp_path / "catalog" / "pacific.json"))
    assert back.assets["embeddings"].get_absolute_href() == str(store)


def test_stac_command(int8_cube, tmp_path, capsys):
    out = tmp_path / "item.json"
    assert cli.main(["stac", str(int8_cube), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert pystac.Item.from_file(str(out)).properties["emb:type"] == "pixel"
