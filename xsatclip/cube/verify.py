"""Checking a cube against its own markers, and marking what fails for recomputation.

A unit of work is what one ``precompute`` task writes: one object of ``embeddings`` (its
index is that of its marker in ``_xsatclip/done``). :func:`verify` reports

* ``missing``: units marked done whose object is gone;
* ``corrupt``: units marked done whose object Zarr cannot decode (a failed checksum, a
  truncated or garbled object), with Zarr's reason;
* ``metadata``: arrays listed in the consolidated metadata whose own ``zarr.json`` is gone
  (readers that ignore consolidated metadata could no longer open them).

:func:`repair` rewrites missing array metadata from the consolidated copy and clears the
markers of missing and corrupt units, so that the next ``precompute`` recomputes exactly
those; the cube then ends identical to an uninterrupted run. The full check reads every unit
(the cost of reading the cube once); :func:`missing_units` only lists the store, cheap
enough for every resume.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import numpy as np
import zarr
from zarr.core.group import GroupMetadata
from zarr.core.sync import sync

from ..errors import InputNotFoundError, StoreError
from .layout import DONE_PATH, VARIABLE
from .points import open_points
from .store import StoreTarget, inspect_store, store_target

Unit = tuple[int, int]
logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Verification:
    """What :func:`verify` found; ``ok`` when nothing."""

    store: str
    units_checked: int
    missing: list[Unit]
    corrupt: dict[Unit, str]
    metadata: list[str]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.metadata)

    def lines(self) -> list[str]:
        """One line per problem (none when ``ok``)."""
        out = [f"array {name}: its zarr.json is missing (kept only in the consolidated "
               "metadata)" for name in self.metadata]
        out += [f"unit {list(u)}: marked done, but its object is missing" for u in self.missing]
        out += [f"unit {list(u)}: corrupt ({why})" for u, why in self.corrupt.items()]
        return out


def _complete_group(target: StoreTarget) -> zarr.Group:
    state, group = inspect_store(target)
    if state == "absent":
        raise InputNotFoundError(f"no cube at {target.url}")
    if state != "complete":
        raise StoreError(f"{target.url} is not a complete xsatclip cube ({state})")
    return group


def _array(group: zarr.Group, path: str) -> zarr.Array:
    node = group[path]
    if not isinstance(node, zarr.Array):
        raise StoreError(f"{path} in the cube is a group, not an array")
    return node


def unit_key(array: zarr.Array, unit: Unit) -> str:
    """The store key of the object holding ``unit`` of a band-first ``array``."""
    return f"{array.path}/{array.metadata.encode_chunk_key((0, *unit))}"


def unit_region(array: zarr.Array, unit: Unit) -> tuple[slice, slice, slice]:
    """(embedding, y, x) slices of ``unit`` (the array's outer chunk grid: chunks or shards)."""
    _, ny, nx = array.metadata.chunk_grid.chunk_shape  # type: ignore[attr-defined]
    (i, j) = unit
    return slice(None), slice(i * ny, (i + 1) * ny), slice(j * nx, (j + 1) * nx)


def _keys(store, prefix: str) -> set[str]:
    async def collect() -> set[str]:
        return {key async for key in store.list_prefix(prefix)}

    return sync(collect())


def _missing_metadata(group: zarr.Group, store) -> list[str]:
    consolidated = group.metadata.consolidated_metadata
    names = [] if consolidated is None else sorted(
        name for name, meta in consolidated.flattened_metadata.items()
        if not isinstance(meta, GroupMetadata))
    return [name for name in names if not sync(store.exists(f"{name}/zarr.json"))]


def missing_units(target: StoreTarget, group: zarr.Group, done: np.ndarray) -> list[Unit]:
    """Units marked done in ``done`` whose object is not in the store (one listing)."""
    array = _array(group, VARIABLE)
    present = _keys(target.store(read_only=True), f"{VARIABLE}/")
    return [unit for unit in ((int(i), int(j)) for i, j in np.argwhere(done))
            if unit_key(array, unit) not in present]


def check_marked_units(store: str | os.PathLike, *, storage_options: dict | None = None
                       ) -> None:
    """StoreError naming the units marked done whose object is missing (a listing: cheap);
    what explains NaN values where a cube says it is complete."""
    target = store_target(store, storage_options)
    group = _complete_group(target)
    gone = missing_units(target, group, np.asarray(_array(group, DONE_PATH)[...]))
    if gone:
        names = ", ".join(str(list(unit)) for unit in gone[:8]) + (" ..." if gone[8:] else "")
        raise StoreError(f"{target.url}: chunk(s) {names} of {VARIABLE} are marked done but "
                         "missing from the store (deleted or lost); rerun precompute to "
                         "recompute them")


def verify(store: str | os.PathLike, *, storage_options: dict | None = None) -> Verification:
    """Check every unit marked done (it exists and decodes) and every array's metadata."""
    target = store_target(store, storage_options)
    group = _complete_group(target)
    zstore = target.store(read_only=True)
    array = _array(group, VARIABLE)
    done = np.asarray(_array(group, DONE_PATH)[...])
    missing = missing_units(target, group, done)
    skip = set(missing)
    reader = open_points(zstore, target.url)  # checksums on raw bytes: fast
    corrupt = {}
    for ij in np.argwhere(done):
        unit = (int(ij[0]), int(ij[1]))
        if unit in skip:
            continue
        try:
            if reader is None:
                array[unit_region(array, unit)]
            else:  # a unit is a shard
                reader.shard_values(*unit)
        except Exception as exc:  # Zarr raises many types for undecodable objects
            corrupt[unit] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    return Verification(target.url, int(np.count_nonzero(done)), missing, corrupt,
                        _missing_metadata(group, zstore))


def repair(store: str | os.PathLike, verification: Verification, *,
           storage_options: dict | None = None) -> int:
    """Rewrite missing array metadata from the consolidated copy and clear the markers of the
    missing and corrupt units; returns the number of units to recompute."""
    target = store_target(store, storage_options)
    group = _complete_group(target)
    zstore = target.store()
    consolidated = group.metadata.consolidated_metadata
    for name in verification.metadata:
        meta = consolidated.flattened_metadata[name]  # type: ignore[union-attr]
        document = json.dumps(meta.to_dict()).encode()
        sync(zstore.set(f"{name}/zarr.json",
                        zarr.core.buffer.default_buffer_prototype().buffer.from_bytes(document)))
    units = [*verification.missing, *verification.corrupt]
    if units:
        markers = zarr.open_array(zstore, path=DONE_PATH, mode="r+")
        for unit in units:
            markers[unit] = 0
    return len(units)


def recheck(target: StoreTarget, group: zarr.Group, done: np.ndarray, full: bool) -> None:
    """Before a resume: clear in ``done`` (and in the store) the units to recompute, missing
    ones always, corrupt ones too when ``full``; rewrite missing array metadata."""
    if full:
        report = verify(target.url, storage_options=dict(target.options) or None)
    else:
        report = Verification(target.url, int(np.count_nonzero(done)),
                              missing_units(target, group, done), {},
                              _missing_metadata(group, target.store(read_only=True)))
    if report.ok:
        return
    for line in report.lines():
        logger.warning("%s: %s: recomputed", target.url, line)
    repair(target.url, report, storage_options=dict(target.options) or None)
    for unit in [*report.missing, *report.corrupt]:
        done[unit] = 0
