"""Embedding cubes in Zarr v3: resumable, crash-safe precompute; open, inspect.

Sampling cubes at points lives in :mod:`xsatclip.sampling`.

A cube is a Zarr v3 group (local path or fsspec URL) with consolidated metadata holding

* ``embeddings`` (lat, lon, embedding): the SatCLIP embedding of every grid cell centre,
  stored as float32, float16 or int8 (see *Storage dtypes*);
* the coordinates ``lat``/``lon`` (CF units), ``embedding`` (0 .. embed_dim-1) and
  ``spatial_ref`` (EPSG:4326, read by rioxarray), and provenance attributes (``model_*``,
  ``xsatclip_*``, ``created``);
* ``_xsatclip/done``: one uint8 per spatial chunk, the completion markers (a sub-group, so
  ``xr.open_zarr`` does not show it).

The variable is ``embeddings`` and not ``embedding`` because the embedding dimension has a
coordinate of that name, and xarray allows no data variable named like a coordinate.

Chunk layout
------------
Chunks are spatial tiles of up to 128 x 128 cells holding the full embedding dimension. A
map read (one channel or all, over a region) touches few, large objects: a global 0.1 degree
cube is 15 x 30 = 450 chunks. A point lookup reads exactly one chunk, since all of a
location's channels sit in the same chunk; splitting the embedding dimension would multiply
the reads of every lookup. 128 x 128 x 256 is 16 MiB as float32, 8 MiB as float16 and 4 MiB
as int8 (stored uncompressed: zstd gains ~8% on embeddings): large enough for object stores,
small enough that a lookup does not fetch 64 MiB, and the unit of work of ``precompute``
(one task computes and writes one chunk). By default each axis is tiled exactly where it
can be (:func:`default_chunk`: 120 for the 720 and 1440 cells of a 0.25 degree globe, 90 x
120 at 1 degree), since Zarr stores an edge chunk whole: 128 x 128 chunks would pad a 1
degree globe by 52% and a 0.25 degree one by 14%. Zarr sharding would let a lookup read a
sub-chunk, but a partially written shard must be read back before it is rewritten, which
clashes with crash safety; it is not used.

Storage dtypes
--------------
``float32``
    The model's output, bit for bit.
``float16``
    ``|x - x16| <= 2**-11 |x|`` (round to nearest; ``<= 2**-25`` below ``2**-14``).
``int8``
    Symmetric linear quantisation with one global scale, CF style: ``code = round(x / s)``
    in [-127, 127], stored with the attribute ``scale_factor = s`` (float32) and
    ``_FillValue = -128`` (cells never written), so ``xr.open_zarr`` decodes automatically
    (to float64, as CF decoding with a JSON attribute does; :func:`open_cube` decodes to
    float32). ``s = 1.25 * A / 127`` where ``A`` is the largest ``|x|`` of the model over
    16384 points of a Fibonacci lattice on the sphere: it depends on the model only, so
    every cube of a model shares it. Bound: ``|x - code * s| <= s / 2`` for every value with
    ``|x| <= 127 s``; larger values (beyond 1.25 times the lattice maximum) would saturate
    at +-127 and the chunk is flagged (marker 2, counted as ``chunks_clipped`` by
    :func:`info`), so the bound never fails silently.

Crash safety and resume
-----------------------
The store is created first: metadata, coordinates and empty arrays, with consolidated
metadata written last (a store without it is a creation that was interrupted, and is
recreated; no chunk can be done yet). The first chunks are computed meanwhile, but none is
written before the store is complete. Every chunk is then written, and only after the data
write has returned (and, on a local store, the data is on disk: ``fdatasync``) is its marker
set in ``_xsatclip/done`` (one Zarr chunk per marker, so concurrent writers never share an
object). A process killed at any moment leaves each chunk either marked, and completely
written, or unmarked; a rerun recomputes the unmarked chunks, overwriting any partial data,
and ends identical to an uninterrupted run, bit for bit: every chunk is computed the same
way (one torch thread, the same block shapes), whichever thread, process or Dask worker
computes it. (A different ``batch_size``
or device on the rerun may change the last bits of float32 values: it is not checked.)
Metadata is never rewritten by a resume, so the attributes (``created`` included) stay those
of the first run. A rerun with another model (weights sha256), numerics, grid, storage
dtype or chunking raises :class:`~xsatclip.errors.StoreError` naming the differences, unless
``overwrite=True``.

Writing
-------
Locally, one thread per core computes chunks and one more thread writes them, so computing
never waits on the disk. On a local store each chunk file is flushed (``fdatasync``) and
then dropped from the page cache (``posix_fadvise``) before its marker is set: a marker is
only ever written for data the file system has reported durable, and a cube larger than
memory streams through the page cache instead of filling it with dirty pages. On the 2-core
VM this was measured on, a 16 MiB write into pages just dropped costs ~4 ms of CPU, ~52 ms
into fresh ones (benchmarks/README.md).

Locking
-------
For local stores, ``precompute`` holds an exclusive ``fcntl.flock`` on ``<store>.lock``
(beside the store, so that neither Zarr listings nor ``overwrite`` see it) for its whole
run; a second run fails at once with a StoreError naming the store and the holder's pid.
The kernel drops a flock when its process dies, ``kill -9`` included, so a lock is never
stale: a leftover lock file from a dead run is simply taken over. The holder deletes the
file when it finishes (after checking, on acquiring, that the file it locked is still the
one at the path). flock is not reliable across machines on some network file systems, and
URLs (``s3://``, ...) are not locked: run one ``precompute`` per remote store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import functools
import itertools
import logging
import os
import socket
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import dask
import dask.array as da
import numpy as np
import xarray as xr
import zarr

from .embedding import embed, requested_chunks, resolve_model
from .errors import MissingDependencyError, StoreError
from .model import LocationEncoder
from .spatial import find_spatial_coords, grid

logger = logging.getLogger(__name__)

VARIABLE = "embeddings"
DONE_PATH = "_xsatclip/done"
FORMAT_VERSION = 1
DEFAULT_CHUNK = 128
STORAGE_DTYPES = ("float32", "float16", "int8")
INT8_FILL = -128
INT8_MAX = 127
INT8_MARGIN = 1.25
INT8_SAMPLE_POINTS = 16384
DONE, DONE_CLIPPED = 1, 2
LOCAL_SCHEDULERS = ("threads", "threading", "sync", "synchronous", "single-threaded")


# --------------------------------------------------------------------------- stores


@dataclasses.dataclass(frozen=True)
class _Target:
    """Where a cube lives: an absolute local path or an fsspec URL (picklable)."""

    url: str
    local: bool
    options: tuple = ()  # storage_options items

    def store(self, read_only: bool = False):
        if self.local:
            return zarr.storage.LocalStore(self.url, read_only=read_only)
        return zarr.storage.FsspecStore.from_url(
            self.url, storage_options=dict(self.options) or None, read_only=read_only)


def _target(store, storage_options=None) -> _Target:
    text = os.fspath(store)
    if text.startswith("file://"):
        text = text[len("file://"):]
    if "://" in text:
        return _Target(text.rstrip("/"), False, tuple(sorted((storage_options or {}).items())))
    if storage_options:
        raise ValueError("storage_options apply to URLs (s3://, gs://, ...), not local paths")
    return _Target(os.path.abspath(os.path.expanduser(text)), True)


@contextlib.contextmanager
def _store_lock(target: _Target):
    """Exclusive, non-blocking flock on ``<store>.lock`` for local stores (see module doc)."""
    if not target.local:
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        warnings.warn(f"no file locking on this platform: do not run two precomputes on "
                      f"{target.url} at once", stacklevel=3)
        yield
        return
    path = target.url + ".lock"
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreError(f"cannot lock store {target.url} ({path}): {exc}") from None
            raise StoreError(f"store {target.url} is locked by a running precompute "
                             f"({holder}); wait for it to finish") from None
        try:  # the previous holder may have unlinked the file between our open and flock
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode())
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still holding it: see the inode check above
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _open_group(target: _Target, mode: str = "r"):
    return zarr.open_group(target.store(read_only=mode == "r"), mode=mode)


def _inspect(target: _Target):
    """``(state, group)``; state is absent, foreign, unreadable, partial or complete."""
    try:
        group = _open_group(target)
    except (FileNotFoundError, zarr.errors.NodeNotFoundError):
        if target.local and os.path.exists(target.url):
            if not os.path.isdir(target.url) or os.listdir(target.url):
                return "foreign", None
        return "absent", None
    except (ValueError, OSError):  # corrupt zarr.json, unknown metadata, ...
        return "unreadable", None
    if "xsatclip_cube" not in group.attrs:
        return "foreign", group
    if group.metadata.consolidated_metadata is None:
        return "partial", group
    return "complete", group


# --------------------------------------------------------------------------- encoding


@dataclasses.dataclass(frozen=True)
class _Codec:
    """float32 model output -> stored values (and whether any value saturated)."""

    dtype: str
    scale: float | None = None  # int8: the float32 scale_factor, as a Python float

    def encode(self, block: np.ndarray) -> tuple[np.ndarray, bool]:
        if self.dtype == "float32":
            return np.asarray(block, np.float32), False
        if self.dtype == "float16":
            with np.errstate(over="ignore"):
                out = np.asarray(block, np.float16)
            return out, bool(np.isinf(out).any())
        codes = np.rint(np.asarray(block, np.float64) / self.scale)
        clipped = bool((np.abs(codes) > INT8_MAX).any())
        np.clip(codes, -INT8_MAX, INT8_MAX, out=codes)
        return codes.astype(np.int8), clipped

    def encoding(self, chunks: tuple[int, ...]) -> dict:
        # Uncompressed: zstd shrinks float32 embeddings by only ~8% and costs about a quarter
        # of the compute time at ~400 MB/s.
        enc = {"chunks": chunks, "dtype": self.dtype, "compressors": None}
        if self.dtype == "int8":
            enc.update(scale_factor=np.float32(self.scale), _FillValue=np.int8(INT8_FILL),
                       fill_value=np.int8(INT8_FILL))
        else:
            enc.update(_FillValue=np.nan, fill_value=np.nan)
        return enc


def fibonacci_lattice(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` nearly evenly spaced points on the sphere, (lon, lat) in degrees."""
    i = np.arange(n) + 0.5
    lat = np.degrees(np.arcsin(1 - 2 * i / n))
    lon = (np.degrees(np.pi * (1 + 5**0.5) * i) + 180) % 360 - 180
    return lon, lat


def int8_scale(model: LocationEncoder) -> float:
    """The int8 ``scale_factor`` of ``model``'s cubes (module doc, *Storage dtypes*)."""
    amplitude = float(np.abs(model.encode(*fibonacci_lattice(INT8_SAMPLE_POINTS))).max())
    return float(np.float32(INT8_MARGIN * (amplitude or 1.0) / INT8_MAX))


def dequantize(codes, scale_factor: float) -> np.ndarray:
    """int8 codes -> float32 embeddings (``-128``, never written, -> NaN)."""
    codes = np.asarray(codes)
    values = codes * np.float32(scale_factor)
    return np.where(codes == INT8_FILL, np.float32(np.nan), values).astype(np.float32)


# --------------------------------------------------------------------------- templates


def _template(resolution, template, bbox) -> xr.Dataset:
    if template is None:
        if resolution is None:
            raise ValueError("precompute needs resolution= (degrees) or template=")
        return grid(resolution, bbox=bbox)
    if resolution is not None or bbox is not None:
        raise ValueError("pass either template= or resolution=/bbox=, not both")
    if isinstance(template, xr.DataArray):
        template = template.to_dataset(name=template.name or "template")
    return template


def _grid_definition(template: xr.Dataset, spatial) -> str:
    if "xsatclip_grid" in template.attrs:
        return str(template.attrs["xsatclip_grid"])
    parts = []
    for name in (spatial.y, spatial.x):
        values = np.asarray(template[name].values)
        parts.append(f"{name}: {values.size} values {values.min():g} .. {values.max():g}")
    return f"template ({spatial.kind}): " + ", ".join(parts)


def default_chunk(size: int) -> int:
    """Default chunk length along an axis of ``size`` cells: the whole axis up to 128 cells,
    else the largest divisor of ``size`` from 64 to 128 (the axis is tiled exactly), else 128
    (the last chunk is padded)."""
    if size <= DEFAULT_CHUNK:
        return size
    divisors = (c for c in range(DEFAULT_CHUNK, DEFAULT_CHUNK // 2 - 1, -1) if size % c == 0)
    return next(divisors, DEFAULT_CHUNK)


def _chunk_sizes(template, spatial, chunks, stored: dict | None) -> tuple[dict, bool]:
    """Spatial chunk sizes, and whether the caller (or the template) chose them."""
    chosen = requested_chunks(template, spatial.dims, chunks)
    sizes = {d: min(chosen.get(d) or (stored or {}).get(d) or default_chunk(template.sizes[d]),
                    template.sizes[d])
             for d in spatial.dims}
    return sizes, bool(chosen)


# --------------------------------------------------------------------------- creation


def _provenance(encoder: LocationEncoder, grid_def: str, codec: _Codec, sizes: dict) -> dict:
    from . import __version__

    if codec.dtype == "int8":
        quantization = (f"int8 symmetric, global scale: value = code * scale_factor, code in "
                        f"[-127, 127], -128 = not written; |error| <= scale_factor / 2 = "
                        f"{codec.scale / 2:.3g}")
    elif codec.dtype == "float16":
        quantization = "float16 rounding of float32 outputs: |error| <= 2**-11 |value|"
    else:
        quantization = "none (float32 model outputs)"
    return {
        "title": "SatCLIP location embeddings",
        "Conventions": "CF-1.8",
        "xsatclip_cube": FORMAT_VERSION,
        "xsatclip_version": __version__,
        "xsatclip_grid": grid_def,
        "xsatclip_dtype": codec.dtype,
        "xsatclip_quantization": quantization,
        "xsatclip_chunks": [int(c) for c in sizes.values()],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **encoder.identity.attrs(),
    }


def _create(target: _Target, emb: xr.DataArray, codec: _Codec, attrs: dict, *,
            replace: bool) -> None:
    """Metadata, coordinates, empty arrays, markers; consolidated metadata last."""
    spatial = find_spatial_coords(emb)
    sizes = tuple(emb.chunks[i][0] for i in range(2))
    shape = emb.shape
    # Placeholder: one lazy chunk, never computed (compute=False writes no data).
    placeholder = da.empty(shape, chunks=shape, dtype=np.float32)
    var_attrs = {"long_name": "SatCLIP location embedding",
                 **emb.attrs}
    ds = xr.Dataset({VARIABLE: (emb.dims, placeholder, var_attrs)}, coords=emb.coords,
                    attrs=attrs)
    if spatial.kind == "rectilinear" and _is_geographic(emb):
        ds[spatial.y].attrs.setdefault("units", "degrees_north")
        ds[spatial.x].attrs.setdefault("units", "degrees_east")
    ds["embedding"].attrs.setdefault("long_name", "embedding channel")
    # spatial_ref (from embed) stays a coordinate listed in the variable's "coordinates"
    # attribute: no grid_mapping attribute, which would make xarray read it back as a data
    # variable (rioxarray finds the coordinate either way).
    encoding = {VARIABLE: codec.encoding((*sizes, shape[2]))}
    if replace and target.local and os.path.lexists(target.url):
        import shutil

        if os.path.isdir(target.url) and not os.path.islink(target.url):
            shutil.rmtree(target.url)
        else:
            os.remove(target.url)
    store = target.store()
    ds.to_zarr(store, mode="w" if replace else "w-", zarr_format=3, consolidated=False,
               compute=False, encoding=encoding)
    group = zarr.open_group(store, mode="r+")
    nby, nbx = (len(c) for c in emb.chunks[:2])
    markers = group.create_group("_xsatclip")
    done = markers.create_array(
        "done", shape=(nby, nbx), chunks=(1, 1), dtype="uint8", fill_value=0,
        attributes={"long_name": "chunk completion markers",
                    "flag_values": [0, DONE, DONE_CLIPPED],
                    "flag_meanings": "not_written written written_with_saturated_values",
                    "chunk_shape": list(sizes)})
    del done
    with warnings.catch_warnings():  # "consolidated metadata is not in the v3 spec (yet)"
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        zarr.consolidate_metadata(store)


def _is_geographic(obj) -> bool:
    crs = obj.rio.crs
    return crs is not None and crs.is_geographic


# --------------------------------------------------------------------------- matching


def _describe(values: np.ndarray) -> str:
    if values.size == 0:
        return "0 values"
    return f"{values.size} values {values.flat[0]:g} .. {values.flat[-1]:g}"


def _differences(group, emb: xr.DataArray, encoder: LocationEncoder, dtype: str,
                 sizes: dict, chunks_chosen: bool) -> list[str]:
    attrs = group.attrs
    diffs = []
    ident = encoder.identity
    if attrs.get("model_sha256") != ident.sha256:
        diffs.append(f"model: the store has {attrs.get('model_name')} (sha256 "
                     f"{str(attrs.get('model_sha256'))[:12]}...), requested {ident.name} "
                     f"(sha256 {ident.sha256[:12]}...)")
    for key in ("numerics", "convention"):
        stored, wanted = attrs.get(f"model_{key}"), getattr(ident, key)
        if stored != wanted:
            diffs.append(f"{key}: the store has {stored!r}, requested {wanted!r}")
    if attrs.get("xsatclip_dtype") != dtype:
        diffs.append(f"dtype: the store has {attrs.get('xsatclip_dtype')!r}, "
                     f"requested {dtype!r}")
    grid_diffs = []
    for name, coord in emb.coords.items():
        if name in ("embedding", "spatial_ref"):
            continue
        wanted = np.asarray(coord.values)
        if name not in group:
            grid_diffs.append(f"{name} is missing from the store")
            continue
        stored = np.asarray(group[name][...])
        if stored.shape != wanted.shape or not np.array_equal(stored, wanted):
            grid_diffs.append(f"{name}: the store has {_describe(stored)}, requested "
                              f"{_describe(wanted)}")
    if grid_diffs:
        definition = attrs.get("xsatclip_grid")
        diffs.append(f"grid (the store's: {definition}): " + "; ".join(grid_diffs))
    stored_chunks = group[VARIABLE].chunks[:2]
    if chunks_chosen and tuple(sizes.values()) != tuple(stored_chunks):
        diffs.append(f"chunks: the store has {tuple(stored_chunks)}, requested "
                     f"{tuple(sizes.values())}")
    return diffs


# --------------------------------------------------------------------------- writing


@dataclasses.dataclass(frozen=True)
class _Writer:
    """What a chunk task needs to store its result: the two Zarr arrays (opened once by
    ``precompute`` after creating or checking the store, picklable for Dask workers), the
    codec, and the chunk boundaries."""

    embeddings: zarr.Array
    done: zarr.Array
    codec: _Codec
    starts: tuple[tuple[int, ...], tuple[int, ...]]

    def region(self, index: tuple[int, int]) -> tuple[slice, slice, slice]:
        (i, j), (ys, xs) = index, self.starts
        return slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1]), slice(None)


def _store_chunk(block: np.ndarray, writer: _Writer, index: tuple[int, int]) -> int:
    """Write one chunk, then (only then) its marker; returns the number of points.

    Runs where the chunk was computed: a local thread, or a Dask worker.
    """
    data, clipped = writer.codec.encode(block)
    writer.embeddings[writer.region(index)] = data
    _flush_local_chunk(writer.embeddings, (*index, 0))
    writer.done[index] = DONE_CLIPPED if clipped else DONE
    return int(block.shape[0] * block.shape[1])


def _flush_local_chunk(array: zarr.Array, chunk: tuple[int, ...]) -> None:
    """On a local store, put a chunk file just written on disk (fdatasync) and drop it from
    the page cache; other stores: nothing.

    Its marker is then only ever set for data on disk, and a cube larger than memory
    streams through the page cache instead of filling it with dirty pages (which the
    kernel would otherwise flush in bursts that stall every writer).
    """
    if not isinstance(array.store, zarr.storage.LocalStore):
        return
    path = os.path.join(array.store.root, array.path, array.metadata.encode_chunk_key(chunk))
    fd = os.open(path, os.O_RDONLY)
    try:
        getattr(os, "fdatasync", os.fsync)(fd)  # macOS has no fdatasync
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _run_local(pending, blocks: np.ndarray, open_writer, threads: int, on_done) -> None:
    """Local threads: ``threads`` compute chunks (each with single-threaded kernels) and one
    more writes them, so that computing never waits on the disk; it first runs
    ``open_writer``. At most 2 x threads chunks are being computed, waiting to be written or
    being written."""

    def compute(index):
        return index, blocks[index].compute(scheduler="sync")

    def store(block, index):
        return _store_chunk(block, writer.result(), index)

    window = 2 * threads
    pending = iter(pending)
    computing, writing = set(), set()
    with (ThreadPoolExecutor(threads, thread_name_prefix="xsatclip-compute") as compute_pool,
          ThreadPoolExecutor(1, thread_name_prefix="xsatclip-write") as write_pool):
        writer = write_pool.submit(open_writer)
        try:
            while True:
                for index in itertools.islice(pending, window - len(computing) - len(writing)):
                    computing.add(compute_pool.submit(compute, index))
                if not computing and not writing:
                    break
                finished, _ = wait(computing | writing, return_when=FIRST_COMPLETED)
                for future in finished:
                    if future in computing:
                        computing.discard(future)
                        index, block = future.result()
                        writing.add(write_pool.submit(store, block, index))
                    else:
                        writing.discard(future)
                        on_done(future.result())
        finally:
            for future in computing | writing:
                future.cancel()


def _run_distributed(client, pending, blocks: np.ndarray, writer: _Writer, on_done) -> None:
    """Chunks in a sliding window of 2 x the cluster's threads. A chunk's block is computed
    and written on the same worker; only the point count comes back."""
    from distributed import as_completed

    window = max(2, 2 * sum(client.nthreads().values()))
    in_flight = as_completed(loop=client.loop)
    submitted = []
    try:
        for index in pending:
            block = client.compute(blocks[index])
            future = client.submit(_store_chunk, block, writer, index, pure=False)
            del block  # the scheduler keeps it until _store_chunk has run
            submitted.append(future)
            in_flight.add(future)
            if in_flight.count() >= window:
                on_done(next(in_flight).result())
        for future in in_flight:
            on_done(future.result())
    finally:
        client.cancel([f for f in submitted if not f.done()])


def _client(scheduler):
    """``(client, owned)`` for a distributed scheduler address or Client."""
    if isinstance(scheduler, str) and scheduler in ("processes", "multiprocessing"):
        raise ValueError("scheduler='processes' is not supported: pass a dask.distributed "
                         "Client or scheduler address (e.g. of a LocalCluster)")
    try:
        from distributed import Client
    except ImportError:
        raise MissingDependencyError(
            "a distributed scheduler needs dask.distributed: pip install 'xsatclip[distributed]'"
        ) from None
    if isinstance(scheduler, Client):
        return scheduler, False
    return Client(scheduler, set_as_default=False), True


def _progress_bar(total: int, initial: int, store: str, progress: bool):
    from tqdm.auto import tqdm

    enabled = progress and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, unit="chunk",
                desc=f"precompute {os.path.basename(store)}",
                disable=not enabled, dynamic_ncols=True, smoothing=0.1)


# --------------------------------------------------------------------------- precompute


def precompute(store, *, resolution: float | None = None, template=None,
               level: int | None = None, model=None, bbox=None, chunks=None,
               dtype: str = "float32", resume: bool = True, overwrite: bool = False,
               scheduler=None, progress: bool = True, batch_size: int | None = None,
               numerics: str | None = None, device: str = "auto",
               storage_options: dict | None = None) -> str:
    """Compute a cube of SatCLIP embeddings into a Zarr v3 store, resumably.

    Parameters
    ----------
    store : local path or fsspec URL (``s3://bucket/cube.zarr``).
    resolution : cell size in degrees of a :func:`~xsatclip.grid` over ``bbox``
        (default: the globe); or give ``template=``, any grid ``embed`` accepts.
    level, model : the encoder, as :func:`~xsatclip.embedding.embed` takes them.
    chunks : int, (lat, lon) or {dim: int}; default the template's chunks, else the
        store's (when resuming), else :func:`default_chunk` per axis (at most 128). See the
        module doc for why.
    dtype : "float32", "float16" or "int8" (module doc: scheme and error bounds).
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
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype={dtype!r}: choose one of {list(STORAGE_DTYPES)}")
    template = _template(resolution, template, bbox)
    target = _target(store, storage_options)
    spatial = find_spatial_coords(template)
    encoder = resolve_model(level, model, numerics=numerics, dtype="float32", device=device)
    with _store_lock(target):
        state, group = _inspect(target)
        if state in ("foreign", "unreadable") and not overwrite:
            what = "is not an xsatclip cube" if state == "foreign" else "is unreadable"
            raise StoreError(f"{target.url} exists and {what}; pass overwrite=True "
                             "(--overwrite) to replace it")
        keep = state == "complete" and not overwrite
        stored_chunks = (dict(zip(spatial.dims, group[VARIABLE].chunks[:2], strict=True))
                         if keep and VARIABLE in group else None)
        sizes, chosen = _chunk_sizes(template, spatial, chunks, stored_chunks)
        emb = embed(template, model=encoder, device=device, batch_size=batch_size,
                    chunks=sizes)
        if keep:
            diffs = _differences(group, emb, encoder, dtype, sizes, chosen)
            if diffs:
                raise StoreError(f"{target.url} holds a different cube: " + "; ".join(diffs)
                                 + ". Pass overwrite=True (--overwrite) to replace it, or "
                                 "choose another store")
            scale = group[VARIABLE].attrs.get("scale_factor")
            codec = _Codec(dtype, None if scale is None else float(scale))
            done_array = zarr.open_array(target.store(), path=DONE_PATH, mode="r+")
            if not resume:
                done_array[...] = 0
            done = np.asarray(done_array[...])
            create = None
        else:
            codec = _Codec(dtype, int8_scale(encoder) if dtype == "int8" else None)
            attrs = _provenance(encoder, _grid_definition(template, spatial), codec, sizes)
            done = np.zeros([len(c) for c in emb.chunks[:2]], np.uint8)
            # Created by the writer while the first chunks are computed.
            create = functools.partial(_create, target, emb, codec, attrs,
                                       replace=state != "absent")
        pending = [tuple(int(v) for v in ij) for ij in np.argwhere(done == 0)]
        total = done.size
        logger.info("%s: %d of %d chunks to compute", target.url, len(pending), total)
        if not pending:
            return target.url
        _compute_chunks(target, emb.data, codec, pending, total, scheduler, progress, create)
    return target.url


def _compute_chunks(target, data, codec, pending, total, scheduler, progress,
                    create=None) -> None:
    """Compute and store the ``pending`` chunks; ``create`` (a new store) runs first on the
    thread that writes, so that computing starts at once."""

    def open_writer() -> _Writer:
        if create is not None:
            create()
            logger.info("created %s", target.url)
        store = target.store()
        # write_empty_chunks: no scan of every chunk for all-fill values before writing it
        # (an all-NaN chunk is stored rather than left out; both read back the same).
        return _Writer(
            zarr.open_array(store, path=VARIABLE, mode="r+").with_config(
                {"write_empty_chunks": True}),
            zarr.open_array(store, path=DONE_PATH, mode="r+"), codec,
            tuple(tuple(int(v) for v in np.cumsum((0, *c))) for c in data.chunks[:2]))

    # One Delayed per spatial chunk: computing it returns the chunk itself (computing
    # data.blocks[index] would copy it once more, in Dask's concatenation of the result).
    blocks = data.to_delayed()[..., 0]
    started = time.perf_counter()
    points = 0
    bar = _progress_bar(total, total - len(pending), target.url, progress)

    def on_done(count: int) -> None:
        nonlocal points
        points += count
        bar.update(1)
        rate = points / max(time.perf_counter() - started, 1e-9)
        bar.set_postfix_str(f"{rate:,.0f} points/s", refresh=False)

    with bar:
        if scheduler is None or (isinstance(scheduler, str)
                                 and scheduler in LOCAL_SCHEDULERS):
            threads = 1 if scheduler in ("sync", "synchronous", "single-threaded") else (
                dask.config.get("num_workers", None) or os.cpu_count() or 1)
            _run_local(pending, blocks, open_writer, int(threads), on_done)
        else:
            client, owned = _client(scheduler)
            try:
                _run_distributed(client, pending, blocks, open_writer(), on_done)
            finally:
                if owned:
                    client.close()
    logger.info("%s: wrote %d chunks (%d points) in %.1f s", target.url, len(pending), points,
                time.perf_counter() - started)


# --------------------------------------------------------------------------- reading


def open_cube(store, *, storage_options: dict | None = None, **kwargs) -> xr.Dataset:
    """The cube as a lazy Dataset; int8 cubes decoded to float32 (``xr.open_zarr`` gives
    float64). Unwritten chunks read as NaN. ``kwargs`` go to ``xr.open_zarr``."""
    target = _target(store, storage_options)
    state, group = _inspect(target)
    if state == "absent":
        raise FileNotFoundError(f"no cube at {target.url}")
    if state != "complete":
        raise StoreError(f"{target.url} is not a complete xsatclip cube ({state})")
    ds = xr.open_zarr(target.store(read_only=True), **kwargs)
    scale = group[VARIABLE].attrs.get("scale_factor")
    if scale is not None and kwargs.get("mask_and_scale", True) and kwargs.get("decode_cf", True):
        raw = xr.open_zarr(target.store(read_only=True), mask_and_scale=False,
                           **{k: v for k, v in kwargs.items() if k != "mask_and_scale"})[VARIABLE]
        data = raw.data.map_blocks(dequantize, float(scale), dtype=np.float32)
        ds[VARIABLE] = ds[VARIABLE].copy(data=data)
    return ds


def info(store, *, storage_options: dict | None = None) -> dict:
    """Grid, model, dtype and completeness of a cube, as a plain dict."""
    target = _target(store, storage_options)
    state, group = _inspect(target)
    if state == "absent":
        raise FileNotFoundError(f"no cube at {target.url}")
    if state in ("foreign", "unreadable"):
        raise StoreError(f"{target.url} is not an xsatclip cube ({state})")
    attrs = dict(group.attrs)
    array = group[VARIABLE]
    done = np.asarray(zarr.open_array(target.store(read_only=True), path=DONE_PATH,
                                      mode="r")[...]) if state == "complete" else np.zeros(0)
    out = {
        "store": target.url,
        "complete_metadata": state == "complete",
        "dims": dict(zip(array.metadata.dimension_names, array.shape, strict=True)),
        "grid": attrs.get("xsatclip_grid"),
        "dtype": attrs.get("xsatclip_dtype"),
        "scale_factor": array.attrs.get("scale_factor"),
        "quantization": attrs.get("xsatclip_quantization"),
        "chunks": list(array.chunks),
        "chunks_done": int(np.count_nonzero(done)),
        "chunks_total": int(done.size),
        "chunks_clipped": int(np.count_nonzero(done == DONE_CLIPPED)),
        "model": {k[len("model_"):]: v for k, v in attrs.items() if k.startswith("model_")},
        "xsatclip_version": attrs.get("xsatclip_version"),
        "created": attrs.get("created"),
    }
    for dim in array.metadata.dimension_names[:2]:
        values = np.asarray(group[dim][...]) if dim in group else np.zeros(0)
        if values.size:
            out[f"{dim}_range"] = [float(values.min()), float(values.max())]
    return out
