"""``precompute``: a cube of embeddings into a Zarr v3 store, resumably."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import numpy as np
import xarray as xr
import zarr

from ..errors import InvalidOptionError, StoreError, check_choice
from ..harmonics import Numerics
from ..model.backend import DeviceLike, DType
from ..model.load import ModelLike
from ..raster import build_embedding, plan_embedding
from ..raster.embed import ChunksLike
from .codec import Codec, int8_scale
from .durable import check_replaceable, check_scheduler_reaches, remove_leftovers
from .layout import (
    DONE_PATH,
    INNER_SIDE,
    STORAGE_DTYPES,
    VARIABLE,
    StorageDType,
    default_chunk,
    grid_definition,
    template_grid,
)
from .lock import store_lock
from .metadata import cube_conventions
from .store import (
    create_store,
    differences,
    inspect_store,
    provenance_attrs,
    store_target,
)
from .verify import recheck
from .writer import LOCAL_SCHEDULERS, compute_chunks

logger = logging.getLogger(__name__)

def precompute(store: str | os.PathLike, *, resolution: float | None = None,
               template: xr.Dataset | xr.DataArray | None = None, level: int | None = None,
               model: ModelLike | None = None,
               bbox: tuple[float, float, float, float] | None = None,
               chunks: ChunksLike = None, dtype: StorageDType = "float32",
               resume: bool = True, overwrite: bool = False, scheduler: Any = None,
               progress: bool = True, batch_size: int | None = None,
               numerics: Numerics | None = None, device: DeviceLike = "auto",
               storage_options: dict | None = None, repair: bool = False,
               compute_dtype: DType = "float32", inner_chunks: int | None = None) -> str:
    """Compute a cube of SatCLIP embeddings into a Zarr v3 store, resumably.

    Parameters
    ----------
    store : local path or fsspec URL (``s3://bucket/cube.zarr``).
    resolution : cell size in degrees of a :func:`~xsatclip.grid` over ``bbox``
        (default: the globe); or give ``template=``, any grid ``embed`` accepts.
    level, model : the encoder, as ``.satclip.embed`` takes them.
    chunks : int, (lat, lon) or {dim: int}; default the template's chunks, else the
        store's (when resuming), else :func:`default_chunk` per axis (at most 128). See the
        module doc for why.
    dtype : "float32", "float16" or "int8" (module doc: scheme and error bounds).
    inner_chunks : preferred side (cells) of the inner chunks of a new store (default 4:
        fast point reads; 15 or 16 read whole maps ~4x faster through zarr-python; see
        :mod:`xsatclip.cube.layout`). A resumed store keeps its own.
    resume : continue an existing matching store, computing only chunks not yet marked
        done (a finished store costs one read of its markers). ``False`` recomputes every
        chunk of it.
    overwrite : replace an existing store, whatever it holds.
    scheduler : None (local threads: ``dask.config`` ``num_workers``, else one per core),
        the address of a ``dask.distributed`` scheduler, or a ``Client``. With distributed,
        each worker loads the model once and writes the chunks it computes (the store must
        be reachable from the workers).
    progress : tqdm bar (chunks done/total, points/s, ETA) on a terminal's stderr.
    batch_size : points per forward pass inside a chunk.
    numerics, device : passed on to the model (``device`` also to the workers).
    storage_options : for fsspec URLs.
    repair : read every chunk marked done and recompute those that are corrupt (failed
        checksum, truncated); chunks marked done but missing are recomputed on any resume
        (:mod:`.verify`).
    compute_dtype : the encoder's dtype, "float32" or "bfloat16" (see ``load_model``).

    Returns
    -------
    The store's path or URL.

    Raises
    ------
    StoreError
        The store holds another cube (model, numerics, grid, dtype or chunks differ), is no
        xsatclip cube, or another precompute holds its lock.

    Memory stays bounded whatever the grid: at most two chunks per thread are in flight, and
    no process ever holds more than that.
    """
    check_choice("dtype", dtype, STORAGE_DTYPES)
    if inner_chunks is not None and (isinstance(inner_chunks, bool)
                                     or not isinstance(inner_chunks, int) or inner_chunks < 1):
        raise InvalidOptionError(f"inner_chunks must be a positive integer (cells), got "
                                 f"{inner_chunks!r}")
    template = template_grid(resolution, template, bbox)
    target = store_target(store, storage_options)
    check_scheduler_reaches(target, scheduler not in (None, *LOCAL_SCHEDULERS))
    with store_lock(target.url, target.local) as writable:
        state, group = inspect_store(target)
        check_replaceable(target, state)  # foreign directories: never touched
        if state == "unreadable" and not overwrite:
            raise StoreError(f"{target.url} exists and is unreadable; pass overwrite=True "
                             "(--overwrite) to replace it")
        keep = state == "complete" and not overwrite
        stored: dict[str, int] = {}
        if keep and VARIABLE in group:
            array = group[VARIABLE]
            shards = array.shards or array.chunks
            stored = dict(zip(array.metadata.dimension_names, shards, strict=True))

        def fallback_chunk(dim: str, size: int) -> int:
            return stored.get(dim) or default_chunk(size)

        plan = plan_embedding(template, level=level, model=model, numerics=numerics,
                              dtype=compute_dtype, device=device, batch_size=batch_size,
                              chunks=chunks, default_chunk=fallback_chunk)
        emb = build_embedding(plan)
        encoder = plan.encoder
        if keep:
            diffs = differences(group, emb, encoder, dtype, plan.chunks, plan.chunks_requested)
            if diffs:
                raise StoreError(f"{target.url} holds a different cube: " + "; ".join(diffs)
                                 + ". Pass overwrite=True (--overwrite) to replace it, or "
                                 "choose another store")
            scale = group[VARIABLE].attrs.get("scale_factor")
            codec = Codec(dtype, None if scale is None else float(scale))
            done_array = zarr.open_array(target.store(), path=DONE_PATH, mode="r+")
            if not resume:
                done_array[...] = 0
            done = np.asarray(done_array[...])
            if writable:
                recheck(target, group, done, full=repair)
            create = None
        else:
            codec = Codec(dtype, int8_scale(encoder) if dtype == "int8" else None,
                          inner_chunks or INNER_SIDE)
            attrs = provenance_attrs(encoder, grid_definition(template, plan.spatial), codec,
                                     plan.chunks)
            conventions, array_conventions = cube_conventions(emb, codec, attrs)
            attrs.update(conventions)  # geoemb:, proj:, spatial: (cube/metadata.py)
            done = np.zeros([len(c) for c in emb.data.chunks[1:]], np.uint8)
            # Created by the writer while the first chunks are computed.
            create = functools.partial(create_store, target, emb.assign_attrs(array_conventions),
                                       plan.spatial, codec, attrs, replace=state != "absent")
        pending = [tuple(int(v) for v in ij) for ij in np.argwhere(done == 0)]
        total = done.size
        logger.info("%s: %d of %d chunks to compute", target.url, len(pending), total)
        if not pending:
            return target.url
        if not writable:
            raise StoreError(f"{target.url}: {len(pending)} of {total} chunks to compute, but "
                             "its lock file cannot be written (read-only media or no "
                             "permission)")
        remove_leftovers(target)
        compute_chunks(target, emb.data, codec, pending, total, scheduler, progress, create)
    return target.url
