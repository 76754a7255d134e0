"""The ``xsatclip`` command line: every command end to end in subprocesses, details in-process.

Each subprocess pays xsatclip's import (seconds), so independent commands run side by side.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import xsatclip
from xsatclip import cli, cube

CONSOLE_SCRIPT = Path(sys.executable).with_name("xsatclip")


def _start(*args, script: bool = False) -> subprocess.Popen:
    command = [str(CONSOLE_SCRIPT)] if script else [sys.executable, "-m", "xsatclip.cli"]
    return subprocess.Popen([*command, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out, err


def _one_line_error(err: str, *fragments: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xsatclip: error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def points(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("points") / "points.csv"
    pd.DataFrame({"lon": [0.1, 179.9, -45.0, 100.0],
                  "lat": [0.2, -89.0, 45.0, 10.0]}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def small_cube(tmp_path_factory, l10_source) -> Path:
    store = tmp_path_factory.mktemp("cli") / "small.zarr"
    cube.precompute(store, resolution=30, model=l10_source, chunks=3, progress=False)
    return store


@pytest.mark.slow
def test_every_command_end_to_end(tmp_path, l10_source, points, small_cube):
    store = tmp_path / "cube.zarr"
    exact = tmp_path / "exact.parquet"
    sampled = tmp_path / "sampled.csv"
    procs = {  # all at once: each pays the import, the cores overlap them
        "precompute": _start("precompute", store, "--resolution", 30, "--bbox", -180, -90, 180,
                             90, "--model", l10_source, "--chunks", "3,4", "--dtype", "int8",
                             "--batch-size", 50, "--quiet"),
        "embed-points": _start("embed-points", "--points", points, "--model", l10_source,
                               "--out", exact),
        "models": _start("models", script=CONSOLE_SCRIPT.exists()),
        "info": _start("info", small_cube),
        "sample": _start("sample", small_cube, "--points", points, "--method", "linear",
                         "--out", sampled),
        "bad input": _start("embed-points", "--points", tmp_path / "missing.csv",
                            "--model", l10_source),
    }
    results = {name: _finish(proc) for name, proc in procs.items()}

    for name in ("precompute", "embed-points", "models", "info", "sample"):
        assert results[name][0] == 0, (name, results[name][2])
    assert results["precompute"][1] == ""  # --quiet
    summary = cube.info(store)
    assert summary["dtype"] == "int8" and summary["chunks"] == [256, 3, 4]
    assert summary["chunks_done"] == summary["chunks_total"] == 6

    model = xsatclip.load_model(l10_source, device="cpu")
    table = pd.read_parquet(exact)
    assert list(table.columns) == ["lon", "lat", *(f"e{i}" for i in range(256))]
    np.testing.assert_allclose(table.iloc[:, 2:].to_numpy(),
                               model.encode(table.lon, table.lat), rtol=0, atol=1e-5)

    assert "bluemarble-l40  (level 40)" in results["models"][1]
    assert "satclip-vit16-l40" in results["models"][1]
    assert "microsoft/SatCLIP-ViT16-L40" in results["models"][1]

    info_text = results["info"][1]
    assert "8/8 chunks (100.0%)" in info_text and "float32" in info_text
    assert "bluemarble-l10" in info_text and "resolution=30" in info_text

    table = pd.read_csv(sampled)
    assert list(table.columns)[:3] == ["lon", "lat", "e0"] and len(table) == 4
    expected = xsatclip.sample(small_cube, table.lon, table.lat, method="linear").values
    np.testing.assert_allclose(table.iloc[:, 2:].to_numpy(), expected, rtol=1e-6, atol=0)

    code, out, err = results["bad input"]
    assert code == 1 and out == ""
    _one_line_error(err, "missing.csv")


def test_info_json_and_sample_nearest_parquet(small_cube, points, tmp_path, capsys, l10_source):
    assert cli.main(["info", str(small_cube), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["chunks_done"] == summary["chunks_total"] == 8
    out = tmp_path / "nearest.parquet"
    assert cli.main(["sample", str(small_cube), "--points", str(points), "--out", str(out)]) == 0
    table = pd.read_parquet(out)
    np.testing.assert_array_equal(table.iloc[:, 2:].to_numpy(),
                                  xsatclip.sample(small_cube, table.lon, table.lat).values)
    out = tmp_path / "exact.csv"  # the cube's model, found from its provenance attrs
    assert cli.main(["sample", str(small_cube), "--points", str(points), "--method", "exact",
                     "--out", str(out)]) == 0
    table = pd.read_csv(out)
    model = xsatclip.load_model(l10_source, device="cpu")
    np.testing.assert_allclose(table.iloc[:, 2:].to_numpy(), model.encode(table.lon, table.lat),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("command", ["precompute", "info", "sample", "embed-points", "models",
                                     "train", "evaluate"])
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: xsatclip {command}")
    if command == "precompute":
        for flag in ("--resolution", "--bbox", "--level", "--model", "--chunks", "--dtype",
                     "--overwrite", "--no-resume", "--quiet", "--scheduler", "--workers",
                     "--batch-size"):
            assert flag in text


def test_errors_are_one_line(small_cube, l10_source, points, tmp_path, capsys):
    no_lat = tmp_path / "no_lat.csv"
    pd.DataFrame({"lon": [1.0], "y": [2.0]}).to_csv(no_lat, index=False)
    outside = tmp_path / "outside.csv"
    pd.DataFrame({"lon": [0.0], "lat": [91.0]}).to_csv(outside, index=False)
    cases = [
        (["sample", str(small_cube), "--points", str(no_lat)], "needs columns lon and lat"),
        (["sample", str(small_cube), "--points", str(points), "--out", "x.txt"], "'.txt'"),
        (["sample", str(small_cube), "--points", str(outside)], "latitude value(s) outside"),
        (["info", str(tmp_path / "nothing.zarr")], "no cube at"),
        (["precompute", str(small_cube), "--resolution", "30", "--model", l10_source,
          "--dtype", "float16", "--quiet"], "dtype: the store has 'float32'"),
        (["precompute", str(tmp_path / "c.zarr"), "--resolution", "7", "--model", l10_source,
          "--quiet"], "not a multiple of the resolution"),
        (["embed-points", "--points", str(points), "--level", "12"],
         "bundles default models for levels [10, 40]"),
    ]
    for argv, fragment in cases:
        assert cli.main(argv) == 1, argv
        _one_line_error(capsys.readouterr().err, fragment)


@pytest.mark.slow
def test_workers_quiet_run_prints_nothing(tmp_path, l10_source):
    """Regression: a successful `--workers N --quiet` run printed distributed's shutdown
    warnings (a worker killed after 4 s, heartbeat tracebacks), even after exiting."""
    store = tmp_path / "workers.zarr"
    result = subprocess.run(
        [sys.executable, "-m", "xsatclip.cli", "precompute", str(store), "--resolution", "30",
         "--model", l10_source, "--workers", "2", "--quiet"],
        capture_output=True, text=True, timeout=300)  # reads until every child closed stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    info = cube.info(store)
    assert info["chunks_done"] == info["chunks_total"]
