"""Location encoders: the :class:`Encoder` interface, SatCLIP's :class:`LocationEncoder`
(architecture and identity, the SIREN network, its backend) and :class:`GeoCLIPEncoder`,
checkpoint formats, the registry of names, and :func:`load_model`, the only way from a user's
``model=`` to an encoder (:mod:`.load`)."""

from .backend import Backend, single_threaded_kernels
from .base import Encoder
from .checkpoints import save_model
from .config import ModelConfig, ModelIdentity, weights_sha256
from .encoder import LocationEncoder
from .geoclip import GeoCLIPEncoder
from .load import load_model, resolve_model

__all__ = [
    "Backend",
    "Encoder",
    "GeoCLIPEncoder",
    "LocationEncoder",
    "ModelConfig",
    "ModelIdentity",
    "load_model",
    "resolve_model",
    "save_model",
    "single_threaded_kernels",
    "weights_sha256",
]
