"""A small location + image pair on Blue Marble and its RANGE gallery, for
``xsatclip evaluate --features DIR/tiny-pair range:DIR/gallery.zarr``.

    python tools/range_gallery.py [--out build/range] [--gallery N]   # the `train` extra

Trains (or, when ``DIR/tiny-pair`` already holds the finished run, reloads) the tiny pair
``examples/geolocate.py`` trains by default (L = 10, capacity 64, 64-d, 8-pixel patches of
Blue Marble + ETOPO1 at 4 x 4 pixel blocks, 20,000 locations, 8 epochs, seed 0), then builds
a gallery of ``--gallery`` other Blue Marble locations (seed 1) with
``xsatclip.geolocation.build_gallery`` and saves it as ``DIR/gallery.zarr``. The bundled
models get their galleries the same way once they ship their image encoders.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xsatclip.geolocation import build_gallery
from xsatclip.training import TrainConfig, train
from xsatclip.training.bluemarble import load_blue_marble

PAIR = TrainConfig(level=10, capacity=64, embed_dim=64, patch_size=8, num_locations=20_000,
                   batch_size=256, epochs=8, learning_rate=3e-3, image_width=16, seed=0)
IMAGE_REDUCE = 4
GALLERY_SEED = 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build") / "range")
    parser.add_argument("--gallery", type=int, default=20_000, help="gallery locations")
    args = parser.parse_args()
    image = load_blue_marble(IMAGE_REDUCE)
    run = train(image, args.out / "tiny-pair", PAIR)
    gallery = build_gallery(image, run.encoder, run.image_encoder, args.gallery,
                            patch_size=PAIR.patch_size, seed=GALLERY_SEED)
    gallery.to_zarr(args.out / "gallery.zarr", mode="w", consolidated=False)
    print(f"pair {run.directory} (val top-1 {run.history[-1]['val_accuracy']:.3f}), gallery "
          f"of {args.gallery} locations -> {args.out / 'gallery.zarr'}\n"
          f"xsatclip evaluate --features {run.directory} range:{args.out / 'gallery.zarr'}")


if __name__ == "__main__":
    main()
