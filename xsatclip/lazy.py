"""Packages whose public names load on first use (PEP 562), so that importing one submodule
does not import torch through its siblings."""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType


class LazyPackage(ModuleType):
    """A package exporting ``_exports`` (name -> submodule) lazily. A submodule named like the
    function it defines (``cube.precompute``) would rebind the package's name to itself when
    imported; the package keeps the function instead, as an eager ``from .x import x`` did."""

    _exports: dict[str, str]

    def __getattr__(self, name: str):
        module = self.__dict__.get("_exports", {}).get(name)
        if module is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(import_module(module, self.__name__), name)
        setattr(self, name, value)
        return value

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, ModuleType) and self.__dict__.get("_exports", {}).get(name) == (
                "." + name):
            value = getattr(value, name)
        super().__setattr__(name, value)


def lazy_exports(package: str, exports: dict[str, str]) -> None:
    """Make the package ``package`` (its ``__name__``) export ``exports`` lazily."""
    module = sys.modules[package]
    module._exports = exports  # type: ignore[attr-defined]
    module.__class__ = LazyPackage
