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
    ({"cluster": {"bpz": "apollo"}}, r"cluster: no connection for fzboost \(name one connection per estimator"),
    ({"cluster": {"bpz": "a", "fzboost": "b", "knn": "c"}}, "cluster: estimator knn is not in estimators"),
    ({"cluster": ["apollo"]}, "cluster: \\['apollo'\\] is not a connection id"),
    ({"cluster": {"bpz": "", "fzboost": "b"}}, "cluster: a connection id must be a non-empty string"),
])
def test_bad_params_name_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        RunSpec.from_params({**BASE, **change})


def test_params_round_trip_and_schema():
    spec = RunSpec.from_params(BASE)
    assert RunSpec.from_params(spec.to_params()) == spec
    assert set(RunSpec.params_schema()["properties"]) == set(spec.to_params())


def test_each_estimator_has_a_cluster():
    assert RunSpec.from_params(BASE).clusters() == {"fzboost": "pz_slurm", "bpz": "pz_slurm"}
    assert RunSpec.from_params({**BASE, "cluster": "apollo"}).clusters() == {"fzboost": "apollo", "bpz": "apollo"}
    two = {"bpz": "apollo", "fzboost": "sdumont"}
    assert RunSpec.from_params({**BASE, "cluster": two}).clusters() == {"fzboost": "sdumont", "bpz": "apollo"}
