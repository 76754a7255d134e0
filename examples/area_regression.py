"""Regression on area-level targets: county embeddings (area-weighted means) predict a census
variable, under spatially blocked cross-validation, mapped back onto the counties.

    python examples/area_regression.py [--out DIR] [--resolution DEG] [--target COLUMN]
                                       [--model M]

1. Georgia's 159 counties with 1990 census variables: the "georgia" example that ships
   inside libpysal (no download; Fotheringham et al., Geographically Weighted Regression,
   2002), polygons in UTM zone 16N (the shapefile has no .prj: EPSG:26916 is set here).
2. A lat/lon grid of ``--resolution`` degrees (default 0.05) over the counties, embedded
   lazily with the bundled level-10 model (``--model`` takes anything ``load_model`` does);
   ``xsatclip.areas.zonal`` gives each county the area-weighted mean of the cells it
   overlaps (the counties stay in UTM: zonal reprojects them).
3. A ridge regression of ``--target`` (default ``PctPov``, % of people below the poverty
   line) on standardised embeddings, penalty chosen by leave-one-out on the training fold;
   spatially blocked 5-fold cross-validation: counties grouped into 1-degree blocks by their
   representative point, whole blocks dealt to folds. The same protocol on the embedding at
   each county's representative point (the point workflow) and on the training-fold mean.
4. Writes ``predictions.gpkg`` (the counties: target, out-of-fold prediction, fold, block),
   ``area_regression.png`` (observed and predicted maps) and ``metrics.json``.

Needs the ``eval``, ``plot`` and ``zonal`` extras (libpysal, scikit-learn, matplotlib,
geopandas).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import geopandas
import numpy as np
from libpysal import examples
from matplotlib.figure import Figure  # no pyplot: rendered by Agg, no display needed
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import xsatclip
from xsatclip.areas import zonal

COUNTIES_CRS = "EPSG:26916"  # NAD83 / UTM zone 16N
BLOCK_DEG = 1.0
FOLDS = 5
ALPHAS = np.logspace(-2, 5, 15)


def load_counties() -> geopandas.GeoDataFrame:
    """Georgia's counties with their 1990 census columns, in UTM 16N."""
    counties = geopandas.read_file(examples.get_path("G_utm.shp"))
    return counties.set_crs(COUNTIES_CRS)


def grid_over(counties: geopandas.GeoDataFrame, resolution: float):
    """A lat/lon grid template of ``resolution`` degrees covering the counties."""
    west, south, east, north = counties.to_crs(4326).total_bounds
    bbox = (np.floor(west / resolution) * resolution, np.floor(south / resolution) * resolution,
            np.ceil(east / resolution) * resolution, np.ceil(north / resolution) * resolution)
    return xsatclip.grid(resolution, bbox=bbox, chunks=64)


def spatial_blocks(points: geopandas.GeoSeries) -> np.ndarray:
    """Block id of each point: its cell of a BLOCK_DEG lon/lat grid."""
    lonlat = points.to_crs(4326)
    return (np.floor(lonlat.y / BLOCK_DEG) * 1000 + np.floor(lonlat.x / BLOCK_DEG)).to_numpy(int)


def blocked_predictions(features: np.ndarray, target: np.ndarray, folds: np.ndarray):
    """Out-of-fold predictions of a ridge regression and of the training-fold mean."""
    predicted, baseline = np.empty(target.size), np.empty(target.size)
    for fold in np.unique(folds):
        test = folds == fold
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS))
        predicted[test] = model.fit(features[~test], target[~test]).predict(features[test])
        baseline[test] = target[~test].mean()
    return predicted, baseline


def draw_maps(path: Path, counties, target: str, title: str) -> None:
    figure = Figure(figsize=(10, 5.5), layout="constrained")
    axes = figure.subplots(1, 2)
    low, high = np.percentile(counties[target], [2, 98])
    for ax, column, name in zip(axes, (target, "predicted"), ("observed", "predicted "
                                "(out of fold)"), strict=True):
        counties.plot(column=column, ax=ax, cmap="viridis", vmin=low, vmax=high,
                      edgecolor="white", linewidth=0.2)
        ax.set(title=f"{target}, {name}", xticks=[], yticks=[])
    figure.colorbar(axes[1].collections[0], ax=axes, shrink=0.7, label=target)
    figure.suptitle(title)
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("example_output") / "area_regression")
    parser.add_argument("--resolution", type=float, default=0.05,
                        help="grid cell size in degrees (default 0.05)")
    parser.add_argument("--target", default="PctPov", help="census column (default PctPov)")
    parser.add_argument("--model", help="model (default: the bundled level-10 model)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    counties = load_counties()
    if args.target not in counties.columns:
        raise SystemExit(f"--target {args.target!r} is not a column of the counties: "
                         f"{[c for c in counties.columns if c != 'geometry']}")
    grid = grid_over(counties, args.resolution)
    if args.model is None:
        emb = grid.satclip.embed(level=10)  # lazy (embedding, lat, lon)
    else:
        emb = grid.satclip.embed(model=args.model)
    areas = zonal(emb, counties)  # (geometry, embedding), counties in row order
    points = counties.geometry.representative_point()
    lonlat = points.to_crs(4326)
    at_points = xsatclip.sample(emb, lonlat.x.to_numpy(), lonlat.y.to_numpy(), method="exact")

    target = counties[args.target].to_numpy(np.float64)
    blocks = spatial_blocks(points)
    folds = np.empty(target.size, int)
    for fold, (_, test) in enumerate(GroupKFold(FOLDS).split(target, groups=blocks)):
        folds[test] = fold
    predicted, baseline = blocked_predictions(areas.values, target, folds)
    at_point, _ = blocked_predictions(at_points.values, target, folds)

    counties = counties.assign(predicted=predicted, fold=folds, block=blocks)
    counties.to_file(args.out / "predictions.gpkg")
    name = emb.attrs["model_name"]
    metrics = {
        "model": name, "target": args.target, "counties": int(target.size),
        "grid_cells": int(grid.lat.size * grid.lon.size), "blocks": int(np.unique(blocks).size),
        "r2_area_mean": float(r2_score(target, predicted)),
        "mae_area_mean": float(mean_absolute_error(target, predicted)),
        "r2_representative_point": float(r2_score(target, at_point)),
        "r2_training_mean": float(r2_score(target, baseline)),
        "county_area_km2_median": float(np.median(areas.area.values) / 1e6),
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    draw_maps(args.out / "area_regression.png", counties, args.target,
              f"{name}: ridge on county mean embeddings, blocked {FOLDS}-fold CV, "
              f"R2 {metrics['r2_area_mean']:.2f}")

    print(f"model {name}, {target.size} counties, grid {args.resolution} degrees "
          f"({metrics['grid_cells']} cells), {metrics['blocks']} blocks of {BLOCK_DEG:g} "
          f"degree in {FOLDS} folds")
    print(f"{args.target}: out-of-fold R2 {metrics['r2_area_mean']:.3f} with area means "
          f"(MAE {metrics['mae_area_mean']:.2f}), {metrics['r2_representative_point']:.3f} "
          f"with representative points, {metrics['r2_training_mean']:.3f} with the "
          "training-fold mean")
    print(f"wrote {args.out / 'predictions.gpkg'}, {args.out / 'area_regression.png'}, "
          f"{args.out / 'metrics.json'}")


if __name__ == "__main__":
    main()
