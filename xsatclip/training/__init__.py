"""SatCLIP contrastive pretraining on any georeferenced raster: the run's settings
(:mod:`.config`), training pairs (:mod:`.pairs`), the image encoder and CLIP loss
(:mod:`.contrastive`), the loop with its checkpoints (:mod:`.loop`) and the Blue Marble
imagery of the bundled models (:mod:`.bluemarble`).

``TrainConfig`` is light (the CLI reads its defaults); ``train`` loads torch on first use.
"""

from typing import Any

from .config import TrainConfig

__all__ = ["TrainConfig", "TrainingRun", "train"]


def __getattr__(name: str) -> Any:
    if name in ("train", "TrainingRun"):
        from . import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'xsatclip.training' has no attribute {name!r}")
