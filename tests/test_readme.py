"""Every Python snippet in the README runs as written.

A fixture makes the small local inputs the snippets name (``field.tif``, ``mosaic.tif``,
``cube.zarr``) in a scratch directory and an offline Hugging Face cache holding a published
model's name (the golden tiny L = 40 checkpoint stands in for its weights); each block then
runs there in a fresh namespace.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from conftest import fake_hub_cache

import xsatclip

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of every ```python block of ``text``."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in BLOCK.finditer(text)]


BLOCKS = python_blocks(README.read_text())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, golden_dir) -> Path:
    """A directory with the files the README's snippets read."""
    root = tmp_path_factory.mktemp("readme")
    rng = np.random.default_rng(0)
    utm = xr.DataArray(rng.random((1, 12, 16), np.float32), dims=("band", "y", "x"),
                       coords={"band": [1], "y": 4_400_000.0 - 1000.0 * np.arange(12),
                               "x": 500_000.0 + 1000.0 * np.arange(16)})
    utm.rio.write_crs("EPSG:32613").rio.to_raster(root / "field.tif")
    lat = 90.0 - 2.5 * (np.arange(72) + 0.5)
    lon = -180.0 + 2.5 * (np.arange(144) + 0.5)
    colour = np.stack([np.cos(np.radians(lat))[:, None] * np.ones(lon.size),
                       np.sin(np.radians(lon))[None, :] * np.ones((lat.size, 1)),
                       rng.random((lat.size, lon.size))]).astype(np.float32)
    mosaic = xr.DataArray(colour, dims=("band", "y", "x"),
                          coords={"band": [1, 2, 3], "y": lat, "x": lon})
    mosaic.rio.write_crs("EPSG:4326").rio.to_raster(root / "mosaic.tif")
    xsatclip.precompute(root / "cube.zarr", resolution=10.0, level=10, progress=False)
    return root


@pytest.fixture
def published_model_offline(offline_hub, golden_dir) -> None:
    fake_hub_cache(offline_hub, "microsoft/SatCLIP-ViT16-L40", "satclip-vit16-l40.ckpt",
                   golden_dir / "satclip-tiny-l40.ckpt")


def test_readme_has_python_snippets():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_snippet_runs(line, code, inputs, published_model_offline, monkeypatch, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    for name in ("field.tif", "mosaic.tif", "cube.zarr"):
        (workdir / name).symlink_to(inputs / name)
    monkeypatch.chdir(workdir)
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})


def test_layout_table_matches_the_tree():
    """Every module of the package is in the README's Layout table, under its package, and
    every module the table names exists."""
    section = README.read_text().split("## Layout", 1)[1]
    rows = re.findall(r"^\| `(\w+)/` \| ([^|]*) \|", section, re.MULTILINE)
    named = {(package, module) for package, modules in rows
             for module in re.findall(r"`(\w+\.py)`", modules)}
    package_dir = README.parent / "xsatclip"
    tree = set()
    for path in package_dir.rglob("*.py"):
        if path.name in ("__init__.py", "__main__.py") or "data" in path.parts:
            continue
        parent = path.parent
        tree.add(("xsatclip" if parent == package_dir else parent.name, path.name))
    assert named == tree
