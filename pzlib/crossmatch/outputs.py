"""What TSM and CRC share around the work itself: the output written atomically, the report beside it, the
rerun that keeps a finished output, the separation statistics, and the Dask scheduler they run on.

A run writes its output (Parquet, CSV or HATS) under a temporary name and renames it, then writes
``NAME.report.json`` the same way. The report records the request's fingerprint, the identity of every input
(size and modification time of its files) and the output's row count; a rerun whose request and inputs are
unchanged and whose output still has that many rows returns the stored report without redoing anything.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pzlib.catalog import CatalogError, check_writable, open_catalog, write_hats

log = logging.getLogger(__name__)

SEPARATION_PERCENTILES = (5, 16, 50, 84, 95, 99)
HISTOGRAM_BINS = 20
HATS_INTERNAL_COLUMNS = ("_healpix_29", "Norder", "Dir", "Npix")
"""Columns HATS adds (spatial index, hive partitions): not the catalog's own."""


HATS_METADATA_FILES = ("collection.properties", "hats.properties", "properties", "partition_info.csv", "_metadata")
"""Files rewritten whenever a HATS catalog is (re)built: they identify its version without listing its data."""


def input_identity(path: str | os.PathLike) -> dict:
    """Size and modification time of a file, of a HATS catalog's metadata files, or of every file of a folder."""
    path = Path(path).resolve()
    if path.is_file():
        stat = path.stat()
        return {"path": str(path), "files": 1, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    # Catalog, margin and collection metadata sit at most three levels down (collection/catalog/dataset/_metadata).
    files = [item for depth in ("*", "*/*", "*/*/*") for item in path.glob(depth)
             if item.name in HATS_METADATA_FILES and item.is_file()]
    if not files:
        files = [item for item in path.rglob("*") if item.is_file()]
    stats = [item.stat() for item in files]
    return {"path": str(path), "files": len(files), "bytes": sum(stat.st_size for stat in stats),
            "mtime_ns": max((stat.st_mtime_ns for stat in stats), default=0)}


def write_output(table: pa.Table, path: Path, output_format: str, ra_column: str, dec_column: str) -> Path:
    """Write ``table`` atomically as Parquet, CSV or HATS (lsdb: main catalog plus margin cache)."""
    if output_format == "parquet":
        # Written once per request, read by people: fast zstd; dictionaries only where they pay (text, flags),
        # since trying one on every float column costs about a second per 100,000 rows.
        dictionary = [f.name for f in table.schema if not (pa.types.is_floating(f.type)
                                                            or pa.types.is_integer(f.type))]
        return _write_atomically(path, lambda temporary: pq.write_table(
            table, temporary, compression="zstd", compression_level=1, use_dictionary=dictionary or False))
    if output_format == "csv":
        import pyarrow.csv as pacsv

        return _write_atomically(path, lambda temporary: pacsv.write_csv(table, temporary))
    if output_format == "hats":
        return write_hats(table, path, catalog_name=path.name, ra_column=ra_column, dec_column=dec_column)
    raise ValueError(f"output_format: unknown format {output_format!r}")


def _write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write`` on a temporary sibling of ``path`` and rename it into place once complete."""
    check_writable(path)
    temporary_path = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write(temporary_path)
        os.replace(temporary_path, path)
    finally:
        temporary_path.unlink(missing_ok=True)
    return path


def kept_report(report_path: Path, fingerprint: str, inputs: dict) -> dict | None:
    """The stored report when its run had this fingerprint and inputs and its output verifies; else None."""
    if not report_path.is_file():
        return None
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        return None
    if report.get("fingerprint") != fingerprint or report.get("inputs") != inputs:
        return None
    output = report.get("output", {})
    try:
        rows = open_catalog(output["path"]).num_rows
    except (CatalogError, KeyError, OSError):
        return None
    return report if rows == output.get("rows") else None


def finish_report(pipeline: str, config, table: pa.Table, columns_association: dict, details: dict,
                  separations_arcsec: np.ndarray, started: float, fingerprint: str, inputs: dict,
                  lines: Callable[[dict], list[str]], logger: logging.Logger) -> dict:
    """A finished request's report — what both pipelines record around their own ``details`` — written beside
    the output and told by ``lines`` to the pipeline's ``logger``; returned with ``kept: False``."""
    report = {
        "pipeline": pipeline,
        "release": config.release,
        "output": {"path": str(config.output_path), "format": config.output_format, "rows": table.num_rows,
                   "columns": table.column_names},
        "report_path": str(config.report_path),
        "columns_association": columns_association,
        **details,
        "separation_arcsec": separation_summary(separations_arcsec, config.radius_arcsec),
        "radius_arcsec": config.radius_arcsec,
        "elapsed_s": round(time.perf_counter() - started, 3),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fingerprint": fingerprint,
        "inputs": inputs,
        "config": config.to_params(),
    }
    write_report(report, config.report_path)
    for line in lines(report):
        logger.info("%s", line)
    return {**report, "kept": False}


def write_report(report: dict, report_path: Path) -> Path:
    """Write the report JSON atomically."""
    check_writable(report_path)
    temporary_path = report_path.with_name(f".{report_path.name}.tmp-{uuid.uuid4().hex[:8]}")
    temporary_path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    os.replace(temporary_path, report_path)
    return report_path


def separation_summary(separations_arcsec: np.ndarray, radius_arcsec: float) -> dict:
    """Percentiles, mean and a histogram over [0, radius] of match separations (arcsec).

    Examples
    --------
    >>> summary = separation_summary(np.array([0.1, 0.2, 0.3, 0.9]), 1.0)
    >>> summary["percentiles"]["p50"], sum(summary["histogram"]["counts"])
    (0.25, 4)
    """
    separations = np.asarray(separations_arcsec, dtype=float)
    counts, edges = np.histogram(separations, bins=HISTOGRAM_BINS, range=(0.0, radius_arcsec))
    if separations.size == 0:
        percentiles = {f"p{q}": None for q in SEPARATION_PERCENTILES}
        return {"n": 0, "mean": None, "max": None, "percentiles": percentiles,
                "histogram": {"edges": _rounded(edges), "counts": counts.tolist()}}
    values = np.percentile(separations, SEPARATION_PERCENTILES)
    return {
        "n": int(separations.size),
        "mean": round(float(separations.mean()), 4),
        "max": round(float(separations.max()), 4),
        "percentiles": {f"p{q}": round(float(value), 4) for q, value in zip(SEPARATION_PERCENTILES, values,
                                                                              strict=True)},
        "histogram": {"edges": _rounded(edges), "counts": counts.tolist()},
    }


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(value), 4) for value in values]


def separation_lines(summary: dict, width: int = 40) -> list[str]:
    """The separation distribution as text lines for a task log: percentiles, then a histogram of bars."""
    if not summary["n"]:
        return ["separation: no matches"]
    percentiles = ", ".join(f"{name} {value:.3f}" for name, value in summary["percentiles"].items())
    lines = [f'separation (arcsec): mean {summary["mean"]:.3f}, {percentiles}, max {summary["max"]:.3f}']
    counts = summary["histogram"]["counts"]
    edges = summary["histogram"]["edges"]
    peak = max(counts) or 1
    last = max(index for index, count in enumerate(counts) if count) + 1  # empty bins beyond the farthest match
    for low, high, count in zip(edges[:last], edges[1:last + 1], counts[:last], strict=True):
        lines.append(f"  {low:6.3f}–{high:6.3f}\" {count:9,d} {'#' * round(width * count / peak)}")
    return lines


def partition_order(ra: np.ndarray, dec: np.ndarray, partition_rows: int, max_order: int = 12) -> int:
    """The lowest HEALPix order at which no pixel holds more than ``partition_rows`` of these positions.

    Give it to ``lsdb.from_dataframe`` as ``highest_order``: lsdb's partitioning histograms every pixel of the
    highest order (12·4^order bins), which takes minutes from order 11 on, so it must be no higher than needed.
    """
    from hats.pixel_math.spatial_index import compute_spatial_index

    index = compute_spatial_index(np.asarray(ra, dtype=float), np.asarray(dec, dtype=float))
    for order in range(max_order + 1):
        _, counts = np.unique(index >> (2 * (29 - order)), return_counts=True)
        if counts.max() <= partition_rows:
            return order
    return max_order


@contextlib.contextmanager
def dask_threads(workers: int) -> Iterator[None]:
    """Run lsdb's Dask graphs on the local threaded scheduler with ``workers`` threads (synchronous for 1)."""
    import dask

    settings = {"scheduler": "synchronous"} if workers == 1 else {"scheduler": "threads", "num_workers": workers}
    with dask.config.set(settings):
        yield
