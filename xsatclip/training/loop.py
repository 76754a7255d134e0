"""SatCLIP contrastive pretraining on any georeferenced xarray raster: pairs from
:mod:`.pairs`, the SH basis + SIREN location side, :class:`~xsatclip.model.image.PatchEncoder`
(or any module) on the image side, CLIP's loss, AdamW with warm-up and cosine decay. Seeded and
deterministic on the CPU; checkpoints every epoch (the image encoder too) and resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import nn

from ..errors import CheckpointError, InvalidOptionError, OutputExistsError
from ..harmonics import spherical_harmonics
from ..model import LocationEncoder
from ..model.checkpoints import load_tensors, replace_atomically, write_model_directory
from ..model.image import ImageConfig, write_image_encoder
from .config import TrainConfig
from .contrastive import ClipLoss, PatchEncoder
from .pairs import Mask, PatchSampler, TrainingPairs

STATE_FILE = "training_state.pt"
HISTORY_FILE = "history.json"


@dataclasses.dataclass
class TrainingRun:
    """The result of :func:`train`: the location ``encoder``, the ``image_encoder``, one
    ``history`` record per epoch (train_loss, val_loss, val_accuracy, seconds) and the
    checkpoint ``directory`` (loadable with ``xsatclip.load_model``)."""

    encoder: LocationEncoder
    image_encoder: nn.Module
    history: list[dict]
    directory: Path


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic torch kernels for the duration of the block."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _basis(pairs: TrainingPairs, config: TrainConfig) -> torch.Tensor:
    """(N, L*L) float32 basis features of the pairs' locations."""
    return torch.from_numpy(spherical_harmonics(pairs.lon, pairs.lat, config.level,
                                                convention=config.convention))


def _schedule(config: TrainConfig, steps_per_epoch: int):
    """Learning-rate factor of a step: linear warm-up, then cosine decay to zero."""
    warmup = max(1, round(config.warmup_epochs * steps_per_epoch))
    total = config.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return factor


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    """Index batches over ``n`` items: shuffled full batches when a generator is given (a
    smaller remainder is dropped), else every item in order."""
    if generator is None:
        return list(torch.arange(n).split(batch_size))
    order = torch.randperm(n, generator=generator)
    usable = max(batch_size, n - n % batch_size) if n >= batch_size else n
    return list(order[:usable].split(batch_size))


class _Trainer:
    """The modules, optimiser and schedule of one run, and their checkpoint."""

    def __init__(self, config: TrainConfig, bands: tuple[str, ...],
                 image_encoder: nn.Module | None, train_patches: np.ndarray,
                 steps_per_epoch: int) -> None:
        self.config = config
        self.bands = bands
        # Smoothness weight l (l + 1) / (L (L - 1)) of basis column k (degree floor(sqrt k)).
        degree = torch.arange(config.level**2).float().sqrt().floor()
        self.degree_weight = degree * (degree + 1) / max(1, config.level * (config.level - 1))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.location = config.model_config().build_network()
            if image_encoder is None:
                image_encoder = PatchEncoder(len(bands), config.embed_dim, config.image_width)
                stats = torch.from_numpy(train_patches).float()
                image_encoder.band_mean.copy_(stats.mean(dim=(0, 2, 3)))
                image_encoder.band_std.copy_(stats.std(dim=(0, 2, 3)).clamp(min=1e-6))
            self.image = image_encoder
            self.loss = ClipLoss()
        parameters = [*self.location.parameters(), *self.image.parameters(),
                      *self.loss.parameters()]
        self.optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           _schedule(config, steps_per_epoch))

    def step(self, basis: torch.Tensor, patches: torch.Tensor) -> float:
        self.location.train()
        self.image.train()
        loss = self.loss(self.location(basis), self.image(patches))
        total = loss
        if self.config.smoothness > 0:
            first = self.location.sine_layers[0].weight
            total = loss + self.config.smoothness * (self.degree_weight
                                                     * first.pow(2).sum(0)).sum()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())

    @torch.no_grad()
    def validate(self, basis: torch.Tensor, patches: torch.Tensor) -> tuple[float, float]:
        """Mean CLIP loss and location->image top-1 accuracy over validation batches."""
        self.location.eval()
        self.image.eval()
        losses, hits = [], 0
        for index in _batches(basis.shape[0], self.config.batch_size, None):
            loc, img = self.location(basis[index]), self.image(patches[index])
            losses.append(float(self.loss(loc, img)) * index.numel())
            logits = self.loss.logits(loc, img)
            hits += int((logits.argmax(1) == torch.arange(index.numel())).sum())
        return sum(losses) / basis.shape[0], hits / basis.shape[0]

    def state(self, epoch: int, history: list[dict], fingerprint: str) -> dict:
        return {
            "format": "xsatclip-training-state", "format_version": 1,
            "train_config": dataclasses.asdict(self.config), "epoch": epoch,
            "pairs_sha256": fingerprint, "history": history,
            "location": self.location.state_dict(), "image": self.image.state_dict(),
            "loss": self.loss.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }

    def restore(self, state: dict) -> None:
        self.location.load_state_dict(state["location"])
        self.image.load_state_dict(state["image"])
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def _save(directory: Path, trainer: _Trainer, epoch: int, history: list[dict],
          fingerprint: str) -> None:
    """The model directory first, then the state, each replaced atomically: the state is the
    commit point, and it holds its own copy of the location weights."""
    write_model_directory(trainer.config.model_config(), trainer.location.state_dict(),
                          directory)
    if isinstance(trainer.image, PatchEncoder):
        config = trainer.config
        scale = float(trainer.loss.logit_scale.detach().clamp(max=ClipLoss.max_logit_scale))
        write_image_encoder(directory, ImageConfig(trainer.bands, config.patch_size,
                                                   config.image_width, config.embed_dim,
                                                   scale), trainer.image)
    text = json.dumps(history, indent=2) + "\n"
    replace_atomically(directory / HISTORY_FILE, lambda path: path.write_text(text))
    state = trainer.state(epoch, history, fingerprint)
    replace_atomically(directory / STATE_FILE, lambda path: torch.save(state, path))


def _load_state(path: Path, config: TrainConfig, fingerprint: str) -> dict:
    """The checkpointed state at ``path``, checked against this run's config and data."""
    state = load_tensors(path, "training state")
    if not isinstance(state, dict) or state.get("format") != "xsatclip-training-state":
        raise CheckpointError(f"{path} is not an xsatclip training state")
    saved = state["train_config"]
    differ = {k: (saved.get(k), v) for k, v in dataclasses.asdict(config).items()
              if saved.get(k) != v}
    if differ:
        raise CheckpointError(f"{path} was written with a different config "
                              f"(field: (checkpoint, now)): {differ}; resume with the same "
                              "config or train into a new directory")
    if state["pairs_sha256"] != fingerprint:
        raise CheckpointError(f"{path} was trained on different pairs (raster, mask or seed "
                              "changed); resume with the same data or use a new directory")
    return state


def _progress(total: int, initial: int, directory: Path, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc=f"train {directory.name}",
                disable=not (progress and sys.stderr.isatty()), leave=False)


def train(image: xr.DataArray, directory: str | os.PathLike, config: TrainConfig | None = None,
          *, mask: Mask | None = None, image_encoder: nn.Module | None = None,
          resume: bool = True, stop_after: int | None = None,
          progress: bool = True) -> TrainingRun:
    """Pretrain a SatCLIP location encoder on ``image``; checkpoint into ``directory``.

    Parameters
    ----------
    image : DataArray (band, y, x) or (y, x) on lat/lon or projected coordinates with a CRS.
        Loaded only where patches are cut (lazy Dask-backed rasters are fine).
    directory : where the model (``model.safetensors`` + ``config.json``, readable by
        ``xsatclip.load_model``), ``history.json`` and ``training_state.pt`` go after every
        epoch.
    config : TrainConfig, default ``TrainConfig()``.
    mask : callable ``(lon, lat) -> bool array``; only locations where it is True are used.
    image_encoder : any module mapping float32 patches (N, bands, P, P) to (N, embed_dim);
        default a :class:`~xsatclip.contrastive.PatchEncoder` that standardises the bands.
    resume : continue from ``directory``'s checkpoint when there is one (it must come from the
        same config and data). With ``resume=False`` an existing checkpoint is an error.
    stop_after : stop once this many epochs are done (the checkpoint is kept; train again with
        the same arguments to go on).
    progress : a progress bar with the loss, when stderr is a terminal.
    """
    config = config or TrainConfig()
    if stop_after is not None and stop_after < 1:
        raise InvalidOptionError(f"stop_after must be at least 1 epoch, got {stop_after}")
    directory = Path(directory)
    state_path = directory / STATE_FILE
    if state_path.exists() and not resume:
        raise OutputExistsError(f"{state_path} exists: pass resume=True to continue that run, or "
                              "choose a new directory")
    sampler = PatchSampler(image, config.patch_size)
    pairs = sampler.draw(config.num_locations, np.random.default_rng(config.seed), mask)
    fingerprint = pairs.fingerprint()
    train_pairs, val_pairs = pairs.split(config.val_fraction, config.seed)
    basis = {"train": _basis(train_pairs, config), "val": _basis(val_pairs, config)}
    patches = {"train": torch.from_numpy(train_pairs.patches).float(),
               "val": torch.from_numpy(val_pairs.patches).float()}
    steps_per_epoch = len(_batches(len(train_pairs), config.batch_size, torch.Generator()))
    trainer = _Trainer(config, sampler.band_names, image_encoder, train_pairs.patches,
                       steps_per_epoch)
    history: list[dict] = []
    if state_path.exists():
        state = _load_state(state_path, config, fingerprint)
        trainer.restore(state)
        history = list(state["history"])
    directory.mkdir(parents=True, exist_ok=True)
    last = config.epochs if stop_after is None else min(config.epochs, stop_after)
    with _deterministic(), _progress(config.epochs * steps_per_epoch,
                                     len(history) * steps_per_epoch, directory, progress) as bar:
        for epoch in range(len(history), last):
            start = time.perf_counter()
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
            losses = []
            for index in _batches(len(train_pairs), config.batch_size, generator):
                losses.append(trainer.step(basis["train"][index], patches["train"][index]))
                bar.update()
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
            val_loss, val_accuracy = trainer.validate(basis["val"], patches["val"])
            history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                            "val_loss": val_loss, "val_accuracy": val_accuracy,
                            "seconds": time.perf_counter() - start})
            _save(directory, trainer, epoch + 1, history, fingerprint)
    # The weights the directory holds: just saved, or restored from its state.
    encoder = LocationEncoder(config.model_config(), trainer.location.state_dict(),
                              source=str(directory.resolve()), name=directory.name,
                              device="cpu")
    return TrainingRun(encoder, trainer.image, history, directory)
