"""Embeddings over areas: area-weighted statistics of embedding grids over polygons.

``from xsatclip.areas import zonal``. Needs the ``zonal`` extra (shapely, geopandas, xvec),
imported on first use.
"""

from .zonal import zonal

__all__ = ["zonal"]
