"""Replacing local or remote stores durably: what ``precompute`` may write into or delete,
deleting a cube so that no interruption leaves it looking complete, removing what a killed
write leaves behind, and ``fsync`` of a directory after a rename into it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from typing import TYPE_CHECKING

from ..errors import InvalidOptionError, StoreError
from .layout import DONE_PATH

if TYPE_CHECKING:
    from .store import StoreTarget

MARKERS = DONE_PATH.split("/")[0]  # the group of the completion markers


def check_replaceable(target: StoreTarget, state: str) -> None:
    """StoreError unless ``precompute`` may write into what is at ``target`` (and, with
    ``overwrite``, delete it): an xsatclip cube (complete, incomplete or with unreadable
    metadata), or an empty directory."""
    if state in ("absent", "complete", "incomplete"):
        return
    if state == "unreadable" and (not target.local or os.path.isdir(
            os.path.join(target.url, MARKERS))):
        return
    what = "is unreadable" if state == "unreadable" else "is not an xsatclip cube"
    raise StoreError(f"{target.url} exists and {what}; xsatclip only writes into its own "
                     "cubes or empty directories: remove it yourself or choose another store")


def check_scheduler_reaches(target: StoreTarget, distributed: bool) -> None:
    """InvalidOptionError for a ``memory://`` store with distributed workers: each worker
    process would write into a memory of its own, and the store would stay empty."""
    if distributed and target.url.startswith("memory://"):
        raise InvalidOptionError(f"{target.url} lives in this process's memory: distributed "
                                 "workers (--workers, scheduler=) cannot write to it; use a "
                                 "local path or an object store")


def clear_store(target: StoreTarget) -> None:
    """Delete the cube at ``target`` so that no interruption leaves a store looking complete:
    first the consolidated metadata goes from the root ``zarr.json`` (the store is then
    incomplete, and a rerun recreates it), then everything but that file, then that file."""
    if target.local:
        if os.path.islink(target.url) or os.path.isfile(target.url):
            os.remove(target.url)
        elif os.path.isdir(target.url):
            _clear_local(target.url)
        return
    import fsspec

    fs, path = fsspec.core.url_to_fs(target.url, **dict(target.options))
    root = f"{path}/zarr.json"
    if fs.exists(root):
        fs.pipe_file(root, _invalidated(fs.cat_file(root)))
    for entry in fs.ls(path, detail=False) if fs.exists(path) else ():
        if entry.rstrip("/") != root:
            fs.rm(entry, recursive=True)
    if fs.exists(root):
        fs.rm(root)


def _clear_local(path: str) -> None:
    root = os.path.join(path, "zarr.json")
    if os.path.isfile(root):
        partial = root + ".invalidated.partial"
        with open(root, "rb") as source, open(partial, "wb") as out:
            out.write(_invalidated(source.read()))
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, root)
        fsync_directory(path)
    for name in os.listdir(path):
        entry = os.path.join(path, name)
        if name == "zarr.json":
            continue
        if os.path.isdir(entry) and not os.path.islink(entry):
            shutil.rmtree(entry)
        else:
            os.remove(entry)
    with contextlib.suppress(FileNotFoundError):
        os.remove(root)
    fsync_directory(path)


def _invalidated(root_json: bytes) -> bytes:
    """Root metadata without its consolidated metadata (unreadable JSON: an empty group)."""
    try:
        document = json.loads(root_json)
        document.pop("consolidated_metadata", None)
    except ValueError:
        document = {"zarr_format": 3, "node_type": "group", "attributes": {}}
    return json.dumps(document).encode()


def remove_leftovers(target: StoreTarget) -> None:
    """Remove Zarr's ``*.partial`` temporary files from a local store: what a chunk write
    cut off by a kill or a full disk leaves behind."""
    if not target.local:
        return
    for root, _, names in os.walk(target.url):
        for name in names:
            if name.endswith(".partial"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(root, name))


def fsync_directory(path: str) -> None:
    """Put ``path``'s entries (a file just renamed into it) on disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
