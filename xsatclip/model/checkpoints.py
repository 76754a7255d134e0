"""Checkpoint formats: published Lightning checkpoints and xsatclip's own model directories.

No pickle anywhere: Lightning files are read with ``torch.load(weights_only=True)``; xsatclip's
own format is a directory holding ``model.safetensors`` and ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from ..errors import CheckpointError, ModelNotFoundError
from .config import ModelConfig
from .encoder import LocationEncoder

LIGHTNING_PREFIX = "model.location.nnet."
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_NAME = "xsatclip-location-encoder"
FORMAT_VERSION = 1

# hyper_parameters the reference writes, and the values xsatclip can evaluate exactly.
SUPPORTED_SETTINGS = {
    "le_type": ("sphericalharmonics",),
    "pe_type": ("siren",),
    "harmonics_calculation": ("analytic",),
}


def expected_weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the SIREN tensors for ``config``."""
    shapes: dict[str, tuple[int, ...]] = {}
    width_in = config.level**2
    for i in range(config.num_hidden_layers):
        shapes[f"layers.{i}.weight"] = (config.capacity, width_in)
        shapes[f"layers.{i}.bias"] = (config.capacity,)
        width_in = config.capacity
    shapes["last_layer.weight"] = (config.embed_dim, config.capacity)
    shapes["last_layer.bias"] = (config.embed_dim,)
    return shapes


def check_weights(config: ModelConfig, weights: Mapping[str, torch.Tensor], path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``weights`` holds exactly what ``config`` needs."""
    expected = expected_weight_shapes(config)
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: location-encoder weights do not match the configuration "
            f"(missing {missing}, unexpected {unexpected})"
        )
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape:
            raise CheckpointError(
                f"{path}: tensor {name!r} has shape {tuple(weights[name].shape)}, "
                f"the configuration needs {shape}"
            )


def read_lightning_checkpoint(path: str | os.PathLike) -> tuple[ModelConfig, dict]:
    """Config and SIREN weights of a published SatCLIP Lightning checkpoint.

    Only the location encoder is read (``model.location.nnet.*``); the vision encoder and
    optimizer state are ignored.
    """
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelNotFoundError(f"checkpoint file {path} does not exist") from None
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated, corrupt, or holding "
            f"objects other than tensors): {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} has no 'state_dict': not a Lightning checkpoint")
    hparams = checkpoint.get("hyper_parameters") or {}
    for field, allowed in SUPPORTED_SETTINGS.items():
        value = hparams.get(field, allowed[0])
        if value not in allowed:
            raise CheckpointError(
                f"{path}: hyper_parameters[{field!r}] = {value!r} is not supported "
                f"(xsatclip evaluates {field} in {list(allowed)})"
            )
    try:
        config = ModelConfig(
            level=int(hparams["legendre_polys"]),
            capacity=int(hparams["capacity"]),
            num_hidden_layers=int(hparams["num_hidden_layers"]),
            embed_dim=int(hparams["embed_dim"]),
        )
    except KeyError as exc:
        raise CheckpointError(f"{path}: hyper_parameters lacks {exc.args[0]!r}") from None
    weights = {
        name[len(LIGHTNING_PREFIX):]: tensor
        for name, tensor in checkpoint["state_dict"].items()
        if name.startswith(LIGHTNING_PREFIX)
    }
    check_weights(config, weights, path)
    return config, weights


def save_model(model: LocationEncoder, directory: str | os.PathLike) -> Path:
    """Write ``model`` in xsatclip's format: ``directory/model.safetensors`` + ``config.json``."""
    return write_model_directory(model.config, model.network.state_dict(), directory)


def write_model_directory(config: ModelConfig, weights: Mapping[str, torch.Tensor],
                          directory: str | os.PathLike) -> Path:
    """Write SIREN ``weights`` of ``config`` as a model directory; each file is replaced
    atomically, so a crash leaves the old file or the new one, never a torn one."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
    replace_atomically(directory / WEIGHTS_FILE, lambda path: save_file(tensors, path))
    text = json.dumps({"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                       **dataclasses.asdict(config)}, indent=2) + "\n"
    replace_atomically(directory / CONFIG_FILE, lambda path: path.write_text(text))
    return directory


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` the new contents to ``path`` + ".tmp", then rename it over ``path``: a crash
    leaves the old file or the new one, never a torn one."""
    partial = path.with_name(path.name + ".tmp")
    write(partial)
    os.replace(partial, path)


def read_xsatclip_directory(directory: Path) -> tuple[ModelConfig, dict]:
    """Config and weights of a model directory written by :func:`save_model`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        config_json = json.loads((directory / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{directory / CONFIG_FILE} is unreadable: {exc}") from exc
    if config_json.pop("format", None) != FORMAT_NAME:
        raise CheckpointError(f"{directory / CONFIG_FILE} is not an xsatclip model config")
    config_json.pop("format_version", None)
    field_names = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(config_json) - field_names)
    if unknown:
        raise CheckpointError(f"{directory / CONFIG_FILE}: unknown fields {unknown}")
    config = ModelConfig(**config_json)
    try:
        weights = load_file(directory / WEIGHTS_FILE)
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"{directory / WEIGHTS_FILE} is unreadable: {exc}") from exc
    check_weights(config, weights, directory / WEIGHTS_FILE)
    return config, weights
