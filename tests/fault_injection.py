"""Faults on demand for tests/test_faults.py: a process that kills itself (SIGKILL) at a chosen
call, a small tmpfs that fills up, and damaged chunk files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Prepended to every script: ``kill_on(module, name, after, when)`` makes the process SIGKILL
# itself at the call of ``module.name`` after ``after`` calls for which ``when(*args)`` holds.
PREAMBLE = textwrap.dedent("""
    import os, signal, sys
    import dask

    def kill_on(module, name, after, when=lambda *args: True):
        original, calls = getattr(module, name), [0]

        def wrapper(*args, **kwargs):
            if when(*args):
                calls[0] += 1
                if calls[0] > after:
                    os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        setattr(module, name, wrapper)

    def precompute(store, **options):
        from xsatclip import cube
        options = {"resolution": 30.0, "chunks": 3, "progress": False, **options}
        with dask.config.set(num_workers=2):
            return cube.precompute(store, **options)
""")


def run_script(script: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run ``PREAMBLE + script`` in a fresh Python with ``sys.argv[1:] = args``."""
    return subprocess.run([sys.executable, "-c", PREAMBLE + textwrap.dedent(script), *args],
                          capture_output=True, text=True, timeout=timeout)


def assert_killed(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stderr[-2000:])


def in_small_tmpfs(command: str, mount: Path, size: str, timeout: float = 300
                   ) -> subprocess.CompletedProcess:
    """Run bash ``command`` in a user + mount namespace where a tmpfs of ``size`` is mounted
    at ``mount`` (``$MOUNT``); ``resize SIZE`` in the command grows it. Skips (fails under
    CI=true) where unprivileged namespaces are not allowed."""
    if shutil.which("unshare") is None or not _namespaces_work(mount):
        message = "a small tmpfs needs 'unshare -rm' (user and mount namespaces), denied here"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    script = (f'set -u; MOUNT={mount}; mount -t tmpfs -o size={size} xsatclip-full "$MOUNT"; '
              'resize() { mount -o remount,size="$1" "$MOUNT"; }; ' + command)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(["unshare", "-rm", "bash", "-c", script], capture_output=True,
                          text=True, timeout=timeout, env=env)


def _namespaces_work(mount: Path) -> bool:
    mount.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=64k",
                            "probe", str(mount)], capture_output=True)
    return probe.returncode == 0


def chunk_file(store: Path, variable: str, index: tuple[int, ...]) -> Path:
    """The file of chunk ``index`` of ``variable`` in a local Zarr v3 store."""
    return store.joinpath(variable, "c", *map(str, index))


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
