"""Versions of xsatclip and the libraries it runs on, for bug reports."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version

LIBRARIES = ("torch", "numba", "numpy", "zarr", "dask", "distributed", "xarray", "pyproj",
             "rioxarray", "safetensors")


def versions() -> dict[str, str]:
    """Name -> version of xsatclip, Python, the core libraries and torch's CUDA."""
    out = {"xsatclip": _version("xsatclip"), "python": sys.version.split()[0],
           "platform": platform.platform()}
    out.update((name, _version(name)) for name in LIBRARIES)
    try:
        import torch

        cuda = torch.version.cuda
        out["torch cuda"] = (f"{cuda} ({torch.cuda.device_count()} device(s) visible)"
                             if cuda else "none (CPU build)")
    except ImportError:
        out["torch cuda"] = "torch not installed"
    return out


def show_versions(file=None) -> None:
    """Print :func:`versions` as aligned ``name: version`` lines (to ``file``, default
    stdout)."""
    table = versions()
    width = max(map(len, table))
    print("\n".join(f"{name:>{width}}: {value}" for name, value in table.items()),
          file=file or sys.stdout)


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"
