"""xsatclip: SatCLIP location embeddings as a raster layer of xarray, Zarr and Dask."""

from importlib.metadata import PackageNotFoundError, version

from . import accessor  # noqa: F401  (registers .satclip)
from .checkpoints import load_model, save_model
from .cube import open_cube, precompute
from .harmonics import spherical_harmonics
from .model import LocationEncoder, ModelConfig
from .spatial import grid

try:
    __version__ = version("xsatclip")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "LocationEncoder",
    "ModelConfig",
    "__version__",
    "grid",
    "load_model",
    "open_cube",
    "precompute",
    "save_model",
    "spherical_harmonics",
]
