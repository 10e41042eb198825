"""Photo-z PDFs: summary statistics on a redshift grid, and their storage as qp ensembles in Parquet.

A photo-z table stores each PDF in qp's ``interp`` representation: the PDF's values on a shared redshift grid
(a fixed-size list column of float32), with the grid and the representation in the Parquet schema metadata,
so :func:`table_to_ensemble` gives the qp ensemble back. The summaries (mean, median, 16th/84th
percentiles) are computed on the grid for all objects at once, with the same linear interpolation qp's
``interp`` uses.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

PDF_COLUMN = "pdf"
QP_METADATA_KEY = b"pz.qp"


def normalize(pdfs: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """PDFs scaled to unit integral over ``grid`` (trapezoid rule); all-zero rows stay zero."""
    pdfs = np.asarray(pdfs, dtype=np.float64)
    area = np.trapezoid(pdfs, grid, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(area[:, None] > 0, pdfs / area[:, None], 0.0)


def cdf(pdfs: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Cumulative distributions on ``grid`` of normalized PDFs (trapezoid rule, ends at 1)."""
    steps = 0.5 * (pdfs[:, 1:] + pdfs[:, :-1]) * np.diff(grid)
    cumulative = np.concatenate([np.zeros((pdfs.shape[0], 1)), np.cumsum(steps, axis=1)], axis=1)
    total = cumulative[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, cumulative / total, 0.0)


def quantiles(pdfs: np.ndarray, grid: np.ndarray, levels: list[float]) -> np.ndarray:
    """Redshifts at which each PDF's CDF reaches each of ``levels``; shape (n_objects, n_levels)."""
    cumulative = cdf(normalize(pdfs, grid), grid)
    result = np.empty((cumulative.shape[0], len(levels)))
    for column, level in enumerate(levels):
        # First grid index where the CDF reaches the level, then linear interpolation inside that step.
        upper = np.clip(np.argmax(cumulative >= level, axis=1), 1, grid.size - 1)
        rows = np.arange(cumulative.shape[0])
        low_cdf, high_cdf = cumulative[rows, upper - 1], cumulative[rows, upper]
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = np.where(high_cdf > low_cdf, (level - low_cdf) / (high_cdf - low_cdf), 0.0)
        result[:, column] = grid[upper - 1] + np.clip(fraction, 0.0, 1.0) * (grid[upper] - grid[upper - 1])
    return result


def mean(pdfs: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Mean redshift of each PDF on ``grid``."""
    normalized = normalize(pdfs, grid)
    return np.trapezoid(normalized * grid, grid, axis=1)


def mode(pdfs: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Grid redshift of each PDF's maximum (RAIL's FlexZBoost and BPZ mode)."""
    return grid[np.argmax(pdfs, axis=1)]


def pdf_field(n_grid: int) -> pa.Field:
    return pa.field(PDF_COLUMN, pa.list_(pa.float32(), n_grid))


def pdf_array(pdfs: np.ndarray) -> pa.FixedSizeListArray:
    """PDFs as a fixed-size list array of float32 (one list per object)."""
    values = np.ascontiguousarray(pdfs, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])


def qp_metadata(grid: np.ndarray) -> dict[bytes, bytes]:
    """Schema metadata that describes the PDF column as a qp ``interp`` ensemble on ``grid``."""
    return {QP_METADATA_KEY: json.dumps({"pdf_name": "interp", "column": PDF_COLUMN,
                                         "xvals": np.asarray(grid, dtype=np.float64).tolist()}).encode()}


def grid_from_schema(schema: pa.Schema) -> np.ndarray:
    """The redshift grid recorded in a photo-z table's schema."""
    metadata = schema.metadata or {}
    if QP_METADATA_KEY not in metadata:
        raise ValueError("table carries no qp PDF metadata (not a pz-platform photo-z table)")
    return np.asarray(json.loads(metadata[QP_METADATA_KEY])["xvals"])


def table_to_ensemble(table: pa.Table):
    """The qp ensemble of a photo-z table's PDF column, with the point estimates as ancillary data.

    Examples
    --------
    >>> ensemble = table_to_ensemble(pyarrow.parquet.read_table("part-00000.parquet"))  # doctest: +SKIP
    >>> ensemble.npdf  # doctest: +SKIP
    20449
    """
    import qp

    grid = grid_from_schema(table.schema)
    column = table.column(PDF_COLUMN).combine_chunks()
    yvals = column.flatten().to_numpy().reshape(len(column), -1).astype(np.float64)
    ensemble = qp.Ensemble(qp.interp, data={"xvals": grid, "yvals": yvals})
    ancil = {name: table.column(name).to_numpy() for name in table.column_names if name != PDF_COLUMN}
    ensemble.set_ancil(ancil)
    return ensemble
