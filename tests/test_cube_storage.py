"""The cube's storage: Zarr v3 shards written whole by one task, small inner chunks with
crc32c checksums (corruption raises on read), shards never read back while writing."""

from __future__ import annotations

import json

import dask
import fsspec
import numpy as np
import pytest
import xarray as xr
import zarr

import xsatclip
from xsatclip import cube
from xsatclip.cube import points
from xsatclip.cube.codec import Codec, shard_bytes
from xsatclip.cube.layout import INNER_BYTES, inner_chunk
from xsatclip.cube.store import store_target
from xsatclip.errors import InvalidOptionError, StoreError


def _precompute(store, model, **kwargs) -> str:
    options = {"resolution": 10.0, "chunks": (6, 12), "progress": False, "model": model,
               **kwargs}
    with dask.config.set(num_workers=2):
        return cube.precompute(store, **options)


@pytest.mark.parametrize(("shard", "channels", "inner"), [
    (120, 256, 2),  # 0.25 and 0.1 degree globes: 4 KiB of float32
    (90, 256, 2),  # 1 degree globe
    (128, 256, 2), (125, 256, 1), (6, 256, 2),
    (3, 256, 3),  # 1 and 3 are as near 2: the larger
    (17, 256, 1),  # prime: only 1 x 1 divides it within 256 KiB
    (64, 2048, 2),
])
def test_inner_chunk_divides_the_shard_and_fits_256_kib(shard, channels, inner):
    assert inner_chunk(shard, channels) == inner
    assert shard % inner == 0 and channels * inner * inner * 4 <= INNER_BYTES


def test_store_is_sharded_with_checksummed_inner_chunks(tmp_path, l10_source):
    store = _precompute(tmp_path / "sharded.zarr", l10_source)
    array = zarr.open_array(store, path=cube.VARIABLE, mode="r")
    assert array.shards == (256, 6, 12) and array.chunks == (256, 2, 2)
    meta = json.loads((tmp_path / "sharded.zarr" / cube.VARIABLE / "zarr.json").read_text())
    (sharding,) = meta["codecs"]
    assert sharding["name"] == "sharding_indexed"
    config = sharding["configuration"]
    assert [c["name"] for c in config["codecs"]] == ["bytes", "crc32c"]
    assert [c["name"] for c in config["index_codecs"]] == ["bytes", "crc32c"]
    assert config["index_location"] == "end"
    info = cube.info(store)
    assert info["chunks"] == [256, 6, 12] and info["inner_chunks"] == [256, 2, 2]
    # open_cube: Dask chunks of whole shards (xr.open_zarr alone takes the inner chunks).
    assert cube.open_cube(store)[cube.VARIABLE].chunks == ((256,), (6,) * 3, (12,) * 3)
    assert xr.open_zarr(store)[cube.VARIABLE].chunks[1] == (2,) * 9
    assert info["chunks_done"] == info["chunks_total"] == 3 * 3
    # 18 x 36 cells in 3 x 3 shard files, each 3 x 6 inner chunks of 2 x 2 x 256 float32 +
    # crc, then 18 index entries of 16 bytes + crc.
    files = sorted((tmp_path / "sharded.zarr" / cube.VARIABLE / "c").rglob("*"))
    sizes = {f.stat().st_size for f in files if f.is_file()}
    assert sizes == {18 * (2 * 2 * 256 * 4 + 4) + 18 * 16 + 4}


@pytest.mark.parametrize("points_major", [False, True])
@pytest.mark.parametrize("inner", [2, 4])
@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_hand_built_shards_read_back_through_zarr(tmp_path, dtype, inner, points_major):
    """shard_bytes against Zarr's own reader, exact values; an edge shard is padded. Its
    input either band-first in memory or, as the model returns it, a (embedding, y, x)
    view of (y, x, embedding) memory (another kernel)."""
    rng = np.random.default_rng(0)
    values = (rng.standard_normal((5, 14, 9)) * 40).astype(dtype)  # 2 x 3 shards of 8 x 4
    codec = Codec(dtype, 0.5 if dtype == "int8" else None, inner_side=inner)
    encoding = codec.encoding((5, 8, 4))
    assert encoding["chunks"] == (5, inner, inner)
    fill = encoding["fill_value"]
    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=values.shape, dtype=dtype,
                              chunks=encoding["chunks"], shards=encoding["shards"],
                              compressors=encoding["compressors"], fill_value=fill)
    for i in range(2):
        for j in range(3):
            block = values[:, 8 * i:8 * i + 8, 4 * j:4 * j + 4]
            padded = np.full((5, 8, 4), fill, dtype)
            padded[:, :block.shape[1], :block.shape[2]] = block
            (tmp_path / "a.zarr" / "c" / "0" / str(i)).mkdir(parents=True, exist_ok=True)
            if points_major:
                padded = np.moveaxis(np.ascontiguousarray(np.moveaxis(padded, 0, -1)), -1, 0)
                assert not padded.flags.c_contiguous
            (tmp_path / "a.zarr" / "c" / "0" / str(i) / str(j)).write_bytes(
                shard_bytes(padded, (inner, inner)).tobytes())
    np.testing.assert_array_equal(array[...], values)  # exact: the stored dtype itself


@pytest.mark.parametrize(("where", "offset"), [("inner chunk", 100), ("index", -30),
                                                ("checksum", -2)])
def test_a_flipped_byte_raises_on_read(tmp_path, l10_source, where, offset):
    store = _precompute(tmp_path / "corrupt.zarr", l10_source)
    shard = tmp_path / "corrupt.zarr" / cube.VARIABLE / "c" / "0" / "1" / "2"
    data = bytearray(shard.read_bytes())
    data[offset] ^= 0x01
    shard.write_bytes(bytes(data))
    ds = xr.open_zarr(store)
    np.testing.assert_array_equal(  # another shard still reads
        np.isfinite(ds[cube.VARIABLE][:, :6, :12].values), True)
    with pytest.raises(ValueError, match="checksum"):
        ds[cube.VARIABLE][:, 6:12, 24:36].load()


def test_precompute_never_reads_a_shard(tmp_path, l10_source, monkeypatch):
    """Writing a shard is one put: no shard is read, not even an edge one (a 10 x 10 shard
    grid of 18 x 36 cells leaves partial shards at both edges) nor on a rerun."""
    reads = []
    get = zarr.storage.LocalStore.get

    async def recording(self, key, *args, **kwargs):
        if key.startswith(f"{cube.VARIABLE}/c/"):
            reads.append(key)
        return await get(self, key, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", recording)
    store = _precompute(tmp_path / "edges.zarr", l10_source, chunks=10)
    (tmp_path / "edges.zarr" / "_xsatclip" / "done" / "c" / "1" / "3").unlink()
    _precompute(store, l10_source, chunks=10)
    assert reads == []
    monkeypatch.undo()
    emb = xr.open_zarr(store)[cube.VARIABLE]
    assert emb.shape == (256, 18, 36) and np.isfinite(emb.values).all()
    # Every cell read back by byte range, edge shards (8 x 6 of 10 x 10 cells) included.
    lat, lon = np.meshgrid(emb.lat.values, emb.lon.values, indexing="ij")
    cells = xsatclip.sample(store, lon.ravel(), lat.ravel()).values  # float32, exact
    np.testing.assert_array_equal(cells, emb.values.reshape(256, -1).T)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, l10_source) -> dict[str, str]:
    """10 degree cubes (18 x 36 cells, shards 6 x 12, inner 2 x 2) in each storage dtype."""
    root = tmp_path_factory.mktemp("points")
    return {dtype: _precompute(root / f"{dtype}.zarr", l10_source, dtype=dtype)
            for dtype in ("float32", "float16", "int8")}


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
@pytest.mark.parametrize("method", ["nearest", "linear"])
def test_byte_range_reads_equal_xarray_reads(stores, dtype, method):
    """The point reader (a store path) against xarray's isel (the opened Dataset): the same
    float32 values, bit for bit; int8 decoded the same way."""
    rng = np.random.default_rng(3)  # 2,500 points: shards read on threads side by side
    lon, lat = rng.uniform(-180, 180, 2500), rng.uniform(-90, 90, 2500)
    assert lon.size >= points.PARALLEL_POINTS
    store = stores[dtype]
    assert points.open_points(zarr.storage.LocalStore(store, read_only=True), store)
    by_range = xsatclip.sample(store, lon, lat, method=method)
    by_xarray = xsatclip.sample(cube.open_cube(store), lon, lat, method=method)
    assert by_range.dtype == by_xarray.dtype == np.float32
    np.testing.assert_array_equal(by_range.values, by_xarray.values)


def test_a_point_reads_one_index_and_one_inner_chunk(stores, l10_source, monkeypatch):
    """A point asks its shard for one inner chunk; on object storage that is one suffix
    request for the shard's index and one range request for the chunk and its crc32c."""
    chunk = 2 * 2 * 256 * 4 + 4  # 2 x 2 cells of 256 float32, then the crc32c
    asked, requests = [], []
    sources, fetch = points.PointReader._sources, points._fetch

    def asking(self, keys, wanted, whole=False):
        asked.append((keys, [w.tolist() for w in wanted]))
        return sources(self, keys, wanted, whole)

    async def fetching(store, wanted):
        requests.extend(wanted)
        return await fetch(store, wanted)

    monkeypatch.setattr(points.PointReader, "_sources", asking)
    monkeypatch.setattr(points, "_fetch", fetching)
    key = f"{cube.VARIABLE}/c/0/0/1"
    xsatclip.sample(stores["float32"], [12.0], [33.0])  # row 5, col 19: shard (0, 1)
    assert asked == [([key], [[15]])] and requests == []  # inner chunk (2, 3) of 3 x 6
    url = "memory://xsatclip-tests/one-point.zarr"
    _precompute(url, l10_source, overwrite=True)
    asked.clear()
    xsatclip.sample(url, [12.0], [33.0])
    assert asked == [([key], [[15]])]
    assert [(k, type(r).__name__) for k, r in requests] == [
        (key, "SuffixByteRequest"), (key, "RangeByteRequest")]
    assert requests[0][1].suffix == 3 * 6 * 16 + 4  # 18 index entries and their crc32c
    assert requests[1][1].start == 15 * chunk and requests[1][1].end == 16 * chunk


def test_unwritten_shards_read_nan_and_corruption_names_the_chunk(tmp_path, l10_source):
    store = _precompute(tmp_path / "damaged.zarr", l10_source)
    shards = tmp_path / "damaged.zarr" / cube.VARIABLE / "c" / "0"
    (shards / "2" / "0").unlink()  # rows 12..17, cols 0..11: never written
    zarr.open_array(str(store), path=cube.DONE_PATH, mode="r+")[2, 0] = 0  # (or it raises)
    out = xsatclip.sample(store, [-170.0, 10.0], [-75.0, 5.0]).values
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()

    shard = shards / "1" / "1"  # rows 6..11, cols 12..23 in 3 x 6 inner chunks of 2 x 2
    data = bytearray(shard.read_bytes())  # inner chunk (2, 4): rows 10..11, cols 20..21
    data[16 * (2 * 2 * 256 * 4 + 4) + 7] ^= 0x10
    shard.write_bytes(bytes(data))
    assert np.isfinite(xsatclip.sample(store, [-45.0], [-5.0]).values).all()  # chunk (1, 0)
    with pytest.raises(StoreError, match=r"shard embeddings/c/0/1/1, inner chunk\(s\) "
                                         r"\(row, col\) \[\(2, 4\)\] fail their crc32c"):
        xsatclip.sample(store, [35.0], [-25.0])  # row 11, col 21
    many = np.random.default_rng(5).uniform(-180, 180, (2, points.PARALLEL_POINTS))
    with pytest.raises(StoreError, match=r"inner chunk\(s\) \(row, col\) \[\(2, 4\)\]"):
        xsatclip.sample(store, [*many[0], 35.0], [*many[1] / 2, -25.0])  # on threads
    shard.write_bytes(bytes(data[:-10]))  # truncated: the index is gone
    with pytest.raises(StoreError, match=r"index of shard embeddings/c/0/1/1 fails"):
        xsatclip.sample(store, [35.0], [-25.0])


def _rewrite_index_entry(shard, chunk: int, offset: int | None = None,
                         length: int | None = None) -> None:
    """Change inner chunk ``chunk``'s (offset, length) in a shard's index and give the index
    its right crc32c again (a consistent index that lies)."""
    import google_crc32c

    data = bytearray(shard.read_bytes())
    count = 3 * 6
    start = len(data) - 4 - count * 16
    entries = np.frombuffer(data, "<u8", count * 2, start).reshape(count, 2).copy()
    if offset is not None:
        entries[chunk, 0] = offset
    if length is not None:
        entries[chunk, 1] = length
    data[start:-4] = entries.tobytes()
    data[-4:] = google_crc32c.value(bytes(data[start:-4])).to_bytes(4, "little")
    shard.write_bytes(bytes(data))


@pytest.mark.parametrize("remote", [False, True])
def test_index_entries_of_another_size_or_past_the_end_raise(tmp_path, l10_source, remote):
    """An index with a valid crc32c whose entries do not fit this layout: an inner chunk of
    another length (compressed by another writer) or past the shard's end (truncated data)
    raises a StoreError naming the shard, locally and on object storage, for one point and
    for points read on threads."""
    store = _precompute(tmp_path / "lying.zarr", l10_source)
    shard = tmp_path / "lying.zarr" / cube.VARIABLE / "c" / "0" / "1" / "1"
    chunk = 2 * 2 * 256 * 4 + 4
    original = shard.read_bytes()
    many = np.random.default_rng(6).uniform(-180, 180, (2, points.PARALLEL_POINTS))
    cases = [({"length": chunk - 4}, "unexpected size")]
    if not remote:  # a suffix request past the end of an object is the store's own error
        cases.append(({"offset": len(original)}, "points past the shard's end"))
    for change, message in cases:
        shard.write_bytes(original)
        _rewrite_index_entry(shard, 16, **change)  # rows 10..11, cols 20..21
        url = store
        if remote:
            url = f"memory://xsatclip-tests/lying-{tmp_path.name}.zarr"
            fsspec.filesystem("memory").put(str(tmp_path / "lying.zarr"), url.removeprefix("memory://"),
                   recursive=True)
        with pytest.raises(StoreError, match=rf"shard embeddings/c/0/1/1 .*{message}"):
            xsatclip.sample(url, [35.0], [-25.0])
        with pytest.raises(StoreError, match=message):
            xsatclip.sample(url, [*many[0], 35.0], [*many[1] / 2, -25.0])
        assert np.isfinite(xsatclip.sample(url, [-45.0], [-5.0]).values).all()  # chunk (1, 0)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_open_cube_reads_shards_whole_equal_to_zarr(stores, dtype):
    """open_cube reads each shard in one piece through the byte-range reader: the values
    zarr-python decodes (float32 and float16 bit for bit; int8 decoded in float32, as
    open_cube's documented formula: code * float32(scale_factor))."""
    store = stores[dtype]
    ours = cube.open_cube(store)[cube.VARIABLE]
    assert ours.chunks == ((256,), (6,) * 3, (12,) * 3)
    raw = xr.open_zarr(store, mask_and_scale=False)[cube.VARIABLE].values
    if dtype == "int8":
        scale = np.float32(zarr.open_array(store, path=cube.VARIABLE).attrs["scale_factor"])
        expected = raw.astype(np.float32) * scale
    else:
        expected = raw
    assert ours.dtype == expected.dtype
    np.testing.assert_array_equal(ours.values, expected)


def test_open_cube_names_a_corrupt_shard_and_reads_unwritten_ones_as_nan(tmp_path,
                                                                          l10_source):
    store = _precompute(tmp_path / "damaged.zarr", l10_source, chunks=10)  # edge shards
    shards = tmp_path / "damaged.zarr" / cube.VARIABLE / "c" / "0"
    (shards / "1" / "3").unlink()  # rows 10..17, cols 30..35: the corner edge shard
    zarr.open_array(str(store), path=cube.DONE_PATH, mode="r+")[1, 3] = 0
    emb = cube.open_cube(store)[cube.VARIABLE]
    assert emb.chunks == ((256,), (10, 8), (10, 10, 10, 6))
    values = emb.values
    assert np.isnan(values[:, 10:, 30:]).all() and np.isfinite(values[:, :10, :]).all()
    np.testing.assert_array_equal(values[:, :10], xr.open_zarr(store)[cube.VARIABLE][:, :10])
    shard = shards / "0" / "1"  # rows 0..9, cols 10..19 in 5 x 5 inner chunks of 2 x 2
    data = bytearray(shard.read_bytes())
    data[7 * (2 * 2 * 256 * 4 + 4) + 100] ^= 0x01  # inner chunk (1, 2)
    shard.write_bytes(bytes(data))
    emb = cube.open_cube(store)[cube.VARIABLE]
    assert np.isfinite(emb[:, :, :10].values[:, :10]).all()  # shard (0, 0) still reads
    with pytest.raises(StoreError, match=r"shard embeddings/c/0/0/1, inner chunk\(s\) "
                                         r"\(row, col\) \[\(1, 2\)\] fail their crc32c"):
        emb[:, :10, 10:20].load()


def test_memory_store_reads_by_byte_range(stores, l10_source):
    """A store that is not a local directory: byte-range gets through the Zarr store."""
    url = "memory://xsatclip-tests/points.zarr"
    _precompute(url, l10_source, overwrite=True)
    assert points.open_points(store_target(url).store(read_only=True), url) is not None
    rng = np.random.default_rng(4)
    lon, lat = rng.uniform(-180, 180, 200), rng.uniform(-90, 90, 200)
    for method in ("nearest", "linear"):
        np.testing.assert_array_equal(xsatclip.sample(url, lon, lat, method=method).values,
                                      xsatclip.sample(stores["float32"], lon, lat,
                                                      method=method).values)


@pytest.mark.parametrize("separator", ["/", "."])
def test_reader_on_shards_written_by_zarr_with_empty_inner_chunks(tmp_path, separator):
    """Shards zarr-python wrote itself (inner chunks in its own order, all-NaN ones left out
    of the index, shard keys in either separator of Zarr's default chunk key encoding): the
    reader agrees with zarr's own reads, exactly (float32)."""
    rng = np.random.default_rng(6)
    values = rng.standard_normal((8, 20, 30)).astype(np.float32)
    values[:, 5:10, 6:9] = np.nan  # whole inner chunks (5 x 3) never stored
    path = tmp_path / "zarr-written.zarr"
    array = zarr.create_array(str(path), name=cube.VARIABLE, shape=values.shape,
                              chunks=(8, 5, 3), shards=(8, 10, 15), dtype="float32",
                              compressors=[zarr.codecs.Crc32cCodec()], fill_value=np.nan,
                              chunk_key_encoding={"name": "default", "separator": separator},
                              dimension_names=("embedding", "lat", "lon"))
    array[...] = values
    reader = points.open_points(zarr.storage.LocalStore(str(path)), str(path))
    assert reader is not None and reader.inner == (8, 5, 3)
    rows, cols = np.meshgrid(np.arange(20), np.arange(30), indexing="ij")
    got = reader.cells(rows, cols)  # (20, 30, 8)
    np.testing.assert_array_equal(got, np.moveaxis(values, 0, -1))
    zarr.open_array(str(path), path=cube.VARIABLE, mode="r+")[:, :10, :15] = np.nan
    assert np.isnan(reader.cells(rows[:10, :15], cols[:10, :15])).all()  # shard gone


def test_inner_chunk_side_is_an_option_and_a_resume_keeps_the_stores(tmp_path, l10_source):
    from xsatclip import cli

    store = tmp_path / "inner6.zarr"
    status = cli.main(["precompute", str(store), "--resolution", "10", "--model", l10_source,
                       "--chunks", "6,12", "--inner-chunks", "6", "--quiet"])
    assert status == 0 and cube.info(store)["inner_chunks"] == [256, 6, 6]
    (store / "_xsatclip" / "done" / "c" / "2" / "2").unlink()
    (store / cube.VARIABLE / "c" / "0" / "2" / "2").unlink()
    _precompute(store, l10_source, inner_chunks=2)  # resumes: the store's 6 x 6 stay
    assert cube.info(store)["inner_chunks"] == [256, 6, 6]
    reference = _precompute(tmp_path / "inner4.zarr", l10_source)
    np.testing.assert_array_equal(xr.open_zarr(store)[cube.VARIABLE].values,  # float32
                                  xr.open_zarr(reference)[cube.VARIABLE].values)
    with pytest.raises(InvalidOptionError, match="inner_chunks must be a positive integer"):
        _precompute(tmp_path / "bad.zarr", l10_source, inner_chunks=0)
    assert not (tmp_path / "bad.zarr").exists()


def test_a_local_store_stays_open_until_it_is_rewritten(tmp_path, l10_source, monkeypatch):
    """sample() keeps a local store open between calls (no second open_cube) and opens it
    again once precompute has rewritten it (its root zarr.json changed)."""
    import xsatclip.sampling as sampling

    opened = []
    open_cube = sampling.open_cube

    def counting(store, **kwargs):
        opened.append(store)
        return open_cube(store, **kwargs)

    monkeypatch.setattr(sampling, "open_cube", counting)
    store = _precompute(tmp_path / "kept.zarr", l10_source)
    first = xsatclip.sample(store, [12.0, -60.0], [33.0, 10.0])
    again = xsatclip.sample(store, [12.0, -60.0], [33.0, 10.0])
    assert len(opened) == 1
    np.testing.assert_array_equal(first.values, again.values)
    _precompute(store, l10_source, dtype="int8", overwrite=True)
    rewritten = xsatclip.sample(store, [12.0, -60.0], [33.0, 10.0])
    assert len(opened) == 2 and rewritten.attrs["xsatclip_dtype"] == "int8"
    assert not np.array_equal(rewritten.values, first.values)  # int8 codes now
    np.testing.assert_allclose(rewritten.values, first.values, rtol=0, atol=0.02)
