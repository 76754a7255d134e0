"""Cells of a sharded cube at points, by byte range: per shard its index, then only the
inner chunks holding the points, each checked against its crc32c.

Zarr-python reads the same bytes but costs ~1.5 ms a call and ~40 us an inner chunk
(10,000 points: ~0.5 s); this reader does the bookkeeping with NumPy: on a local store it
maps each shard file (the page cache serves it, nothing is copied but the values asked
for), elsewhere it fetches all the byte ranges of a call concurrently through the Zarr
store (fsspec: ``s3://``, ``memory://``, ...). Only the layout ``precompute`` writes is
read this way (:func:`open_points`); anything else goes through xarray.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import itertools
import mmap
import os
from typing import cast

import numba
import numpy as np
import zarr
from zarr.abc.store import RangeByteRequest, Store, SuffixByteRequest
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, ShardingCodecIndexLocation
from zarr.codecs.bytes import Endian
from zarr.core.buffer import default_buffer_prototype
from zarr.core.chunk_key_encodings import ChunkKeyEncoding
from zarr.core.metadata import ArrayV3Metadata
from zarr.core.sync import sync

from ..errors import StoreError
from .checksum import RESIDUE, crc32c, crc32c_many
from .codec import dequantize
from .layout import INT8_FILL, STORAGE_DTYPES, VARIABLE

EMPTY = np.uint64(2**64 - 1)  # index entry of an inner chunk never written
INDEX_ENTRY = 16  # bytes: (offset, length) uint64
OK, BAD = 0, 1  # what :func:`_verify_gather` returns
PARALLEL_POINTS = 2048  # from this many points a call reads its shards on all CPUs
MAPPED = 1024  # shard files kept mapped between calls (:func:`_map`)
_MAPS: dict[str, tuple[tuple[int, int, int], np.ndarray]] = {}


@dataclasses.dataclass(frozen=True)
class PointReader:
    """Reads cells (rows, cols) of the ``embeddings`` array of one store."""

    store: Store
    url: str
    shape: tuple[int, ...]  # (embedding, y, x) cells
    shard: tuple[int, ...]
    inner: tuple[int, ...]
    dtype: np.dtype
    scale_factor: float | None  # int8 cubes
    chunk_keys: ChunkKeyEncoding  # the array's: shard (0, i, j) -> "c/0/i/j", "c.0.i.j", ...

    @property
    def per_shard(self) -> tuple[int, int]:
        """Inner chunks of a shard along y and x."""
        return self.shard[1] // self.inner[1], self.shard[2] // self.inner[2]

    def cells(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Embeddings (*rows.shape, embedding) float32 of the cells at ``rows``, ``cols``
        (integer arrays of one shape, inside the grid); NaN in shards not written yet.

        Raises StoreError naming the shard and inner chunk whose checksum fails."""
        shape = np.shape(rows)
        rows, cols = np.asarray(rows, np.int64).ravel(), np.asarray(cols, np.int64).ravel()
        (_, sy, sx), (_, iy, ix) = self.shard, self.inner
        columns = -(-self.shape[2] // sx)  # shards along x
        count = self.per_shard[0] * self.per_shard[1]
        y, x = rows % sy, cols % sx
        chunk = (y // iy) * self.per_shard[1] + x // ix
        cell = (y % iy) * ix + x % ix  # element of the point's first channel in its chunk
        grid = (rows // sy) * columns + cols // sx  # shard number in the shard grid
        ids = np.flatnonzero(np.bincount(grid))  # the shards read, in order
        shard = np.searchsorted(ids, grid)
        keys = [self._key(*divmod(s, columns)) for s in ids.tolist()]
        order = np.argsort(shard * count + chunk)  # by shard, then inner chunk
        bounds = np.searchsorted(shard[order], np.arange(len(keys) + 1))
        sources = self._sources(keys, [chunk[order[bounds[s]:bounds[s + 1]]]
                                       for s in range(len(keys))])
        out = np.empty((rows.size, self.shape[0]), self._words)
        fill, size = self._fill_word.item(), self._chunk_size

        def read(shards: range) -> list[tuple[int, int]]:  # nogil: groups of shards on threads
            return [_verify_gather(sources[s][0], self._as_words(sources[s][0]), sources[s][1],
                                   order[bounds[s]:bounds[s + 1]], chunk, cell, iy * ix, size,
                                   fill, out) for s in shards]

        threads = (os.cpu_count() or 1) if rows.size >= PARALLEL_POINTS else 1
        cuts = np.searchsorted(bounds, np.linspace(0, rows.size, threads + 1)[1:-1])
        groups = [range(a, b) for a, b in itertools.pairwise([0, *cuts.tolist(), len(keys)])]
        results = [r for group in (_threads().map(read, groups) if len(groups) > 1
                                   else map(read, groups)) for r in group]
        for s, (status, bad) in enumerate(results):
            if status != OK:  # say what fails
                buffer, index = sources[s]
                starts = self._starts(keys[s], buffer, index)
                chunks = np.unique(chunk[order[bounds[s]:bounds[s + 1]]])
                self._verify(keys[s], buffer, starts[chunks] * self.dtype.itemsize, chunks)
                raise AssertionError(f"chunk {bad} of {keys[s]} failed, then passed")
        return self._decode(out.view(self.dtype)).reshape(*shape, self.shape[0])

    def shard_values(self, row: int, col: int) -> np.ndarray:
        """Stored values (embedding, y, x) of the shard at shard row ``row``, column
        ``col``, cut to the grid at its edges; the fill value (NaN, int8 -128) where never
        written. Every inner chunk is checked against its crc32c (StoreError names the
        shard and chunk). Reads the shard whole: one mapped file or one GET."""
        (_, sy, sx), (_, iy, ix) = self.shard, self.inner
        ny, nx = self.per_shard
        key = self._key(row, col)
        everything = np.arange(ny * nx, dtype=np.int64)
        ((buffer, index),) = self._sources([key], [everything], whole=True)
        starts = self._starts(key, buffer, index)
        written = everything[starts >= 0]
        self._verify(key, buffer, starts[written] * self.dtype.itemsize, written)
        out = np.full((self.shape[0], ny * iy, nx * ix), self._fill_word, self._words)
        _untile(self._as_words(buffer), starts, iy, ix, out)
        height = min(sy, self.shape[1] - row * sy)
        width = min(sx, self.shape[2] - col * sx)
        return out[:, :height, :width].view(self.dtype)

    def _key(self, row: int, col: int) -> str:
        """Store key of the shard at shard row ``row``, column ``col``."""
        return f"{VARIABLE}/{self.chunk_keys.encode_chunk_key((0, row, col))}"

    @property
    def _words(self) -> np.dtype:
        """Unsigned integers of the stored values' size: values are copied as their bits."""
        return np.dtype(f"<u{self.dtype.itemsize}")

    @property
    def _fill_word(self) -> np.ndarray:
        """The fill value's bits, as a :attr:`_words` scalar array."""
        return np.array(self._fill, self.dtype).view(self._words)

    def _as_words(self, buffer: np.ndarray) -> np.ndarray:
        """``buffer`` (uint8) seen as :attr:`_words` (a trailing partial word left out)."""
        itemsize = self.dtype.itemsize
        return buffer[:buffer.size // itemsize * itemsize].view(self._words)

    @property
    def _chunk_size(self) -> int:
        """Bytes of the values of an inner chunk (its crc32c follows)."""
        return self.shape[0] * self.inner[1] * self.inner[2] * self.dtype.itemsize

    def _sources(self, keys: list[str], wanted: list[np.ndarray], whole: bool = False
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per shard key, the bytes (uint8) holding the inner chunks ``wanted`` (chunk
        numbers in the shard): the mapped file, the whole object (``whole``) or only those
        chunks fetched by byte range; and the shard index (chunks per shard, 2) uint64
        ((offset, length) of each chunk in those bytes, :data:`EMPTY` where not written or
        not fetched; the index's own crc32c checked). Chunk checksums and the index's
        entries are left to the caller (:meth:`_starts`, :func:`_verify_gather`)."""
        count = self.per_shard[0] * self.per_shard[1]
        found = self._shards(keys, count)
        out: list[tuple[np.ndarray, np.ndarray]] = []
        remote = []
        for key, entry, chunks in zip(keys, found, wanted, strict=True):
            if entry is None:  # shard not written yet
                out.append((np.zeros(0, np.uint8), np.full((count, 2), EMPTY)))
                continue
            index, mapped = entry
            if mapped is None and whole:  # object storage: the whole object in one request
                (mapped,) = sync(_fetch(self.store, [(key, None)]))
                if mapped is None:
                    raise StoreError(f"{self.url}: shard {key} vanished while being read")
            if mapped is None:  # object storage: only the chunks asked for, fetched below
                chunks = np.unique(chunks[index[chunks, 0] != EMPTY])
                self._starts(key, None, index[chunks])  # entries of this layout's size
                remote.append((len(out), key, chunks, index[chunks]))
                out.append((np.zeros(0, np.uint8), np.full((count, 2), EMPTY)))
                continue
            out.append((mapped, index))
        fetched = iter(sync(_fetch(self.store, [
            (key, RangeByteRequest(int(o), int(o) + int(n)))
            for _, key, _, entries in remote for o, n in entries.tolist()])) if remote else [])
        for position, key, chunks, entries in remote:
            parts = [next(fetched) for _ in range(chunks.size)]
            if any(part is None or part.size != n
                   for part, n in zip(parts, entries[:, 1].tolist(), strict=True)):
                raise StoreError(f"{self.url}: shard {key} changed while being read")
            index = out[position][1]  # the fetched chunks, one after another
            index[chunks, 1] = entries[:, 1]
            index[chunks, 0] = np.cumsum(entries[:, 1]) - entries[:, 1]
            out[position] = (np.concatenate(parts) if parts else np.zeros(0, np.uint8), index)
        return out

    def _starts(self, key: str, buffer: np.ndarray | None, index: np.ndarray) -> np.ndarray:
        """The word (stored value) at which each inner chunk starts in ``buffer``, (chunks,)
        int64, -1 where ``index`` says not written; StoreError for an entry of another size
        than this layout's chunks (compressed or corrupt) or past the end of the bytes (not
        checked without ``buffer``)."""
        size = self._chunk_size + 4
        offsets, lengths = index[:, 0], index[:, 1]
        written = offsets != EMPTY
        if np.any(lengths[written] != size) or np.any(offsets[written] % self.dtype.itemsize):
            raise StoreError(f"{self.url}: shard {key} has inner chunks of unexpected "
                             "size (compressed or corrupt); read it with xarray")
        if buffer is not None and written.any() and offsets[written].max() + size > buffer.size:
            raise StoreError(f"{self.url}: the index of shard {key} points past the "
                             "shard's end (truncated); recompute it with precompute --repair")
        return np.where(written, offsets // self.dtype.itemsize, np.uint64(0)).astype(
            np.int64) - (~written)

    def _decode(self, values: np.ndarray) -> np.ndarray:
        if self.scale_factor is not None:
            return dequantize(values, self.scale_factor)
        return values.astype(np.float32, copy=False)

    @property
    def _fill(self):
        return INT8_FILL if self.dtype == np.int8 else np.nan

    def _shards(self, keys: list[str], count: int
                ) -> list[tuple[np.ndarray, np.ndarray | None] | None]:
        """Per shard key: None (absent), or its index ((count, 2) uint64 (offset, length))
        checked against its crc32c and, on a local store, the whole file mapped (else
        None)."""
        nbytes = count * INDEX_ENTRY + 4
        if isinstance(self.store, zarr.storage.LocalStore):
            found = [_map(os.path.join(self.store.root, key)) for key in keys]
            raws = [None if m is None else m[max(m.size - nbytes, 0):] for m in found]
        else:
            found = [None] * len(keys)
            raws = sync(_fetch(self.store, [(k, SuffixByteRequest(nbytes)) for k in keys]))
        out: list[tuple[np.ndarray, np.ndarray | None] | None] = []
        for key, raw, mapped in zip(keys, raws, found, strict=True):
            if raw is None:
                out.append(None)
                continue
            if raw.size != nbytes or crc32c(raw) != RESIDUE:
                raise StoreError(f"{self.url}: the index of shard {key} fails its crc32c "
                                 "checksum (corrupt or truncated); recompute it with "
                                 "precompute")
            out.append((raw[:-4].view("<u8").reshape(count, 2), mapped))  # no copy
        return out

    def _verify(self, key: str, buffer: np.ndarray, starts: np.ndarray,
                chunks: np.ndarray) -> None:
        """Check the inner chunks at byte ``starts`` of ``buffer`` (values and their crc32c
        each; ``chunks``: their numbers in the shard, for the message)."""
        bad = np.flatnonzero(crc32c_many(buffer, starts, self._chunk_size + 4) != RESIDUE)
        if bad.size:
            names = [divmod(int(c), self.per_shard[1]) for c in chunks[bad[:5]]]
            raise StoreError(f"{self.url}: shard {key}, inner chunk(s) (row, col) {names} "
                             f"{'...' if bad.size > 5 else ''}fail their crc32c checksum "
                             "(corrupt); recompute the shard with precompute --repair")


@functools.cache
def _threads() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that read shards side by side (one per CPU)."""
    return concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1, "xsatclip-points")


def _map(path: str) -> np.ndarray | None:
    """The bytes of a file, memory-mapped (None: no such file; empty files read empty).

    Mappings are kept (at most :data:`MAPPED` files) while the file's inode, size and
    modification time stay the same: a later call then finds the pages already mapped
    (10,000 points: ~35% faster). A shard rewritten (renamed into place) is mapped anew."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    key = (status.st_ino, status.st_size, status.st_mtime_ns)
    cached = _MAPS.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = (np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), np.uint8)
                    if size else np.zeros(0, np.uint8))
    except FileNotFoundError:
        return None
    if len(_MAPS) >= MAPPED:
        _MAPS.pop(next(iter(_MAPS)), None)
    _MAPS[path] = (key, data)
    return data


@numba.njit(nogil=True, cache=True)
def _verify_gather(data, words, index, points, chunk, cell, stride, size, fill, out
                   ):  # pragma: no cover - compiled
    """For each point ``i`` of ``points`` (sorted by inner chunk): ``out[i, e] =
    words[index[c, 0] / itemsize + cell[i] + e * stride]`` with ``c = chunk[i]``, or
    ``fill`` where the chunk was never written (:data:`EMPTY`). ``data`` and ``words``: the
    same bytes as uint8 and as stored words; ``index``: (offset, length) bytes per chunk.
    Each chunk's entry is checked (``size`` + 4 bytes, inside ``data``, aligned), then its
    bytes against their crc32c, just before its values are copied (so they are read from
    memory once). Returns ``(OK, -1)``, or ``(BAD, c)`` for the first chunk that fails."""
    last = -1
    start = 0
    for k in range(points.size):
        i = points[k]
        c = chunk[i]
        offset = index[c, 0]
        if offset == EMPTY:
            out[i, :] = fill
            continue
        if c != last:
            last = c
            if (index[c, 1] != size + 4 or offset > data.size - size - 4
                    or offset % words.itemsize):
                return BAD, c
            if crc32c(data[offset:offset + size + 4]) != RESIDUE:
                return BAD, c
            start = offset // words.itemsize
        for e in range(out.shape[1]):
            out[i, e] = words[start + cell[i] + e * stride]
    return OK, -1


@numba.njit(nogil=True, cache=True)
def _untile(flat, element, iy, ix, out):  # pragma: no cover - compiled
    """``out[e, ty * iy + y, tx * ix + x] = flat[element[c] + (e * iy + y) * ix + x]`` for
    inner chunk ``c = ty * nx + tx`` (C order), skipping chunks with ``element[c] < 0``."""
    nx = out.shape[2] // ix
    for c in range(element.size):
        start = element[c]
        if start < 0:
            continue
        ty, tx = c // nx, c % nx
        for e in range(out.shape[0]):
            for y in range(iy):
                base = start + (e * iy + y) * ix
                for x in range(ix):
                    out[e, ty * iy + y, tx * ix + x] = flat[base + x]


@numba.njit(nogil=True, cache=True)
def bilinear(corners, weights):  # pragma: no cover - compiled
    """(n, embed_dim) float64 sums of ``weights`` (4, n) float64 times ``corners``
    (4, n, embed_dim), corner by corner in float64; a corner of weight 0 is left out (it
    may be NaN: an unwritten neighbour)."""
    out = np.zeros(corners.shape[1:])
    for k in range(corners.shape[0]):
        for i in range(corners.shape[1]):
            w = weights[k, i]
            if w > 0:
                for e in range(corners.shape[2]):
                    out[i, e] += w * np.float64(corners[k, i, e])
    return out


async def _fetch(store: Store, requests: list) -> list:
    """Byte ranges ``(key, request)`` of a Zarr store (request None: the whole object),
    concurrently, as uint8 arrays (None: no such key)."""
    prototype = default_buffer_prototype()
    buffers = await asyncio.gather(*(store.get(key, prototype, byte_range=request)
                                     for key, request in requests))
    return [None if b is None else b.as_numpy_array().view(np.uint8) for b in buffers]


def open_points(store: Store, url: str) -> PointReader | None:
    """A reader for the ``embeddings`` of a cube at ``store``, or None when its layout is
    not the one ``precompute`` writes (band-first, sharded, inner ``bytes`` + ``crc32c``)."""
    try:
        array = zarr.open_array(store, path=VARIABLE, mode="r")
    except (FileNotFoundError, zarr.errors.NodeNotFoundError, ValueError):
        return None
    meta = array.metadata
    if (not isinstance(meta, ArrayV3Metadata) or array.shards is None or array.ndim != 3
            or str(array.dtype) not in STORAGE_DTYPES
            or (meta.dimension_names or ("",))[0] != "embedding"):
        return None
    sharding = meta.codecs[0]
    if not (isinstance(sharding, ShardingCodec) and _checksummed(sharding.codecs)
            and _checksummed(sharding.index_codecs)
            and sharding.index_location == ShardingCodecIndexLocation.end):
        return None
    scale = array.attrs.get("scale_factor") if array.dtype == np.int8 else None
    return PointReader(store, url, array.shape, array.shards, array.chunks,
                       np.dtype(str(array.dtype)),
                       None if scale is None else float(cast(float, scale)),
                       meta.chunk_key_encoding)


def _checksummed(codecs) -> bool:
    """Codecs ``bytes`` (little endian) then ``crc32c``, and nothing else."""
    return (len(codecs) == 2 and isinstance(codecs[0], BytesCodec)
            and codecs[0].endian in (None, Endian.little) and isinstance(codecs[1], Crc32cCodec))
