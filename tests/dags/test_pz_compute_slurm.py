"""pz_compute with backend 'slurm': the real Airflow services, the real test cluster over SSH.

Stage III is one deferrable task per estimator, running one job array; its cluster is the Airflow SSH
connection ``pz_slurm`` (created here over REST with the SSH provider's extras: the test cluster's key_file and
host_key). The
triggerer is restarted while the task waits: the run re-attaches and finishes with one submission only. The
run estimates the 2,000-galaxy DC2 slice with BPZ in four 500-row partitions; its outputs must equal the local
backend's. A second run checks that marking the waiting task failed cancels its jobs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import psutil
import pyarrow.parquet as pq
import pytest
from fixtures.airflow import AIRFLOW_SCRIPTS, task_states, wait_for_dag, wait_for_run

from pzlib.compute.estimate_partitions import estimate_partition
from pzlib.compute.spec import RunSpec

pytestmark = pytest.mark.slow

DAG_ID = "pz_compute"
TASK_ID = "stage_3_estimate.estimate_on_cluster"
RUN_TIMEOUT_S = 900
STAGE_THREE_SETTLED = {"deferred", "success", "failed", "upstream_failed"}
"""States in which stage III's task stops waiting to defer."""
PARTITION_ROWS = 500
CLUSTERS = {"bpz": "pz_slurm", "dnf": "pz_second"}
"""The cluster of each estimator of the main run."""


@pytest.fixture(scope="module")
def client(airflow_services, slurm_cluster, jump_host):
    """A REST client, with the connections of the two clusters (the second behind the jump host) in place."""
    connections = [
        slurm_cluster.airflow_connection("pz_slurm", poll_interval=2),
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


def trigger(client, conf: dict) -> str:
    response = client.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
    assert response.status_code == 200, response.text
    return response.json()["dag_run_id"]


def slurm_conf(dc2_paths, dc2_slice, output: Path, resources: dict, cluster=None) -> dict:
    """A run of BPZ on ``cluster`` (default: pz_slurm), or of the estimators ``cluster`` maps to their clusters."""
    return {"release": "dc2-slice-slurm", "input": str(dc2_slice), "train": str(dc2_paths[0]),
            "output": str(output), "estimators": list(cluster) if isinstance(cluster, dict) else ["bpz"],
            "partition_rows": PARTITION_ROWS,
            "backend": "slurm", "resources": resources, "cluster": cluster}


def wait_until(condition, what: str, timeout_s: float = RUN_TIMEOUT_S, interval_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(interval_s)
    return result


def submitted_array(output: Path, estimator: str = "bpz") -> dict | None:
    """The job array stage III recorded in the run folder for ``estimator``, once its job id is known."""
    state_path = output / estimator / "jobs" / "state.json"
    if not state_path.exists():
        return None
    arrays = json.loads(state_path.read_text())["arrays"]
    return arrays[-1] if arrays and arrays[-1]["handle"] else None


def restart_triggerer(airflow_services) -> None:
    """Stop the triggerer up.sh started (SIGTERM to its session, as down.sh does) and start a new one."""
    pid_file = airflow_services.state_dir / "run" / "triggerer.pid"
    old_pid = int(pid_file.read_text())
    os.kill(old_pid, signal.SIGTERM)
    wait_until(lambda: not any(_in_session(process, old_pid) for process in psutil.process_iter()),
               "old triggerer stopped", timeout_s=60, interval_s=0.5)
    log = open(airflow_services.state_dir / "logs" / "services" / "triggerer.log", "ab")
    with log:
        new = subprocess.Popen(
            ["bash", "-c", 'source "$1" && exec "$PZ_AIRFLOW_BIN" triggerer --skip-serve-logs', "triggerer",
             str(AIRFLOW_SCRIPTS / "env.sh")],
            env=airflow_services.environment, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file.write_text(f"{new.pid}\n")  # down.sh stops it with the other services


def _in_session(process: psutil.Process, session_id: int) -> bool:
    try:
        return os.getsid(process.pid) == session_id and process.status() != psutil.STATUS_ZOMBIE
    except (OSError, psutil.Error):
        return False


@pytest.fixture(scope="module")
def slurm_run(client, airflow_services, jump_host, dc2_paths, dc2_slice, tmp_path_factory) -> tuple[str, Path]:
    """(run id, output folder) of a slurm-backend run over two clusters during which the triggerer was restarted."""
    output = tmp_path_factory.mktemp("pz_compute_slurm") / "run"
    logins_before = jump_host.log_path.read_text().count("Accepted publickey")
    conf = slurm_conf(dc2_paths, dc2_slice, output, {"max_concurrent": 2, "mem": "1G"}, CLUSTERS)
    run_id = trigger(client, {**conf, "publish": False})
    # A task that fails before deferring ends the wait at once, rather than after the whole timeout.
    for index in range(len(CLUSTERS)):
        wait_until(lambda index=index: task_states(client, DAG_ID, run_id).get(f"{TASK_ID}[{index}]")
                   in STAGE_THREE_SETTLED, "stage III deferred on its job array")
    assert task_states(client, DAG_ID, run_id).get(f"{TASK_ID}[0]") == "deferred", task_states(client, DAG_ID, run_id)
    assert submitted_array(output) is not None

    restart_triggerer(airflow_services)

    state = wait_for_run(client, DAG_ID, run_id, RUN_TIMEOUT_S)
    assert state == "success", task_states(client, DAG_ID, run_id)
    assert jump_host.log_path.read_text().count("Accepted publickey") > logins_before  # pz_second went through it
    return run_id, output


def test_stage_three_ran_as_one_deferred_task_per_estimator(client, slurm_run):
    run_id, _ = slurm_run
    states = task_states(client, DAG_ID, run_id)

    assert states.pop("stage_3_estimate.estimate") == "skipped"  # the local variant, branched away
    for index in range(len(CLUSTERS)):
        assert states.pop(f"{TASK_ID}[{index}]") == "success"
        assert states.pop(f"stage_4_postprocess.deliver_catalog[{index}]") == "skipped"  # the run has no destination
        assert states.pop(f"stage_4_postprocess.publish_report[{index}]") == "skipped"  # nor publishes
        assert states.pop(f"stage_4_postprocess.publish_catalog[{index}]") == "skipped"
    assert states.pop("stage_4_postprocess.publish_comparison") == "skipped"
    assert set(states.values()) == {"success"}, states


def test_one_array_per_estimator_was_submitted_on_its_clusters_partition_although_the_triggerer_restarted(
        slurm_run, slurm_cluster):
    _, output = slurm_run
    for estimator, partition in (("bpz", slurm_cluster.partition), ("dnf", slurm_cluster.second_partition)):
        arrays = json.loads((output / estimator / "jobs" / "state.json").read_text())["arrays"]

        assert len(arrays) == 1
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 3600))
        jobs = slurm_cluster.run(f"sacct -X -n -P -S {since} --name={arrays[0]['name']} -o JobID,Partition").split()
        records = {(job.split("|")[0].split("_")[0], job.split("|")[1]) for job in jobs}
        assert records == {(arrays[0]["handle"]["job_id"], partition)}, estimator


def test_every_partition_output_exists_once_and_equals_the_local_backends(slurm_run, tmp_path):
    _, output = slurm_run
    partitions = sorted((output / "stage1").glob("part-*.parquet"))
    assert len(partitions) == 4

    # The local backend's answer: the same partitions and models, estimated in this process.
    local_output = tmp_path / "local"
    for folder in ("stage1", "models"):
        shutil.copytree(output / folder, local_output / folder)
    array_dir = Path(json.loads((output / "bpz" / "jobs" / "state.json").read_text())["arrays"][0]["dir"])
    run_params = json.loads((array_dir / "plan.json").read_text())["params"]
    spec = RunSpec(**{**run_params, "output": str(local_output), "backend": "local"})
    for estimator in CLUSTERS:
        outputs = output / estimator / "partitions"
        assert sorted(path.name for path in outputs.iterdir()) == [p.name for p in partitions]
        for partition in partitions:
            local = estimate_partition(spec, estimator, str(spec.model_path(estimator)),
                                       str(local_output / "stage1" / partition.name))
            ours = pq.read_table(outputs / partition.name)
            theirs = pq.read_table(local)
            assert ours.replace_schema_metadata(None).equals(theirs.replace_schema_metadata(None)), estimator


def task_log(client, run_id: str) -> str:
    """The stage III task's log (first try, its trigger's lines included), as one JSON text."""
    response = client.get(
        f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{TASK_ID}/logs/1",
        params={"map_index": 0, "full_content": True},
    )
    return json.dumps(response.json()) if response.status_code == 200 else ""


def test_the_jobs_output_is_in_the_task_log(client, slurm_run):
    run_id, _ = slurm_run
    log = task_log(client, run_id)

    assert "submitted array" in log
    assert "[pz worker" in log and "partition(s) done" in log  # the jobs' stdout


def test_marking_the_waiting_task_failed_cancels_its_jobs(client, slurm_cluster, dc2_paths, dc2_slice, tmp_path):
    output = tmp_path / "run"
    # Eight one-partition tasks one after another: the array is still running when the task is marked failed.
    conf = slurm_conf(dc2_paths, dc2_slice, output, {"max_concurrent": 1, "partitions_per_task": 1, "mem": "1G"})
    run_id = trigger(client, {**conf, "partition_rows": 250})
    array = wait_until(lambda: submitted_array(output), "array submitted")
    job_id = array["handle"]["job_id"]
    # The trigger polls (its log says so): marking failed now reaches its on_kill.
    wait_until(lambda: f"array {job_id}:" in task_log(client, run_id), "trigger polling the array")

    response = client.patch(
        f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{TASK_ID}/0",
        json={"new_state": "failed"},
    )
    assert response.status_code == 200, response.text

    since = array["handle"]["submitted_at"]
    wait_until(lambda: "CANCELLED" in slurm_cluster.run(f"sacct -X -n -P -S {since} -j {job_id} -o State"),
               "array cancelled", timeout_s=120)
    assert wait_for_run(client, DAG_ID, run_id, RUN_TIMEOUT_S) == "failed"


@pytest.mark.parametrize("cluster", ["pz_nowhere", {"bpz": "pz_slurm", "dnf": "pz_nowhere"}], ids=["one", "each"])
def test_an_unknown_cluster_connection_is_refused_at_trigger(client, dc2_paths, dc2_slice, tmp_path, cluster):
    conf = slurm_conf(dc2_paths, dc2_slice, tmp_path, {}, cluster)
    response = client.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})

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
