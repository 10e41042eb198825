"""Spec-z catalogs as TSM and CRC read them: any format :func:`pzlib.catalog.open_catalog` reads, with the
column roles of a :class:`~pzlib.crossmatch.config.SpeczColumns`, checked before use.

:func:`check_specz_columns` looks only at the schema (request-time checks); :func:`read_specz` reads the rows
and refuses a catalog whose positions or redshifts are missing, not numeric, or off the sky, naming the file,
the column and how many rows are wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pzlib.catalog import CatalogError, CatalogReader, open_catalog
from pzlib.crossmatch.config import SpeczColumns, local_path
from pzlib.crossmatch.outputs import HATS_INTERNAL_COLUMNS
from pzlib.registry.errors import InvalidInput
from pzlib.registry.file_safety import check_hats_folder


def open_specz(path_or_uri: str, field_name: str) -> CatalogReader:
    """The opened catalog; a missing or unreadable one raises ValueError naming ``field_name`` and the file.

    A folder (a HATS catalog, or a Parquet dataset with its summary) is a stored product's, so it is checked as
    an upload is, before hats or lsdb read it: one stored before that check existed could name files outside it.
    """
    path = local_path(path_or_uri)
    try:
        if path.is_dir():
            check_hats_folder(path, path.name)
        return open_catalog(path)
    except (CatalogError, InvalidInput) as error:
        raise ValueError(f"{field_name}: {error}") from None


def check_specz_columns(reader: CatalogReader, columns: SpeczColumns, field_name: str) -> None:
    """Raise ValueError naming ``field_name.role`` when a role's column is not in the catalog."""
    for role, name in columns.roles().items():
        if name not in reader.column_names:
            available = ", ".join(catalog_columns(reader.column_names))
            raise ValueError(f"{field_name}.{role}: column {name!r} is not in {reader.path} (has: {available})")


def catalog_columns(names: list[str]) -> list[str]:
    """A catalog's own columns: without the spatial index and partition columns HATS adds."""
    return [name for name in names if name not in HATS_INTERNAL_COLUMNS]


def read_specz(reader: CatalogReader, columns: SpeczColumns, all_columns: bool = False) -> pd.DataFrame:
    """The catalog's rows: the role columns (or every column), positions and redshifts checked.

    Raises
    ------
    CatalogError
        A position or redshift column is not numeric, has missing values, or ra/dec are off the sky.
    """
    names = catalog_columns(reader.column_names) if all_columns else list(columns.roles().values())
    frame = reader.read(names).to_pandas(types_mapper=_nullable_strings)
    check_specz_values(frame, columns, reader.path)
    return frame


def _nullable_strings(arrow_type: pa.DataType):
    return pd.StringDtype() if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) else None


def check_specz_values(frame: pd.DataFrame, columns: SpeczColumns, path: str | Path) -> None:
    """Raise :class:`CatalogError` unless ra, dec and z are numeric, present, and ra/dec on the sky."""
    limits = {"ra": (0.0, 360.0), "dec": (-90.0, 90.0), "z": (None, None)}
    for role, (low, high) in limits.items():
        name = getattr(columns, role)
        values = frame[name]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise CatalogError(path, f"{role} must be numeric, found {values.dtype}", name)
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        missing = int((~np.isfinite(numbers)).sum())
        if missing:
            raise CatalogError(path, f"{missing:,} row(s) have no {role} (null, NaN or infinite)", name)
        if low is not None:
            outside = int(((numbers < low) | (numbers > high)).sum())
            if outside:
                raise CatalogError(path, f"{outside:,} row(s) have {role} outside [{low:g}, {high:g}] deg", name)
