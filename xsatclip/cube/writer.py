"""Writing shards: computing threads or Dask workers, one writer, markers after data.

Writing
-------
Locally, one thread per core computes shards and builds their bytes, and one more thread
writes them, so computing never waits on the disk. A shard is written whole, in one put of
bytes built by :func:`~xsatclip.cube.codec.shard_bytes` (never read back, never partially
rewritten; Zarr's local store writes a temporary file and renames it into place). On a local
store each shard file is then flushed (``fdatasync``) and dropped from the page cache
(``posix_fadvise``) before its marker is set: a marker is only ever written for data the
file system has reported durable, and a cube larger than memory streams through the page
cache instead of filling it with dirty pages; writes into pages just dropped also cost far
less CPU than into fresh ones (benchmarks/README.md). (A "chunk" in progress bars, markers
and ``info`` is a shard.)
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import itertools
import logging
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import dask
import numpy as np
import zarr
from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from ..errors import InvalidOptionError, missing_dependency
from .codec import Codec, shard_bytes
from .durable import fsync_directory
from .layout import DONE, DONE_CLIPPED, DONE_PATH, VARIABLE

logger = logging.getLogger(__name__)
LOCAL_SCHEDULERS = ("threads", "threading", "sync", "synchronous", "single-threaded")


def _boundaries(chunks: tuple[int, ...]) -> tuple[int, ...]:
    """Start of every chunk along an axis, and the axis length."""
    return tuple(int(v) for v in np.cumsum((0, *chunks)))

@dataclasses.dataclass(frozen=True)
class ChunkWriter:
    """What a shard task needs to store its result: the two Zarr arrays (opened once by
    ``precompute`` after creating or checking the store, picklable for Dask workers), the
    codec, and the shard boundaries."""

    embeddings: zarr.Array
    done: zarr.Array
    codec: Codec
    starts: tuple[tuple[int, ...], tuple[int, ...]]

    def key(self, index: tuple[int, int]) -> str:
        """Store key of spatial shard ``index``."""
        return f"{self.embeddings.path}/{self.embeddings.metadata.encode_chunk_key((0, *index))}"

    def shard(self, values: np.ndarray) -> np.ndarray:
        """The bytes of a shard of stored ``values`` (embedding, y, x); an edge shard is
        padded with the fill value to the full shard shape, as Zarr stores it."""
        shape = self.embeddings.shards or self.embeddings.chunks
        if values.shape != shape:
            full = np.full(shape, self.embeddings.fill_value, values.dtype)
            full[:, :values.shape[1], :values.shape[2]] = values
            values = full
        _, height, width = self.embeddings.chunks
        return shard_bytes(values, (height, width))


@dataclasses.dataclass(frozen=True)
class EncodedShard:
    """A computed shard ready to store: its bytes, whether any value saturated, its points."""

    index: tuple[int, int]
    data: np.ndarray
    clipped: bool
    points: int


def encode_chunk(block: np.ndarray, writer: ChunkWriter, index: tuple[int, int]) -> EncodedShard:
    """The stored bytes of computed ``block`` (embedding, y, x): CPU work, done where the
    block was computed, so that the thread that writes only waits on the disk."""
    data, clipped = writer.codec.encode(block)
    return EncodedShard(index, writer.shard(data), clipped, int(block.shape[1] * block.shape[2]))


def write_chunk(shard: EncodedShard, writer: ChunkWriter) -> int:
    """Write one shard whole, then (only then) its marker; returns the number of points."""
    store = writer.embeddings.store
    key = writer.key(shard.index)
    sync(store.set(key, default_buffer_prototype().buffer.from_array_like(shard.data)))
    flush_local_chunk(store, key)
    writer.done[shard.index] = DONE_CLIPPED if shard.clipped else DONE
    return shard.points


def store_chunk(block: np.ndarray, writer: ChunkWriter, index: tuple[int, int]) -> int:
    """Encode and write one shard, then its marker (a Dask worker's whole task)."""
    return write_chunk(encode_chunk(block, writer, index), writer)


def flush_local_chunk(store: Store, key: str) -> None:
    """On a local store, put a shard file just written on disk (fdatasync) and drop it from
    the page cache; other stores: nothing.

    Its marker is then only ever set for data on disk, and a cube larger than memory
    streams through the page cache instead of filling it with dirty pages (which the
    kernel would otherwise flush in bursts that stall every writer).
    """
    if not isinstance(store, zarr.storage.LocalStore):
        return
    path = os.path.join(store.root, key)
    fd = os.open(path, os.O_RDONLY)
    try:
        getattr(os, "fdatasync", os.fsync)(fd)  # macOS has no fdatasync
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    fsync_directory(os.path.dirname(path))  # Zarr renamed the file into place: the entry too


def run_local(pending, blocks: np.ndarray, open_writer, threads: int, on_done) -> None:
    """Local threads: ``threads`` compute chunks (each with single-threaded kernels) and
    encode their bytes, and one more writes them, so that computing never waits on the disk;
    it first runs ``open_writer``. At most 2 x threads chunks are being computed, waiting to
    be written or being written."""

    def compute(index):
        return encode_chunk(blocks[index].compute(scheduler="sync"), writer.result(), index)

    def store(shard):
        return write_chunk(shard, writer.result())

    window = 2 * threads
    pending = iter(pending)
    computing: set[Future] = set()
    writing: set[Future] = set()
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
                        writing.add(write_pool.submit(store, future.result()))
                    else:
                        writing.discard(future)
                        on_done(future.result())
        finally:
            for future in computing | writing:
                future.cancel()


def run_distributed(client, pending, blocks: np.ndarray, writer: ChunkWriter, on_done) -> None:
    """Chunks in a sliding window of 2 x the cluster's threads. A chunk's block is computed
    and written on the same worker; only the point count comes back."""
    from distributed import as_completed

    window = max(2, 2 * sum(client.nthreads().values()))
    in_flight = as_completed(loop=client.loop)
    submitted = []
    try:
        for index in pending:
            block = client.compute(blocks[index])
            future = client.submit(store_chunk, block, writer, index, pure=False)
            del block  # the scheduler keeps it until store_chunk has run
            submitted.append(future)
            in_flight.add(future)
            if in_flight.count() >= window:
                on_done(next(in_flight).result())
        for future in in_flight:
            on_done(future.result())
    finally:
        client.cancel([f for f in submitted if not f.done()])


def distributed_client(scheduler):
    """``(client, owned)`` for a distributed scheduler address or Client."""
    if isinstance(scheduler, str) and scheduler in ("processes", "multiprocessing"):
        raise InvalidOptionError("scheduler='processes' is not supported: pass a "
                                 "dask.distributed Client or scheduler address (e.g. of a "
                                 "LocalCluster)")
    try:
        from distributed import Client
    except ImportError as exc:
        raise missing_dependency("a distributed scheduler", "distributed", exc) from None
    if isinstance(scheduler, Client):
        return scheduler, False
    return Client(scheduler, set_as_default=False), True


def progress_bar(total: int, initial: int, store: str, progress: bool):
    from tqdm.auto import tqdm

    enabled = progress and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, unit="chunk",
                desc=f"precompute {os.path.basename(store)}",
                disable=not enabled, dynamic_ncols=True, smoothing=0.1)



def preload_lazy_imports() -> None:
    """Import on this thread what Dask imports lazily while it builds and runs graphs
    (dask.distributed's shuffle module, when installed), before any worker thread does.

    First imports of distributed's circularly importing modules from several threads at
    once can meet a partially initialised ``distributed.core`` (``ImportError: cannot import
    name 'Server'``): it crashed about 1 precompute in 10 with a cold bytecode cache."""
    if importlib.util.find_spec("distributed") is not None:
        importlib.import_module("distributed.shuffle._core")


def compute_chunks(target, data, codec, pending, total, scheduler, progress,
                    create=None) -> None:
    """Compute and store the ``pending`` shards; ``create`` (a new store) runs first on the
    thread that writes, so that computing starts at once."""
    preload_lazy_imports()

    def open_writer() -> ChunkWriter:
        if create is not None:
            create()
            logger.info("created %s", target.url)
        store = target.store()
        return ChunkWriter(
            zarr.open_array(store, path=VARIABLE, mode="r+"),
            zarr.open_array(store, path=DONE_PATH, mode="r+"), codec,
            (_boundaries(data.chunks[1]), _boundaries(data.chunks[2])))

    # One Delayed per spatial chunk: computing it returns the chunk itself (computing
    # data.blocks[index] would copy it once more, in Dask's concatenation of the result).
    blocks = data.to_delayed()[0]  # data: (embedding, y, x), one chunk along embedding
    started = time.perf_counter()
    points = 0
    bar = progress_bar(total, total - len(pending), target.url, progress)

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
            run_local(pending, blocks, open_writer, int(threads), on_done)
        else:
            client, owned = distributed_client(scheduler)
            try:
                run_distributed(client, pending, blocks, open_writer(), on_done)
            finally:
                if owned:
                    client.close()
    logger.info("%s: wrote %d chunks (%d points) in %.1f s", target.url, len(pending), points,
                time.perf_counter() - started)


