"""The lock of a local store: one ``precompute`` at a time.

``precompute`` holds an exclusive ``fcntl.flock`` on ``<store>.lock`` (beside the store, so
that neither Zarr listings nor ``overwrite`` see it) for its whole run; a second run fails at
once with a StoreError naming the store and the holder's pid. The store's path is resolved
first (symbolic links followed), so every alias of a store shares one lock. The lock file is
opened with ``O_NOFOLLOW`` and must be a regular file: a symbolic link or a FIFO planted at
``<store>.lock`` is refused, never followed, truncated or written through.

The kernel drops a flock when its process dies, ``kill -9`` included, so a lock is never
stale: a leftover lock file from a dead run is simply taken over. The holder deletes the file
when it finishes (after checking, on acquiring, that the file it locked is still the one at
the path). flock is not reliable across machines on some network file systems, and URLs
(``s3://``, ...) are not locked: run one ``precompute`` per remote store.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import os
import socket
import stat
import warnings
from collections.abc import Iterator

from ..errors import StoreError

BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def lock_path(url: str) -> str:
    """``<resolved store path>.lock``: the same for every alias of a store."""
    return os.path.realpath(url) + ".lock"


def _open_regular(path: str, url: str) -> int | None:
    """A descriptor of the regular file at ``path`` (created if absent), never following a
    symbolic link; StoreError for anything else there; None on a read-only file system."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NONBLOCK", 0)  # a planted FIFO must not block the open
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise StoreError(f"cannot lock store {url}: {path} is a symbolic link; remove it "
                             "(xsatclip never follows one)") from None
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return None
        raise StoreError(f"cannot lock store {url} ({path}): {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StoreError(f"cannot lock store {url}: {path} is not a regular file; remove it")
    return fd


@contextlib.contextmanager
def store_lock(url: str, local: bool) -> Iterator[bool]:
    """Exclusive, non-blocking flock on ``<store>.lock`` for local stores (module doc).

    Yields whether the store may be written: False where the lock file cannot be created
    (read-only media, no write permission), so that a finished store can still be checked.
    """
    if not local:
        yield True
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        warnings.warn(f"no file locking on this platform: do not run two precomputes on "
                      f"{url} at once", stacklevel=3)
        yield True
        return
    path = lock_path(url)
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StoreError(f"cannot create store {url}: a parent of it is a file, not a "
                         "directory") from None
    while True:
        fd = _open_regular(path, url)
        if fd is None:
            yield False
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if exc.errno not in BUSY:
                raise StoreError(f"cannot lock store {url} ({path}): {exc}") from None
            raise StoreError(f"store {url} is locked by a running precompute "
                             f"({holder}); wait for it to finish") from None
        if _still_at(path, fd):  # the previous holder may have unlinked it meanwhile
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode())
    try:
        yield True
    finally:
        if _still_at(path, fd):
            with contextlib.suppress(OSError):
                os.unlink(path)  # while still holding it: see the inode check above
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _still_at(path: str, fd: int) -> bool:
    """Whether the file open as ``fd`` is the one at ``path`` (not following links)."""
    try:
        here, mine = os.lstat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)
