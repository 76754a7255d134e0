"""Stored values from float32 model outputs and back (float32, float16, int8: see
:mod:`xsatclip.cube.layout`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..model import Encoder
from ..raster.geometry import fibonacci_lattice
from .layout import INT8_FILL, INT8_MARGIN, INT8_MAX, INT8_SAMPLE_POINTS


@dataclasses.dataclass(frozen=True)
class Codec:
    """float32 model output -> stored values (and whether any value saturated)."""

    dtype: str
    scale: float | None = None  # int8: the float32 scale_factor, as a Python float

    def encode(self, block: np.ndarray) -> tuple[np.ndarray, bool]:
        if self.dtype == "float32":
            return np.asarray(block, np.float32), False
        if self.dtype == "float16":
            with np.errstate(over="ignore"):
                out = np.asarray(block, np.float16)
            return out, bool(np.isinf(out).any())
        assert self.scale is not None, "an int8 codec needs its scale"
        codes = np.rint(np.asarray(block, np.float64) / self.scale)
        clipped = bool((np.abs(codes) > INT8_MAX).any())
        np.clip(codes, -INT8_MAX, INT8_MAX, out=codes)
        return codes.astype(np.int8), clipped

    def encoding(self, chunks: tuple[int, ...]) -> dict[str, Any]:
        # Uncompressed: zstd gains little on float32 embeddings and costs a good share of the
        # compute time (benchmarks/README.md).
        enc: dict[str, Any] = {"chunks": chunks, "dtype": self.dtype, "compressors": None}
        if self.dtype == "int8":
            enc.update(scale_factor=np.float32(self.scale), _FillValue=np.int8(INT8_FILL),
                       fill_value=np.int8(INT8_FILL))
        else:
            enc.update(_FillValue=np.nan, fill_value=np.nan)
        return enc


def int8_scale(model: Encoder) -> float:
    """The int8 ``scale_factor`` of ``model``'s cubes (module doc, *Storage dtypes*)."""
    amplitude = float(np.abs(model.encode(*fibonacci_lattice(INT8_SAMPLE_POINTS))).max())
    return float(np.float32(INT8_MARGIN * (amplitude or 1.0) / INT8_MAX))


def dequantize(codes, scale_factor: float) -> np.ndarray:
    """int8 codes -> float32 embeddings (``-128``, never written, -> NaN)."""
    codes = np.asarray(codes)
    values = codes * np.float32(scale_factor)
    return np.where(codes == INT8_FILL, np.float32(np.nan), values).astype(np.float32)


def quantization_formula(codec: Codec) -> str:
    """How stored values become embeddings, exactly (the ``xsatclip_quantization`` attr)."""
    if codec.dtype == "int8":
        return (f"int8 linear, symmetric, one global scale: value = float32(code) * "
                f"float32(scale_factor) + 0.0, scale_factor = {codec.scale!r}; codes in "
                f"[-127, 127], {INT8_FILL} (_FillValue) = not written; "
                f"|error| <= scale_factor / 2 = {(codec.scale or 0.0) / 2:.3g}")
    if codec.dtype == "float16":
        return ("float16 rounding of float32 outputs: value = float32(stored); "
                "|error| <= 2**-11 |value|")
    return "none (float32 model outputs)"
