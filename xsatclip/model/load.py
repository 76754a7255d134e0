"""The one path from a user's ``model=`` to a loaded encoder.

:func:`resolve_model` serves ``embed``, ``precompute``, ``sample(method="exact")``,
``evaluate`` and the Dask workers; :func:`load_model` is its public form for a source.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidOptionError, ModelNotFoundError, WeightsMismatchError
from ..harmonics import Numerics
from .backend import DeviceLike, DType
from .base import Encoder
from .checkpoints import read_lightning_checkpoint, read_xsatclip_directory
from .config import ModelConfig
from .encoder import LocationEncoder
from .geoclip import NAME as GEOCLIP
from .geoclip import load_geoclip
from .hub import HUB_ID, download_from_hub, hub_filename
from .image import read_image_encoder
from .registry import (
    BUNDLED_MODELS,
    DEFAULT_MODELS,
    PUBLISHED_MODELS,
    bundled_model_directory,
    default_model,
)

ModelSource = str | os.PathLike
ModelLike = ModelSource | Encoder
DEFAULT_LEVEL = 40  # the level of embed()'s default model


def read_source(source: ModelSource) -> tuple[ModelConfig, dict, str, str]:
    """Resolve ``source`` to ``(config, weights, source, name)``.

    ``source`` is a bundled or published model name, a local model directory or Lightning
    checkpoint, or a Hugging Face repo id (``owner/name`` or ``hf://owner/name``). A bundled
    model's source is its name, so provenance attrs do not depend on the install path.
    """
    text = os.fspath(source)
    if text.startswith("hf://"):  # how identities record Hub sources
        text = text[len("hf://"):]
    if text in BUNDLED_MODELS:
        return (*read_xsatclip_directory(bundled_model_directory(text)), text, text)
    if text in PUBLISHED_MODELS:
        repo_id = PUBLISHED_MODELS[text]
        path = download_from_hub(repo_id, hub_filename(repo_id))
        return (*read_lightning_checkpoint(path), f"hf://{repo_id}", text)
    path = Path(text).expanduser()
    if path.is_dir():
        return (*read_xsatclip_directory(path), str(path.resolve()), path.name)
    if path.is_file():
        return (*read_lightning_checkpoint(path), str(path.resolve()), path.stem)
    if HUB_ID.match(text):
        path = download_from_hub(text, hub_filename(text))
        return (*read_lightning_checkpoint(path), f"hf://{text}", text)
    raise ModelNotFoundError(
        f"model {text!r} is neither a known name "
        f"({', '.join([*BUNDLED_MODELS, *sorted(PUBLISHED_MODELS), GEOCLIP])}), "
        f"a local file or directory, nor a Hugging Face repo id 'owner/name'"
    )


def load_model(
    source: ModelSource,
    *,
    numerics: Numerics | None = None,
    dtype: DType = "float32",
    device: DeviceLike = "auto",
) -> Encoder:
    """Load a location encoder.

    Parameters
    ----------
    source : SatCLIP: bundled model name (``"bluemarble-l40"``, offline), published model
        name (``"satclip-vit16-l40"``), Hub repo id (``"microsoft/SatCLIP-ViT16-L40"``),
        Lightning ``.ckpt`` file, or a directory written by :func:`~xsatclip.save_model`.
        GeoCLIP: ``"geoclip"`` (the weights of the installed ``geoclip`` wheel) or a
        ``.pth`` file of its location-encoder state dict.
    numerics : {"exact", "reference"}, default "exact" (SatCLIP's basis; GeoCLIP has only
        "exact")
    dtype : {"float32", "float64", "bfloat16"}: bfloat16 computes the SIREN layers after the
        first in bfloat16 (float32 outputs), refused above the int8 storage bound, float32
        with a warning where the device lacks fast bfloat16 GEMMs (:mod:`.inference`)
    device : "auto" (CUDA when available), "cpu", "cuda", ...
    """
    text = os.fspath(source)
    if text == GEOCLIP or text.endswith(".pth"):
        if numerics not in (None, "exact"):
            raise InvalidOptionError(f"numerics={numerics!r} applies to spherical-harmonic "
                                     "models; GeoCLIP has only 'exact'")
        return load_geoclip(text, dtype=dtype, device=device)
    config, weights, resolved, name = read_source(source)
    directory = (bundled_model_directory(text) if text in BUNDLED_MODELS
                 else Path(text).expanduser())
    image = read_image_encoder(directory) if directory.is_dir() else None
    return LocationEncoder(config, weights, source=resolved, name=name,
                           numerics=numerics or "exact", dtype=dtype, device=device,
                           image_encoder=image)


def resolve_model(
    model: ModelLike | None = None,
    *,
    level: int | None = None,
    numerics: Numerics | None = None,
    dtype: DType = "float32",
    device: DeviceLike = "auto",
    sha256: str | None = None,
    made_by: str = "the output was made with",
) -> Encoder:
    """The encoder a caller asked for.

    ``model`` is anything :func:`load_model` takes, a loaded :class:`Encoder`, or
    None for the bundled default of ``level`` (40 when not given). A loaded encoder is used
    as it is when its numerics and dtype match, else reloaded from its source; with an
    explicit ``device`` (not ``"auto"``) it is moved there, so that every scheduler computes
    where the caller said. ``level`` and ``sha256`` (of the weights), when given, must match:
    :class:`~xsatclip.errors.WeightsMismatchError` names both hashes and what was
    ``made_by`` the expected weights.
    """
    if model is None:
        chosen = default_model(DEFAULT_LEVEL if level is None else level)
        if chosen is None:
            raise ModelNotFoundError(
                f"xsatclip bundles default models for levels {sorted(DEFAULT_MODELS)}, not "
                f"level={level}; pass model=... (a .ckpt file, a Hub id such as "
                "'microsoft/SatCLIP-ViT16-L40', a name such as 'satclip-vit16-l40', or a "
                "loaded model)")
        model = chosen
    if isinstance(model, Encoder):
        requested = getattr(model, "requested_dtype", model.dtype)  # before a fallback
        if numerics not in (None, model.numerics) or dtype not in (model.dtype, requested):
            model = load_model(model.identity.source, numerics=numerics or model.numerics,
                               dtype=dtype, device=device if device != "auto" else model.device)
        elif device != "auto":
            model = model.to(device)
    else:
        model = load_model(model, numerics=numerics, dtype=dtype, device=device)
    if level is not None and model.level != level:
        raise InvalidOptionError(f"level={level} but the model has level {model.level}; "
                                 "leave level out when passing model=")
    if sha256 is not None and model.identity.sha256 != sha256:
        raise WeightsMismatchError(
            f"model mismatch: {made_by} weights sha256 {sha256[:12]}..., but "
            f"{model.identity.source} holds weights with sha256 {model.identity.sha256[:12]}...;"
            " pass the original model")
    return model
