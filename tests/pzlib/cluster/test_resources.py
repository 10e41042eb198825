"""pzlib.cluster.resources (and plan.py's shares): what a run's ``resources`` param asks of the cluster."""

from __future__ import annotations

import pytest

from pzlib.cluster.plan import split_shares
from pzlib.cluster.resources import Resources, resources_for
from pzlib.compute.spec import RunSpec

BASE = {"release": "dr1", "input": "in.parquet", "train": "train.parquet", "output": "out",
        "estimators": ["bpz", "fzboost"]}


def test_estimator_defaults_then_run_wide_then_per_estimator_settings():
    param = {"partition": "cpu", "mem": "2G", "fzboost": {"mem": "8G", "cpus": 2}}

    bpz, fzboost = resources_for(param, "bpz"), resources_for(param, "fzboost")
    other = resources_for({}, "KNearNeigh")

    assert (bpz.partition, bpz.mem, bpz.cpus, bpz.time_limit) == ("cpu", "2G", 1, "06:00:00")
    assert (fzboost.partition, fzboost.mem, fzboost.cpus, fzboost.time_limit) == ("cpu", "8G", 2, "12:00:00")
    assert other == Resources()


@pytest.mark.parametrize(("resources", "message"), [
    ({"mem": "lots"}, "resources: mem: 'lots' is not a memory size"),
    ({"time_limit": "two hours"}, "resources: time_limit: 'two hours' is not a Slurm time"),
    ({"partition": "cpu; rm -rf /"}, "resources: partition: 'cpu; rm -rf /' is not a Slurm partition name"),
    ({"max_concurrent": 0}, "resources: max_concurrent: must be a positive integer"),
    ({"bpz": {"cpus": 0}}, "resources: bpz.cpus: must be a positive integer"),
    ({"bpz": {"gpus": 1}}, "resources: bpz.gpus: unknown resource"),
    ({"knn": {"cpus": 2}}, "resources: unknown key 'knn'"),
])  # fmt: skip
def test_bad_resources_are_refused_naming_the_key(resources, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        RunSpec.from_params({**BASE, "resources": resources})


@pytest.mark.parametrize(("partitions", "resources", "tasks"), [
    (20, Resources(max_concurrent=2), 2),  # one long-lived worker per slot
    (20, Resources(max_concurrent=50), 20),
    (20, Resources(max_concurrent=2, partitions_per_task=3), 7),
    (1, Resources(), 1),
])  # fmt: skip
def test_task_count_spreads_partitions_over_the_slots(partitions, resources, tasks):
    assert resources.task_count(partitions) == tasks


def test_shares_are_contiguous_and_even():
    shares = split_shares([f"p{i}" for i in range(7)], 3)

    assert shares == [["p0", "p1", "p2"], ["p3", "p4"], ["p5", "p6"]]
