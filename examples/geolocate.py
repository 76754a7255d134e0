"""Where is this image? Locate held-out Blue Marble patches on a global embedding cube.

    python examples/geolocate.py [--out DIR] [--model DIR] [--resolution DEG] [--queries N]
                                 [--seed S] [tiny-pair options]

1. The model: ``--model`` is a model directory (or bundled name) holding a location encoder
   *and* its image encoder (``encode_images``; the learned ``model_logit_scale`` in its
   identity). Without ``--model`` a tiny pair is trained here on Blue Marble + ETOPO1
   (``xsatclip.train``: ``--level``, ``--locations``, ``--epochs``, ``--reduce``) and its
   learned logit scale is read from the training state.
2. Held-out queries: ``--queries`` patches at locations drawn with ``--seed`` (which must
   differ from the training seed); any whose centre pixel is the centre pixel of a training
   location (the training draw is repeated from the model's recorded config) is dropped.
3. ``xsatclip.precompute`` writes a global cube of ``--resolution`` degrees
   (``DIR/cube.zarr``); ``locate`` turns each patch's image embedding into a probability
   map over it; ``recall_vs_area`` scores the maps: recall at 1e4, 1e5 and 1e6 km², and the
   median great-circle error of the most probable cell, beside the same for a uniform random
   map (i.i.d. random cell values per query: a ranking that knows nothing).
4. Writes ``geolocation.json`` and ``heatmap.png`` (the first query's map, log10 probability,
   with its true location and the most probable cell marked, over the Blue Marble image).

Needs the ``train`` and ``plot`` extras (Blue Marble, matplotlib).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

import xsatclip
from xsatclip.geolocation import (
    LOGIT_SCALE_ATTR,
    encode_patches,
    locate,
    recall_vs_area,
)
from xsatclip.model.registry import BUNDLED_MODELS, bundled_model_directory
from xsatclip.training import TrainConfig, train
from xsatclip.training.bluemarble import load_blue_marble, ocean_thinning
from xsatclip.training.loop import STATE_FILE
from xsatclip.training.pairs import PatchSampler

BUDGETS_KM2 = (1e4, 1e5, 1e6)
EXTENT = (-180, 180, -90, 90)


def tiny_pair(image: xr.DataArray, out: Path, args):
    """Train a small location + image encoder pair on ``image``; return the location
    encoder, the image encoder, the learned logit scale (log) and the config."""
    config = TrainConfig(level=args.level, capacity=64, embed_dim=64, patch_size=8,
                         num_locations=args.locations, batch_size=256, epochs=args.epochs,
                         learning_rate=3e-3, image_width=16, seed=0)
    run = train(image, out / "tiny-pair", config, progress=False)
    state = torch.load(run.directory / STATE_FILE, weights_only=True)
    return run.encoder, run.image_encoder, float(state["loss"]["logit_scale"]), config


def packaged_pair(source: str):
    """A model (directory or bundled name) with an image encoder, the config it was trained
    with and the Blue Marble reduction (from its ``training.json``)."""
    directory = bundled_model_directory(source) if source in BUNDLED_MODELS else Path(source)
    model = xsatclip.load_model(source)
    if not hasattr(model, "encode_images"):
        raise SystemExit(f"{source} has no image encoder (encode_images): locating images "
                         "needs the image half of the pair; run without --model to train a "
                         "tiny pair here")
    record = json.loads((directory / "training.json").read_text())
    return model, TrainConfig(**record["train_config"]), record


def training_image(record: dict) -> xr.DataArray:
    """The Blue Marble raster a packaged pair was trained on (reduction, Linke band)."""
    return load_blue_marble(int(record["image_reduce"]), linke=record.get("image_linke", False))


def held_out_queries(image: xr.DataArray, config: TrainConfig, n: int, seed: int,
                     ocean_keep: float | None = None):
    """``n`` patches drawn with ``seed``, minus those centred on a training location's
    pixel (the training draw repeated, with its ocean thinning when ``ocean_keep`` is
    given); and how many were dropped."""
    if seed == config.seed:
        raise SystemExit(f"--seed {seed} is the training seed: choose another")
    sampler = PatchSampler(image, config.patch_size)
    mask = None if ocean_keep is None else ocean_thinning(config.seed, ocean_keep)
    training = sampler.draw(config.num_locations, np.random.default_rng(config.seed), mask)
    queries = sampler.draw(n, np.random.default_rng(seed))
    width = sampler.x.size

    def pixel_index(pairs):
        row, col, _ = sampler.pixel(pairs.lon, pairs.lat)
        return row * width + col

    keep = ~np.isin(pixel_index(queries), pixel_index(training))
    return queries.lon[keep], queries.lat[keep], queries.patches[keep], int((~keep).sum())


def uniform_random_maps(like: xr.DataArray, seed: int) -> xr.DataArray:
    """Maps of i.i.d. uniform random values, normalised, shaped like ``like``."""
    values = np.random.default_rng(seed).random(like.shape)
    values /= values.sum(axis=(-2, -1), keepdims=True)
    return like.copy(data=values)


def scores(rva: xr.Dataset) -> dict:
    return {"recall_at_km2": {f"1e{round(math.log10(a))}": float(r)
                              for a, r in zip(rva.area_km2.values, rva.recall.values,
                                              strict=True)},
            "median_error_km": float(rva.median_error_km)}


def draw_heatmap(path: Path, prob: xr.DataArray, earth: xr.DataArray, true_lon: float,
                 true_lat: float, title: str) -> None:
    """log10 probability over the Blue Marble image (grey), with the truth (star) and the
    most probable cell (cross)."""
    figure = Figure(figsize=(10, 5.4), layout="constrained")
    axes = figure.subplots()
    grey = earth.sel(band=["red", "green", "blue"]).mean("band").values
    axes.imshow(grey, extent=EXTENT, origin="upper", cmap="gray")
    log_p = np.log10(prob.transpose("lat", "lon").values)
    top = float(np.nanmax(log_p))
    shown = axes.imshow(log_p, extent=EXTENT, origin="upper", interpolation="nearest",
                        cmap="magma", norm=Normalize(top - 6, top), alpha=0.7)
    best = np.unravel_index(np.nanargmax(prob.transpose("lat", "lon").values), log_p.shape)
    axes.plot(prob.lon.values[best[1]], prob.lat.values[best[0]], "c+", ms=14, mew=2,
              label="most probable cell")
    axes.plot(true_lon, true_lat, "*", color="lime", ms=16, mec="k", label="true location")
    axes.legend(loc="lower left")
    axes.set(title=title, xlabel="longitude", ylabel="latitude",
             xticks=range(-180, 181, 60), yticks=range(-90, 91, 30))
    figure.colorbar(shown, ax=axes, shrink=0.8, label="log10 probability (top 6 decades)")
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("example_output") / "geolocate")
    parser.add_argument("--model", help="model directory or bundled name with an image "
                                        "encoder (default: train a tiny pair here)")
    parser.add_argument("--resolution", type=float, default=1.0, help="degrees (default 1)")
    parser.add_argument("--queries", type=int, default=500, help="held-out patches (500)")
    parser.add_argument("--seed", type=int, default=20261124, help="held-out draw seed")
    tiny = parser.add_argument_group("tiny pair (without --model)")
    tiny.add_argument("--level", type=int, default=10)
    tiny.add_argument("--locations", type=int, default=20_000)
    tiny.add_argument("--epochs", type=int, default=8)
    tiny.add_argument("--reduce", type=int, default=4, help="Blue Marble pixel blocks (4)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    if args.model:  # its learned logit scale is in its identity attrs, hence the cube's
        location, config, record = packaged_pair(args.model)
        images, logit_scale, image = location, None, training_image(record)
        ocean_keep = record.get("ocean_keep")
    else:
        image = load_blue_marble(args.reduce)
        location, images, logit_scale, config = tiny_pair(image, args.out, args)
        ocean_keep = None
    lon, lat, patches, dropped = held_out_queries(image, config, args.queries, args.seed,
                                                  ocean_keep)
    store = xsatclip.precompute(args.out / "cube.zarr", resolution=args.resolution,
                                model=location, progress=False, overwrite=True)
    cube = xsatclip.open_cube(store).embeddings
    if logit_scale is not None:  # a tiny pair: record its learned scale as a model would
        cube.attrs[LOGIT_SCALE_ATTR] = logit_scale
    prob = locate(cube, encode_patches(images, patches)).compute()
    located = recall_vs_area(prob, lon, lat, areas_km2=BUDGETS_KM2)
    uniform = recall_vs_area(uniform_random_maps(prob, args.seed), lon, lat,
                             areas_km2=BUDGETS_KM2)
    metrics = {
        "model": location.identity.name, "model_source": location.identity.source,
        "logit_scale": float(cube.attrs[LOGIT_SCALE_ATTR]),
        "resolution_deg": args.resolution, "queries": int(lon.size),
        "held_out_seed": args.seed, "training_seed": config.seed,
        "dropped_on_training_pixels": dropped,
        "located": scores(located), "uniform_random": scores(uniform),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "geolocation.json").write_text(json.dumps(metrics, indent=2) + "\n")
    first = located.isel(query=0)
    draw_heatmap(args.out / "heatmap.png", prob.isel(query=0), image, lon[0], lat[0],
                 f"{metrics['model']}: where is this patch? (needed area "
                 f"{float(first.needed_area_km2):.2g} km², error "
                 f"{float(first.error_km):.0f} km)")

    print(f"model {metrics['model']} (logit scale {metrics['logit_scale']:.3f}, "
          f"multiplier {math.exp(metrics['logit_scale']):.1f}); {lon.size} held-out patches "
          f"({dropped} dropped on training pixels); cube {dict(cube.sizes)}")
    for name in ("located", "uniform_random"):
        recall = ", ".join(f"{r:.3f} at {a} km²"
                           for a, r in metrics[name]["recall_at_km2"].items())
        print(f"{name}: recall {recall}; median error "
              f"{metrics[name]['median_error_km']:.0f} km")
    print(f"wrote {args.out / 'geolocation.json'}, {args.out / 'heatmap.png'} "
          f"({metrics['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
