"""The Felis schema of a delivered photo-z catalog: what a Rubin-style archive (TAP_SCHEMA, a database, a
VOTable service) needs to federate it.

Felis (``lsst-felis``) is Rubin's catalog description language. :func:`photoz_felis_schema` describes one
photo-z table — a schema ``pz_<release>`` holding the table ``photoz_<estimator>``, keyed by the object id —
from the table's Arrow schema: the columns present, in order, with the Felis datatype of their Arrow type and
the description, IVOA UCD and unit that :data:`pzlib.estimate.PHOTOZ_COLUMNS` gives them (the ``pdf``
column's says how it is encoded and on which grid). :func:`check_felis_schema` runs Felis' own validation
with every check ``felis validate`` can turn on (:data:`FELIS_VALIDATE_FLAGS`), plus what those flags leave
out and a delivery needs: an IVOA UCD on every column, and a primary key made of non-null identifier columns
(UCD ``meta.id``) of its table.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml
from felis.datamodel import Schema
from pydantic import ValidationError

from pzlib.catalog import write_text_atomically
from pzlib.estimate import PHOTOZ_ID_COLUMN, photoz_column_descriptions

FELIS_VALIDATE_FLAGS = (
    "--check-description", "--check-redundant-datatypes", "--check-tap-table-indexes", "--check-tap-principal",
)
"""Every optional check of ``felis validate``; :func:`check_felis_schema` turns on the same ones."""
FELIS_CHECKS = {flag.removeprefix("--").replace("-", "_"): True for flag in FELIS_VALIDATE_FLAGS}
"""The Pydantic validation context those flags set in ``felis validate``."""

_FELIS_SCALAR_TYPES = {
    pa.int8(): "byte", pa.int16(): "short", pa.int32(): "int", pa.int64(): "long",
    pa.float32(): "float", pa.float64(): "double", pa.bool_(): "boolean",
}


def felis_name(text: str) -> str:
    """``text`` as a database identifier (lower case letters, digits and '_'), as Felis names become."""
    return re.sub(r"[^a-z0-9_]", "_", text.lower())


def felis_column_type(name: str, arrow_type: pa.DataType) -> dict[str, Any]:
    """The Felis datatype fields of a column of ``arrow_type``.

    A fixed-size PDF is binary of its byte width with a fixed VOTable ``arraysize``: Felis has no array type,
    and these bytes are exactly what each row holds (``cdf8``: one uint8 per grid point; ``interp32``: the
    little-endian float32 values).

    Raises
    ------
    ValueError
        A type with no Felis equivalent, naming the column.
    """
    if arrow_type in _FELIS_SCALAR_TYPES:
        return {"datatype": _FELIS_SCALAR_TYPES[arrow_type]}
    if pa.types.is_fixed_size_binary(arrow_type):
        width = arrow_type.byte_width
    elif pa.types.is_fixed_size_list(arrow_type) and arrow_type.value_type in (pa.uint8(), pa.float32()):
        width = arrow_type.list_size * arrow_type.value_type.byte_width
    else:
        raise ValueError(f"column {name!r}: Arrow type {arrow_type} has no Felis datatype")
    return {"datatype": "binary", "length": width, "votable:arraysize": str(width)}


def photoz_felis_schema(release: str, estimator: str, arrow_schema: pa.Schema) -> dict[str, Any]:
    """The Felis schema (a dict, as its YAML holds it) of the photo-z table of ``estimator`` in ``release``
    whose Arrow schema, with its PDF metadata, is ``arrow_schema`` (a partition's, or a HATS catalog's
    ``_common_metadata``).

    Examples
    --------
    >>> schema = photoz_felis_schema("DP1", "bpz", pq.read_schema("part-00000.parquet"))  # doctest: +SKIP
    >>> schema["tables"][0]["name"], schema["tables"][0]["primaryKey"]  # doctest: +SKIP
    ('photoz_bpz', '#photoz_bpz.id')

    Raises
    ------
    ValueError
        An empty release or estimator name, a column that is not a photo-z table's or has no Felis datatype,
        a table without its id column or its PDF metadata.
    """
    for label, value in (("release", release), ("estimator", estimator)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{label}: a non-empty name is required, got {value!r}")
    if PHOTOZ_ID_COLUMN not in arrow_schema.names:
        raise ValueError(f"the photo-z table has no {PHOTOZ_ID_COLUMN!r} column to key it")
    schema_name, table_name = felis_name(f"pz_{release}"), felis_name(f"photoz_{estimator}")
    columns = []
    for index, (name, described) in enumerate(photoz_column_descriptions(arrow_schema).items(), start=1):
        column = {"name": name, "@id": f"#{table_name}.{name}",
                  **felis_column_type(name, arrow_schema.field(name).type),
                  "description": described.description, "ivoa:ucd": described.ucd}
        if described.unit is not None:
            column["ivoa:unit"] = described.unit
        if name == PHOTOZ_ID_COLUMN:
            column["nullable"] = False
        column.update({"tap:principal": int(described.principal), "tap:column_index": index})
        columns.append(column)
    return {
        "name": schema_name,
        "@id": f"#{schema_name}",
        "description": f"Photometric redshifts of data release {release!r}, computed by pz-platform's pz_compute.",
        "tables": [{
            "name": table_name,
            "@id": f"#{table_name}",
            "description": (f"Photo-z catalog of release {release!r} by the {estimator} estimator: point "
                            f"estimates and the PDF of each object, one row per object of the input catalog."),
            "primaryKey": f"#{table_name}.{PHOTOZ_ID_COLUMN}",
            "tap:table_index": 1,
            "columns": columns,
        }],
    }


def write_felis_schema(path: str | os.PathLike, schema: dict[str, Any]) -> Path:
    """Write ``schema`` as Felis YAML to ``path``, atomically, once :func:`check_felis_schema` accepts it."""
    check_felis_schema(schema)
    path = Path(path)
    write_text_atomically(path, yaml.safe_dump(schema, sort_keys=False, allow_unicode=True))
    return path


def check_felis_schema(source: str | os.PathLike | dict[str, Any]) -> Schema:
    """The Felis schema in ``source`` (a YAML file or its dict), validated by Felis with every optional check
    of ``felis validate`` on, and holding an IVOA UCD on every column and a primary key of non-null identifier
    columns of its table.

    Raises
    ------
    ValueError
        Naming the file (when read from one) and listing each problem with its table and column.
    """
    if isinstance(source, dict):
        data, origin = source, "Felis schema"
    else:
        data, origin = _read_yaml(Path(source)), f"Felis schema {Path(source).name}"
    problems = _delivery_problems(data)
    try:
        schema = Schema.model_validate(data, context=FELIS_CHECKS)
    except ValidationError as error:
        problems = [f"{_location(data, detail['loc'])}: {detail['msg'].removeprefix('Value error, ')}"
                    for detail in error.errors()] + problems
    if problems:
        raise ValueError(f"{origin} is not valid:\n" + "\n".join(f"- {problem}" for problem in problems))
    return schema


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"Felis schema {path.name}: cannot be read ({error.strerror})") from error
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"Felis schema {path.name}: not YAML ({error})") from error


def _tables(data: Any) -> list[dict]:
    tables = data.get("tables") if isinstance(data, dict) else None
    return [table for table in tables if isinstance(table, dict)] if isinstance(tables, list) else []


def _columns(table: dict) -> list[dict]:
    columns = table.get("columns")
    return [column for column in columns if isinstance(column, dict)] if isinstance(columns, list) else []


def _delivery_problems(data: Any) -> list[str]:
    """What a delivered catalog needs beyond ``felis validate``'s checks: a UCD on every column; a primary
    key on every table, naming non-null identifier columns of that table."""
    problems = []
    for table in _tables(data):
        where = f"table {table.get('name')!r}"
        columns_by_id = {column.get("@id"): column for column in _columns(table)}
        for column in _columns(table):
            if not column.get("ivoa:ucd"):
                problems.append(f"{where}, column {column.get('name')!r}: no IVOA UCD (ivoa:ucd)")
        key = table.get("primaryKey")
        if not key:
            problems.append(f"{where}: no primary key (primaryKey)")
            continue
        for column_id in [key] if isinstance(key, str) else key if isinstance(key, list) else []:
            column = columns_by_id.get(column_id) if isinstance(column_id, str) else None
            if column is None:
                problems.append(f"{where}: primary key {column_id!r} is not a column of the table")
                continue
            if column.get("nullable", True):
                problems.append(f"{where}, column {column.get('name')!r}: a primary key column must be "
                                f"'nullable: false'")
            if not str(column.get("ivoa:ucd", "")).startswith("meta.id"):
                problems.append(f"{where}, column {column.get('name')!r}: the primary key must be an identifier "
                                f"(ivoa:ucd meta.id...), not {column.get('ivoa:ucd')!r}")
    return problems


def _location(data: Any, loc: tuple) -> str:
    """A Pydantic error location in the schema, in names: ``table 'photoz_bpz', column 'zmode', ivoa:ucd``."""
    parts, node = [], data
    for step in loc:
        if isinstance(step, int) and isinstance(node, list) and 0 <= step < len(node):
            node = node[step]
            kind = {"tables": "table", "columns": "column"}.get(parts.pop() if parts else "", "item")
            name = node.get("name") if isinstance(node, dict) else None
            parts.append(f"{kind} {name!r}" if name is not None else f"{kind} {step + 1}")
        else:
            node = node.get(step) if isinstance(node, dict) else None
            parts.append(str(step))
    return ", ".join(parts) or "schema"
