"""Embed a projected raster: a UTM GeoTIFF in, a Zarr of SatCLIP embeddings out.

    python examples/projected_raster.py MODEL [--out DIR]

MODEL is anything ``xsatclip.load_model`` takes (a ``.ckpt`` file, ``satclip-vit16-l40``, ...).
The script writes a small 1 km GeoTIFF in UTM zone 32N (around Lake Geneva), reopens it
with rioxarray, embeds every cell centre lazily with the ``.satclip`` accessor and writes the
result next to it. It prints what it wrote.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rioxarray
import xarray as xr

import xsatclip  # noqa: F401  (registers the .satclip accessor)


def write_geotiff(path: Path) -> None:
    """A 40 x 60 km raster of 1 km cells in EPSG:32632 (values: a smooth test pattern)."""
    x = 300_000 + 1000.0 * (np.arange(60) + 0.5)
    y = 5_160_000 - 1000.0 * (np.arange(40) + 0.5)
    values = np.sin(x[None, :] / 7000.0) * np.cos(y[:, None] / 5000.0)
    raster = xr.DataArray(values.astype("float32"), dims=("y", "x"),
                          coords={"y": y, "x": x}, name="pattern")
    raster.rio.write_crs("EPSG:32632").rio.to_raster(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--out", type=Path, default=Path("example_output"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    tif = args.out / "utm_raster.tif"
    write_geotiff(tif)
    raster = rioxarray.open_rasterio(tif, chunks={"x": 32, "y": 32}).squeeze("band", drop=True)
    emb = raster.satclip.embed(model=args.model)  # lazy: (y, x, embedding)
    store = args.out / "utm_embeddings.zarr"
    emb.to_dataset(name="embeddings").to_zarr(store, mode="w")  # "embedding" names the dim

    written = xr.open_zarr(store, decode_coords="all")["embeddings"]  # restores the CRS
    print(f"wrote {store}: dims {dict(written.sizes)}, crs {written.rio.crs}, "
          f"model {written.attrs['model_name']} (sha256 {written.attrs['model_sha256'][:12]})")


if __name__ == "__main__":
    main()
