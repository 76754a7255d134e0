"""What each ``xsatclip`` subcommand does, given its parsed arguments."""

from __future__ import annotations

import json
import logging
import os
import sys

from ..errors import InvalidOptionError, missing_dependency
from .tables import read_points, write_embeddings
from .train_flags import TRAIN_FLAGS


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
    from .. import cube

    if not args.quiet:
        _log_to_stderr()
    if args.workers is not None and args.workers < 1:
        raise InvalidOptionError(f"--workers must be positive, got {args.workers}")
    options = dict(resolution=args.resolution, bbox=args.bbox, level=args.level,
                   model=args.model, chunks=args.chunks, dtype=args.dtype,
                   compute_dtype=args.compute_dtype,
                   resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                   batch_size=args.batch_size, numerics=args.numerics, device=args.device,
                   repair=args.repair, inner_chunks=args.inner_chunks)
    if args.workers is not None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise missing_dependency("--workers", "distributed", exc) from None
        # Loopback only, no dashboard; with --quiet, distributed's own shutdown chatter (a
        # worker slow to exit, heartbeats to a closed scheduler) stays silent too.
        quiet = logging.CRITICAL if args.quiet else logging.WARNING
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=":0",
                          silence_logs=quiet) as cluster, Client(cluster) as client:
            store = cube.precompute(args.store, scheduler=client, **options)
    else:
        store = cube.precompute(args.store, scheduler=args.scheduler, **options)
    summary = cube.info(store)
    if not args.quiet:
        print(f"{store}: {summary['chunks_done']}/{summary['chunks_total']} chunks done")
    if args.stac:
        _write_stac_once(store, quiet=args.quiet)
    return 0


def _write_stac_once(store: str, *, quiet: bool) -> None:
    """The STAC Item beside ``store`` (STORE.stac.json), unless one is already there."""
    import fsspec

    from ..cube.stac import write_stac_item

    path = store + ".stac.json"
    if fsspec.core.url_to_fs(path)[0].exists(path):
        if not quiet:
            print(f"{path}: kept (already there)")
        return
    write_stac_item(store)
    if not quiet:
        print(path)


def cmd_info(args) -> int:
    from .. import cube

    if args.verify:
        from ..cube.verify import verify

        report = verify(args.store)
        for line in report.lines():
            print(f"{report.store}: {line}")
        print(f"{report.store}: {report.units_checked} chunks checked, "
              f"{len(report.missing)} missing, {len(report.corrupt)} corrupt"
              + ("" if report.ok else " (xsatclip precompute STORE --repair ... recomputes "
                 "them)"))
        return 0 if report.ok else 1
    summary = cube.info(args.store)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    if summary["state"] == "incomplete":
        print(f"store:    {summary['store']}\ncomplete: no: the cube is being created, or its "
              "creation was interrupted (rerun precompute to create it)")
        return 0
    model = summary["model"]
    done, total = summary["chunks_done"], summary["chunks_total"]
    dims = " x ".join(f"{k}={v}" for k, v in summary["dims"].items())
    lines = [
        f"store:    {summary['store']} ({summary['bytes_on_disk'] / 2**20:.1f} MiB on disk)",
        f"variable: {summary['variable']} ({summary['layout']}), {dims}",
        f"crs:      {summary['crs']}",
        f"grid:     {summary['grid']}",
    ]
    for dim in summary["dims"]:
        if f"{dim}_range" in summary:
            lo, hi = summary[f"{dim}_range"]
            lines.append(f"{dim + ':':<9} {lo:g} .. {hi:g} (cell centres)")
    if "y_order" in summary:
        lines.append(f"stored:   rows {summary['y_order']}")
    lines += [
        f"model:    {model.get('name')} (level {model.get('level')}, numerics "
        f"{model.get('numerics')}, sha256 {str(model.get('sha256'))[:16]}...)",
        f"source:   {model.get('source')}",
        f"dtype:    {summary['dtype']}"
        + (f" (scale_factor {summary['scale_factor']:.6g})" if summary["scale_factor"] else ""),
        f"codecs:   {' -> '.join(summary['codecs'])}",
        f"chunks:   {' x '.join(map(str, summary['chunks']))}"
        + (f" (inner {' x '.join(map(str, summary['inner_chunks']))})"
           if summary["inner_chunks"] != summary["chunks"] else ""),
        f"complete: {done}/{total} chunks ({100 * done / max(total, 1):.1f}%)"
        + (f", {summary['chunks_clipped']} with saturated int8 values"
           if summary["chunks_clipped"] else ""),
        f"created:  {summary['created']} by xsatclip {summary['xsatclip_version']}",
    ]
    lines += [f"not verified (not written by xsatclip precompute): {what}"
              for what in summary["unverified"]]
    print("\n".join(lines))
    return 0


def cmd_export(args) -> int:
    from ..cube.export import export_cog

    bands = None if args.bands is None else [b for group in args.bands for b in group]
    print(export_cog(args.store, args.out, bands=bands, overviews=args.overviews,
                     blocksize=args.blocksize, overwrite=args.overwrite))
    return 0


def cmd_overviews(args) -> int:
    from ..cube.overviews import build_overviews

    for group in build_overviews(args.store, args.levels):
        print(f"{args.store}: {group}")
    return 0


def cmd_preview(args) -> int:
    from ..cube import preview

    image = preview.open_preview(args.store)
    if image is None and args.write:
        preview.build_preview(args.store)
        image = preview.open_preview(args.store)
        assert image is not None
    elif image is None:
        print(f"xsatclip: {args.store} has no stored preview: computing one (not stored; "
              "--write stores it)", file=sys.stderr)
        image = preview.compute_preview(args.store)
    print(preview.render_preview(image, args.out, width=args.width))
    return 0


def cmd_stac(args) -> int:
    from ..cube.stac import write_stac_item
    from ..cube.store import store_target

    write_stac_item(args.store, args.out)
    print(args.out or store_target(args.store).url + ".stac.json")
    return 0


def cmd_sample(args) -> int:
    import numpy as np

    from ..sampling import sample

    table, lon, lat = read_points(args.points)
    samples = sample(args.store, lon, lat, method=args.method)
    if "xsatclip_unverified" in samples.attrs:
        print(f"xsatclip: note: {args.store} was not written by xsatclip precompute; not "
              f"verified: {samples.attrs['xsatclip_unverified']}", file=sys.stderr)
    values = samples.values
    missing = int(np.isnan(values).any(axis=1).sum())
    if missing:
        print(f"xsatclip: warning: {missing} point(s) have no value (NaN): outside the cube, "
              "in chunks not computed yet, or NaN coordinates", file=sys.stderr)
    write_embeddings(table, values, args.out)
    return 0


def cmd_zonal(args) -> int:
    from ..areas.files import zonal_file

    rows = zonal_file(args.store, args.polygons, args.out, stat=args.stat,
                      weights=args.weights, layer=args.layer)
    print(f"{args.out}: {rows} polygons", file=sys.stderr)
    return 0


def cmd_embed_points(args) -> int:
    from ..model import resolve_model

    table, lon, lat = read_points(args.points)
    model = resolve_model(args.model, level=args.level, numerics=args.numerics, dtype="float32",
                          device=args.device)
    write_embeddings(table, model.encode(lon, lat, batch_size=args.batch_size), args.out)
    return 0


def cmd_models(args) -> int:
    from ..model.registry import DEFAULT_MODELS, PUBLISHED_MODELS

    print("Bundled models (offline; the default of their level when only --level is given):")
    for level, name in sorted(DEFAULT_MODELS.items()):
        print(f"  {name}  (level {level})")
    print("Published SatCLIP models (Hugging Face Hub; pass the name or the id as --model):")
    width = max(map(len, PUBLISHED_MODELS))
    for name, repo_id in sorted(PUBLISHED_MODELS.items()):
        print(f"  {name:<{width}}  {repo_id}")
    print("Other families:")
    print(f"  {'geoclip':<{width}}  GeoCLIP's location encoder, 512-d (pip install --no-deps "
          "geoclip)")
    return 0


def cmd_show_versions(args) -> int:
    from ..versions import show_versions

    show_versions()
    return 0


def open_raster(path: str, variable: str | None):
    """The training raster: ``bluemarble`` (the bundled models' imagery), a GeoTIFF, or a
    variable of a Zarr store or NetCDF file."""
    import xarray as xr

    if path == "bluemarble":
        from ..training.bluemarble import load_blue_marble

        return load_blue_marble()
    if path.lower().endswith((".tif", ".tiff")):
        import rioxarray

        return rioxarray.open_rasterio(path, masked=True)
    ds = xr.open_zarr(path) if path.rstrip("/").endswith(".zarr") else xr.open_dataset(path)
    names = list(ds.data_vars)
    if variable is None and len(names) != 1:
        raise InvalidOptionError(f"{path} holds variables {names}: choose one with --variable")
    if variable is not None and variable not in names:
        raise InvalidOptionError(f"{path} has no variable {variable!r}; it holds {names}")
    return ds[variable or names[0]]


def cmd_train(args) -> int:
    from ..training import TrainConfig, train

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

    from ..evaluation import evaluate, format_table

    out_format = None if args.out is None else os.path.splitext(args.out)[1].lower()
    if out_format not in (None, ".csv", ".md"):
        raise InvalidOptionError(f"--out {args.out}: unknown format {out_format!r}; use .csv "
                                 "or .md")
    results = evaluate(args.features, tasks=args.tasks, n_points=args.n_points,
                       folds=args.folds, block_deg=args.block_deg, seed=args.seed,
                       probes=args.probes, knn=not args.no_knn, progress=not args.quiet)
    table = format_table(results)
    if out_format == ".csv":
        results.to_csv(args.out, index=False)
    elif out_format == ".md":
        Path(args.out).write_text(table + "\n")
    print(table)
    return 0


def cmd_convert(args) -> int:
    from ..cube.convert import convert

    print(convert(args.old, args.new, overwrite=args.overwrite, progress=not args.quiet))
    return 0
