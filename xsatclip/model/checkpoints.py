"""Checkpoint formats: published Lightning checkpoints and xsatclip's own model directories.

No pickle anywhere: Lightning files are read with ``torch.load(weights_only=True)``; xsatclip's
own format is a directory holding ``model.safetensors`` and ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from ..errors import CheckpointError, InvalidOptionError, ModelNotFoundError
from .config import ModelConfig
from .encoder import LocationEncoder

LIGHTNING_PREFIX = "model.location.nnet."
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_NAME = "xsatclip-location-encoder"
FORMAT_VERSION = 1

# ModelConfig field -> the reference's hyper_parameters key.
LIGHTNING_FIELDS = {"level": "legendre_polys", "capacity": "capacity",
                    "num_hidden_layers": "num_hidden_layers", "embed_dim": "embed_dim"}
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


def load_tensors(path: Path, what: str) -> object:
    """The contents of a ``torch.save`` file, read with ``weights_only=True``: tensors and
    plain containers only, nothing unpickled. :class:`CheckpointError` in one line when the
    file is truncated, foreign, or holds other Python objects; :class:`ModelNotFoundError`
    when it does not exist."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelNotFoundError(f"{what} {path} does not exist") from None
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # not a pickle of objects: garbage bytes
            raise CheckpointError(f"{path} is not a readable {what} (truncated or not a torch "
                                  "file)") from None
        raise CheckpointError(f"{path} holds Python objects other than tensors; xsatclip will "
                              "not unpickle it (only weights-only torch files load)") from None
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise CheckpointError(f"{path} is not a readable {what} (truncated or not a torch "
                              f"file: {type(exc).__name__})") from None


def config_from_fields(fields: Mapping[str, object], names: Mapping[str, str],
                       where: str) -> ModelConfig:
    """A :class:`ModelConfig` from ``fields``, whose keys for each config field ``names``
    gives; :class:`CheckpointError` names ``where`` and the field when one is missing, not an
    integer (10.7, "10", None, NaN), or out of range."""
    values: dict[str, object] = {}
    for field, key in names.items():
        if key not in fields:
            raise CheckpointError(f"{where} lacks {key!r}")
        value = fields[key]
        if field == "convention":
            values[field] = value
            continue
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not integral:
            raise CheckpointError(f"{where}: {key} = {value!r} is not an integer")
        values[field] = int(value)  # type: ignore[call-overload]
    try:
        return ModelConfig(**values)  # type: ignore[arg-type]
    except InvalidOptionError as exc:
        raise CheckpointError(f"{where}: {exc}") from None


def check_weights(config: ModelConfig, weights: Mapping[str, torch.Tensor], path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``weights`` holds exactly what ``config`` needs:
    the names and shapes, floating-point values, all finite."""
    expected = expected_weight_shapes(config)
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: location-encoder weights do not match the configuration "
            f"(missing {missing}, unexpected {unexpected})"
        )
    for name, shape in expected.items():
        tensor = weights[name]
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
            found = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor)
            raise CheckpointError(f"{path}: tensor {name!r} has shape {found}, the "
                                  f"configuration needs {shape}")
        if not tensor.is_floating_point():
            raise CheckpointError(f"{path}: tensor {name!r} holds {tensor.dtype} values; "
                                  "weights must be floating point")
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: tensor {name!r} holds NaN or infinite values")


def read_lightning_checkpoint(path: str | os.PathLike) -> tuple[ModelConfig, dict]:
    """Config and SIREN weights of a published SatCLIP Lightning checkpoint.

    Only the location encoder is read (``model.location.nnet.*``); the vision encoder and
    optimizer state are ignored.
    """
    path = Path(path)
    checkpoint = load_tensors(path, "checkpoint file")
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"{path} has no 'state_dict': not a Lightning checkpoint")
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict):
        raise CheckpointError(f"{path}: hyper_parameters is {type(hparams).__name__}, not a "
                              "mapping of the model's settings")
    for field, allowed in SUPPORTED_SETTINGS.items():
        value = hparams.get(field, allowed[0])
        if value not in allowed:
            raise CheckpointError(
                f"{path}: hyper_parameters[{field!r}] = {value!r} is not supported "
                f"(xsatclip evaluates {field} in {list(allowed)})"
            )
    config = config_from_fields(hparams, LIGHTNING_FIELDS, f"{path}: hyper_parameters")
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

    path = directory / CONFIG_FILE
    try:
        config_json = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is unreadable: {exc}") from None
    if not isinstance(config_json, dict) or config_json.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not an xsatclip model config (a JSON object with "
                              f"format {FORMAT_NAME!r})")
    fields = {f.name: f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(config_json) - set(fields) - {"format", "format_version"})
    if unknown:
        raise CheckpointError(f"{path}: unknown fields {unknown}")
    config = config_from_fields(config_json, fields, str(path))
    try:
        weights = load_file(directory / WEIGHTS_FILE)
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"{directory / WEIGHTS_FILE} is unreadable: {exc}") from exc
    check_weights(config, weights, directory / WEIGHTS_FILE)
    return config, weights
