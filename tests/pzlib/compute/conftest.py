"""Fixtures of the pz_compute tests: a small run sharing the session's trained model."""

from __future__ import annotations

import pytest

from pzlib.compute.spec import RunSpec


@pytest.fixture
def small_run(dc2_run, dc2_300, tmp_path) -> RunSpec:
    """A BPZ run of the 300-galaxy sample in three partitions, with the session's trained model (same training
    file and config, so stage II reuses it)."""
    spec, _ = dc2_run
    small = RunSpec(release="small", input=str(dc2_300), train=spec.train, output=str(tmp_path / "run"),
                    estimators=["bpz"], partition_rows=100)
    (small.output_path / "models").mkdir(parents=True)
    for suffix in ("", ".json"):
        (small.output_path / "models" / f"bpz.pkl{suffix}").write_bytes(
            (spec.output_path / "models" / f"bpz.pkl{suffix}").read_bytes())
    return small
