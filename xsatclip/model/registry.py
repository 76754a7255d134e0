"""Names of known models and where their weights live."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# The SatCLIP checkpoints published by Microsoft on the Hugging Face Hub.
PUBLISHED_MODELS = {
    f"satclip-{backbone.lower()}-l{level}": f"microsoft/SatCLIP-{backbone}-L{level}"
    for backbone in ("ResNet18", "ResNet50", "ViT16")
    for level in (10, 40)
}

# Models shipped inside the package (xsatclip/data/models/NAME): they work offline. Trained by
# tools/train_bluemarble.py on NASA Blue Marble NG + ETOPO1 relief; see each MODEL_CARD.md.
BUNDLED_MODELS = ("bluemarble-l10", "bluemarble-l40")

# The bundled model ``embed(level=L)`` uses when no model is given.
DEFAULT_MODELS = {10: "bluemarble-l10", 40: "bluemarble-l40"}


def bundled_model_directory(name: str) -> Path:
    """Directory of the bundled model ``name`` inside the installed package."""
    return Path(str(resources.files("xsatclip") / "data" / "models" / name))


def default_model(level: int) -> str | None:
    """Name of the bundled default model of ``level``, or None."""
    return DEFAULT_MODELS.get(level)
