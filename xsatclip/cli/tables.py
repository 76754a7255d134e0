"""Point tables of the command line: lon/lat in, embeddings out (CSV or Parquet)."""

from __future__ import annotations

import os
import sys

from ..errors import InputNotFoundError, InvalidOptionError, missing_dependency

TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _table_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in TABLE_FORMATS:
        raise InvalidOptionError(f"{path}: unknown table format {ext!r}; use .csv or .parquet")
    return TABLE_FORMATS[ext]


def _parquet_error(exc: ImportError):
    return missing_dependency("Parquet files", "parquet", exc)


def read_points(path: str):
    """``(lon, lat)`` float64 arrays from a CSV or Parquet table with lon/lat columns."""
    import numpy as np
    import pandas as pd

    kind = _table_format(path)
    if not os.path.exists(path):
        raise InputNotFoundError(f"points file {path} does not exist")
    if kind == "csv":
        table = pd.read_csv(path)
    else:
        try:
            table = pd.read_parquet(path)
        except ImportError as exc:
            raise _parquet_error(exc) from None
    names = {str(c).strip().lower(): c for c in table.columns}
    columns = []
    for wanted in (("lon", "longitude"), ("lat", "latitude")):
        found = next((names[w] for w in wanted if w in names), None)
        if found is None:
            raise InvalidOptionError(f"{path}: needs columns lon and lat, found "
                                     f"{list(table.columns)}")
        columns.append(found)
    try:
        lon, lat = (table[c].to_numpy(dtype=np.float64) for c in columns)
    except (TypeError, ValueError):
        raise InvalidOptionError(f"{path}: lon/lat columns must be numbers") from None
    return lon, lat


def write_embeddings(lon, lat, embeddings, out: str | None) -> None:
    """Write ``lon, lat, e0 .. eN-1`` to ``out`` (CSV or Parquet), or CSV on stdout."""
    import pandas as pd

    table = pd.DataFrame({"lon": lon, "lat": lat})
    values = pd.DataFrame(embeddings, columns=[f"e{i}" for i in range(embeddings.shape[1])])
    table = pd.concat([table, values], axis=1)
    if out is None:
        table.to_csv(sys.stdout, index=False)
    elif _table_format(out) == "csv":
        table.to_csv(out, index=False)
    else:
        try:
            table.to_parquet(out, index=False)
        except ImportError as exc:
            raise _parquet_error(exc) from None


