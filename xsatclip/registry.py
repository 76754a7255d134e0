"""Names of known models and where their weights live."""

from __future__ import annotations

# The SatCLIP checkpoints published by Microsoft on the Hugging Face Hub.
PUBLISHED_MODELS = {
    f"satclip-{backbone.lower()}-l{level}": f"microsoft/SatCLIP-{backbone}-L{level}"
    for backbone in ("ResNet18", "ResNet50", "ViT16")
    for level in (10, 40)
}


def hub_filename(repo_id: str) -> str:
    """Checkpoint file name inside a SatCLIP Hub repo (``satclip-vit16-l40.ckpt``)."""
    return repo_id.split("/", 1)[1].lower() + ".ckpt"

# Bundled models that work offline, by level (none ship yet).
DEFAULT_MODELS: dict[int, str] = {}


def default_model(level: int) -> str | None:
    """Source of the bundled default model of ``level``, or None."""
    return DEFAULT_MODELS.get(level)
