"""pzlib.compute.estimate_partitions: stage III of one partition — a bad input or a full disk fails that
partition alone, naming its file, column and problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures.damage import truncate

from pzlib.catalog import CatalogError, write_parquet
from pzlib.compute.acquire import acquire
from pzlib.compute.estimate_partitions import estimate_partition


def _as_text(partition: Path, output: Path) -> str:
    table = pq.read_table(partition)
    write_parquet(table.set_column(table.schema.get_field_index("mag_r_lsst"), "mag_r_lsst",
                                   table.column("mag_r_lsst").cast(pa.string())), partition)
    return f"{partition}, column 'mag_r_lsst': expected a numeric column, found string"


def _all_nan(partition: Path, output: Path) -> str:
    table = pq.read_table(partition)
    write_parquet(table.set_column(table.schema.get_field_index("mag_g_lsst"), "mag_g_lsst",
                                   pa.array(np.full(table.num_rows, np.nan, dtype=np.float32))), partition)
    return f"{partition}, column 'mag_g_lsst': all 100 values are NaN or infinite"


def _truncated(partition: Path, output: Path) -> str:
    truncate(partition)
    return f"{partition}: not a readable parquet catalog"


def _unwritable_output(partition: Path, output: Path) -> str:
    (output / "in the way").mkdir(parents=True)  # a folder where the output file goes
    return f"{output}: cannot write: Is a directory"


@pytest.mark.parametrize("damage", [_as_text, _all_nan, _truncated, _unwritable_output],
                         ids=["string magnitudes", "all-NaN band", "truncated file", "unwritable output"])
def test_a_bad_partition_fails_alone_with_its_file_column_and_problem(damage, small_run):
    partitions = [Path(path) for path in acquire(small_run)]
    bad = partitions[1]
    message = damage(bad, small_run.partition_output("bpz", bad))
    model = str(small_run.model_path("bpz"))

    outcomes = {}
    for partition in partitions:
        try:
            outcomes[partition.name] = estimate_partition(small_run, "bpz", model, str(partition))
        except CatalogError as error:  # before the estimator was called: no RAIL error, no output's name
            outcomes[partition.name] = str(error)

    assert outcomes[bad.name].startswith(message)
    for partition in (partitions[0], partitions[2]):
        assert outcomes[partition.name] == str(small_run.partition_output("bpz", partition))
        assert pq.read_metadata(outcomes[partition.name]).num_rows == 100
    assert not list((small_run.output_path / "bpz" / "partitions").glob(".*"))  # no temporary file left


FULL_DISK_STAGE_THREE = """
import json, resource, sys
from pzlib.compute.estimate_partitions import estimate_partition
from pzlib.compute.spec import RunSpec
from pzlib.catalog import CatalogError
spec, model, partitions = RunSpec(**json.loads(sys.argv[1])), sys.argv[2], sys.argv[3:]
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
for index, partition in enumerate(partitions):
    # While partition 1 is written, files stop growing at 1 kB, as on a full disk; then space is back.
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000 if index == 1 else soft, hard))
    try:
        estimate_partition(spec, "bpz", model, partition)
    except CatalogError as error:
        print(error)
"""


def test_a_full_disk_fails_the_partition_being_written_naming_its_file(small_run):
    # A real full disk needs a filesystem mounted for it; a file size limit (RLIMIT_FSIZE) makes the kernel refuse
    # the writes the same way (EFBIG where a full disk gives ENOSPC), in a process of its own.
    partitions = acquire(small_run)
    result = subprocess.run([sys.executable, "-c", FULL_DISK_STAGE_THREE, json.dumps(small_run.to_params()),
                             str(small_run.model_path("bpz")), *partitions], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    full = small_run.partition_output("bpz", partitions[1])
    assert result.stdout.strip() == f"{full}: cannot write: File too large"
    assert sorted(path.name for path in full.parent.iterdir()) == [Path(partitions[0]).name, Path(partitions[2]).name]
    assert not small_run.partition_checksum("bpz", partitions[1]).exists()
