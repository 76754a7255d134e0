"""Naive baseline: the reference SatCLIP way of computing the basis and the encoder.

Each harmonic (l, m) is its own torch float64 expression, as the reference code's
sympy-generated functions are: an expanded polynomial in ``x = cos(theta)`` (one ``x ** k``
per term, 15-digit coefficients) times ``(1 - x**2) ** (|m| / 2)`` times ``cos/sin(|m| phi)``,
evaluated on the whole batch, one harmonic at a time, then ``torch.stack``-ed. The one
kindness over the reference: ``x``, ``phi`` and the ``(1 - x**2)`` factor are computed once
per batch rather than once per harmonic, so the ratios measured against it are conservative.

Coefficients come from xsatclip's reference table (``xsatclip/data/
reference_sh_coefficients.npz``, read by ``xsatclip._reference_basis``), the same numbers the
reference code hard-codes. Not part of the package.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Mapping

import numpy as np
import torch


@functools.cache
def harmonic_terms(L: int) -> list[tuple[int, int, float, list[tuple[float, int]]]]:
    """``(l, m, norm, [(coef, power), ...])`` per harmonic ``l < L``, ``0 <= m <= l``.

    Terms run leading power first (``l - m``, ``l - m - 2``, ...). The table stores block
    ``b = l (l + 1) / 2 + m`` at ``coef[offsets[b]:offsets[b + 1]]``; the SatCLIP zonal
    blocks (pi folded in, rounded by the reference) sit consecutively in ``zonal_satclip``.
    """
    resource = importlib.resources.files("xsatclip.data") / "reference_sh_coefficients.npz"
    with resource.open("rb") as fh, np.load(fh) as t:
        offsets, table, zonal, norm = t["offsets"], t["coef"], t["zonal_satclip"], t["norm"]
    harmonics = []
    zonal_start = 0
    for l in range(L):
        for m in range(l + 1):
            b = l * (l + 1) // 2 + m
            if m == 0:
                coefs = zonal[zonal_start : zonal_start + l // 2 + 1]
                zonal_start += l // 2 + 1
            else:
                coefs = table[offsets[b] : offsets[b + 1]]
            terms = [(float(c), l - m - 2 * j) for j, c in enumerate(coefs)]
            harmonics.append((l, m, float(norm[b]), terms))
    return harmonics


def naive_basis(lon: torch.Tensor, lat: torch.Tensor, L: int) -> torch.Tensor:
    """(N, L*L) float64 SatCLIP basis ("satclip" convention) of degrees ``lon``, ``lat``."""
    lon = lon.to(torch.float64)
    lat = lat.to(torch.float64)
    phi = torch.deg2rad(lon + 180.0)
    x = torch.cos(torch.deg2rad(lat + 90.0))
    one_minus_x2 = 1.0 - x**2
    columns: dict[int, torch.Tensor] = {}
    for l, m, norm, terms in harmonic_terms(L):
        poly = 0.0
        for coef, power in terms:  # leading power first, like the generated code
            poly = poly + coef * x**power
        value = norm * one_minus_x2 ** (m / 2) * poly
        if m == 0:
            columns[l * l + l] = value
        else:
            columns[l * l + l + m] = value * torch.cos(m * phi)
            columns[l * l + l - m] = value * torch.sin(m * phi)
    return torch.stack([columns[k] for k in range(L * L)], dim=1)


def naive_encoder(
    weights: Mapping[str, torch.Tensor], lon: torch.Tensor, lat: torch.Tensor, L: int
) -> torch.Tensor:
    """SIREN embeddings in float64: ``sin(30 (W0 x + b0))``, ``sin(Wk h + bk)``, linear last.

    ``weights``: a SIREN state dict (``layers.{i}.weight|bias``, ``last_layer.weight|bias``).
    """
    w = {name: t.detach().to(torch.float64) for name, t in weights.items()}
    h = naive_basis(lon, lat, L)
    n_layers = sum(1 for name in w if name.startswith("layers.") and name.endswith(".weight"))
    for i in range(n_layers):
        w0 = 30.0 if i == 0 else 1.0
        h = torch.sin(w0 * (h @ w[f"layers.{i}.weight"].T + w[f"layers.{i}.bias"]))
    return h @ w["last_layer.weight"].T + w["last_layer.bias"]


def random_points(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points uniform on the sphere as float64 (lon, lat) degrees."""
    g = torch.Generator().manual_seed(seed)
    lon = torch.rand(n, generator=g, dtype=torch.float64) * 360.0 - 180.0
    z = torch.rand(n, generator=g, dtype=torch.float64) * 2.0 - 1.0
    lat = torch.rad2deg(torch.asin(z))
    return lon, lat

