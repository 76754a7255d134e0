"""Map a quantity from SatCLIP embeddings: terrain elevation over Colorado, in UTM.

    python examples/regression_map.py [--out DIR] [--cell-km KM] [--model M]

1. Writes a GeoTIFF grid in UTM zone 13N (EPSG:32613) over Colorado (600 x 450 km) and
   reopens it with rioxarray.
2. Embeds every cell centre lazily with the ``.satclip`` accessor and stores the embeddings
   as Zarr (the only time the grid is computed).
3. Labels: the elevations of the airports inside the raster (``airportsdata``, ICAO list;
   feet converted to metres). Features: the exact embeddings at the airports,
   ``xsatclip.sample(..., method="exact")``.
4. Fits a ridge regression on 75% of the airports, reports MAE and R^2 on the other 25%
   beside a constant (mean) baseline, and predicts every cell with ``xsatclip.predict_map``
   from the stored embeddings.
5. Writes the elevation map as a GeoTIFF in the raster's CRS, and ``metrics.json``.

``--model`` takes anything ``xsatclip.load_model`` does; default: the bundled default model.
Needs the ``eval`` extra (scikit-learn, airportsdata).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyproj
import rioxarray
import xarray as xr
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import xsatclip

CRS = "EPSG:32613"  # UTM zone 13N
WEST, NORTH, WIDTH_KM, HEIGHT_KM = 160_000.0, 4_550_000.0, 600, 450
FEET = 0.3048  # metres


def write_geotiff(path: Path, cell_km: float) -> None:
    """The template raster: cells of ``cell_km`` over the region, value 1 (to be mapped)."""
    cell = 1000.0 * cell_km
    x = WEST + cell * (np.arange(round(WIDTH_KM / cell_km)) + 0.5)
    y = NORTH - cell * (np.arange(round(HEIGHT_KM / cell_km)) + 0.5)
    template = xr.DataArray(np.ones((y.size, x.size), np.uint8), dims=("y", "x"),
                            coords={"y": y, "x": x}, name="template")
    template.rio.write_crs(CRS).rio.to_raster(path)


def airports_inside(raster: xr.DataArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``lon, lat, elevation_m`` of the airports whose location falls inside ``raster``."""
    import airportsdata

    table = airportsdata.load("ICAO").values()
    lon, lat, feet = (np.array([a[k] for a in table], float) for k in ("lon", "lat", "elevation"))
    x, y = pyproj.Transformer.from_crs(4326, raster.rio.crs, always_xy=True).transform(lon, lat)
    left, bottom, right, top = raster.rio.bounds()
    inside = (x > left) & (x < right) & (y > bottom) & (y < top)
    return lon[inside], lat[inside], feet[inside] * FEET


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("example_output") / "regression_map")
    parser.add_argument("--cell-km", type=float, default=5.0, help="cell size (default 5)")
    parser.add_argument("--model", help="model (default: the bundled default model)")
    parser.add_argument("--seed", type=int, default=0, help="train/test split seed")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    tif = args.out / "utm_template.tif"
    write_geotiff(tif, args.cell_km)
    raster = rioxarray.open_rasterio(tif, chunks={"x": 64, "y": 64}).squeeze("band", drop=True)
    emb = raster.satclip.embed(model=args.model)  # lazy "embeddings": (embedding, y, x)
    store = args.out / "utm_embeddings.zarr"
    emb.to_zarr(store, mode="w", consolidated=False)
    stored = xr.open_zarr(store, consolidated=False)["embeddings"]  # CRS: spatial_ref
    print(f"embedded {tif.name} {dict(raster.sizes)} ({raster.rio.crs}) -> {store.name}, "
          f"model {stored.attrs['model_name']} (sha256 {stored.attrs['model_sha256'][:12]})")

    lon, lat, elevation = airports_inside(raster)
    features = xsatclip.sample(stored, lon, lat, method="exact").values
    test = np.random.default_rng(args.seed).permutation(lon.size) < lon.size // 4
    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    ridge.fit(features[~test], elevation[~test])
    predicted = ridge.predict(features[test])
    baseline = elevation[~test].mean()
    metrics = {
        "airports_train": int((~test).sum()), "airports_test": int(test.sum()),
        "mae_m": float(np.abs(predicted - elevation[test]).mean()),
        "baseline_mae_m": float(np.abs(baseline - elevation[test]).mean()),
        "r2": float(ridge.score(features[test], elevation[test])),
        "alpha": float(ridge[-1].alpha_),
    }
    print(f"{lon.size} airports ({metrics['airports_train']} train, {metrics['airports_test']} "
          f"test), elevation {elevation.min():.0f} .. {elevation.max():.0f} m")
    print(f"held-out MAE {metrics['mae_m']:.0f} m (mean baseline {metrics['baseline_mae_m']:.0f}"
          f" m), R^2 {metrics['r2']:.3f}, ridge alpha {metrics['alpha']:g}")

    elevation_map = xsatclip.predict_map(ridge, stored).rename("elevation").compute()
    elevation_map.attrs.update(units="m", long_name="elevation predicted from SatCLIP embeddings")
    assert elevation_map.rio.crs == raster.rio.crs
    out_tif = args.out / "elevation_predicted.tif"
    elevation_map.rio.to_raster(out_tif)
    metrics.update(map_min_m=float(elevation_map.min()), map_max_m=float(elevation_map.max()))
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {out_tif.name}: {dict(elevation_map.sizes)}, {elevation_map.rio.crs}, "
          f"{metrics['map_min_m']:.0f} .. {metrics['map_max_m']:.0f} m; metrics.json")


if __name__ == "__main__":
    main()
