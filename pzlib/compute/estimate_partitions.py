"""Stage III of a pz_compute run for one stage I partition: what a mapped task of the ``pz_compute`` DAG and each
job array worker (:mod:`pzlib.compute.worker`, on Slurm or on this machine) call, partition after partition."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from pzlib.catalog import open_catalog
from pzlib.compute.spec import RunSpec
from pzlib.compute.timings import timed
from pzlib.estimate import PartitionEstimator
from pzlib.estimate import estimate_partition as _estimate_partition
from pzlib.validate.expectations import check_table

_worker_estimators: dict[tuple[str, str], PartitionEstimator] = {}


def _estimator_for(spec: RunSpec, estimator: str, model_path: str) -> PartitionEstimator:
    """The process's estimator for this model, built on first use: later partitions reuse the loaded model."""
    key = (estimator, str(Path(model_path).resolve()))
    if key not in _worker_estimators:
        _worker_estimators[key] = PartitionEstimator(model_path, spec.estimate_config(estimator))
    return _worker_estimators[key]


def estimate_partition(spec: RunSpec, estimator: str, model_path: str, partition_path: str,
                       progress: Callable[[int], None] | None = None) -> str:
    """Stage III for one partition. Its input is checked as ``pz`` checks a catalog (columns, numeric and
    finite photometry) before the estimator sees a row; its output by the ``photoz_table`` expectations (row
    count preserved) before it is kept, and its SHA-256 recorded; an output that exists and still has those
    bytes is kept. Returns the output path.

    Raises
    ------
    CatalogError
        Naming the partition file (or the output file: a full disk), the column and the problem.
    """
    output = spec.partition_output(estimator, partition_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    expected_rows = open_catalog(partition_path).num_rows

    def check(table: pa.Table, final: Path) -> None:
        check_table(table, "photoz_table", {"expected_rows": expected_rows}, source=str(final))

    estimator_for_model = _estimator_for(spec, estimator, model_path)
    with timed(spec.output, "stage_3_estimate", f"{estimator}/{Path(partition_path).name}"):
        return str(_estimate_partition(partition_path, output, estimator_for_model, progress, check=check,
                                       checksum_path=spec.partition_checksum(estimator, partition_path)))
