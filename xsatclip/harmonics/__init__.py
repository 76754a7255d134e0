"""Numeric kernels of the positional encodings (SatCLIP, GeoCLIP): pure functions on arrays.

- :mod:`.basis`: :func:`spherical_harmonics`, the public (N, L*L) basis, and its conventions;
- :mod:`.legendre`: the Numba recursion kernels (row and column layouts);
- :mod:`.torch_basis`: the same recursion in torch, for any device;
- :mod:`.reference`: the reference implementation's expanded polynomials, errors included;
- :mod:`.separable`: index maths of the first layer folded per grid row;
- :mod:`.equal_earth`: GeoCLIP's Equal Earth projection;
- :mod:`.coordinates`: checks of (lon, lat) inputs.
"""

from .basis import CONVENTIONS, NUMERICS, Convention, Numerics, spherical_harmonics, zonal_scale
from .coordinates import check_latitude, check_longitude, validate_lonlat

__all__ = [
    "CONVENTIONS",
    "NUMERICS",
    "Convention",
    "Numerics",
    "check_latitude",
    "check_longitude",
    "spherical_harmonics",
    "validate_lonlat",
    "zonal_scale",
]
