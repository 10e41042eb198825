"""Stage IV of a pz_compute run: the photo-z catalog of all partitions, its manifest and Felis schema, its metrics
and validation report."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pzlib import pdf
from pzlib.catalog import (
    CatalogError,
    check_writable,
    checksum_problem,
    open_catalog,
    read_json_record,
    write_hats,
    write_text_atomically,
)
from pzlib.compute.spec import RunSpec
from pzlib.compute.timings import timed
from pzlib.preprocess import output_mag_column
from pzlib.storage.transfer import Manifest, build_manifest
from pzlib.validate.expectations import check_table
from pzlib.validate.felis_schema import photoz_felis_schema, write_felis_schema
from pzlib.validate.metrics import point_metrics

log = logging.getLogger(__name__)


def assemble(spec: RunSpec, estimator: str, outputs: list[str]) -> dict:
    """Stage IV: the photo-z catalog of all partitions, and its metrics against the true redshifts. Every
    partition output must still have the bytes stage III recorded, before anything reads it.

    Beside the catalog it writes the catalog's manifest (every file's key, size and SHA-256: what a delivery
    copies and verifies, ``RunSpec.manifest_path``) and its Felis schema (``RunSpec.felis_path``).

    Returns ``{"catalog": path, "format": "hats"|"parquet", "n_rows": int, "metrics": {...} | None, "manifest":
    path, "felis_schema": path, "pdf": {...}, "bytes": int}``.

    Raises
    ------
    CatalogError
        A partition output that fails its checksum (stage III, run again, recomputes it).
    """
    with timed(spec.output, "stage_4_postprocess", estimator):
        return _assemble(spec, estimator, outputs)


def _assemble(spec: RunSpec, estimator: str, outputs: list[str]) -> dict:
    catalog_path = spec.catalog_path(estimator)
    check_writable(catalog_path)
    for output in outputs:
        problem = checksum_problem(output, spec.partition_checksum(estimator, output))
        if problem is not None:
            raise CatalogError(output, f"{problem}; run stage III again, which recomputes it")
    sources = {Path(output).name: spec.partition_checksum(estimator, output).read_text().split()[0]
               for output in outputs}
    kept = _kept_catalog(spec, estimator, sources)
    if kept is not None:
        return kept
    schema = pq.read_schema(outputs[0])
    n_rows = sum(pq.read_metadata(path).num_rows for path in outputs)
    if "ra" in schema.names and "dec" in schema.names:
        table = pa.concat_tables(pq.read_table(path) for path in outputs)
        write_hats(table, catalog_path, catalog_name=f"{spec.release}_{estimator}")
        catalog_format = "hats"
    else:
        staging = catalog_path.with_name(f".{catalog_path.name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for path in outputs:
            # Copies, not hard links: a link shares the inode, so a partition output changed in place later (a
            # bit flipped on disk, a `cp` over it, any in-place editor) would change the published catalog with
            # it, unverified. Our own writers never write in place (a rewrite is a new inode, renamed), but the
            # catalog must not depend on that. Nor reflinks: they share the blocks that storage damage hits.
            # Only position-less inputs come this way (HATS catalogs are written anew), and the outputs were
            # just verified, so a plain copy costs one read and one write of what stage III made.
            shutil.copyfile(path, staging / Path(path).name)
        shutil.rmtree(catalog_path, ignore_errors=True)
        os.replace(staging, catalog_path)
        catalog_format = "parquet"
    _check_catalog(outputs, n_rows, str(catalog_path))
    manifest = build_manifest(catalog_path, label=spec.delivery_label(estimator))
    write_text_atomically(spec.manifest_path(estimator), manifest.to_json())
    catalog_schema = open_catalog(catalog_path).schema
    write_felis_schema(spec.felis_path(estimator), photoz_felis_schema(spec.release, estimator, catalog_schema))
    recorded = pdf.storage_metadata(catalog_schema)
    metrics = _truth_metrics(spec, outputs)
    summary = {"catalog": str(catalog_path), "format": catalog_format, "n_rows": n_rows,
               "metrics": metrics, "estimator": estimator, "release": spec.release,
               "manifest": str(spec.manifest_path(estimator)), "felis_schema": str(spec.felis_path(estimator)),
               "bytes": manifest.total_bytes, "columns": catalog_schema.names,
               "pdf": {"representation": recorded["representation"], "grid": recorded["xvals"],
                       "description": pdf.describe_storage(recorded)},
               "report": _validation_report(spec, estimator, outputs) if metrics else None, "sources": sources}
    (spec.output_path / estimator / "metrics.json").write_text(json.dumps(summary, indent=1))
    return summary


def _kept_catalog(spec: RunSpec, estimator: str, sources: dict[str, str]) -> dict | None:
    """The summary of the catalog already assembled from these very partition outputs, when every file of it still
    has the bytes its manifest records (so a rerun delivers nothing new); else None."""
    summary_path = spec.output_path / estimator / "metrics.json"
    summary = read_json_record(summary_path)
    if not summary or summary.get("sources") != sources or not spec.manifest_path(estimator).exists():
        return None
    if summary.get("report") and not Path(summary["report"]).is_dir():
        return None
    recorded = Manifest.from_json(spec.manifest_path(estimator).read_text())
    current = build_manifest(spec.catalog_path(estimator), label=recorded.label)
    if current.files != recorded.files or recorded.label != spec.delivery_label(estimator):
        log.warning("catalog %s differs from its manifest %s; assembling it again", spec.catalog_path(estimator),
                    spec.manifest_path(estimator))
        return None
    log.info("kept catalog %s: made from the same partition outputs, same bytes as its manifest",
             spec.catalog_path(estimator))
    return summary


REPORT_MAX_ROWS = 200_000
"""Rows of a release's photo-z table the validation report's science metrics and plots use (whole
partitions, in order, until this many): enough for every bin, bounded in memory for any release."""


def _check_catalog(outputs: list[str], expected_rows: int, source: str) -> None:
    """The assembled table as a whole (``photoz_catalog`` expectations): every partition's rows are there and ids
    are unique across them. Each partition's PDFs were checked in stage III, so the PDF column is not read."""
    columns = [c for c in pq.read_schema(outputs[0]).names if c != pdf.PDF_COLUMN]
    table = pa.concat_tables(pq.read_table(path, columns=columns) for path in outputs)
    check_table(table, "photoz_catalog", {"expected_rows": expected_rows}, source=source)


def _validation_report(spec: RunSpec, estimator: str, outputs: list[str]) -> str:
    """The validation report (metrics JSON, GX results, plots) of the run against its true redshifts."""
    from pzlib.validate.metrics import MetricsConfig
    from pzlib.validate.report import ReportConfig, build_report

    photoz_parts, truth_parts, rows = [], [], 0
    for output in outputs:
        partition = spec.output_path / "stage1" / Path(output).name
        truth_columns = ["id", spec.truth_column]
        reference_band = output_mag_column(spec.estimate_config(estimator).ref_band)
        if reference_band in pq.read_schema(partition).names:
            truth_columns.append(reference_band)
        photoz_parts.append(pq.read_table(output))
        truth_parts.append(pq.read_table(partition, columns=truth_columns))
        rows += photoz_parts[-1].num_rows
        if rows >= REPORT_MAX_ROWS:
            break
    photoz = pa.concat_tables(photoz_parts).replace_schema_metadata(photoz_parts[0].schema.metadata)
    truth = pa.concat_tables(truth_parts)
    config = ReportConfig(
        metrics=MetricsConfig(truth_column=spec.truth_column,
                              magnitude_column=reference_band if reference_band in truth.column_names else None),
        suite_context={"expected_rows": photoz.num_rows}, title=f"{spec.release} · {estimator}",
    )
    report_dir = spec.report_path(estimator)
    build_report(photoz, truth, report_dir, config)
    return str(report_dir)


def _truth_metrics(spec: RunSpec, outputs: list[str]) -> dict | None:
    """Point metrics of zmode against the input's true redshifts (kept through stage I), if it has them."""
    if not spec.truth_column:
        return None
    zmode, truth = [], []
    for output in outputs:
        partition = spec.output_path / "stage1" / Path(output).name
        partition_columns = pq.read_schema(partition).names
        if spec.truth_column not in partition_columns:
            return None
        photoz = pq.read_table(output, columns=["id", "zmode"])
        reference = pq.read_table(partition, columns=["id", spec.truth_column])
        if not photoz.column("id").equals(reference.column("id")):
            raise CatalogError(output, "object ids differ from its stage I partition", "id")
        zmode.append(photoz.column("zmode").to_numpy())
        truth.append(reference.column(spec.truth_column).to_numpy())
    return point_metrics(np.concatenate(zmode), np.concatenate(truth)).as_dict()
