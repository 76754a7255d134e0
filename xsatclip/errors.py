"""Exceptions raised by xsatclip: one base class, narrow subclasses."""

from __future__ import annotations


class XSatclipError(Exception):
    """Base class of every error xsatclip raises on purpose."""


class InvalidCoordinatesError(XSatclipError, ValueError):
    """Coordinates are out of range, of the wrong shape, or cannot be found."""


class CheckpointError(XSatclipError, ValueError):
    """A checkpoint file is unreadable, corrupt, or holds an unsupported configuration."""


class ModelNotFoundError(XSatclipError, LookupError):
    """A model source (name, path or hub id) cannot be resolved."""


class MissingDependencyError(XSatclipError, ImportError):
    """An optional dependency is needed; the message names the pip extra."""


class StoreError(XSatclipError, ValueError):
    """A Zarr store exists but does not match the requested cube, or is locked."""
