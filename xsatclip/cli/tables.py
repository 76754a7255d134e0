"""Point tables of the command line: lon/lat (and any other columns) in, the same rows with
their embeddings out (CSV or Parquet)."""

from __future__ import annotations

import csv
import os
import sys

import numpy as np
import pandas as pd

from ..errors import InputNotFoundError, InvalidOptionError, missing_dependency

TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
COORDINATES = (("lon", "longitude"), ("lat", "latitude"))


def _table_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in TABLE_FORMATS:
        raise InvalidOptionError(f"{path}: unknown table format {ext!r}; use .csv or .parquet")
    return TABLE_FORMATS[ext]


def _read_csv(path: str) -> pd.DataFrame:
    """The CSV at ``path`` as text columns, every row checked to have the header's number of
    fields (pandas would silently take an extra field as an index column)."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise InvalidOptionError(f"{path} is empty: expected a header line with lon and "
                                     "lat columns")
        rows = []
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                raise InvalidOptionError(f"{path}, line {reader.line_num}: {len(row)} fields, "
                                         f"but the header has {len(header)} ({header})")
            rows.append(row)
    return pd.DataFrame(rows, columns=header, dtype=str)


def read_points(path: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The table at ``path`` (CSV or Parquet) and its ``lon``, ``lat`` columns as float64
    arrays (``longitude``/``latitude`` also accepted, any case)."""
    kind = _table_format(path)
    if not os.path.exists(path):
        raise InputNotFoundError(f"points file {path} does not exist")
    if kind == "csv":
        table = _read_csv(path)
    else:
        try:
            table = pd.read_parquet(path)
        except ImportError as exc:
            raise missing_dependency("Parquet files", "parquet", exc) from None
    names = {str(c).strip().lower(): c for c in table.columns}
    columns = []
    for wanted in COORDINATES:
        found = next((names[w] for w in wanted if w in names), None)
        if found is None:
            raise InvalidOptionError(f"{path}: needs columns lon and lat, found "
                                     f"{list(table.columns)}")
        columns.append(found)
    try:
        lon, lat = (pd.to_numeric(table[c]).to_numpy(dtype=np.float64) for c in columns)
    except (TypeError, ValueError) as exc:
        raise InvalidOptionError(f"{path}: lon/lat columns must be numbers ({exc})") from None
    return table, lon, lat


def write_embeddings(table: pd.DataFrame, embeddings: np.ndarray, out: str | None) -> None:
    """Write ``table``'s rows (all its columns, as read) followed by ``e0 .. eN-1`` to ``out``
    (CSV or Parquet), or CSV on stdout."""
    values = pd.DataFrame(embeddings, columns=[f"e{i}" for i in range(embeddings.shape[1])],
                          index=table.index)
    result = pd.concat([table, values], axis=1)
    if out is None:
        result.to_csv(sys.stdout, index=False)
    elif _table_format(out) == "csv":
        result.to_csv(out, index=False)
    else:
        try:
            result.to_parquet(out, index=False)
        except ImportError as exc:
            raise missing_dependency("Parquet files", "parquet", exc) from None
