"""Reproduce the bundled default models from fixed seeds (the `train` extra; ~10-20 min each
on 2 CPU cores).

    python tools/train_bluemarble.py --level 10
    python tools/train_bluemarble.py --level 40

trains on Blue Marble NG + ETOPO1 relief (``xsatclip.bluemarble``) into ``build/``, then copies
the model (``model.safetensors`` + ``config.json``) and ``training.json`` (config, seed,
machine, wall time, per-epoch losses) into ``xsatclip/data/models/bluemarble-l{L}/``. Run
``tools/model_cards.py`` afterwards to write the model cards with the evaluation numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch

import xsatclip
from xsatclip.training import TrainConfig, train
from xsatclip.training.bluemarble import load_blue_marble

ROOT = Path(__file__).resolve().parent.parent
# Training length and learning rate, chosen with the evaluation suite at seed 1 (other points
# and folds than the seed-0 numbers the model cards report). Longer contrastive training kept
# lowering the validation loss but made the embedding less linearly separable. Seed-1 scores
# (land/ocean accuracy, elevation R2, country accuracy):
#   L = 10, lr 1e-3: 3 epochs 0.913 / 0.424 / 0.724; 6 epochs 0.874 / 0.422 / 0.713;
#           lr 1e-4, 3 epochs 0.925 / 0.246 / 0.741 (bare SH basis 0.894 / 0.081 / 0.689).
#   L = 40, lr 1e-3: 3 epochs 0.809 / 0.445 / 0.354; 6 epochs 0.750 / 0.407 / 0.304;
#           lr 3e-4, 3 epochs 0.839 / 0.455 / 0.470; lr 1e-4 (SatCLIP's own), 3 epochs
#           0.890 / 0.427 / 0.528; 6 epochs 0.856 / 0.428 / 0.490 (bare SH basis 0.787 /
#           0.180 / 0.667; 3-D cartesian coordinates 0.755 / -0.059 / 0.344).
EPOCHS = {10: 3, 40: 3}
LEARNING_RATE = {10: 1e-3, 40: 1e-4}
SELECTION = ("3 epochs at learning rate 1e-3 (L = 10) or 1e-4 (L = 40), chosen among 3 and 6 "
             "epochs and 1e-3, 3e-4, 1e-4 with xsatclip.evaluate at seed 1, not the reported "
             "seed 0; longer training lowered the validation loss but the probe scores too "
             "(see tools/train_bluemarble.py)")
PRESETS = {
    level: TrainConfig(level=level, capacity=256, num_hidden_layers=2, embed_dim=256,
                       patch_size=16, num_locations=100_000, val_fraction=0.1,
                       batch_size=1024, epochs=EPOCHS[level],
                       learning_rate=LEARNING_RATE[level],
                       weight_decay=0.01, warmup_epochs=1.0, image_width=32, seed=level)
    for level in (10, 40)
}
IMAGE_REDUCE = 2  # 2700 x 1350 pixels of 2/15 degree: a 16-pixel patch spans ~2.1 degrees


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", type=int, choices=sorted(PRESETS), required=True)
    parser.add_argument("--work", type=Path, default=ROOT / "build")
    args = parser.parse_args()
    config = PRESETS[args.level]
    name = f"bluemarble-l{args.level}"
    start = time.perf_counter()
    run = train(load_blue_marble(IMAGE_REDUCE), args.work / name, config)
    seconds = time.perf_counter() - start
    target = ROOT / "xsatclip" / "data" / "models" / name
    target.mkdir(parents=True, exist_ok=True)
    for file in ("model.safetensors", "config.json"):
        shutil.copy2(run.directory / file, target / file)
    record = {
        "name": name,
        "image_reduce": IMAGE_REDUCE,
        "train_config": dataclasses.asdict(config),
        "selection": SELECTION,
        "sha256": run.encoder.identity.sha256,
        "xsatclip_version": xsatclip.__version__,
        "torch_version": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads "
                   f"{torch.get_num_threads()}",
        "wall_seconds_this_invocation": round(seconds, 1),
        "train_seconds": round(sum(h["seconds"] for h in run.history), 1),
        "history": run.history,
    }
    (target / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    last = run.history[-1]
    print(f"{name}: val_loss {last['val_loss']:.3f}, val top-1 {last['val_accuracy']:.3f}, "
          f"{record['train_seconds']:.0f} s of training -> {target}")


if __name__ == "__main__":
    main()
