"""pz_compute over two clusters, with the real Airflow services, the real test cluster and a real jump host.

The two "clusters" are two Airflow SSH connections to the test cluster, each with its own default partition in
its extra; the second is reached only through the jump host (a second sshd: tests/fixtures/cluster.py). One run
puts BPZ on the first and DNF on the second: each estimator's array runs on its own cluster's partition and
the outputs equal a local run's. Also: the ``cluster`` param is checked when the run is triggered, and the UI's
connection form for type ssh is the SSH provider's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fixtures.airflow import task_states, wait_for_dag, wait_for_run

from pzlib.compute.estimate_partitions import estimate_partition
from pzlib.compute.spec import RunSpec

pytestmark = pytest.mark.slow

DAG_ID = "pz_compute"
RUN_TIMEOUT_S = 900
ESTIMATORS = {"bpz": "pz_first", "dnf": "pz_second"}
"""The cluster of each estimator."""


@pytest.fixture(scope="module")
def client(airflow_services, slurm_cluster, jump_host):
    """A REST client, with the connections of the two clusters (the second behind the jump host) in place."""
    connections = [
        slurm_cluster.airflow_connection("pz_first", poll_interval=2,
                                         resources={"partition": slurm_cluster.partition}),
        jump_host.airflow_connection("pz_second_login", slurm_cluster),
        slurm_cluster.airflow_connection("pz_second", poll_interval=2, jump_conn_id="pz_second_login",
                                         resources={"partition": slurm_cluster.second_partition}),
    ]
    with airflow_services.client() as authenticated:
        wait_for_dag(authenticated, DAG_ID)
        for connection in connections:
            response = authenticated.post("/api/v2/connections", json=connection)
            assert response.status_code == 201, response.text
        yield authenticated


def conf(dc2_paths, dc2_slice, output: Path, cluster) -> dict:
    return {"release": "dc2-slice-two-clusters", "input": str(dc2_slice), "train": str(dc2_paths[0]),
            "output": str(output), "estimators": list(ESTIMATORS), "partition_rows": 1000, "backend": "slurm",
            "cluster": cluster, "resources": {"max_concurrent": 2, "mem": "2G"}, "publish": False}


@pytest.mark.parametrize("cluster", ["pz_nowhere", {"bpz": "pz_first", "dnf": "pz_nowhere"}], ids=["one", "each"])
def test_an_unknown_cluster_connection_is_refused_at_trigger(client, dc2_paths, dc2_slice, tmp_path, cluster):
    response = client.post(f"/api/v2/dags/{DAG_ID}/dagRuns",
                           json={"logical_date": None, "conf": conf(dc2_paths, dc2_slice, tmp_path, cluster)})

    assert response.status_code == 400, response.text
    assert "Invalid input for param cluster: 'pz_nowhere' is not a 'defined Airflow connection'" in response.text


def test_the_connection_form_of_type_ssh_is_the_providers(client):
    response = client.get("/ui/connections/hook_meta")
    assert response.status_code == 200, response.text

    ssh = next(hook for hook in response.json() if hook["connection_type"] == "ssh")

    assert ssh["hook_class_name"] == "airflow.providers.ssh.hooks.ssh.SSHHook"
    assert ssh["hook_name"] == "SSH"
    assert ssh["standard_fields"]["login"]["title"] == "Username"  # the provider relabels it
    assert ssh["standard_fields"]["url_schema"]["hidden"] is True  # and hides the schema


@pytest.fixture(scope="module")
def two_cluster_run(client, jump_host, dc2_paths, dc2_slice, tmp_path_factory) -> Path:
    """The output folder of a run with BPZ on the first cluster and DNF on the second (behind the jump host)."""
    output = tmp_path_factory.mktemp("pz_compute_clusters") / "run"
    logins_before = jump_host.log_path.read_text().count("Accepted publickey")
    response = client.post(f"/api/v2/dags/{DAG_ID}/dagRuns",
                           json={"logical_date": None, "conf": conf(dc2_paths, dc2_slice, output, ESTIMATORS)})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]

    state = wait_for_run(client, DAG_ID, run_id, RUN_TIMEOUT_S)

    assert state == "success", task_states(client, DAG_ID, run_id)
    assert jump_host.log_path.read_text().count("Accepted publickey") > logins_before
    return output


def test_each_estimator_ran_on_its_clusters_partition(two_cluster_run, slurm_cluster):
    for estimator, partition in (("bpz", slurm_cluster.partition), ("dnf", slurm_cluster.second_partition)):
        arrays = json.loads((two_cluster_run / estimator / "jobs" / "state.json").read_text())["arrays"]
        assert len(arrays) == 1
        handle = arrays[0]["handle"]
        records = slurm_cluster.run(f"sacct -X -n -P -S {handle['submitted_at']} -j {handle['job_id']} "
                                    "-o Partition,State").split()
        assert records and set(records) == {f"{partition}|COMPLETED"}, (estimator, records)


def test_the_outputs_equal_a_local_runs(two_cluster_run, tmp_path):
    local_output = tmp_path / "local"
    for folder in ("stage1", "models"):
        shutil.copytree(two_cluster_run / folder, local_output / folder)
    array_dir = Path(json.loads((two_cluster_run / "bpz" / "jobs" / "state.json").read_text())["arrays"][0]["dir"])
    run_params = json.loads((array_dir / "plan.json").read_text())["params"]
    spec = RunSpec(**{**run_params, "output": str(local_output), "backend": "local"})
    partitions = sorted((local_output / "stage1").glob("part-*.parquet"))
    assert len(partitions) == 2

    for estimator in ESTIMATORS:
        for partition in partitions:
            theirs = pq.read_table(estimate_partition(spec, estimator, str(spec.model_path(estimator)), str(partition)))
            ours = pq.read_table(two_cluster_run / estimator / "partitions" / partition.name)
            assert ours.replace_schema_metadata(None).equals(theirs.replace_schema_metadata(None)), estimator
