"""Building production-size tables from small real outputs, and planting one bad value in them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pzlib import pdf

PARTITION_ROWS = 150_000
"""Rows of a production stage I partition."""


def tile(table: pa.Table, rows: int) -> pa.Table:
    """``table`` repeated to ``rows`` rows with fresh unique ids, schema metadata kept."""
    repeats = -(-rows // table.num_rows)
    tiled = pa.concat_tables([table] * repeats).slice(0, rows).combine_chunks()
    ids = pa.array(np.arange(rows, dtype=np.int64) + 7_000_000_000)
    return tiled.set_column(tiled.schema.get_field_index("id"), "id", ids).replace_schema_metadata(
        table.schema.metadata)


def with_value(table: pa.Table, column: str, row: int, value) -> pa.Table:
    """``table`` with one value of a scalar column replaced (same type, same metadata)."""
    field = table.schema.field(column)
    values = table.column(column).to_numpy().copy()
    values[row] = value
    return table.set_column(table.schema.get_field_index(column), field, pa.array(values, field.type))


def with_pdf_value(table: pa.Table, row: int, position: int, value: float) -> pa.Table:
    """``table`` with one value of one object's PDF replaced."""
    pdfs = table.column("pdf").combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1).copy()
    pdfs[row, position] = value
    grid = pdf.grid_from_schema(table.schema)
    return table.set_column(table.schema.get_field_index("pdf"), "pdf",
                            pdf.encode(pdfs, grid, "interp32")).replace_schema_metadata(table.schema.metadata)
