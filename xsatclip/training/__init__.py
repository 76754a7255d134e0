"""SatCLIP contrastive pretraining on any georeferenced raster: the run's settings
(:mod:`.config`), training pairs (:mod:`.pairs`), the image encoder and CLIP loss
(:mod:`.contrastive`), the loop with its checkpoints (:mod:`.loop`) and the Blue Marble
imagery of the bundled models (:mod:`.bluemarble`)."""

from .config import TrainConfig
from .loop import TrainingRun, train

__all__ = ["TrainConfig", "TrainingRun", "train"]
