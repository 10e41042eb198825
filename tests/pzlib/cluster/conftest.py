"""Fixtures of the job backend tests: a small run ready for stage III (the 2,000-galaxy DC2 slice in four
500-row partitions and a BPZ model), copied fresh for each test, and its outputs computed in this process."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from backend_contract import StageThreeRun, copy_run

from pzlib.compute.acquire import acquire
from pzlib.compute.estimate_partitions import estimate_partition
from pzlib.compute.spec import RunSpec
from pzlib.compute.train import train_model


@pytest.fixture(scope="session")
def prepared_run(dc2_paths, dc2_slice, tmp_path_factory) -> StageThreeRun:
    """Stages I and II of the DC2 slice with BPZ, done once per session."""
    output = tmp_path_factory.mktemp("stage3") / "prepared"
    spec = RunSpec(release="dc2-slice", input=str(dc2_slice), train=str(dc2_paths[0]), output=str(output),
                            estimators=["bpz"], partition_rows=500)
    partitions = acquire(spec)
    return StageThreeRun(spec, train_model(spec, "bpz"), partitions)


@pytest.fixture(scope="session")
def reference_outputs(prepared_run, tmp_path_factory) -> dict[str, Path]:
    """{partition file name: photo-z table} of the prepared run, estimated in this process (pipeline code)."""
    output = tmp_path_factory.mktemp("stage3") / "reference"
    shutil.copytree(prepared_run.spec.output_path, output)
    run = copy_run(prepared_run, output, copy=False)
    outputs = [estimate_partition(run.spec, "bpz", run.model_path, path) for path in run.partition_paths]
    return {Path(path).name: Path(path) for path in outputs}


@pytest.fixture
def make_run(prepared_run, tmp_path):
    """make_run(resources=None, name="run") → a fresh copy of the prepared run in its own folder."""

    def make(resources: dict | None = None, name: str = "run") -> StageThreeRun:
        return copy_run(prepared_run, tmp_path / name, resources)

    return make
