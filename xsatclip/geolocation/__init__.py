"""Where is this image? Location probability maps from an embedding grid, Recall vs Area,
and retrieval-augmented (RANGE) location embeddings.

- :mod:`.kernels`: numeric kernels (numpy): cosine similarities, ranking, retrieval means
  (cell areas and great-circle distances come from :mod:`xsatclip.sphere`).
- :mod:`.grids`: finding the embedding array, its spatial dims and cell centres.
- :mod:`.heatmap`: :func:`locate`, :func:`top_k`.
- :mod:`.recall`: :func:`cell_areas`, :func:`recall_vs_area`.
- :mod:`.retrieval`: :func:`build_gallery`, :func:`augment`, :func:`encode_patches`.
"""

from ..errors import GeolocationError
from .heatmap import LOGIT_SCALE_ATTR, locate, top_k
from .recall import cell_areas, recall_vs_area
from .retrieval import augment, build_gallery, encode_patches

__all__ = [
    "LOGIT_SCALE_ATTR",
    "GeolocationError",
    "augment",
    "build_gallery",
    "cell_areas",
    "encode_patches",
    "locate",
    "recall_vs_area",
    "top_k",
]
