"""Small cubes for the tests of the derived products (COG, overviews, preview, STAC).

``band_first_store`` writes a cube in the v2 layout with plain xarray, as a third party
would: ``embeddings`` (embedding, lat, lon), Zarr v3 shards with small inner chunks and a
crc32c checksum, CF ``grid_mapping`` as an attribute. The values are the bundled L = 10 model's
embeddings of the grid cells (computed once per session).
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
import zarr
from zarr.codecs import Crc32cCodec

import xsatclip

MODEL = "bluemarble-l10"


@functools.lru_cache(maxsize=4)
def embeddings(resolution: float) -> xr.DataArray:
    """Band-first float32 embeddings (embedding, lat, lon) of a global grid, in memory."""
    grid = xsatclip.grid(resolution)
    emb = grid.satclip.embed(model=MODEL, device="cpu").compute()
    return emb.transpose("embedding", "lat", "lon")


def band_first_store(path: Path, values: xr.DataArray, *, inner: int = 15,
                     shard: tuple[int, int] = (45, 90), attrs: dict | None = None) -> Path:
    """Write ``values`` (embedding, lat, lon) as a sharded v2-like cube at ``path``."""
    ds = values.to_dataset(name="embeddings")
    ds.attrs = {"title": "test cube", **values.attrs, **(attrs or {})}
    ds = ds.rio.write_crs("EPSG:4326")
    ds["embeddings"].encoding.pop("grid_mapping", None)
    ds["embeddings"].attrs["grid_mapping"] = "spatial_ref"
    encoding = {"embeddings": {"chunks": (values.sizes["embedding"], inner, inner),
                               "shards": (values.sizes["embedding"], *shard),
                               "compressors": [Crc32cCodec()], "dtype": "float32"}}
    with warnings.catch_warnings():  # "consolidated metadata is not in the v3 spec (yet)"
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        ds.chunk({"lat": shard[0], "lon": shard[1]}).to_zarr(
            path, mode="w", zarr_format=3, consolidated=True, encoding=encoding)
    return path


def with_nan_patch(values: xr.DataArray) -> xr.DataArray:
    """A copy with rows 10..14 x cols 20..25 NaN (an odd-sized hole, so some 2 x 2 blocks
    are partly NaN) and one lone NaN cell at row 30, col 41."""
    out = values.copy(deep=True)
    out[:, 10:15, 20:26] = np.nan
    out[:, 30, 41] = np.nan
    return out
