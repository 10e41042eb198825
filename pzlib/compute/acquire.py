"""Stage I of a pz_compute run: the input catalog (a local path, or an ``s3://`` or ``http(s)://`` URL) cleaned,
column-mapped and partitioned."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from pzlib.catalog import open_catalog
from pzlib.compute.spec import RunSpec
from pzlib.compute.timings import timed
from pzlib.preprocess import preprocess
from pzlib.storage.s3_access import S3Access
from pzlib.validate.expectations import check_table

log = logging.getLogger(__name__)


def acquire(spec: RunSpec, progress: Callable[[int], None] | None = None, s3: S3Access | None = None) -> list[str]:
    """Stage I: clean and partition the input catalog, each partition checked by the ``stage1_partition``
    expectations before it is kept; returns the partition paths. An input without the truth column (a release's
object catalog) keeps none: the run has no metrics. ``s3`` reaches an ``s3://`` input (by default
    as the platform's settings say, ``PZ_S3_*``); a bad URL fails before any partition is written."""
    config = spec.preprocess_config()
    if spec.truth_column and spec.truth_column not in open_catalog(spec.input, s3=s3).column_names:
        log.info("%s has no column %r: the run has no metrics against true redshifts", spec.input, spec.truth_column)
        config = spec.preprocess_config(keep_truth=False)
    bands = list(config.columns.bands)

    def check(table: pa.Table, partition: Path) -> None:
        check_table(table, "stage1_partition", {"bands": bands}, source=str(partition))

    with timed(spec.output, "stage_1_acquire", "input"):
        partitions = preprocess(spec.input, spec.output_path / "stage1", config, progress, check, s3=s3)
    return [str(path) for path in partitions]
