"""The ``xsatclip`` argument parser."""

from __future__ import annotations

import argparse

from . import commands
from .train_flags import TRAIN_FLAGS


def _chunks(text: str):
    try:
        parts = [int(p) for p in text.replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or LAT,LON, got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected N or LAT,LON (positive), got {text!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


def _bands(text: str) -> list[int]:
    """``I`` or ``A-B`` (inclusive) embedding positions."""
    first, _, last = text.partition("-")
    try:
        start, stop = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I or A-B, got {text!r}") from None
    if not 0 <= start <= stop:
        raise argparse.ArgumentTypeError(f"expected 0 <= A <= B, got {text!r}")
    return list(range(start, stop + 1))


def _add_model_options(p, *, required_help: str) -> None:
    p.add_argument("--model", metavar="M", help=required_help)
    p.add_argument("--level", type=int, help="Legendre level of the model (10 or 40)")
    p.add_argument("--numerics", choices=("exact", "reference"),
                   help="spherical-harmonic evaluation (default exact)")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, ...")
    p.add_argument("--batch-size", type=int, metavar="N", help="points per forward pass")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from ..training.config import TrainConfig

    parser = argparse.ArgumentParser(
        prog="xsatclip",
        description="SatCLIP location embeddings: precompute Zarr cubes, inspect and sample "
                    "them, embed points.")
    parser.add_argument("--version", action="version", version=f"xsatclip {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "precompute", help="compute an embedding cube into a Zarr v3 store (resumable)",
        description="Compute SatCLIP embeddings of a lat/lon grid into a Zarr v3 store. "
                    "Interrupted runs resume where they stopped when rerun with the same "
                    "arguments.")
    p.add_argument("store", help="local path or fsspec URL of the Zarr store")
    p.add_argument("--resolution", type=float, metavar="DEG", required=True,
                   help="cell size in degrees")
    p.add_argument("--bbox", nargs=4, type=float, metavar=("W", "S", "E", "N"),
                   help="west south east north in degrees (default: the globe)")
    _add_model_options(p, required_help="model name, Hub id, .ckpt file or model directory")
    p.add_argument("--chunks", type=_chunks, metavar="N|LAT,LON",
                   help="spatial chunk size (default: at most 128, tiling the grid exactly "
                   "where it can; or the existing store's)")
    p.add_argument("--dtype", choices=("float32", "float16", "int8"), default="float32",
                   help="storage dtype (default float32)")
    p.add_argument("--inner-chunks", type=int, metavar="N",
                   help="preferred inner chunk side in cells of a new store (default 4: fast "
                   "point reads; 15 or 16: faster whole-map reads)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="recompute every chunk of an existing matching store")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no messages")
    p.add_argument("--repair", action="store_true",
                   help="read every chunk marked done and recompute those corrupt or missing "
                   "(a rerun always recomputes missing ones)")
    p.add_argument("--stac", action="store_true",
                   help="also write a STAC Item beside the store (STORE.stac.json) when there "
                        "is none yet (needs the stac extra)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="address of a dask.distributed scheduler (tcp://host:8786)")
    where.add_argument("--workers", type=int, metavar="N",
                       help="start a local dask.distributed cluster of N processes")
    p.add_argument("--compute-dtype", choices=("float32", "bfloat16"), default="float32",
                   help="the encoder's compute dtype (bfloat16: the layers after the first "
                   "in bfloat16, float32 where the CPU or GPU lacks fast bfloat16)")
    p.set_defaults(func=commands.cmd_precompute)

    p = sub.add_parser("info", help="grid, model, dtype and completeness of a cube",
                       description="Describe a cube written by precompute.")
    p.add_argument("store", help="local path or fsspec URL of the Zarr store")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--verify", action="store_true",
                   help="read every chunk: list those corrupt or missing (exit status 1)")
    p.set_defaults(func=commands.cmd_info)

    p = sub.add_parser("export", help="write a cube as a Cloud Optimized GeoTIFF",
                       description="Write the embeddings of a cube (or any Zarr store with an "
                                   "'embedding' dim) as a float32 COG: one band per embedding "
                                   "channel, average overviews, ZSTD, the cube's CRS.")
    p.add_argument("store", help="local path or fsspec URL of the Zarr store")
    p.add_argument("out", help="the .tif to write")
    p.add_argument("--bands", nargs="+", type=_bands, metavar="I|A-B",
                   help="embedding positions to export, e.g. 0-15 31 (default: all)")
    p.add_argument("--blocksize", type=int, default=128, metavar="N",
                   help="tile side in pixels, a multiple of 16 (default %(default)s)")
    p.add_argument("--no-overviews", dest="overviews", action="store_false",
                   help="no overviews")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=commands.cmd_export)

    p = sub.add_parser("overviews", help="add mean-coarsened overview levels to a cube",
                       description="Write overviews/1 .. overviews/N into the store, each the "
                                   "2 x 2 mean of the level below, and the multiscales "
                                   "convention block on the root group.")
    p.add_argument("store", help="local path or fsspec URL of the Zarr store")
    p.add_argument("--levels", type=int, default=3, metavar="N",
                   help="number of levels (default %(default)s)")
    p.set_defaults(func=commands.cmd_overviews)

    p = sub.add_parser("preview", help="render a cube's PCA preview as a PNG",
                       description="Draw the cube's 3-band PCA preview (its preview/ group; "
                                   "computed on the fly when it has none) as a PNG map.")
    p.add_argument("store", help="local path or fsspec URL of the Zarr store")
    p.add_argument("--out", required=True, metavar="PNG", help="the PNG to write")
    p.add_argument("--width", type=int, default=1200, metavar="PIXELS",
                   help="width of the PNG (default %(default)s)")
    p.add_argument("--write", action="store_true",
                   help="store the preview in the cube when it has none")
    p.set_defaults(func=commands.cmd_preview)

    p = sub.add_parser("stac", help="write a STAC Item describing a cube",
                       description="Write a STAC Item JSON (embeddings extension fields) "
                                   "for the cube, beside it by default.")
    p.add_argument("store", help="local path or fsspec URL of the Zarr store")
    p.add_argument("--out", metavar="JSON", help="where to write it (default STORE.stac.json)")
    p.set_defaults(func=commands.cmd_stac)

    p = sub.add_parser("sample", help="embeddings of a cube at points",
                       description="Read embeddings from a cube at points given as a CSV or "
                                   "Parquet table with lon and lat columns. Output columns: "
                                   "lon, lat, e0 .. eN-1.")
    p.add_argument("store", help="local path or fsspec URL of the Zarr store")
    p.add_argument("--points", required=True, metavar="FILE", help="CSV or Parquet points")
    p.add_argument("--method", choices=("nearest", "linear", "exact"), default="nearest",
                   help="nearest cell, bilinear between cell centres, or exact (runs the "
                        "cube's model at the points) (default nearest)")
    p.add_argument("--out", metavar="FILE", help=".csv or .parquet (default: CSV on stdout)")
    p.set_defaults(func=commands.cmd_sample)

    p = sub.add_parser("zonal", help="area-weighted embeddings of a cube over polygons",
                       description="Mean (and std, count) of a cube's embeddings over each "
                                   "polygon, cells weighted by their overlap area on the "
                                   "sphere (needs the zonal extra).")
    p.add_argument("store", help="local path or fsspec URL of the Zarr store")
    p.add_argument("--polygons", required=True, metavar="FILE",
                   help=".gpkg, .geojson, .shp, .fgb or .parquet (GeoParquet), any CRS")
    p.add_argument("--layer", help="layer of a multi-layer file (GeoPackage)")
    p.add_argument("--out", required=True, metavar="FILE", help=".parquet (GeoParquet, with "
                   "the polygons) or .csv (no geometry); attribute columns kept")
    p.add_argument("--stat", nargs="+", choices=("mean", "std", "count"), default=["mean"],
                   help="columns e0.. (mean), std_e0.., count (default mean)")
    p.add_argument("--weights", choices=("area", "coverage"), default="area",
                   help="overlap area on the sphere, or covered fraction of each cell "
                        "(default area)")
    p.set_defaults(func=commands.cmd_zonal)

    p = sub.add_parser("embed-points", help="exact embeddings of points (runs the model)",
                       description="Run the location encoder at points given as a CSV or "
                                   "Parquet table with lon and lat columns. Output columns: "
                                   "lon, lat, e0 .. eN-1.")
    p.add_argument("--points", required=True, metavar="FILE", help="CSV or Parquet points")
    _add_model_options(p, required_help="model name, Hub id, .ckpt file or model directory")
    p.add_argument("--out", metavar="FILE", help=".csv or .parquet (default: CSV on stdout)")
    p.set_defaults(func=commands.cmd_embed_points)

    p = sub.add_parser(
        "train", help="pretrain a location encoder on a georeferenced raster (SatCLIP)",
        description="Contrastive (CLIP) pretraining of a SatCLIP location encoder on image "
                    "patches cut from a raster at locations drawn uniformly on the sphere. "
                    "Checkpoints every epoch into OUT and resumes from it.")
    p.add_argument("raster", help="GeoTIFF, Zarr store, NetCDF file, or 'bluemarble' (the "
                                  "bundled models' imagery; needs the train extra)")
    p.add_argument("--out", required=True, metavar="DIR", help="checkpoint / model directory")
    p.add_argument("--variable", help="variable of a Zarr store or NetCDF file")
    defaults = TrainConfig()
    for flag, (name, help_text) in TRAIN_FLAGS.items():
        default = getattr(defaults, name)
        p.add_argument(flag, dest=name, type=type(default), default=default,
                       metavar="N" if isinstance(default, int) else "X",
                       help=f"{help_text} (default {default})")
    p.add_argument("--stop-after", type=int, metavar="EPOCHS",
                   help="stop after this many epochs (rerun to continue)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="fail if OUT already holds a checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=commands.cmd_train)

    from .. import evaluation

    p = sub.add_parser(
        "evaluate", help="score location features with probes on labelled data",
        description="Ridge and MLP probes of location features on real labelled data "
                    "(needs the eval extra), under spatially blocked cross-validation. Prints "
                    "a Markdown table: a row per feature set and probe, beside k-NN on raw "
                    "coordinates, mean ± std over folds per task.")
    p.add_argument("--features", nargs="+", metavar="F", default=list(evaluation.DEFAULT_FEATURES),
                   help="lonlat, cartesian, sh-L, geoclip, range:GALLERY (a model's embeddings "
                        "augmented RANGE-style from a saved gallery), or a model name, "
                        "checkpoint file, model directory or Hub id (default: %(default)s)")
    p.add_argument("--tasks", nargs="+", metavar="T", default=list(evaluation.DEFAULT_TASKS),
                   help=f"among {', '.join(evaluation.TASKS)} (default: all)")
    p.add_argument("--n-points", type=int, metavar="N", default=evaluation.DEFAULT_N_POINTS,
                   help="points per task (default %(default)s)")
    p.add_argument("--folds", type=int, metavar="K", default=5,
                   help="cross-validation folds (default %(default)s)")
    p.add_argument("--block-deg", type=float, metavar="DEG", default=evaluation.DEFAULT_BLOCK_DEG,
                   help="side of the spatial blocks in degrees (default %(default)s)")
    p.add_argument("--seed", type=int, metavar="S", default=0,
                   help="seed of sampling and folds (default %(default)s)")
    p.add_argument("--out", metavar="FILE", help="also write the results: .csv (one row per "
                                                 "task and feature set) or .md (the table)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--probes", nargs="+", metavar="P", default=list(evaluation.PROBES),
                   help="among ridge, mlp (default: both)")
    p.add_argument("--no-knn", action="store_true",
                   help="leave out the k-NN baseline on raw coordinates")
    p.set_defaults(func=commands.cmd_evaluate)

    p = sub.add_parser("models", help="list known model names",
                       description="List the published SatCLIP models and bundled defaults.")
    p.set_defaults(func=commands.cmd_models)

    p = sub.add_parser("show-versions", help="versions of xsatclip and its libraries",
                       description="Print the versions of xsatclip, Python, torch (and its "
                                   "CUDA), numba, zarr, dask, xarray, pyproj and rioxarray, "
                                   "for bug reports.")
    p.set_defaults(func=commands.cmd_show_versions)

    p = sub.add_parser("convert", help="rewrite a version 1 cube (or any embedding store) "
                                       "as a cube of this version",
                       description="Write the embeddings of OLD (a version 1 channels-last "
                                   "cube, or any Zarr store with an 'embedding' dim) as a "
                                   "band-first, sharded cube with this version's metadata at "
                                   "NEW; values and provenance unchanged.")
    p.add_argument("old", help="local path or fsspec URL of the store to convert")
    p.add_argument("new", help="local path or fsspec URL of the cube to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing NEW")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=commands.cmd_convert)
    return parser


