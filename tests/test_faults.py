"""Faults, concurrency and bad input, each reproduced: a kill -9 mid-overwrite, planted lock
files, empty and foreign store paths, half-created stores, a full disk, leftovers of a killed
write. Every run that survives a fault ends identical (bit for bit, float32) to an
uninterrupted run of the same arguments."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import time

import dask
import numpy as np
import pytest
import zarr
from fault_injection import assert_killed, flip_byte, in_small_tmpfs, run_script, truncate

import xsatclip
from xsatclip import cli, cube
from xsatclip.cube.verify import unit_key, verify
from xsatclip.errors import CheckpointError, InvalidOptionError, ModelNotFoundError, StoreError

N30 = 8  # chunks of a 30 degree cube in 3 x 3 chunks (6 x 12 cells)


def _run(store, model, **kwargs) -> str:
    options = {"resolution": 30.0, "model": model, "chunks": 3, "progress": False, **kwargs}
    with dask.config.set(num_workers=2):
        return cube.precompute(store, **options)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, l10_source):
    """An uninterrupted float32 run: what every faulted run must end equal to."""
    store = tmp_path_factory.mktemp("faults") / "reference.zarr"
    _run(store, l10_source)
    return store


def _assert_same_values(store, reference) -> None:
    """Values and markers equal bit for bit (float32 as stored; NaN equal to NaN)."""
    for path in (cube.VARIABLE, cube.DONE_PATH):
        got = zarr.open_array(str(store), path=path, mode="r")[...]
        want = zarr.open_array(str(reference), path=path, mode="r")[...]
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want, err_msg=path)


# 1. Data loss on --overwrite killed mid-way --------------------------------------------------

@pytest.mark.parametrize("after", [0, 3, 10], ids=["first-chunk", "3-chunks", "10-files"])
def test_overwrite_killed_mid_way_never_looks_complete(tmp_path, l10_source, reference, after):
    """The process is killed after deleting ``after`` files of the old store (whatever the
    listing order: some ext4 directories list ``embeddings/`` before ``zarr.json``): the
    store must not read as complete, and a plain rerun must rebuild it whole."""
    store = tmp_path / "old.zarr"
    _run(store, "bluemarble-l40")
    result = run_script("""
        import sys
        kill_on(os, "unlink", int(sys.argv[2]))
        precompute(sys.argv[1], model="bluemarble-l10", overwrite=True)
    """, str(store), str(after))
    assert_killed(result)
    summary = cube.info(store)
    assert summary["state"] == "incomplete" and summary["chunks_done"] == 0
    with pytest.raises(StoreError, match="not a complete xsatclip cube"):
        cube.open_cube(store)
    _run(store, l10_source)  # no --overwrite needed: an incomplete store is recreated
    assert cube.info(store)["chunks_done"] == N30
    _assert_same_values(store, reference)


# 2. The lock follows symlinks -----------------------------------------------------------------

def test_a_planted_symlink_lock_is_refused_and_its_target_untouched(tmp_path, l10_source):
    victim = tmp_path / "precious.txt"
    victim.write_text("do not truncate me\n")
    store = tmp_path / "c.zarr"
    (tmp_path / "c.zarr.lock").symlink_to(victim)
    with pytest.raises(StoreError, match=r"c\.zarr\.lock is a symbolic link"):
        _run(store, l10_source)
    assert victim.read_text() == "do not truncate me\n"
    assert not store.exists()


def test_a_lock_path_that_is_no_regular_file_is_refused(tmp_path, l10_source):
    store = tmp_path / "c.zarr"
    os.mkfifo(tmp_path / "c.zarr.lock")  # opening a FIFO for reading would block
    with pytest.raises(StoreError, match=r"c\.zarr\.lock is not a regular file"):
        _run(store, l10_source)
    (tmp_path / "c.zarr.lock").unlink()
    (tmp_path / "c.zarr.lock").mkdir()
    with pytest.raises(StoreError, match=r"cannot lock store"):
        _run(store, l10_source)


def test_a_symlinked_alias_shares_the_store_lock(tmp_path, l10_source):
    real = tmp_path / "real.zarr"
    alias = tmp_path / "alias.zarr"
    _run(real, l10_source)
    alias.symlink_to(real)
    with open(tmp_path / "real.zarr.lock", "w") as holder:
        holder.write("pid 4242 on elsewhere")
        holder.flush()
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(StoreError, match=r"alias\.zarr is locked .*pid 4242"):
            _run(alias, l10_source, resume=False)
    assert not (tmp_path / "alias.zarr.lock").exists()


# 3. Empty and foreign store paths --------------------------------------------------------------

def test_an_empty_store_path_is_refused(tmp_path, monkeypatch, capsys, l10_source):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InvalidOptionError, match="store path is empty"):
        _run("", l10_source, overwrite=True)
    assert cli.main(["precompute", "", "--resolution", "30", "--model", l10_source,
                     "--overwrite", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err == ("xsatclip: error: the store path is empty (it would be the current "
                   "directory)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_overwrite_never_deletes_a_directory_that_is_no_cube(tmp_path, l10_source):
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w").attrs["owner"] = "someone else"
    for path in (foreign, tmp_path / "other.zarr"):
        with pytest.raises(StoreError, match=r"is not an xsatclip cube; xsatclip only writes "
                                             r"into its own cubes or empty directories"):
            _run(path, l10_source, overwrite=True)
    assert (foreign / "thesis.tex").read_text() == "years of work"
    assert zarr.open_group(str(tmp_path / "other.zarr"), mode="r").attrs["owner"]
    empty = tmp_path / "empty"
    empty.mkdir()
    _run(empty, l10_source, overwrite=True)
    assert cube.info(empty)["chunks_done"] == N30


# 4. Half-created stores ------------------------------------------------------------------------

def test_a_store_killed_while_being_created_is_incomplete_and_recreated(
        tmp_path, l10_source, reference, capsys):
    """What a kill between the root group's first write (no attributes) and the rest leaves:
    an empty Zarr group. ``info`` says incomplete; a rerun takes it as new."""
    store = tmp_path / "half.zarr"
    zarr.open_group(str(store), mode="w", zarr_format=3)
    assert json.loads((store / "zarr.json").read_text())["attributes"] == {}
    assert cube.info(store)["state"] == "incomplete"
    assert cli.main(["info", str(store)]) == 0
    assert "complete: no: the cube is being created" in capsys.readouterr().out
    _run(store, l10_source)
    _assert_same_values(store, reference)


def test_a_kill_during_creation_resumes_without_overwrite(tmp_path, l10_source, reference):
    store = tmp_path / "created.zarr"
    result = run_script("""
        import sys, zarr
        kill_on(zarr, "consolidate_metadata", 0)  # the last step of creating the store
        precompute(sys.argv[1], model="bluemarble-l10")
    """, str(store))
    assert_killed(result)
    assert cube.info(store)["state"] == "incomplete"
    _run(store, l10_source)
    _assert_same_values(store, reference)


# 7. Durability: leftovers of a killed chunk write ----------------------------------------------

def test_a_resume_removes_partial_chunk_files(tmp_path, l10_source, reference):
    store = tmp_path / "p.zarr"
    result = run_script("""
        import sys
        from zarr.storage import _local
        kill_on(_local.Path, "replace", 4, lambda path, *rest: "/embeddings/c/" in str(path))
        precompute(sys.argv[1], model="bluemarble-l10")
    """, str(store))
    assert_killed(result)
    leftovers = list(store.rglob("*.partial"))
    assert leftovers, "the kill left no temporary chunk file"
    _run(store, l10_source)
    assert not list(store.rglob("*.partial"))
    _assert_same_values(store, reference)


# Full disk -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_full_disk_fails_in_one_line_and_the_rerun_completes(tmp_path, l10_source,
                                                               reference):
    """precompute on a 96 KiB tmpfs (a cube is 8 chunks of 9 KiB plus metadata): the CLI
    says 'No space left' in one line; after the disk grows, a plain rerun ends identical."""
    mount = tmp_path / "disk"
    cli_run = (f'"{sys.executable}" -m xsatclip.cli precompute "$MOUNT/c.zarr" --resolution 30 '
               f'--chunks 3 --model {l10_source} --quiet')
    compare = (f'"{sys.executable}" -c ' + "'import sys, zarr, numpy as np; "
               "a = zarr.open_array(sys.argv[1], path=\"embeddings\")[...]; "
               "b = zarr.open_array(sys.argv[2], path=\"embeddings\")[...]; "
               "assert np.array_equal(a, b, equal_nan=True); print(\"identical\")' "
               f'"$MOUNT/c.zarr" {reference}')
    result = in_small_tmpfs(
        f'{cli_run} 2>"$MOUNT/../err.txt"; echo "rc=$?"; cat "$MOUNT/../err.txt"; '
        f'resize 64m; {cli_run}; echo "rc=$?"; {compare}',
        mount, "96k")
    out = result.stdout
    assert out.count("rc=") == 2, (out, result.stderr)
    first, second = out.split("rc=")[1:3]
    assert first.startswith("1"), out
    error_lines = [line for line in first.splitlines()[1:] if line]
    assert len(error_lines) == 1 and "No space left on device" in error_lines[0], out
    assert second.startswith("0") and "identical" in out, (out, result.stderr)


# 6. Corruption detected and repaired -----------------------------------------------------------

def _damaged_copy(reference, tmp_path):
    """A copy of the reference cube with unit (0, 1) truncated, unit (1, 2) deleted and the
    lat array's own zarr.json deleted (still in the consolidated metadata)."""
    import shutil

    store = tmp_path / "damaged.zarr"
    shutil.copytree(reference, store)
    array = zarr.open_array(str(store), path=cube.VARIABLE, mode="r")
    truncate(store / unit_key(array, (0, 1)))
    (store / unit_key(array, (1, 2))).unlink()
    (store / "lat" / "zarr.json").unlink()
    return store


def test_verify_lists_corrupt_and_missing_units_and_repair_recomputes_them(
        tmp_path, l10_source, reference, capsys):
    store = _damaged_copy(reference, tmp_path)
    report = verify(store)
    assert report.missing == [(1, 2)] and list(report.corrupt) == [(0, 1)]
    assert report.metadata == ["lat"] and report.units_checked == N30
    assert cli.main(["info", str(store), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "unit [0, 1]: corrupt" in out and "unit [1, 2]: marked done, but its object is " \
        "missing" in out and "array lat: its zarr.json is missing" in out
    assert "8 chunks checked, 1 missing, 1 corrupt" in out
    with dask.config.set(num_workers=2):
        assert cli.main(["precompute", str(store), "--resolution", "30", "--chunks", "3",
                         "--model", l10_source, "--quiet", "--repair"]) == 0
    assert verify(store).ok
    assert cli.main(["info", str(store), "--verify"]) == 0
    _assert_same_values(store, reference)
    assert (store / "lat" / "zarr.json").exists()


def test_a_plain_rerun_recomputes_missing_units_only(tmp_path, l10_source, reference, caplog):
    store = _damaged_copy(reference, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in (store / cube.VARIABLE).rglob("c/*/*/*")}
    with caplog.at_level(logging.WARNING, logger="xsatclip.cube"):
        _run(store, l10_source)
    assert "unit [1, 2]: marked done, but its object is missing: recomputed" in caplog.text
    after = {p: p.stat().st_mtime_ns for p in (store / cube.VARIABLE).rglob("c/*/*/*")}
    assert {p for p in after if before.get(p) != after[p]} == {
        store / unit_key(zarr.open_array(str(store), path=cube.VARIABLE), (1, 2))}
    assert not verify(store).ok  # the truncated unit needs --repair (a full read)


# 8. Crafted sizes, also in a cube's attrs (sample --method exact) ------------------------------

def test_sample_exact_refuses_a_crafted_model_named_by_the_cube(tmp_path, golden_dir,
                                                                reference, capsys):
    import shutil

    import torch

    checkpoint = torch.load(golden_dir / "satclip-tiny-l10.ckpt", map_location="cpu",
                            weights_only=True)
    checkpoint["hyper_parameters"]["num_hidden_layers"] = int(1e8)
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    store = tmp_path / "lure.zarr"
    shutil.copytree(reference, store)
    root = json.loads((store / "zarr.json").read_text())
    for attrs in (root["attributes"], root["consolidated_metadata"]["metadata"]
                  [cube.VARIABLE].get("attributes", {})):
        if "model_source" in attrs:
            attrs["model_source"] = str(crafted)
    (store / "zarr.json").write_text(json.dumps(root))
    with pytest.raises(CheckpointError, match=r"num_hidden_layers must be an integer from 1"):
        xsatclip.sample(store, [2.35], [48.86], method="exact")
    points = tmp_path / "points.csv"
    points.write_text("lon,lat\n2.35,48.86\n")
    assert cli.main(["sample", str(store), "--points", str(points), "--method", "exact"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "num_hidden_layers must be an integer from 1" in err


# 9. Rows with the wrong number of fields -------------------------------------------------------

def test_a_csv_row_with_an_extra_field_is_an_error_naming_the_line(tmp_path, capsys,
                                                                   l10_source):
    points = tmp_path / "points.csv"
    points.write_text("lon,lat\n10,20\n1,2,3\n")  # pandas would read lon=2, lat=3
    assert cli.main(["embed-points", "--points", str(points), "--model", l10_source]) == 1
    assert capsys.readouterr().err == (
        f"xsatclip: error: {points}, line 3: 3 fields, but the header has 2 (['lon', "
        "'lat'])\n")


# 11. Smaller: memory:// with workers, the unreachable Hub, a parent that is a file ------------

def test_a_memory_store_is_refused_with_distributed_workers(l10_source):
    with pytest.raises(InvalidOptionError, match=r"memory://c\.zarr lives in this process's "
                                                 r"memory"):
        _run("memory://c.zarr", l10_source, scheduler="tcp://127.0.0.1:1")


def test_an_unreachable_hub_fails_at_once(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # discard: refused
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="the Hub cannot be reached"):
        xsatclip.load_model("microsoft/SatCLIP-ResNet18-L10")
    assert time.monotonic() - started < 10  # s; huggingface_hub's retries took ~25


def test_a_store_under_a_file_fails_in_one_line(tmp_path, capsys, l10_source):
    (tmp_path / "file").write_text("")
    assert cli.main(["precompute", str(tmp_path / "file" / "c.zarr"), "--resolution", "30",
                     "--model", l10_source, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a parent of it is a file" in err and "Errno" not in err


@pytest.mark.slow
def test_a_finished_store_is_rechecked_on_read_only_media(tmp_path, l10_source, reference):
    """On a file system remounted read-only (no lock file can be made) a finished store
    reruns to 'nothing to do'; one with chunks to compute fails in one line."""
    cli_run = (f'"{sys.executable}" -m xsatclip.cli precompute "$MOUNT/c.zarr" '
               f'--resolution 30 --chunks 3 --model {l10_source}')
    drop = f'rm "$MOUNT/c.zarr/{cube.DONE_PATH}/c/0/0"'
    result = in_small_tmpfs(
        f'cp -r {reference} "$MOUNT/c.zarr"; mount -o remount,ro "$MOUNT"; {cli_run}; '
        'echo "rc=$?"; '
        f'mount -o remount,rw "$MOUNT"; {drop}; mount -o remount,ro "$MOUNT"; '
        f'{cli_run} --quiet; echo "rc=$?"', tmp_path / "ro", "64m")
    out, err = result.stdout, result.stderr
    assert f"c.zarr: {N30}/{N30} chunks done\nrc=0" in out, (out, err)
    assert out.rstrip().endswith("rc=1"), (out, err)
    assert err.strip().splitlines()[-1].endswith(
        f"1 of {N30} chunks to compute, but its lock file cannot be written (read-only media "
        "or no permission)"), err


def test_a_flipped_byte_is_found_and_repaired(tmp_path, l10_source, reference, capsys):
    """Shards carry a crc32c per inner chunk: one flipped bit of a value (which would read as
    another float, or inf) fails verification and is recomputed by --repair."""
    import shutil

    store = tmp_path / "flipped.zarr"
    shutil.copytree(reference, store)
    key = unit_key(zarr.open_array(str(store), path=cube.VARIABLE, mode="r"), (1, 3))
    flip_byte(store / key, 1000)  # inside the first inner chunk's values
    assert cli.main(["info", str(store), "--verify"]) == 1
    assert f"{store}: unit [1, 3]: corrupt (" in capsys.readouterr().out
    with pytest.raises(StoreError, match=rf"shard {key}, inner chunk\(s\) .* fail their "
                                         r"crc32c checksum .*precompute --repair"):
        xsatclip.sample(store, [135.0], [-45.0])  # row 4, column 10: in unit (1, 3)
    with dask.config.set(num_workers=2):
        assert cli.main(["precompute", str(store), "--resolution", "30", "--chunks", "3",
                         "--model", l10_source, "--quiet", "--repair"]) == 0
    _assert_same_values(store, reference)


def test_sample_names_a_chunk_marked_done_but_missing(tmp_path, reference, capsys):
    import shutil

    store = tmp_path / "holed.zarr"
    shutil.copytree(reference, store)
    (store / unit_key(zarr.open_array(str(store), path=cube.VARIABLE), (0, 1))).unlink()
    points = tmp_path / "points.csv"
    points.write_text("lon,lat\n-45,75\n")  # in unit (0, 1): rows 0-2, columns 3-5
    assert cli.main(["sample", str(store), "--points", str(points)]) == 1
    assert capsys.readouterr().err == (
        f"xsatclip: error: {store}: chunk(s) [0, 1] of embeddings are marked done but missing "
        "from the store (deleted or lost); rerun precompute to recompute them\n")
    with pytest.raises(StoreError, match=r"chunk\(s\) \[0, 1\] of embeddings are marked done"):
        xsatclip.sample(store, [-45.0], [75.0], method="linear")
    assert not np.isnan(xsatclip.sample(store, [45.0], [75.0]).values).any()  # elsewhere


# 1 and 4 on S3 (a moto server on loopback) -----------------------------------------------------

@pytest.fixture(scope="module")
def s3_options():
    """storage_options of a moto S3 server on a free loopback port with a bucket 'cubes'."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] (dev group) runs S3")
    pytest.importorskip("s3fs", reason="s3fs (the s3 extra) reads s3:// URLs")
    import socket

    import boto3  # moto's own dependency

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing",
                 ).create_bucket(Bucket="cubes")
    yield {"key": "testing", "secret": "testing", "use_listings_cache": False,
           "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    server.stop()


@pytest.mark.slow
def test_on_s3_a_half_created_store_and_a_killed_overwrite_are_rebuilt(s3_options,
                                                                       reference):
    url = "s3://cubes/half.zarr"
    zarr.open_group(zarr.storage.FsspecStore.from_url(url, storage_options=s3_options),
                    mode="w", zarr_format=3)  # what a kill during creation leaves
    assert cube.info(url, storage_options=s3_options)["state"] == "incomplete"
    _run(url, "bluemarble-l40", storage_options=s3_options)
    result = run_script("""
        import json, sys
        import s3fs
        kill_on(s3fs.S3FileSystem, "rm", 2)  # after deleting two of the store's entries
        precompute(sys.argv[1], model="bluemarble-l10", overwrite=True,
                   storage_options=json.loads(sys.argv[2]))
    """, url, json.dumps(s3_options))
    assert_killed(result)
    assert cube.info(url, storage_options=s3_options)["state"] == "incomplete"
    _run(url, "bluemarble-l10", storage_options=s3_options)
    local = zarr.open_array(str(reference), path=cube.VARIABLE, mode="r")[...]
    remote = zarr.open_array(zarr.storage.FsspecStore.from_url(url, storage_options=s3_options),
                             path=cube.VARIABLE, mode="r")[...]
    np.testing.assert_array_equal(remote, local)  # float32, bit for bit


# 7. Durability: the directory entry of a renamed shard is on disk before its marker ------------

def test_each_shard_directory_is_fsynced_before_its_marker(tmp_path, l10_source, monkeypatch):
    """Zarr writes a shard to a temporary file and renames it into place: the rename is only
    durable once the directory is fsynced, which must happen before the marker is set."""
    store = tmp_path / "synced.zarr"
    events, last_data = [], []
    fdatasync, fsync = os.fdatasync, os.fsync

    def record_data(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if f"/{cube.VARIABLE}/c/" in path:
            _, i, j = (int(part) for part in path.split("/c/")[-1].split("/"))
            last_data.append((i, j))
        fdatasync(fd)

    def record_directory(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.isdir(path) and f"/{cube.VARIABLE}/c/0/" in path and last_data:
            i, j = last_data[-1]  # one thread writes: the shard just flushed
            marker = zarr.open_array(str(store), path=cube.DONE_PATH, mode="r")[i, j]
            events.append(((i, j), path.endswith(f"/c/0/{i}"), int(marker)))
        fsync(fd)

    monkeypatch.setattr(os, "fdatasync", record_data)
    monkeypatch.setattr(os, "fsync", record_directory)
    with dask.config.set(num_workers=2):
        cube.precompute(store, resolution=30.0, chunks=3, model=l10_source, progress=False)
    assert sorted(unit for unit, _, _ in events) == [(i, j) for i in range(2) for j in range(4)]
    assert all(right_folder and marker == 0 for _, right_folder, marker in events)
