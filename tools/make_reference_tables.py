"""Build the coefficient table for the "reference" spherical-harmonic numerics mode.

Development-time script (needs sympy); its output
``xsatclip/data/reference_sh_coefficients.npz`` is committed, so users never run it.
Regenerate with::

    python tools/make_reference_tables.py          # degrees l < 40 (default, shipped)
    python tools/make_reference_tables.py 100      # larger table, l < 100

The reference implementation evaluates every harmonic as an expanded polynomial in
``x = cos(theta)`` whose literal coefficients carry 15 significant digits. Which numbers
got rounded, and how, decides the cancellation error (large at high degree), so it was
pinned down against the golden reference basis (``../shared/golden``), not guessed. With
the reference runtime's own ``x`` and ``x**k`` values, the scheme below plus a
left-to-right sum, leading power first, reproduces the golden L = 40 basis to 1e-14.

* ``m > 0``: the normalisation is NOT folded into the polynomial. The coefficients of
  ``d^m/dx^m P_l(x)`` (exact sympy rationals) are rounded to the nearest float64 and then
  to 15 significant digits; the constant ``sqrt(2) * K(l, m)`` (60-digit sympy value,
  rounded to 15 significant digits) multiplies ``(1 - x^2)^(m/2) * poly`` at evaluation.
  Folding the constant into the coefficients before rounding is 25x further from the
  golden data (3e-8 vs 1.3e-9 below 30 degrees latitude at L = 40).
* ``m = 0``: the constant IS folded, pi included (the brief's question). Each coefficient
  is ``float(a_k) * c_l`` in float64, with ``c_l = sqrt(2l+1) * sqrt(pi) / 2`` also
  computed in float64 in that order, then rounded to 15 significant digits. This
  reproduces the golden pole values (only m = 0 survives there) bit for bit for every
  l < 40; rounding orthonormal coefficients and multiplying by pi afterwards is off by
  up to 0.4 there (l = 39), and rounding the exact products by 0.1. The satclip zonal
  table (``zonal_satclip``) is therefore stored with pi folded in and used when
  ``zonal_scale == pi``. For any other ``zonal_scale`` the orthonormal zonal table
  (``coef``, m = 0 blocks, built the same way with ``c_l = sqrt(2l+1) / (2 sqrt(pi))``)
  is used and multiplied by ``zonal_scale`` at evaluation (no reference to match there).
* Rounding to 15 significant digits is done on the float64's exact binary value with
  ties AWAY FROM ZERO (``decimal.ROUND_HALF_UP``), not Python's half-even ``'%.15g'``:
  the dyadic Legendre coefficients often are exact ties, and half-even misses the
  golden data in 32 of the 780 m > 0 harmonics at L = 40.

Deterministic: exact rationals, IEEE float64 and a zip written with fixed timestamps.
Above l ~ 45 the expanded form is numerically meaningless in float64 (|Y| ~ 1e3 at
l = 50 near the poles, 1e21 at l = 99); the table goes further only to mimic the
reference exactly wherever it is asked to.

Stored arrays (``nb = lmax (lmax + 1) / 2`` blocks, block ``i = l (l + 1) / 2 + m``):

- ``lmax``: int64 scalar; the table covers ``0 <= l < lmax``;
- ``offsets``: int64 (nb + 1,); block ``i`` is ``coef[offsets[i]:offsets[i + 1]]`` and
  holds the coefficients of the powers ``l-m, l-m-2, ...`` down to 1 or 0 (the others are
  zero), leading power first;
- ``coef``: float64; ``m > 0``: coefficients of ``d^m P_l``; ``m = 0``: orthonormal zonal;
- ``norm``: float64 (nb,); ``sqrt(2) K(l, m)`` for ``m > 0``, 1.0 for ``m = 0``;
- ``zonal_satclip``: float64; the m = 0 blocks again with ``sqrt((2l+1) pi / 4)`` folded in,
  concatenated over l (block l has ``l // 2 + 1`` entries).
"""

from __future__ import annotations

import decimal
import io
import math
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import sympy

LMAX = 40
OUT = Path(__file__).resolve().parents[1] / "xsatclip" / "data" / "reference_sh_coefficients.npz"


def _r15(value: float) -> float:
    """Round a float64 to 15 significant digits, ties away from zero, back to float64.

    The tie rule matters: the Legendre coefficients are dyadic rationals, whose float64
    values are often exact decimal ties at the 16th digit (e.g. 456326325/1024 =
    445631.1767578125); the reference rounds those away from zero.
    """
    if value == 0.0 or not math.isfinite(value):
        return value
    exact = decimal.Decimal(value)  # the float64's exact binary value
    quantum = decimal.Decimal(1).scaleb(exact.adjusted() - 14)
    return float(exact.quantize(quantum, rounding=decimal.ROUND_HALF_UP))


def _fifteen_digits(exact: sympy.Expr) -> float:
    """15-significant-digit value of an (irrational, so tie-free) sympy constant."""
    context = decimal.Context(prec=15, rounding=decimal.ROUND_HALF_UP)
    return float(context.create_decimal(str(sympy.N(exact, 60))))


def build(lmax: int = LMAX) -> dict[str, np.ndarray]:
    x = sympy.Symbol("x")
    sqrt_pi = math.sqrt(math.pi)
    coef: list[float] = []
    offsets = [0]
    norm: list[float] = []
    zonal_satclip: list[float] = []
    for l in range(lmax):
        poly = sympy.Poly(sympy.legendre_poly(l, x), x)
        for m in range(l + 1):
            terms = poly.all_coeffs()  # leading power (l - m) first
            a = [int(t.p) / int(t.q) for t in terms[::2]]  # correctly rounded to float64
            if m == 0:
                c_orth = math.sqrt(2 * l + 1) / (2 * sqrt_pi)
                c_satclip = math.sqrt(2 * l + 1) * sqrt_pi / 2
                coef.extend(_r15(v * c_orth) for v in a)
                zonal_satclip.extend(_r15(v * c_satclip) for v in a)
                norm.append(1.0)
            else:
                coef.extend(_r15(v) for v in a)
                ratio = sympy.factorial(l - m) / sympy.factorial(l + m)
                k_squared = sympy.Rational(2 * l + 1, 4) * ratio / sympy.pi
                norm.append(_fifteen_digits(sympy.sqrt(2 * k_squared)))
            offsets.append(len(coef))
            poly = poly.diff(x)
    return {
        "lmax": np.asarray(lmax, dtype=np.int64),
        "offsets": np.asarray(offsets, dtype=np.int64),
        "coef": np.asarray(coef, dtype=np.float64),
        "norm": np.asarray(norm, dtype=np.float64),
        "zonal_satclip": np.asarray(zonal_satclip, dtype=np.float64),
    }


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed equivalent with fixed zip timestamps (byte-reproducible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def main(argv: list[str]) -> int:
    lmax = int(argv[1]) if len(argv) > 1 else LMAX
    t0 = time.perf_counter()
    tables = build(lmax)
    write_npz(OUT, tables)
    print(
        f"wrote {OUT} ({OUT.stat().st_size} bytes): lmax={lmax}, "
        f"{tables['coef'].size} coefficients in {tables['norm'].size} (l, m) blocks, "
        f"{tables['zonal_satclip'].size} satclip zonal coefficients; "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
