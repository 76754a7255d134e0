"""xsatclip: SatCLIP location embeddings as a raster layer of xarray, Zarr and Dask.

``import xsatclip`` registers the ``.satclip`` accessor and costs about an xarray import; the
functions below load torch, Dask and Numba on first use (PEP 562 module ``__getattr__``).
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from . import accessor  # noqa: F401  (registers .satclip)

try:
    __version__ = version("xsatclip")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

# Public name -> module that defines it.
_EXPORTS = {
    "LocationEncoder": ".model",
    "augment": ".geolocation",
    "locate": ".geolocation",
    "recall_vs_area": ".geolocation",
    "ModelConfig": ".model",
    "TrainConfig": ".training",
    "evaluate": ".evaluation",
    "export_cog": ".cube.export",
    "grid": ".raster",
    "load_model": ".model",
    "open_cube": ".cube",
    "precompute": ".cube",
    "sample": ".sampling",
    "zonal": ".areas",
    "predict_map": ".downstream",
    "save_model": ".model",
    "show_versions": ".versions",
    "spherical_harmonics": ".harmonics",
    "train": ".training",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xsatclip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
