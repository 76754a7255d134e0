"""The examples run end to end and write what they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import rioxarray  # noqa: F401
import xarray as xr

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_projected_raster_example(golden_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "projected_raster.py"),
         str(golden_dir / "satclip-tiny-l10.ckpt"), "--out", str(tmp_path)],
        capture_output=True, text=True, check=True, timeout=300)
    assert "utm_embeddings.zarr" in result.stdout
    emb = xr.open_zarr(tmp_path / "utm_embeddings.zarr", decode_coords="all")["embeddings"]
    assert dict(emb.sizes) == {"y": 40, "x": 60, "embedding": 256}
    assert emb.rio.crs.to_epsg() == 32632
    assert emb.attrs["model_name"] == "satclip-tiny-l10"
    assert bool(emb.notnull().all())
