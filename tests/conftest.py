"""Shared fixtures: the golden files made by the reference SatCLIP code."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "shared" / "golden"


def _require(path: Path) -> Path:
    if path.exists():
        return path
    message = f"golden fixture {path} is missing (expected ../shared/golden beside the repo)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return _require(GOLDEN_DIR)


@pytest.fixture(scope="session")
def reference_npz(golden_dir):
    return dict(np.load(_require(golden_dir / "satclip_reference_public.npz")))


@pytest.fixture(scope="session")
def exact_npz(golden_dir):
    return dict(np.load(_require(golden_dir / "satclip_exact_public.npz")))


@pytest.fixture(scope="session", params=[10, 40])
def tiny_checkpoint(request, golden_dir) -> tuple[int, Path]:
    """(L, path) of the tiny reference Lightning checkpoints."""
    level = request.param
    return level, _require(golden_dir / f"satclip-tiny-l{level}.ckpt")
