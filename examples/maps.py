"""Pictures of SatCLIP embeddings over the globe: PCA colours and a land probability map.

    python examples/maps.py [--out DIR] [--resolution DEG] [--points N] [--model M]

1. Embeds a global lat/lon grid of ``--resolution`` degrees (lazily, then computed once).
2. ``--points`` locations uniform on the sphere get their exact embeddings
   (``xsatclip.sample(..., method="exact")``, without touching the grid) and a real label:
   land or ocean (``global_land_mask``).
3. ``embedding_pca.png``: the grid's embeddings projected on the first three principal
   components (fitted on the uniform points, so each area counts alike), as red, green,
   blue (each stretched between its 1st and 99th percentile).
4. ``land_probability.png``: a logistic regression fitted on 75% of the points, applied to
   every cell with ``xsatclip.predict_map(..., method="predict_proba")``; the held-out
   accuracy and ROC AUC are printed beside the majority-class baseline.
Both maps carry the true coastlines (``global_land_mask``) as thin lines. Metrics go to
``metrics.json``.

What the land map shows with the bundled L = 40 model (retrained 2026-12-03 with a
degree-weighted penalty on its first layer, smoothness 300, every ocean location kept; 1 degree
grid, 4000 points, held-out accuracy 0.941, ROC AUC 0.977):
no land over open ocean and no ocean inside continents at P = 0.5. What remains is the
band limit of degree 40 (shortest half-wavelength ~4.5 degrees): coasts blurred over a
few degrees, faint open-ocean spots (P < 0.3), a light band along 78 N north of Alaska and
Canada (P up to ~0.5) and a blurred Antarctic coast, paler patches (P 0.6-0.8) inside
continents where the image bands are uniform (Sahara, Siberia, the Canadian Shield), and
small islands and narrow seas that it cannot resolve (New Zealand, much of Indonesia).
Large inland water (Hudson Bay, Caspian Sea) is real.

``--model`` takes anything ``xsatclip.load_model`` does; default: the bundled default model.
Needs the ``eval`` and ``plot`` extras (scikit-learn, global-land-mask, matplotlib).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from global_land_mask import globe
from matplotlib.figure import Figure  # no pyplot: PNGs rendered by Agg, no display needed
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import xsatclip
from xsatclip.raster.geometry import uniform_on_sphere

EXTENT = (-180, 180, -90, 90)  # imshow: west, east, south, north


def uniform_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform on the sphere: lon, lat in degrees."""
    return uniform_on_sphere(np.random.default_rng(seed), n)


def is_land(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Land (True) or ocean, from ``global_land_mask`` (1 km GLOBE data)."""
    return globe.is_land(np.clip(lat, -89.999, 89.999), (lon + 180) % 360 - 180)


def land_mask(step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``lon (nx,), lat (ny,), land (ny, nx)`` (1.0 = land) on cell centres of ``step`` degrees."""
    lon = np.arange(-180 + step / 2, 180, step)
    lat = np.arange(90 - step / 2, -90, -step)
    return lon, lat, is_land(*np.meshgrid(lon, lat)).astype(float)


def pca_rgb(pca: PCA, values: np.ndarray) -> np.ndarray:
    """(ny, nx, E) embeddings -> (ny, nx, 3) colours in [0, 1] from 3 principal components."""
    components = pca.transform(values.reshape(-1, values.shape[-1]))
    low, high = np.percentile(components, [1, 99], axis=0)
    rgb = np.clip((components - low) / (high - low), 0, 1)
    return rgb.reshape(*values.shape[:2], 3)


def draw_map(path: Path, image, title: str, coast, colorbar: str | None = None, **imshow):
    """Save ``image`` (lat descending, lon ascending) on the globe with the coastlines of
    ``coast`` (a :func:`land_mask`)."""
    figure = Figure(figsize=(10, 5.4), layout="constrained")
    axes = figure.subplots()
    shown = axes.imshow(image, extent=EXTENT, origin="upper", interpolation="nearest", **imshow)
    axes.contour(*coast, levels=[0.5], colors="k", linewidths=0.5)
    axes.set(title=title, xlabel="longitude", ylabel="latitude",
             xticks=range(-180, 181, 60), yticks=range(-90, 91, 30))
    if colorbar:
        figure.colorbar(shown, ax=axes, shrink=0.8, label=colorbar)
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("example_output") / "maps")
    parser.add_argument("--resolution", type=float, default=1.0, help="degrees (default 1)")
    parser.add_argument("--points", type=int, default=4000, help="labelled points (default 4000)")
    parser.add_argument("--model", help="model (default: the bundled default model)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    grid = xsatclip.grid(args.resolution)
    emb = grid.satclip.embed(model=args.model)  # lazy (embedding, lat, lon)
    lon, lat = uniform_points(args.points, seed=0)
    features = xsatclip.sample(emb, lon, lat, method="exact").values  # the grid stays lazy
    land = is_land(lon, lat)
    emb = emb.compute()  # both maps read it
    name = emb.attrs["model_name"]
    coast = land_mask(0.25)  # finer than the grid: smooth coastlines

    pca = PCA(n_components=3).fit(features)
    explained = [float(v) for v in pca.explained_variance_ratio_]
    draw_map(args.out / "embedding_pca.png", pca_rgb(pca, emb.transpose(..., "embedding").values),
             f"{name}: first 3 principal components of the embeddings as RGB "
             f"({100 * sum(explained):.0f}% of the variance)", coast)

    test = np.random.default_rng(1).permutation(lon.size) < lon.size // 4
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    classifier.fit(features[~test], land[~test])
    probability = classifier.predict_proba(features[test])[:, 1]
    metrics = {
        "points_train": int((~test).sum()), "points_test": int(test.sum()),
        "pca_explained_variance": explained,
        "land_accuracy": float(((probability > 0.5) == land[test]).mean()),
        "majority_accuracy": float(max(land[test].mean(), 1 - land[test].mean())),
        "land_roc_auc": float(roc_auc_score(land[test], probability)),
    }
    land_map = xsatclip.predict_map(classifier, emb, method="predict_proba").sel({"class": True})
    metrics["map_land_fraction"] = float(
        np.average((land_map > 0.5).mean("lon"), weights=np.cos(np.radians(land_map.lat))))
    draw_map(args.out / "land_probability.png", land_map.values,
             f"{name}: land probability, logistic regression on {metrics['points_train']} "
             f"points (held-out accuracy {metrics['land_accuracy']:.2f})", coast,
             colorbar="P(land)", cmap="BrBG_r", vmin=0, vmax=1)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    print(f"model {name}, grid {dict(emb.sizes)}, {lon.size} labelled points "
          f"({land.mean():.0%} land)")
    print(f"PCA: explained variance {', '.join(f'{v:.3f}' for v in explained)}")
    print(f"land vs ocean, held-out {metrics['points_test']} points: accuracy "
          f"{metrics['land_accuracy']:.3f} (majority class {metrics['majority_accuracy']:.3f}), "
          f"ROC AUC {metrics['land_roc_auc']:.3f}; land on the map: "
          f"{metrics['map_land_fraction']:.0%} of the area")
    print(f"wrote {args.out / 'embedding_pca.png'}, {args.out / 'land_probability.png'}, "
          f"{args.out / 'metrics.json'}")


if __name__ == "__main__":
    main()
