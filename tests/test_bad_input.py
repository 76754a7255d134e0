"""Crafted and malformed inputs: checkpoints, configs, grids, point tables and CLI options fail
fast with one clear error that names the file and the field, before anything large is
allocated or written."""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch

import xsatclip
from xsatclip import cli
from xsatclip.errors import (
    CheckpointError,
    DeviceError,
    InvalidCoordinatesError,
    InvalidOptionError,
)
from xsatclip.model.registry import bundled_model_directory


def _lightning(golden_dir, tmp_path, edit) -> str:
    """The tiny L = 10 Lightning checkpoint with ``edit(checkpoint)`` applied."""
    checkpoint = torch.load(golden_dir / "satclip-tiny-l10.ckpt", map_location="cpu",
                            weights_only=True)
    edit(checkpoint)
    path = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, path)
    return str(path)


def _set_hparam(name, value):
    def edit(checkpoint):
        checkpoint["hyper_parameters"][name] = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (_set_hparam("num_hidden_layers", int(1e8)), r"num_hidden_layers must be an integer from 1"),
    (_set_hparam("capacity", 10**6), r"capacity must be an integer from 1 to 16384"),
    (_set_hparam("legendre_polys", None), r"legendre_polys = None is not an integer"),
    (_set_hparam("legendre_polys", 10.7), r"legendre_polys = 10.7 is not an integer"),
    (_set_hparam("legendre_polys", "10"), r"legendre_polys = '10' is not an integer"),
    (_set_hparam("embed_dim", float("nan")), r"embed_dim = nan is not an integer"),
    (lambda c: c.update(hyper_parameters=[1, 2]), r"hyper_parameters is list, not a mapping"),
    (lambda c: c["state_dict"].update({"model.location.nnet.layers.0.bias":
                                       torch.zeros(256, dtype=torch.int64)}),
     r"'layers.0.bias' holds torch.int64 values"),
    (lambda c: c["state_dict"]["model.location.nnet.last_layer.weight"].__setitem__(
        (0, 0), float("nan")), r"'last_layer.weight' holds NaN or infinite values"),
])
def test_crafted_lightning_checkpoints_fail_fast(golden_dir, tmp_path, edit, message):
    path = _lightning(golden_dir, tmp_path, edit)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    with pytest.raises(CheckpointError, match=re.escape(path) + ".*" + message):
        xsatclip.load_model(path, device="cpu")
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 200 * 1024  # KiB: nothing of 1e8 layers or 1e6 widths was built


def test_a_checkpoint_holding_python_objects_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "payload": argparse.Namespace(a=1)}, path)  # not weights-only
    with pytest.raises(CheckpointError) as info:
        xsatclip.load_model(path)
    message = str(info.value)
    assert message == (f"{path} holds Python objects other than tensors; xsatclip will not "
                       "unpickle it (only weights-only torch files load)")
    assert "\x1b" not in message and "\n" not in message
    assert cli.main(["embed-points", "--points", str(path), "--model", str(path)]) == 1


@pytest.mark.parametrize("config, message", [
    ({"level": "10"}, r"level = '10' is not an integer"),
    ({"level": 10.5}, r"level = 10.5 is not an integer"),
    ({"capacity": 0}, r"capacity must be an integer from 1"),
    ({"convention": "other"}, r"convention='other': choose one of"),
    ({"unexpected": 1}, r"unknown fields \['unexpected'\]"),
])
def test_crafted_model_directories_fail_fast(tmp_path, config, message):
    directory = tmp_path / "model"
    shutil.copytree(bundled_model_directory("bluemarble-l10"), directory)
    original = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**original, **config}))
    with pytest.raises(CheckpointError, match=re.escape(str(directory / "config.json"))
                       + ".*" + message):
        xsatclip.load_model(directory)
    (directory / "config.json").write_text(json.dumps([original]))
    with pytest.raises(CheckpointError, match="is not an xsatclip model config"):
        xsatclip.load_model(directory)


def test_grids_too_large_or_wider_than_the_globe_are_refused():
    xsatclip.grid(90.0)  # imports done
    tracemalloc.start()
    with pytest.raises(InvalidOptionError, match=r"resolution=1e-07 gives 1,800,000,000 cells"):
        xsatclip.grid(1e-7)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000  # bytes: no coordinate array of 1.8e9 cells was made
    with pytest.raises(InvalidCoordinatesError, match="spans 370 degrees"):
        xsatclip.grid(1.0, bbox=(-180, -10, 190, 10))


def test_latitude_errors_show_the_value_as_given():
    with pytest.raises(InvalidCoordinatesError, match=r"-90\.0000001 \.\. -90\.0000001"):
        xsatclip.spherical_harmonics([0.0], [-90.0000001], 4)


@pytest.fixture
def l10_cli(l10_source):
    return ["--model", l10_source]


def test_csv_rows_with_the_wrong_number_of_fields_name_the_line(tmp_path, capsys, l10_cli):
    points = tmp_path / "points.csv"
    points.write_text("lon,lat\n1,2,3\n")  # pandas alone reads lon=2, lat=3
    assert cli.main(["embed-points", "--points", str(points), *l10_cli]) == 1
    assert capsys.readouterr().err == (f"xsatclip: error: {points}, line 2: 3 fields, but the "
                                       "header has 2 (['lon', 'lat'])\n")
    points.write_text("")
    assert cli.main(["embed-points", "--points", str(points), *l10_cli]) == 1
    assert f"{points} is empty" in capsys.readouterr().err


def test_other_columns_of_the_points_table_are_kept(tmp_path, l10, l10_cli):
    points = tmp_path / "points.csv"
    points.write_text("id,lat,lon,name\n7,48.86,2.35,Paris\n9,-33.87,151.21,Sydney\n")
    out = tmp_path / "out.csv"
    assert cli.main(["embed-points", "--points", str(points), "--out", str(out), *l10_cli]) == 0
    table = pd.read_csv(out)
    assert list(table.columns[:4]) == ["id", "lat", "lon", "name"]
    assert table["id"].tolist() == [7, 9] and table["name"].tolist() == ["Paris", "Sydney"]
    np.testing.assert_allclose(table[[f"e{i}" for i in range(256)]].to_numpy(),
                               l10.encode([2.35, 151.21], [48.86, -33.87]), atol=1e-6)


def test_device_options_fail_in_one_line(tmp_path, capsys, l10_cli):
    points = tmp_path / "points.csv"
    points.write_text("lon,lat\n1,2\n")
    base = ["embed-points", "--points", str(points), *l10_cli]
    assert cli.main([*base, "--device", "banana"]) == 1
    assert capsys.readouterr().err == ("xsatclip: error: device='banana' is not a torch device: "
                                       "use 'auto', 'cpu', 'cuda', 'cuda:1', ...\n")
    if not torch.cuda.is_available():
        assert cli.main([*base, "--device", "cuda"]) == 1
        assert "torch sees no CUDA GPU" in capsys.readouterr().err
        with pytest.raises(DeviceError):
            xsatclip.grid(30.0).satclip.embed(level=10, device="cuda")
