"""``xsatclip zonal``: polygons from a file, zonal statistics of a cube, a table out.

Polygons: GeoPackage (``.gpkg``), GeoJSON (``.geojson``, ``.json``), Shapefile (``.shp``),
FlatGeobuf (``.fgb``) read with pyogrio, or GeoParquet (``.parquet``, ``.geoparquet``).
Output: GeoParquet (``.parquet``, ``.geoparquet``: the polygons, their attribute columns and
the statistics) or CSV (``.csv``: the attribute columns and the statistics, no geometry).
Statistics columns: ``e0 .. eN-1`` (mean), ``std_e0 ..`` (std), ``count``, and ``area_m2``
(or ``coverage_cells`` with ``weights="coverage"``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputNotFoundError, InvalidOptionError, missing_dependency
from .zonal import Stat, require_dependencies, zonal

if TYPE_CHECKING:
    from .overlap import Weights

POLYGON_FORMATS = {".gpkg": "ogr", ".geojson": "ogr", ".json": "ogr", ".shp": "ogr",
                   ".fgb": "ogr", ".parquet": "parquet", ".geoparquet": "parquet"}
TABLE_FORMATS = {".parquet": "parquet", ".geoparquet": "parquet", ".csv": "csv"}


def _format(path: str, formats: dict[str, str], what: str) -> str:
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in formats:
        raise InvalidOptionError(f"{path}: unknown {what} format {ext!r}; use one of "
                         f"{', '.join(sorted(formats))}")
    return formats[ext]


def read_polygon_file(path: str, layer: str | None = None):
    """The polygons of a vector file as a GeoDataFrame (its attribute columns kept)."""
    import geopandas

    kind = _format(path, POLYGON_FORMATS, "polygon file")
    if not os.path.exists(path):
        raise InputNotFoundError(f"polygon file {path} does not exist")
    if kind == "parquet":
        try:
            return geopandas.read_parquet(path)
        except ImportError as exc:
            raise missing_dependency("GeoParquet", "parquet", exc) from None
    return geopandas.read_file(path, layer=layer)


def statistics_table(result, table, stats: Sequence[Stat]):
    """``table`` (a GeoDataFrame) with the columns of ``result``, a
    :func:`~xsatclip.areas.zonal` result of ``stats`` over its rows, appended."""
    import pandas as pd

    weight_name = "area" if "area" in result.coords else "coverage"
    columns = {"area_m2" if weight_name == "area" else "coverage_cells":
               result[weight_name].values}
    for s in stats:
        values = result.sel(zonal_statistics=s) if "zonal_statistics" in result.dims else result
        if s == "count":
            count = values.values if values.ndim == 1 else values.values[:, 0]
            columns["count"] = count.astype(np.int64)
        else:
            prefix = "e" if s == "mean" else f"{s}_e"
            columns.update({f"{prefix}{i}": column
                            for i, column in enumerate(np.asarray(values.values).T)})
    clash = sorted(set(columns) & set(map(str, table.columns)))
    if clash:
        raise InvalidOptionError(f"the polygons already have columns {clash}; rename them "
                                 "first")
    added = pd.DataFrame(columns, index=table.index)
    return pd.concat([table, added], axis=1)


def zonal_file(store: str, polygons: str, out: str, *, stat: Stat | Sequence[Stat] = "mean",
               weights: Weights = "area", layer: str | None = None,
               storage_options: dict | None = None) -> int:
    """Zonal statistics of the cube ``store`` over the polygons of a file, written to
    ``out`` (formats: module docstring). Returns the number of polygons written."""
    kind = _format(out, TABLE_FORMATS, "output")
    require_dependencies()
    table = read_polygon_file(polygons, layer)
    result = zonal(store, table, stat=stat, weights=weights, storage_options=storage_options)
    table = statistics_table(result, table, (stat,) if isinstance(stat, str) else stat)
    if kind == "csv":
        table.drop(columns=table.geometry.name).to_csv(out, index=False)
    else:
        try:
            table.to_parquet(out, index=False)
        except ImportError as exc:
            raise missing_dependency("GeoParquet", "parquet", exc) from None
    return len(table)
