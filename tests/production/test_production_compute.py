"""pz_compute on the production profile: stage III's mapped tasks run on both Celery workers, and the photo-z
tables equal those of the embedded default's engine (pzlib.compute.run.run on the same params, on this machine),
also when a worker is SIGKILLed while it runs stage III tasks (they are retried on the other) and when the
workers' Redis connections are dropped under them (they reconnect).

The runs estimate the 2,000-galaxy DC2 slice (tests/conftest.py) with BPZ in partitions of 400 rows (5 stage III
tasks), without publishing (products on S3 are tests/production/test_production_tsm.py's part). At the end the
module prints the profile's start-up time and the wall times of the undisturbed run on Celery and of the same
run on the embedded default's engine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures.airflow import task_states, wait_for_dag, wait_for_run

from pzlib.compute.run import run
from pzlib.compute.spec import RunSpec

pytestmark = pytest.mark.slow

DAG_ID = "pz_compute"
ESTIMATE_TASK = "stage_3_estimate.estimate"
PARTITION_ROWS = 400
RUN_TIMEOUT_S = 600
REDIS_PORT = 6379


@pytest.fixture(scope="module")
def client(production):
    with production.services.client() as authenticated:
        wait_for_dag(authenticated, DAG_ID)
        yield authenticated


@pytest.fixture(scope="module")
def run_params(dc2_paths, dc2_slice) -> dict:
    return {"release": "dc2-production", "input": str(dc2_slice), "train": str(dc2_paths[0]), "estimators": ["bpz"],
            "partition_rows": PARTITION_ROWS, "publish": False}


@pytest.fixture(scope="module")
def figures(request, production):
    """Measured figures, printed when the module is done."""
    lines = [f"FIGURE production profile start-up (fresh install, up.sh): {production.started_in_s:.0f} s"]
    yield lines
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print("", *lines, sep="\n")


@pytest.fixture(scope="module")
def reference(run_params, tmp_path_factory, figures) -> dict:
    """The embedded default's engine on the same params: pz run's stages on this machine."""
    output = tmp_path_factory.mktemp("embedded") / "run"
    began = time.monotonic()
    run(RunSpec(**run_params, output=str(output)), workers=2)
    figures.append(f"FIGURE DC2 slice, bpz, embedded default's engine (pz run, 2 processes): "
                   f"{time.monotonic() - began:.0f} s")
    return {"tables": photoz_tables(output), "metrics": assembled_metrics(output)}


@pytest.fixture(scope="module")
def trigger(client, run_params):
    def trigger_run(output: Path) -> str:
        response = client.post(f"/api/v2/dags/{DAG_ID}/dagRuns",
                               json={"logical_date": None, "conf": {**run_params, "output": str(output)}})
        assert response.status_code == 200, response.text
        return response.json()["dag_run_id"]

    return trigger_run


def photoz_tables(output: Path) -> dict[str, pa.Table]:
    """{file name: table} of a run's stage III outputs, key-value metadata (provenance paths) left out."""
    paths = sorted((output / "bpz" / "partitions").glob("*.parquet"))
    assert paths, f"no photo-z table in {output}"
    return {path.name: pq.read_table(path).replace_schema_metadata(None) for path in paths}


def assembled_metrics(output: Path) -> dict:
    return json.loads((output / "bpz" / "metrics.json").read_text())["metrics"]


def estimate_instances(client: httpx.Client, run_id: str) -> list[dict]:
    """The run's stage III task instances (state, hostname, try_number, map_index)."""
    response = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances",
                          params={"limit": 1000})
    response.raise_for_status()
    return [task for task in response.json()["task_instances"] if task["task_id"] == ESTIMATE_TASK]


def finished_like_the_reference(client, run_id: str, output: Path, reference: dict) -> list[dict]:
    """Wait for the run; check it succeeded with every partition estimated once and the reference's outputs;
    return its stage III task instances."""
    state = wait_for_run(client, DAG_ID, run_id, RUN_TIMEOUT_S)
    assert state == "success", task_states(client, DAG_ID, run_id)
    instances = estimate_instances(client, run_id)
    assert sorted(task["map_index"] for task in instances) == list(range(len(reference["tables"])))
    assert {task["state"] for task in instances} == {"success"}
    tables = photoz_tables(output)
    assert tables.keys() == reference["tables"].keys()
    for name, table in tables.items():
        assert table.equals(reference["tables"][name]), f"{name} differs from the embedded default's"
    assert assembled_metrics(output) == reference["metrics"]
    assert not [path for path in output.rglob(".*") if ".tmp" in path.name], "a temporary file was left"
    return instances


def wait_for_stage_3_on(client, run_id: str, hostnames: set[str]) -> dict:
    """A running stage III task instance of the run on one of ``hostnames``, once there is one."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        for task in estimate_instances(client, run_id):
            if task["state"] == "running" and task["hostname"] in hostnames:
                return task
        states = task_states(client, DAG_ID, run_id)
        assert "failed" not in states.values(), states
        time.sleep(0.5)
    raise AssertionError(f"no stage III task ran on {hostnames}: {task_states(client, DAG_ID, run_id)}")


def test_stage_3_runs_on_both_workers_and_the_outputs_equal_the_embedded_defaults(
        production, client, trigger, reference, figures, tmp_path):
    output = tmp_path / "run"
    run_id = trigger(output)

    instances = finished_like_the_reference(client, run_id, output, reference)

    assert {task["hostname"] for task in instances} == set(production.worker_names.values())
    run = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}").json()
    wall_s = (datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])).total_seconds()
    figures.append(f"FIGURE DC2 slice, bpz, pz_compute on 2 Celery workers x 2 slots: {wall_s:.0f} s")


def test_a_sigkilled_worker_s_tasks_are_retried_on_the_other_and_the_outputs_are_identical(
        production, client, trigger, reference, tmp_path):
    output = tmp_path / "run"
    run_id = trigger(output)
    hostname_of = production.worker_names
    victim_task = wait_for_stage_3_on(client, run_id, set(hostname_of.values()))
    victim = next(service for service, hostname in hostname_of.items() if hostname == victim_task["hostname"])
    survivor = hostname_of[next(service for service in hostname_of if service != victim)]

    # The whole worker goes, as with a lost host: its Celery processes and the task processes they run.
    killed = production.worker_processes(victim)
    for process in killed:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(killed, timeout=30)

    instances = finished_like_the_reference(client, run_id, output, reference)
    assert {task["hostname"] for task in instances if task["try_number"] > 1} == {survivor}
    retried = {task["map_index"] for task in instances if task["try_number"] > 1}
    assert victim_task["map_index"] in retried
    restarted = production.services.script("up.sh")
    assert restarted.returncode == 0, f"{restarted.stdout}\n{restarted.stderr}"
    assert f"starting the others: {victim}\n" in restarted.stdout, restarted.stdout


def redis_connections(production) -> dict[int, int]:
    """{local port: pid} of the workers' TCP connections to Redis."""
    found = {}
    for service in production.worker_names:
        for process in production.worker_processes(service):
            try:
                connections = process.net_connections(kind="tcp")
            except psutil.Error:
                continue
            for connection in connections:
                if connection.raddr and connection.raddr.port == REDIS_PORT and connection.status == "ESTABLISHED":
                    found[connection.laddr.port] = process.pid
    return found


def test_workers_reconnect_after_their_redis_connections_are_dropped(production, client, trigger, reference,
                                                                     tmp_path):
    output = tmp_path / "run"
    run_id = trigger(output)
    wait_for_stage_3_on(client, run_id, set(production.worker_names.values()))
    dropped = redis_connections(production)
    assert {production.services.service_pid(worker) for worker in production.worker_names} <= set(dropped.values())

    # Only the workers' own sockets: Redis itself and everyone else's connections to it are left alone.
    for port in dropped:
        killed = subprocess.run(["ss", "-K", "dst", "127.0.0.1", "dport", "=", str(REDIS_PORT), "sport", "=",
                                 str(port)], capture_output=True, text=True, timeout=30)
        assert killed.returncode == 0, killed.stderr
    assert not set(redis_connections(production)) & set(dropped), "ss -K dropped no connection"

    finished_like_the_reference(client, run_id, output, reference)
    deadline = time.monotonic() + 120
    while not {production.services.service_pid(worker) for worker in production.worker_names} <= set(
            redis_connections(production).values()):
        assert time.monotonic() < deadline, "a worker did not reconnect to Redis"
        time.sleep(1)
    assert all(os.path.exists(f"/proc/{production.services.service_pid(worker)}") for worker in production.worker_names)
