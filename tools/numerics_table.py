"""Print the README's "Numerics" table: how far exact and reference embeddings differ.

Run: python tools/numerics_table.py  (needs ../shared/golden). float64 throughout; each cell
is the largest (median) absolute difference over the 256 outputs and the band's points.
"""

from pathlib import Path

import numpy as np

import xsatclip

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden"
BANDS = [(0, 30), (30, 45), (45, 50), (50, 60), (60, 70), (70, 90.01)]


def band_row(label, diff, abs_lat):
    cells = []
    for lo, hi in BANDS:
        d = diff[(abs_lat >= lo) & (abs_lat < hi)]
        cells.append(f"{d.max():.1e} ({np.median(d):.0e})")
    return f"| {label} | " + " | ".join(cells) + " |"


def main():
    golden = np.load(GOLDEN / "satclip_reference_public.npz")
    points = golden["L40_lonlat"]
    abs_lat = np.abs(points[:, 1])
    reference = golden["L40_embedding"]
    runs = {n: xsatclip.load_model(GOLDEN / "satclip-tiny-l40.ckpt", numerics=n,
                                   dtype="float64", device="cpu").encode(*points.T)
            for n in ("exact", "reference")}
    header = " | ".join(f"{lo:g}-{min(hi, 90):g}" for lo, hi in BANDS)
    print(f"| L = 40, abs(lat) | {header} |")
    print("|---" * (len(BANDS) + 1) + "|")
    print(band_row("exact vs published reference", np.abs(runs["exact"] - reference).max(1),
                   abs_lat))
    print(band_row('xsatclip `"reference"` vs published reference',
                   np.abs(runs["reference"] - reference).max(1), abs_lat))
    l10 = xsatclip.load_model(GOLDEN / "satclip-tiny-l10.ckpt", dtype="float64", device="cpu")
    d10 = np.abs(l10.encode(*golden["L10_lonlat"].T) - golden["L10_embedding"]).max()
    print(f"\nL = 10: exact vs published reference, all latitudes: {d10:.1e}")


if __name__ == "__main__":
    main()
