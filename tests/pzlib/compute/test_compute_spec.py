"""pzlib.compute.spec: a run's params, checked up front, naming the bad field."""

from __future__ import annotations

import pytest

from pzlib.compute.spec import RunSpec

BASE = {"release": "dr1", "input": "in.parquet", "train": "train.parquet", "output": "out"}


@pytest.mark.parametrize("change, message", [
    ({"release": "bad name!"}, "release: 'bad name!' is not a valid name"),
    ({"estimators": ["nosuch"]}, "estimators: unknown estimator 'nosuch'"),
    ({"backend": "k8s"}, "backend: must be 'local' or 'slurm'"),
    ({"partition_rows": 0}, "partition_rows: must be a positive integer"),
    ({"column_map": "nope"}, "column_map: unknown column map 'nope'"),
    ({"colour": 1}, "colour: unknown parameter"),
    ({"input": ""}, "input: required"),
    ({"rail_options": {"bpz": {}}, "estimators": ["fzboost"]}, "rail_options: estimator"),
    ({"publish": "yes"}, "publish: must be true or false"),
    ({"owner": "no spaces"}, "owner: username 'no spaces' is not valid"),
])
def test_bad_params_name_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        RunSpec.from_params({**BASE, **change})


def test_params_round_trip_and_schema():
    spec = RunSpec.from_params(BASE)
    assert RunSpec.from_params(spec.to_params()) == spec
    assert set(RunSpec.params_schema()["properties"]) == set(spec.to_params())
