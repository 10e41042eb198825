"""Stage I of a pz_compute run: the input catalog cleaned, column-mapped and partitioned."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from pzlib.compute.spec import RunSpec
from pzlib.preprocess import preprocess
from pzlib.validate.expectations import check_table


def acquire(spec: RunSpec, progress: Callable[[int], None] | None = None) -> list[str]:
    """Stage I: clean and partition the input catalog, each partition checked by the ``stage1_partition``
    expectations before it is kept; returns the partition paths."""
    bands = list(spec.preprocess_config().columns.bands)

    def check(table: pa.Table, partition: Path) -> None:
        check_table(table, "stage1_partition", {"bands": bands}, source=str(partition))

    partitions = preprocess(spec.input, spec.output_path / "stage1", spec.preprocess_config(), progress, check)
    return [str(path) for path in partitions]
