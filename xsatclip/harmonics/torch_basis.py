"""The exact spherical-harmonic basis in torch, for any device (used on CUDA).

Same definition and feature order as :func:`xsatclip.harmonics.spherical_harmonics`. The
normalised Legendre recursion steps once per degree ``l``, vectorised over points and orders
``m``, so a call issues O(L) kernels. It computes in float64 (cheap next to the network) and
returns the requested dtype.
"""

from __future__ import annotations

import math

import torch

from .legendre import legendre_recursion_coefficients


def spherical_harmonics_torch(
    lon: torch.Tensor, lat: torch.Tensor, L: int, zonal_scale: float, dtype: torch.dtype
) -> torch.Tensor:
    """Basis of N points (degrees, validated, 1-D) as a (N, L*L) tensor on their device."""
    device = lon.device
    f64 = torch.float64
    diag, a, b = (torch.as_tensor(c, dtype=f64, device=device)
                  for c in legendre_recursion_coefficients(L))
    lat_rad = torch.deg2rad(lat.to(f64))
    x = -torch.sin(lat_rad)[:, None]  # cos(theta)
    s = torch.cos(lat_rad)[:, None]  # sin(theta)
    phi = torch.deg2rad(torch.remainder(lon.to(f64) + 180.0, 360.0))
    orders = torch.arange(L, dtype=f64, device=device)
    # cos(m phi), sin(m phi) for m = 0..L-1 as (N, L); float64 keeps m*phi exact enough.
    cos_m = torch.cos(phi[:, None] * orders)
    sin_m = torch.sin(phi[:, None] * orders)
    # Sectoral terms p(m, m) = p00 * prod_{k<=m} diag[k] * s^m, as a cumulative product.
    sectoral = torch.cumprod(torch.cat([torch.ones_like(s).expand(-1, 1),
                                        s.expand(-1, L - 1)], dim=1) * diag, dim=1)
    sectoral = sectoral / math.sqrt(4 * math.pi)

    sqrt2 = math.sqrt(2.0)
    degrees = []
    p_prev = torch.zeros_like(sectoral)
    p = torch.zeros_like(sectoral)
    for l in range(L):
        # Column m of p holds p(l, m); entries with m > l stay zero.
        p_next = a[l] * (x * p - b[l] * p_prev)
        p_next[:, l] = sectoral[:, l]
        p_prev, p = p, p_next
        zonal = zonal_scale * p[:, :1]
        cos_part = sqrt2 * p[:, 1 : l + 1] * cos_m[:, 1 : l + 1]
        sin_part = sqrt2 * p[:, 1 : l + 1] * sin_m[:, 1 : l + 1]
        degrees.append(torch.cat([sin_part.flip(1), zonal, cos_part], dim=1))
    out = torch.cat(degrees, dim=1)
    nan_rows = torch.isnan(lon) | torch.isnan(lat)
    return out.masked_fill(nan_rows[:, None], math.nan).to(dtype)
