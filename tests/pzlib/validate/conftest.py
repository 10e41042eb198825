"""Real stage outputs for the validation tests: the 300-galaxy fixture through stage I and BPZ (trained once).

BPZ-lite "trains" by fitting its prior, in a second or two, so the photo-z tables here are real RAIL output.
The 150,000-row tables are those outputs tiled with fresh ids: the size of a production partition.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from plant import PARTITION_ROWS, tile

from pzlib.estimate import EstimateConfig, PartitionEstimator, estimate_partition, train
from pzlib.preprocess import PreprocessConfig, preprocess


@pytest.fixture(scope="session")
def bpz_outputs(dc2_paths, dc2_300, tmp_path_factory) -> tuple[Path, Path]:
    """(stage I partition, BPZ photo-z table) of the 300-galaxy fixture, as the pipeline writes them."""
    work = tmp_path_factory.mktemp("bpz300")
    [partition] = preprocess(dc2_300, work / "stage1", PreprocessConfig(keep_columns=["redshift"]))
    # interp32: the planting helpers edit PDF values as floats (cdf8 has its own tests)
    config = EstimateConfig("bpz", pdf_storage="interp32")
    model = train(dc2_paths[0], work / "models" / "bpz.pkl", config)
    output = estimate_partition(partition, work / "bpz" / partition.name, PartitionEstimator(model, config))
    return partition, output


@pytest.fixture(scope="session")
def stage1_300(bpz_outputs) -> pa.Table:
    return pq.read_table(bpz_outputs[0])


@pytest.fixture(scope="session")
def photoz_300(bpz_outputs) -> pa.Table:
    return pq.read_table(bpz_outputs[1])


@pytest.fixture(scope="session")
def stage1_partition(stage1_300) -> pa.Table:
    """A 150,000-row stage I partition."""
    return tile(stage1_300, PARTITION_ROWS)


@pytest.fixture(scope="session")
def photoz_partition(photoz_300) -> pa.Table:
    """A 150,000-row BPZ photo-z partition."""
    return tile(photoz_300, PARTITION_ROWS)
