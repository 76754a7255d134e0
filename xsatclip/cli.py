"""The ``xsatclip`` command: precompute, info, sample, embed-points, models, train, evaluate.

Errors that xsatclip raises on purpose (and missing files, other OS errors, bad values) end
the command with one line, ``xsatclip: error: ...``, and exit status 1; argparse usage errors
exit with 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# `xsatclip train` flags: TrainConfig field and help.
TRAIN_FLAGS = {
    "--level": ("level", "Legendre level L (L*L basis features)"),
    "--capacity": ("capacity", "SIREN hidden width"),
    "--layers": ("num_hidden_layers", "SIREN hidden layers"),
    "--embed-dim": ("embed_dim", "embedding size"),
    "--patch-size": ("patch_size", "patch side in pixels"),
    "--locations": ("num_locations", "training + validation locations"),
    "--val-fraction": ("val_fraction", "held-out share of the locations"),
    "--batch-size": ("batch_size", "pairs per step"),
    "--epochs": ("epochs", "passes over the training locations"),
    "--lr": ("learning_rate", "AdamW peak learning rate"),
    "--weight-decay": ("weight_decay", "AdamW weight decay"),
    "--seed": ("seed", "seed of sampling, initialisation and shuffling"),
}


# --------------------------------------------------------------------------- tables


def _table_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in TABLE_FORMATS:
        raise ValueError(f"{path}: unknown table format {ext!r}; use .csv or .parquet")
    return TABLE_FORMATS[ext]


def _parquet_error(exc: ImportError):
    from .errors import MissingDependencyError

    return MissingDependencyError(f"Parquet files need pyarrow: pip install pyarrow ({exc})")


def read_points(path: str):
    """``(lon, lat)`` float64 arrays from a CSV or Parquet table with lon/lat columns."""
    import numpy as np
    import pandas as pd

    kind = _table_format(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"points file {path} does not exist")
    if kind == "csv":
        table = pd.read_csv(path)
    else:
        try:
            table = pd.read_parquet(path)
        except ImportError as exc:
            raise _parquet_error(exc) from None
    names = {str(c).strip().lower(): c for c in table.columns}
    columns = []
    for wanted in (("lon", "longitude"), ("lat", "latitude")):
        found = next((names[w] for w in wanted if w in names), None)
        if found is None:
            raise ValueError(f"{path}: needs columns lon and lat, found {list(table.columns)}")
        columns.append(found)
    try:
        lon, lat = (table[c].to_numpy(dtype=np.float64) for c in columns)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: lon/lat columns must be numbers") from None
    return lon, lat


def write_embeddings(lon, lat, embeddings, out: str | None) -> None:
    """Write ``lon, lat, e0 .. eN-1`` to ``out`` (CSV or Parquet), or CSV on stdout."""
    import pandas as pd

    table = pd.DataFrame({"lon": lon, "lat": lat})
    values = pd.DataFrame(embeddings, columns=[f"e{i}" for i in range(embeddings.shape[1])])
    table = pd.concat([table, values], axis=1)
    if out is None:
        table.to_csv(sys.stdout, index=False)
    elif _table_format(out) == "csv":
        table.to_csv(out, index=False)
    else:
        try:
            table.to_parquet(out, index=False)
        except ImportError as exc:
            raise _parquet_error(exc) from None


# --------------------------------------------------------------------------- commands


def _chunks(text: str):
    try:
        parts = [int(p) for p in text.replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or LAT,LON, got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected N or LAT,LON (positive), got {text!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes."""

    def emit(self, record) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _log_to_stderr() -> None:
    """xsatclip's own INFO messages on stderr (not those of dask.distributed), once."""
    logger = logging.getLogger("xsatclip")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def cmd_precompute(args) -> int:
    from . import cube

    if not args.quiet:
        _log_to_stderr()
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be positive, got {args.workers}")
    options = dict(resolution=args.resolution, bbox=args.bbox, level=args.level,
                   model=args.model, chunks=args.chunks, dtype=args.dtype,
                   resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                   batch_size=args.batch_size, numerics=args.numerics, device=args.device)
    if args.workers is not None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            from .errors import MissingDependencyError

            raise MissingDependencyError("--workers needs dask.distributed: pip install "
                                         "'xsatclip[distributed]'") from None
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            store = cube.precompute(args.store, scheduler=client, **options)
    else:
        store = cube.precompute(args.store, scheduler=args.scheduler, **options)
    summary = cube.info(store)
    if not args.quiet:
        print(f"{store}: {summary['chunks_done']}/{summary['chunks_total']} chunks done")
    return 0


def cmd_info(args) -> int:
    from . import cube

    summary = cube.info(args.store)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    model = summary["model"]
    done, total = summary["chunks_done"], summary["chunks_total"]
    dims = " x ".join(f"{k}={v}" for k, v in summary["dims"].items())
    lines = [
        f"store:    {summary['store']}",
        f"grid:     {summary['grid']}",
        f"dims:     {dims}",
    ]
    for key in ("lat_range", "lon_range"):
        if key in summary:
            lo, hi = summary[key]
            lines.append(f"{key[:3]}:      {lo:g} .. {hi:g} (cell centres)")
    lines += [
        f"model:    {model.get('name')} (level {model.get('level')}, numerics "
        f"{model.get('numerics')}, sha256 {str(model.get('sha256'))[:16]}...)",
        f"source:   {model.get('source')}",
        f"dtype:    {summary['dtype']}"
        + (f" (scale_factor {summary['scale_factor']:.6g})" if summary["scale_factor"] else ""),
        f"chunks:   {' x '.join(map(str, summary['chunks']))}",
        f"complete: {done}/{total} chunks ({100 * done / max(total, 1):.1f}%)"
        + (f", {summary['chunks_clipped']} with saturated int8 values"
           if summary["chunks_clipped"] else ""),
        f"created:  {summary['created']} by xsatclip {summary['xsatclip_version']}",
    ]
    print("\n".join(lines))
    return 0


def cmd_sample(args) -> int:
    import numpy as np

    from .sampling import sample

    lon, lat = read_points(args.points)
    values = sample(args.store, lon, lat, method=args.method).values
    missing = int(np.isnan(values).any(axis=1).sum())
    if missing:
        print(f"xsatclip: warning: {missing} point(s) have no value (NaN): outside the cube, "
              "in chunks not computed yet, or NaN coordinates", file=sys.stderr)
    write_embeddings(lon, lat, values, args.out)
    return 0


def cmd_embed_points(args) -> int:
    from .embedding import resolve_model

    lon, lat = read_points(args.points)
    model = resolve_model(args.level, args.model, numerics=args.numerics, dtype="float32",
                          device=args.device)
    write_embeddings(lon, lat, model.encode(lon, lat, batch_size=args.batch_size), args.out)
    return 0


def cmd_models(args) -> int:
    from .registry import DEFAULT_MODELS, PUBLISHED_MODELS

    print("Bundled models (offline; the default of their level when only --level is given):")
    for level, name in sorted(DEFAULT_MODELS.items()):
        print(f"  {name}  (level {level})")
    print("Published SatCLIP models (Hugging Face Hub; pass the name or the id as --model):")
    width = max(map(len, PUBLISHED_MODELS))
    for name, repo_id in sorted(PUBLISHED_MODELS.items()):
        print(f"  {name:<{width}}  {repo_id}")
    return 0


def open_raster(path: str, variable: str | None):
    """The training raster: ``bluemarble`` (the bundled models' imagery), a GeoTIFF, or a
    variable of a Zarr store or NetCDF file."""
    import xarray as xr

    if path == "bluemarble":
        from .bluemarble import load_blue_marble

        return load_blue_marble()
    if path.lower().endswith((".tif", ".tiff")):
        import rioxarray

        return rioxarray.open_rasterio(path, masked=True)
    ds = xr.open_zarr(path) if path.rstrip("/").endswith(".zarr") else xr.open_dataset(path)
    names = list(ds.data_vars)
    if variable is None and len(names) != 1:
        raise ValueError(f"{path} holds variables {names}: choose one with --variable")
    if variable is not None and variable not in names:
        raise ValueError(f"{path} has no variable {variable!r}; it holds {names}")
    return ds[variable or names[0]]


def cmd_train(args) -> int:
    from .pretraining import TrainConfig, train

    config = TrainConfig(**{name: getattr(args, name) for name, _ in TRAIN_FLAGS.values()})
    run = train(open_raster(args.raster, args.variable), args.out, config,
                resume=args.resume, stop_after=args.stop_after, progress=not args.quiet)
    if not args.quiet:
        last = run.history[-1]
        print(f"{len(run.history)}/{config.epochs} epochs: val_loss {last['val_loss']:.4f}, "
              f"val top-1 {last['val_accuracy']:.3f} -> {run.directory} "
              f"(load it with --model {run.directory})")
    return 0


def cmd_evaluate(args) -> int:
    from pathlib import Path

    from .evaluation import evaluate, format_table

    out_format = None if args.out is None else os.path.splitext(args.out)[1].lower()
    if out_format not in (None, ".csv", ".md"):
        raise ValueError(f"--out {args.out}: unknown format {out_format!r}; use .csv or .md")
    results = evaluate(args.features, tasks=args.tasks, n_points=args.n_points,
                       folds=args.folds, block_deg=args.block_deg, seed=args.seed,
                       progress=not args.quiet)
    table = format_table(results)
    if out_format == ".csv":
        results.to_csv(args.out, index=False)
    elif out_format == ".md":
        Path(args.out).write_text(table + "\n")
    print(table)
    return 0


# --------------------------------------------------------------------------- parser


def _add_model_options(p, *, required_help: str) -> None:
    p.add_argument("--model", metavar="M", help=required_help)
    p.add_argument("--level", type=int, help="Legendre level of the model (10 or 40)")
    p.add_argument("--numerics", choices=("exact", "reference"),
                   help="spherical-harmonic evaluation (default exact)")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, ...")
    p.add_argument("--batch-size", type=int, metavar="N", help="points per forward pass")


def build_parser() -> argparse.ArgumentParser:
    from .train_config import TrainConfig

    parser = argparse.ArgumentParser(
        prog="xsatclip",
        description="SatCLIP location embeddings: precompute Zarr cubes, inspect and sample "
                    "them, embed points.")
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
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="recompute every chunk of an existing matching store")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no messages")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="address of a dask.distributed scheduler (tcp://host:8786)")
    where.add_argument("--workers", type=int, metavar="N",
                       help="start a local dask.distributed cluster of N processes")
    p.set_defaults(func=cmd_precompute)

    p = sub.add_parser("info", help="grid, model, dtype and completeness of a cube",
                       description="Describe a cube written by precompute.")
    p.add_argument("store", help="local path or fsspec URL of the Zarr store")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

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
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("embed-points", help="exact embeddings of points (runs the model)",
                       description="Run the location encoder at points given as a CSV or "
                                   "Parquet table with lon and lat columns. Output columns: "
                                   "lon, lat, e0 .. eN-1.")
    p.add_argument("--points", required=True, metavar="FILE", help="CSV or Parquet points")
    _add_model_options(p, required_help="model name, Hub id, .ckpt file or model directory")
    p.add_argument("--out", metavar="FILE", help=".csv or .parquet (default: CSV on stdout)")
    p.set_defaults(func=cmd_embed_points)

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
    p.set_defaults(func=cmd_train)

    from . import evaluation

    p = sub.add_parser(
        "evaluate", help="score location features with linear probes on labelled data",
        description="Linear probes (ridge) of location features on real labelled data "
                    "(needs the eval extra), under spatially blocked cross-validation. Prints "
                    "a Markdown table: a row per feature set, mean ± std over folds per task.")
    p.add_argument("--features", nargs="+", metavar="F", default=list(evaluation.DEFAULT_FEATURES),
                   help="lonlat, cartesian, sh-L, geoclip, or a model name, checkpoint file, "
                        "model directory or Hub id (default: %(default)s)")
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
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("models", help="list known model names",
                       description="List the published SatCLIP models and bundled defaults.")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xsatclip`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    from .errors import XSatclipError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("xsatclip: interrupted", file=sys.stderr)
        return 130
    except (XSatclipError, OSError, ValueError) as exc:  # OSError: FileNotFoundError &c.
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"xsatclip: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
