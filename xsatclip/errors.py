"""Exceptions raised by xsatclip: one base class, narrow subclasses.

Every error xsatclip raises on purpose derives from :class:`XSatclipError` and from the builtin
type a caller would expect (``ValueError``, ``LookupError``, ...), so ``except ValueError``
keeps working. The command line reports these (and ``OSError``) in one line; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


class XSatclipError(Exception):
    """Base class of every error xsatclip raises on purpose."""


class InvalidOptionError(XSatclipError, ValueError):
    """An argument has a value xsatclip does not accept; the message names the argument."""


class InvalidTypeError(XSatclipError, TypeError):
    """An argument is of a type xsatclip cannot use; the message names the argument."""


class InvalidCoordinatesError(XSatclipError, ValueError):
    """Coordinates are out of range, of the wrong shape, or cannot be found."""


class MissingCRSError(InvalidCoordinatesError):
    """Projected x/y coordinates were found, but no CRS says what they mean."""


class CheckpointError(XSatclipError, ValueError):
    """A checkpoint file is unreadable, corrupt, or holds an unsupported configuration."""


class WeightsMismatchError(CheckpointError):
    """Weights differ (sha256) from those an output or a task graph was made with."""


class ModelNotFoundError(XSatclipError, LookupError):
    """A model source (name, path or hub id) cannot be resolved."""


class DeviceError(XSatclipError, RuntimeError):
    """A torch device was asked for that this machine does not have, or cannot be used."""


class MissingDependencyError(XSatclipError, ImportError):
    """An optional dependency is needed; the message names the pip extra."""


class InputNotFoundError(XSatclipError, FileNotFoundError):
    """A file or store that an operation reads does not exist; the message names it."""


class OutputExistsError(XSatclipError, FileExistsError):
    """An output (file, directory, checkpoint) exists and would be replaced; the message says
    how to continue or replace it."""


class StoreError(XSatclipError, ValueError):
    """A Zarr store exists but does not match the requested cube, or is locked."""


class EvaluationError(XSatclipError, ValueError):
    """An argument of the evaluation suite is invalid; the message names it."""


class NotAnEmbeddingGridError(XSatclipError, ValueError):
    """The input has no ``embedding`` dim, or dims other than it and two spatial ones."""


class InvalidGeometryError(XSatclipError, ValueError):
    """A geometry is missing, empty, invalid, or not a polygon."""


class GeolocationError(XSatclipError, ValueError):
    """An input of locate / recall_vs_area / augment is unusable; the message names it."""


class PrecisionError(XSatclipError, ValueError):
    """A reduced-precision computation (the bfloat16 head) exceeds its error bound."""


def check_choice(name: str, value: T, choices: Iterable[T]) -> T:
    """``value`` if it is one of ``choices``, else :class:`InvalidOptionError` naming ``name``."""
    allowed = list(choices)
    if value not in allowed:
        raise InvalidOptionError(f"{name}={value!r}: choose one of {allowed}")
    return value


def missing_dependency(what: str, extra: str, exc: ImportError | None = None
                       ) -> MissingDependencyError:
    """The error for an optional import that failed: ``what`` needs the pip ``extra``."""
    detail = f" ({exc})" if exc is not None else ""
    return MissingDependencyError(f"{what} needs the '{extra}' extra: "
                                  f"pip install 'xsatclip[{extra}]'{detail}")
