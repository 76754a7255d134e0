"""Shared fixtures.

Functional tests (accessor, cube, sampling, CLI, examples) run the bundled ``bluemarble-l10``
model, which ships inside the package. The golden files made by the reference SatCLIP code
(``../shared/golden``) serve the parity tests only.

Markers: ``slow`` (seconds to minutes: kill -9 resumes, distributed clusters, examples;
``-m "not slow"`` leaves them out) and ``cuda`` (needs a GPU that torch sees: on a machine
without one these tests are deselected, and the header says so).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "shared" / "golden"
L10_SOURCE = "bluemarble-l10"  # the bundled model the functional tests run
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def pytest_report_header(config) -> str:
    if torch.cuda.is_available():
        return f"cuda tests: run on {torch.cuda.get_device_name()}"
    return f"cuda tests: deselected (torch {torch.__version__} sees no CUDA GPU)"


def pytest_collection_modifyitems(config, items) -> None:
    if torch.cuda.is_available():
        return
    cuda = [item for item in items if item.get_closest_marker("cuda")]
    if cuda:
        config.hook.pytest_deselected(items=cuda)
        items[:] = [item for item in items if not item.get_closest_marker("cuda")]


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


@pytest.fixture(scope="session")
def l10_source() -> str:
    """What functional tests pass as model=: the bundled L = 10 model's name."""
    return L10_SOURCE


@pytest.fixture(scope="session")
def l10():
    """The bundled L = 10 model, float32 on the CPU."""
    import xsatclip

    return xsatclip.load_model(L10_SOURCE, device="cpu")


def fake_hub_cache(root: Path, repo_id: str, filename: str, source: Path) -> None:
    """Lay ``source`` out as huggingface_hub's cache holds a downloaded file."""
    repo_dir = root / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    shutil.copy(source, snapshot / filename)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, offline: nothing is downloaded."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache
